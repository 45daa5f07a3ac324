# tests/e2e/conftest.py
#
# One compose stack for the e2e package: every e2e module (test_compose.py,
# test_dashboard_queries.py, ...) shares it, so the images are built and the
# stack started and removed once, and removed before the tests after e2e run
# (its Prometheus and idle containers would count as other processes' CPU,
# and mark their comparison runs noisy). Removal is checked here,
# after the last e2e test, since a test that took the stack down would leave
# the modules after it without one.

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from services import VARIANTS

from .stack import PROJECT, Prometheus, Stack, require_docker, write_override

# A worker sends Locust's own counts to the master every 3 s, not at a stop.
# A run (2.5 s), then the stop (which answers once the master has seen its
# worker stop: a second at least), span more than 3 s, so one of those
# reports falls in it and Locust's count of each variant is above 0. The
# exporter's counts go every 0.5 s: each run is several points of every
# rate. Every variant in turn, so this is most of the e2e suite's time.
SECONDS_PER_VARIANT = 2.5


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_docker()
    with one_stack_at_a_time():
        yield from started_stack(tmp_path_factory)
    assert_nothing_left_behind()


@contextlib.contextmanager
def one_stack_at_a_time() -> Iterator[None]:
    """Two e2e runs on one Docker daemon (two clones, or CI beside a developer's
    run) would share the project's names and ports, and each take the other's
    stack down: the second waits for the first."""
    with open(Path(tempfile.gettempdir()) / f"{PROJECT}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"\n{PROJECT}: another e2e run holds the stack; waiting for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def started_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(write_override(tmp_path_factory.mktemp("compose")))
    # A leftover of a killed run, one-off `run` containers of a profile included
    # (`down` passes over the services of profiles it is not given).
    remove_containers()
    stack.compose("down", "-v", "--remove-orphans", check=False)
    stack.forget_dangling_images()  # so that test_compose counts this run's images only
    stack.earlier_images = stack.images()
    services = stack.services()
    try:
        # Builds the images and starts every service but Grafana, as users do.
        stack.make("up-no-grafana")
        stack.wait_healthy(services)
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "-t", "10", check=False)


LABEL = f"label=com.docker.compose.project={PROJECT}"


def remove_containers() -> None:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", LABEL], capture_output=True, text=True
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "rm", "-f", *listed], capture_output=True)


def assert_nothing_left_behind() -> None:
    for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        listed = subprocess.run(
            ["docker", *kind, "-q", "--filter", LABEL], capture_output=True, text=True
        ).stdout.split()
        assert not listed, f"after `down -v`, docker {' '.join(kind)} still lists {listed}"


@pytest.fixture(scope="package")
def prometheus(stack: Stack) -> Prometheus:
    return Prometheus(f"http://127.0.0.1:{stack.host_port('prometheus', 9090)}")


@dataclass(frozen=True)
class LocustLoad:
    """Real Locust load, started as a user starts it (the web UI's /swarm)."""

    start: float
    end: float
    requests: dict[str, int]  # Locust's own count per variant


@pytest.fixture(scope="package")
def locust_load(stack: Stack, prometheus: Prometheus) -> LocustLoad:
    """Every variant in turn: a short-request user for a few seconds, then stop."""
    url = f"http://127.0.0.1:{stack.host_port('locust-master', 8089)}"
    deadline = time.monotonic() + 60
    while stats(url).get("worker_count", 0) < 1:
        assert time.monotonic() < deadline, "no Locust worker connected to the master"
        time.sleep(1)
    start = time.time()
    counts = {}
    for variant in VARIANTS:
        # One short user: `sync` serves one connection at a time, so a second
        # user of the same run may never be answered (the talk's point).
        form = {"user_count": 1, "spawn_rate": 1, "host": f"tcp://{variant}"}
        form["user_classes"] = "ShortUser"
        response = requests.post(f"{url}/swarm", data=form, timeout=10)
        response.raise_for_status()
        assert response.json().get("success"), response.text
        time.sleep(SECONDS_PER_VARIANT)
        requests.post(f"{url}/stop", timeout=10).raise_for_status()
        deadline = time.monotonic() + 20
        while (report := stats(url))["state"] not in ("stopped", "ready"):
            assert time.monotonic() < deadline, f"Locust did not stop: {report['state']}"
            time.sleep(0.1)
        counts[variant] = next(
            row["num_requests"] for row in report["stats"] if row["name"] == "Aggregated"
        )
    # Until Prometheus has the exporter's counts of every variant.
    prometheus.wait_for("sum by (variant) (locust_requests_total)", set(VARIANTS))
    time.sleep(2)
    return LocustLoad(start, time.time(), counts)


def stats(url: str) -> dict[str, Any]:
    response = requests.get(f"{url}/stats/requests", timeout=10)
    response.raise_for_status()
    report: dict[str, Any] = response.json()
    return report
