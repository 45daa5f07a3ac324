# loadtest/capacity/anchor.py
#
# The machine's anchor for the capacity sweep: what a C server and a C
# client do with tiny requests on this machine, measured in the same run as
# the Python variants. `redis-benchmark -t ping_inline` against a local
# `redis-server` is the same shape as the sweep (C connections, each sends a
# line and waits for its reply, closed loop), so the gap between a variant
# and this line is what the Python model costs, not what the machine lacks.
#
# Each point's figures come from redis-benchmark's own CSV (rps, latency),
# chosen by header: the columns differ between versions. CPU is counted per
# process: the server's from /proc/PID/stat (every thread), the client's
# from the rusage wait4() returns for it alone (RUSAGE_CHILDREN would mix in
# any other child reaped meanwhile), and the rest of the machine's from
# /proc/stat's idle time, as the comparison's noisy flag does
# (docs/design.md §6.2).
#
# Both programs die with this process (PR_SET_PDEATHSIG), so even a
# SIGKILLed sweep leaves no redis-server behind; the normal paths stop it in
# a `finally`. (The kernel ties that signal to the thread that started them,
# and measure_anchor returns only once both are gone: any thread may call it.)

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import io
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from loadtest.capacity.loadgen import free_port
from loadtest.toolbox import machine
from services.core.cpu import process_stat

REDIS_SERVER = "redis-server"
REDIS_BENCHMARK = "redis-benchmark"
INSTALL_HINT = (
    "install them with `apt-get install redis-server redis-tools` on Debian "
    "(`make test` and `make capacity` install them when run as root)"
)
BENCHMARK_TEST = "ping_inline"
CSV_TEST_NAME = "PING_INLINE"  # how redis-benchmark names that test in its CSV
# The CSV's latency columns are `<name>_latency_ms`; redis-benchmark 7.0
# prints all of these, 6.2 fewer, older versions none (and no header).
LATENCY_COLUMNS = ("avg", "min", "p50", "p95", "p99", "max")

DEFAULT_CONNECTIONS = (1, 4, 16, 64, 256)
MAX_CONNECTIONS = 10_000  # redis-server's default maxclients
MAX_SECONDS = 60.0  # per point: a sweep's anchor is a few seconds, never minutes
# The probes that size each point: first enough requests to get past
# connection set-up (50 per connection), then, if that took less than
# PROBE_SECONDS (2,000 requests are 25 ms at 80k req/s: one scheduler hiccup
# skews it), one more sized to last that long.
PROBE_MIN_REQUESTS = 2_000
PROBE_REQUESTS_PER_CONNECTION = 50
PROBE_SECONDS = 0.2  # at most, or a tenth of the point when that is shorter
PROBE_TIMEOUT = 30.0
START_TIMEOUT = 10.0  # until redis-server answers PING
STOP_TIMEOUT = 5.0  # after SIGTERM, before SIGKILL
START_ATTEMPTS = 3  # a free port can be taken between choosing and binding it
STDERR_TAIL_CHARS = 800


class AnchorUnavailable(RuntimeError):
    """redis-server or redis-benchmark is not on PATH."""


class AnchorFailed(RuntimeError):
    """redis-server did not start, or redis-benchmark failed or timed out."""


@dataclass(frozen=True)
class Latency:
    """A point's request latency in ms, as redis-benchmark's CSV gives it
    (None for a column this version does not print)."""

    avg: float | None = None
    min: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class BenchmarkCsv:
    """The row of one test in redis-benchmark's --csv output."""

    rps: float
    latency_ms: Latency


@dataclass(frozen=True)
class AnchorPoint:
    """One connection count: redis-benchmark's figures and what each side cost.

    `seconds` is the benchmark process's wall time, over which the CPU
    figures are averaged (cores = CPU seconds / seconds). `server_cpus` and
    `client_cpus` are the CPUs each process could run on, read from the
    kernel while it ran (all of this process's CPUs when not pinned).
    `foreign_cpu_cores`: what the rest of the machine used meanwhile (None
    without /proc/stat).
    """

    connections: int
    requests: int
    seconds: float
    rps: float
    latency_ms: Latency
    server_cpu_cores: float
    client_cpu_cores: float
    foreign_cpu_cores: float | None
    server_cpus: list[int]
    client_cpus: list[int]
    redis_version: str


@dataclass(frozen=True)
class BenchmarkRun:
    """One redis-benchmark process: its CSV and what it cost."""

    csv: BenchmarkCsv
    wall_seconds: float
    cpu_seconds: float  # its own user + system time
    cpus: list[int]  # the CPUs it could run on


# -- the CSV -----------------------------------------------------------------


