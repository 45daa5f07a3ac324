# services/core/metrics.py
#
# The Prometheus metrics of DESIGN §4, in the server process only (pool
# workers never touch them, so prometheus_client's multiprocess mode is not
# needed). The `variant` label is set here, in-process.
#
# The per-request path is hot: a fib(1) request costs tens of microseconds,
# so requests are counted by RequestStats under one lock and turned into
# Prometheus families only at scrape time. `NullMetrics` (--no-metrics) is the
# baseline the server benchmark compares against.

from __future__ import annotations

import itertools
import os
import platform
import resource
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .protocol import ErrorCode

# 50 µs .. 120 s: fib(1) answers in tens of µs, fib(45) in about a minute.
DURATION_BUCKETS = (
    50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


_BUCKET_LABELS = [*map(floatToGoString, DURATION_BUCKETS), "+Inf"]


def gil_state() -> str:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return "enabled" if is_enabled is None or is_enabled() else "disabled"


class NullMetrics:
    """Instrumentation switched off: every call is a no-op."""

    def connection_opened(self) -> None: ...
    def connection_closed(self) -> None: ...
    def request_started(self) -> object: ...  # Metrics: a counter step
    def request_finished(self, n: int | None, error: ErrorCode | None, seconds: float) -> None: ...
    def count_error(self, error: ErrorCode) -> None: ...


class Metrics(NullMetrics):
    """The DESIGN §4 metrics of one variant, in their own registry."""

    def __init__(self, variant: str, max_n: int, cpu_source: str = "auto") -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.variant = variant
        v = ("variant",)
        active = Gauge("fib_connections_active", "Open client connections", v, registry=registry)
        accepted = Counter("fib_connections", "Accepted connections", v, registry=registry)
        info = Gauge("fib_info", "What runs", [*v, "python", "implementation", "gil"],
                     registry=registry)  # fmt: skip
        info.labels(variant, platform.python_version(), sys.implementation.name, gil_state()).set(1)
        self._active = active.labels(variant)
        self._accepted = accepted.labels(variant)
        self.requests = RequestStats(variant, max_n)
        registry.register(self.requests)
        registry.register(CpuCollector(variant, cpu_source))
        # The hot path, bound once.
        self.request_started = self.requests.started  # type: ignore[method-assign]
        self.request_finished = self.requests.finished  # type: ignore[method-assign]

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics from a daemon thread; returns the port bound."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        return int(server.server_port)

    def connection_opened(self) -> None:
        self._accepted.inc()
        self._active.inc()

    def connection_closed(self) -> None:
        self._active.dec()

    def count_error(self, error: ErrorCode) -> None:
        """An error reply that answers no request line (busy, idle-timeout)."""
        self.requests.unprompted(error)


class RequestStats(Collector):
    """fib_requests_total, fib_request_duration_seconds, fib_errors_total and
    fib_requests_in_progress, kept as plain numbers and turned into the
    standard families only when Prometheus scrapes.

    prometheus_client's own Counter and Histogram children take a lock per
    update, several per request: 3.6 µs a request here, about 6% of a
    fib(1) request on the threaded server. Here the hot path takes no lock:
    a request's start is one itertools counter step, its answer one
    list.append (each a single C call, atomic under the GIL and thread-safe
    in free-threaded builds). The answers are folded into the counts under
    the lock when Prometheus scrapes, or every FOLD_AT answers so that the
    list stays small without a scraper. Everything else is derived: a reply
    is `ok` unless counted failed; in progress is started but not answered.
    """

    FOLD_AT = 4096

    def __init__(self, variant: str, max_n: int) -> None:
        self.variant = variant
        self._lock = threading.Lock()
        size = max_n + 2  # one slot per valid n, and the last for "" (not a valid n)
        self._labels = [*map(str, range(max_n + 1)), ""]
        self._buckets = [[0] * (len(DURATION_BUCKETS) + 1) for _ in range(size)]
        self._sums = [0.0] * size
        self._failed = [0] * size  # error replies that answer a request line
        self._unprompted = 0  # error replies that answer none (busy, idle-timeout)
        self._errors = dict.fromkeys(ErrorCode, 0)
        self._started = itertools.count()
        self.started: Callable[[], int] = self._started.__next__
        self._answered: list[tuple[int | None, ErrorCode | None, float]] = []

    def started_count(self) -> int:
        # The counter's value without advancing it: repr is "count(N)".
        return int(repr(self._started)[6:-1])

    def finished(self, n: int | None, error: ErrorCode | None, seconds: float) -> None:
        answered = self._answered
        answered.append((n, error, seconds))
        if len(answered) >= self.FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        """Move the answers recorded so far into the counts."""
        with self._lock:
            answered = self._answered
            count = len(answered)
            batch = answered[:count]
            del answered[:count]  # what other threads appended meanwhile stays
            buckets, sums, failed, errors = self._buckets, self._sums, self._failed, self._errors
            for n, error, seconds in batch:
                index = -1 if n is None else n
                buckets[index][bisect_left(DURATION_BUCKETS, seconds)] += 1
                sums[index] += seconds
                if error is not None:
                    failed[index] += 1
                    errors[error] += 1

    def unprompted(self, error: ErrorCode) -> None:
        """A reply to no request line: counted, but it has no duration."""
        with self._lock:
            self._unprompted += 1
            self._errors[error] += 1

    def collect(self) -> Iterator[Any]:
        self._fold()
        with self._lock:
            buckets = [list(counts) for counts in self._buckets]
            sums, failed = list(self._sums), list(self._failed)
            errors, unprompted = dict(self._errors), self._unprompted
            answered = sum(map(sum, buckets)) + len(self._answered)  # folds hold the lock
        # Read last: every request answered was started before.
        in_progress = self.started_count() - answered
        ok = [
            sum(counts) - errors_of_n for counts, errors_of_n in zip(buckets, failed, strict=True)
        ]
        failed[-1] += unprompted
        v = self.variant
        requests = CounterMetricFamily(
            "fib_requests", "Replies sent", labels=["variant", "n", "outcome"]
        )
        duration = HistogramMetricFamily(
            "fib_request_duration_seconds",
            "From a complete request line to its reply",
            labels=["variant", "n"],
        )
        for index, label in enumerate(self._labels):
            if ok[index]:
                requests.add_metric([v, label, "ok"], ok[index])
            if failed[index]:
                requests.add_metric([v, label, "error"], failed[index])
            if any(buckets[index]):
                cumulative = zip(_BUCKET_LABELS, accumulate(buckets[index]), strict=True)
                duration.add_metric([v, label], list(cumulative), sums[index])
        codes = CounterMetricFamily("fib_errors", "Error replies", labels=["variant", "code"])
        for code, count in errors.items():
            codes.add_metric([v, code.code], count)
        progress = GaugeMetricFamily(
            "fib_requests_in_progress", "Lines read, reply not yet sent", labels=["variant"]
        )
        progress.add_metric([v], in_progress)
        yield from (requests, duration, codes, progress)


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
