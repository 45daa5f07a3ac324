# tests/conftest.py
#
# Every variant runs as a real subprocess (`python -m services <variant>`) in
# its own process group, on free ports chosen by the kernel (port 0), bound
# to 127.0.0.1. Tests talk to it over real sockets.

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from services import VARIANTS

ROOT = Path(__file__).resolve().parent.parent
POOL_VARIANTS = ("threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool")
EVENT_LOOP_VARIANTS = tuple(v for v in VARIANTS if v.startswith(("coro", "asyncio")))


@dataclass
class Server:
    """A running variant: its process, ports and captured output."""

    variant: str
    process: subprocess.Popen[str]
    port: int
    metrics_port: int
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def connect(self, timeout: float = 10.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.settimeout(timeout)
        return sock

    def ask(self, line: bytes, timeout: float = 10.0) -> bytes:
        """One request on a fresh connection; the reply line."""
        with self.connect(timeout) as sock:
            sock.sendall(line)
            return read_line(sock)

    def metrics_text(self) -> str:
        response = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample (0.0 when absent), labels matched exactly."""
        return sample(self.metrics_text(), name, **labels)

    def descendants(self) -> list[int]:
        """Live processes in the server's process group, other than itself."""
        return [pid for pid in group_members(self.pid) if pid != self.pid]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            os.kill(self.pid, sig)
        try:
            return self.process.wait(timeout)
        finally:
            kill_group(self.pid)


def read_line(sock: socket.socket) -> bytes:
    """Bytes up to and including the next b"\\n" (or until EOF)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match[1] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match[3])
    return 0.0


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, process_group = fields[0], int(fields[2])
        if process_group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_server(variant: str, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start a variant and wait until it answers fib(1)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "services", variant, "--port", "0", "--metrics-port", "0", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: tests can kill the group
    )
    output: list[str] = []
    port = metrics_port = 0
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if line.startswith("metrics on "):
            metrics_port = int(line.rsplit(":", 1)[1].split("/")[0])
        if line.startswith("listening on "):
            port = int(line.rsplit(":", 1)[1])
            break
    if not port:
        kill_group(process.pid)
        raise RuntimeError(f"{variant} did not start:\n{''.join(output)}")
    # Keep draining its output so that the server never blocks on a full pipe.
    threading.Thread(target=_drain, args=(process, output), daemon=True).start()
    server = Server(variant, process, port, metrics_port, output)
    assert server.ask(b"1\n", timeout=30) == b"1\n"
    return server


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(variant: str) -> Iterator[Server]:
    """A fresh server of each variant, with default settings."""
    running = start_server(variant)
    yield running
    running.stop()
