# tests/repo/dashboards.py
#
# The lab's provisioned Grafana dashboards as data for tests: every query of
# every panel, template variable and annotation, with Grafana's template
# variables substituted as Grafana would substitute them for a chosen set of
# variants, and the metric names and labels each query uses (parsed with
# promql-parser, a real PromQL parser). Used by the lint test
# (tests/repo/test_dashboards.py) and by the e2e test that evaluates every query
# against the real Prometheus (tests/e2e/test_dashboard_queries.py).

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import promql_parser

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"
DATASOURCE_UID = "fiblab-prometheus"

# What Grafana puts in for its built-in variables with the provisioned
# datasource (timeInterval 1s) at the default 5-minute range:
# $__interval is floored at 1 s, $__rate_interval = max(4 x 1 s, 1 s + 1 s).
BUILTIN_VALUES = {"__interval": "1s", "__rate_interval": "4s", "__range": "5m"}


@dataclass(frozen=True)
class Metric:
    labels: frozenset[str]
    histogram: bool = False


def _metric(*labels: str, histogram: bool = False) -> Metric:
    return Metric(frozenset(labels), histogram)


# docs/design.md §4: the only names dashboards may use (counters with their _total).
CONTRACT: dict[str, Metric] = {
    "fib_requests_total": _metric("variant", "n", "outcome"),
    "fib_request_duration_seconds": _metric("variant", "n", histogram=True),
    "fib_requests_in_progress": _metric("variant"),
    "fib_connections_active": _metric("variant"),
    "fib_connections_total": _metric("variant"),
    "fib_errors_total": _metric("variant", "code"),
    "fib_cpu_seconds_total": _metric("variant"),
    "fib_resident_memory_bytes": _metric("variant"),
    "fib_info": _metric("variant", "python", "implementation", "gil"),
    "fib_gil_wait_seconds_total": _metric("variant"),
    "fib_gil_probe_seconds_total": _metric("variant"),
    "locust_requests_total": _metric("variant", "name", "outcome"),
    "locust_request_duration_seconds": _metric("variant", "name", histogram=True),
    "locust_users": _metric("variant"),
    # Prometheus' own, one per scrape target (docs/design.md §4, Scraping): 1
    # when the last scrape succeeded, 0 when it failed. Only its target labels.
    "up": _metric(),
}

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
# prometheus/prometheus.yml: the scrape job of the variants' /metrics.
VARIANT_JOB = "fib"


