# tests/repo/test_design.py
#
# docs/design.md is the contract, so it must say what the code does: each
# test reads one of its tables (simple markdown: `|` rows, names in
# backticks) and sets it against the real object it describes: the variants,
# the protocol's error codes, the server's settings and their defaults, the
# metrics of a real scrape with their buckets, the comparison's options,
# summary.json fields, bottleneck thresholds and verdict rules, the ports.
# Either side drifting fails here.

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from loadtest.capacity import points
from loadtest.capacity import runner as capacity_runner
from loadtest.check import cli as check_cli
from loadtest.compare import bottleneck, cli
from loadtest.compare.environment import environment
from loadtest.compare.plan import Plan
from loadtest.compare.summary import Environment, LatencyMs, Run, TimelinePoint
from loadtest.compare.verdicts import CHECKS, RULES, SWITCH_LAW_VARIANTS
from loadtest.profile import cli as profile_cli
from loadtest.swarm.bucketing import bucket_ms
from loadtest.swarm.exporter import LatencyTable
from loadtest.swarm.targets import parse_targets
from loadtest.switchinterval import cli as switch_interval_cli
from loadtest.switchinterval.summary import (
    IntervalRecord,
    Recording,
    SweepEnvironment,
    SweepSummary,
)
from loadtest.toolbox import machine
from loadtest.toolbox.servers import Target
from services import VARIANTS, module_name
from services.core.metrics import Metrics
from services.core.protocol import ErrorCode
from services.core.settings import parse_settings

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
SECTIONS = {
    1: "Layout",
    2: "Protocol and settings",
    3: "Variants",
    4: "Metrics",
    5: "Load",
    6: "Comparison",
    7: "Ports",
    8: "Build machine and CI",
}
NUMBER = re.compile(r"\d+(?:\.\d+)?")

Row = list[str]


# --- reading the markdown ------------------------------------------------------


