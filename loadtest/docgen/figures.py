# loadtest/docgen/figures.py
#
# The inline figures: one phrase each, read from the committed reports, with
# the reports' own marks († the load generator set it, ‡ noisy). Where a
# phrase quotes a rule's bound, the bound is the rule's own constant, so a
# page cannot quote a bound the code no longer has. The talk's 2015 figures
# come from loadtest/talk/figures.py, never retyped.

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from loadtest.capacity import runner as capacity_runner
from loadtest.compare.plan import PHI
from loadtest.compare.report.tables import group_marks
from loadtest.compare.summary import RunGroup, drop_factor, run_number
from loadtest.compare.verdicts import COLLAPSE_FACTOR, LONG_RATIO_BOUNDS, Verdict
from loadtest.docgen.context import Context
from loadtest.docgen.registry import Registry, Render
from loadtest.docgen.reports import ReportError, Reports
from loadtest.talk import figures as talk
from loadtest.toolbox import machine
from loadtest.toolbox.formats import fmt_factor, fmt_rps, marks

FIGURES = Registry()

# The committed reports, relative to docs/results: one folder per step of
# `make results` (loadtest/results.py), each named after its step.
TALK = "talk/summary.json"  # make compare: the talk's nine variants
MODERN = "modern/summary.json"  # make compare-modern: the eleven variants
ONE_BUSY = "one-busy-core/summary.json"
TWO_BUSY = "two-busy-cores/summary.json"
PINNED = "pinning/summary.json"  # the talk's nine pinned; its unpinned side is TALK
VERSIONS = {
    "host": "versions/host/summary.json",
    "3.13": "versions/3.13/summary.json",
    "3.14": "versions/3.14/summary.json",
}
CAPACITY = "capacity/summary.json"
SWITCH_INTERVAL = "switch-interval/summary.json"
# The sweep's verdicts are in its report.md only (loadtest/switchinterval renders them;
# nothing may import that runner, tests/repo/test_layers.py): read from there.
SWITCH_INTERVAL_REPORT = "switch-interval/report.md"
SWITCH_INTERVAL_VERDICTS = "## Verdict"
CONNECTIONS = "connections/report.json"
TIMELINE = "timeline/timeline.json"
# The benchmarks (tests/bench), each a report.json and the report.md rendered from it.
RELIABILITY = "reliability/report.json"
GIL_PROBE = "gil-probe/report.json"
PREFORK_COST = "prefork-cost/report.json"
TIMELINE_COST = "timeline-cost/report.json"
YIELD_COST = "yield-cost/report.json"
BUCKETING_COST = "bucketing-cost/report.json"
# `make results`' own record: every step's commands, status and seconds.
RESULTS_RUN = "results.json"

PROCESS_POOLS = ("threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool")
INTERP_POOLS = ("threads-interppool", "asyncio-interppool")
LONG_RULES = ("long-serialised", "inline-loop-long-serialised", "tothread-long-serialised")
FIB_ESTIMATES = (30, 35, 40)


# --- text ----------------------------------------------------------------------


def percent(fraction: float, digits: int = 0) -> str:
    return f"{fraction * 100:.{digits}f} %"


def share(fraction: float) -> str:
    """A share of before: 158 %, 1.8 %, 0.44 % (a collapse keeps two digits)."""
    value = fraction * 100
    return f"{value:.0f} %" if value >= 10 else f"{value:.2g} %"


def seconds(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} s"


def span(values: Iterable[float], fmt: Callable[[float], str], joiner: str = "–") -> str:
    """low–high as text, or the one value when both ends read the same."""
    found = sorted(values)
    if not found:
        raise ValueError("no values")
    low, high = fmt(found[0]), fmt(found[-1])
    return low if low == high else f"{low}{joiner}{high}"


