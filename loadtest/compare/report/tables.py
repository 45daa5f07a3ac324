# loadtest/compare/report/tables.py
#
# summary.md: the talk's figures beside the lab's with a verdict per rule,
# tables of median and spread over repeats, and the environment of the run.
# Marks: † the load generator limited the figure, ‡ other processes kept the
# machine busy (noisy); a long stage without data says so in words.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from loadtest.compare.plan import PHI
from loadtest.compare.summary import (
    GIL_BUSY_NOTE,
    Run,
    RunGroup,
    Summary,
    cpu_cores,
    drop_factor,
    find_group,
    group_figure,
    noisy_threshold,
    run_number,
    variants_of,
)
from loadtest.compare.verdicts import RULES, Verdict
from loadtest.talk import figures as talk
from loadtest.toolbox import provenance
from loadtest.toolbox.formats import (
    LOADGEN_MARK,
    NOISY_MARK,
    Format,
    fixed,
    fmt_cores,
    fmt_count,
    fmt_cpu_per_request,
    fmt_factor,
    fmt_mib,
    fmt_ms,
    fmt_rps,
    fmt_seconds,
    markdown_table,
    marks,
    percent_or_dash,
    plural,
    spread_text,
)
from loadtest.toolbox.spread import Spread, spread

LOADGEN_NOTE = (
    f"{LOADGEN_MARK} limited by the load generator (its CPU or its achieved rate) in at least "
    "one repeat: the figure says what the client could do, not what the server can."
)
LATENCY_COLUMNS = (("p50", "p50 ms"), ("p99", "p99 ms"), ("p999", "p99.9 ms"))
MEMORY_COLUMN = "peak memory MiB"
MEMORY_NOTE = (
    "Peak memory is the most resident memory of the server's process tree (pool workers "
    "included) in any scrape of the run or stage; – where the server does not export it "
    "(or the report predates it)."
)


def noisy_note(threshold: float) -> str:
    return (
        f"{NOISY_MARK} noisy: other processes used at least {threshold:g} CPU core on average "
        "during at least one repeat (foreign CPU: the machine's busy CPU from /proc/stat, steal "
        "included, minus the server's and the load generator's own). The convoy's depth "
        "depends on a free core, so such a figure is not the quiet machine's; a verdict that "
        "rests only on such runs is not judged. Rerun on a quiet machine."
    )


def group_marks(group: RunGroup | None) -> str:
    if group is None:
        return ""
    return marks(loadgen=group.loadgen_bound, noisy=group.noisy)


def cell(figure: Spread | None, fmt: Format, group: RunGroup | None = None) -> str:
    """Median, its spread over repeats (min–max) when they differ, then the group's marks
    († loadgen-bound, ‡ noisy)."""
    if figure is None:
        return "–"
    return spread_text(figure, fmt) + group_marks(group)


# --- summary.md ----------------------------------------------------------------


def lab_figure(figure: talk.TalkFigure, groups: Sequence[RunGroup]) -> str:
    """The lab's counterpart of one of the talk's figures, as text."""
    if figure.variant is None:
        return "no lab variant (an intermediate step of the talk)"
    if figure.measure is None:
        return "not measured by the lab"
    variant = figure.variant
    if figure.measure.startswith("long_seconds_"):
        clients = int(figure.measure.rsplit("_", 1)[1])
        group = find_group(groups, variant, "long", clients)
        seconds = group.stat("seconds_per_request") if group else None
        if group is None:
            return "not run"
        if seconds is None:
            return (group.gap or "no figure") + group_marks(group)
        text = fmt_seconds(seconds.median)
        one = find_group(groups, variant, "long", 1)
        base = one.stat("seconds_per_request") if one else None
        if clients > 1 and base is not None and base.median > 0:
            text += f" ({seconds.median / base.median:.2f}× 1 client)"
        return text + group_marks(group)
    if figure.measure == "short_rps":
        group = find_group(groups, variant, "short")
        if group is None:
            return "not run"
        return f"{fmt_rps(group.median('rps'))} req/s" + group_marks(group)
    group = find_group(groups, variant, "convoy")  # convoy_during_rps
    if group is None:
        return "not run"
    before, during = group.median("short_rps_before"), group.median("short_rps_during")
    return f"{fmt_rps(during)} req/s (from {fmt_rps(before)}){group_marks(group)}"


