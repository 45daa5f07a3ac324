# loadtest/docgen/tables.py
#
# The block regions: tables made from the committed reports, with every
# mark the report gives its figures († the load generator set it, ‡ noisy).
# Where the lab already renders a table (the verdicts, the talk's figures
# beside the lab's, a connection run's memory per connection), it is that
# renderer's output; the rest are made of the same cells and formats
# (loadtest.compare.report.tables, loadtest.toolbox.formats).

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from loadtest.capacity.report import capacity_line, point_marks, points_of
from loadtest.compare.report.tables import group_marks, lab_figure, verdict_table
from loadtest.compare.summary import (
    RunGroup,
    Scenario,
    drop_factor,
    find_group,
    group_figure,
    variants_of,
)
from loadtest.compare.verdicts import RULES, Verdict
from loadtest.compare.versions import figures as version_figures
from loadtest.connections.report import memory_section
from loadtest.docgen.context import Context
from loadtest.docgen.figures import (
    CAPACITY,
    CONNECTIONS,
    MODERN,
    ONE_BUSY,
    PINNED,
    PROCESS_POOLS,
    RESULTS_RUN,
    SWITCH_INTERVAL_REPORT,
    SWITCH_INTERVAL_VERDICTS,
    TALK,
    TWO_BUSY,
    VERSIONS,
    convoy_change,
    convoy_pair,
    long_seconds,
    median,
    results_run,
    share,
    span,
    switch_interval_verdicts,
    version_label,
)
from loadtest.docgen.registry import Registry
from loadtest.docgen.reports import ReportError
from loadtest.talk import figures as talk
from loadtest.toolbox.formats import fmt_factor, fmt_rps, markdown_table, percent_or_dash
from services import TALK_VARIANTS

TABLES = Registry()

# A verdict in a few words, for a table cell; the report has the rule in full.
RULE_LABELS: dict[str, str] = {
    "long-serialised": "time grows per client",
    "convoy-collapse": "convoy",
    "convoy-stall": "stall",
    "threadpool-collapse": "the convoy comes back",
    "separate-process-immune": "immune",
    "pool-baseline-below-threads": "baseline below threads'",
    "inline-loop-stall": "stalls",
    "inline-loop-long-serialised": "2 and 3 long clients take ~2× and ~3×",
    "uvloop-above-asyncio": "faster than asyncio",
    "interp-pool-immune": "immune",
    "interp-pool-above-procpool": "above the process pool",
    "interp-pool-below-inline": "below inline fib",
    "second-long-in-parallel": "2 long clients in parallel",
    "prefork-convoy-partial": "partial convoy",
    "tothread-convoy": "the convoy comes back",
    "tothread-long-serialised": "2 and 3 long clients take ~2× and ~3×",
    "tothread-below-asyncio": "below asyncio",
    "trio-below-asyncio": "at most asyncio",
}


def verdict_label(verdict: Verdict) -> str:
    label = RULE_LABELS.get(verdict.rule, RULES[verdict.rule].behaviour)
    margin = f" ({verdict.margin_text})" if verdict.margin is not None else ""
    return f"{verdict.mark} {label}{margin}"


def verdict_cell(verdicts: Sequence[Verdict], variant: str, *, beyond: bool | None = None) -> str:
    found = [
        verdict_label(v)
        for v in verdicts
        if v.variant == variant and (beyond is None or RULES[v.rule].beyond_talk == beyond)
    ]
    return ", ".join(found) or "–"


def convoy_cell(c: Context, relative: str, variant: str) -> str:
    group, before, during = convoy_pair(c, relative, variant)
    text = f"{fmt_rps(before)} → {fmt_rps(during)}{group_marks(group)}"
    if group.stat("long_seconds") is None:
        return text + " (the long client is never served)"
    return f"{text} ({convoy_change(before, during)})"


def long_cell(c: Context, relative: str, variant: str, stages: Sequence[int]) -> str:
    groups = [c.reports.group(relative, variant, "long", k) for k in stages]
    values = [median(g, "seconds_per_request", relative, c.reports) for g in groups]
    text = " / ".join(f"{v:.2f}" for v in values)
    text += "".join(sorted({mark for g in groups for mark in group_marks(g)}))
    ratios = [f"{v / values[0]:.2f}×" for v in values[1:]]
    return text + (f" ({', '.join(ratios)})" if ratios else "")


