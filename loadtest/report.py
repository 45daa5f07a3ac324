# loadtest/report.py
#
# Turns a comparison run's summary (DESIGN §6) into its report: summary.md
# (the talk's figures beside the lab's with a verdict per rule, tables of
# median and spread over repeats, the environment) and PNG plots (req/s,
# latency percentiles, the convoy timeline, CPU). A figure the load generator
# limited is marked † everywhere and hatched in plots: it is not the server's.
#
#   python -m loadtest.report results/DIR/summary.json [--out DIR]
#
# regenerates the report from a saved summary.

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from loadtest import talk
from loadtest.summary import (
    Run,
    RunGroup,
    Spread,
    Summary,
    SummaryError,
    check_summary,
    find_group,
    fmt_factor,
    fmt_ms,
    fmt_rps,
    fmt_seconds,
    group_runs,
    load_summary,
    run_number,
    spread,
    variant_order,
    variants_of,
)
from loadtest.verdicts import RULES, Verdict, verdicts

LOADGEN_MARK = "†"
LOADGEN_NOTE = (
    f"{LOADGEN_MARK} limited by the load generator (its CPU or its achieved rate) in at least "
    "one repeat: the figure says what the client could do, not what the server can."
)
LATENCY_COLUMNS = (("p50", "p50 ms"), ("p99", "p99 ms"), ("p999", "p99.9 ms"))


# --- figures per run and per group -------------------------------------------


def cpu_cores(run: Run) -> float | None:
    """Server CPU cores used on average during the run."""
    cores = run_number(run, "server_cpu_cores")
    if cores is not None:
        return cores
    seconds = run_number(run, "server_cpu_seconds")
    if seconds is None or run["duration_s"] <= 0:
        return None
    return seconds / run["duration_s"]


def drop_factor(run: Run) -> float | None:
    before = run_number(run, "short_rps_before")
    during = run_number(run, "short_rps_during")
    if before is None or during is None or before <= 0:
        return None
    return float("inf") if during == 0 else before / during


def group_figure(group: RunGroup, figure: Callable[[Run], float | None]) -> Spread | None:
    return spread(figure(run) for run in group.runs)


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


# --- plots ---------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    label: str
    figures: list[Spread | None]  # one per variant
    loadgen_bound: list[bool]  # one per variant
    color: str | tuple[float, float, float, float]


def variant_color(variant: str) -> tuple[float, float, float, float]:
    # stable across reports: the variant's place in the talk's order
    index = variant_order(variant)[0]
    color: tuple[float, float, float, float] = colormaps["tab10"](index % 10)
    return color


def series_color(index: int) -> tuple[float, float, float, float]:
    color: tuple[float, float, float, float] = colormaps["tab10"](index % 10)
    return color


def plain_number(value: float, _position: object = None) -> str:
    # 10,000 and 0.05 rather than 10^4 and 5x10^-2: readers compare with the tables
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def log_axis(ax: Axes, *, show_zero: bool = False) -> None:
    if show_zero:
        # symlog: logarithmic above 1, linear below, so 0 req/s is on the axis
        ax.set_yscale("symlog", linthresh=1)
    else:
        ax.set_yscale("log")

        def minor_label(value: float, _position: object = None) -> str:
            # label minor ticks only when the axis spans under two decades
            low, high = ax.get_ylim()
            return plain_number(value) if low > 0 and high / low < 100 else ""

        ax.yaxis.set_minor_formatter(FuncFormatter(minor_label))
    ax.yaxis.set_major_formatter(FuncFormatter(plain_number))