def verdict_table(found: Sequence[Verdict], *, with_talk: bool) -> list[str]:
    rows = []
    for verdict in found:
        rule = RULES[verdict.rule]
        row = [
            f"{verdict.mark} {verdict.status}",
            verdict.variant,
            rule.behaviour,
            rule.test,
            verdict.figures,
            verdict.margin_text,
        ]
        if with_talk:
            said = "; ".join(
                f"{talk.figure(key).said} ({talk.figure(key).at})" for key in verdict.talk_figures
            )
            row.append(said or "–")
        rows.append(row)
    header = ["verdict", "variant", "behaviour", "rule", "lab", "margin"]
    if with_talk:
        header.append("talk (video time)")
    return [
        *markdown_table(header, rows),
        "",
        "*margin*: how far the lab's figure is from the rule's bound, as a factor (a 30× "
        "collapse against a 10× rule has 3× to spare): a margin near 1 is a verdict that a "
        "noisier machine or another run can flip.",
        "",
    ]


def beyond_section(found: Sequence[Verdict]) -> list[str]:
    """The predictions of docs/design.md §3.1, written before measuring, and their outcome."""
    beyond = [verdict for verdict in found if RULES[verdict.rule].beyond_talk]
    if not beyond:
        return []
    return [
        "## Beyond the talk: predictions and outcomes",
        "",
        "Each rule is a prediction written in docs/design.md §3.1 before these variants "
        "ran. *Not as predicted* is a finding to explain, not a threshold to tune.",
        "",
        *verdict_table(beyond, with_talk=False),
    ]


def talk_section(
    summary: Summary, groups: Sequence[RunGroup], found: Sequence[Verdict]
) -> list[str]:
    environment = summary["environment"]
    lines = ["## The talk reproduced", ""]
    long_n = environment.get("long_n")
    single = environment.get("long_seconds_single")
    on_servers = list(environment.get("long_seconds_server", {}).values())
    # fib(n + 1) costs φ times fib(n): the talk's fib(40) against this machine's
    slower = (
        talk.TALK_CONVOY_SECONDS / (single * PHI ** (talk.TALK_CONVOY_N - long_n))
        if single and long_n is not None
        else None
    )
    scale = (
        f"The lab's long request is fib({long_n})"
        + (f", {single:.2f} s alone on this machine" if single is not None else "")
        + (
            f" ({min(on_servers):.2f}–{max(on_servers):.2f} s alone on the servers)"
            if on_servers
            else ""
        )
        + f"; the talk's perf1 used fib({talk.TALK_LONG_N}) at {talk.TALK_LONG_SECONDS} s "
        f"and its convoy fib({talk.TALK_CONVOY_N}) (~{talk.TALK_CONVOY_SECONDS:g} s on his 2015 "
        "laptop and alpha Python"
        + (f", {slower:.1f}× slower than CPython here)." if slower else ").")
        if long_n is not None
        else "The long request's n was not recorded."
    )
    short_n = environment.get("short_n")
    if short_n is not None:
        scale += f" Short requests: fib({short_n}) (talk: fib({talk.TALK_SHORT_N}))."
    lines += [
        scale + " Absolute figures differ with the machine, so the verdicts judge ratios "
        "(docs/design.md §6) and the talk's numbers are context.",
        "",
    ]
    if environment.get("gil") == "disabled":
        lines += [
            "**This interpreter runs without the GIL**: the talk's GIL behaviours (the convoy, "
            "time doubling with clients) are expected to differ here.",
            "",
        ]
    lines += ["### Verdicts", ""]
    talks = [verdict for verdict in found if not RULES[verdict.rule].beyond_talk]
    if not talks:
        lines += ["No rule applies to the variants and scenarios in this run.", ""]
    else:
        lines += verdict_table(talks, with_talk=True)
    lines += ["### The talk's figures beside the lab's", ""]
    rows = [
        [
            figure.what,
            figure.variant or "–",
            figure.said,
            f'"{figure.quote}"',
            figure.at,
            lab_figure(figure, groups),
        ]
        for figure in talk.FIGURES
    ]
    lines += markdown_table(
        ["experiment", "lab variant", "talk", "talk's words", "video", "lab"], rows
    )
    lines += ["", f"Video: {talk.TALK_VIDEO} (times are caption start times).", ""]
    return lines


def scenario_label(group: RunGroup) -> str:
    return f"{group.label} ({group.gap})" if group.gap else group.label


