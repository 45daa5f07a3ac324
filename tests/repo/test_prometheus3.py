# tests/repo/test_prometheus3.py
#
# The lab on Prometheus 3 (docs/design.md §8), without a Prometheus: every
# query of every dashboard against the 3.x changes that can break a query
# (tests/repo/prometheus3.py), the scrape config without a fallback for a
# missing Content-Type, and the image compose and Kubernetes pin. The real
# Prometheus 3 of the compose stack runs them in tests/e2e/test_prometheus.py.

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml

from services import VARIANTS
from tests.repo.dashboards import all_queries
from tests.repo.prometheus3 import (
    PROMETHEUS_CONFIG,
    ROOT,
    le_problems,
    prometheus_le,
    range_problems,
    scrape_content_type_problem,
    scrape_interval,
)

QUERIES = all_queries(VARIANTS)
# The 3.13 long-term-support line: compose's default, and what Kubernetes runs.
LTS_IMAGE = re.compile(r"prom/prometheus:v3\.13\.\d+")


def test_every_dashboard_range_holds_two_scrapes_even_with_one_late() -> None:
    problems = [p for q in QUERIES for p in range_problems(q.expr, scrape_interval())]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("expr", "bad"),
    [
        ("rate(fib_requests_total[2s])", True),  # the annotations' range before Prometheus 3
        ("changes(locust_users[2s]) > 0", True),
        ("max_over_time(rate(fib_requests_total[4s])[1s:1s])", True),
        ("rate(fib_requests_total[3s])", False),
        ("max_over_time(rate(fib_requests_total[4s])[2s:1s])", False),
    ],
)
def test_the_range_check_sees_a_range_too_short(expr: str, bad: bool) -> None:
    assert bool(range_problems(expr, timedelta(seconds=1))) is bad


def test_no_dashboard_query_matches_le_as_prometheus_2_spelt_it() -> None:
    problems = [p for q in QUERIES for p in le_problems(q.expr)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("expr", "bad"),
    [
        ('fib_request_duration_seconds_bucket{le="1"}', True),
        ('fib_request_duration_seconds_bucket{le="0.1", n="1"}', False),
        ('fib_request_duration_seconds_bucket{le="1.0"}', False),
        ('fib_request_duration_seconds_bucket{le="120"}', True),
        ('fib_request_duration_seconds_bucket{le="5e-05"}', False),
        ('fib_request_duration_seconds_bucket{le="0.00005"}', True),
        ('fib_request_duration_seconds_bucket{le=~"1|2.5"}', True),
        ('fib_request_duration_seconds_bucket{le="+Inf"}', False),
        ('fib_request_duration_seconds_bucket{le="one"}', True),
    ],
)
def test_the_le_check_sees_integers_and_regexes(expr: str, bad: bool) -> None:
    assert bool(le_problems(expr)) is bad


@pytest.mark.parametrize(
    ("bound", "stored"),
    [(1.0, "1.0"), (120.0, "120.0"), (2.5, "2.5"), (5e-05, "5e-05"), (0.0001, "0.0001"),
     (1.5e-05, "1.5e-05"), (1e6, "1e+06"), (123456.0, "123456.0"), (float("inf"), "+Inf")],
)  # fmt: skip
def test_le_values_are_written_as_prometheus_3_writes_them(bound: float, stored: str) -> None:
    assert prometheus_le(bound) == stored


@pytest.mark.parametrize(
    ("content_type", "fails"),
    [
        (None, True),
        ("", True),
        ("text/html; charset=utf-8", True),
        ("text/plain; version=0.0.4; charset=utf-8", False),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8", False),
        ("text/plain; version", True),
        ("plain", True),
    ],
)
def test_the_content_type_check_is_prometheus_3_s(content_type: str | None, fails: bool) -> None:
    assert bool(scrape_content_type_problem(content_type)) is fails


def test_the_scrape_config_needs_no_fallback_protocol() -> None:
    """Every target sends its Content-Type (the tests above and
    tests/e2e/test_prometheus.py): no fallback_scrape_protocol hides one that
    stopped, and scrape_protocols are Prometheus 3's defaults."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for where in (config["global"], *config["scrape_configs"]):
        assert "fallback_scrape_protocol" not in where, where
        assert "scrape_protocols" not in where, where
    assert not re.search(r"holt_winters|fallback_scrape_protocol", PROMETHEUS_CONFIG.read_text())


def test_compose_and_kubernetes_run_the_lts_line() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["prometheus"]["image"]
    default = re.fullmatch(r"prom/prometheus:\$\{FIB_PROMETHEUS_VERSION:-(v[^}]+)\}", image)
    assert default, f"compose's Prometheus image {image!r}: a FIB_PROMETHEUS_VERSION default"
    assert LTS_IMAGE.fullmatch(f"prom/prometheus:{default[1]}"), image
    manifest = (ROOT / "deploy" / "k8s" / "base" / "prometheus.yaml").read_text()
    assert re.findall(r"image: (\S+)", manifest) == [f"prom/prometheus:{default[1]}"]


def test_the_readme_and_design_name_the_version_the_tests_ran() -> None:
    """Compose pins 3.13, the build machine tests 3.5.3: both documents say
    which one was tested (tests/e2e/stack.py asserts it is the one running)."""
    from tests.e2e.stack import TESTED_PROMETHEUS_VERSION

    for document in ("README.md", "docs/design.md"):
        text = (ROOT / document).read_text()
        assert f"prom/prometheus:{TESTED_PROMETHEUS_VERSION}" in text, document
        assert f"FIB_PROMETHEUS_VERSION={TESTED_PROMETHEUS_VERSION}" in text, document
    readme = " ".join((ROOT / "README.md").read_text().split())  # lines joined
    assert f"the tests ran against Prometheus {TESTED_PROMETHEUS_VERSION[1:]}" in readme
