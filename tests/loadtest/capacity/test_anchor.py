# tests/loadtest/capacity/test_anchor.py
#
# The anchor against Debian's real redis-server and redis-benchmark: no
# stand-ins. Without them these tests fail in CI and skip loudly elsewhere
# (tests.conftest.unavailable). One measurement (1 and 4 connections, ~1 s
# each) is shared by the tests that read its points; while it runs, a
# thread watches /proc for this process's redis children, so pinning and
# clean-up are checked from the kernel's side, not from what the module says.

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from loadtest.capacity.anchor import (
    LATENCY_COLUMNS,
    AnchorFailed,
    AnchorPoint,
    AnchorUnavailable,
    benchmark_command,
    find_programs,
    main,
    measure_anchor,
    parse_benchmark_csv,
    run_benchmark,
    running_redis,
)
from loadtest.capacity.loadgen import free_port
from loadtest.toolbox import machine
from services.core.cpu import process_stat
from tests.conftest import ROOT, unavailable

MEASURED_CONNECTIONS = (1, 4)
SECONDS_PER_POINT = 1.0
PROGRAMS = ("redis-server", "redis-benchmark")


@pytest.fixture(scope="module")
def programs() -> tuple[str, str]:
    try:
        return find_programs()
    except AnchorUnavailable as error:
        unavailable("redis-server and redis-benchmark", str(error))


def children(name: str) -> list[int]:
    """Live (not zombie) processes named `name` whose parent is this process."""
    return [
        pid
        for pid, stat in machine.processes().items()
        if stat.name == name and stat.parent == os.getpid() and stat.state != "Z"
    ]


def serves(pid: int) -> bool:
    """A redis-server started to serve, not to state its --version. (Its
    command line is no help otherwise: Redis retitles itself `redis-server
    127.0.0.1:PORT` once it listens.)"""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(arguments[0]) and b"--version" not in arguments


def process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, Z...), None once it is reaped."""
    stat = process_stat(pid)
    return None if stat is None else stat.state


def allowed_cpus(pid: int) -> set[str]:
    """Cpus_allowed_list of each of the process's threads, as the kernel states it."""
    lists = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Cpus_allowed_list:"):
                lists.add(line.split(":", 1)[1].strip())
    return lists


@dataclass
class Watched:
    """What /proc showed of one program while the measurement ran."""

    pids: set[int] = field(default_factory=set)
    serving: set[int] = field(default_factory=set)  # redis-server on a --port
    cpu_lists: set[str] = field(default_factory=set)


@dataclass
class Measurement:
    points: list[AnchorPoint]
    server_cpus: set[int] | None
    client_cpus: set[int] | None
    watched: dict[str, Watched]
    seconds: float  # the whole call's wall time


def watch_children(stop: threading.Event, watched: dict[str, Watched]) -> None:
    while not stop.is_set():
        for name in PROGRAMS:
            for pid in children(name):
                try:
                    cpu_lists = allowed_cpus(pid)
                except OSError:  # gone meanwhile
                    continue
                watched[name].pids.add(pid)
                if serves(pid):
                    watched[name].serving.add(pid)
                watched[name].cpu_lists |= cpu_lists
        time.sleep(0.02)


@pytest.fixture(scope="module")
def measurement(programs: tuple[str, str]) -> Measurement:
    """1 and 4 connections, the server pinned to one CPU and the client to
    another where there are two (else both to the one)."""
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = {cpus[0]}, {cpus[-1]}
    watched = {name: Watched() for name in PROGRAMS}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_children, args=(stop, watched), daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        points = measure_anchor(
            MEASURED_CONNECTIONS,
            seconds=SECONDS_PER_POINT,
            server_cpus=server_cpus,
            client_cpus=client_cpus,
        )
    finally:
        stop.set()
        watcher.join(5)
    return Measurement(
        points, server_cpus, client_cpus, watched, seconds=time.monotonic() - started
    )


def test_every_connection_count_is_measured_for_about_the_time_asked(
    measurement: Measurement,
) -> None:
    assert [point.connections for point in measurement.points] == list(MEASURED_CONNECTIONS)
    for point in measurement.points:
        assert point.rps > 0
        assert point.requests >= point.connections
        # sized by a probe: within a factor of four of the time asked for
        # (other work on the machine moves the rate between probe and run)
        assert SECONDS_PER_POINT / 4 < point.seconds < SECONDS_PER_POINT * 4, point
        # redis-benchmark's own rate agrees with requests over wall time
        # (which also holds process start-up and connection set-up)
        assert 0.5 < point.requests / point.seconds / point.rps < 1.1, point
        assert point.redis_version[:1].isdigit(), point.redis_version
    # two points, two probes, start and stop: bounded
    assert measurement.seconds < 4 * SECONDS_PER_POINT * len(MEASURED_CONNECTIONS) + 10


