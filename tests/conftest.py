# tests/conftest.py
#
# Every variant runs as a real subprocess (`python -m services <variant>`) in
# its own process group, on free ports chosen by the kernel (port 0), bound
# to 127.0.0.1. Tests talk to it over real sockets.

from __future__ import annotations

import fcntl
import functools
import importlib.util
import itertools
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import requests

from loadtest.toolbox.machine import processes
from services import PYTHON_NEEDED, VARIANTS
from services.core.cpu import CLOCK_TICKS, process_stat
from services.core.fib import fib

ROOT = Path(__file__).resolve().parent.parent
# Variants with child processes: a process pool's workers...
POOL_VARIANTS = ("threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool")
# ...or the pre-fork server's, each serving connections of its own.
CHILD_PROCESS_VARIANTS = (*POOL_VARIANTS, "prefork")
EVENT_LOOP_VARIANTS = tuple(
    v for v in VARIANTS if v.startswith(("coro", "asyncio", "gevent", "trio"))
)


# `make test` runs the suite in two passes: the tests that mostly wait
# (timeouts, lingering, idle clients) in parallel workers, then the tests
# marked `serial` alone, because they measure what other tests would disturb:
# rates, latencies and the CPU other processes used (the load generator, the
# comparison and capacity runs with their noisy flag, the GIL probe's shares),
# or because they build images and run the compose stack.
# Whole folders are marked here; a module or a test elsewhere marks itself,
# and a test in these folders that only counts and reads labels (what a
# busy machine slows but cannot change) marks itself `unmeasured`.
SERIAL_FOLDERS = ("tests/loadtest/", "tests/e2e/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(ROOT).as_posix()
        if where.startswith(SERIAL_FOLDERS) and item.get_closest_marker("unmeasured") is None:
            item.add_marker(pytest.mark.serial)


class ContainerProcess:
    """A variant's server in a container, seen as the process it is on this
    host (docker run --network host: its ports are 127.0.0.1's, its process
    is in this host's /proc). `pid` is the server's own, the container's
    PID 1; signals go to it directly. An exit by signal n reads -n, as a
    Popen's would (docker run says 128 + n)."""

    def __init__(self, client: subprocess.Popen[str], container: str) -> None:
        self.client = client  # `docker run`, attached: the server's output
        self.container = container
        self.stdout = client.stdout
        self.pid = 0  # known once the server is up (see host_pid)

    def find_pid(self) -> None:
        inspected = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Pid}}", self.container],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        self.pid = int(inspected.stdout.strip() or 0)

    def _code(self, code: int | None) -> int | None:
        return 128 - code if code is not None and code > 128 else code

    def poll(self) -> int | None:
        return self._code(self.client.poll())

    def wait(self, timeout: float | None = None) -> int:
        code = self._code(self.client.wait(timeout))
        assert code is not None
        return code

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        subprocess.run(["docker", "kill", self.container], capture_output=True, timeout=30)


_containers = itertools.count()


@functools.cache
def newer_python_image(version: tuple[int, int]) -> str:
    """The variants' image on CPython `version`, built from this working tree.
    Parallel test workers build it one at a time (a file lock): the first
    builds, the others find its layers cached."""
    python = f"{version[0]}.{version[1]}"
    if shutil.which("docker") is None:
        unavailable("Docker", f"the variants that need Python {python} run in its image")
    tag = f"fiblab-services-test:py{python}"
    lock = Path(tempfile.gettempdir()) / f"fiblab-services-test-py{python}.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        build = subprocess.run(
            ["docker", "build", "--quiet", "--build-arg", f"PYTHON_VERSION={python}",
             "-f", "services/Dockerfile", "-t", tag, "."],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    if build.returncode:
        unavailable(f"the Python {python} image", build.stderr[-2000:])
    return tag


def server_command(
    variant: str, args: tuple[str, ...], env: dict[str, str] | None, open_files: int | None
) -> tuple[list[str], str | None]:
    """How to run a variant here: on this Python, or in its image when it
    needs a newer one (services.PYTHON_NEEDED). Returns the command and the
    container's name (None: a plain subprocess)."""
    flags = [variant, "--port", "0", "--metrics-port", "0", *args]
    needed = PYTHON_NEEDED.get(variant)
    if needed is None or sys.version_info >= needed:
        return [sys.executable, "-m", "services", *flags], None
    name = f"fiblab-test-{os.getpid()}-{next(_containers)}"
    command = ["docker", "run", "--rm", "--name", name, "--label", "fiblab.test=1",
               "--network", "host", "--env", "FIB_HOST=127.0.0.1"]  # fmt: skip
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    if open_files is not None:
        command += ["--ulimit", f"nofile={open_files}:{open_files}"]
    return [*command, newer_python_image(needed), *flags], name


def remove_test_containers() -> None:
    if shutil.which("docker"):
        listed = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"name=fiblab-test-{os.getpid()}-"],
            capture_output=True, text=True, timeout=30,
        ).stdout.split()  # fmt: skip
        if listed:
            subprocess.run(["docker", "rm", "-f", *listed], capture_output=True, timeout=60)


@pytest.fixture(scope="session", autouse=True)
def _no_test_container_left() -> Iterator[None]:
    yield
    remove_test_containers()