def markdown_of(relative: str) -> str:
    """A comparison's summary.md beside its summary.json."""
    return relative.replace("summary.json", "summary.md")


def variant_name(c: Context, relative: str, variant: str) -> str:
    """`variant`, with the Python it ran on when that is not the run's own."""
    environment = c.reports.get(relative, "environment")
    python = environment.get("servers", {}).get(variant, {}).get("python")
    return f"`{variant}`" + (
        f" ({python})" if python and python != environment.get("python") else ""
    )


# --- the talk's nine ------------------------------------------------------------------


@TABLES("talk.variants", TALK)
def talk_variants(c: Context) -> str:
    """Per variant: short req/s, the convoy, the long stages, its verdicts and margins."""
    summary = c.reports.summary(TALK)
    found = c.reports.verdicts(TALK)
    rows = [
        [
            f"`{variant}`",
            fmt_rps(median(g := c.reports.group(TALK, variant, "short"), "rps", TALK, c.reports))
            + group_marks(g),
            convoy_cell(c, TALK, variant),
            long_cell(c, TALK, variant, (1, 2, 3)),
            verdict_cell(found, variant),
        ]
        for variant in variants_of(summary)
    ]
    return "\n".join(
        markdown_table(
            [
                "variant",
                "short req/s",
                "convoy: short req/s before → during",
                "long: s/request with 1 / 2 / 3 clients",
                "verdicts (margin)",
            ],
            rows,
        )
    )


@TABLES("talk.verdicts", TALK, "loadtest/talk/figures.py")
def talk_verdicts(c: Context) -> str:
    """The report's own verdict table, the talk's figures beside each."""
    found = [v for v in c.reports.verdicts(TALK) if not RULES[v.rule].beyond_talk]
    return "\n".join(verdict_table(found, with_talk=True))


@TABLES("talk.beside", TALK, "loadtest/talk/figures.py")
def talk_beside(c: Context) -> str:
    """Each figure the talk states beside the lab's counterpart (the report's renderer)."""
    groups = c.reports.groups(TALK)
    rows = [
        [figure.what, figure.variant or "–", figure.said, figure.at, lab_figure(figure, groups)]
        for figure in talk.FIGURES
    ]
    return "\n".join(markdown_table(["experiment", "variant", "talk", "video", "lab"], rows))


# --- what a busy core does ------------------------------------------------------------

BUSY_RUNS = (("quiet", TALK), ("one busy core", ONE_BUSY), ("two busy cores", TWO_BUSY))


def drop_cell(c: Context, relative: str, variant: str) -> str:
    group, before, during = convoy_pair(c, relative, variant)
    head = f"{fmt_rps(before)} → {fmt_rps(during)}{group_marks(group)}"
    if during >= before:
        return f"{head} ({share(during / before)} of before)"
    drops = group_figure(group, drop_factor)
    if drops is None or drops.count < 2:
        return f"{head} ({fmt_factor(before / during if during else math.inf)} less)"
    return (
        f"{head} ({fmt_factor(drops.median)} less; repeats "
        f"{fmt_factor(drops.low)}–{fmt_factor(drops.high)})"
    )


def foreign_cell(c: Context, relative: str, variants: Sequence[str]) -> str:
    values = [
        value
        for run in c.reports.summary(relative)["runs"]
        if run["variant"] in variants and run["scenario"] == "convoy"
        for value in [run.get("foreign_cpu_cores")]
        if isinstance(value, int | float)
    ]
    if not values:
        return "–"
    return span(values, lambda v: f"{v:.2f}") + " cores"


@TABLES("busy-cores.convoy", TALK, ONE_BUSY, TWO_BUSY)
def busy_cores_convoy(c: Context) -> str:
    variants = ("threads", "coro-threadpool", "threads-procpool")
    header = [""]
    for title, relative in BUSY_RUNS:
        header.append(f"{title} ([report]({c.report_link(markdown_of(relative))}))")
    rows = [["other processes' CPU (convoy runs)"]]
    rows[0] += [foreign_cell(c, relative, variants) for _, relative in BUSY_RUNS]
    rows += [
        [f"`{variant}` convoy: short req/s before → during (drop)"]
        + [drop_cell(c, relative, variant) for _, relative in BUSY_RUNS]
        for variant in variants
    ]
    return "\n".join(markdown_table(header, rows))


