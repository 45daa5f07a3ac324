# loadtest/compare/verdicts.py
#
# The talk's behaviours as rules that hold on any hardware (docs/design.md §6), each a
# function of a comparison run's medians over repeats, each giving a Verdict:
# reproduced, not reproduced, or None when the data cannot say (a scenario
# stage is missing, or the load generator, not the server, limited a figure
# the rule reads: such a figure is never presented as the server's; or every
# repeat of a figure it reads ran while other processes kept the machine
# busy: noisy, to be rerun on a quiet machine).
# A rule is judged only for the variants present in the run.

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from loadtest.compare.summary import RunGroup, Summary, find_group, group_runs, variants_of
from loadtest.toolbox.formats import (
    NOISY_MARK,
    fmt_factor,
    fmt_percent,
    fmt_rps,
    fmt_seconds,
    variant_order,
)

RuleKey = Literal[
    "long-serialised",
    "convoy-collapse",
    "convoy-stall",
    "threadpool-collapse",
    "separate-process-immune",
    "pool-baseline-below-threads",
    # beyond the talk: docs/design.md §3.1's predictions, written before measuring
    "inline-loop-stall",
    "inline-loop-long-serialised",
    "uvloop-above-asyncio",
    "interp-pool-immune",
    "interp-pool-above-procpool",
    "interp-pool-below-inline",
    "second-long-in-parallel",
    "prefork-convoy-partial",
    "tothread-convoy",
    "tothread-long-serialised",
    "tothread-below-asyncio",
    "trio-below-asyncio",
    # docs/design.md §3.2's prediction: judged over a sweep of switch intervals
    # (loadtest.switchinterval), never by verdicts() below, which reads one run
    "switch-interval law",
]

# Which variants each rule speaks of (docs/design.md §3 names).
SERIALISED_LONG_VARIANTS = ("threads", "coro")  # fib under one GIL / one loop
INLINE_LOOP_VARIANTS = ("coro", "asyncio")  # fib runs on the only loop thread
PROCESS_POOL_VARIANTS = (
    "threads-procpool",
    "coro-procpool",
    "coro-asyncsocket",
    "asyncio-procpool",
)

# Tolerances. Ratios of seconds per long request to one client's: k clients
# sharing one core take ~k times as long; the bounds leave room for a noisy
# 2-core machine shared with other work.
LONG_RATIO_BOUNDS: dict[int, tuple[float, float]] = {2: (1.6, 2.5), 3: (2.4, 3.7)}
COLLAPSE_FACTOR = 10.0  # the convoy: before/during >= 10 (talk: 25,000 -> 90, ~280x)
STALL_FRACTION = 0.02  # "(almost) 0": during <= 2 % of before (talk: 15,000 -> 0)
IMMUNE_FRACTION = 0.5  # a hog elsewhere: during >= half of before (talk: "not affected")
# "below threads" beyond repeat-to-repeat noise (talk: "drops significantly";
# measured here: about a third)
BASELINE_BELOW_FRACTION = 0.9

# Beyond the talk (docs/design.md §3.1).
BEYOND_INLINE_VARIANTS = ("gevent", "asyncio-uvloop", "trio")  # fib on the only loop thread
INTERP_POOL_VARIANTS = ("threads-interppool", "asyncio-interppool")
# Each interpreter pool's talk counterparts: (fib inline, fib in a process pool).
INTERP_POOL_COUNTERPARTS = {
    "threads-interppool": ("threads", "threads-procpool"),
    "asyncio-interppool": ("asyncio", "asyncio-procpool"),
}
PARALLEL_LONG_VARIANTS = (*INTERP_POOL_VARIANTS, "prefork")
UVLOOP_ABOVE_FACTOR = 1.2  # §3.1: uvloop's short req/s 1.2-2x asyncio's
ABOVE_PROCPOOL_FACTOR = 1.1  # "above the process pool" beyond repeat-to-repeat noise
# Two long clients on two workers and two cores: about one client's time,
# not two (a shared core, the load generator, stretches it a little).
PARALLEL_LONG_RATIO = 1.4
PARTIAL_FRACTION = 0.1  # prefork: short req/s during >= 10 % of before (threads: ~1 %)
TOTHREAD_CONVOY_FRACTION = 0.05  # §3.1: during <= 5 % of before, like coro-threadpool
# §3.1's short req/s against asyncio's, the end of each predicted range
# nearest asyncio: to_thread 0.3-0.8x (a thread hop per request), trio
# 0.5-1x (a run loop in pure Python).
TOTHREAD_BELOW_ASYNCIO = 0.8
TRIO_BELOW_ASYNCIO = 1.0

# The switch-interval law (docs/design.md §3.2): short req/s during the long
# request is 1 / (k·i + t) at switch interval i, t = 1 / (short req/s before),
# where k is the intervals a short request waits for the GIL, within a factor.
SWITCH_LAW_INTERVALS_PER_REQUEST = {"threads": 1, "coro-threadpool": 3}
SWITCH_LAW_FACTOR = {"threads": 1.5, "coro-threadpool": 2.0}
# The control: fib in another process, so no law; its during-rate × i must
# grow with i (span over the sweep) and its long request keep its time.
SWITCH_LAW_CONTROL = "threads-procpool"
SWITCH_LAW_VARIANTS = (*SWITCH_LAW_INTERVALS_PER_REQUEST, SWITCH_LAW_CONTROL)
CONTROL_SPAN_FACTOR = 10.0  # during × i: max / min over the sweep, more than this
CONTROL_LONG_TOLERANCE = 0.1  # each interval's long request within 10 % of the sweep's median


@dataclass(frozen=True)
class Rule:
    key: RuleKey
    behaviour: str  # what the talk shows, in words
    test: str  # the rule with its tolerance
    beyond_talk: bool = False  # a prediction of docs/design.md §3.1 or §3.2, not the talk's


RULES: dict[RuleKey, Rule] = {
    rule.key: rule
    for rule in (
        Rule(
            "long-serialised",
            "2 and 3 long clients take ~2× and ~3× one client's time per request",
            "s/request ratio to 1 client within [{}, {}] for 2 clients and [{}, {}] for 3".format(
                *LONG_RATIO_BOUNDS[2], *LONG_RATIO_BOUNDS[3]
            ),
        ),
        Rule(
            "convoy-collapse",
            "one long request collapses short req/s (the GIL convoy)",
            f"short req/s before / during the long request ≥ {COLLAPSE_FACTOR:.0f}×",
        ),
        Rule(
            "convoy-stall",
            "a long request run inline stops every other client: short req/s → (almost) 0",
            f"short req/s during ≤ {STALL_FRACTION:.0%} of before",
        ),
        Rule(
            "threadpool-collapse",
            "a thread pool brings the convoy back: collapses like threads",
            f"short req/s before / during the long request ≥ {COLLAPSE_FACTOR:.0f}×",
        ),
        Rule(
            "separate-process-immune",
            "a CPU hog in a separate process does not collapse short requests",
            f"short req/s during ≥ {IMMUNE_FRACTION:.0%} of before",
        ),
        Rule(
            "pool-baseline-below-threads",
            "a process pool costs baseline: short req/s below threads'",
            f"short req/s ≤ {BASELINE_BELOW_FRACTION:.0%} of threads'",
        ),
        Rule(
            "inline-loop-stall",
            "fib never yields: a long request stops every client, as on coro",
            f"short req/s during ≤ {STALL_FRACTION:.0%} of before",
            beyond_talk=True,
        ),
        Rule(
            "inline-loop-long-serialised",
            "one loop thread: 2 and 3 long clients take ~2× and ~3× one client's time",
            "s/request ratio to 1 client within [{}, {}] for 2 clients and [{}, {}] for 3".format(
                *LONG_RATIO_BOUNDS[2], *LONG_RATIO_BOUNDS[3]
            ),
            beyond_talk=True,
        ),
        Rule(
            "uvloop-above-asyncio",
            "libuv's loop: cheaper I/O per request than asyncio's own",
            f"short req/s ≥ {UVLOOP_ABOVE_FACTOR:g}× asyncio's",
            beyond_talk=True,
        ),
        Rule(
            "interp-pool-immune",
            "fib under another interpreter's GIL: a long request does not collapse short ones",
            f"short req/s during ≥ {IMMUNE_FRACTION:.0%} of before",
            beyond_talk=True,
        ),
        Rule(
            "interp-pool-above-procpool",
            "a call into another interpreter costs less than a process pool's round trip",
            f"short req/s ≥ {ABOVE_PROCPOOL_FACTOR:g}× the same model's process pool's",
            beyond_talk=True,
        ),
        Rule(
            "interp-pool-below-inline",
            "but more than an inline call",
            f"short req/s ≤ {BASELINE_BELOW_FRACTION:.0%} of the same model's inline fib",
            beyond_talk=True,
        ),
        Rule(
            "second-long-in-parallel",
            "a GIL per worker: 2 long clients take about one client's time",
            f"s/request with 2 clients ≤ {PARALLEL_LONG_RATIO:g}× with 1",
            beyond_talk=True,
        ),
        Rule(
            "prefork-convoy-partial",
            "a long request convoys only its own process's clients",
            f"short req/s during ≥ {PARTIAL_FRACTION:.0%} of before",
            beyond_talk=True,
        ),
        Rule(
            "tothread-convoy",
            "fib in a thread of the loop's process: the GIL convoy is back, as on coro-threadpool",
            f"short req/s during ≤ {TOTHREAD_CONVOY_FRACTION:.0%} of before",
            beyond_talk=True,
        ),
        Rule(
            "tothread-long-serialised",
            "threads under one GIL: 2 and 3 long clients take ~2× and ~3× one client's time",
            "s/request ratio to 1 client within [{}, {}] for 2 clients and [{}, {}] for 3".format(
                *LONG_RATIO_BOUNDS[2], *LONG_RATIO_BOUNDS[3]
            ),
            beyond_talk=True,
        ),
        Rule(
            "tothread-below-asyncio",
            "every request, fib(1) too, hops to a thread and back: below asyncio",
            f"short req/s ≤ {TOTHREAD_BELOW_ASYNCIO:.0%} of asyncio's",
            beyond_talk=True,
        ),
        Rule(
            "trio-below-asyncio",
            "trio's run loop is pure Python: at most asyncio's short req/s",
            f"short req/s ≤ {TRIO_BELOW_ASYNCIO:.0%} of asyncio's",
            beyond_talk=True,
        ),
        Rule(
            "switch-interval law",
            "the switch interval sets the convoy: a short request waits about one interval "
            "for the GIL (threads), three on coro-threadpool; the process pool does not care",
            "at every interval i, short req/s during ÷ predicted within ×{:g} of 1/(i + t) on "
            "threads and ×{:g} of 1/({}i + t) on coro-threadpool (t = 1/before); {}: during "
            "≥ {:.0%} of before, during × i spans more than {:g}× over the sweep, long "
            "request within {:.0%} of its median".format(
                SWITCH_LAW_FACTOR["threads"],
                SWITCH_LAW_FACTOR["coro-threadpool"],
                SWITCH_LAW_INTERVALS_PER_REQUEST["coro-threadpool"],
                SWITCH_LAW_CONTROL,
                IMMUNE_FRACTION,
                CONTROL_SPAN_FACTOR,
                CONTROL_LONG_TOLERANCE,
            ),
            beyond_talk=True,
        ),
    )
}

