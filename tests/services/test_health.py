# tests/services/test_health.py
#
# The container health check (services/health.py) as the image runs it:
# `python -m services.health`, its --help, and its exit status against a
# server that answers right, one that answers wrong and none at all.

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import services.health
from tests.conftest import ROOT


def health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.health", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@contextmanager
def answering(reply: bytes) -> Iterator[int]:
    """A listener on a free port that answers its first connection's line with `reply`."""
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(64)
                connection.sendall(reply)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        yield listener.getsockname()[1]
        server.join(10)


def test_help_says_what_the_check_does() -> None:
    done = health("--help")
    assert done.returncode == 0, done.stderr
    described = services.health.__doc__
    assert described is not None
    assert "fib(10)" in described
    assert "Exit status 0" in described
    for line in described.strip().splitlines():
        assert line in done.stdout, line


def test_exit_status_says_healthy_or_not() -> None:
    with answering(b"55\n") as port:
        healthy = health("--port", str(port))
    assert (healthy.returncode, healthy.stderr) == (0, "")
    with answering(b"54\n") as port:
        wrong = health("--port", str(port))
    assert wrong.returncode == 1
    assert "fib(10) answered b'54\\n'" in wrong.stderr
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    nobody = health("--port", str(port), "--timeout", "1")
    assert nobody.returncode == 1
    assert nobody.stderr.startswith("unhealthy: 127.0.0.1:")
