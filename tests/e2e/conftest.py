# tests/e2e/conftest.py
#
# One compose stack for the whole e2e session: every e2e module
# (test_compose.py, test_dashboard_queries.py, ...) shares it, so the images
# are built and the stack started and removed once. Removal is checked here,
# after the last e2e test, since a test that took the stack down would leave
# the modules after it without one.

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from .stack import PROJECT, Prometheus, Stack, require_docker, write_override


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_docker()
    stack = Stack(write_override(tmp_path_factory.mktemp("compose")))
    stack.compose("down", "-v", "--remove-orphans", check=False)  # a leftover of a killed run
    stack.compose("build", "--quiet", timeout=1200)
    services = stack.services()
    stack.compose("up", "-d", *services, timeout=600)
    try:
        stack.wait_healthy(services)
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "-t", "10", check=False)
    assert_nothing_left_behind()


def assert_nothing_left_behind() -> None:
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
        listed = subprocess.run(
            ["docker", *kind, "-q", "--filter", label], capture_output=True, text=True
        ).stdout.split()
        assert not listed, f"after `down -v`, docker {' '.join(kind)} still lists {listed}"


@pytest.fixture(scope="session")
def prometheus(stack: Stack) -> Prometheus:
    return Prometheus(f"http://127.0.0.1:{stack.host_port('prometheus', 9090)}")
