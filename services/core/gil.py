# services/core/gil.py
#
# How long a thread that wants the GIL waits for it, as two Prometheus
# counters (docs/design.md §4):
#
#   fib_gil_wait_seconds_total   the probe's wait for the GIL, in seconds
#   fib_gil_probe_seconds_total  the wall time the probe has been running
#
# so rate(wait) / rate(probe) is the share of time a thread that asks for the
# GIL spends waiting for it, and summing each over a pre-fork server's
# processes before dividing gives their average.
#
# The measuring is gilknocker's: a native (Rust) OS thread, outside anything
# gevent patches, that for SAMPLE_MICROS asks for the GIL every POLL_MICROS
# and times each acquisition, then rests for REST_MICROS. Its
# `contention_metric` is waited / sampled time over the samples completed
# since its last reset. Each collect turns that ratio into seconds: ratio ×
# the wall time since the previous fold, added to the wait counter while the
# wall time goes to the probe counter, then resets it. With CPython's 5 ms
# switch interval a fully contended GIL reads about 5/6: a knock waits 5 ms
# for the holder to be asked to drop it, then the probe sleeps 1 ms.
#
# Why these intervals: gilknocker's defaults for a 1 ms knock. Its manager
# thread wakes every REST_MICROS and starts a 10 ms sample every other
# wake-up, so the probe knocks about 50 times a second and its ratio moves
# every ~0.2 s: about 0.3 % of one core on an idle process
# (`python -m tests.bench.gil`), and about 5 samples per 1 s scrape.
#
# Why the drain at stop: gilknocker's stop() ends its manager thread but not
# the sampling thread the manager started, which may still be waiting for
# the GIL. Should the interpreter begin to finalise first, CPython up to 3.13
# ends that thread with pthread_exit(), whose forced unwind through Rust
# frames aborts the whole process ("FATAL: exception not rethrown", SIGABRT)
# at what should be a clean exit. So a probe's stop() releases the GIL for
# DRAIN_SECONDS, long enough for a sample under full contention to finish,
# and the probes are stopped this way at exit instead of by gilknocker's own
# atexit hook.

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Protocol, cast

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

POLL_MICROS = 1_000  # between knocks within a sample
SAMPLE_MICROS = 10_000  # one sample: about 10 knocks when the GIL is free
REST_MICROS = 100_000  # the manager thread's tick: a sample starts every other one
# A sample left running at stop ends within SAMPLE_MICROS plus a few GIL
# handovers of 5 ms each (the switch interval) when other threads are busy.
DRAIN_SECONDS = 0.05

# A ratio of exactly 0 means no sample completed since the last reset (a
# completed one always holds some microseconds of acquisition); the fold
# waits for one, but not beyond this, so a stuck knocker cannot freeze the
# counters' timestamps forever.
MAX_UNFOLDED_SECONDS = 10.0

WAIT_FAMILY = "fib_gil_wait_seconds"
PROBE_FAMILY = "fib_gil_probe_seconds"
WAIT_HELP = "Seconds the GIL probe waited to acquire the GIL"
PROBE_HELP = (
    "Seconds the GIL probe has been running: rate(wait) / rate(probe) is the GIL wait share"
)