def runs_section(groups: Sequence[RunGroup]) -> list[str]:
    rows = []
    for group in groups:
        errors = sum(run["errors"] for run in group.runs)
        rows.append(
            [
                group.variant,
                scenario_label(group),
                cell(group.stat("rps"), fmt_rps, group),
                *(cell(group.latency(key), fmt_ms, group) for key, _ in LATENCY_COLUMNS),
                cell(group_figure(group, cpu_cores), fmt_cores),
                cell(group.stat("cpu_seconds_per_request"), fmt_cpu_per_request),
                cell(group.stat("server_memory_peak_mib"), fmt_mib),
                str(errors),
                f"loadgen {LOADGEN_MARK} ({group.loadgen_runs}/{len(group.runs)})"
                if group.loadgen_bound
                else "server",
                foreign_cell(group),
            ]
        )
    header = [
        "variant",
        "scenario",
        "req/s",
        *(title for _, title in LATENCY_COLUMNS),
        "CPU cores",
        "CPU s/request",
        MEMORY_COLUMN,
        "errors",
        "bottleneck",
        "other processes, CPU cores",
    ]
    return [
        "## Throughput, client-side latency and CPU",
        "",
        "Median over repeats, (min–max) when they differ. Latency is measured by the client, "
        "in ms with microsecond resolution. CPU is the server's (pool workers included). "
        f"{MEMORY_NOTE} "
        "Each long stage (×1, ×2, ×3 clients) has its own figures: its own duration, the "
        "replies that arrived in it, the latency of the requests that ran wholly inside it, "
        "and the server's CPU in it.",
        "",
        *markdown_table(header, rows),
        "",
    ]


def foreign_cell(group: RunGroup) -> str:
    text = cell(group.stat("foreign_cpu_cores"), fmt_cores)
    if group.noisy:
        text += f" noisy {NOISY_MARK} ({group.noisy_runs}/{len(group.runs)})"
    return text


def long_section(groups: Sequence[RunGroup]) -> list[str]:
    rows = []
    for group in groups:
        if group.scenario != "long":
            continue
        one = find_group(groups, group.variant, "long", 1)
        base = one.stat("seconds_per_request") if one else None
        seconds = group.stat("seconds_per_request")
        ratio = (
            f"{seconds.median / base.median:.2f}×"
            if seconds is not None and base is not None and base.median > 0
            else "–"
        )
        per_request = cell(seconds, fixed(3), group)
        if group.gap:
            per_request = group.gap if seconds is None else f"{per_request} ({group.gap})"
        rows.append(
            [
                group.variant,
                str(group.clients),
                per_request,
                ratio,
                cell(group.stat("rps"), fmt_rps, group),
                cell(group.stat("requests"), fmt_count),
                cell(group.stat("duration_s"), fixed(2)),
                cell(group.latency("p50"), fmt_ms, group),
                cell(group_figure(group, cpu_cores), fmt_cores, group),
                cell(group.stat("cpu_seconds_per_request"), fmt_cpu_per_request, group),
                cell(group.stat("server_memory_peak_mib"), fmt_mib),
            ]
        )
    if not rows:
        return []
    header = [
        "variant",
        "clients",
        "s/request",
        "ratio to 1 client",
        "req/s",
        "replies",
        "stage s",
        "p50 ms",
        "CPU cores",
        "CPU s/request",
        MEMORY_COLUMN,
    ]
    return [
        "## Long requests: 1, 2, 3 concurrent clients",
        "",
        "Each stage on its own. s/request and p50: the requests that ran wholly inside the "
        "stage; req/s, replies and CPU: what arrived or was spent during it (a request in "
        "flight at a boundary spends CPU in both stages).",
        "",
        *markdown_table(header, rows),
        "",
    ]


def convoy_section(groups: Sequence[RunGroup]) -> list[str]:
    rows = [
        [
            group.variant,
            cell(group.stat("short_rps_before"), fmt_rps, group),
            cell(group.stat("short_rps_during"), fmt_rps, group),
            cell(group_figure(group, drop_factor), fmt_factor),
            cell(group.stat("long_seconds"), fixed(2)),
            cell(group.stat("gil_wait_share"), percent_or_dash),
        ]
        for group in groups
        if group.scenario == "convoy"
    ]
    if not rows:
        return []
    return [
        "## Convoy: steady short requests, then one long request joins",
        "",
        *markdown_table(
            [
                "variant",
                "short req/s before",
                "during",
                "drop factor",
                "long request s",
                "GIL busy (probe, run)",
            ],
            rows,
        ),
        "",
        f"{GIL_BUSY_NOTE} Here over the whole convoy run (its before, during and after thirds).",
        "",
    ]