@dataclass
class Server:
    """A running variant: its process, ports and captured output."""

    variant: str
    process: subprocess.Popen[str] | ContainerProcess
    port: int
    metrics_port: int
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

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

    def all_output(self, timeout: float = 5.0) -> str:
        """What the server printed, to the end once it has exited: its
        reader may still be taking the last lines from the pipe."""
        if self.reader and self.process.poll() is not None:
            self.reader.join(timeout)
        return "".join(self.output)

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
            if isinstance(self.process, ContainerProcess):
                kill_group(self.process.client.pid)  # its `docker run`

    def close(self) -> None:
        """Kill the whole group; close the output pipe once its reader saw EOF."""
        self.stop(signal.SIGKILL)
        if self.reader:
            self.reader.join(5)
        if self.process.stdout and not (self.reader and self.reader.is_alive()):
            self.process.stdout.close()


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
    """The live (not zombie) processes of process group `pgid`."""
    return [pid for pid, stat in processes().items() if stat.group == pgid and stat.state != "Z"]


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_server(
    variant: str, *args: str, env: dict[str, str] | None = None, open_files: int | None = None
) -> Server:
    """Start a variant and wait until it answers fib(1).

    `open_files`: its RLIMIT_NOFILE, soft and hard (the server raises its
    soft limit to the hard one, so only a hard limit binds it).
    """

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    command, container = server_command(variant, args, env, open_files)
    client = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: tests can kill the group
        preexec_fn=limit_open_files if open_files is not None and not container else None,
    )
    process: subprocess.Popen[str] | ContainerProcess = client
    if container is not None:
        process = ContainerProcess(client, container)
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
    if isinstance(process, ContainerProcess):
        process.find_pid()
    if not port:
        kill_group(client.pid)
        if isinstance(process, ContainerProcess):
            process.kill()
        raise RuntimeError(f"{variant} did not start:\n{''.join(output)}")
    # Keep draining its output so that the server never blocks on a full pipe.
    reader = threading.Thread(target=_drain, args=(process, output), daemon=True)
    reader.start()
    server = Server(variant, process, port, metrics_port, output, reader)
    assert server.ask(b"1\n", timeout=30) == b"1\n"
    return server


def one_process(variant: str) -> tuple[str, ...]:
    """Flags that make a variant a single server process, for tests of a
    per-process limit: a pre-fork worker is a server of its own, with its own
    connection cap (as nginx's worker_connections is per worker)."""
    return ("--pool-workers", "1") if variant == "prefork" else ()


def _drain(process: subprocess.Popen[str] | ContainerProcess, output: list[str]) -> None:
    assert process.stdout is not None
    output.extend(process.stdout)  # line by line, as they come


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(variant: str) -> Iterator[Server]:
    """A fresh server of each variant, with default settings."""
    running = start_server(variant)
    yield running
    running.close()


Launch = Callable[..., Server]


@pytest.fixture
def launch() -> Iterator[Launch]:
    """start_server, with every server it started killed (group and all) at the end."""
    started: list[Server] = []

    def start(
        variant: str, *args: str, env: dict[str, str] | None = None, open_files: int | None = None
    ) -> Server:
        started.append(start_server(variant, *args, env=env, open_files=open_files))
        return started[-1]

    yield start
    for server in started:
        server.close()


# -- shared helpers of the conformance suites ------------------------------


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it is true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def answer(n: int) -> bytes:
    return b"%d\n" % fib(n)


def wait_in_progress(server: Server, count: int = 1) -> None:
    """Until the server has read `count` request lines it has not answered yet."""
    wait_for(
        lambda: server.metric("fib_requests_in_progress") == count,
        10,
        f"fib_requests_in_progress == {count}",
    )


def reply_pending(sock: socket.socket) -> bool:
    """True while nothing (no byte, no EOF) has arrived on `sock`."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # MSG_DONTWAIT alone: Python would still wait for the timeout
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(timeout)
    return False


def cpu_ticks(pid: int) -> int:
    """User + system CPU of one process in clock ticks (0 once it is gone)."""
    stat = process_stat(pid)
    return 0 if stat is None else round(stat.cpu_seconds * CLOCK_TICKS)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live members of a process group, from /proc."""
    return sum(
        stat.cpu_seconds
        for stat in processes().values()
        if stat.group == pgid and stat.state != "Z"
    )


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pool_workers(server: Server) -> list[int]:
    """The server's process-pool workers ("spawn" children; not the resource tracker)."""
    return [
        pid
        for pid in server.descendants()
        if "spawn_main" in (line := cmdline(pid)) and "resource_tracker" not in line
    ]


def thread_count(pid: int) -> int:
    """The process's threads, without the GIL probe's sampler: gilknocker
    starts it for about 10 ms every 200 ms, so the fewest of five reads
    25 ms apart."""
    counts = []
    for _ in range(5):
        counts.append(len(os.listdir(f"/proc/{pid}/task")))
        time.sleep(0.025)
    return min(counts)


def rss_bytes(pid: int) -> int:
    """The resident memory of one process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def send_without_reading(sock: socket.socket, data: bytes) -> threading.Thread:
    """sendall in a thread (it blocks once the server stops reading)."""

    def send() -> None:
        try:
            sock.sendall(data)
        except OSError:  # closed under us, or reset by the server
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not in a package (grafana/dashboards.py,
    deploy/k8s/variants.py), imported as module `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: dataclasses look modules up
    spec.loader.exec_module(module)
    return module


def unavailable(what: str, reason: str) -> NoReturn:
    """A test needs a tool that is missing: fail in CI (a skipped test hides a
    broken lab), skip loudly elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs {what}: {reason}")
    pytest.skip(f"*** NOT RUN without {what}: {reason} ***")