class Knocker(Protocol):
    """What GilProbe uses of gilknocker.KnockKnock."""

    @property
    def contention_metric(self) -> float: ...
    def reset_contention_metric(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


def _knocker_class() -> Any:
    return importlib.import_module("gilknocker").KnockKnock


def gil_probe_available() -> str | None:
    """None if the GIL probe can run here, else why not (for one warning)."""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_gil_enabled is not None and not is_gil_enabled():
        return "the GIL is disabled in this Python: fib_gil_* are not exported"
    try:
        _knocker_class()
    except ImportError as error:  # no wheel for this Python or platform
        return f"gilknocker cannot be imported ({error}): fib_gil_* are not exported"
    return None


class GilProbe(Collector):
    """fib_gil_wait_seconds_total and fib_gil_probe_seconds_total of one process.

    `start()` and `stop()` are idempotent; after `stop()` the counters keep
    their last values. Where `gil_probe_available()` gives a reason, `start()`
    does nothing and no family is exported. In a child forked while the probe
    runs, the probe starts afresh from zero (a thread does not survive fork).
    """

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.unavailable = gil_probe_available()
        self._lock = threading.Lock()  # collects come from several scrape threads
        self._knocker: Knocker | None = None
        self._wait = 0.0
        self._probed = 0.0
        self._folded_at = 0.0  # monotonic time up to which the counters hold
        _PROBES.add(self)

    @property
    def running(self) -> bool:
        return self._knocker is not None

    def start(self) -> None:
        if self.unavailable is not None:
            return
        with self._lock:
            if self._knocker is None:
                self._start_knocker()

    def _start_knocker(self) -> None:
        knocker = cast(
            Knocker,
            _knocker_class()(
                polling_interval_micros=POLL_MICROS,
                sampling_interval_micros=SAMPLE_MICROS,
                sleeping_interval_micros=REST_MICROS,
            ),
        )
        knocker.start()
        atexit.unregister(knocker.stop)  # its own hook would skip the drain
        self._knocker = knocker
        self._folded_at = time.monotonic()

    def stop(self) -> None:
        """Fold what was measured, stop the knocker and let its last sample
        finish. gilknocker's stop() sleeps 100 ms holding the GIL while its
        manager thread winds down; the drain then releases the GIL."""
        with self._lock:
            knocker, self._knocker = self._knocker, None
            if knocker is None:
                return
            self._fold(knocker, time.monotonic(), final=True)
            knocker.stop()
        time.sleep(DRAIN_SECONDS)

    def _fold(self, knocker: Knocker, now: float, final: bool = False) -> None:
        """Add the knocker's ratio since its last reset, as seconds; the
        caller holds the lock."""
        ratio = knocker.contention_metric
        elapsed = now - self._folded_at
        if ratio <= 0.0 and not final and elapsed < MAX_UNFOLDED_SECONDS:
            return  # no sample completed yet: fold this time with the next one
        self._wait += max(0.0, min(ratio, 1.0)) * elapsed
        self._probed += elapsed
        self._folded_at = now
        knocker.reset_contention_metric()

    def totals(self) -> tuple[float, float]:
        """(wait seconds, probe seconds) now."""
        with self._lock:
            if self._knocker is not None:
                self._fold(self._knocker, time.monotonic())
            return self._wait, self._probed

    def _families(self) -> tuple[CounterMetricFamily, CounterMetricFamily]:
        labels = ["variant"]
        return (
            CounterMetricFamily(WAIT_FAMILY, WAIT_HELP, labels=labels),
            CounterMetricFamily(PROBE_FAMILY, PROBE_HELP, labels=labels),
        )

    def describe(self) -> Iterator[Any]:
        # Registration reads the names from here, without folding.
        if self.unavailable is None:
            yield from self._families()

    def collect(self) -> Iterator[Any]:
        if self.unavailable is not None:
            return
        wait_seconds, probe_seconds = self.totals()
        wait, probe = self._families()
        wait.add_metric([self.variant], wait_seconds)
        probe.add_metric([self.variant], probe_seconds)
        yield wait
        yield probe

    def _after_fork_in_child(self) -> None:
        # The knocker's threads stayed in the parent: forget it (stopping it
        # would wait for a thread that is not there), count from zero, and
        # start a knocker of this process's own.
        self._lock = threading.Lock()
        knocker, self._knocker = self._knocker, None
        self._wait = self._probed = 0.0
        if knocker is not None:
            _ORPHANED.append(knocker)  # never dropped: its thread handle is the parent's
            self._start_knocker()


_PROBES: weakref.WeakSet[GilProbe] = weakref.WeakSet()
_ORPHANED: list[Knocker] = []


def _restart_probes_in_child() -> None:
    for probe in list(_PROBES):
        probe._after_fork_in_child()


@atexit.register
def _stop_probes_at_exit() -> None:
    for probe in list(_PROBES):
        probe.stop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restart_probes_in_child)