# Environment fields shown in words by machine_rows rather than as raw key/value rows.
MACHINE_FIELDS = ("busy_cores_at_start", "load_average_at_start", "noisy_threshold_cores")


def environment_section(summary: Summary) -> list[str]:
    environment: Mapping[str, object] = summary["environment"]
    rows = []
    for key, value in environment.items():
        if key in MACHINE_FIELDS:
            continue
        if key == "servers" and isinstance(value, dict):
            # What each variant itself runs (its fib_info), one row each.
            rows += [
                [f"server {variant}", ", ".join(f"{k} {v}" for k, v in sorted(info.items()))]
                for variant, info in value.items()
                if isinstance(info, dict)
            ]
        elif key == "long_seconds_server" and isinstance(value, dict):
            rows.append(
                [
                    f"fib({environment.get('long_n', 'long_n')}) alone on each server",
                    ", ".join(f"{variant} {seconds:.3f} s" for variant, seconds in value.items()),
                ]
            )
        else:
            rows.append([key, "–" if value is None else str(value)])
    rows += machine_rows(summary)
    return ["## Environment", "", *markdown_table(["", ""], rows), ""]


def machine_rows(summary: Summary) -> list[list[str]]:
    """Other processes' CPU and the load average, before and during the runs."""
    environment = summary["environment"]
    rows = []
    if "busy_cores_at_start" in environment:
        cores = environment.get("busy_cores_at_start")
        load = environment.get("load_average_at_start")
        rows.append(
            [
                "other processes' CPU before the first run",
                ("unknown" if cores is None else f"{cores:.2f} cores over 1 s")
                + ("" if load is None else f", 1-minute load average {load:g}"),
            ]
        )
    # a long run's stages share their run's machine figures: one per run
    runs: dict[tuple[str, str, int], Run] = {
        (run["variant"], run["scenario"], run["repeat"]): run for run in summary["runs"]
    }
    foreign = spread(run_number(run, "foreign_cpu_cores") for run in runs.values())
    if foreign is not None:
        steal = spread(run_number(run, "steal_cpu_cores") for run in runs.values())
        loads = [
            value
            for run in runs.values()
            if (averages := run.get("load_average")) is not None
            for value in (averages["start"], averages["end"])
            if value is not None
        ]
        noisy = sum(run.get("noisy") is True for run in runs.values())
        rows.append(
            [
                "other processes' CPU during the runs",
                f"median {foreign.median:.2f}, max {foreign.high:.2f} cores"
                + (f"; steal max {steal.high:.2f} cores" if steal is not None else "")
                + (f"; load average {min(loads):g}–{max(loads):g}" if loads else "")
                + f"; {noisy} of {len(runs)} runs noisy {NOISY_MARK} "
                f"(≥ {noisy_threshold(summary):g} core)",
            ]
        )
    return rows


def render_markdown(
    summary: Summary, groups: Sequence[RunGroup], found: Sequence[Verdict], plots: Sequence[Path]
) -> str:
    environment = summary["environment"]
    variants = variants_of(summary)
    repeats = environment.get("repeat")
    duration = environment.get("duration_s")
    setup = ", ".join(
        part
        for part in (
            f"{duration:g} s per run" if duration is not None else "",
            plural(repeats, "repeat") if repeats is not None else "",
            f"target {environment['target']}" if environment.get("target") else "",
        )
        if part
    )
    lines = [
        f"# fiblab comparison, {environment['date']}",
        "",
        f"Variants: {', '.join(variants) or 'none'}; identical load for each"
        + (f" ({setup})" if setup else "")
        + f"; {environment['cores']} CPU cores, Python {environment['python']}.",
        "",
    ]
    if "provenance" in summary:
        lines += [provenance.markdown_line(summary["provenance"]), ""]
    lines += talk_section(summary, groups, found)
    lines += beyond_section(found)
    lines += runs_section(groups)
    lines += long_section(groups)
    lines += convoy_section(groups)
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{plot.stem}]({plot.name})" for plot in plots]
        lines.append("")
    lines += environment_section(summary)
    if any(group.loadgen_bound for group in groups):
        lines += [LOADGEN_NOTE, ""]
    if any(group.noisy for group in groups):
        lines += [noisy_note(noisy_threshold(summary)), ""]
    return "\n".join(lines)