def test_latencies_are_ordered_and_sane(measurement: Measurement) -> None:
    for point in measurement.points:
        latency = point.latency_ms
        assert latency.p50 is not None
        assert latency.p99 is not None
        present = [
            value
            for value in (latency.min, latency.p50, latency.p95, latency.p99, latency.max)
            if value is not None
        ]
        assert present == sorted(present), latency
        assert 0 < latency.p50 < 50, latency  # a local PING, not a lost connection
        if latency.avg is not None and latency.max is not None:
            assert 0 < latency.avg <= latency.max, latency
        # Little's law: C connections in a closed loop at `rps` each wait C/rps
        if latency.avg is not None:
            expected_ms = point.connections / point.rps * 1000
            assert expected_ms / 3 < latency.avg < expected_ms * 3, (point, expected_ms)


def test_cpu_of_each_side_is_measured(measurement: Measurement) -> None:
    cpus = len(os.sched_getaffinity(0))
    for point in measurement.points:
        # both sides did tens of thousands of syscalls a second: never zero,
        # and a pinned process is at most one core (ticks of 10 ms: slack)
        assert 0.02 < point.server_cpu_cores <= 1.1, point
        assert 0.02 < point.client_cpu_cores <= 1.1, point
        if point.foreign_cpu_cores is not None:
            assert -0.3 < point.foreign_cpu_cores <= cpus, point


def test_pinning_is_recorded_and_what_the_kernel_enforced(measurement: Measurement) -> None:
    server_cpus, client_cpus = measurement.server_cpus, measurement.client_cpus
    assert server_cpus is not None
    assert client_cpus is not None
    for point in measurement.points:
        assert point.server_cpus == sorted(server_cpus)
        assert point.client_cpus == sorted(client_cpus)
    server = measurement.watched["redis-server"]
    benchmark = measurement.watched["redis-benchmark"]
    # (the others state its --version: pinned too, and caught only at times)
    assert len(server.serving) == 1, "one redis-server serves the whole sweep"
    # every thread of every process, as /proc states it: "0", "1"...
    assert server.cpu_lists == {",".join(map(str, sorted(server_cpus)))}
    assert benchmark.pids, "the watcher never saw redis-benchmark run"
    assert benchmark.cpu_lists == {",".join(map(str, sorted(client_cpus)))}


def test_no_redis_process_is_left_behind(measurement: Measurement) -> None:
    for name in PROGRAMS:
        for pid in measurement.watched[name].pids:
            assert process_state(pid) is None, f"{name} {pid} outlived the sweep"
        assert children(name) == []


def test_points_are_json(measurement: Measurement) -> None:
    for point in measurement.points:
        data = json.loads(json.dumps(asdict(point)))
        assert data["connections"] == point.connections
        assert data["rps"] == point.rps
        assert set(data["latency_ms"]) == set(LATENCY_COLUMNS)
        assert data["latency_ms"]["p99"] == point.latency_ms.p99


