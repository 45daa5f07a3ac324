# tests/loadtest/conftest.py
#
# Locust runs as the user runs it: `locust -f loadtest/locustfile.py ...` in
# a subprocess (its own process group, killed in teardown), against real
# local variants started by tests.conftest.start_server. Ports are free
# ports on 127.0.0.1; every wait is bounded.

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from loadtest.capacity.loadgen import free_port
from tests.conftest import ROOT, Server, kill_group, start_server

LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
LOCUST = Path(sys.executable).with_name("locust")


@dataclass
class Process:
    """A subprocess with its output (stdout and stderr merged) read as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first output line for which predicate holds; fails after timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.process.poll() is not None and seen == len(self.lines):
                time.sleep(0.2)  # the reader may still hold the last lines
                if seen == len(self.lines):
                    break
            time.sleep(0.05)
        raise AssertionError(f"no such line within {timeout} s; output:\n{self.output}")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running after {timeout} s; output:\n{self.output}"
            ) from None

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Process]]:
    """Start subprocesses in their own process groups; all are killed at teardown."""
    started: list[Process] = []

    def start(*args: str | Path, env: dict[str, str] | None = None) -> Process:
        process = subprocess.Popen(
            [str(arg) for arg in args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        running = Process(process)
        running.reader = threading.Thread(target=_read, args=(running,), daemon=True)
        running.reader.start()
        started.append(running)
        return running

    yield start
    for running in started:
        kill_group(running.process.pid)
        running.process.wait(10)
        if running.reader is not None:
            running.reader.join(10)
        assert running.process.stdout is not None
        running.process.stdout.close()


def _read(running: Process) -> None:
    assert running.process.stdout is not None
    for line in running.process.stdout:
        running.lines.append(line)


def locust_command(*args: str | int | Path) -> list[str | Path]:
    return [LOCUST, "-f", LOCUSTFILE, *(str(arg) for arg in args)]


def fib_targets(*servers: Server) -> dict[str, str]:
    """The env that makes FIB_TARGETS map each server's variant to its address."""
    return {"FIB_TARGETS": ",".join(f"{s.variant}=127.0.0.1:{s.port}" for s in servers)}


@pytest.fixture(scope="module")
def threads_server() -> Iterator[Server]:
    server = start_server("threads")
    yield server
    server.close()


@pytest.fixture(scope="module")
def coro_server() -> Iterator[Server]:
    server = start_server("coro")
    yield server
    server.close()


def metric_value(text: str, sample_name: str, **labels: str) -> float:
    """The sample `sample_name` whose labels include `labels` (0.0 when absent).

    (tests.conftest.sample cannot match a label called `name`.)
    """
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample_name and labels.items() <= found.labels.items():
                return float(found.value)
    return 0.0


@pytest.fixture
def web_ui(spawn: Callable[..., Process], threads_server: Server, coro_server: Server) -> str:
    """Locust's web UI (class picker) on a free port, its `threads` and `coro`
    targets the two local servers; its base URL."""
    web_port = free_port()
    locust = spawn(
        *locust_command(
            "--web-host", "127.0.0.1", "--web-port", web_port, "--class-picker",
            "--fib-metrics-port", 0,
        ),
        env=fib_targets(threads_server, coro_server),
    )  # fmt: skip
    locust.wait_for(lambda line: "Starting web interface" in line, timeout=30)
    base = f"http://127.0.0.1:{web_port}"
    get_when_up(base + "/")  # Locust logs that line before its server listens
    return base


def get_when_up(url: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(url, timeout=10)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        response.raise_for_status()
        return response.text


# A real CPU hog for the noisy-machine tests (toolbox's machine, compare's
# runner): a process that spins on one core for a bounded time, killed at the
# end of the test whatever happens.
HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"


@pytest.fixture
def cpu_hog() -> Iterator[Callable[[float], subprocess.Popen[bytes]]]:
    """Start a process that keeps one core busy for at most `seconds`."""
    started: list[subprocess.Popen[bytes]] = []

    def start(seconds: float) -> subprocess.Popen[bytes]:
        hog = subprocess.Popen([sys.executable, "-c", HOG.format(seconds=seconds)])
        started.append(hog)
        time.sleep(0.3)  # past the interpreter's start-up
        return hog

    yield start
    for hog in started:
        hog.kill()
        hog.wait(10)
