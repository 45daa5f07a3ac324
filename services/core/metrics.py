# services/core/metrics.py
#
# The Prometheus metrics of docs/design.md §4, in the server process only (pool
# workers never touch them, so prometheus_client's multiprocess mode is not
# needed). The `variant` label is set here, in-process.
#
# The per-request path is hot: a fib(1) request costs tens of microseconds,
# so each connection counts its own requests without a lock (ConnectionTally),
# and RequestStats turns them into Prometheus families only at scrape time.
# `NullMetrics` (--no-metrics) is the baseline the server benchmark compares
# against.
# The variant's CPU (fib_cpu_seconds_total) is read through cpu.py, its
# resident memory (fib_resident_memory_bytes) through memory.py.

from __future__ import annotations

import logging
import math
import platform
import sys
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .cpu import cgroup_cpu_file, cgroup_cpu_seconds, tree_cpu_seconds
from .gil import GilProbe, gil_probe_available
from .memory import memory_readable, tree_resident_bytes
from .metrics_http import start_scrape_server
from .protocol import ErrorCode

# 50 µs .. 120 s: fib(1) answers in tens of µs, fib(45) in about a minute.
DURATION_BUCKETS = (
    50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


log = logging.getLogger("fiblab")

_BUCKET_LABELS = [*map(floatToGoString, DURATION_BUCKETS), "+Inf"]


def gil_state() -> str:
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return "enabled" if is_enabled is None or is_enabled() else "disabled"


class NullMetrics:
    """Instrumentation switched off: every call is a no-op, and no tallies."""

    def connection_opened(self) -> ConnectionTally | None:
        return None

    def connection_closed(self, tally: ConnectionTally | None) -> None: ...
    def count_error(self, error: ErrorCode) -> None: ...


class Metrics(NullMetrics):
    """The docs/design.md §4 metrics of one variant, in their own registry."""

    def __init__(
        self, variant: str, cpu_source: str = "auto", *, gil_probe: bool = True,
        whole_variant: bool = True,
    ) -> None:  # fmt: skip
        """`whole_variant`: also what describes the variant as a whole (fib_info,
        its CPU and memory); a pre-fork worker leaves them to the process that
        serves /metrics (whose tree holds the workers: each counted once)."""
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = registry = MergingRegistry()
        self.variant = variant
        v = ("variant",)
        active = Gauge("fib_connections_active", "Open client connections", v, registry=registry)
        accepted = Counter("fib_connections", "Accepted connections", v, registry=registry)
        self._active = active.labels(variant)
        self._accepted = accepted.labels(variant)
        self.requests = RequestStats(variant)
        registry.register(self.requests)
        if whole_variant:
            info = Gauge("fib_info", "What runs", [*v, "python", "implementation", "gil"],
                         registry=registry)  # fmt: skip
            info.labels(variant, platform.python_version(), sys.implementation.name,
                        gil_state()).set(1)  # fmt: skip
            registry.register(CpuCollector(variant, cpu_source))
            if memory_readable():  # Linux: /proc; elsewhere the series is absent
                registry.register(MemoryCollector(variant))
        # Registered now (its series read 0 until it starts), started by
        # serve() or start_gil_probe(): only in a process that serves clients.
        self.gil_probe = GilProbe(variant) if gil_probe else None
        if self.gil_probe is not None:
            registry.register(self.gil_probe)

    def start_gil_probe(self) -> None:
        if self.gil_probe is None:
            return
        if (reason := gil_probe_available()) is not None:
            log.warning("no GIL wait metrics: %s", reason)
        self.gil_probe.start()

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics from a daemon thread, bounded (metrics_http.py);
        returns the port bound."""
        server, _thread = start_scrape_server(self.registry, host, port)
        self.start_gil_probe()
        return int(server.server_port)

    def connection_opened(self) -> ConnectionTally:
        self._accepted.inc()
        self._active.inc()
        return self.requests.open_tally()

    def connection_closed(self, tally: ConnectionTally | None) -> None:
        self._active.dec()
        if tally is not None:
            self.requests.close_tally(tally)

    def count_error(self, error: ErrorCode) -> None:
        """An error reply that answers no request line (busy, idle-timeout)."""
        self.requests.unprompted(error)


Families = list[Metric]


class MergingRegistry(CollectorRegistry):
    """A registry that can speak for other processes (the pre-fork workers):
    every family they report replaces this process's own of that name, their
    samples summed across them (counters and histograms add up; so do the
    gauges here, connections and requests in progress)."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self.reporters: list[Callable[[], list[Families]]] = []

    def collect(self) -> Iterator[Metric]:
        own = super().collect()
        reports = [families for reporter in self.reporters for families in reporter()]
        if not reports:
            yield from own
            return
        merged = merge_families(reports)
        for family in own:
            yield merged.pop(family.name, family)
        yield from merged.values()


def merge_families(reports: Iterable[Families]) -> dict[str, Metric]:
    """Sum the samples of the same name and labels across several processes'
    families, keeping the order in which series first appear."""
    merged: dict[str, Metric] = {}
    totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in reports:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type)
                totals[family.name] = {}
            series = totals[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                series[key] = series.get(key, 0.0) + sample.value
    for name, family in merged.items():
        for (sample_name, labels), value in totals[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return merged


# A row of totals, one per n asked: the bucket counts (the last is +Inf), the
# sum of durations, then the error replies by code.
_SUM = len(DURATION_BUCKETS) + 1
_CODE_SLOT = {code: _SUM + 1 + index for index, code in enumerate(ErrorCode)}
_ROW_SIZE = _SUM + 1 + len(ErrorCode)

Item = TypeVar("Item")


class ConnectionTally:
    """The requests of one connection, recorded without a lock.

    Only the thread (or task) serving the connection writes it, and only
    what a request must: `Connection` adds the lines it reads to `started`
    and appends the duration of each ok reply for the same `n` as the last
    to `durations`; anything else (an error, another n: rare) goes through
    `answered`. On a fib(1) request every call and every object touched costs
    cold-cache time, so the common case is one list append: the replies are
    sorted into buckets in bulk when RequestStats folds them, at each scrape,
    every FOLD_AT lines (no scraper) and when the connection closes.
    """

    FOLD_AT = 4096
    __slots__ = ("durations", "errors", "fold_at", "folded", "n", "started", "stats")

    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats
        self.started = 0  # lines read
        self.folded = 0  # replies moved into the totals (under the lock)
        self.fold_at = self.FOLD_AT
        self.n: int | None = -1  # the n of every duration in `durations`; set under the lock
        self.durations: list[float] = []
        self.errors: list[tuple[int | None, ErrorCode, float]] = []

    def answered(self, n: int | None, error: ErrorCode | None, seconds: float) -> None:
        """Record any reply (the common one is inlined in Connection.reply)."""
        if error is not None:
            self.errors.append((n, error, seconds))
            return
        if n != self.n:
            with self.stats.lock:  # a scrape sees the durations and their n alike
                self.stats.fold(self)
                self.n = n
        self.durations.append(seconds)

    def fold(self) -> None:
        """Fold now and again after FOLD_AT more lines (the connection's thread)."""
        with self.stats.lock:
            self.stats.fold(self)
        self.fold_at = self.started + self.FOLD_AT


def take(items: list[Item]) -> list[Item]:
    """Remove and return the items a list holds now. Another thread may append
    meanwhile: what it appends lies beyond `count` and stays."""
    count = len(items)
    taken = items[:count]
    del items[:count]
    return taken


def add_durations(row: list[float], ordered: list[float]) -> None:
    """Count sorted durations into a row's buckets and sum (C-level bisection)."""
    below = 0
    for slot, bound in enumerate(DURATION_BUCKETS):
        upto = bisect_right(ordered, bound)  # "le": at most the bound
        row[slot] += upto - below
        below = upto
    row[_SUM - 1] += len(ordered) - below  # +Inf
    row[_SUM] += math.fsum(ordered)


class RequestStats(Collector):
    """fib_requests_total, fib_request_duration_seconds, fib_errors_total and
    fib_requests_in_progress, kept as plain numbers and turned into the
    standard families only when Prometheus scrapes.

    prometheus_client's own Counter and Histogram children take a lock per
    update, several per request: 3.6 µs a request here, about 6 % of a
    fib(1) request on the threaded server. Instead each connection records
    into its own ConnectionTally, and the replies it holds are folded into
    the totals under the lock. Each reply is `ok` unless it has an error
    code; in progress is read but not yet answered, on open connections (a
    vanished client's unanswered lines leave with it).
    """

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.lock = threading.Lock()
        self._totals: dict[int | None, list[float]] = {}  # n (None: no valid n) -> row
        self._live: set[ConnectionTally] = set()
        self._unprompted = dict.fromkeys(ErrorCode, 0)  # replies to no line (busy, idle-timeout)

    def open_tally(self) -> ConnectionTally:
        tally = ConnectionTally(self)
        with self.lock:
            self._live.add(tally)
        return tally

    def close_tally(self, tally: ConnectionTally) -> None:
        with self.lock:
            self.fold(tally)
            self._live.discard(tally)

    def fold(self, tally: ConnectionTally) -> None:
        """Move a tally's replies into the totals; the caller holds the lock.

        Ok replies in bulk, error replies (rare) one by one.
        """
        if ordered := sorted(take(tally.durations)):
            add_durations(self._row(tally.n), ordered)
            tally.folded += len(ordered)
        for n, error, seconds in take(tally.errors):
            row = self._row(n)
            add_durations(row, [seconds])
            row[_CODE_SLOT[error]] += 1
            tally.folded += 1

    def _row(self, n: int | None) -> list[float]:
        row = self._totals.get(n)
        if row is None:
            row = self._totals[n] = [0] * _ROW_SIZE
        return row

    def unprompted(self, error: ErrorCode) -> None:
        """A reply to no request line: counted, but it has no duration."""
        with self.lock:
            self._unprompted[error] += 1

    def collect(self) -> Iterator[Any]:
        in_progress = 0
        with self.lock:
            for tally in self._live:
                self.fold(tally)
                # Its thread goes on meanwhile: what it answered after the
                # fold is not in progress. Read lines first, then answers, so
                # that a race can only undercount, never show phantom work.
                started = tally.started
                pending = len(tally.durations) + len(tally.errors)
                in_progress += max(0, started - tally.folded - pending)
            rows = {n: list(row) for n, row in self._totals.items()}
            unprompted = dict(self._unprompted)
        v = self.variant
        requests = CounterMetricFamily(
            "fib_requests", "Replies sent", labels=["variant", "n", "outcome"]
        )
        duration = HistogramMetricFamily(
            "fib_request_duration_seconds",
            "From a complete request line to its reply",
            labels=["variant", "n"],
        )
        errors = dict(unprompted)
        unanswered = sum(unprompted.values())  # n="" errors that have no duration
        if unanswered:
            rows.setdefault(None, [0] * _ROW_SIZE)
        for n in sorted(rows, key=lambda n: -1 if n is None else n):
            row = rows[n]
            replies = sum(row[:_SUM])
            failed = sum(row[_SUM + 1 :])
            for code, slot in _CODE_SLOT.items():
                errors[code] += int(row[slot])
            label = "" if n is None else str(n)
            if replies > failed:
                requests.add_metric([v, label, "ok"], replies - failed)
            if n is None:
                failed += unanswered
            if failed:
                requests.add_metric([v, label, "error"], failed)
            if replies:
                cumulative = zip(_BUCKET_LABELS, accumulate(row[:_SUM]), strict=True)
                duration.add_metric([v, label], list(cumulative), row[_SUM])
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


class MemoryCollector(Collector):
    """fib_resident_memory_bytes: resident memory of the whole variant, this
    process and its live descendants (pool workers included), each counted
    once, read from /proc at each scrape."""

    def __init__(self, variant: str) -> None:
        self.variant = variant

    def collect(self) -> Iterator[Any]:
        resident = tree_resident_bytes()
        if resident is None:
            return
        family = GaugeMetricFamily(
            "fib_resident_memory_bytes",
            "Resident memory of the whole variant, pool workers included",
            labels=["variant"],
        )
        family.add_metric([self.variant], resident)
        yield family
