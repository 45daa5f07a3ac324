# loadtest/compare/report/plots.py
#
# The report's PNG plots: req/s, latency percentiles, the convoy timeline and
# CPU per variant. A figure the load generator limited is hatched ///, one
# measured while other processes kept the machine busy (noisy) is hatched
# xx and its convoy line dashed; a long stage without data says so on its bar.

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from loadtest.compare.report.tables import LATENCY_COLUMNS
from loadtest.compare.summary import (
    GIL_BUSY,
    Run,
    RunGroup,
    TimelinePoint,
    cpu_cores,
    group_figure,
    run_number,
)
from loadtest.toolbox.formats import LOADGEN_MARK, NOISY_MARK
from loadtest.toolbox.plots import log_axis, series_color, variant_color
from loadtest.toolbox.spread import Spread

LOADGEN_HATCH = "///"
NOISY_HATCH = "xx"

# --- plots ---------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    label: str
    figures: list[Spread | None]  # one per variant
    loadgen_bound: list[bool]  # one per variant
    color: str | tuple[float, float, float, float]
    noisy: list[bool]  # one per variant
    notes: list[str | None]  # one per variant: what a bar lacks, in words

    @classmethod
    def of(
        cls,
        label: str,
        groups: Sequence[RunGroup | None],
        figure_of: Callable[[RunGroup], Spread | None],
        color: str | tuple[float, float, float, float],
    ) -> Series:
        """One bar per group (None: that variant has none), marks and gaps from the group."""
        return cls(
            label,
            [figure_of(group) if group else None for group in groups],
            [group.loadgen_bound if group else False for group in groups],
            color,
            [group.noisy if group else False for group in groups],
            [group.gap if group else None for group in groups],
        )


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
        for bar, bound, busy in zip(bars, one.loadgen_bound, one.noisy, strict=True):
            hatch = (LOADGEN_HATCH if bound else "") + (NOISY_HATCH if busy else "")
            if hatch:
                bar.set_hatch(hatch)
        for x, note in zip(xs, one.notes, strict=True):
            if note:
                # up from the axis floor, where a bar of that stage would stand
                floor_label(ax, x, note, lift=14, va="bottom", rotation=90, fontsize="x-small")
        if log:
            # a log axis cannot draw 0: say it at the axis floor
            for x, figure in zip(xs, one.figures, strict=True):
                if figure is not None and figure.median == 0:
                    floor_label(
                        ax, x, "0", lift=2, fontsize="small", color=one.color, fontweight="bold"
                    )
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)


def floor_label(ax: Axes, x: float, text: str, *, lift: float, **style: Any) -> None:
    """`text` at bar position `x`, `lift` points above the axis floor."""
    style.setdefault("color", "black")
    ax.annotate(
        text,
        (x, 0),
        xycoords=("data", "axes fraction"),
        xytext=(0, lift),
        textcoords="offset points",
        ha="center",
        **style,
    )


def legend_with_marks(ax: Axes, series: Sequence[Series]) -> None:
    """The legend, with the hatches' meaning when a bar has one."""
    handles, labels = ax.get_legend_handles_labels()
    if any(bound for one in series for bound in one.loadgen_bound):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=LOADGEN_HATCH))
        labels.append(f"loadgen-bound {LOADGEN_MARK} (not the server's figure)")
    if any(busy for one in series for busy in one.noisy):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=NOISY_HATCH))
        labels.append(f"noisy {NOISY_MARK} (other processes used the machine: rerun quiet)")
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
        chosen = [by_variant.get(variant) for variant in variants]
        series.append(Series.of(label, chosen, figure_of, series_color(index)))
    return series


def plot_rps(groups: Sequence[RunGroup], variants: Sequence[str], path: Path) -> Path:
    plain = [group for group in groups if group.scenario != "convoy"]
    series = bar_series(plain, variants, lambda group: group.stat("rps"))
    convoys = {group.variant: group for group in groups if group.scenario == "convoy"}
    for field, label in (("short_rps_before", "convoy: before"), ("short_rps_during", "during")):
        if convoys:
            series.append(
                Series.of(
                    f"{label} the long request",
                    [convoys.get(variant) for variant in variants],
                    partial(RunGroup.stat, field=field),
                    series_color(len(series)),
                )
            )
    figure = Figure(figsize=(max(8.0, 1.3 * len(variants) + 3), 5.5), layout="constrained")
    ax = figure.subplots()
    grouped_bars(ax, variants, series)
    ax.set_title("Requests per second by variant and scenario (median, min–max over repeats)")
    ax.set_ylabel("requests / s" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    legend_with_marks(ax, series)
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
            Series.of(
                title,
                [chosen[v] for v in shown],
                partial(RunGroup.latency, percentile=key),
                series_color(index),
            )
            for index, (key, title) in enumerate(LATENCY_COLUMNS)
        ]
        grouped_bars(ax, shown, series, log=True)
        ax.set_title(f"Client-side latency, {scenario} scenario")
        ax.set_ylabel("ms (log scale)")
        legend_with_marks(ax, series)
    figure.suptitle("Latency percentiles per variant (median over repeats)")
    figure.savefig(path, dpi=110)
    return path


