# loadtest/compare/progress.py
#
# Where a comparison is, for the person waiting: one line per step on stderr.

from __future__ import annotations

import sys

from loadtest.compare.plan import Plan

ENGINE_START_SECONDS = 2.5  # a load engine's start-up, on top of each run


class Progress:
    """One line per step on stderr: where we are and about how long is left."""

    def __init__(self, plan: Plan) -> None:
        self.total = len(plan.variants) * len(plan.scenarios) * plan.repeat
        self.step_seconds = plan.duration + ENGINE_START_SECONDS
        self.warmups_left = len(plan.variants)
        self.warmup_seconds = plan.warmup + ENGINE_START_SECONDS
        self.done = 0

    def step(self, variant: str, scenario: str, repeat: int, repeats: int) -> None:
        left = (
            self.total - self.done
        ) * self.step_seconds + self.warmups_left * self.warmup_seconds
        print(
            f"[{self.done + 1}/{self.total}] {variant}: {scenario}, repeat {repeat + 1}/{repeats}"
            f"  (about {left / 60:.1f} min left)",
            file=sys.stderr,
            flush=True,
        )
        self.done += 1

    def warmup(self, variant: str, seconds: float) -> None:
        print(f"      {variant}: warm-up {seconds:g} s", file=sys.stderr, flush=True)

    def warmed_up(self) -> None:
        self.warmups_left -= 1

    def long_alone(self, variant: str, long_n: int, seconds: float) -> None:
        print(
            f"      {variant}: fib({long_n}) alone takes {seconds:.2f} s on the server",
            file=sys.stderr,
            flush=True,
        )