# --- beyond the talk ------------------------------------------------------------------


def gil_cell(group: RunGroup | None) -> str:
    figure = group.stat("gil_wait_share") if group else None
    return "–" if figure is None else percent_or_dash(figure.median).replace("%", " %")


def long_stages(c: Context, relative: str) -> tuple[int, ...]:
    """The long scenario's stages (client counts) the run has, in order."""
    groups = c.reports.groups(relative)
    return tuple(sorted({g.clients for g in groups if g.scenario == "long" and g.clients}))


@TABLES("modern.variants", MODERN)
def modern_variants(c: Context) -> str:
    summary = c.reports.summary(MODERN)
    found = c.reports.verdicts(MODERN)
    stages = long_stages(c, MODERN)
    rows = []
    for variant in variants_of(summary):
        short = c.reports.group(MODERN, variant, "short")
        rows.append(
            [
                variant_name(c, MODERN, variant)
                + (" (the talk)" if variant in TALK_VARIANTS else ""),
                fmt_rps(median(short, "rps", MODERN, c.reports)) + group_marks(short),
                convoy_cell(c, MODERN, variant),
                long_cell(c, MODERN, variant, stages),
                gil_cell(find_group(c.reports.groups(MODERN), variant, "convoy")),
                verdict_cell(found, variant, beyond=True),
            ]
        )
    return "\n".join(
        markdown_table(
            [
                "variant",
                "short req/s",
                "convoy: short req/s before → during",
                f"long: s/request, {' / '.join(map(str, stages))} clients",
                "GIL busy (probe, convoy run)",
                "predictions (margin)",
            ],
            rows,
        )
    )


@TABLES("modern.tothread-trio", MODERN)
def modern_tothread_trio(c: Context) -> str:
    """The verdicts on the two idioms predicted last, in full (the report's renderer)."""
    found = [
        v
        for v in c.reports.verdicts(MODERN)
        if v.variant in ("asyncio-tothread", "trio") and RULES[v.rule].beyond_talk
    ]
    if not found:
        raise ReportError(f"{c.reports.name(MODERN)}: no verdict on asyncio-tothread, trio")
    return "\n".join(line for line in verdict_table(found, with_talk=False) if line.startswith("|"))


@TABLES("versions.table", *VERSIONS.values())
def versions_table(c: Context) -> str:
    """One row per variant per Python: lab's own cells (loadtest.compare.versions), with
    the groups' marks."""
    rows = []
    for python, relative in VERSIONS.items():
        groups = c.reports.groups(relative)
        for variant in variants_of(c.reports.summary(relative)):
            cells = version_figures(groups, variant)
            marked: tuple[tuple[int, Scenario], ...] = ((0, "short"), (1, "convoy"))
            for index, scenario in marked:
                group = find_group(groups, variant, scenario)
                if group is not None and cells[index] != "–":
                    cells[index] += group_marks(group)
            rows.append([f"`{variant}`", version_label(c, python), *cells])
    return "\n".join(
        markdown_table(
            [
                "variant",
                "Python",
                "short req/s",
                "convoy before → during",
                "drop",
                "long s (1 client)",
                "GIL busy (probe, convoy run)",
            ],
            rows,
        )
    )


# --- capacity -----------------------------------------------------------------------


@TABLES("capacity.sweep", CAPACITY)
def capacity_sweep(c: Context) -> str:
    """req/s per connection count and the capacity (capacity.md's first table)."""
    summary: dict[str, Any] = c.reports.json(CAPACITY)
    connections = c.reports.get(CAPACITY, "environment", "connections")
    sweep = points_of(summary, "sweep")
    if not sweep:
        raise ReportError(f"{c.reports.name(CAPACITY)}: no key points[kind=sweep]")
    rows = []
    for variant, found in sweep.items():
        by_count = {p["connections"]: p for p in found}
        best, at = capacity_line(found)
        rows.append(
            [
                f"`{variant}`",
                *(
                    f"{by_count[n]['rps']:,.0f}{point_marks(by_count[n])}" if n in by_count else "–"
                    for n in connections
                ),
                f"{best} ({at})",
            ]
        )
    anchor = summary.get("anchor") or []
    if anchor:
        by_count = {a["connections"]: a for a in anchor}
        best_anchor = max(anchor, key=lambda a: a["rps"])
        rows.append(
            [
                "*Redis (C server and client)*",
                *(f"{by_count[n]['rps']:,.0f}" if n in by_count else "–" for n in connections),
                f"{best_anchor['rps']:,.0f} ({best_anchor['connections']})",
            ]
        )
    header = ["variant", *(f"{n} conn." for n in connections), "capacity (at conn.)"]
    return "\n".join(markdown_table(header, rows))


