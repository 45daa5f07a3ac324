# tests/repo/test_dashboards.py
#
# The Grafana dashboards and provisioning, checked without Grafana (its image
# cannot be had here): the committed JSON is what grafana/dashboards.py
# generates; each dashboard is a valid model with unique panel ids and no
# overlapping panels; every datasource reference is the provisioned one;
# every query parses as PromQL and reads only docs/design.md §4 metrics and labels;
# the GIL probe's panel says it shows a busy GIL, not which server thread waits;
# the provisioning files point where docker-compose.yml mounts them.

from __future__ import annotations

import json
import re
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from services import VARIANTS
from services.core.metrics import Metrics
from services.core.protocol import ErrorCode
from tests.conftest import load_script

from .dashboards import (
    CONTRACT,
    DASHBOARD_DIR,
    DATASOURCE_UID,
    GRAFANA_DIR,
    PROVISIONING_DIR,
    ROOT,
    VARIANT_JOB,
    all_queries,
    contract_problems,
    contract_series,
    dashboard_queries,
    iter_panels,
    load_dashboards,
    substitute,
    usage,
    variable_values,
)

UIDS = {"fiblab-variants.json": "fiblab-variants", "fiblab-convoy.json": "fiblab-convoy"}
DASHBOARDS = load_dashboards()


def generator() -> ModuleType:
    """grafana/dashboards.py (a script, not a package module)."""
    return load_script(GRAFANA_DIR / "dashboards.py", "fiblab_grafana_dashboards")


def compose_grafana() -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service: dict[str, Any] = spec["services"]["grafana"]
    return service


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the compose file) of bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        host, container, *_mode = volume.split(":")
        if host.startswith("./"):
            found[container] = host[2:]
    return found


def test_committed_json_is_what_the_generator_makes() -> None:
    generated = generator().render_all()
    committed = {path.name: path.read_text() for path in DASHBOARD_DIR.glob("*.json")}
    assert set(committed) == set(generated) == set(UIDS), "run `make dashboards`"
    stale = [name for name in generated if committed[name] != generated[name]]
    assert not stale, f"{stale} differ from grafana/dashboards.py: run `make dashboards`"


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_model_is_valid(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["uid"] == UIDS[name]
    assert dashboard["title"].startswith("fiblab")
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None, "provisioned dashboards carry no database id"
    assert dashboard["time"] == {"from": "now-5m", "to": "now"}
    refresh = re.fullmatch(r"(\d+)s", dashboard["refresh"])
    assert refresh, dashboard["refresh"]
    assert 1 <= int(refresh.group(1)) <= 5, dashboard["refresh"]
    panels = list(iter_panels(dashboard))
    assert any(panel["type"] != "row" for panel in panels)
    for panel in panels:
        where = f"{name} panel {panel.get('id')} {panel.get('title')!r}"
        assert panel.get("type") in {"row", "timeseries", "bargauge", "table", "stat"}, where
        assert panel.get("title"), where
        pos = panel["gridPos"]
        assert all(isinstance(pos[key], int) for key in "xywh"), where
        assert min(pos["x"], pos["y"]) >= 0, where
        assert min(pos["w"], pos["h"]) > 0, where
        assert pos["x"] + pos["w"] <= 24, f"{where}: wider than the 24-column grid"
        if panel["type"] == "row":
            assert (pos["w"], pos["h"]) == (24, 1), where
            continue
        assert panel.get("description", "").strip(), f"{where}: no description"
        assert panel.get("targets"), f"{where}: no query"
        ref_ids = [target.get("refId") for target in panel["targets"]]
        assert all(ref_ids), f"{where}: refIds {ref_ids}"
        assert len(set(ref_ids)) == len(ref_ids), f"{where}: refIds {ref_ids}"
        if panel["type"] in {"timeseries", "bargauge"}:
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: no unit"
            for target in panel["targets"]:
                legend = target.get("legendFormat", "")
                assert legend.startswith("{{variant}}"), f"{where}: legend {legend!r}"


@pytest.mark.parametrize("name", sorted(UIDS))
def test_panel_ids_are_unique(name: str) -> None:
    ids = [panel.get("id") for panel in iter_panels(DASHBOARDS[name])]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(ids) == len(set(ids)), ids


def overlapping(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    def box(panel: dict[str, Any]) -> tuple[int, int, int, int]:
        pos = panel["gridPos"]
        return pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"]

    clashes = []
    for a, b in combinations(panels, 2):
        ax0, ay0, ax1, ay1 = box(a)
        bx0, by0, bx1, by1 = box(b)
        if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
            clashes.append((a["title"], b["title"]))
    return clashes


@pytest.mark.parametrize("name", sorted(UIDS))
def test_no_panels_overlap(name: str) -> None:
    # Top-level panels and rows share one grid; a collapsed row's panels are
    # laid out anew when it opens, so they are checked among themselves.
    dashboard = DASHBOARDS[name]
    assert not overlapping(dashboard["panels"])
    for row in dashboard["panels"]:
        assert not overlapping(row.get("panels", [])), row["title"]


def test_the_overlap_check_sees_an_overlap() -> None:
    a = {"title": "a", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}}
    b = {"title": "b", "gridPos": {"x": 11, "y": 7, "w": 4, "h": 4}}
    c = {"title": "c", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 8}}
    assert overlapping([a, b, c]) == [("a", "b"), ("b", "c")]