def parse_benchmark_csv(text: str, test: str = CSV_TEST_NAME) -> BenchmarkCsv:
    """The `test` row of `redis-benchmark --csv` output, columns found by header."""
    rows = list(csv.reader(io.StringIO(text)))
    rows = [row for row in rows if row]
    if not rows or "rps" not in rows[0]:
        raise AnchorFailed(
            f"redis-benchmark printed no CSV header with an 'rps' column "
            f"(redis-benchmark older than 6.2 prints none): {text[:200]!r}"
        )
    header = rows[0]
    for row in rows[1:]:
        values = dict(zip(header, row, strict=False))
        if values.get("test") != test:
            continue
        latency = {
            name: _number(values, f"{name}_latency_ms")
            for name in LATENCY_COLUMNS
            if f"{name}_latency_ms" in values
        }
        rps = _number(values, "rps")
        assert rps is not None  # "rps" is in the header, so in values
        return BenchmarkCsv(rps=rps, latency_ms=Latency(**latency))
    raise AnchorFailed(f"redis-benchmark's CSV has no {test!r} row: {text[:200]!r}")


def _number(values: dict[str, str], column: str) -> float | None:
    if column not in values:
        return None
    try:
        number = float(values[column])
    except ValueError:
        raise AnchorFailed(f"redis-benchmark's CSV: {column} is {values[column]!r}") from None
    if not math.isfinite(number) or number < 0:
        raise AnchorFailed(f"redis-benchmark's CSV: {column} is {values[column]!r}")
    return number


# -- the programs ------------------------------------------------------------


def find_programs() -> tuple[str, str]:
    """redis-server's and redis-benchmark's paths, or AnchorUnavailable."""
    server, benchmark = shutil.which(REDIS_SERVER), shutil.which(REDIS_BENCHMARK)
    missing = [
        name for name, path in ((REDIS_SERVER, server), (REDIS_BENCHMARK, benchmark)) if not path
    ]
    if server is None or benchmark is None:
        raise AnchorUnavailable(f"the anchor needs {' and '.join(missing)} on PATH: {INSTALL_HINT}")
    return server, benchmark


def redis_version(server: str, cpus: frozenset[int] | None = None) -> str:
    """The version redis-server states (`v=7.0.15`), or its whole first line.
    Pinned like the server: every redis-server the anchor starts obeys the
    pinning, so what the kernel shows matches what the summary records."""
    stated = subprocess.run(
        [server, "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        preexec_fn=_child_setup(cpus),
    )
    line = (stated.stdout or stated.stderr).strip().splitlines()[:1]
    match = re.search(r"\bv=(\S+)", line[0]) if line else None
    return match[1] if match else (line[0] if line else "unknown")


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What the child runs between fork and exec: die with its parent, and
    take its CPUs before it starts any thread (threads inherit them)."""
    parent = os.getpid()

    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    return setup


def affinity(pid: int) -> list[int]:
    """The CPUs any thread of a live process may run on ([] once it is gone)."""
    cpus: set[int] = set()
    try:
        threads = [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for thread in threads:
        with contextlib.suppress(OSError):
            cpus |= os.sched_getaffinity(thread)
    return sorted(cpus)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, all its threads."""
    stat = process_stat(pid)
    if stat is None:
        raise AnchorFailed(f"redis-server (pid {pid}) is gone")
    return stat.cpu_seconds


# -- redis-server --------------------------------------------------------------


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-STDERR_TAIL_CHARS:].strip()
        except OSError:
            return ""


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply == b"+PONG\r\n"


def start_redis(server: str, workdir: Path, cpus: frozenset[int] | None) -> RedisServer:
    """redis-server on 127.0.0.1 on a free port, answering PING; no config
    file, no persistence, `workdir` as its cwd (where it would write)."""
    failures: list[str] = []
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        log = workdir / f"redis-server-{attempt}.log"
        command = [
            server, "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
        ]  # fmt: skip
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup(cpus),
            )
        running = RedisServer(process, port, log)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while process.poll() is None and time.monotonic() < deadline:
                if answers_ping(port):
                    return running
                time.sleep(0.02)
        except BaseException:
            stop_redis(running)
            raise
        stop_redis(running)
        tail = running.log_tail()
        failures.append(f"{' '.join(command)}: {tail or 'no output'}")
        if "Address already in use" not in tail:
            break  # only a port taken meanwhile is worth another try
    raise AnchorFailed(
        f"redis-server did not answer PING within {START_TIMEOUT:g} s: " + " | ".join(failures)
    )