def median_repeat(group: RunGroup) -> Run:
    # the repeat whose collapse is the median one: a typical timeline, not the best or worst
    ranked = sorted(group.runs, key=lambda run: run_number(run, "short_rps_during") or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def whole_seconds(points: Sequence[TimelinePoint], duration: float) -> list[TimelinePoint]:
    """The points that cover a whole second of the run.

    Summaries written before the engine left the last, partial second out
    have it: the users stop within it, and its rate would show a drop for
    every variant that the server never made.
    """
    return [point for point in points if point["t"] + 1.0 <= duration + 1e-9]


def plot_convoy(groups: Sequence[RunGroup], path: Path) -> Path | None:
    convoys = [g for g in groups if g.scenario == "convoy" and median_repeat(g).get("timeline")]
    if not convoys:
        return None
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    draw_convoy(figure.subplots(), convoys)
    figure.savefig(path, dpi=110)
    return path


def draw_convoy(ax: Axes, convoys: Sequence[RunGroup]) -> None:
    """Each variant's short req/s per whole second; a noisy run's line dashed, marked ‡."""
    windows: list[tuple[float, float]] = []
    for group in convoys:
        run = median_repeat(group)
        points = whole_seconds(run.get("timeline", []), run["duration_s"])
        noisy = run.get("noisy") is True
        mark = (f" {LOADGEN_MARK}" if run["bottleneck"] == "loadgen" else "") + (
            f" {NOISY_MARK} noisy" if noisy else ""
        )
        ax.plot(
            [point["t"] for point in points],
            [point["short_rps"] for point in points],
            color=variant_color(group.variant),
            marker=".",
            linestyle="--" if noisy else "-",
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


def plot_cpu(groups: Sequence[RunGroup], variants: Sequence[str], cores: float, path: Path) -> Path:
    series = bar_series(groups, variants, lambda group: group_figure(group, cpu_cores))
    figure = Figure(figsize=(max(8.0, 1.3 * len(variants) + 3), 5.5), layout="constrained")
    ax = figure.subplots()
    grouped_bars(ax, variants, series, log=False)  # cores: a small range, 0 .. the CPU count
    ax.axhline(cores, color="red", linestyle="--", label=f"{cores:g} CPUs available")
    ax.set_ylim(0, max(cores * 1.15, ax.get_ylim()[1]))
    ax.set_title("Server CPU used by variant and scenario (pool workers included)")
    ax.set_ylabel("CPU cores (CPU-seconds per second)")
    legend_with_marks(ax, series)
    figure.savefig(path, dpi=110)
    return path


def plot_gil(groups: Sequence[RunGroup], variants: Sequence[str], path: Path) -> Path | None:
    """The GIL probe's wait share per variant and scenario: how busy the GIL was,
    not a server thread's wait (None: no variant has a probe)."""
    # Short and convoy runs: each a run of its own (a long run's stages share one).
    runs = [group for group in groups if group.scenario != "long"]
    if all(group.stat("gil_wait_share") is None for group in runs):
        return None
    series = bar_series(runs, variants, lambda group: group.stat("gil_wait_share"))
    figure = Figure(figsize=(max(8.0, 1.3 * len(variants) + 3), 5.5), layout="constrained")
    ax = figure.subplots()
    grouped_bars(ax, variants, series, log=False)  # a share: 0 .. 1
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(
        "GIL busy: share of the time the server's GIL probe waits for the GIL (whole run)\n"
        "a busy GIL, not who waits: a single-threaded loop reads high "
        "with no server thread waiting",
        fontsize="medium",
    )
    ax.set_ylabel(f"{GIL_BUSY}: the probe thread's wait share")
    legend_with_marks(ax, series)
    figure.savefig(path, dpi=110)
    return path
