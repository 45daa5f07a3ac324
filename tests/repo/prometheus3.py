# tests/repo/prometheus3.py
#
# What Prometheus 3 changed that can bite the lab (its 3.0 migration guide),
# as checks that tests run on the dashboards' PromQL (tests/repo/
# test_prometheus3.py), on the /metrics servers (tests/services/core/
# test_metrics_http.py, tests/loadtest/swarm/test_exporter_content_type.py)
# and on the real Prometheus 3 of the compose stack (tests/e2e/
# test_prometheus.py):
#
# - `le` values are normalised to floats at ingestion (le="1" is stored as
#   "1.0"): a query matching le="1" finds nothing;
# - range selectors leave out their left end: [2s] over 1 s scrapes holds
#   two samples, one when a scrape is late, and rate() or changes() need two;
# - a scrape whose Content-Type is missing or not an exposition format fails
#   (unless fallback_scrape_protocol is set, which the lab does not set).

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import promql_parser
import requests
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"

# What Prometheus 3 asks a target for with its default scrape_protocols
# (OpenMetrics 1.0.0 and 0.0.1, then the text format 1.0.0 and 0.0.4).
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
# The media types Prometheus 3 parses; anything else fails the scrape.
SCRAPE_MEDIA_TYPES = (
    "application/openmetrics-text",
    "application/vnd.google.protobuf",
    "text/plain",
)
# A range must hold two samples even when one scrape of it is late.
SCRAPES_PER_RANGE = 3

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAMETER = re.compile(rf"\s*{_TOKEN}\s*=\s*(?:{_TOKEN}|\"[^\"]*\")\s*")


def scrape_content_type_problem(content_type: str | None) -> str | None:
    """Why Prometheus 3 would fail a scrape answered with this Content-Type
    (its textparse.extractMediaType, without a fallback protocol); None if not."""
    if not content_type:
        return "no Content-Type: Prometheus 3 fails the scrape"
    media_type, *parameters = content_type.split(";")
    media_type = media_type.strip().lower()
    if not re.fullmatch(rf"{_TOKEN}/{_TOKEN}", media_type):
        return f"Content-Type {content_type!r} is not a media type"
    if any(not _PARAMETER.fullmatch(parameter) for parameter in parameters):
        return f"Content-Type {content_type!r} has a malformed parameter"
    if media_type not in SCRAPE_MEDIA_TYPES:
        return f"Content-Type {content_type!r} is no exposition format Prometheus 3 parses"
    return None


def scraped_family_names(url: str, accept: str | None) -> set[str]:
    """Scrape `url` as Prometheus 3 would (`accept`: its Accept header, or
    None for a client that names no format): the Content-Type must be one
    Prometheus 3 parses, OpenMetrics exactly when asked for, and the body
    must parse in the format it names. Returns the metric families' names."""
    response = requests.get(url, headers={"Accept": accept}, timeout=5)
    assert response.status_code == 200, response.status_code
    content_type = response.headers.get("Content-Type")
    assert scrape_content_type_problem(content_type) is None, content_type
    openmetrics = str(content_type).startswith("application/openmetrics-text")
    assert openmetrics == (accept is not None), content_type  # what Prometheus 3 asks first
    parse = openmetrics_families if openmetrics else text_families
    return {family.name for family in parse(response.text)}


def prometheus_le(bound: float) -> str:
    """A bucket bound as Prometheus 3 stores it in `le` (its
    labels.FormatOpenMetricsFloat): Go's shortest %g, exponent below 1e-4
    and from 1e6 on, with ".0" added when that has neither "." nor "e"."""
    if math.isnan(bound):
        return "NaN"
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    if bound == 0:
        return "0.0"
    sign, digits, exponent = Decimal(repr(bound)).normalize().as_tuple()
    assert isinstance(exponent, int)
    scientific = len(digits) + exponent - 1  # d.ddd x 10^scientific
    if -4 <= scientific < 6:
        text = format(Decimal(repr(abs(bound))).normalize(), "f")
    else:
        mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if digits[1:] else "")
        text = f"{mantissa}e{'-' if scientific < 0 else '+'}{abs(scientific):02d}"
    text = ("-" if sign else "") + text
    return text if "." in text or "e" in text else text + ".0"


def scrape_interval() -> timedelta:
    interval = str(yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"])
    match = re.fullmatch(r"(\d+)s", interval)
    if match is None:
        raise ValueError(f"{PROMETHEUS_CONFIG}: scrape_interval {interval!r} is not whole seconds")
    return timedelta(seconds=int(match[1]))


def _tree(expr: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(expr)
    except Exception as error:  # the parser raises its own exception types
        raise ValueError(f"not valid PromQL: {expr!r}: {error}") from error


def range_problems(expr: str, interval: timedelta) -> list[str]:
    """Ranges of `expr` (plain PromQL) that may hold fewer than two samples
    under Prometheus 3's left-open ranges: a range selector shorter than
    SCRAPES_PER_RANGE scrape intervals, a subquery shorter than two steps."""
    problems = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            if node.range < SCRAPES_PER_RANGE * interval:
                problems.append(
                    f"[{node.range.total_seconds():g}s] in {expr!r}: under "
                    f"{SCRAPES_PER_RANGE} scrapes of {interval.total_seconds():g} s"
                )
        elif isinstance(node, promql_parser.SubqueryExpr):
            step = node.step or interval  # no step: the evaluation interval, here the scrape's
            if (node.range or timedelta(0)) < 2 * step:
                problems.append(f"subquery in {expr!r}: its range holds under two steps")

    promql_parser.walk(_tree(expr), visit)
    return problems


def le_problems(expr: str) -> list[str]:
    """Matchers on `le` in `expr` that Prometheus 3's float `le` values may
    not satisfy: an integer written as such (le="1"), or a regex."""
    problems = []

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        for matcher in node.matchers.matchers:
            if matcher.name != "le":
                continue
            if matcher.op not in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.NotEqual):
                problems.append(f"a regex on le in {expr!r}: spell the bound, as Prometheus 3 does")
                continue
            try:
                stored = prometheus_le(float(matcher.value))
            except ValueError:
                problems.append(f"le={matcher.value!r} in {expr!r} is not a number")
                continue
            if matcher.value != stored:
                problems.append(f"le={matcher.value!r} in {expr!r}: Prometheus 3 stores {stored!r}")

    promql_parser.walk(_tree(expr), visit)
    return problems
