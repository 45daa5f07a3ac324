# loadtest/connections/runner.py
#
# One variant at a time (and Redis, the anchor, after them): the server
# started on free ports with a connection cap above the largest count
# (--max-connections; in a container with the runner's open-file limit as
# its own, --ulimit nofile), then
#
#   slow      N slow clients (slow.py) for each slow count: p99 and the
#             server's CPU (fib_cpu_seconds_total's delta);
#   fairness  for the event loops and `threads` (the control): the probe
#             beside a pipelining client (fairness.py) on this server, the
#             "after" setting (the defaults);
#   idle      last: for each N, ascending, connections opened one after
#             another until N are held (the smaller counts' stay open);
#             once the server holds them (fib_connections_active, polled),
#             its process tree's RSS, threads and descriptors and a fresh
#             client's fib(1) latency. Then all are closed and the runner
#             times how long the server takes to let them go; a server
#             that has not within RELEASE_TIMEOUT is killed;
#   fairness before: the server again with the "before" setting
#             (--yield-every 0);
#   admission before: asyncio and asyncio-uvloop again with --backlog 100,
#             the backlog asyncio's start_server used to listen with.
#
# A point records the machine around it (machine.foreign_cpu: noisy, §6.2),
# counting the server tree's CPU from /proc as the lab's own.

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtest.capacity.anchor import AnchorUnavailable, find_programs, redis_version, running_redis
from loadtest.connections import clients, slow
from loadtest.connections.clients import FIB, REDIS_PING, LineProtocol
from loadtest.connections.fairness import fairness
from loadtest.connections.tree import OpenFiles, container_pid, footprint, tree_cpu_seconds
from loadtest.toolbox import machine
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import (
    CPU_METRIC,
    Target,
    local_variant,
    metric_total,
    scrape,
    server_info,
    wait_until_answering,
)
from services import VARIANTS

ACTIVE_METRIC = "fib_connections_active"
# What the runner knows of how each variant holds connections (docs/design.md §3).
HOLDS_ONE = ("sync",)  # serves one client; the others wait in the kernel's backlog
FAIRNESS_CONTROL = "threads"
FAIRNESS_VARIANTS = (
    *(v for v in VARIANTS if v.startswith(("coro", "asyncio", "gevent", "trio"))),
    FAIRNESS_CONTROL,
)
ADMISSION_BEFORE_VARIANTS = ("asyncio", "asyncio-uvloop")
ADMISSION_BEFORE_FLAGS = ("--backlog", "100")  # asyncio's start_server listened again with 100
CAP_SPARE = 100  # the cap above the largest count: the fresh client, the probes
ADMIT_TIMEOUT = 15.0  # until the server reports every held connection
RELEASE_TIMEOUT = 10.0  # until the server has let them all go; then it is killed
SETTLE_SECONDS = 0.2  # after the server holds them: threads touch their stacks
OPEN_BUDGET_S = 30.0  # opening one point's N; slower than N/30 per second is a finding


@dataclass(frozen=True)
class Plan:
    variants: list[str]
    counts: list[int]
    slow_counts: list[int]
    slow_rate: float
    slow_seconds: float
    latency_requests: int
    fairness_seconds: float
    fairness_before: list[str]  # server flags of "before"
    fairness_after: list[str]  # ... and of "after" (empty: the defaults)
    admission_before: bool
    redis: bool
    open_files: OpenFiles


class Server:
    """A server under test as the runner reads it: address, process tree,
    held connections and CPU."""

    def __init__(self, name: str, host: str, port: int, pid: int, protocol: LineProtocol) -> None:
        self.name, self.host, self.port, self.pid, self.protocol = name, host, port, pid, protocol

    def active(self) -> int | None:
        return None

    def cpu_seconds(self) -> float | None:
        """What the server reports of its own CPU (None: /proc's tree only)."""
        return None


class VariantServer(Server):
    def __init__(self, target: Target, pid: int) -> None:
        super().__init__(target.variant, target.host, target.port, pid, FIB)
        self.target = target

    def active(self) -> int | None:
        value = metric_total(scrape(self.target), ACTIVE_METRIC)
        return None if value is None else int(value)

    def cpu_seconds(self) -> float | None:
        return metric_total(scrape(self.target), CPU_METRIC)

    def kill(self) -> None:
        """SIGKILL to the server, its pool workers and prefork children: one that
        has not let its connections go would take local_variant's whole wait to
        drain them."""
        progress(f"   stopping {self.name} with SIGKILL")
        if self.target.container is not None:
            subprocess.run(["docker", "kill", self.target.container],
                           capture_output=True, timeout=30, check=False)  # fmt: skip
        elif self.target.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.target.pid, signal.SIGKILL)  # its own group: local_variant


