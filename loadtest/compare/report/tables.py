# loadtest/compare/report/tables.py
#
# summary.md: the talk's figures beside the lab's with a verdict per rule,
# tables of median and spread over repeats, and the environment of the run.

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from loadtest.compare.summary import (
    RunGroup,
    Spread,
    Summary,
    cpu_cores,
    drop_factor,
    find_group,
    fmt_factor,
    fmt_ms,
    fmt_rps,
    fmt_seconds,
    group_figure,
    variants_of,
)
from loadtest.compare.verdicts import RULES, Verdict
from loadtest.talk import figures as talk

LOADGEN_MARK = "†"
LOADGEN_NOTE = (
    f"{LOADGEN_MARK} limited by the load generator (its CPU or its achieved rate) in at least "
    "one repeat: the figure says what the client could do, not what the server can."
)
LATENCY_COLUMNS = (("p50", "p50 ms"), ("p99", "p99 ms"), ("p999", "p99.9 ms"))


def cell(
    figure: Spread | None, fmt: Callable[[float | None], str], group: RunGroup | None = None
) -> str:
    """Median, its spread over repeats (min–max) when they differ, † when loadgen-bound."""
    if figure is None:
        return "–"
    text = fmt(figure.median)
    low, high = fmt(figure.low), fmt(figure.high)
    if low != high:
        text += f" ({low}–{high})"
    if group is not None and group.loadgen_bound:
        text += LOADGEN_MARK
    return text


# --- summary.md ----------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(text.replace("|", "\\|") for text in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


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
        if group is None or seconds is None:
            return "not run"
        text = fmt_seconds(seconds.median)
        one = find_group(groups, variant, "long", 1)
        base = one.stat("seconds_per_request") if one else None
        if clients > 1 and base is not None and base.median > 0:
            text += f" ({seconds.median / base.median:.2f}× 1 client)"
        return text + (LOADGEN_MARK if group.loadgen_bound else "")
    if figure.measure == "short_rps":
        group = find_group(groups, variant, "short")
        if group is None:
            return "not run"
        return f"{fmt_rps(group.median('rps'))} req/s" + (
            LOADGEN_MARK if group.loadgen_bound else ""
        )
    group = find_group(groups, variant, "convoy")  # convoy_during_rps
    if group is None:
        return "not run"
    before, during = group.median("short_rps_before"), group.median("short_rps_during")
    mark = LOADGEN_MARK if group.loadgen_bound else ""
    return f"{fmt_rps(during)} req/s (from {fmt_rps(before)}){mark}"


def talk_section(
    summary: Summary, groups: Sequence[RunGroup], found: Sequence[Verdict]
) -> list[str]:
    environment = summary["environment"]
    lines = ["## The talk reproduced", ""]
    long_n = environment.get("long_n")
    single = environment.get("long_seconds_single")
    scale = (
        f"The lab's long request is fib({long_n})"
        + (f", {single:.2f} s alone on this machine" if single is not None else "")
        + f"; the talk's perf1 used fib({talk.TALK_LONG_N}) at {talk.TALK_LONG_SECONDS} s "
        f"and its convoy fib({talk.TALK_CONVOY_N}) (~40 s on his 2015 laptop and alpha Python, "
        "~8× slower than CPython today)."
        if long_n is not None
        else "The long request's n was not recorded."
    )
    short_n = environment.get("short_n")
    if short_n is not None:
        scale += f" Short requests: fib({short_n}) (talk: fib({talk.TALK_SHORT_N}))."
    lines += [
        scale + " Absolute figures differ with the machine, so the verdicts judge ratios "
        "(DESIGN §6) and the talk's numbers are context.",
        "",
    ]
    if environment.get("gil") == "disabled":
        lines += [
            "**This interpreter runs without the GIL**: the talk's GIL behaviours (the convoy, "
            "time doubling with clients) are expected to differ here.",
            "",
        ]
    lines += ["### Verdicts", ""]
    if not found:
        lines += ["No rule applies to the variants and scenarios in this run.", ""]
    else:
        rows = []
        for verdict in found:
            rule = RULES[verdict.rule]
            said = "; ".join(
                f"{talk.figure(key).said} ({talk.figure(key).at})" for key in verdict.talk_figures
            )
            rows.append(
                [
                    f"{verdict.mark} {verdict.status}",
                    verdict.variant,
                    rule.behaviour,
                    rule.test,
                    verdict.figures,
                    said or "–",
                ]
            )
        lines += table(
            ["verdict", "variant", "behaviour", "rule", "lab", "talk (video time)"], rows
        )
        lines.append("")
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
    lines += table(["experiment", "lab variant", "talk", "talk's words", "video", "lab"], rows)
    lines += ["", f"Video: {talk.TALK_VIDEO} (times are caption start times).", ""]
    return lines