# The talk's figures (loadtest/talk/figures.py keys) each verdict is set beside.
TALK_FIGURES: dict[tuple[RuleKey, str], tuple[str, ...]] = {
    ("long-serialised", "threads"): ("threads-long-1", "threads-long-2", "threads-long-3"),
    ("long-serialised", "coro"): ("coro-long-2",),
    ("convoy-collapse", "threads"): ("threads-short", "threads-convoy"),
    ("convoy-stall", "coro"): ("coro-short", "coro-convoy"),
    ("convoy-stall", "asyncio"): ("coro-convoy",),
    ("threadpool-collapse", "coro-threadpool"): ("coro-threadpool-convoy",),
    ("separate-process-immune", "threads-procpool"): (
        "threads-separate-process-hog",
        "threads-procpool-convoy",
    ),
    ("separate-process-immune", "coro-procpool"): ("coro-procpool-convoy",),
    # the talk's last server (AsyncSocket + process pool) is coro-procpool made readable
    ("separate-process-immune", "coro-asyncsocket"): ("coro-procpool-convoy",),
    ("pool-baseline-below-threads", "threads-procpool"): ("threads-procpool-short",),
    ("pool-baseline-below-threads", "coro-procpool"): ("coro-procpool-short",),
    ("pool-baseline-below-threads", "coro-asyncsocket"): ("coro-procpool-short",),
}