def section(number: int) -> str:
    """The text of `## §N ...` up to the next `## ` heading (subsections included)."""
    text = DESIGN.read_text("utf-8")
    match = re.search(rf"^## §{number} .*?$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/design.md has no '## §{number}' section"
    return match[1]


def tables(text: str) -> Iterator[list[Row]]:
    """Each markdown table in `text` as rows of stripped cells, header first."""
    rows: list[Row] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                rows.append(cells)
        elif rows:
            yield rows
            rows = []


def table(number: int, first_header: str) -> list[Row]:
    """The body rows of every table in §N whose first column is headed `first_header`."""
    found = [rows[1:] for rows in tables(section(number)) if rows[0][0] == first_header]
    assert found, f"§{number} has no table headed {first_header!r}"
    return [row for rows in found for row in rows]


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def named_rows(number: int, first_header: str, prefix: str = "") -> dict[str, Row]:
    """Rows keyed by the backticked name in their first cell (those starting with prefix)."""
    rows: dict[str, Row] = {}
    for row in table(number, first_header):
        names = backticked(row[0])
        assert names, f"§{number}: a row without a `name` in its first cell: {row}"
        for name in names:
            if name.startswith(prefix):
                assert name not in rows, f"§{number} lists {name!r} twice"
                rows[name] = row
    return rows


def paragraph(number: int, start: str, end: str) -> str:
    text = section(number)
    match = re.search(re.escape(start) + r"(.*?)" + re.escape(end), text, re.DOTALL)
    assert match, f"§{number}: no text from {start!r} to {end!r}"
    return match[1]


def numbers(text: str) -> set[float]:
    return {float(figure) for figure in NUMBER.findall(text)}


def scraped(registry: CollectorRegistry) -> dict[str, tuple[str, set[str], list[float]]]:
    """A real scrape: exposed name -> (type, label names, histogram bounds without +Inf)."""
    families: dict[str, tuple[str, set[str], list[float]]] = {}
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        # the parser names a counter without its `_total`
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        bounds = sorted(
            {
                float(sample.labels["le"])
                for sample in family.samples
                if sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf"
            }
        )
        families[name] = (family.type, labels, bounds)
    return families


def check_metric_table(
    rows: dict[str, Row], real: dict[str, tuple[str, set[str], list[float]]]
) -> None:
    assert set(rows) == set(real), "§4 and a real scrape disagree on the metric names"
    for name, (kind, labels, _bounds) in real.items():
        row = rows[name]
        assert row[1] == kind, f"§4 says {name} is a {row[1]}; it is a {kind}"
        assert set(backticked(row[2])) == labels, f"§4: labels of {name}"


# --- the tests ------------------------------------------------------------------


def test_sections_are_numbered_as_code_comments_cite_them() -> None:
    headings = re.findall(r"^## §(\d+) (.+)$", DESIGN.read_text("utf-8"), re.MULTILINE)
    assert [(int(number), title) for number, title in headings] == list(SECTIONS.items())
    comparison = section(6)
    for subsection in ("### §6.1 Long-scenario stages", "### §6.2 Noisy runs"):
        assert subsection in comparison


def test_the_variant_table_is_services_variants_in_order_with_their_modules() -> None:
    rows = table(3, "variant")
    assert [backticked(row[0])[0] for row in rows] == list(VARIANTS)
    for row in rows:
        variant, module = backticked(row[0])[0], backticked(row[1])[0]
        assert module == module_name(variant).replace(".", "/") + ".py"
        assert (ROOT / module).is_file(), f"§3 names {module}, which does not exist"


def test_every_error_code_and_whether_it_closes_the_connection() -> None:
    rows = named_rows(2, "code")
    assert set(rows) == {error.code for error in ErrorCode}
    for error in ErrorCode:
        connection = rows[error.code][-1]
        assert connection == ("closed" if error.closes else "stays open"), error.code


def test_every_setting_with_its_flag_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--help"], environ={}, variants=VARIANTS)
    help_text = capsys.readouterr().out
    variables = set(re.findall(r"\[(FIB_[A-Z_]+)\]", help_text))
    defaults = parse_settings([VARIANTS[0]], environ={})
    rows = named_rows(2, "variable", prefix="FIB_")
    assert set(rows) == variables, "§2's settings table and `python -m services --help` differ"
    for variable, (_name, flag, default, _meaning) in rows.items():
        field = variable.removeprefix("FIB_").lower()
        assert backticked(flag) == ["--" + field.replace("_", "-")], variable
        assert re.search(rf"^\s*{backticked(flag)[0]}\b", help_text, re.MULTILINE), flag
        documented = (backticked(default) or [""])[0]  # no backticks: empty
        actual = getattr(defaults, field)
        if isinstance(actual, bool):  # an on|off setting
            assert documented == ("on" if actual else "off"), variable
        elif isinstance(actual, str):
            assert documented == actual, variable
        else:
            assert float(documented) == actual, f"§2 says {variable} defaults to {documented}"


def test_every_fib_metric_of_a_real_scrape_with_its_type_labels_and_buckets() -> None:
    metrics = Metrics("threads", cpu_source="process")
    tally = metrics.connection_opened()
    tally.started += 2  # two lines read: one answered, one refused
    tally.answered(1, None, 0.0002)
    tally.answered(None, ErrorCode.NOT_AN_INTEGER, 0.0001)
    metrics.connection_closed(tally)
    real = scraped(metrics.registry)
    check_metric_table(named_rows(4, "metric", prefix="fib_"), real)

    listed = paragraph(4, "**Duration buckets**", "\n- ")
    bounds = [float(text) for text in backticked(listed) if text != "+Inf"]
    assert bounds == real["fib_request_duration_seconds"][2], "§4's duration buckets"
    assert "`+Inf`" in listed


def test_every_locust_metric_of_the_masters_exporter() -> None:
    latency = LatencyTable(users=lambda: ("threads", 1))
    latency.observe("threads", "fib(1)", 0.0001, ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(latency)
    check_metric_table(named_rows(4, "metric", prefix="locust_"), scraped(registry))


def test_locusts_response_time_buckets() -> None:
    """§5's bucket table: each example (`time` → `key`) is what bucket_ms gives."""
    examples = 0
    for row in table(5, "response time"):
        pairs = re.findall(r"`([\d.]+)` → `([\d.]+)`", row[2])
        assert pairs, f"§5: a bucket row without an example: {row}"
        for milliseconds, key in pairs:
            assert bucket_ms(float(milliseconds)) == float(key), row
            examples += 1
    assert examples >= 4


def test_every_runner_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    # each option's own line in the help (its text may wrap, at a hyphen too)
    listed = re.findall(r"^ {2}(?:-\w, )?(--[a-z][a-z-]*)", capsys.readouterr().out, re.MULTILINE)
    options = set(listed) - {"--help"}
    assert set(named_rows(6, "option")) == options


def test_every_summary_field_the_code_defines_or_writes() -> None:
    plan = Plan(
        variants=list(VARIANTS), scenarios=["short"], duration=8.0, repeat=2, warmup=1.0,
        short_n=1, long_n=30, short_users=1, rate=0.0,
    )  # fmt: skip
    written = environment(plan, "local", 0.5).keys()
    fields = set(written)
    for schema in (Environment, Run, LatencyMs, TimelinePoint):
        fields |= schema.__required_keys__ | schema.__optional_keys__
    documented = set(backticked(section(6)))
    missing = sorted(fields - documented)
    assert not missing, f"summary.json fields §6 does not describe: {missing}"


def test_the_bottleneck_thresholds() -> None:
    text = paragraph(6, "**Bottleneck.**", "**Verdicts**")
    thresholds = {
        bottleneck.ACHIEVED_SHARE,
        bottleneck.LOADGEN_SATURATED_PERCENT,
        bottleneck.SERVER_SPARE_CORES,
        bottleneck.CLIENT_SHARE_FACTOR,
    }
    assert thresholds <= numbers(text), f"§6's bottleneck rule should state {thresholds}"


def test_every_verdict_rule_with_its_variants_and_thresholds() -> None:
    rows = named_rows(6, "rule")
    assert set(rows) == set(RULES)
    rule_texts: dict[str, str] = {key: rule.test for key, rule in RULES.items()}
    for check, variants in CHECKS:
        key = check.__name__.replace("_", "-")  # long_serialised judges `long-serialised`
        _name, listed, holds = rows[key]
        assert backticked(listed) == list(variants), f"§6: the variants of {key}"
        thresholds = numbers(rule_texts[key])  # the rule's own text, from its constants
        assert thresholds <= numbers(holds), f"§6 should give {key}'s bounds {thresholds}"


def test_the_published_ports() -> None:
    rows = table(7, "port")
    # what -> port: a backticked variant name, or words (Prometheus, Grafana ...)
    documented = {
        backticked(what)[0] if "`" in what else what: int(backticked(port)[0])
        for port, what in rows
    }
    local = parse_targets("local")
    assert {v: documented[v] for v in VARIANTS} == {v: port for v, (_h, port) in local.items()}

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    published: dict[int, str] = {}
    for service, spec in compose["services"].items():
        for mapping in spec.get("ports", []):
            host, port, _container = str(mapping).split(":")
            assert host == "127.0.0.1", f"{service} publishes {mapping}: §7 says 127.0.0.1 only"
            published[int(port)] = service
    assert set(published) == set(documented.values()), "§7 and docker-compose.yml's ports"
    for variant in VARIANTS:
        assert published[documented[variant]] == variant


def test_every_capacity_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        capacity_runner.main(["--help"])
    listed = re.findall(r"^ {2}(?:-\w, )?(--[a-z][a-z-]*)", capsys.readouterr().out, re.MULTILINE)
    documented = set()
    for row in table(6, "capacity option"):
        documented |= set(backticked(row[0]))
    assert set(listed) - {"--help"} == documented


def test_every_capacity_summary_field_is_described() -> None:
    # what points.figures and the runner's environment() really write
    snapshot = machine.Snapshot(at=0.0, cpu=None, own_cpu=0.0, load=None)
    first = points.End(0.0, {}, {}, {1: 0.0}, snapshot)
    last = points.End(2.0, {}, {}, {1: 0.5}, snapshot)
    long_client = points.LongClient(Target("threads", "127.0.0.1", 1, None), 30)
    point = points.figures(
        first, last, kind="rates-convoy", variant="threads", connections=4, rate=100.0,
        short_n=1, long_client=long_client,
    )  # fmt: skip
    plan = capacity_runner.CapacityPlan(
        variants=["threads"], parts=["sweep"], connections=[1], rate_shares=[1.0],
        processes=1, warmup=1.0, seconds=1.0, rate_seconds=1.0, rate_warmup=0.5, long_n=30,
    )  # fmt: skip
    written = {*point, "rate_share", *capacity_runner.environment(plan, machine.NOT_SAMPLED)}
    text = section(6)
    missing = sorted(name for name in written if f"`{name}`" not in text)
    assert not missing, f"capacity summary fields §6.4 does not describe: {missing}"


def check_options_with_defaults(help_text: str, header: str, defaults: dict[str, Any]) -> None:
    """A command's options (its --help) are the rows of §6's table headed `header`, with
    the defaults it gives (`defaults`: its parsed namespace)."""
    listed = re.findall(r"^ {2}(?:-\w, )?(--[a-z][a-z-]*)", help_text, re.MULTILINE)
    rows = table(6, header)
    documented = {option for row in rows for option in backticked(row[0])}
    assert set(listed) - {"--help"} == documented
    for row in rows:
        (option, *more), default = backticked(row[0]), backticked(row[1])
        actual = defaults[option.removeprefix("--").replace("-", "_")]
        if more or not default or actual is None:
            continue  # several options in a row, or a default the code computes (--out)
        if NUMBER.fullmatch(default[0]):
            assert float(actual) == float(default[0]), option
        else:
            assert actual == default[0], option


def test_every_switch_interval_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        switch_interval_cli.main(["--help"])
    defaults = vars(switch_interval_cli.build_parser().parse_args([]))
    check_options_with_defaults(capsys.readouterr().out, "switch-interval option", defaults)


def test_every_profile_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        profile_cli.main(["--help"])
    defaults = vars(profile_cli.build_parser().parse_args(["--variant", "threads"]))
    check_options_with_defaults(capsys.readouterr().out, "profile option", defaults)


def test_every_check_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        check_cli.main(["--help"])
    defaults = vars(check_cli.build_parser().parse_args(["tcp://127.0.0.1:25000"]))
    check_options_with_defaults(capsys.readouterr().out, "check option", defaults)


def test_every_switch_interval_summary_field_is_described() -> None:
    fields: set[str] = set()
    for schema in (SweepSummary, SweepEnvironment, IntervalRecord, Recording):
        fields |= schema.__required_keys__ | schema.__optional_keys__
    text = section(6)
    # a field by its `name`, or by its "name" in the skeleton of the whole file
    missing = sorted(name for name in fields if f"`{name}`" not in text and f'"{name}"' not in text)
    assert not missing, f"switch-interval summary fields §6.7 does not describe: {missing}"


def test_the_switch_interval_law_with_its_variants_and_bounds() -> None:
    _name, listed, holds = named_rows(6, "rule")["switch-interval law"]
    assert backticked(listed) == list(SWITCH_LAW_VARIANTS)
    bounds = numbers(RULES["switch-interval law"].test)  # from the rule's constants
    assert bounds <= numbers(holds), f"§6 should give the law's bounds {bounds}"
