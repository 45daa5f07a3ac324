# services/core/metrics.py
#
# The Prometheus metrics of DESIGN §4, in the server process only (pool
# workers never touch them, so prometheus_client's multiprocess mode is not
# needed). The `variant` label is set here, in-process.
#
# The per-request path is hot: a fib(1) request costs tens of microseconds,
# so label children are resolved once and cached, and a request costs a few
# lock-protected additions. `NullMetrics` (--no-metrics) is the baseline the
# server benchmark compares against.

from __future__ import annotations

import os
import platform
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .protocol import ErrorCode

# 50 µs .. 120 s: fib(1) answers in tens of µs, fib(45) in about a minute.
DURATION_BUCKETS = (
    50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


def gil_state() -> str:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return "enabled" if is_enabled is None or is_enabled() else "disabled"


class NullMetrics:
    """Instrumentation switched off: every call is a no-op."""

    def connection_opened(self) -> None: ...
    def connection_closed(self) -> None: ...
    def request_started(self) -> None: ...
    def request_finished(self, n: int | None, error: ErrorCode | None, seconds: float) -> None: ...


class Metrics(NullMetrics):
    """The DESIGN §4 metrics of one variant, in their own registry."""

    def __init__(self, variant: str, max_n: int, cpu_source: str = "auto") -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.variant = variant
        self.max_n = max_n
        v = ("variant",)
        self._requests = Counter(
            "fib_requests_total", "Replies sent", [*v, "n", "outcome"], registry=registry
        )
        self._duration = Histogram(
            "fib_request_duration_seconds",
            "From a complete request line to its reply",
            [*v, "n"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._errors = Counter("fib_errors_total", "Error replies", [*v, "code"], registry=registry)
        in_progress = Gauge("fib_requests_in_progress", "Lines read, reply not yet sent", v,
                            registry=registry)  # fmt: skip
        active = Gauge("fib_connections_active", "Open client connections", v, registry=registry)
        accepted = Counter("fib_connections", "Accepted connections", v, registry=registry)
        info = Gauge("fib_info", "What runs", [*v, "python", "implementation", "gil"],
                     registry=registry)  # fmt: skip
        info.labels(variant, platform.python_version(), sys.implementation.name, gil_state()).set(1)
        registry.register(CpuCollector(variant, cpu_source))

        self._in_progress = in_progress.labels(variant)
        self._active = active.labels(variant)
        self._accepted = accepted.labels(variant)
        # Children per n (0..max_n, and "" for lines that are not a valid n):
        # the hot path is then a list index, no label lookup.
        labels = [*map(str, range(max_n + 1)), ""]
        self._ok = [self._requests.labels(variant, n, "ok") for n in labels]
        self._failed = [self._requests.labels(variant, n, "error") for n in labels]
        self._timers = [self._duration.labels(variant, n) for n in labels]
        self._error_codes = {code: self._errors.labels(variant, code.code) for code in ErrorCode}

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics from a daemon thread; returns the port bound."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        return int(server.server_port)

    def connection_opened(self) -> None:
        self._accepted.inc()
        self._active.inc()

    def connection_closed(self) -> None:
        self._active.dec()

    def request_started(self) -> None:
        self._in_progress.inc()

    def request_finished(self, n: int | None, error: ErrorCode | None, seconds: float) -> None:
        index = -1 if n is None else n
        self._timers[index].observe(seconds)
        if error is None:
            self._ok[index].inc()
        else:
            self._failed[index].inc()
            self._error_codes[error].inc()
        self._in_progress.dec()

    def count_error(self, error: ErrorCode) -> None:
        """An error reply that answers no request line (busy, idle-timeout)."""
        self._failed[-1].inc()
        self._error_codes[error].inc()


class CpuCollector(Collector):
    """fib_cpu_seconds_total: the CPU of the whole variant, pool workers included.

    In a container the cgroup's own accounting is exact and cheap (v2
    cpu.stat, v1 cpuacct.usage). Outside one, the process tree: this
    process, its live descendants from /proc, and the reaped ones from
    RUSAGE_CHILDREN. A worker that dies is briefly in neither, so the value
    is kept monotonic.
    """

    def __init__(self, variant: str, source: str) -> None:
        self.variant = variant
        self.cgroup_file = None if source == "process" else cgroup_cpu_file(source == "cgroup")
        if source == "cgroup" and self.cgroup_file is None:
            raise RuntimeError("FIB_CPU_SOURCE=cgroup but no cgroup CPU accounting is visible")
        self._last = 0.0

    def collect(self) -> Iterator[Any]:
        seconds = cgroup_cpu_seconds(self.cgroup_file) if self.cgroup_file else tree_cpu_seconds()
        self._last = max(self._last, seconds)
        family = CounterMetricFamily(
            "fib_cpu_seconds", "CPU of the whole variant, pool workers included", labels=["variant"]
        )
        family.add_metric([self.variant], self._last)
        yield family


def cgroup_cpu_file(forced: bool = False) -> Path | None:
    """The CPU accounting file of this process's cgroup, if it has its own.

    `auto` takes it only when /proc/self/cgroup names a cgroup other than the
    root, since the root's figure is the whole machine's. A container with a
    private cgroup namespace also shows "/": its image sets
    FIB_CPU_SOURCE=cgroup (`forced`).
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates = [Path("/sys/fs/cgroup/cpu.stat")]  # v2, unified
        elif "cpuacct" in controllers.split(","):
            candidates = [
                Path("/sys/fs/cgroup/cpuacct/cpuacct.usage"),  # v1: the container's own
                Path("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"),
            ]
        else:
            continue
        for candidate in candidates:
            if candidate.exists() and (forced or path != "/"):
                return candidate
    return None


def cgroup_cpu_seconds(accounting: Path) -> float:
    text = accounting.read_text()
    if accounting.name == "cpu.stat":
        for line in text.splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
        return 0.0
    return int(text) / 1e9  # cpuacct.usage is in nanoseconds


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of this process and all its descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    return total + sum(_proc_cpu_seconds(child) for child in descendants(pid or os.getpid()))


def descendants(pid: int) -> list[int]:
    """Live descendants, from /proc/<pid>/task/<tid>/children (Linux)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            found.extend(map(int, children))
            frontier.extend(map(int, children))
    return found


def _proc_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name (which may hold spaces): utime, stime are
    # fields 14 and 15 of stat(5), and cutime, cstime (its reaped children) 16, 17.
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS
