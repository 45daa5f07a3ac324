# loadtest/docgen/figures.py
#
# The inline figures: one phrase each, read from the committed reports, with
# the reports' own marks († the load generator set it, ‡ noisy). Where a
# phrase quotes a rule's bound, the bound is the rule's own constant, so a
# page cannot quote a bound the code no longer has. The talk's 2015 figures
# come from loadtest/talk/figures.py, never retyped.

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence

from loadtest.capacity import runner as capacity_runner
from loadtest.compare.report.tables import group_marks
from loadtest.compare.summary import RunGroup, drop_factor, find_group, run_number
from loadtest.compare.verdicts import COLLAPSE_FACTOR, LONG_RATIO_BOUNDS, RULES, Verdict
from loadtest.docgen.context import Context
from loadtest.docgen.registry import Registry, Render
from loadtest.docgen.reports import ReportError, Reports
from loadtest.talk import figures as talk
from loadtest.toolbox import machine
from loadtest.toolbox.formats import fmt_factor, fmt_rps, marks

FIGURES = Registry()

# The committed reports, relative to docs/results.
TALK = "summary.json"  # make compare: the talk's nine variants
MODERN = "modern/summary.json"  # make compare-modern, the committed (third) run
MODERN_RUN1 = "modern-run1/summary.json"  # its first run
TOTHREAD_TRIO = "modern-tothread-trio/summary.json"  # the same command, with the two added later
LONG_24S = "modern-long-24s/summary.json"  # the inline loops' long scenario, 24 s runs
ONE_BUSY = "one-busy-core/summary.json"
TWO_BUSY = "two-busy-cores/summary.json"
UNPINNED = "pinning/unpinned/summary.json"
PINNED = "pinning/pinned/summary.json"
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
# The runs of `make compare-modern`'s command whose summary.json is committed, by folder.
MODERN_RUNS = {"modern": MODERN, "modern-run1": MODERN_RUN1, "modern-tothread-trio": TOTHREAD_TRIO}

PROCESS_POOLS = ("threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool")
INTERP_POOLS = ("threads-interppool", "asyncio-interppool")
LONG_RULES = ("long-serialised", "inline-loop-long-serialised", "tothread-long-serialised")
PHI = (1 + math.sqrt(5)) / 2  # naive fib(n) makes ~φ times the calls of fib(n - 1)
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


def factor(value: float) -> str:
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


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


# --- the talk's nine: docs/results/summary.json ------------------------------------


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
    "tothread-trio": TOTHREAD_TRIO,
    "long-24s": LONG_24S,
    "one-busy-core": ONE_BUSY,
    "two-busy-cores": TWO_BUSY,
    "unpinned": UNPINNED,
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
    return span((convoy_share(c, TALK, v) for v in PROCESS_POOLS), lambda f: f"{f * 100:.0f}") + (
        " % of before"
    )


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


def _with_both(c: Context, first: str, second: str) -> dict[str, str]:
    """The runs of MODERN_RUNS with a short run of both variants."""
    return {
        name: relative
        for name, relative in MODERN_RUNS.items()
        if find_group(c.reports.groups(relative), first, "short")
        and find_group(c.reports.groups(relative), second, "short")
    }


@FIGURES("modern.uvloop-shares", *MODERN_RUNS.values())
def modern_uvloop_shares(c: Context) -> str:
    parts = []
    for name, relative in _with_both(c, "asyncio-uvloop", "asyncio").items():
        uvloop = c.reports.group(relative, "asyncio-uvloop", "short")
        asyncio = c.reports.group(relative, "asyncio", "short")
        share = median(uvloop, "rps", relative, c.reports) / median(
            asyncio, "rps", relative, c.reports
        )
        mark = marks(
            loadgen=uvloop.loadgen_bound or asyncio.loadgen_bound,
            noisy=uvloop.noisy or asyncio.noisy,
        )
        parts.append(f"{percent(share)}{mark} in {name}")
    return joined(parts)


@FIGURES("modern.uvloop-round-trip", MODERN)
def modern_uvloop_round_trip(c: Context) -> str:
    group = c.reports.group(MODERN, "asyncio-uvloop", "short")
    return f"~{1e6 / median(group, 'rps', MODERN, c.reports):.0f} µs" + group_marks(group)


@FIGURES("modern.prefork-runs", *MODERN_RUNS.values())
def modern_prefork_runs(c: Context) -> str:
    return joined(
        [
            f"{share(convoy_share(c, relative, 'prefork'))} in {name}"
            for name, relative in MODERN_RUNS.items()
        ]
    )


@FIGURES("modern.prefork-long", *MODERN_RUNS.values())
def modern_prefork_long(c: Context) -> str:
    return (
        span(
            (long_ratio(c, relative, "prefork", 2) for relative in MODERN_RUNS.values()),
            lambda r: f"{r:.2f}",
        )
        + "×"
    )


@FIGURES("modern.inline-long-misses", MODERN)
def modern_inline_long_misses(c: Context) -> str:
    """The inline loops' "2 and 3 long clients" verdicts: the stages outside their bounds."""
    return "; ".join(
        f"`{v.variant}` {v.mark}: {stages_outside(c, MODERN, v.variant)}"
        for v in long_verdicts(c, MODERN)
        if RULES[v.rule].beyond_talk
    )


@FIGURES("modern.asyncio-long2", MODERN)
def modern_asyncio_long2(c: Context) -> str:
    return f"{long_ratio(c, MODERN, 'asyncio', 2):.2f}×"


@FIGURES("long-24s.ratios", LONG_24S)
def long_24s_ratios(c: Context) -> str:
    return joined(
        [
            f"`{v.variant}` {long_ratio(c, LONG_24S, v.variant, 2):.2f}× and "
            f"{long_ratio(c, LONG_24S, v.variant, 3):.2f}× {v.mark}"
            for v in long_verdicts(c, LONG_24S)
        ]
    )


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
    return span((convoy_share(c, MODERN, v) for v in INTERP_POOLS), lambda f: f"{f * 100:.0f}") + (
        " % of before"
    )


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