class RedisServer(Server):
    def command(self, line: bytes) -> bytes:
        """One inline command on a fresh connection; its whole reply."""
        with clients.connected(self.host, self.port) as sock:
            sock.sendall(line)
            data = sock.recv(65536)
            if data.startswith(b"$"):  # a bulk reply: its length, then that many bytes
                length = int(data[1 : data.index(b"\r\n")])
                while len(data) < data.index(b"\r\n") + 2 + length + 2:
                    data += sock.recv(65536)
            return data

    def active(self) -> int | None:
        for line in self.command(b"INFO clients\r\n").decode().splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":")[1]) - 1  # not the one asking
        return None


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def started_variant(plan: Plan, variant: str, flags: Sequence[str]) -> Iterator[VariantServer]:
    cap = max([*plan.counts, *plan.slow_counts]) + CAP_SPARE
    limit = plan.open_files.hard
    with local_variant(
        variant,
        ["--max-connections", str(cap), *flags],
        docker_options=["--ulimit", f"nofile={limit}:{limit}"],
    ) as target:
        wait_until_answering(target)
        if target.container is not None:
            pid = container_pid(target.container)
        elif target.pid is not None:
            pid = target.pid
        else:
            raise LabError(f"{variant}: no process to read")
        yield VariantServer(target, pid)