def runs_section(groups: Sequence[RunGroup]) -> list[str]:
    rows = []
    for group in groups:
        errors = sum(run["errors"] for run in group.runs)
        rows.append(
            [
                group.variant,
                group.label,
                cell(group.stat("rps"), fmt_rps, group),
                *(cell(group.latency(key), fmt_ms, group) for key, _ in LATENCY_COLUMNS),
                cell(group_figure(group, cpu_cores), lambda v: "–" if v is None else f"{v:.2f}"),
                cell(group.stat("cpu_seconds_per_request"), fmt_cpu_per_request),
                str(errors),
                f"loadgen {LOADGEN_MARK} ({group.loadgen_runs}/{len(group.runs)})"
                if group.loadgen_bound
                else "server",
            ]
        )
    header = [
        "variant",
        "scenario",
        "req/s",
        *(title for _, title in LATENCY_COLUMNS),
        "CPU cores",
        "CPU s/request",
        "errors",
        "bottleneck",
    ]
    return [
        "## Throughput, client-side latency and CPU",
        "",
        "Median over repeats, (min–max) when they differ. Latency is measured by the client, "
        "in ms with microsecond resolution. CPU is the server's (pool workers included).",
        "",
        *table(header, rows),
        "",
    ]


def fmt_cpu_per_request(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1e6:,.1f} µs" if value < 0.01 else f"{value:.3f} s"


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
        rows.append(
            [
                group.variant,
                str(group.clients),
                cell(seconds, lambda v: "–" if v is None else f"{v:.3f}", group),
                ratio,
                cell(group.stat("rps"), fmt_rps, group),
            ]
        )
    if not rows:
        return []
    return [
        "## Long requests: 1, 2, 3 concurrent clients",
        "",
        *table(["variant", "clients", "s/request", "ratio to 1 client", "req/s"], rows),
        "",
    ]


def convoy_section(groups: Sequence[RunGroup]) -> list[str]:
    rows = [
        [
            group.variant,
            cell(group.stat("short_rps_before"), fmt_rps, group),
            cell(group.stat("short_rps_during"), fmt_rps, group),
            cell(group_figure(group, drop_factor), fmt_factor),
            cell(group.stat("long_seconds"), lambda v: "–" if v is None else f"{v:.2f}"),
        ]
        for group in groups
        if group.scenario == "convoy"
    ]
    if not rows:
        return []
    return [
        "## Convoy: steady short requests, then one long request joins",
        "",
        *table(["variant", "short req/s before", "during", "drop factor", "long request s"], rows),
        "",
    ]


def environment_section(summary: Summary) -> list[str]:
    environment: Mapping[str, object] = summary["environment"]
    rows = []
    for key, value in environment.items():
        if key == "servers" and isinstance(value, dict):
            # What each variant itself runs (its fib_info), one row each.
            rows += [
                [f"server {variant}", ", ".join(f"{k} {v}" for k, v in sorted(info.items()))]
                for variant, info in value.items()
                if isinstance(info, dict)
            ]
        else:
            rows.append([key, "–" if value is None else str(value)])
    return ["## Environment", "", *table(["", ""], rows), ""]


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
            f"{repeats} repeats" if repeats is not None else "",
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
    lines += talk_section(summary, groups, found)
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
    return "\n".join(lines)
