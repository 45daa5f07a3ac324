# tests/e2e/test_dashboard_queries.py
#
# Every query of every provisioned Grafana dashboard (panels, annotations,
# the variant variable), evaluated through the real Prometheus of the compose
# stack after real requests reached every variant: each must be accepted
# and return data, for every variant where it is per variant. Grafana itself
# cannot run here, so this is what proves the dashboards show something: a
# query with a typo'd metric or label returns nothing and fails.
#
# The target-health panel (Prometheus' `up`) is checked with a variant really
# stopped: DOWN for it, UP for the others, and back UP once it is started.
#
# Uses the session's one compose stack (the `stack` and `prometheus`
# fixtures of tests/e2e/conftest.py).

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import yaml

from services import VARIANTS
from tests.repo.dashboards import Query, all_queries

from .conftest import LocustLoad
from .stack import PROJECT, ROOT, Prometheus, Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

QUERIES = all_queries(VARIANTS)
# The range queried: back to the stack's start (Prometheus has nothing older),
# so that load other tests made earlier in the session (Locust's) is in it.
LOOKBACK_SECONDS = 20 * 60

# Runs in a container on the stack's network (the e2e stack publishes no
# variant ports). Per variant, one connection: fib(25), 2.5 s of fib(1), a
# second fib(25) and one bad line. The two long requests are two scrapes or
# more apart, so that the long-request panels and annotation (rates and
# changes of the n >= 20 series) have something to show even when one scrape
# misses its 1 s timeout under this load (every variant at once; with 1.5 s
# one run found no long-request rate for gevent), and the bad line gives the
# error panel a non-zero rate. Bounded in time and count.
LOAD = r"""
import json, socket, sys, threading, time

def drive(variant, results):
    with socket.create_connection((variant, 25000), timeout=30) as sock:
        reader = sock.makefile("rb")
        def ask(line):
            sock.sendall(line)
            return reader.readline().decode().strip()
        first = ask(b"25\n")
        short, deadline = 0, time.monotonic() + 2.5
        while time.monotonic() < deadline and short < 100_000:
            if ask(b"1\n") != "1":
                break
            short += 1
        results[variant] = {"long": [first, ask(b"25\n")], "short": short, "bad": ask(b"abc\n")}

results = {}
threads = [threading.Thread(target=drive, args=(v, results)) for v in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join(60)
print(json.dumps(results))
"""


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    locust_variants: frozenset[str]  # variants Locust sent requests to in the window