GIL_METRICS = {"fib_gil_wait_seconds_total", "fib_gil_probe_seconds_total"}


def gil_probe_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that read the GIL probe's counters."""
    values = variable_values(dashboard, list(VARIANTS))
    return [
        panel
        for panel in iter_panels(dashboard)
        if any(
            GIL_METRICS & usage(substitute(t["expr"], values)).metrics
            for t in panel.get("targets", [])
        )
    ]


def gil_panel_problems(panel: dict[str, Any]) -> list[str]:
    """Why a GIL probe panel could be read as server threads' contention (empty: it cannot)."""
    title, description = panel.get("title", ""), panel.get("description", "")
    problems = []
    if not re.search(r"\bbusy\b", title, re.IGNORECASE) or "probe" not in title.lower():
        problems.append(f"title {title!r} does not say it is a busy GIL seen by a probe")
    if not re.search(r"single-threaded loop", description, re.IGNORECASE):
        problems.append("description does not warn that a single-threaded loop reads high")
    if not re.search(r"no other server thread waits", description, re.IGNORECASE):
        problems.append("description does not say that no other server thread waits there")
    if "timeline" not in description or "§6.6" not in description:
        problems.append("description does not point to the timeline (docs/design.md §6.6)")
    return problems


@pytest.mark.parametrize("name", sorted(UIDS))
def test_the_gil_panel_says_it_shows_a_busy_gil_not_who_waits(name: str) -> None:
    """The probe's wait share reads as high on an inline loop as on threads:
    the panel must not pass for server threads' contention."""
    panels = gil_probe_panels(DASHBOARDS[name])
    assert panels, f"{name}: no panel of the GIL probe"
    for panel in panels:
        assert not gil_panel_problems(panel), (panel["title"], gil_panel_problems(panel))


def test_the_gil_panel_check_fails_the_old_title_and_a_bare_description() -> None:
    old = {
        "title": "Waiting for the GIL",
        "description": "Share of the time a thread that wants the GIL waits for it.",
    }
    assert len(gil_panel_problems(old)) == 4
    (panel, *_) = gil_probe_panels(DASHBOARDS["fiblab-convoy.json"])
    caveat_dropped = dict(panel, description=panel["description"].replace("single-threaded", ""))
    assert gil_panel_problems(caveat_dropped) == [
        "description does not warn that a single-threaded loop reads high"
    ]


