# loadtest/compare/plan.py
#
# What one comparison runs (docs/design.md §6): the variants and scenarios,
# the load's settings, and where the servers and the load engine run. The
# long request's n is chosen here by timing naive fib in this process, so
# that fib(long_n) takes about --long-seconds on this machine.

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from services.core.fib import fib
from services.core.settings import Settings

MAX_N = Settings("threads").max_n  # the servers' default largest n (docs/design.md §2)
MIN_DURATION = 3.0  # seconds: three stages, each at least one of the shape's one-second ticks
# A long stage must hold whole requests of its 3 clients, each about 3× one
# client's time: 8 s runs (2.7 s stages) at fib(34) once held none, and the
# rule read ✅ on its 2-client ratio alone (docs/design.md §6.1).
LONG_STAGE_REQUESTS = 3


@dataclass(frozen=True)
class Plan:
    variants: list[str]
    scenarios: list[str]
    duration: float
    repeat: int
    warmup: float
    short_n: int
    long_n: int
    short_users: int
    rate: float
    image: str | None = None  # --python: the servers run in this image
    server_cpus: set[int] | None = None  # --server-cpus: the servers run on these CPUs only
    loadgen_cpus: set[int] | None = None  # --loadgen-cpus: the load engine on these


def long_scenario_seconds(duration: float, long_seconds: float | None) -> float:
    """The long scenario's length: --duration, or more when its three stages
    would not each hold LONG_STAGE_REQUESTS requests of 3 clients (a multiple
    of 3 s, so that every stage starts on one of the shape's ticks)."""
    if long_seconds is None:
        return duration
    needed = 3 * LONG_STAGE_REQUESTS * 3 * long_seconds
    return max(duration, 3.0 * math.ceil(needed / 3.0))


# --- the long request's n, by timing --------------------------------------------------

PHI = (1 + 5**0.5) / 2  # fib(n + 1) costs φ times fib(n)
# The shortest call timed to extrapolate from: a 1 ms call varies by a
# tenth or more from one call to the next (the chosen n flipped between
# two values on successive runs); 20 ms does not.
TIMED_AT_LEAST = 0.02


def timed_fib(n: int) -> float:
    """Seconds one naive fib(n) takes in this process."""
    started = time.perf_counter()
    fib(n)
    return time.perf_counter() - started


def choose_long_n(target_seconds: float) -> tuple[int, float]:
    """The n whose naive fib takes about `target_seconds` here, and what fib(n) took.

    The time returned is a measurement of fib(n) itself, not the extrapolation.
    """
    n, took = 20, timed_fib(20)
    while took < TIMED_AT_LEAST and n < MAX_N:
        n += 1
        took = timed_fib(n)
    while took * PHI < target_seconds and n < MAX_N:
        n += 1
        took *= PHI
    return n, timed_fib(n)
