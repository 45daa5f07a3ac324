# loadtest/switchinterval/sweep.py
#
# The sweep itself (docs/design.md §6.7). Before each switch interval the
# machine is sampled for a second (the busy state at its start); then for
# each variant, two measurements at that interval (it is set once, at a
# server's start, with `--switch-interval`):
#
#   recordings  `repeat` timeline recordings (loadtest.timeline.record, here
#               on this Python with the server's own timeline on, no Docker,
#               no sampler): one short client in the talk's perf2 loop, one
#               long request; the short replies while the server computed
#               the long fib, the median gap between them, the fib's time.
#               Each with the machine's foreign CPU over it and its noisy
#               flag. The law is judged on these.
#   convoy      a server handed to the comparison runner as a running target,
#               measured as `python -m loadtest.compare --scenarios convoy`
#               would: warm-up, fib(long_n) alone, then `convoy.repeat`
#               convoy runs (none with --convoy-repeat 0), each with its
#               foreign CPU and noisy flag. Its "during" is the whole long
#               stage, the moments between long requests included: shown
#               beside the recordings, not judged.

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.compare.plan import Plan
from loadtest.compare.runner import compare
from loadtest.switchinterval.summary import IntervalRecord, Recording, fmt_interval
from loadtest.timeline.draw import figures
from loadtest.timeline.record import Recipe, load, record
from loadtest.toolbox import machine
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import local_variant

# Each recording: this much of the short client alone before the long request
# is sent (its rate gives the law's t), and after its reply.
RECORDING_BEFORE_S = 0.2
RECORDING_AFTER_S = 0.05


@dataclass(frozen=True)
class SweepPlan:
    intervals_s: list[float]  # in the order they run
    convoy: Plan  # the comparison's part: the convoy scenario only, convoy.repeat runs
    recordings: int  # timeline recordings per variant per interval


class SweepProgress:
    """One line per variant per interval on stderr: which, and about how long is left."""

    def __init__(self, plan: SweepPlan, first_guess: float) -> None:
        self.total = len(plan.intervals_s) * len(plan.convoy.variants)
        self.first_guess = first_guess  # seconds per variant, until one has been timed
        self.started = time.monotonic()
        self.done = 0

    def step(self, variant: str, interval: float) -> None:
        elapsed = time.monotonic() - self.started
        each = elapsed / self.done if self.done else self.first_guess
        left = (self.total - self.done) * each
        print(
            f"=== [{self.done + 1}/{self.total}] {variant} at switch interval "
            f"{fmt_interval(interval)}  (about {left / 60:.1f} min left)",
            file=sys.stderr,
            flush=True,
        )
        self.done += 1


def record_once(variant: str, interval: float, repeat: int, long_n: int, folder: Path) -> Recording:
    """One timeline recording of the variant at this interval: its figures, the machine over
    it (the server is this process's reaped child: its CPU, pool workers' included, is the
    lab's own)."""
    recipe = Recipe(
        long_n=long_n, switch_interval=interval, before=RECORDING_BEFORE_S,
        after=RECORDING_AFTER_S,
    )  # fmt: skip
    before = machine.snapshot()
    path = record(variant, folder, None, recipe)
    after = machine.snapshot()
    found = figures(load(path))
    path.unlink()
    if found["long_fib_s"] is None:
        raise LabError(f"{variant} recorded no fib({long_n}) of its own: no time to count in")
    gap = found["median_gap_during_ms"]
    return Recording(
        variant=variant,
        repeat=repeat,
        short_per_s_before=round(found["short_per_s_before"], 3),
        short_per_s_during=round(found["short_per_s_during"], 3),
        short_replies_during=found["short_replies_during"],
        median_gap_during_ms=None if gap is None else round(gap, 4),
        long_fib_s=round(found["long_fib_s"], 4),
        long_round_trip_s=round(found["long_round_trip_s"], 4),
        **machine.foreign_cpu(before, after, 0.0),
    )


def measure_interval(
    plan: SweepPlan, interval: float, progress: SweepProgress, folder: Path
) -> IntervalRecord:
    """Every variant's recordings and convoy runs at this switch interval."""
    busy = machine.busy_now()
    if busy.busy:
        print(busy.warning(), file=sys.stderr, flush=True)
    result = IntervalRecord(
        switch_interval_s=interval,
        busy_cores_at_start=busy.cores,
        load_average_at_start=busy.load,
        servers={},
        long_seconds_server={},
        recordings=[],
        runs=[],
    )
    for variant in plan.convoy.variants:
        progress.step(variant, interval)
        result["recordings"] += [
            record_once(variant, interval, repeat, plan.convoy.long_n, folder / variant)
            for repeat in range(plan.recordings)
        ]
        flags = ["--switch-interval", repr(interval)]
        with local_variant(variant, flags, cpus=plan.convoy.server_cpus) as target:
            one = dataclasses.replace(plan.convoy, variants=[variant])
            measured = compare(one, {variant: target}, "local")
        result["servers"].update(measured["servers"])
        result["long_seconds_server"].update(measured["long_seconds_server"])
        result["runs"] += measured["runs"]
    return result


def sweep(plan: SweepPlan, seconds_per_variant: float) -> list[IntervalRecord]:
    """Every interval of the plan, in its order."""
    progress = SweepProgress(plan, seconds_per_variant)
    with tempfile.TemporaryDirectory(prefix="fiblab-switch-interval-") as folder:
        return [
            measure_interval(plan, interval, progress, Path(folder))
            for interval in plan.intervals_s
        ]