@TABLES("capacity.rates", CAPACITY)
def capacity_rates(c: Context) -> str:
    """p99 (ms, from the intended send time) at each share of capacity, alone and beside
    one long client."""
    summary: dict[str, Any] = c.reports.json(CAPACITY)
    shares = c.reports.get(CAPACITY, "environment", "rate_shares")
    alone, beside = points_of(summary, "rates"), points_of(summary, "rates-convoy")
    if not alone:
        raise ReportError(f"{c.reports.name(CAPACITY)}: no key points[kind=rates]")

    def p99(found: Sequence[dict[str, Any]], share: float) -> str:
        for point in found:
            if math.isclose(point["rate_share"], share):
                value = point["latency_ms"].get("p99")
                if value is None:
                    return "–"
                text = f"{value:.3g}" if value < 100 else f"{value:,.0f}"
                return text + point_marks(point)
        return "–"

    convoy_shares = [s for s in shares if math.isclose(s, 0.1) or math.isclose(s, 0.9)]
    rows = [
        [
            f"`{variant}`",
            *(p99(found, share) for share in shares),
            *(p99(beside.get(variant, []), share) for share in convoy_shares),
        ]
        for variant, found in alone.items()
    ]
    header = [
        "variant",
        *(f"{share * 100:g} %" for share in shares),
        *(f"{share * 100:g} %, one long client beside" for share in convoy_shares),
    ]
    return "\n".join(markdown_table(header, rows))


# --- pinning ---------------------------------------------------------------------------


def short_median(c: Context, relative: str, variant: str) -> float:
    return median(c.reports.group(relative, variant, "short"), "rps", relative, c.reports)


@TABLES("pinning.table", TALK, PINNED)
def pinning_table(c: Context) -> str:
    """The talk's run (unpinned) beside the same run pinned."""
    sides = (TALK, PINNED)

    def immune(relative: str, variants: Sequence[str]) -> str:
        verdicts = [
            c.reports.verdict(relative, "separate-process-immune", variant) for variant in variants
        ]
        shares = [convoy_pair(c, relative, v) for v in variants]
        share_text = span((during / before for _, before, during in shares), share)
        return f"{''.join(sorted({v.mark for v in verdicts}))} {share_text} of before"

    def pools_short(relative: str) -> str:
        text = span((short_median(c, relative, v) for v in PROCESS_POOLS), fmt_rps)
        if relative == TALK:
            return text
        changes = [
            short_median(c, relative, v) / short_median(c, TALK, v) - 1 for v in PROCESS_POOLS
        ]
        return f"{text} ({span(changes, lambda f: f'{f * 100:+.0f} %', ' to ')})"

    def long_two(relative: str) -> str:
        one = long_seconds(c, relative, "threads-procpool", 1)
        two = long_seconds(c, relative, "threads-procpool", 2)
        return f"{two:.3f} s per request ({two / one:.2f}× one client's)"

    def drop(relative: str, variant: str) -> str:
        _, before, during = convoy_pair(c, relative, variant)
        return fmt_factor(math.inf if during == 0 else before / during)

    rows = [
        [
            "`threads` convoy (short req/s before → during)",
            *(drop_cell(c, s, "threads") for s in sides),
        ],
        [
            "`threads-procpool` convoy",
            *(
                drop_cell(c, s, "threads-procpool")
                + f" {c.reports.verdict(s, 'separate-process-immune', 'threads-procpool').mark}"
                for s in sides
            ),
        ],
        [
            "`coro-procpool`, `coro-asyncsocket`, `asyncio-procpool` convoy",
            *(immune(s, PROCESS_POOLS[1:]) for s in sides),
        ],
        ["`coro-threadpool` convoy: drop", *(drop(s, "coro-threadpool") for s in sides)],
        ["short req/s of the process pools (one connection)", *(pools_short(s) for s in sides)],
        ["2 long clients on `threads-procpool`", *(long_two(s) for s in sides)],
    ]
    header = [
        "",
        f"unpinned: the talk's run ([report]({c.report_link(markdown_of(TALK))}))",
        f"servers on one CPU, load on the other ([report]({c.report_link(markdown_of(PINNED))}))",
    ]
    return "\n".join(markdown_table(header, rows))


