# loadtest/switchinterval/verdict.py
#
# The rule `switch-interval law` (docs/design.md §3.2, §6.7) judged over a
# sweep's timeline recordings: for threads and coro-threadpool, the short
# requests' rate while the server computed the long fib against the law's
# 1 / (k·i + t) at every interval; for the control, threads-procpool, that
# no law holds: its during-rate stays near its before-rate, so during × i
# grows with i, and its long fib keeps its time. The rule's bounds and text
# are loadtest.compare.verdicts' (one table of rules, docs/design.md §6); so
# are the verdict, its margin and the handling of noisy repeats (judged),
# read over the variant's recordings at every interval. The comparison's
# convoy runs are shown beside, never judged.

from __future__ import annotations

import statistics
from collections.abc import Sequence

from loadtest.compare.verdicts import (
    CONTROL_LONG_TOLERANCE,
    CONTROL_SPAN_FACTOR,
    IMMUNE_FRACTION,
    SWITCH_LAW_CONTROL,
    SWITCH_LAW_FACTOR,
    SWITCH_LAW_VARIANTS,
    RuleKey,
    Verdict,
    judged,
    no_data,
)
from loadtest.switchinterval.summary import Point, SweepSummary, fmt_interval, law_text, points
from loadtest.toolbox.formats import fmt_percent

RULE: RuleKey = "switch-interval law"


def _repeats(found: Sequence[Point]) -> str:
    counts = sorted({len(point.group.runs) for point in found})
    if counts == [1]:
        return "1 recording per interval"
    return f"median of {'–'.join(map(str, counts))} recordings per interval"


def law_verdict(variant: str, found: Sequence[Point]) -> Verdict:
    """threads, coro-threadpool: during the long fib ÷ predicted within ×F at every
    interval."""
    factor = SWITCH_LAW_FACTOR[variant]
    missing = [point for point in found if point.ratio is None]
    if missing:
        where = ", ".join(fmt_interval(point.interval_s) for point in missing)
        return no_data(RULE, variant, f"no short request answered before the long one at {where}")
    ratios = [(point, point.ratio) for point in found if point.ratio is not None]

    def margin_of(ratio: float) -> float:
        # >= 1 inside [1/F, F]; a during-rate of 0 has no margin at all
        return factor * min(ratio, 1.0 / ratio) if ratio > 0 else 0.0

    worst, worst_ratio = min(ratios, key=lambda pair: margin_of(pair[1]))
    figures = (
        f"during the long fib ÷ {law_text(variant)}: "
        + ", ".join(f"{fmt_interval(point.interval_s)} {ratio:.2f}×" for point, ratio in ratios)
        + f" (furthest at {fmt_interval(worst.interval_s)}: {worst_ratio:.2f}×, bound "
        f"×{factor:g}); {_repeats(found)}"
    )
    margin = margin_of(worst_ratio)
    return judged(RULE, variant, margin, figures, [point.group for point in found])


def control_verdict(variant: str, found: Sequence[Point]) -> Verdict:
    """threads-procpool: during ≥ half of before at every interval, during × i spanning more
    than CONTROL_SPAN_FACTOR over the sweep, the server's long fib within
    CONTROL_LONG_TOLERANCE of its median at every interval; the margin is the smallest of
    the three."""
    if any(point.before.median <= 0 for point in found):
        return no_data(RULE, variant, "no short request answered before the long one")
    if len(found) < 2:
        return no_data(RULE, variant, "one interval: no span to judge")
    kept = min(found, key=lambda point: point.during.median / point.before.median)
    kept_fraction = kept.during.median / kept.before.median
    kept_margin = kept_fraction / IMMUNE_FRACTION

    per_interval = [point.per_interval for point in found]
    span = max(per_interval) / min(per_interval) if min(per_interval) > 0 else float("inf")
    span_margin = span / CONTROL_SPAN_FACTOR

    seconds = [point.long_seconds.median for point in found]
    middle = statistics.median(seconds)
    # each interval's long request over the sweep's median: >= 1 inside [1 - tol, 1 + tol]
    shares = [value / middle for value in seconds]
    low, high = 1 - CONTROL_LONG_TOLERANCE, 1 + CONTROL_LONG_TOLERANCE
    long_margin = min(min(share / low, high / share) for share in shares)
    furthest = max(abs(share - 1) for share in shares)
    figures = (
        f"during ≥ {fmt_percent(kept_fraction)} of before (lowest at "
        f"{fmt_interval(kept.interval_s)}; bound {IMMUNE_FRACTION:.0%}); during × i spans "
        f"{span:.1f}× over the sweep (bound > {CONTROL_SPAN_FACTOR:g}×); long fib "
        f"{min(seconds):.3f}–{max(seconds):.3f} s, at most {fmt_percent(furthest)} from its "
        f"median {middle:.3f} s (bound {CONTROL_LONG_TOLERANCE:.0%}); {_repeats(found)}"
    )
    margin = min(kept_margin, span_margin, long_margin)
    return judged(RULE, variant, margin, figures, [point.group for point in found])


def verdicts(sweep: SweepSummary) -> list[Verdict]:
    """The law's verdict for every variant of the sweep that the rule names."""
    found = points(sweep)
    judged_here: list[Verdict] = []
    for variant in SWITCH_LAW_VARIANTS:
        if variant not in found:
            continue
        if variant == SWITCH_LAW_CONTROL:
            judged_here.append(control_verdict(variant, found[variant]))
        else:
            judged_here.append(law_verdict(variant, found[variant]))
    return judged_here