def scrape_targets() -> dict[str, list[str]]:
    """Each scrape job of prometheus/prometheus.yml -> its static targets."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }


def label_replacements(expr: str) -> list[tuple[str, str, str, str]]:
    """(destination, replacement, source, regex) of every label_replace in `expr`."""
    found = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.Call) and node.func.name == "label_replace":
            _vector, *strings = node.args
            assert all(isinstance(s, promql_parser.StringLiteral) for s in strings), str(node)
            destination, replacement, source, regex = (s.val for s in strings)
            found.append((destination, replacement, source, regex))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def target_health_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that read Prometheus' `up`."""
    values = variable_values(dashboard, list(VARIANTS))
    return [
        panel
        for panel in iter_panels(dashboard)
        if any(
            "up" in usage(substitute(t["expr"], values)).metrics for t in panel.get("targets", [])
        )
    ]


@pytest.mark.parametrize("name", sorted(UIDS))
def test_a_target_health_panel_shows_each_variant_up_or_down(name: str) -> None:
    """A stopped variant's lines just end: one panel at the top shows it DOWN."""
    dashboard = DASHBOARDS[name]
    panels = target_health_panels(dashboard)
    assert len(panels) == 1, f"{name}: no (or several) panels of Prometheus' `up`"
    (panel,) = panels
    assert panel["type"] == "stat", panel["title"]
    assert panel["gridPos"]["y"] == 0, "at the top of the dashboard"
    assert panel["gridPos"]["w"] == 24, "across the whole width: one tile per target"
    defaults = panel["fieldConfig"]["defaults"]
    mapped: dict[str, dict[str, Any]] = {}
    for mapping in defaults.get("mappings", []):
        if mapping["type"] == "value":
            mapped.update(mapping["options"])
    assert mapped.get("1", {}).get("text") == "UP", mapped
    assert mapped.get("1", {}).get("color") == "green", mapped
    assert mapped.get("0", {}).get("text") == "DOWN", mapped
    assert mapped.get("0", {}).get("color") == "red", mapped
    # A per-variant colour override would paint a DOWN tile in the variant's colour.
    assert not panel["fieldConfig"].get("overrides"), panel["fieldConfig"]["overrides"]
    assert panel["options"]["colorMode"] in {"background", "background_solid", "value"}
    # Now, not a range: each tile is its target's last scrape.
    assert all(t.get("instant") and not t.get("range") for t in panel["targets"])

    # Every job that scrapes a lab service (not Prometheus itself) is shown.
    targets = scrape_targets()
    exprs = {t["refId"]: t["expr"] for t in panel["targets"]}
    jobs = {job for job in targets if any(f'job="{job}"' in e for e in exprs.values())}
    assert jobs == set(targets) - {"prometheus"}, exprs

    # The variants' query names each configured target by its variant, as
    # the other panels do: variant="threads", legend {{variant}}.
    (variant_target,) = [t for t in panel["targets"] if f'job="{VARIANT_JOB}"' in t["expr"]]
    assert variant_target["legendFormat"] == "{{variant}}"
    assert "variant" in usage(variant_target["expr"]).grouped
    (replacement,) = label_replacements(variant_target["expr"])
    destination, template, source, regex = replacement
    assert (destination, source) == ("variant", "instance"), replacement
    named = []
    for instance in targets[VARIANT_JOB]:
        match = re.fullmatch(regex, instance)  # Prometheus anchors it too
        assert match, f"{regex!r} does not match the target {instance}"
        named.append(match.expand(re.sub(r"\$(\d+)", r"\\\1", template)))
    assert sorted(named) == sorted(VARIANTS), named