def measured(server: Server, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`work`'s figures and the machine around it: the server tree's CPU
    counted as the lab's own (§6.2)."""
    before, cpu_before = machine.snapshot(), tree_cpu_seconds(server.pid)
    figures = work()
    after, cpu_after = machine.snapshot(), tree_cpu_seconds(server.pid)
    noise = machine.foreign_cpu(before, after, cpu_after - cpu_before)
    return figures | {
        "foreign_cpu_cores": noise["foreign_cpu_cores"],
        "noisy": noise["noisy"],
    }


def wait_for(check: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period)


def idle_step(
    plan: Plan, server: Server, held: list[socket.socket], count: int, *, latency: bool
) -> dict[str, Any]:
    """Open connections until `count` are held (those of the smaller counts
    stay open), then read the server: one point."""
    started = time.perf_counter()
    more = clients.open_idle(
        server.host, server.port, count - len(held), OPEN_BUDGET_S, already=len(held)
    )
    added = len(more.sockets)
    held.extend(more.sockets)
    opened = len(held)
    # the server holds them: every one (sync: the first; the rest wait in the backlog)
    expected = min(1, opened) if server.name in HOLDS_ONE else opened
    asked_at = [started]

    def all_held() -> bool:
        # admitted by the middle of the scrape that saw them all (a scrape takes ms)
        sent = time.perf_counter()
        active = server.active()
        asked_at[0] = (sent + time.perf_counter()) / 2
        return active is None or active >= expected

    admitted = wait_for(all_held, ADMIT_TIMEOUT)
    admitted_s = asked_at[0] - started
    time.sleep(SETTLE_SECONDS)
    away = clients.turned_away(held)
    tree = footprint(server.pid)
    active = server.active()
    fresh = (
        clients.fresh_latency(server.host, server.port, server.protocol, plan.latency_requests)
        if latency
        else None
    )
    notes = []
    if more.failure:
        notes.append(f"held {opened:,} of {count:,}: {more.failure}")
    if away:
        notes.append(f"{away:,} turned away (written to or closed by the server)")
    if not admitted:
        notes.append(f"the server reported {active} held after {ADMIT_TIMEOUT:g} s")
    if server.name in HOLDS_ONE and opened > 1:
        notes.append(
            f"{server.name} serves one client at a time: it holds 1, the other "
            f"{opened - 1:,} wait in the kernel's backlog"
        )
    if fresh is not None and fresh.failure:
        notes.append(f"the fresh client: {fresh.failure}")
    return {
        "connections": count,
        "opened": opened,
        "added": added,
        "turned_away": away,
        "server_connections": active,
        "held": more.failure is None and away == 0 and admitted,
        "open_s": round(more.open_seconds, 4),
        "admitted_s": round(admitted_s, 4) if admitted else None,
        "admission_per_s": round(added / admitted_s, 1) if admitted and added else None,
        "rss_bytes": tree.rss_bytes,
        "threads": tree.threads,
        "fds": tree.fds,
        "processes": tree.processes,
        "latency_requests": None if fresh is None else fresh.requests,
        "latency_ms": None if fresh is None else fresh.latency_ms,
        "notes": notes,
    }


def release(server: Server, held: list[socket.socket], baseline_fds: int) -> dict[str, Any]:
    """Every held connection closed; the seconds until the server's descriptors
    are back to their baseline (None: not within RELEASE_TIMEOUT)."""
    count = len(held)
    started = time.monotonic()
    clients.close_all(held)
    held.clear()
    released = wait_for(lambda: footprint(server.pid).fds <= baseline_fds + 2, RELEASE_TIMEOUT,
                        period=0.1)  # fmt: skip
    left = footprint(server.pid)
    figure = {
        "connections": count,
        "released_s": round(time.monotonic() - started, 2) if released else None,
        "fds_left": left.fds - baseline_fds,
        "threads_left": left.threads,
    }
    progress(
        f"   released {count:,}: "
        + (f"in {figure['released_s']} s" if released else
           f"{figure['fds_left']:,} descriptors still open after {RELEASE_TIMEOUT:g} s")
    )  # fmt: skip
    return figure


def idle_points(
    plan: Plan, server: Server, counts: Sequence[int], *, latency: bool = True
) -> dict[str, Any]:
    """The baseline (nothing held), then each count in turn, the connections
    of the smaller counts still held, until one cannot be held; then all of
    them closed at once. (Closing between counts would cost more than the
    run has: a threads server lets 5,000 connections go at some 50 a second,
    each thread waiting for the GIL to end.)"""
    # the baseline once the earlier parts' connections are gone (lingering included)
    wait_for(lambda: server.active() in (0, None), RELEASE_TIMEOUT, period=0.05)
    last = [footprint(server.pid).fds]

    def steady() -> bool:
        now = footprint(server.pid).fds
        was, last[0] = last[0], now
        return now == was

    wait_for(steady, RELEASE_TIMEOUT, period=0.1)
    base = footprint(server.pid)
    baseline = {"rss_bytes": base.rss_bytes, "threads": base.threads, "fds": base.fds,
                "processes": base.processes}  # fmt: skip
    points = []
    held: list[socket.socket] = []
    try:
        for count in counts:
            began = time.monotonic()

            def step(count: int = count, latency: bool = latency) -> dict[str, Any]:
                return idle_step(plan, server, held, count, latency=latency)

            point = measured(server, step)
            point["wall_s"] = round(time.monotonic() - began, 2)
            latency_ms = point["latency_ms"] or {}
            progress(
                f"   [{point['wall_s']:.1f} s] idle {count:>6,}: +{point['added']:,} in "
                f"{point['open_s']:.2f} s, admitted {point['admission_per_s'] or '–'}/s, RSS "
                f"{point['rss_bytes'] / 2**20:.1f} MiB, {point['threads']} threads, "
                f"{point['fds']} fds, p99 {latency_ms.get('p99', '–')} ms"
                + "".join(f"; {note}" for note in point["notes"])
            )
            points.append(point)
            if point["opened"] < count:
                break  # a larger N would fail the same way, only later
            if server.name in HOLDS_ONE and (point["latency_ms"] or {}).get("p50") is None:
                latency = False  # the fresh client waits in the backlog: it will at every N
    finally:
        released = release(server, held, base.fds)
    return {"baseline": baseline, "points": points, "release": released}


def slow_points(plan: Plan, server: Server) -> list[dict[str, Any]]:
    found = []
    for count in plan.slow_counts:

        def work(count: int = count) -> dict[str, Any]:
            cpu_before = server.cpu_seconds()
            proc_before = tree_cpu_seconds(server.pid)
            result = slow.slow_clients(
                server.host, server.port, server.protocol, count, plan.slow_rate, plan.slow_seconds
            )
            cpu_after = server.cpu_seconds()
            proc_after = tree_cpu_seconds(server.pid)
            reported = cpu_before is not None and cpu_after is not None
            cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else (
                proc_after - proc_before
            )  # fmt: skip
            return asdict(result) | {
                "asked": count,
                "generator_bound": result.generator_bound,
                "server_cpu_cores": round(cpu / result.seconds, 4),
                "server_cpu_source": "metrics" if reported else "proc",
                "served_all": result.connections == count and result.missing == 0,
            }

        point = measured(server, work)
        progress(
            f"   slow {count:>6,}: {point['replies']:,} replies of {point['sent']:,} sent "
            f"({point['achieved_share']:.0%} of the intended), p99 "
            f"{point['latency_ms']['p99']} ms, server {point['server_cpu_cores']:.3f} cores"
            + (" (generator-bound)" if point["generator_bound"] else "")
            + (f"; {point['failure']}" if point["failure"] else "")
        )
        found.append(point)
    return found


def fairness_point(
    plan: Plan, server: Server, setting: str, flags: Sequence[str]
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        result = fairness(server.host, server.port, plan.fairness_seconds)
        return {"setting": setting, "flags": list(flags)} | asdict(result)

    point = measured(server, work)
    beside = point["beside"]
    progress(
        f"   fairness ({setting}: {' '.join(flags) or 'defaults'}): fresh p99 "
        f"{beside['latency_ms']['p99']} ms (alone {point['alone']['latency_ms']['p99']}), "
        f"connect+reply p99 {beside['connect_ms']['p99']} ms, {point['batches']} batches"
    )
    return point


@functools.cache
def _help_text() -> str:
    return subprocess.run(
        [sys.executable, "-m", "services", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip


def supported_flags(flags: Sequence[str]) -> str | None:
    """Why the servers here cannot take `flags` (None: they can): a flag not in
    `python -m services --help` would stop the server before it starts."""
    helped = _help_text()
    missing = [flag for flag in flags if flag.startswith("--") and flag not in helped]
    return f"the servers have no {', '.join(missing)} yet" if missing else None


def measure_variant(plan: Plan, variant: str, index: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "variant": variant, "server": None, "baseline": None, "idle": [], "slow": [],
        "release": None, "fairness": {}, "admission_before": None, "errors": [],
    }  # fmt: skip
    progress(f"[{index + 1}/{len(plan.variants)}] {variant}")
    try:
        with started_variant(plan, variant, plan.fairness_after) as server:
            record["server"] = server_info(scrape(server.target)) | {
                "container": server.target.container is not None,
            }
            # idle last: a server that has not let its connections go is stopped
            record["slow"] = slow_points(plan, server)
            if variant in FAIRNESS_VARIANTS and plan.fairness_seconds > 0:
                record["fairness"]["after"] = fairness_point(
                    plan, server, "after", plan.fairness_after
                )
            idle = idle_points(plan, server, plan.counts)
            record["baseline"], record["idle"] = idle["baseline"], idle["points"]
            record["release"] = idle["release"]
            if idle["release"]["released_s"] is None:
                server.kill()
    except LabError as error:
        record["errors"].append(str(error))
        progress(f"   {variant}: {error}")
        return record
    except subprocess.TimeoutExpired as error:
        # the figures are in; the server was killed (its process group) after the wait
        record["errors"].append(f"the server did not stop within {error.timeout:g} s of SIGTERM")
    if variant in FAIRNESS_VARIANTS and plan.fairness_seconds > 0:
        if (why := supported_flags(plan.fairness_before)) is not None:
            record["fairness"]["before"] = {"setting": "before", "flags": plan.fairness_before,
                                            "skipped": why}  # fmt: skip
        else:
            try:
                with started_variant(plan, variant, plan.fairness_before) as server:
                    record["fairness"]["before"] = fairness_point(
                        plan, server, "before", plan.fairness_before
                    )
            except (LabError, subprocess.TimeoutExpired) as error:
                # measured and then slow to stop: the figures stand
                record["fairness"].setdefault(
                    "before",
                    {"setting": "before", "flags": plan.fairness_before, "skipped": str(error)},
                )
    if plan.admission_before and variant in ADMISSION_BEFORE_VARIANTS:
        progress(f"   {variant} {' '.join(ADMISSION_BEFORE_FLAGS)} (admission before)")
        try:
            with started_variant(plan, variant, ADMISSION_BEFORE_FLAGS) as server:
                before = idle_points(plan, server, plan.counts, latency=False)
                record["admission_before"] = {
                    "flags": list(ADMISSION_BEFORE_FLAGS),
                    "points": before["points"],
                    "release": before["release"],
                }
                if before["release"]["released_s"] is None:
                    server.kill()
        except (LabError, subprocess.TimeoutExpired) as error:
            record["errors"].append(f"admission before: {error}")
    return record


# Redis's default maxclients is 10,000: the largest count and the fresh client need more.
def measure_redis(plan: Plan) -> tuple[dict[str, Any] | None, str | None]:
    progress("anchor: redis-server")
    try:
        program, _benchmark = find_programs()
        with running_redis(program, None) as redis:
            server = RedisServer("redis", "127.0.0.1", redis.port, redis.pid, REDIS_PING)
            cap = max([*plan.counts, *plan.slow_counts]) + CAP_SPARE
            answer = server.command(b"CONFIG SET maxclients %d\r\n" % cap)
            if not answer.startswith(b"+OK"):
                raise RuntimeError(f"CONFIG SET maxclients {cap}: {answer!r}")
            slow_found = slow_points(plan, server)
            idle = idle_points(plan, server, plan.counts)
            return {
                "variant": "redis",
                "server": {"redis_version": redis_version(program), "maxclients": cap},
                "baseline": idle["baseline"],
                "idle": idle["points"],
                "release": idle["release"],
                "slow": slow_found,
            }, None
    except (AnchorUnavailable, RuntimeError, OSError) as error:
        progress(f"anchor: not measured: {error}")
        return None, str(error)


def run(plan: Plan, out: Path) -> dict[str, Any]:
    records = [measure_variant(plan, variant, i) for i, variant in enumerate(plan.variants)]
    anchor, anchor_error = measure_redis(plan) if plan.redis else (None, "not asked (--no-redis)")
    return {"variants": records, "anchor": anchor, "anchor_error": anchor_error}