NOISY_STATUS = "noisy — rerun on a quiet machine"


@dataclass(frozen=True)
class Verdict:
    rule: RuleKey
    variant: str
    reproduced: bool | None  # None: not measured, loadgen-bound or noisy
    figures: str  # the lab's figures the verdict rests on
    loadgen_bound: bool = False  # a figure read was limited by the load generator
    noisy: bool = False  # a figure read comes only from runs on a busy machine
    # How far the lab's figure is from the rule's bound, as a factor: >= 1 is
    # reproduced with that much to spare (10× collapse against a 10× rule is
    # 1.0), < 1 falls short; inf when the short requests stopped dead. It says
    # how sensitive a verdict is: a margin near 1 flips on a noisier machine.
    margin: float | None = None

    @property
    def margin_text(self) -> str:
        if self.margin is None:
            return "–"
        if math.isinf(self.margin):
            return "∞ (stopped dead)"
        if self.margin >= 1:
            return (
                f"{self.margin:.2g}× to spare"
                if self.margin < 10
                else f"{self.margin:.0f}× to spare"
            )
        return f"{1 / self.margin:.2g}× short"

    @property
    def status(self) -> str:
        if self.noisy:
            return NOISY_STATUS
        if self.loadgen_bound:
            return "loadgen-bound"
        if self.reproduced is None:
            return "not measured"
        if RULES[self.rule].beyond_talk:
            return "as predicted" if self.reproduced else "not as predicted"
        return "reproduced" if self.reproduced else "not reproduced"

    @property
    def mark(self) -> str:
        return {
            "reproduced": "✅",
            "not reproduced": "❌",
            "as predicted": "✅",
            "not as predicted": "❌",
            "loadgen-bound": "⚠",
            "not measured": "❔",
            NOISY_STATUS: NOISY_MARK,
        }[self.status]

    @property
    def talk_figures(self) -> tuple[str, ...]:
        return TALK_FIGURES.get((self.rule, self.variant), ())

    def line(self) -> str:
        """One line for a terminal: mark, status, variant, behaviour, figures."""
        behaviour = RULES[self.rule].behaviour
        margin = f" [margin: {self.margin_text}]" if self.margin is not None else ""
        return f"{self.mark} {self.status}: {self.variant}: {behaviour}: {self.figures}{margin}"


def judged(
    rule: RuleKey, variant: str, margin: float, figures: str, groups: Iterable[RunGroup]
) -> Verdict:
    """The verdict on figures whose distance from the rule's bound is `margin` (>= 1 holds)."""
    groups = list(groups)
    # A figure measured only while other processes kept the machine busy is
    # not the experiment: the convoy's depth depends on a free core. (A busy
    # machine can also starve the load generator: this is said first.)
    noisy = [group for group in groups if group.only_noisy]
    if noisy:
        where = "; ".join(f"{group.variant} {group.label}" for group in noisy)
        note = (
            f"{figures} (every repeat of {where} ran while other processes used the "
            f"machine {NOISY_MARK}: not judged)"
        )
        return Verdict(rule, variant, None, note, noisy=True, margin=margin)
    partly = [group for group in groups if group.noisy]
    if partly:
        counts = "; ".join(
            f"{group.variant} {group.label}: {group.noisy_runs} of {len(group.runs)} repeats noisy"
            for group in partly
        )
        figures += f" ({counts} {NOISY_MARK})"
    # A figure the load generator limited says nothing about the server.
    bound = [group for group in groups if group.loadgen_bound]
    if bound:
        where = "; ".join(
            f"{group.variant} {group.label}: {group.loadgen_runs} of {len(group.runs)} repeats"
            for group in bound
        )
        note = f"{figures} (limited by the load generator in {where}: not the server's figure)"
        return Verdict(rule, variant, None, note, loadgen_bound=True, margin=margin)
    return Verdict(rule, variant, margin >= 1, figures, margin=margin)


