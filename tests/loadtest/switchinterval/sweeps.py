# tests/loadtest/switchinterval/sweeps.py
#
# Synthetic sweeps: summary.json objects of the shape the sweep writes
# (docs/design.md §6.7), with timeline recordings whose before, during and
# long figures a test sets, so that a verdict can be made to hold or fail,
# and beside them the comparison's convoy runs (by default the recordings'
# figures, the during-rate CONVOY_LIFT times higher: its stage also counts
# the moments between long requests).

from __future__ import annotations

from collections.abc import Callable
from typing import Any

INTERVALS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02]

# What one repeat measured: short req/s before, during, long request seconds.
Convoy = tuple[float, float, float]
CONVOY_LIFT = 1.5


def recording(variant: str, repeat: int, figures: Convoy, *, noisy: bool = False) -> dict[str, Any]:
    before, during, long_seconds = figures
    return {
        "variant": variant,
        "repeat": repeat,
        "short_per_s_before": before,
        "short_per_s_during": during,
        "short_replies_during": round(during * long_seconds),
        "median_gap_during_ms": 1000 / during if during else None,
        "long_fib_s": long_seconds,
        "long_round_trip_s": long_seconds + 0.0002,
        "foreign_cpu_cores": 0.5 if noisy else 0.01,
        "steal_cpu_cores": 0.0,
        "load_average": {"start": 0.2, "end": 0.2},
        "noisy": noisy,
    }


def convoy_run(
    variant: str, repeat: int, figures: Convoy, *, noisy: bool = False
) -> dict[str, Any]:
    before, during, long_seconds = figures
    return {
        "variant": variant,
        "scenario": "convoy",
        "repeat": repeat,
        "duration_s": 8.0,
        "requests": int(before * 8),
        "errors": 0,
        "rps": before,
        "latency_ms": {"p50": 0.05, "p90": 0.06, "p99": 0.1, "p999": 5.0, "max": 20.0},
        "server_cpu_seconds": 8.0,
        "cpu_seconds_per_request": 0.00005,
        "loadgen_cpu_percent": 60.0,
        "bottleneck": "server",
        "foreign_cpu_cores": 0.5 if noisy else 0.01,
        "noisy": noisy,
        "short_rps_before": before,
        "short_rps_during": during,
        "long_seconds": long_seconds,
        "long_window": [2.7, 5.4],
    }


def lifted(measure: Callable[[float], Convoy]) -> Callable[[float], Convoy]:
    """The comparison's convoy beside recordings of `measure`: its during-rate higher."""

    def lift(interval: float) -> Convoy:
        before, during, long_seconds = measure(interval)
        return before, during * CONVOY_LIFT, long_seconds

    return lift


def sweep(
    figures: dict[str, Callable[[float], Convoy]],
    *,
    intervals: list[float] = INTERVALS_S,
    repeats: int = 2,
    noisy_at: float | None = None,
    convoys: dict[str, Callable[[float], Convoy]] | None = None,
    convoys_noisy_at: float | None = None,
) -> dict[str, Any]:
    """A sweep whose every variant recorded figures[variant](interval) in each repeat, and
    ran the comparison's convoy with convoys[variant](interval) (default: the recordings'
    lifted; {}: none); every recording and run at `noisy_at` ran on a busy machine, every
    run at `convoys_noisy_at` too."""
    noisy_intervals = (noisy_at, convoys_noisy_at)
    if convoys is None:
        convoys = {variant: lifted(measure) for variant, measure in figures.items()}
    return {
        "kind": "switch-interval",
        "environment": {
            "cores": 2,
            "python": "3.11.7",
            "date": "2026-12-06T12:00:00+00:00",
            "short_n": 1,
            "long_n": 34,
            "duration_s": 8.0,
            "repeat": repeats,
            "busy_cores_at_start": 0.01,
            "load_average_at_start": 0.2,
            "noisy_threshold_cores": 0.1,
            "intervals_s": intervals,
            "variants": list(figures),
            "command": "python -m loadtest.switchinterval",
            "seconds_taken": 400.0,
            "recording_repeat": repeats,
            "recording_before_s": 0.2,
            "recording_after_s": 0.05,
        },
        "intervals": [
            {
                "switch_interval_s": interval,
                "busy_cores_at_start": 0.01,
                "load_average_at_start": 0.2,
                "servers": {variant: {"python": "3.11.7"} for variant in figures},
                "long_seconds_server": dict.fromkeys(figures, 0.5),
                "recordings": [
                    recording(variant, repeat, measure(interval), noisy=interval == noisy_at)
                    for variant, measure in figures.items()
                    for repeat in range(repeats)
                ],
                "runs": [
                    convoy_run(
                        variant, repeat, measure(interval), noisy=interval in noisy_intervals
                    )
                    for variant, measure in convoys.items()
                    for repeat in range(repeats)
                ],
            }
            for interval in intervals
        ],
    }


BEFORE = 10_000.0  # short req/s before the long request: t = 0.1 ms


def on_law(intervals_per_request: int, factor: float = 1.0) -> Callable[[float], Convoy]:
    """During-rates `factor` times the law's 1 / (k·i + t)."""
    return lambda i: (BEFORE, factor / (intervals_per_request * i + 1 / BEFORE), 0.53)


def immune(during_share: float = 0.8, long_seconds: float = 0.5) -> Callable[[float], Convoy]:
    """The control as predicted: during a fixed share of before, the long request steady."""
    return lambda i: (4_000.0, 4_000.0 * during_share, long_seconds)