def contract_series() -> dict[str, frozenset[str]]:
    """Every series name of the contract -> its labels (histograms expanded)."""
    series: dict[str, frozenset[str]] = {}
    for name, metric in CONTRACT.items():
        if metric.histogram:
            series[f"{name}_bucket"] = metric.labels | {"le"}
            series[f"{name}_sum"] = metric.labels
            series[f"{name}_count"] = metric.labels
        else:
            series[name] = metric.labels
    return series


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model, for every *.json in `directory`."""
    dashboards = {}
    for path in sorted(directory.glob("*.json")):
        try:
            dashboards[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from error
    if not dashboards:
        raise ValueError(f"no dashboard JSON in {directory} (run `make dashboards`)")
    return dashboards


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


QueryKind = Literal["panel", "variable", "annotation"]


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    kind: QueryKind
    where: str  # e.g. `panel 6 "Server req/s" A`, for messages
    raw: str  # as in the dashboard
    expr: str  # variables substituted: plain PromQL
    instant: bool = False

    @property
    def per_variant(self) -> bool:
        """Filtered by the variant variable: one result per chosen variant expected."""
        return "$variant" in self.raw or "${variant" in self.raw

    @property
    def every_variant_target(self) -> bool:
        """Reads the variants' scrape health (`up` of job fib): one result per
        configured variant expected, whatever the variant filter."""
        return "up" in self.metrics and f'job="{VARIANT_JOB}"' in self.expr

    @property
    def metrics(self) -> set[str]:
        return usage(self.expr).metrics

    @property
    def uses_locust(self) -> bool:
        return any(name.startswith("locust_") for name in self.metrics)


# A variable's name starts with a letter or _: `$1` is label_replace's capture
# reference, which Grafana leaves as it is (no variable has that name).
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::\w+)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")
# Grafana's regex escaping of a multi-value variable's values, written for a
# PromQL string literal (so the backslash is doubled).
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|\\]")


def variable_values(
    dashboard: dict[str, Any], variants: Sequence[str], **chosen: str
) -> dict[str, str]:
    """The text Grafana puts in for each template variable of `dashboard`:
    `variant` as the regex alternation of `variants` (Grafana's form for a
    multi-value variable in a PromQL regex), every other variable its
    `chosen` value or else its current (default) value."""
    if not variants:
        raise ValueError("no variants to substitute for $variant")
    values = dict(BUILTIN_VALUES)
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if name in chosen:
            values[name] = chosen[name]
        elif name == "variant":
            escaped = [_REGEX_SPECIAL.sub(r"\\\\\g<0>", v) for v in variants]
            values[name] = escaped[0] if len(escaped) == 1 else f"({'|'.join(escaped)})"
        else:
            current = variable.get("current", {}).get("value")
            if not isinstance(current, str):
                raise ValueError(f"variable {name!r} has no single current value: {current!r}")
            values[name] = current
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise ValueError(f"unknown template variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$")


def variable_selector(query: str) -> tuple[str, str]:
    """`label_values(selector, label)` -> (selector, label)."""
    match = _LABEL_VALUES.match(query)
    if match is None or match.group(1) is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return match.group(1), match.group(2)


def dashboard_queries(
    dashboard: dict[str, Any], variants: Sequence[str], **chosen: str
) -> list[Query]:
    """Every query of `dashboard`, variables substituted for `variants`.

    A query variable contributes its series selector (what label_values
    reads); annotations and panel targets their expressions.
    """
    values = variable_values(dashboard, variants, **chosen)
    uid = dashboard["uid"]
    queries = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            selector, _label = variable_selector(_query_text(variable["query"]))
            where = f"variable {variable['name']}"
            queries.append(Query(uid, "variable", where, selector, substitute(selector, values)))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            raw = annotation["expr"]
            where = f"annotation {annotation['name']!r}"
            queries.append(Query(uid, "annotation", where, raw, substitute(raw, values)))
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            raw = target["expr"]
            where = f"panel {panel['id']} {panel.get('title')!r} {target.get('refId')}"
            instant = bool(target.get("instant")) and not target.get("range")
            queries.append(Query(uid, "panel", where, raw, substitute(raw, values), instant))
    return queries


def all_queries(variants: Sequence[str], **chosen: str) -> list[Query]:
    """Every query of every provisioned dashboard."""
    return [
        query
        for dashboard in load_dashboards().values()
        for query in dashboard_queries(dashboard, variants, **chosen)
    ]


def _query_text(query: str | dict[str, Any]) -> str:
    # Grafana 10+ may store a variable query as {"query": "...", "refId": ...}.
    return query if isinstance(query, str) else str(query["query"])


@dataclass
class Usage:
    """What one PromQL expression reads."""

    metrics: set[str] = field(default_factory=set)
    # metric -> label names it is matched on
    matched: dict[str, set[str]] = field(default_factory=dict)
    # label names in by (...) / without (...) of aggregations
    grouped: set[str] = field(default_factory=set)
    selectors_without_name: list[str] = field(default_factory=list)
    # label names label_replace(...) writes (so that a query may group by them)
    created: set[str] = field(default_factory=set)


def usage(expr: str) -> Usage:
    """Parse `expr` (plain PromQL, no template variables) and say what it reads.

    Raises ValueError when it is not valid PromQL.
    """
    try:
        tree = promql_parser.parse(expr)
    except Exception as error:  # the parser raises its own exception types
        raise ValueError(f"not valid PromQL: {expr!r}: {error}") from error
    found = Usage()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names = {m.value for m in node.matchers.matchers if m.name == "__name__"}
            name = node.name or (names.pop() if len(names) == 1 else None)
            if name is None:
                found.selectors_without_name.append(str(node))
                return
            found.metrics.add(name)
            labels = {m.name for m in node.matchers.matchers if m.name != "__name__"}
            found.matched.setdefault(name, set()).update(labels)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            found.grouped.update(node.modifier.labels)
        elif isinstance(node, promql_parser.Call) and node.func.name == "label_replace":
            destination = node.args[1]
            if isinstance(destination, promql_parser.StringLiteral):
                found.created.add(destination.val)

    promql_parser.walk(tree, visit)
    return found


def contract_problems(expr: str) -> list[str]:
    """Why `expr` is not a query over docs/design.md §4's metrics (empty when it is)."""
    try:
        found = usage(expr)
    except ValueError as error:
        return [str(error)]
    series = contract_series()
    problems = [f"selector without a metric name: {s}" for s in found.selectors_without_name]
    if not found.metrics:
        problems.append(f"reads no metric: {expr!r}")
    known_labels: set[str] = set(TARGET_LABELS)
    for name in sorted(found.metrics):
        if name not in series:
            problems.append(f"{name} is not in the docs/design.md §4 contract")
            continue
        known_labels |= series[name]
        unknown = found.matched.get(name, set()) - series[name] - TARGET_LABELS
        if unknown:
            problems.append(f"{name} has no label {sorted(unknown)}")
    unknown_groups = found.grouped - known_labels - found.created
    if found.metrics <= series.keys() and unknown_groups:
        problems.append(f"grouped by labels no metric has: {sorted(unknown_groups)}")
    return problems