def grouped_bars(
    ax: Axes, variants: Sequence[str], series: Sequence[Series], *, log: bool | None = None
) -> None:
    """Bars per variant, one per series, error bars for the spread, hatched if loadgen-bound.

    log: a log y axis; None chooses one when the figures span more than 50×.
    """
    width = 0.8 / max(len(series), 1)
    positive = [
        value
        for one in series
        for figure in one.figures
        if figure is not None
        for value in (figure.low, figure.high)
        if value > 0
    ]
    if log is None:
        # a wide spread (short vs long requests, a collapse) needs a log scale
        log = bool(positive) and max(positive) / min(positive) > 50
    log = log and bool(positive)  # nothing above 0 has no log scale
    if log:
        log_axis(ax)  # bars that are exactly 0 get a "0" at the axis floor below
    for offset, one in enumerate(series):
        xs = [index + (offset - (len(series) - 1) / 2) * width for index in range(len(variants))]
        heights = [figure.median if figure else 0.0 for figure in one.figures]
        below = [figure.median - figure.low if figure else 0.0 for figure in one.figures]
        above = [figure.high - figure.median if figure else 0.0 for figure in one.figures]
        bars = ax.bar(xs, heights, width, label=one.label, color=one.color, edgecolor="black")
        ax.errorbar(xs, heights, yerr=[below, above], fmt="none", ecolor="black", capsize=2)
        for bar, bound in zip(bars, one.loadgen_bound, strict=True):
            if bound:
                bar.set_hatch("///")
        if log:
            # a log axis cannot draw 0: say it at the axis floor
            for x, figure in zip(xs, one.figures, strict=True):
                if figure is not None and figure.median == 0:
                    ax.annotate(
                        "0",
                        (x, 0),
                        xycoords=("data", "axes fraction"),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        fontsize="small",
                        color=one.color,
                        fontweight="bold",
                    )
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)


def loadgen_legend(ax: Axes, series: Sequence[Series]) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if any(bound for one in series for bound in one.loadgen_bound):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///"))
        labels.append(f"loadgen-bound {LOADGEN_MARK} (not the server's figure)")
    # outside the axes, right: never over a bar
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def bar_series(
    groups: Sequence[RunGroup],
    variants: Sequence[str],
    figure_of: Callable[[RunGroup], Spread | None],
) -> list[Series]:
    """One series per scenario stage (short, long ×k, convoy) present in `groups`."""
    labels: list[str] = []
    for group in groups:
        if group.label not in labels:
            labels.append(group.label)
    series = []
    for index, label in enumerate(labels):
        by_variant = {group.variant: group for group in groups if group.label == label}
        series.append(
            Series(
                label,
                [figure_of(by_variant[v]) if v in by_variant else None for v in variants],
                [by_variant[v].loadgen_bound if v in by_variant else False for v in variants],
                series_color(index),
            )
        )
    return series