def stop_redis(server: RedisServer) -> None:
    """SIGTERM (it exits at once: nothing to save), SIGKILL if it lingers; reaped."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def running_redis(server: str, cpus: frozenset[int] | None) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="fiblab-anchor-") as workdir:
        running = start_redis(server, Path(workdir), cpus)
        try:
            yield running
        finally:
            stop_redis(running)


# -- redis-benchmark -----------------------------------------------------------


def benchmark_command(benchmark: str, port: int, connections: int, requests: int) -> list[str]:
    return [
        benchmark, "-h", "127.0.0.1", "-p", str(port), "-t", BENCHMARK_TEST,
        "-c", str(connections), "-n", str(requests), "--csv",
    ]  # fmt: skip


def run_benchmark(
    benchmark: str,
    port: int,
    connections: int,
    requests: int,
    *,
    timeout: float,
    cpus: frozenset[int] | None = None,
) -> BenchmarkRun:
    """One redis-benchmark run, bounded by `timeout` (it waits forever when
    the server is gone); AnchorFailed naming the command and its stderr tail."""
    command = benchmark_command(benchmark, port, connections, requests)
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=_child_setup(cpus),
        )
        status, cpu_seconds, cpus_seen = _wait_bounded(process, timeout)
        wall_seconds = time.monotonic() - started
        output, errors = _read(stdout), _read(stderr)
    if status != 0:
        what = f"timed out after {timeout:g} s" if status is None else f"exited {status}"
        tail = errors.strip()[-STDERR_TAIL_CHARS:] or "(no stderr)"
        raise AnchorFailed(f"`{' '.join(command)}` {what}; stderr: {tail}")
    try:
        parsed = parse_benchmark_csv(output)
    except AnchorFailed as error:
        raise AnchorFailed(f"`{' '.join(command)}`: {error}") from None
    return BenchmarkRun(parsed, wall_seconds, cpu_seconds, cpus_seen)


def _wait_bounded(
    process: subprocess.Popen[bytes], timeout: float
) -> tuple[int | None, float, list[int]]:
    """Reap `process` with wait4 (its own rusage) within `timeout`; kill it
    past that, or on any exception (KeyboardInterrupt). Returns its exit
    code (None: timed out), its user + system CPU seconds and the CPUs it
    could run on."""
    pidfd = os.pidfd_open(process.pid)
    timed_out = False
    try:
        # Read first: Popen returned after exec, and a run lasts far longer.
        cpus = affinity(process.pid)
        readable, _, _ = select.select([pidfd], [], [], timeout)
        if not readable:
            timed_out = True
            process.kill()
    except BaseException:
        process.kill()
        raise
    finally:
        os.close(pidfd)
        _, wait_status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(wait_status)
    cpu_seconds = usage.ru_utime + usage.ru_stime
    return (None if timed_out else process.returncode), cpu_seconds, cpus


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace")


# -- the sweep -----------------------------------------------------------------


def measure_anchor(
    connections: Sequence[int],
    *,
    seconds: float = 2.0,
    server_cpus: set[int] | None = None,
    client_cpus: set[int] | None = None,
) -> list[AnchorPoint]:
    """redis-benchmark ping_inline against one local redis-server, at each
    connection count for about `seconds`; the server is stopped on every
    path out. `server_cpus` / `client_cpus` pin each process to those CPUs."""
    check_connections(connections)
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ValueError(f"seconds must be > 0 and at most {MAX_SECONDS:g}, not {seconds!r}")
    server_pin = check_cpus("server_cpus", server_cpus)
    client_pin = check_cpus("client_cpus", client_cpus)
    server, benchmark = find_programs()
    version = redis_version(server, server_pin)
    points = []
    with running_redis(server, server_pin) as redis:
        for count in connections:
            rate = probe_rate(benchmark, redis.port, count, seconds, client_pin)
            requests = max(count, round(rate * seconds))
            points.append(
                _measure_point(redis, benchmark, count, requests, seconds, client_pin, version)
            )
    return points


def probe_rate(
    benchmark: str, port: int, connections: int, seconds: float, cpus: frozenset[int] | None
) -> float:
    """req/s at this connection count, from one or two short runs: rates run
    from ~15k on one connection to ~90k on 16 here, so no one N fits all."""
    requests = max(PROBE_MIN_REQUESTS, PROBE_REQUESTS_PER_CONNECTION * connections)
    probe = run_benchmark(benchmark, port, connections, requests, timeout=PROBE_TIMEOUT, cpus=cpus)
    target = min(PROBE_SECONDS, seconds / 10)
    if probe.wall_seconds < target:
        requests = max(requests, round(probe.csv.rps * target))
        probe = run_benchmark(
            benchmark, port, connections, requests, timeout=PROBE_TIMEOUT, cpus=cpus
        )
    return probe.csv.rps


def _measure_point(
    redis: RedisServer,
    benchmark: str,
    connections: int,
    requests: int,
    seconds: float,
    client_cpus: frozenset[int] | None,
    version: str,
) -> AnchorPoint:
    server_cpus = affinity(redis.pid)
    before = machine.snapshot()
    server_before = process_cpu_seconds(redis.pid)
    # Generous: the probe's rate can overestimate (a busier machine meanwhile).
    run = run_benchmark(
        benchmark, redis.port, connections, requests,
        timeout=5 * seconds + 15, cpus=client_cpus,
    )  # fmt: skip
    server_cpu = process_cpu_seconds(redis.pid) - server_before
    # the benchmark was reaped in the window: this process's own CPU counts it
    foreign = machine.foreign_cpu(before, machine.snapshot(), server_cpu)["foreign_cpu_cores"]
    return AnchorPoint(
        connections=connections,
        requests=requests,
        seconds=round(run.wall_seconds, 3),
        rps=run.csv.rps,
        latency_ms=run.csv.latency_ms,
        server_cpu_cores=round(server_cpu / run.wall_seconds, 3),
        client_cpu_cores=round(run.cpu_seconds / run.wall_seconds, 3),
        foreign_cpu_cores=foreign,
        server_cpus=server_cpus,
        client_cpus=run.cpus,
        redis_version=version,
    )


def check_connections(connections: Sequence[int]) -> None:
    if not connections:
        raise ValueError("connections: give at least one connection count")
    for count in connections:
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not 1 <= count <= MAX_CONNECTIONS
        ):
            raise ValueError(
                f"connections: {count!r} is not an integer from 1 to {MAX_CONNECTIONS}"
            )


def check_cpus(name: str, cpus: set[int] | None) -> frozenset[int] | None:
    """`cpus` as a pinning, if every one of them is a CPU this process may use."""
    if cpus is None:
        return None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise ValueError(
            f"{name}: {sorted(cpus)} is not a non-empty subset "
            f"of this process's CPUs {sorted(allowed)}"
        )
    return frozenset(cpus)


# -- the command -----------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: {message}\n")


def _connection_list(text: str) -> list[int]:
    counts = []
    for item in text.split(","):
        try:
            count = int(item.strip())
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_CONNECTIONS:
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r} is not a connection count "
                f"(an integer from 1 to {MAX_CONNECTIONS})"
            )
        counts.append(count)
    return counts


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds in (0, {MAX_SECONDS:g}]"
        )
    return value


def _cpu_list(text: str) -> set[int]:
    try:
        cpus = machine.parse_cpus(text, "CPUS")
    except machine.CpuListError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if cpus is None:
        raise argparse.ArgumentTypeError("an empty CPU list")
    return cpus


def format_table(points: Sequence[AnchorPoint]) -> str:
    """The points as a small fixed-width table, one line per connection count."""
    columns = ("conns", "requests", "s", "req/s", "avg", "p50", "p95", "p99", "max ms",
               "server", "client", "other cores")  # fmt: skip
    rows: list[tuple[str, ...]] = [columns]
    for point in points:
        latency = point.latency_ms
        rows.append((
            str(point.connections), str(point.requests), f"{point.seconds:.2f}",
            f"{point.rps:,.0f}",
            *map(_ms, (latency.avg, latency.p50, latency.p95, latency.p99, latency.max)),
            f"{point.server_cpu_cores:.2f}", f"{point.client_cpu_cores:.2f}",
            "-" if point.foreign_cpu_cores is None else f"{point.foreign_cpu_cores:.2f}",
        ))  # fmt: skip
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _OneLineParser(
        prog="python -m loadtest.capacity.anchor",
        description="redis-benchmark ping_inline against a local redis-server: "
        "the machine's anchor for the capacity sweep",
    )
    parser.add_argument(
        "--connections", type=_connection_list,
        default=list(DEFAULT_CONNECTIONS), help="comma list (default 1,4,16,64,256)",
    )  # fmt: skip
    parser.add_argument("--seconds", type=_seconds, default=2.0, help="per point (default 2)")
    parser.add_argument("--server-cpus", type=_cpu_list, help="pin redis-server, e.g. 0")
    parser.add_argument("--client-cpus", type=_cpu_list, help="pin redis-benchmark, e.g. 1")
    parser.add_argument("--json", action="store_true", help="print the points as JSON")
    args = parser.parse_args(argv)
    try:
        points = measure_anchor(
            args.connections, seconds=args.seconds,
            server_cpus=args.server_cpus, client_cpus=args.client_cpus,
        )  # fmt: skip
    except (AnchorUnavailable, AnchorFailed) as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(point) for point in points], indent=2))
        return 0
    first = points[0]
    print(
        f"redis {first.redis_version}, ping_inline; server on CPUs {first.server_cpus}, "
        f"client on CPUs {first.client_cpus}; latency in ms, CPU in cores"
    )
    print(format_table(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