def no_data(rule: RuleKey, variant: str, why: str) -> Verdict:
    return Verdict(rule, variant, None, why)


def _repeats(group: RunGroup) -> str:
    count = len(group.runs)
    return f"median of {count} repeats" if count > 1 else "1 run"


# --- the rules ----------------------------------------------------------------


def long_serialised(
    groups: Sequence[RunGroup], variant: str, rule: RuleKey = "long-serialised"
) -> Verdict | None:
    stages = {k: find_group(groups, variant, "long", k) for k in (1, 2, 3)}
    if not any(stages.values()):
        return None  # the long scenario was not run for this variant
    one = stages[1]
    base = one.stat("seconds_per_request") if one else None
    if one is None or base is None or base.median <= 0:
        why = f"1 client: {one.gap}" if one is not None and one.gap else "no 1-client long figure"
        return no_data(rule, variant, f"{why}: nothing to compare with")
    parts = [f"1 client {fmt_seconds(base.median)}"]
    margin = math.inf
    measured: list[RunGroup] = [one]
    unmeasured: list[str] = []
    for clients, (low, high) in LONG_RATIO_BOUNDS.items():
        stage = stages[clients]
        seconds = stage.stat("seconds_per_request") if stage else None
        if stage is None or seconds is None:
            gap = stage.gap if stage is not None else None
            parts.append(f"{clients} clients: {gap}" if gap else f"{clients} clients not measured")
            unmeasured.append(f"{clients} clients")
            continue
        measured.append(stage)
        ratio = seconds.median / base.median
        margin = min(margin, ratio / low, high / ratio)  # >= 1 inside [low, high]
        parts.append(f"{clients} clients {fmt_seconds(seconds.median)} ({ratio:.2f}×)")
    if unmeasured:
        # The rule names both ratios: half of its evidence is no verdict.
        return no_data(
            rule,
            variant,
            f"{' and '.join(unmeasured)} not measured: {', '.join(parts)}",
        )
    return judged(rule, variant, margin, ", ".join(parts), measured)


def _convoy_figures(
    groups: Sequence[RunGroup], variant: str
) -> tuple[RunGroup, float, float] | None:
    group = find_group(groups, variant, "convoy")
    if group is None:
        return None
    return group, group.median("short_rps_before"), group.median("short_rps_during")


def _convoy_text(group: RunGroup, before: float, during: float) -> str:
    if during < before:
        change = f"{fmt_factor(math.inf if during == 0 else before / during)} less"
    else:
        change = "no drop"
    long_seconds = group.stat("long_seconds")
    long_text = f", long request {fmt_seconds(long_seconds.median)}" if long_seconds else ""
    return (
        f"short req/s {fmt_rps(before)} before → {fmt_rps(during)} during: "
        f"{fmt_percent(during / before)} of before ({change}){long_text}; {_repeats(group)}"
    )


def _convoy_rule(
    rule: RuleKey,
    groups: Sequence[RunGroup],
    variant: str,
    margin: Callable[[float, float], float],
) -> Verdict | None:
    figures = _convoy_figures(groups, variant)
    if figures is None:
        return None
    group, before, during = figures
    if before <= 0:
        return no_data(rule, variant, "no short requests were answered before the long one")
    return judged(
        rule, variant, margin(before, during), _convoy_text(group, before, during), [group]
    )


def _ratio(numerator: float, denominator: float) -> float:
    return math.inf if denominator == 0 else numerator / denominator