def plot_rps(groups: Sequence[RunGroup], variants: Sequence[str], path: Path) -> Path:
    plain = [group for group in groups if group.scenario != "convoy"]
    series = bar_series(plain, variants, lambda group: group.stat("rps"))
    convoys = {group.variant: group for group in groups if group.scenario == "convoy"}
    for field, label in (("short_rps_before", "convoy: before"), ("short_rps_during", "during")):
        if convoys:
            series.append(
                Series(
                    f"{label} the long request",
                    [convoys[v].stat(field) if v in convoys else None for v in variants],
                    [convoys[v].loadgen_bound if v in convoys else False for v in variants],
                    series_color(len(series)),
                )
            )
    figure = Figure(figsize=(max(8.0, 1.3 * len(variants) + 3), 5.5), layout="constrained")
    ax = figure.subplots()
    grouped_bars(ax, variants, series)
    ax.set_title("Requests per second by variant and scenario (median, min–max over repeats)")
    ax.set_ylabel("requests / s" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    loadgen_legend(ax, series)
    figure.savefig(path, dpi=110)
    return path


def plot_latency(groups: Sequence[RunGroup], variants: Sequence[str], path: Path) -> Path | None:
    scenarios = [s for s in ("short", "convoy") if any(g.scenario == s for g in groups)]
    if not scenarios:
        return None
    figure = Figure(
        figsize=(max(8.0, 1.1 * len(variants) + 3), 4.5 * len(scenarios)), layout="constrained"
    )
    axes = figure.subplots(len(scenarios), 1, squeeze=False)[:, 0]
    for ax, scenario in zip(axes, scenarios, strict=True):
        chosen = {g.variant: g for g in groups if g.scenario == scenario}
        shown = [v for v in variants if v in chosen]
        series = [
            Series(
                title,
                [chosen[v].latency(key) for v in shown],
                [chosen[v].loadgen_bound for v in shown],
                series_color(index),
            )
            for index, (key, title) in enumerate(LATENCY_COLUMNS)
        ]
        grouped_bars(ax, shown, series, log=True)
        ax.set_title(f"Client-side latency, {scenario} scenario")
        ax.set_ylabel("ms (log scale)")
        loadgen_legend(ax, series)
    figure.suptitle("Latency percentiles per variant (median over repeats)")
    figure.savefig(path, dpi=110)
    return path


def median_repeat(group: RunGroup) -> Run:
    # the repeat whose collapse is the median one: a typical timeline, not the best or worst
    ranked = sorted(group.runs, key=lambda run: run_number(run, "short_rps_during") or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def plot_convoy(groups: Sequence[RunGroup], path: Path) -> Path | None:
    convoys = [g for g in groups if g.scenario == "convoy" and median_repeat(g).get("timeline")]
    if not convoys:
        return None
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    ax = figure.subplots()
    windows: list[tuple[float, float]] = []
    for group in convoys:
        run = median_repeat(group)
        points = run.get("timeline", [])
        mark = f" {LOADGEN_MARK}" if run["bottleneck"] == "loadgen" else ""
        ax.plot(
            [point["t"] for point in points],
            [point["short_rps"] for point in points],
            color=variant_color(group.variant),
            marker=".",
            label=f"{group.variant}{mark}",
        )
        window = run.get("long_window")
        if window:
            windows.append((window[0], window[1]))
    if windows:
        # one shaded span, the union: per-variant spans stacked on top of each
        # other would hide the lines
        start, end = min(w[0] for w in windows), max(w[1] for w in windows)
        ax.axvspan(
            start,
            end,
            color="grey",
            alpha=0.15,
            label=f"long request running ({start:g}–{end:g} s, union over variants)",
        )
    log_axis(ax, show_zero=True)  # the coroutines' stall is 0 req/s
    ax.set_ylim(bottom=0)
    ax.set_title("Convoy: short-request rate each second (one typical repeat per variant)")
    ax.set_xlabel("seconds since the run's start")
    ax.set_ylabel("short requests / s (log scale, 0 shown)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.savefig(path, dpi=110)
    return path


def plot_cpu(groups: Sequence[RunGroup], variants: Sequence[str], cores: float, path: Path) -> Path:
    series = bar_series(groups, variants, lambda group: group_figure(group, cpu_cores))
    figure = Figure(figsize=(max(8.0, 1.3 * len(variants) + 3), 5.5), layout="constrained")
    ax = figure.subplots()
    grouped_bars(ax, variants, series, log=False)  # cores: a small range, 0 .. the CPU count
    ax.axhline(cores, color="red", linestyle="--", label=f"{cores:g} CPUs available")
    ax.set_ylim(0, max(cores * 1.15, ax.get_ylim()[1]))
    ax.set_title("Server CPU used by variant and scenario (pool workers included)")
    ax.set_ylabel("CPU cores (CPU-seconds per second)")
    loadgen_legend(ax, series)
    figure.savefig(path, dpi=110)
    return path


# --- entry points --------------------------------------------------------------


def write_report(summary: Mapping[str, object] | Summary, out_dir: Path) -> list[Path]:
    """Write summary.md and the plots into out_dir; return their paths (summary.md first)."""
    checked = check_summary(summary)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = group_runs(checked)
    variants = variants_of(checked)
    plots: list[Path] = []
    if groups:
        plots.append(plot_rps(groups, variants, out_dir / "rps.png"))
        optional = (
            plot_latency(groups, variants, out_dir / "latency.png"),
            plot_convoy(groups, out_dir / "convoy.png"),
        )
        plots.extend(plot for plot in optional if plot is not None)
        cores = float(checked["environment"]["cores"])
        plots.append(plot_cpu(groups, variants, cores, out_dir / "cpu.png"))
    markdown = out_dir / "summary.md"
    markdown.write_text(render_markdown(checked, groups, verdicts(checked), plots), "utf-8")
    return [markdown, *plots]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.report",
        description="Regenerate a comparison report (summary.md and plots) from summary.json.",
    )
    parser.add_argument("summary", type=Path, help="a summary.json written by loadtest.compare")
    parser.add_argument(
        "--out", type=Path, help="where to write the report (default: the summary's folder)"
    )
    args = parser.parse_args(argv)
    try:
        summary = load_summary(args.summary)
        written = write_report(summary, args.out or args.summary.parent)
    except SummaryError as error:
        print(f"loadtest.report: {error}", file=sys.stderr)
        return 2
    for verdict in verdicts(summary):
        print(verdict.line())
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
