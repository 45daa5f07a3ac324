# tests/e2e/test_prometheus.py
#
# The stack's real Prometheus is a 3.x, the one the stack asked for (compose
# pins the 3.13 LTS; the build machine runs its 3.5.3: docs/design.md §8),
# started with compose's flags, and the Prometheus 3 changes that can bite
# the lab do not (tests/repo/prometheus3.py): every target is scraped with
# no fallback for a missing Content-Type, each /metrics answers Prometheus
# 3's Accept with a Content-Type it parses, `le` holds the design's buckets
# as Prometheus 3 spells them, and no label value holds a newline (which
# `.` in a regex now matches). Every dashboard query runs on it in
# tests/e2e/test_dashboard_queries.py.
#
# Uses the session's one compose stack (tests/e2e/conftest.py).

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from typing import Any

import pytest
import requests
import yaml

from loadtest.swarm.exporter import BUCKETS as CLIENT_BUCKETS
from services import VARIANTS
from services.core.metrics import DURATION_BUCKETS
from tests.repo.prometheus3 import (
    PROMETHEUS_3_ACCEPT,
    PROMETHEUS_CONFIG,
    prometheus_le,
    scrape_content_type_problem,
)

from .conftest import LocustLoad
from .stack import PROJECT, PROMETHEUS_VERSION, ROOT, Prometheus, Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def api(prometheus: Prometheus, path: str, **params: Any) -> Any:
    response = requests.get(f"{prometheus.url}/api/v1/{path}", params=params, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


def duration_seconds(text: str) -> float:
    """A Prometheus duration (`7d`, `1w`, `1h30m`) in seconds."""
    parts = _DURATION.findall(text)
    assert parts, f"not a Prometheus duration: {text!r}"
    assert "".join(n + u for n, u in parts) == text, f"not a Prometheus duration: {text!r}"
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def test_prometheus_is_the_3x_the_stack_asked_for(stack: Stack, prometheus: Prometheus) -> None:
    version = api(prometheus, "status/buildinfo")["version"]
    assert version.split(".")[0] == "3", f"Prometheus {version}: the lab needs 3.x"
    release = version.split("+")[0]  # a distribution's build suffix (3.5.3+ds) aside
    assert f"v{release}" == PROMETHEUS_VERSION, f"asked for {PROMETHEUS_VERSION}, runs {version}"


def test_prometheus_runs_with_compose_s_flags(stack: Stack, prometheus: Prometheus) -> None:
    """Each flag of compose's command is one Prometheus 3 knows and took
    (an unknown flag stops it: it would not be healthy)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["prometheus"]["command"]
    running = api(prometheus, "status/flags")
    for argument in command:
        name, _, value = argument.removeprefix("--").partition("=")
        assert name in running, f"Prometheus {PROMETHEUS_VERSION} has no flag --{name}"
        if name.endswith(".time"):  # a duration, which it writes in its own units (7d: 1w)
            assert duration_seconds(running[name]) == duration_seconds(value), name
        else:
            assert running[name] == value, name


def test_every_target_is_scraped_with_no_fallback_protocol(
    stack: Stack, prometheus: Prometheus
) -> None:
    """Prometheus 3 fails a scrape without a valid Content-Type unless the
    config names a fallback, which ours does not (tests/repo/test_prometheus3.py)."""
    config = PROMETHEUS_CONFIG.read_text()
    assert "fallback_scrape_protocol" not in config
    expected = {f"{v}:9100" for v in VARIANTS} | {"locust-master:9646", "localhost:9090"}
    deadline = time.monotonic() + 30
    while True:
        targets = api(prometheus, "targets", state="active")["activeTargets"]
        health = {t["labels"]["instance"]: (t["health"], t["lastError"]) for t in targets}
        if all(health.get(target) == ("up", "") for target in expected):
            break
        assert time.monotonic() < deadline, f"not every target scraped: {health}"
        time.sleep(1)
    assert set(health) == expected


# Asks every /metrics of the stack, from inside its network, as Prometheus 3
# asks (its Accept header): the Content-Type and the first bytes of each reply.
ASK = """
import json, sys, urllib.request
found = {}
for target in sys.argv[2:]:
    request = urllib.request.Request(f"http://{target}/metrics", headers={"Accept": sys.argv[1]})
    with urllib.request.urlopen(request, timeout=10) as reply:
        found[target] = [reply.headers.get("Content-Type"), reply.read(200).decode()]
print(json.dumps(found))
"""


def test_every_metrics_endpoint_answers_prometheus_3_with_a_content_type_it_parses(
    stack: Stack, locust_load: LocustLoad
) -> None:
    targets = [*(f"{v}:9100" for v in VARIANTS), "locust-master:9646"]
    run = subprocess.run(
        ["docker", "run", "--rm", "--network", f"{PROJECT}_default", "--entrypoint", "python",
         "fiblab-services:latest", "-c", ASK, PROMETHEUS_3_ACCEPT, *targets],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    found = json.loads(run.stdout)
    problems = {
        target: problem
        for target, (content_type, _start) in found.items()
        if (problem := scrape_content_type_problem(content_type))
    }
    assert not problems, problems
    assert set(found) == set(targets)
    for target, (_content_type, start) in found.items():
        assert start.startswith("# HELP "), (target, start)


@pytest.mark.parametrize(
    ("series", "bounds"),
    [
        ("fib_request_duration_seconds_bucket", DURATION_BUCKETS),
        ("locust_request_duration_seconds_bucket", CLIENT_BUCKETS),
    ],
)
def test_le_holds_the_design_s_buckets_as_prometheus_3_writes_them(
    prometheus: Prometheus, locust_load: LocustLoad, series: str, bounds: tuple[float, ...]
) -> None:
    """Prometheus 3 stores le="1" as "1.0": a query that names a bound must
    spell it so (tests/repo/test_prometheus3.py holds the dashboards to it)."""
    stored = {r["metric"]["le"] for r in prometheus.query(f"count by (le) ({series})")}
    assert stored == {prometheus_le(bound) for bound in (*bounds, math.inf)}


def test_no_label_value_holds_a_newline(prometheus: Prometheus, locust_load: LocustLoad) -> None:
    """Prometheus 3's `.` matches a newline: the dashboards' regexes (`.*`,
    `(.+):[0-9]+`, `fib\\(...\\)`) match as before while no value holds one."""
    found = api(
        prometheus, "series", **{"match[]": '{job=~"fib|locust"}'}, start=locust_load.start - 60
    )
    assert {s["job"] for s in found} == {"fib", "locust"}
    with_newline = [s for s in found if any("\n" in value for value in s.values())]
    assert not with_newline, with_newline[:5]
