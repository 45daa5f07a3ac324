# loadtest/capacity/points.py
#
# One point of a capacity run (docs/design.md §6.4): Locust's users on a
# running variant for a window of a few seconds, both ends of the window read
# from the server's /metrics, the load generator's /metrics and /proc, and
# turned into figures:
#
#   rps            short replies/s the server sent (its own counter: exact)
#   achieved_rps   requests/s the clients completed, ok or error; asked_rps: open loop
#   latency_ms     p50 / p99 / p99.9 on the clients, from the intended send
#                  time in open loop (the exporter's buckets, interpolated)
#   server_cpu_cores, loadgen_cpu_cores (all its processes) and
#   loadgen_busiest_cores (its busiest process), foreign_cpu_cores (others)
#   bottleneck     server | loadgen
#
# Sweep points are closed loops on C connections; rate points are open
# loops at a fixed rate, with or without one long client in the background
# (the talk's convoy as a latency curve).

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from loadtest.capacity.loadgen import LocustSwarm, loadgen_cpu_between
from loadtest.swarm.client import LineConnection
from loadtest.toolbox import machine
from loadtest.toolbox.servers import CPU_METRIC, Samples, Target, scrape

# The generator is the limit when one of its processes (gevent: one core
# each) ran this much of a core ...
LOADGEN_SATURATED_CORES = 0.9
# ... or when the machine had no CPU to spare and the generator spent this
# many times the server's CPU on each request: it took the cores the server
# would have used.
MACHINE_BUSY_SHARE = 0.9
LOADGEN_SHARE_FACTOR = 1.5
PERCENTILES = (("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999))
IDLE_TIMEOUT = 10.0  # seconds for the server to close the last point's connections


def counter_delta(before: Samples, after: Samples, metric: str, **labels: str) -> float:
    """The growth of every series of `metric` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == metric and wanted <= key[1]
    )


def histogram_delta(
    before: Samples, after: Samples, metric: str, **labels: str
) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram's growth, bounds in order."""
    buckets: dict[float, float] = {}
    for key, value in after.items():
        label = dict(key[1])
        if key[0] == f"{metric}_bucket" and set(labels.items()) <= key[1]:
            bound = float(label["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value - before.get(key, 0.0)
    return sorted(buckets.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of a cumulative histogram, linear within its bucket (as
    Prometheus' histogram_quantile); None without samples or in the +Inf bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return None
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


def latency_ms(buckets: list[tuple[float, float]]) -> dict[str, float | None]:
    return {
        key: None if (seconds := quantile(buckets, q)) is None else round(seconds * 1000.0, 4)
        for key, q in PERCENTILES
    }


@dataclass(frozen=True)
class End:
    """One end of a point's window."""

    at: float  # time.monotonic()
    server: Samples
    client: Samples
    loadgen: dict[int, float]
    machine: machine.Snapshot


def read_end(target: Target, swarm: LocustSwarm) -> End:
    return End(time.monotonic(), scrape(target), swarm.scrape(), swarm.cpu(), machine.snapshot())


class LongClient:
    """One client asking fib(n) back to back in a thread, while the point runs."""

    def __init__(self, target: Target, n: int) -> None:
        self.target, self.n = target, n
        self.replies = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LongClient:
        self._thread.start()
        return self

    def _run(self) -> None:
        line = b"%d\n" % self.n
        with LineConnection((self.target.host, self.target.port), reply_timeout=120) as client:
            while not self._stop.is_set():
                try:
                    client.ask(line)
                except OSError as error:
                    self.failures.append(str(error))
                    self._stop.wait(0.2)
                    continue
                self.replies += 1

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        # a reply in flight may take a while: the thread is a daemon, not waited for long
        self._thread.join(timeout=0.1)


def wait_idle(target: Target, timeout: float = IDLE_TIMEOUT) -> None:
    """Until the server holds no connection (lingering ones included), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = counter_delta({}, scrape(target), "fib_connections_active")
        if active <= 0:
            return
        time.sleep(0.1)


def bottleneck(point: dict[str, Any], cores: int) -> str:
    """`loadgen` when the generator, not the server, set the point's figures."""
    if (point.get("loadgen_busiest_cores") or 0.0) >= LOADGEN_SATURATED_CORES:
        return "loadgen"
    server, loadgen = point.get("server_cpu_cores"), point.get("loadgen_cpu_cores") or 0.0
    busy = (server or 0.0) + loadgen + (point.get("foreign_cpu_cores") or 0.0)
    if server and busy >= MACHINE_BUSY_SHARE * cores and loadgen > LOADGEN_SHARE_FACTOR * server:
        return "loadgen"
    return "server"


def measure(
    swarm: LocustSwarm,
    target: Target,
    *,
    kind: str,
    connections: int,
    rate: float = 0.0,
    long_n: int | None = None,
    short_n: int = 1,
    warmup: float,
    seconds: float,
) -> dict[str, Any]:
    """One point: `connections` users (open loop at `rate` req/s in all when > 0)."""
    long_client = LongClient(target, long_n) if long_n is not None else None
    swarm.start(target, connections, rate=rate, short_n=short_n)
    try:
        with long_client or contextlib.nullcontext():
            time.sleep(warmup)
            first = read_end(target, swarm)
            time.sleep(seconds)
            last = read_end(target, swarm)
    finally:
        swarm.stop()
    wait_idle(target)
    return figures(
        first, last, kind=kind, variant=target.variant, connections=connections,
        rate=rate, short_n=short_n, long_client=long_client,
    )  # fmt: skip


def figures(
    first: End,
    last: End,
    *,
    kind: str,
    variant: str,
    connections: int,
    rate: float,
    short_n: int,
    long_client: LongClient | None,
) -> dict[str, Any]:
    seconds = last.at - first.at
    name = f"fib({short_n})"  # the users' request name (docs/design.md §5)
    ok = counter_delta(first.client, last.client, "locust_requests_total", name=name, outcome="ok")
    errors = counter_delta(
        first.client, last.client, "locust_requests_total", name=name, outcome="error"
    )
    replies = counter_delta(first.server, last.server, "fib_requests_total", n=str(short_n))
    server_cpu = (
        counter_delta(first.server, last.server, CPU_METRIC)
        if any(key[0] == CPU_METRIC for key in last.server)
        else None
    )
    loadgen = loadgen_cpu_between(first.loadgen, last.loadgen, seconds)
    foreign = machine.foreign_cpu(
        first.machine, last.machine, (server_cpu or 0.0) + loadgen.total_cores * seconds
    )
    point: dict[str, Any] = {
        "kind": kind,
        "variant": variant,
        "connections": connections,
        "asked_rps": round(rate, 1) if rate > 0 else None,
        "seconds": round(seconds, 3),
        "rps": round(replies / seconds, 1),
        "achieved_rps": round((ok + errors) / seconds, 1),
        "requests": int(ok + errors),
        "errors": int(errors),
        # what the server holds at the window's end: `sync` serves one of C
        # connections, whose others wait unanswered and so add no latency
        "server_connections": int(counter_delta({}, last.server, "fib_connections_active")),
        "latency_ms": latency_ms(
            histogram_delta(first.client, last.client, "locust_request_duration_seconds", name=name)
        ),
        "server_cpu_cores": None if server_cpu is None else round(server_cpu / seconds, 3),
        "loadgen_cpu_cores": loadgen.total_cores,
        "loadgen_busiest_cores": loadgen.busiest_cores,
        "loadgen_processes": loadgen.processes,
        "foreign_cpu_cores": foreign["foreign_cpu_cores"],
        "noisy": foreign["noisy"],
    }
    if long_client is not None:
        point["long_n"] = long_client.n
        point["long_replies"] = long_client.replies
        point["long_failures"] = len(long_client.failures)
    point["bottleneck"] = bottleneck(point, first.machine.cpu.cpus if first.machine.cpu else 1)
    return point
