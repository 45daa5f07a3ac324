# tests/loadtest/talk/test_perf.py
#
# The talk's clients, `python -m loadtest.talk.perf1` and `loadtest.talk.perf2`, run as
# the user runs them, against a real local `threads` server: what they print,
# that the server saw exactly those requests, and their error paths.

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, Server, start_server

FLOAT_LINE = re.compile(r"\d+\.\d+")
RATE_LINE = re.compile(r"(\d+) reqs/sec")


@pytest.fixture(scope="module")
def threads() -> Iterator[Server]:
    server = start_server("threads")
    yield server
    server.close()


def command(client: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"loadtest.talk.{client}", *args]


def run(client: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(client, *args), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def served(server: Server, n: str) -> float:
    return server.metric("fib_requests_total", variant="threads", n=n, outcome="ok")


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_perf1_prints_seconds_per_request(threads: Server) -> None:
    before = served(threads, "30")
    started = time.monotonic()
    result = run("perf1", "--port", str(threads.port), "--n", "30", "--duration", "2")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(FLOAT_LINE.fullmatch(line) for line in lines), lines
    seconds = [float(line) for line in lines]
    assert len(seconds) >= 2
    # fib(30) is 1.6 million Python calls: milliseconds at the very least;
    # and each request finished within the run.
    assert all(0.005 < s < took for s in seconds), seconds
    assert served(threads, "30") - before == len(seconds)
    assert f"fib(30): {len(seconds)} requests" in result.stderr
    assert took < 2 + 10  # bounded by --duration (plus one request and start-up)


def test_perf1_count(threads: Server) -> None:
    result = run("perf1", "--port", str(threads.port), "--n", "20", "--count", "3")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3


def test_perf2_prints_requests_per_second(threads: Server) -> None:
    before = served(threads, "1")
    result = run("perf2", "--port", str(threads.port), "--duration", "2.5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rates = [int(match[1]) for line in lines if (match := RATE_LINE.fullmatch(line))]
    assert len(rates) == len(lines)
    assert len(rates) >= 2  # one a second
    assert all(rate > 0 for rate in rates), rates
    summary = re.search(r"perf2: (\d+) requests in", result.stderr)
    assert summary is not None, result.stderr
    total = int(summary[1])
    assert served(threads, "1") - before == total
    assert sum(rates) <= total * 1.1  # the seconds printed are within the run


def ctrl_c_as_at_a_terminal() -> None:
    """A child's SIGINT as a shell's foreground job has it. A suite started
    in the background (`make test &` in a script) ignores SIGINT, its
    children inherit that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_perf2_ctrl_c_is_clean(threads: Server) -> None:
    with subprocess.Popen(
        command("perf2", "--port", str(threads.port), "--duration", "60"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_at_a_terminal,
    ) as client:
        try:
            assert client.stdout is not None
            first = client.stdout.readline()  # running: a second has been reported
            assert RATE_LINE.fullmatch(first.strip()), first
            os.kill(client.pid, signal.SIGINT)
            _stdout, stderr = client.communicate(timeout=15)
        finally:
            client.kill()
            client.wait()
    assert client.returncode == 130
    assert "Traceback" not in stderr
    assert "req/s on average" in stderr


@pytest.mark.parametrize("client", ["perf1", "perf2"])
def test_connection_refused(client: str) -> None:
    port = closed_port()
    result = run(client, "--port", str(port), "--duration", "1", timeout=30)
    assert result.returncode == 1
    assert f"{client}: cannot connect to 127.0.0.1:{port}" in result.stderr
    assert "refused" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_perf1_prints_an_error_reply(threads: Server) -> None:
    result = run("perf1", "--port", str(threads.port), "--n", "46", "--count", "2")
    assert result.returncode == 1
    assert "ERR out-of-range" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("client", "args"),
    [
        ("perf1", ["--duration", "0"]),
        ("perf1", ["--count", "-1"]),
        ("perf1", ["--n", "ten"]),
        ("perf2", ["--duration", "soon"]),
    ],
)
def test_bad_arguments(client: str, args: list[str]) -> None:
    result = run(client, *args, timeout=30)
    assert result.returncode == 2
    assert f"argument {args[0]}" in result.stderr