def joined(parts: Sequence[str]) -> str:
    """a, b and c."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def margin_short(verdict: Verdict) -> str:
    """The margin as a factor with its side: "5.3× to spare", "1.1× short"."""
    return verdict.margin_text


# --- comparison figures ------------------------------------------------------------


def median(group: RunGroup, field: str, relative: str, reports: Reports) -> float:
    figure = group.stat(field)
    if figure is None:
        stage = f" ×{group.clients}" if group.clients else ""
        raise ReportError(
            f"{reports.name(relative)}: no key runs[{group.variant} {group.scenario}{stage}]"
            f".{field}"
        )
    return figure.median


def short_rps(c: Context, relative: str, variant: str) -> str:
    group = c.reports.group(relative, variant, "short")
    return fmt_rps(median(group, "rps", relative, c.reports)) + group_marks(group)


def convoy_pair(c: Context, relative: str, variant: str) -> tuple[RunGroup, float, float]:
    group = c.reports.group(relative, variant, "convoy")
    before = median(group, "short_rps_before", relative, c.reports)
    during = median(group, "short_rps_during", relative, c.reports)
    return group, before, during


def convoy_text(c: Context, relative: str, variant: str) -> str:
    """10,592 → 199 (with the group's marks)."""
    group, before, during = convoy_pair(c, relative, variant)
    return f"{fmt_rps(before)} → {fmt_rps(during)}{group_marks(group)}"


def convoy_change(before: float, during: float) -> str:
    """53× less, or 158 % of before."""
    if during < before:
        return f"{fmt_factor(math.inf if during == 0 else before / during)} less"
    return f"{percent(during / before)} of before"


def convoy_share(c: Context, relative: str, variant: str) -> float:
    _, before, during = convoy_pair(c, relative, variant)
    if before <= 0:
        raise ReportError(f"{c.reports.name(relative)}: {variant} convoy: no short reply before")
    return during / before


def shares_of_before(c: Context, relative: str, variants: Sequence[str]) -> str:
    """The variants' convoy rates during as shares of before, low–high: "150–174 % of before"."""
    shares = (convoy_share(c, relative, variant) for variant in variants)
    return span(shares, lambda fraction: f"{fraction * 100:.0f}") + " % of before"


def long_seconds(c: Context, relative: str, variant: str, clients: int) -> float:
    group = c.reports.group(relative, variant, "long", clients)
    return median(group, "seconds_per_request", relative, c.reports)


def long_ratio(c: Context, relative: str, variant: str, clients: int) -> float:
    return long_seconds(c, relative, variant, clients) / long_seconds(c, relative, variant, 1)


def gil_share(c: Context, relative: str, variant: str) -> float:
    group = c.reports.group(relative, variant, "convoy")
    return median(group, "gil_wait_share", relative, c.reports)


def stage_bounds(c: Context, relative: str, variant: str) -> list[tuple[int, float, str, float]]:
    """Each long stage's (clients, ratio to one client, 'floor' or 'ceiling', that bound),
    the nearer bound first."""
    found = []
    for clients, (low, high) in LONG_RATIO_BOUNDS.items():
        ratio = long_ratio(c, relative, variant, clients)
        side, bound = ("floor", low) if ratio / low < high / ratio else ("ceiling", high)
        found.append((clients, ratio, side, bound))
    return found


def stage_text(clients: int, ratio: float, side: str, bound: float) -> str:
    return f"{clients} clients took {ratio:.2f}× one client's time against the {bound:g} {side}"


def binding_stage(c: Context, relative: str, variant: str) -> str:
    """The stage nearest its bound (where the margin comes from)."""
    stages = stage_bounds(c, relative, variant)
    clients, ratio, side, bound = min(stages, key=lambda stage: stage_margin(*stage))
    return stage_text(clients, ratio, side, bound)


def stage_margin(clients: int, ratio: float, side: str, bound: float) -> float:
    """As the rule's margin: >= 1 inside the bound, the factor to it."""
    return ratio / bound if side == "floor" else bound / ratio


def stages_outside(c: Context, relative: str, variant: str) -> str:
    """The stages outside their bounds; else the one nearest."""
    outside = [
        stage_text(*stage)
        for stage in stage_bounds(c, relative, variant)
        if (stage[2] == "floor" and stage[1] < stage[3])
        or (stage[2] == "ceiling" and stage[1] > stage[3])
    ]
    return joined(outside) if outside else binding_stage(c, relative, variant)


def long_verdicts(c: Context, relative: str) -> list[Verdict]:
    return [v for v in c.reports.verdicts(relative) if v.rule in LONG_RULES]


# --- the talk's nine: docs/results/talk -------------------------------------------


def of_report(figure: Callable[[Context, str], str], relative: str) -> Render:
    return lambda c: figure(c, relative)


def of_variant(figure: Callable[[Context, str, str], str], relative: str, variant: str) -> Render:
    return lambda c: figure(c, relative, variant) + " req/s"


def constant(text: str) -> Render:
    return lambda c: text


def environment_text(c: Context, relative: str) -> str:
    """What the run was, from its environment: the Python, the machine, the load."""
    reports = c.reports
    environment = reports.get(relative, "environment")
    summary = reports.summary(relative)
    variants = sorted({run["variant"] for run in summary["runs"]})
    scenarios = [
        scenario
        for scenario in ("short", "long", "convoy")
        if any(run["scenario"] == scenario for run in summary["runs"])
    ]
    pythons = sorted(
        {info.get("python", "?") for info in environment.get("servers", {}).values()}
        or {environment["python"]}
    )
    interval = environment.get("switch_interval")
    parts = [
        f"{reports.get(relative, 'environment', 'date')[:10]}, {environment['cores']} cores, "
        f"servers on CPython {' and '.join(pythons)}"
        + (f" (GIL {environment['gil']}" if environment.get("gil") else "")
        + (f", switch interval {interval * 1000:g} ms)" if interval else ")"),
        f"{len(variants)} variants ({environment.get('target', 'local')}), "
        + " / ".join(scenarios),
    ]
    if "duration_s" in environment:
        parts.append(f"{environment['duration_s']:g} s per run")
    if "repeat" in environment:
        count = environment["repeat"]
        parts.append(f"{count} repeat{'s' if count != 1 else ''}")
    if "long_n" in environment:
        long_text = f"long request fib({environment['long_n']})"
        if environment.get("long_seconds_single") is not None:
            long_text += f" ({environment['long_seconds_single']:.3f} s alone in the runner)"
        parts.append(long_text)
    return "; ".join(parts)


def machine_text(c: Context, relative: str) -> str:
    """Other processes' CPU during the runs, and how many runs that made noisy."""
    summary = c.reports.summary(relative)
    runs = {(r["variant"], r["scenario"], r["repeat"]): r for r in summary["runs"]}.values()
    foreign = [v for r in runs if (v := run_number(r, "foreign_cpu_cores")) is not None]
    noisy = sum(r.get("noisy") is True for r in runs)
    loadgen = sum(r["bottleneck"] == "loadgen" for r in summary["runs"])
    threshold = summary["environment"].get("noisy_threshold_cores")
    text = (
        f"other processes used {span(foreign, lambda v: f'{v:.3f}')} core during the runs"
        if foreign
        else "other processes' CPU was not recorded"
    )
    text += f"; {noisy} of {len(runs)} runs noisy {marks(loadgen=False, noisy=True)}"
    if threshold is not None:
        text += f" (≥ {threshold:g} core)"
    return text + f", {loadgen} figures limited by the load generator"


for _name, _relative in {
    "talk": TALK,
    "modern": MODERN,
    "one-busy-core": ONE_BUSY,
    "two-busy-cores": TWO_BUSY,
    "pinned": PINNED,
}.items():
    FIGURES.add(f"{_name}.environment", (_relative,), of_report(environment_text, _relative))
    FIGURES.add(f"{_name}.machine", (_relative,), of_report(machine_text, _relative))


@FIGURES("talk.long-bounds", TALK)
def talk_long_bounds(c: Context) -> str:
    """Each "time grows per client" verdict's nearest bound: where its margin comes from."""
    return "; ".join(
        f"`{v.variant}`: {binding_stage(c, TALK, v.variant)} ({margin_short(v)})"
        for v in long_verdicts(c, TALK)
    )


@FIGURES("talk.other-margins", TALK)
def talk_other_margins(c: Context) -> str:
    """The margins of every verdict but "time grows per client"."""
    margins = [
        v.margin
        for v in c.reports.verdicts(TALK)
        if v.rule not in LONG_RULES and v.margin is not None and math.isfinite(v.margin)
    ]
    return span(margins, lambda m: f"{m:.1f}") + "×"


@FIGURES("talk.convoy-example", TALK)
def talk_convoy_example(c: Context) -> str:
    verdict = c.reports.verdict(TALK, "convoy-collapse", "threads")
    group, before, during = convoy_pair(c, TALK, "threads")
    return (
        f"`threads`' {fmt_factor(before / during)}{group_marks(group)} collapse against the "
        f"{COLLAPSE_FACTOR:g}× convoy rule is {margin_short(verdict)}"
    )


@FIGURES("talk.pools-during", TALK)
def talk_pools_during(c: Context) -> str:
    return shares_of_before(c, TALK, PROCESS_POOLS)


@FIGURES("talk.pools-long3", TALK)
def talk_pools_long3(c: Context) -> str:
    return span((long_ratio(c, TALK, v, 3) for v in PROCESS_POOLS), lambda r: f"{r:.2f}") + "×"


@FIGURES("compare.noisy-threshold", "loadtest/toolbox/machine.py")
def compare_noisy_threshold(c: Context) -> str:
    return f"{machine.NOISY_FOREIGN_CORES:g} core"


@FIGURES("talk.foreign", TALK)
def talk_foreign(c: Context) -> str:
    summary = c.reports.summary(TALK)
    values = [v for r in summary["runs"] if (v := run_number(r, "foreign_cpu_cores")) is not None]
    if not values:
        raise ReportError(f"{c.reports.name(TALK)}: no key runs[*].foreign_cpu_cores")
    return span(values, lambda v: f"{v:.3f}") + " core"


# The figures of one variant in the talk's run, for prose anywhere.
for _variant in (
    "sync", "threads", "threads-procpool", "coro", "coro-threadpool", "coro-procpool",
    "coro-asyncsocket", "asyncio", "asyncio-procpool",
):  # fmt: skip
    FIGURES.add(f"talk.short.{_variant}", (TALK,), of_variant(short_rps, TALK, _variant))
    FIGURES.add(f"talk.convoy.{_variant}", (TALK,), of_variant(convoy_text, TALK, _variant))


# --- fib's cost: the committed long request, scaled ------------------------------


def fib_seconds(c: Context, n: int) -> float:
    """fib(n)'s time on the committed run's machine: fib(long_n) alone, scaled by φ per n
    (the naive recursion makes about φ times the calls for each n more)."""
    long_n = int(c.reports.number(TALK, "environment", "long_n"))
    alone = c.reports.number(TALK, "environment", "long_seconds_single")
    return alone * PHI ** (n - long_n)


def fib_text(value: float) -> str:
    return f"{value:.2g} s" if value < 1 else f"{value:.1f} s"


@FIGURES("fib.estimates", TALK)
def fib_estimates(c: Context) -> str:
    long_n = int(c.reports.number(TALK, "environment", "long_n"))
    alone = c.reports.number(TALK, "environment", "long_seconds_single")
    python = c.reports.get(TALK, "environment", "python")
    estimates = ", ".join(f"fib({n}) ≈ {fib_text(fib_seconds(c, n))}" for n in FIB_ESTIMATES)
    return (
        f"{estimates} on CPython {python}: the committed fib({long_n}) = {alone:.3f} s, "
        "scaled by φ per n"
    )


@FIGURES("fib.talk-long", TALK)
def fib_talk_long(c: Context) -> str:
    return f"~{fib_text(fib_seconds(c, talk.TALK_LONG_N))}"


@FIGURES("fib.talk-slower", TALK, "loadtest/talk/figures.py")
def fib_talk_slower(c: Context) -> str:
    """How much slower the talk's machine and Python were: his fib(30) against ours."""
    return f"~{talk.TALK_LONG_SECONDS / fib_seconds(c, talk.TALK_LONG_N):.1f}×"


# --- the talk's own figures (loadtest/talk/figures.py), never retyped --------------

for _figure in talk.FIGURES:
    FIGURES.add(f"talk.said.{_figure.key}", ("loadtest/talk/figures.py",), constant(_figure.said))
FIGURES.add(
    "talk.said.long-seconds",
    ("loadtest/talk/figures.py",),
    lambda c: f"{talk.TALK_LONG_SECONDS:g} s",
)


# --- what a busy core does ---------------------------------------------------------


@FIGURES("one-busy-core.procpool", ONE_BUSY)
def one_busy_procpool(c: Context) -> str:
    verdict = c.reports.verdict(ONE_BUSY, "separate-process-immune", "threads-procpool")
    return f"{percent(convoy_share(c, ONE_BUSY, 'threads-procpool'))} ({margin_short(verdict)})"


@FIGURES("two-busy-cores.threads-repeats", TWO_BUSY)
def two_busy_threads_repeats(c: Context) -> str:
    group = c.reports.group(TWO_BUSY, "threads", "convoy")
    factors = [f for r in group.runs if (f := drop_factor(r)) is not None]
    return joined([fmt_factor(f) for f in factors])


# --- beyond the talk: docs/results/modern ------------------------------------------


@FIGURES("modern.gil-threads", MODERN)
def modern_gil_threads(c: Context) -> str:
    return percent(gil_share(c, MODERN, "threads"))


@FIGURES("modern.gil-pools", MODERN)
def modern_gil_pools(c: Context) -> str:
    present = {run["variant"] for run in c.reports.summary(MODERN)["runs"]}
    pools = [v for v in (*PROCESS_POOLS, *INTERP_POOLS) if v in present]
    return span((gil_share(c, MODERN, v) for v in pools), lambda f: f"{f * 100:.0f}") + " %"


def convoy_shares(group: RunGroup) -> list[float]:
    """The short client's rate during the long request as a share of before, per repeat."""
    found = [f for run in group.runs if (f := drop_factor(run)) is not None]
    return [0.0 if math.isinf(f) else 1 / f for f in found]


@FIGURES("modern.uvloop-share", MODERN)
def modern_uvloop_share(c: Context) -> str:
    """asyncio-uvloop's short req/s as a share of asyncio's, with both groups' marks, and
    the verdict of its prediction (faster than asyncio)."""
    uvloop = c.reports.group(MODERN, "asyncio-uvloop", "short")
    asyncio = c.reports.group(MODERN, "asyncio", "short")
    ratio = median(uvloop, "rps", MODERN, c.reports) / median(asyncio, "rps", MODERN, c.reports)
    mark = marks(
        loadgen=uvloop.loadgen_bound or asyncio.loadgen_bound,
        noisy=uvloop.noisy or asyncio.noisy,
    )
    verdict = c.reports.verdict(MODERN, "uvloop-above-asyncio", "asyncio-uvloop")
    prediction = f"{verdict.mark} {margin_short(verdict)}"
    return f"{percent(ratio)}{mark} (its prediction, faster: {prediction})"


@FIGURES("modern.uvloop-round-trip", MODERN)
def modern_uvloop_round_trip(c: Context) -> str:
    group = c.reports.group(MODERN, "asyncio-uvloop", "short")
    return f"~{1e6 / median(group, 'rps', MODERN, c.reports):.0f} µs" + group_marks(group)


@FIGURES("modern.prefork-repeats", MODERN)
def modern_prefork_repeats(c: Context) -> str:
    """prefork's convoy, each repeat on its own: the kernel's lottery is drawn per run."""
    group = c.reports.group(MODERN, "prefork", "convoy")
    shares = convoy_shares(group)
    if not shares:
        raise ReportError(f"{c.reports.name(MODERN)}: no key runs[prefork convoy].short_rps_during")
    return joined([share(f) for f in shares]) + group_marks(group)


@FIGURES("modern.prefork-long", MODERN)
def modern_prefork_long(c: Context) -> str:
    return f"{long_ratio(c, MODERN, 'prefork', 2):.2f}×"


@FIGURES("modern.inline-long", MODERN)
def modern_inline_long(c: Context) -> str:
    """The inline loops' "2 and 3 long clients" verdicts: the stages outside their bounds,
    else the one nearest its bound."""
    found = [v for v in long_verdicts(c, MODERN) if v.rule == "inline-loop-long-serialised"]
    if not found:
        raise ReportError(f"{c.reports.name(MODERN)}: no verdict inline-loop-long-serialised")
    return "; ".join(
        f"`{v.variant}` {v.mark} ({margin_short(v)}): {stages_outside(c, MODERN, v.variant)}"
        for v in found
    )


@FIGURES("modern.asyncio-long2", MODERN)
def modern_asyncio_long2(c: Context) -> str:
    return f"{long_ratio(c, MODERN, 'asyncio', 2):.2f}×"


@FIGURES("modern.interp-short", MODERN)
def modern_interp_short(c: Context) -> str:
    pairs = (("threads-interppool", "threads-procpool"), ("asyncio-interppool", "asyncio-procpool"))
    return "; ".join(
        f"`{interp}` {short_rps(c, MODERN, interp)} against `{pool}` {short_rps(c, MODERN, pool)}"
        " req/s"
        for interp, pool in pairs
    )


@FIGURES("modern.interp-convoy", MODERN)
def modern_interp_convoy(c: Context) -> str:
    return shares_of_before(c, MODERN, INTERP_POOLS)


@FIGURES("modern.interp-long", MODERN)
def modern_interp_long(c: Context) -> str:
    interp = span((long_seconds(c, MODERN, v, 1) for v in INTERP_POOLS), lambda s: f"{s:.2f}")
    pool = long_seconds(c, MODERN, "threads-procpool", 1)
    return f"{interp} s against `threads-procpool`'s {pool:.2f} s"


# --- across Pythons: docs/results/versions ------------------------------------------


def version_label(c: Context, python: str) -> str:
    servers = c.reports.get(VERSIONS[python], "environment", "servers")
    found = {info.get("python") for info in servers.values() if isinstance(info, dict)}
    return "/".join(sorted(str(v) for v in found)) or python


@FIGURES("versions.environment", *VERSIONS.values())
def versions_environment(c: Context) -> str:
    first = VERSIONS["host"]
    environment = c.reports.get(first, "environment")
    labels = [version_label(c, python) for python in VERSIONS]
    distinct = {
        (rel, r["variant"], r["scenario"], r["repeat"]): r
        for rel in VERSIONS.values()
        for r in c.reports.summary(rel)["runs"]
    }
    noisy = sum(r.get("noisy") is True for r in distinct.values())
    return (
        f"{environment['date'][:10]}, {environment['cores']} cores; servers on CPython "
        f"{joined(labels)} (the first on this host, the others in their image); long request "
        f"fib({environment.get('long_n')}); {noisy} of {len(distinct)} runs noisy "
        f"{marks(loadgen=False, noisy=True)}"
    )


def versions_short_figure(c: Context, python: str, field: str) -> float:
    relative = VERSIONS[python]
    group = c.reports.group(relative, "threads-procpool", "short")
    if field == "p50":
        figure = group.latency("p50")
        if figure is None:
            raise ReportError(f"{c.reports.name(relative)}: no key runs[...].latency_ms.p50")
        return figure.median
    return median(group, field, relative, c.reports)


@FIGURES("versions.procpool-gain", *VERSIONS.values())
def versions_procpool_gain(c: Context) -> str:
    """`threads-procpool`'s short round trip on the images' Pythons against the host's."""
    newer = [python for python in VERSIONS if python != "host"]

    def change(field: str) -> str:
        base = versions_short_figure(c, "host", field)
        return " and ".join(
            f"{(versions_short_figure(c, python, field) / base - 1) * 100:+.0f} %"
            for python in newer
        )

    return (
        f"req/s {change('rps')}, CPU per request {change('cpu_seconds_per_request')}, "
        f"client p50 {change('p50')} on {joined([version_label(c, p) for p in newer])} "
        f"against {version_label(c, 'host')}"
    )


@FIGURES("versions.threads-drop", *VERSIONS.values())
def versions_threads_drop(c: Context) -> str:
    drops = []
    for relative in VERSIONS.values():
        _, before, during = convoy_pair(c, relative, "threads")
        drops.append(before / during)
    return span(drops, lambda d: f"{d:.0f}") + "×"


@FIGURES("versions.fib-faster", *VERSIONS.values())
def versions_fib_faster(c: Context) -> str:
    first = long_seconds(c, VERSIONS["host"], "threads", 1)
    last_python = list(VERSIONS)[-1]
    last = long_seconds(c, VERSIONS[last_python], "threads", 1)
    return (
        f"{(1 - last / first) * 100:.0f} % faster ({first:.2f} → {last:.2f} s from "
        f"{version_label(c, 'host')} to {version_label(c, last_python)})"
    )


# --- capacity: docs/results/capacity -------------------------------------------------


def capacity_points(c: Context, kind: str) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for point in c.reports.get(CAPACITY, "points"):
        if point.get("kind") == kind:
            found.setdefault(str(point["variant"]), []).append(point)
    if not found:
        raise ReportError(f"{c.reports.name(CAPACITY)}: no key points[kind={kind}]")
    return found


def capacity_of(points_of_variant: Sequence[dict[str, object]]) -> dict[str, object]:
    served = [p for p in points_of_variant if p["bottleneck"] == "server"]
    return max(served or points_of_variant, key=lambda p: float(str(p["rps"])))


@FIGURES("capacity.scaling", CAPACITY)
def capacity_scaling(c: Context) -> str:
    sweep = capacity_points(c, "sweep")
    parts = []
    for variant in ("coro", "asyncio", "threads"):
        found = sweep[variant]
        one = next(p for p in found if p["connections"] == 1)
        parts.append(
            f"`{variant}` {float(str(capacity_of(found)['rps'])) / float(str(one['rps'])):.1f}×"
        )
    anchor = c.reports.get(CAPACITY, "anchor")
    one_anchor = next(a for a in anchor if a["connections"] == 1)
    best = max(a["rps"] for a in anchor)
    return f"{joined(parts)}, the C anchor {best / one_anchor['rps']:.1f}×"


@FIGURES("capacity.pools-range", CAPACITY)
def capacity_pools_range(c: Context) -> str:
    sweep = capacity_points(c, "sweep")
    values = [float(str(p["rps"])) for v in PROCESS_POOLS for p in sweep.get(v, [])]
    return span(values, lambda v: f"{v:,.0f}") + " req/s"


@FIGURES("capacity.rate-shares", CAPACITY)
def capacity_rate_shares(c: Context) -> str:
    shares = c.reports.get(CAPACITY, "environment", "rate_shares")
    return f"{shares[0] * 100:.0f} % … {shares[-1] * 100:.0f} %"


@FIGURES("capacity.near-best", "loadtest/capacity/runner.py")
def capacity_near_best(c: Context) -> str:
    return f"{capacity_runner.NEAR_BEST * 100:.0f} %"


def rate_p99(points_of_variant: Sequence[dict[str, object]], share: float) -> float | None:
    for point in points_of_variant:
        if math.isclose(float(str(point["rate_share"])), share):
            latency = point["latency_ms"]
            if isinstance(latency, dict) and latency.get("p99") is not None:
                return float(latency["p99"])
    return None


def ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


@FIGURES("capacity.threads-p99", CAPACITY)
def capacity_threads_p99(c: Context) -> str:
    shares = (0.1, 0.5, 0.75)
    found = capacity_points(c, "rates")["threads"]
    values = [rate_p99(found, share) for share in shares]
    if any(value is None for value in values):
        raise ReportError(f"{c.reports.name(CAPACITY)}: no key points[rates threads].latency_ms")
    return (
        " → ".join(ms(v) for v in values if v is not None)
        + " ms at "
        + " / ".join(f"{s * 100:g}" for s in shares)
        + " % of its capacity"
    )


@FIGURES("capacity.pools-convoy-p99", CAPACITY)
def capacity_pools_convoy_p99(c: Context) -> str:
    found = capacity_points(c, "rates-convoy")
    parts = []
    for share in (0.1, 0.9):
        values = [
            value for v in PROCESS_POOLS if (value := rate_p99(found.get(v, []), share)) is not None
        ]
        parts.append(f"{span(values, ms)} ms at {share * 100:g} %")
    return " and ".join(parts)


# --- the switch interval, the timeline -----------------------------------------------


def fmt_interval(seconds: float) -> str:
    """0.5 ms, 20 ms: the sweep's unit (as its report writes it)."""
    return f"{seconds * 1000:g} ms"


@FIGURES("switch-interval.intervals", SWITCH_INTERVAL)
def switch_interval_intervals(c: Context) -> str:
    intervals = c.reports.get(SWITCH_INTERVAL, "environment", "intervals_s")
    return f"{fmt_interval(min(intervals))} to {fmt_interval(max(intervals))}"


def switch_interval_verdicts(c: Context) -> list[dict[str, str]]:
    """The verdict table of the sweep's report, as rows keyed by its header."""
    header, *rows = c.reports.markdown_table(SWITCH_INTERVAL_REPORT, SWITCH_INTERVAL_VERDICTS)
    return [dict(zip(header, row, strict=False)) for row in rows]


@FIGURES("switch-interval.threads-furthest", SWITCH_INTERVAL_REPORT)
def switch_interval_threads_furthest(c: Context) -> str:
    for row in switch_interval_verdicts(c):
        if row.get("variant") == "threads":
            found = re.search(r"furthest at ([\d.]+ ms): ([\d.]+×)", row.get("lab", ""))
            if found:
                return f"{found[1]} ({found[2]} the law's rate)"
    raise ReportError(
        f"{c.reports.name(SWITCH_INTERVAL_REPORT)}: no key {SWITCH_INTERVAL_VERDICTS} "
        "[variant=threads].lab 'furthest at'"
    )


def timeline_figure(c: Context, variant: str, key: str) -> float:
    return c.reports.number(TIMELINE, "variants", variant, "figures", key)


@FIGURES("timeline.threads-turns", TIMELINE)
def timeline_threads_turns(c: Context) -> str:
    return f"{timeline_figure(c, 'threads', 'median_turn_gap_ms'):.1f} ms"


@FIGURES("timeline.waiting", TIMELINE)
def timeline_waiting(c: Context) -> str:
    parts = [
        f"{timeline_figure(c, v, 'threads_waiting_for_gil'):.2f} on `{v}`"
        for v in ("threads", "coro", "asyncio")
    ]
    return joined(parts)


# --- the benchmarks: docs/results/<benchmark>/report.json (tests/bench) -----------------
#
# A side-by-side benchmark's comparison holds per round the rates of its two sides
# and their ratio (a over b), "ratio" {median, min, max} over the rounds, "rounds",
# "cpu_us_per_request" {a, b, difference} and, where it has one, a "goal".


def ratio_text(c: Context, relative: str, comparison: dict[str, Any]) -> str:
    """0.992 (median of 6 rounds, 0.953–1.051; goal ≥ 0.99: met): a comparison's ratio
    over its rounds, and its goal where it has one."""
    ratio = comparison.get("ratio")
    rounds = comparison.get("rounds")
    if not isinstance(ratio, dict) or not isinstance(rounds, int):
        raise ReportError(f"{c.reports.name(relative)}: no key ratio.median or rounds")
    found = f"{ratio['median']:.3f}"
    parts = [f"median of {rounds} round{'s' if rounds != 1 else ''}"]
    low_high = span((ratio["min"], ratio["max"]), lambda r: f"{r:.3f}")
    if low_high != found:
        parts[0] += f", {low_high}"
    goal = comparison.get("goal") or {}
    if goal.get("kind") == "minimum":
        met = ratio["median"] >= goal["minimum"]
        parts.append(f"goal ≥ {goal['minimum']:g}: {'met' if met else 'NOT met'}")
    return f"{found} ({'; '.join(parts)})"


def cpu_text(comparison: dict[str, Any]) -> str:
    """+0.73 µs server CPU per request: the a side's against the b side's."""
    difference = comparison["cpu_us_per_request"]["difference"]
    return f"{difference:+.2f} µs server CPU per request"


def possessive(name: str) -> str:
    return f"{name}'" if name.rstrip("`").endswith("s") else f"{name}'s"


def comparison_of(c: Context, relative: str, *keys: str | int) -> dict[str, Any]:
    found = c.reports.get(relative, *keys)
    if not isinstance(found, dict) or "ratio" not in found:
        raise ReportError(f"{c.reports.name(relative)}: no key {'.'.join(map(str, keys))}.ratio")
    return found


@FIGURES("prefork-cost.ratio", PREFORK_COST)
def prefork_cost_ratio(c: Context) -> str:
    comparison = comparison_of(c, PREFORK_COST, "comparison")
    a, b = (f"`{comparison['labels'][side]}`" for side in ("a", "b"))
    return (
        f"{a} answers fib(1) at {ratio_text(c, PREFORK_COST, comparison)} of "
        f"{possessive(b)} rate, {cpu_text(comparison)}"
    )


@FIGURES("timeline-cost.ratios", TIMELINE_COST)
def timeline_cost_ratios(c: Context) -> str:
    off = comparison_of(c, TIMELINE_COST, "off")
    on = comparison_of(c, TIMELINE_COST, "on")
    control = comparison_of(c, TIMELINE_COST, "control")
    base = c.reports.get(TIMELINE_COST, "base", "given")
    return (
        f"off, `threads` answers fib(1) at {ratio_text(c, TIMELINE_COST, off)} of commit "
        f"{base}'s rate; its control, that commit against itself, "
        f"{ratio_text(c, TIMELINE_COST, control)}; on, {ratio_text(c, TIMELINE_COST, on)} "
        f"of the rate off, {cpu_text(on)}"
    )


@FIGURES("yield-cost.ratios", YIELD_COST)
def yield_cost_ratios(c: Context) -> str:
    base = c.reports.get(YIELD_COST, "base", "given")
    parts = [
        f"`{entry['variant']}` {ratio_text(c, YIELD_COST, entry['comparison'])}"
        for entry in c.reports.get(YIELD_COST, "variants")
    ]
    control = comparison_of(c, YIELD_COST, "control")
    return (
        f"{joined(parts)} of commit {base}'s rate; its control, asyncio at that commit "
        f"against itself, {ratio_text(c, YIELD_COST, control)}"
    )


def gil_variants(c: Context) -> list[dict[str, Any]]:
    found = c.reports.get(GIL_PROBE, "servers", "variants")
    if not found:
        raise ReportError(f"{c.reports.name(GIL_PROBE)}: no key servers.variants[0]")
    return list(found)


@FIGURES("gil-probe.fib1", GIL_PROBE)
def gil_probe_fib1(c: Context) -> str:
    """fib(1) req/s with the probe on as a share of off, per variant."""
    parts = [
        f"`{entry['variant']}` {ratio_text(c, GIL_PROBE, entry['fib1'])}"
        for entry in gil_variants(c)
    ]
    return f"{joined(parts)} of the rate with it off"


@FIGURES("gil-probe.idle", GIL_PROBE)
def gil_probe_idle(c: Context) -> str:
    """An idle process's CPU with the native probe against none."""
    rows = {row["probe"]: row for row in c.reports.get(GIL_PROBE, "process", "idle")}
    probe = next((name for name in rows if name.startswith("gilknocker")), None)
    if probe is None or "none" not in rows:
        raise ReportError(f"{c.reports.name(GIL_PROBE)}: no key process.idle[probe=gilknocker]")
    return (
        f"{rows[probe]['percent_of_one_core']:.2f} % of a core against "
        f"{rows['none']['percent_of_one_core']:.2f} % with no probe"
    )


@FIGURES("gil-probe.convoy", GIL_PROBE)
def gil_probe_convoy(c: Context) -> str:
    """The convoy's factor (short req/s before ÷ during), probe on and off, over rounds."""

    def spread_of(figure: dict[str, Any]) -> str:
        if figure.get("median") is None:
            return "∞"
        ends = [v for v in (figure.get("min"), figure.get("max")) if v is not None]
        low_high = span(ends, fmt_factor) if ends else fmt_factor(figure["median"])
        found = fmt_factor(figure["median"])
        return found if low_high == found else f"{found} ({low_high})"

    return "; ".join(
        f"`{entry['variant']}` {spread_of(entry['convoy']['on'])} with the probe on, "
        f"{spread_of(entry['convoy']['off'])} off"
        for entry in gil_variants(c)
    )


@FIGURES("bucketing-cost.ratio", BUCKETING_COST)
def bucketing_cost_ratio(c: Context) -> str:
    ratio = c.reports.get(BUCKETING_COST, "ratio")
    rounds = int(c.reports.number(BUCKETING_COST, "parameters", "rounds"))
    return (
        f"{ratio_text(c, BUCKETING_COST, {'ratio': ratio, 'rounds': rounds})} "
        "of its req/s with Locust's own"
    )


def counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def reliability_variants(c: Context) -> list[dict[str, Any]]:
    found = c.reports.get(RELIABILITY, "variants")
    if not found:
        raise ReportError(f"{c.reports.name(RELIABILITY)}: no key variants[0]")
    return list(found)


@FIGURES("reliability.fuzz-inputs", RELIABILITY)
def reliability_fuzz_inputs(c: Context) -> str:
    return f"{int(c.reports.number(RELIABILITY, 'parameters', 'fuzz_inputs')):,}"


@FIGURES("reliability.headline", RELIABILITY)
def reliability_headline(c: Context) -> str:
    """What every variant of the kept run did: the fuzz's counts and SIGTERM's drain."""
    entries = reliability_variants(c)
    fuzz = [e["fuzz"] for e in entries if isinstance(e.get("fuzz"), dict)]
    sigterm = [e["sigterm"] for e in entries if isinstance(e.get("sigterm"), dict)]
    wrong = sum(int(f.get("wrong", 0)) for f in fuzz)
    unanswered = sum(int(f.get("unanswered", 0)) for f in fuzz)
    crashed = sum(bool(f.get("crashed")) for f in fuzz)
    inputs = sum(int(f.get("inputs", 0)) for f in fuzz)
    drained = sum(
        s.get("unanswered_before") == 0 and s.get("wrong") == 0 and s.get("status") == 0
        for s in sigterm
    )
    return (
        f"{len(entries)} variants, {inputs:,} fuzzed inputs in all: "
        f"{counted(wrong, 'wrong reply', 'wrong replies')}, {unanswered} unanswered, "
        f"{counted(crashed, 'crash', 'crashes')}; after SIGTERM, {drained} of "
        f"{len(sigterm)} answered every line sent before it and exited 0"
    )


@FIGURES("reliability.sigterm-extra", RELIABILITY)
def reliability_sigterm_extra(c: Context) -> str:
    """The variants that answered more lines than were sent before SIGTERM."""
    found = [
        f"`{e['variant']}`"
        for e in reliability_variants(c)
        if isinstance(s := e.get("sigterm"), dict) and s.get("replies", 0) > s.get("sent_before", 0)
    ]
    return joined(found) if found else "no variant"


# --- make results: docs/results/results.json ------------------------------------------


@FIGURES("results.run", RESULTS_RUN)
def results_run(c: Context) -> str:
    """How long the whole `make results` took (its steps' seconds added up) and when:
    "17 steps, 322 min together, started 2026-12-07 01:00 UTC"."""
    steps = c.reports.get(RESULTS_RUN, "steps")
    started = str(c.reports.get(RESULTS_RUN, "provenance", "started"))
    try:
        when = datetime.datetime.fromisoformat(started).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        when = started
    total = sum(float(step["seconds"]) for step in steps)
    failed = [step for step in steps if step.get("status") != 0]
    text = f"{len(steps)} steps, {total / 60:.0f} min together, started {when}"
    if failed:
        text += f"; it stopped at `{failed[0]['name']}` (exit {failed[0]['status']})"
    elif c.reports.get(RESULTS_RUN, "all_steps") is not True:
        text += " (not every step)"
    return text