def _collapsed(before: float, during: float) -> float:
    return _ratio(before, during * COLLAPSE_FACTOR)  # before >= 10 × during


def convoy_collapse(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule("convoy-collapse", groups, variant, _collapsed)


def threadpool_collapse(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule("threadpool-collapse", groups, variant, _collapsed)


def convoy_stall(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule(
        "convoy-stall",
        groups,
        variant,
        lambda before, during: _ratio(STALL_FRACTION * before, during),  # during <= 2 % before
    )


def separate_process_immune(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule(
        "separate-process-immune",
        groups,
        variant,
        lambda before, during: _ratio(during, IMMUNE_FRACTION * before),  # during >= half
    )


def _baseline(groups: Sequence[RunGroup], variant: str) -> tuple[RunGroup, float, str] | None:
    # The short scenario's req/s; else the convoy's short req/s before the long request.
    short = find_group(groups, variant, "short")
    if short is not None:
        return short, short.median("rps"), "short"
    convoy = find_group(groups, variant, "convoy")
    if convoy is not None:
        return convoy, convoy.median("short_rps_before"), "convoy, before the long request"
    return None


def pool_baseline_below_threads(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    rule: RuleKey = "pool-baseline-below-threads"
    pool = _baseline(groups, variant)
    if pool is None:
        return None
    threads = _baseline(groups, "threads")
    if threads is None:
        return no_data(
            rule, variant, "threads was not measured in this run: nothing to compare with"
        )
    pool_group, pool_rps, source = pool
    threads_group, threads_rps, threads_source = threads
    if threads_rps <= 0:
        return no_data(rule, variant, "threads answered no short requests")
    fraction = pool_rps / threads_rps
    figures = (
        f"{fmt_rps(pool_rps)} req/s ({source}) vs threads {fmt_rps(threads_rps)} req/s "
        f"({threads_source}): {fraction:.0%} of threads'"
    )
    margin = _ratio(BASELINE_BELOW_FRACTION, fraction)  # fraction <= 90 %
    return judged(rule, variant, margin, figures, [pool_group, threads_group])


# --- beyond the talk (docs/design.md §3.1) ---------------------------------------


def inline_loop_stall(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule(
        "inline-loop-stall",
        groups,
        variant,
        lambda before, during: _ratio(STALL_FRACTION * before, during),
    )


def inline_loop_long_serialised(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return long_serialised(groups, variant, "inline-loop-long-serialised")


def interp_pool_immune(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule(
        "interp-pool-immune",
        groups,
        variant,
        lambda before, during: _ratio(during, IMMUNE_FRACTION * before),
    )


def prefork_convoy_partial(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule(
        "prefork-convoy-partial",
        groups,
        variant,
        lambda before, during: _ratio(during, PARTIAL_FRACTION * before),
    )


def tothread_convoy(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _convoy_rule(
        "tothread-convoy",
        groups,
        variant,
        lambda before, during: _ratio(TOTHREAD_CONVOY_FRACTION * before, during),
    )


def tothread_long_serialised(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return long_serialised(groups, variant, "tothread-long-serialised")


def _against(
    rule: RuleKey,
    groups: Sequence[RunGroup],
    variant: str,
    reference: str,
    margin: Callable[[float], float],
) -> Verdict | None:
    """A rule on short req/s as a fraction of `reference`'s (margin >= 1 holds)."""
    own = _baseline(groups, variant)
    if own is None:
        return None
    other = _baseline(groups, reference)
    if other is None:
        return no_data(
            rule, variant, f"{reference} was not measured in this run: nothing to compare with"
        )
    own_group, own_rps, source = own
    other_group, other_rps, other_source = other
    if other_rps <= 0:
        return no_data(rule, variant, f"{reference} answered no short requests")
    fraction = own_rps / other_rps
    figures = (
        f"{fmt_rps(own_rps)} req/s ({source}) vs {reference} {fmt_rps(other_rps)} req/s "
        f"({other_source}): {fraction:.0%} of {reference}'s"
    )
    return judged(rule, variant, margin(fraction), figures, [own_group, other_group])


def uvloop_above_asyncio(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _against(
        "uvloop-above-asyncio", groups, variant, "asyncio",
        lambda fraction: fraction / UVLOOP_ABOVE_FACTOR,
    )  # fmt: skip


def interp_pool_above_procpool(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _against(
        "interp-pool-above-procpool", groups, variant, INTERP_POOL_COUNTERPARTS[variant][1],
        lambda fraction: fraction / ABOVE_PROCPOOL_FACTOR,
    )  # fmt: skip


def interp_pool_below_inline(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _against(
        "interp-pool-below-inline", groups, variant, INTERP_POOL_COUNTERPARTS[variant][0],
        lambda fraction: _ratio(BASELINE_BELOW_FRACTION, fraction),
    )  # fmt: skip


def tothread_below_asyncio(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _against(
        "tothread-below-asyncio", groups, variant, "asyncio",
        lambda fraction: _ratio(TOTHREAD_BELOW_ASYNCIO, fraction),
    )  # fmt: skip


def trio_below_asyncio(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    return _against(
        "trio-below-asyncio", groups, variant, "asyncio",
        lambda fraction: _ratio(TRIO_BELOW_ASYNCIO, fraction),
    )  # fmt: skip


def second_long_in_parallel(groups: Sequence[RunGroup], variant: str) -> Verdict | None:
    rule: RuleKey = "second-long-in-parallel"
    one, two = (find_group(groups, variant, "long", k) for k in (1, 2))
    if one is None and two is None:
        return None
    base = one.stat("seconds_per_request") if one else None
    pair = two.stat("seconds_per_request") if two else None
    if one is None or two is None or base is None or pair is None or base.median <= 0:
        return no_data(rule, variant, "no 1- and 2-client long figures to compare")
    ratio = pair.median / base.median
    figures = (
        f"1 client {fmt_seconds(base.median)}, 2 clients {fmt_seconds(pair.median)} "
        f"({ratio:.2f}×); {_repeats(two)}"
    )
    return judged(rule, variant, _ratio(PARALLEL_LONG_RATIO, ratio), figures, [one, two])


RuleCheck = Callable[[Sequence[RunGroup], str], Verdict | None]

# Each rule with the variants it speaks of, in the talk's order.
CHECKS: tuple[tuple[RuleCheck, tuple[str, ...]], ...] = (
    (long_serialised, SERIALISED_LONG_VARIANTS),
    (convoy_collapse, ("threads",)),
    (separate_process_immune, PROCESS_POOL_VARIANTS),
    (pool_baseline_below_threads, PROCESS_POOL_VARIANTS),
    (convoy_stall, INLINE_LOOP_VARIANTS),
    (threadpool_collapse, ("coro-threadpool",)),
    # beyond the talk
    (inline_loop_stall, BEYOND_INLINE_VARIANTS),
    (inline_loop_long_serialised, BEYOND_INLINE_VARIANTS),
    (uvloop_above_asyncio, ("asyncio-uvloop",)),
    (interp_pool_immune, INTERP_POOL_VARIANTS),
    (interp_pool_above_procpool, INTERP_POOL_VARIANTS),
    (interp_pool_below_inline, INTERP_POOL_VARIANTS),
    (second_long_in_parallel, PARALLEL_LONG_VARIANTS),
    (prefork_convoy_partial, ("prefork",)),
    (tothread_convoy, ("asyncio-tothread",)),
    (tothread_long_serialised, ("asyncio-tothread",)),
    (tothread_below_asyncio, ("asyncio-tothread",)),
    (trio_below_asyncio, ("trio",)),
)


def verdicts(summary: Summary) -> list[Verdict]:
    """Every rule's verdict for every variant present that it speaks of."""
    groups = group_runs(summary)
    present = set(variants_of(summary))
    found: list[Verdict] = []
    for check, variants in CHECKS:
        for variant in sorted(present.intersection(variants), key=variant_order):
            verdict = check(groups, variant)
            if verdict is not None:
                found.append(verdict)
    return found