def datasource_refs(node: Any, path: str = "$") -> list[tuple[str, Any]]:
    """Every value under a "datasource" key, anywhere in the model."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((f"{path}.{key}", value))
            found += datasource_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += datasource_refs(value, f"{path}[{index}]")
    return found


@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_datasource_is_the_provisioned_prometheus(name: str) -> None:
    dashboard = DASHBOARDS[name]
    expected = {"type": "prometheus", "uid": DATASOURCE_UID}
    refs = datasource_refs(dashboard)
    wrong = [(path, ref) for path, ref in refs if ref != expected]
    assert not wrong, wrong
    # Each query names it itself: none relies on Grafana's default datasource.
    queried = [panel for panel in iter_panels(dashboard) if panel["type"] != "row"]
    for panel in queried:
        assert panel.get("datasource") == expected, panel["title"]
        assert all(target.get("datasource") == expected for target in panel["targets"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable.get("datasource") == expected, variable["name"]
    for annotation in dashboard["annotations"]["list"]:
        assert annotation.get("datasource") == expected, annotation["name"]


def test_every_query_reads_only_contract_metrics() -> None:
    queries = all_queries(VARIANTS)
    assert len(queries) >= 20
    problems = [f"{q.dashboard} {q.where}: {p}" for q in queries for p in contract_problems(q.expr)]
    assert not problems, "\n".join(problems)
    used = set().union(*(q.metrics for q in queries))
    histograms = {f"{name}_bucket" for name, metric in CONTRACT.items() if metric.histogram}
    missing = (contract_series().keys() - used) - {
        name.replace("_bucket", suffix) for name in histograms for suffix in ("_sum", "_count")
    }
    assert not missing, f"contract metrics no panel shows: {sorted(missing)}"


def test_the_contract_check_catches_typos_and_foreign_metrics() -> None:
    assert contract_problems('rate(fib_requests_total{variant="threads"}[4s])') == []
    assert contract_problems("rate(fib_request_total[4s])") == [
        "fib_request_total is not in the docs/design.md §4 contract"
    ]
    assert contract_problems('fib_info{varaint="threads"}') == ["fib_info has no label ['varaint']"]
    assert contract_problems("sum by (variant) (process_cpu_seconds_total)")
    assert contract_problems("sum by (code) (fib_requests_total)")  # code is fib_errors_total's
    assert contract_problems("rate(fib_requests_total[4s]")  # unbalanced
    assert contract_problems("fib_request_duration_seconds")  # a histogram has no bare series
    assert contract_problems('{__name__=~"fib_.*"}')
    # Prometheus' `up` has only target labels; a label made by label_replace may be grouped by.
    health = 'min by (variant) (label_replace(up{job="fib"}, "variant", "$1", "instance", "(.+)"))'
    assert contract_problems(health) == []
    assert contract_problems('min by (variant) (up{job="fib"})')
    assert contract_problems('up{variant="threads"}') == ["up has no label ['variant']"]


def test_every_query_parses_after_substitution_for_one_and_for_many_variants() -> None:
    for dashboard in DASHBOARDS.values():
        for variants in (["threads"], list(VARIANTS)):
            for query in dashboard_queries(dashboard, variants):
                usage(query.expr)  # raises on invalid PromQL
                # Nothing of Grafana's left; `$1` is label_replace's own.
                assert not re.search(r"\$(?!\d)|\[\[", query.expr), query.expr
    panel = {"id": 1, "targets": [{"expr": "$nope"}]}
    with pytest.raises(ValueError, match="unknown template variable"):
        dashboard_queries({"uid": "x", "panels": [panel]}, ["a"])


def test_variables() -> None:
    for name, dashboard in DASHBOARDS.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        variant = variables["variant"]
        assert variant["query"] == "label_values(fib_info, variant)", name
        assert (variant["multi"], variant["includeAll"]) == (True, True), name
    size = {v["name"]: v for v in DASHBOARDS["fiblab-variants.json"]["templating"]["list"]}["n"]
    options = {option["text"]: option["value"] for option in size["options"]}
    assert size["current"]["value"] == options["all"] == ".*"
    short, long = options["short (n<20)"], options["long (n>=20)"]
    # Prometheus anchors label regexes, as fullmatch does.
    for n in range(46):
        assert bool(re.fullmatch(short, str(n))) == (n < 20), n
        assert bool(re.fullmatch(long, str(n))) == (n >= 20), n
    assert not re.fullmatch(short, "")
    assert re.fullmatch(options["all"], "")
    # Grafana puts a single-valued variable in verbatim only when it is
    # neither multi-valued nor has "All": the values are regexes themselves.
    assert not size["multi"]
    assert not size["includeAll"]


def test_locust_name_filter_matches_locust_request_names() -> None:
    """Locust names requests "fib(N)": the panels' regex must match them."""
    (query,) = [
        q for q in all_queries(["threads"], n="1?[0-9]") if "locust_requests_total" in q.metrics
    ]
    pattern = re.search(r'name=~"((?:[^"\\]|\\.)*)"', query.expr)
    assert pattern, query.expr
    regex = pattern.group(1).replace("\\\\", "\\")  # the PromQL string's escapes undone
    assert re.fullmatch(regex, "fib(1)")
    assert re.fullmatch(regex, "fib(19)")
    assert not re.fullmatch(regex, "fib(30)")