def test_the_table_has_a_row_per_point(
    programs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--connections", "2", "--seconds", "0.3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("redis ")
    assert lines[1].split()[:4] == ["conns", "requests", "s", "req/s"]
    assert [line.split()[0] for line in lines[2:]] == ["2"]
    assert children("redis-server") == []


# -- the CSV, as this redis-benchmark prints it ----------------------------------


@pytest.fixture(scope="module")
def real_csv(programs: tuple[str, str]) -> str:
    """What `redis-benchmark --csv` prints here, captured from the real CLI."""
    server, benchmark = programs
    with running_redis(server, None) as redis:
        printed = subprocess.run(
            benchmark_command(benchmark, redis.port, 2, 2000),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    return printed.stdout


def csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue()


def test_the_parser_reads_every_column_the_cli_prints(real_csv: str) -> None:
    header, *rows = list(csv.reader(io.StringIO(real_csv)))
    assert "rps" in header, real_csv
    (row,) = (row for row in rows if row and row[0] == "PING_INLINE")
    values = dict(zip(header, row, strict=True))
    parsed = parse_benchmark_csv(real_csv)
    assert parsed.rps == float(values["rps"]) > 0
    latency = asdict(parsed.latency_ms)
    for name in LATENCY_COLUMNS:
        column = f"{name}_latency_ms"
        expected = float(values[column]) if column in values else None
        assert latency[name] == expected, (name, real_csv)
    assert parsed.latency_ms.p50 is not None, "this redis-benchmark prints p50"
    assert parsed.latency_ms.p99 is not None, "this redis-benchmark prints p99"


def test_the_parser_goes_by_header_not_position(real_csv: str) -> None:
    header, *rows = [row for row in csv.reader(io.StringIO(real_csv)) if row]
    expected = parse_benchmark_csv(real_csv)
    reversed_columns = [list(reversed(row)) for row in [header, *rows]]
    assert parse_benchmark_csv(csv_text(reversed_columns)) == expected
    # a column this version prints but another might not: None, the rest kept
    dropped = header.index("p95_latency_ms")
    without_p95 = [row[:dropped] + row[dropped + 1 :] for row in [header, *rows]]
    parsed = parse_benchmark_csv(csv_text(without_p95))
    assert parsed.latency_ms.p95 is None
    assert parsed.latency_ms.p99 == expected.latency_ms.p99
    assert parsed.rps == expected.rps


def test_the_parser_rejects_output_without_a_header_or_the_row(real_csv: str) -> None:
    header, *rows = [row for row in csv.reader(io.StringIO(real_csv)) if row]
    with pytest.raises(AnchorFailed, match="no CSV header"):
        parse_benchmark_csv(csv_text(rows))  # redis-benchmark before 6.2
    with pytest.raises(AnchorFailed, match="no 'PING_INLINE' row"):
        parse_benchmark_csv(csv_text([header]))


# -- failures and clean-up --------------------------------------------------------


def test_a_failing_benchmark_names_its_command_and_stderr(programs: tuple[str, str]) -> None:
    # Nothing listens there: redis-benchmark 7.0 reports it and then waits
    # forever, so the timeout is what ends it.
    port = free_port()
    with pytest.raises(AnchorFailed) as failed:
        run_benchmark(programs[1], port, 1, 100, timeout=1.0)
    message = str(failed.value)
    assert f"-p {port} -t ping_inline -c 1 -n 100 --csv" in message
    assert "timed out after 1 s" in message
    assert "Connection refused" in message
    assert children("redis-benchmark") == []


def test_the_server_stops_when_the_caller_is_interrupted(programs: tuple[str, str]) -> None:
    started: list[int] = []

    def serve_then_interrupt() -> None:
        with running_redis(programs[0], None) as redis:
            started.append(redis.pid)
            assert process_state(redis.pid) not in (None, "Z")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        serve_then_interrupt()
    (pid,) = started
    assert process_state(pid) is None


def test_the_server_dies_with_a_killed_caller(programs: tuple[str, str]) -> None:
    """SIGKILL skips every `finally`; the server must not outlive its caller."""
    caller = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time\n"
            "from loadtest.capacity.anchor import find_programs, running_redis\n"
            "with running_redis(find_programs()[0], None) as redis:\n"
            "    print(redis.pid, flush=True)\n"
            "    time.sleep(60)\n",
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert caller.stdout is not None
        pid = int(caller.stdout.readline())
        assert process_state(pid) not in (None, "Z")
    finally:
        caller.send_signal(signal.SIGKILL)
        caller.wait(10)
        assert caller.stdout is not None
        caller.stdout.close()
    # Reparented to init (or a subreaper), it may stay a zombie for a while:
    # dead all the same.
    deadline = time.monotonic() + 5
    while process_state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_state(pid) in (None, "Z"), f"redis-server {pid} outlived its killed caller"


def test_unavailable_names_the_missing_programs_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    with pytest.raises(AnchorUnavailable) as missing:
        measure_anchor([1], seconds=0.5)
    message = str(missing.value)
    assert "redis-server and redis-benchmark" in message
    assert "apt-get install redis-server redis-tools" in message


def test_unavailable_names_only_what_is_missing(
    programs: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "redis-server").symlink_to(programs[0])
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnchorUnavailable, match=r"needs redis-benchmark on PATH"):
        measure_anchor([1], seconds=0.5)


def test_the_command_without_redis_exits_1_with_one_line(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "loadtest.capacity.anchor", "--connections", "1"],
        cwd=ROOT, env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 1, ran
    assert ran.stdout == ""
    (line,) = ran.stderr.splitlines()
    assert "redis-server" in line
    assert "apt-get install" in line


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["--connections", "0"], "'0'"),
        (["--connections", "abc"], "'abc'"),
        (["--connections", "1,4,x"], "'x'"),
        (["--connections", "1,-4"], "'-4'"),
        (["--seconds", "0"], "'0'"),
        (["--seconds", "nan"], "'nan'"),
        (["--server-cpus", "99999"], "'99999'"),
    ],
)
def test_bad_input_exits_2_naming_the_value(
    args: list[str], culprit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert culprit in line
    assert args[0] in line


@pytest.mark.parametrize(
    ("connections", "seconds", "server_cpus", "culprit"),
    [
        ([], 1.0, None, "at least one"),
        ([1, 0], 1.0, None, "0 is not"),
        ([True], 1.0, None, "True is not"),
        ([1], 0.0, None, "0.0"),
        ([1], 1.0, set(), "server_cpus"),
        ([1], 1.0, {99999}, "99999"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    connections: list[int], seconds: float, server_cpus: set[int] | None, culprit: str
) -> None:
    with pytest.raises(ValueError, match=culprit):
        measure_anchor(connections, seconds=seconds, server_cpus=server_cpus)
    assert children("redis-server") == []