# --- the switch interval ------------------------------------------------------------------


@TABLES("switch-interval.verdicts", SWITCH_INTERVAL_REPORT)
def switch_interval_table(c: Context) -> str:
    """The sweep's verdicts, from its report (the rule's text left to the report)."""
    columns = ("verdict", "variant", "lab", "margin")
    rows = []
    for row in switch_interval_verdicts(c):
        missing = [column for column in columns if column not in row]
        if missing:
            raise ReportError(
                f"{c.reports.name(SWITCH_INTERVAL_REPORT)}: no column {missing[0]!r} in the "
                f"table under {SWITCH_INTERVAL_VERDICTS!r}"
            )
        rows.append([row["verdict"], f"`{row['variant']}`", row["lab"], row["margin"]])
    return "\n".join(markdown_table(list(columns), rows))


# --- connections ------------------------------------------------------------------------


@TABLES("connections.memory", CONNECTIONS)
def connections_memory(c: Context) -> str:
    """The report's own table of memory, threads and descriptors per idle connection."""
    found = c.reports.get(CONNECTIONS, "figures")
    lines = [line for line in memory_section(found) if line.startswith("|")]
    if not lines:
        raise ReportError(f"{c.reports.name(CONNECTIONS)}: no key figures.memory")
    return "\n".join(lines)


# --- what made each committed report -----------------------------------------------------


def wall_text(wall: object) -> str:
    if not isinstance(wall, int | float) or isinstance(wall, bool):
        return "not recorded"
    return f"{wall / 60:.1f} min" if wall >= 120 else f"{wall:.0f} s"


def report_kind(data: object, name: str) -> str:
    if isinstance(data, dict):
        if isinstance(data.get("kind"), str):
            return str(data["kind"])
        if "runs" in data and "environment" in data:
            return "compare"
    return {"timeline.json": "timeline"}.get(name, "–")


def report_command(data: object) -> str | None:
    """The command a report written before provenance records itself (some do)."""
    if not isinstance(data, dict):
        return None
    environment = data.get("environment")
    inner = environment.get("command") if isinstance(environment, dict) else None
    for found in (data.get("command"), inner):
        if isinstance(found, str) and found:
            return found
    return None


def provenance_row(c: Context, relative: str, data: object) -> list[str]:
    """One report: its link, kind, command and commit, start and wall time."""
    link = f"[{relative}]({c.report_link(relative)})"
    kind = report_kind(data, relative.rpartition("/")[2])
    record = data.get("provenance") if isinstance(data, dict) else None
    if not isinstance(record, dict):
        command = report_command(data)
        made = f"`{command}` (its own record; commit not recorded)" if command else None
        return [link, kind, made or "not recorded", "not recorded", "not recorded"]
    commit = str(record.get("commit") or "unknown")[:10]
    dirty = " (uncommitted changes)" if record.get("dirty") else ""
    return [
        link,
        str(record.get("kind") or kind),
        f"`{record.get('command') or 'not recorded'}` at {commit}{dirty}",
        str(record.get("started") or "not recorded"),
        wall_text(record.get("wall_seconds")),
    ]


@TABLES("reports.provenance", "docs/results/**/*.json")
def reports_provenance(c: Context) -> str:
    """Every committed report with what made it and its wall time, from its provenance
    record (docs/design.md §6.11; "not recorded" where the report predates it), then how
    long the whole `make results` took (docs/results/results.json)."""
    root = c.reports.root
    rows = []
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root).as_posix()
        if relative == RESULTS_RUN:
            continue  # the run's own record: the line under the table
        rows.append(provenance_row(c, relative, c.reports.json(relative)))
    header = ["report", "kind", "made by (command, commit)", "started", "wall time"]
    run = f"[{RESULTS_RUN}]({c.report_link(RESULTS_RUN)})"
    return "\n".join(
        [*markdown_table(header, rows), "", f"The whole run ({run}): {results_run(c)}."]
    )