def test_contract_matches_what_the_services_export() -> None:
    """The fib_* half of CONTRACT is what services/core/metrics.py exports."""
    metrics = Metrics("threads")
    tally = metrics.connection_opened()
    tally.started += 2
    tally.answered(1, None, 0.000_05)
    tally.answered(None, ErrorCode.NOT_AN_INTEGER, 0.000_01)
    registry: CollectorRegistry = metrics.registry
    exported: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    expected = {name: set(labels) for name, labels in contract_series().items()}
    fib = {name: labels for name, labels in expected.items() if name.startswith("fib_")}
    assert exported == fib


# Run apart: importing locust monkey-patches this process (gevent).
EXPORTED_BY_LOCUST = """
import json
from loadtest.swarm.exporter import LatencyTable

table = LatencyTable(users=lambda: ("threads", 3))
table.observe("threads", "fib(1)", 0.000_05, ok=True)
table.observe("threads", "fib(1)", 0.000_05, ok=False)
exported = {}
for family in table.collect():
    for sample in family.samples:
        exported.setdefault(sample.name, set()).update(sample.labels)
print(json.dumps({name: sorted(labels) for name, labels in exported.items()}))
"""


def test_contract_matches_what_the_load_generator_exports() -> None:
    """The locust_* half of CONTRACT is what loadtest/swarm/exporter.py exports."""
    run = subprocess.run(
        [sys.executable, "-c", EXPORTED_BY_LOCUST],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    exported = {name: set(labels) for name, labels in json.loads(run.stdout).items()}
    expected = {name: set(labels) for name, labels in contract_series().items()}
    assert exported == {name: labels for name, labels in expected.items() if "locust" in name}


def test_datasource_provisioning() -> None:
    (path,) = (PROVISIONING_DIR / "datasources").glob("*.y*ml")
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"  # the compose service
    assert source["isDefault"] is True
    assert source["jsonData"]["timeInterval"] == "1s"  # Prometheus scrapes every second
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert scrape["global"]["scrape_interval"] == source["jsonData"]["timeInterval"]


def test_dashboard_provisioning_points_at_the_mounted_files() -> None:
    (path,) = (PROVISIONING_DIR / "dashboards").glob("*.y*ml")
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    container_dir = provider["options"]["path"]
    grafana = compose_grafana()
    bound = mounts(grafana)
    assert bound.get("/etc/grafana/provisioning") == "grafana/provisioning"
    assert Path(bound[container_dir]) == DASHBOARD_DIR.relative_to(ROOT), bound
    env = grafana["environment"]
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == Path(container_dir)
    assert home.name == "fiblab-variants.json"
    assert (DASHBOARD_DIR / home.name).is_file()
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