def query_range(prometheus: Prometheus, expr: str, window: Window) -> list[dict[str, Any]]:
    response = requests.post(
        f"{prometheus.url}/api/v1/query_range",
        data={"query": expr, "start": window.start, "end": window.end, "step": "1"},
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200, f"{expr}\n{body}"
    assert body["status"] == "success", f"{expr}\n{body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def variants_with_data(result: list[dict[str, Any]]) -> set[str]:
    """Variants with at least one finite value (a NaN draws nothing in Grafana)."""
    return {
        series["metric"].get("variant", "")
        for series in result
        if any(math.isfinite(float(value)) for _time, value in series["values"])
    }


@pytest.fixture(scope="module")
def window(stack: Stack, prometheus: Prometheus, locust_load: LocustLoad) -> Window:
    started = time.time()
    run = subprocess.run(
        ["docker", "run", "--rm", "--network", f"{PROJECT}_default", "--entrypoint", "python",
         "fiblab-services:latest", "-c", LOAD, *VARIANTS],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(run.stdout)
    for variant in VARIANTS:
        got = results.get(variant)
        assert got is not None, f"{variant} did not answer: {results}"
        assert got["long"] == ["75025", "75025"], (variant, got)
        assert got["short"] > 0, (variant, got)
        assert got["bad"].startswith("ERR not-an-integer"), (variant, got)
    # Wait until Prometheus has scraped the second long reply of every variant.
    prometheus.wait_for('sum by (variant) (fib_requests_total{n="25"}) >= 2', set(VARIANTS))
    time.sleep(2)  # one more scrape: rates over the last samples settle
    end = time.time()
    probe = Window(started - LOOKBACK_SECONDS, end, frozenset())
    locust = variants_with_data(query_range(prometheus, "locust_requests_total", probe))
    assert locust == set(VARIANTS), "the session's Locust load reached every variant"
    return Window(probe.start, end, frozenset(locust))


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.dashboard} {q.where}" for q in QUERIES])
def test_query_returns_data_for_every_variant(
    query: Query, prometheus: Prometheus, window: Window
) -> None:
    result = query_range(prometheus, query.expr, window)
    if query.kind == "annotation" and query.uses_locust:
        # An event query: Locust's user count changes only while a run
        # starts or stops, which this module does not arrange. Accepted
        # by Prometheus (checked above) is what can be asked of it.
        return
    if query.uses_locust:
        # Locust's series exist only after a Locust run: the stack's other
        # tests may or may not have run one in this session. Each variant
        # Locust loaded must show here; with no Locust run there is nothing
        # to compare with, and the lint test has checked the names.
        expected = set(window.locust_variants)
    elif query.per_variant or query.kind == "variable" or query.every_variant_target:
        expected = set(VARIANTS)
    else:
        expected = set()
        assert variants_with_data(result), f"{query.expr}: no data"
    missing = expected - variants_with_data(result)
    assert not missing, f"{query.where}: no data for {sorted(missing)}\n{query.expr}"


def test_a_typo_in_a_metric_name_shows_no_data(prometheus: Prometheus, window: Window) -> None:
    """The check above can fail: a misspelt metric returns no data at all."""
    assert query_range(prometheus, "rate(fib_request_total[4s])", window) == []
    good = query_range(prometheus, "rate(fib_requests_total[4s])", window)
    assert variants_with_data(good) >= set(VARIANTS)


# The target-health panel, with a variant really down: one variant container
# stopped (as `docker compose stop` stops it), then started again so that the
# stack is whole for the tests after this one.
STOPPED = "coro-threadpool"


def scrape_interval_seconds() -> float:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    interval = str(config["global"]["scrape_interval"])
    seconds = re.fullmatch(r"(\d+)s", interval)
    assert seconds, f"scrape_interval {interval!r}: expected whole seconds"
    return float(seconds.group(1))


def health_queries() -> tuple[list[Query], list[Query]]:
    """The panels' queries of Prometheus' `up`: (per variant, the others)."""
    health = [q for q in QUERIES if q.kind == "panel" and "up" in q.metrics]
    per_variant = [q for q in health if q.every_variant_target]
    return per_variant, [q for q in health if not q.every_variant_target]


def wait_for_values(
    prometheus: Prometheus, expr: str, expected: dict[str, float], timeout: float
) -> dict[str, float]:
    """Poll the instant query until it gives exactly `expected` (label variant -> value)."""
    deadline = time.monotonic() + timeout
    found = prometheus.by_variant(expr)
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found = prometheus.by_variant(expr)
    assert found == expected, f"{expr}: after {timeout:g} s {found}, expected {expected}"
    return found


def test_target_health_shows_a_stopped_variant_down(stack: Stack, prometheus: Prometheus) -> None:
    per_variant, others = health_queries()
    assert per_variant, "no dashboard panel shows Prometheus' `up` per variant"
    assert others, "no dashboard panel shows the load generator's `up`"
    assert {q.dashboard for q in per_variant} == {q.dashboard for q in QUERIES}
    interval = scrape_interval_seconds()
    all_up = dict.fromkeys(VARIANTS, 1.0)
    # A few scrapes' time: a failed scrape is retried at the next interval.
    settle = 10 * interval + 5
    for query in per_variant:
        wait_for_values(prometheus, query.expr, all_up, settle)
    for query in others:
        wait_for_values(prometheus, query.expr, {"": 1.0}, settle)

    stack.compose("stop", STOPPED)
    try:
        one_down = {**all_up, STOPPED: 0.0}
        for query in per_variant:
            wait_for_values(prometheus, query.expr, one_down, settle)
        # Still there scrapes later: DOWN, not gone, while the variant's own
        # series went stale (what every other panel draws: nothing).
        time.sleep(3 * interval)
        for query in per_variant:
            assert prometheus.by_variant(query.expr) == one_down, query.where
        assert STOPPED not in prometheus.by_variant("fib_info")
        assert set(prometheus.by_variant("fib_info")) == set(VARIANTS) - {STOPPED}
        for query in others:
            assert prometheus.by_variant(query.expr) == {"": 1.0}, query.where
    finally:
        stack.compose("start", STOPPED)
        stack.wait_healthy([STOPPED])
    for query in per_variant:
        wait_for_values(prometheus, query.expr, all_up, settle)
