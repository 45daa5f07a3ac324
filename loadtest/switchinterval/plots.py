# loadtest/switchinterval/plots.py
#
# The sweep's one figure, switch-interval.png, two panels:
#
#   left   short req/s while the server computed the long fib (the
#          recordings) against the switch interval, log-log, a solid line
#          per variant (min–max over repeats as error bars), the law's
#          prediction dashed in the same colour, the rate before the long
#          request dotted, the comparison's convoy stage (which includes
#          the moments between long requests) as faint crosses
#   right  the long fib's own time at each interval beside the short
#          requests (solid, the server's), and alone on the comparison's
#          server (dotted): what switching more often costs it
#
# A point with a noisy or loadgen-bound repeat is drawn hollow (‡ †), as the
# capacity report draws a loadgen-bound point.

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from loadtest.switchinterval.summary import Point, SweepSummary, law_text, points
from loadtest.toolbox.formats import LOADGEN_MARK, NOISY_MARK
from loadtest.toolbox.plots import log_axis, plain_number, variant_color
from loadtest.toolbox.spread import Spread


def draw_spread(
    ax: Axes, series: Sequence[Point], figures: Sequence[Spread], label: str, variant: str
) -> None:
    """Medians joined by a line, min–max error bars, hollow where a repeat is marked."""
    color = variant_color(variant)
    xs = [point.interval_s * 1000 for point in series]
    medians = [figure.median for figure in figures]
    ax.errorbar(
        xs, medians,
        yerr=[[f.median - f.low for f in figures], [f.high - f.median for f in figures]],
        fmt="-", color=color, capsize=3, label=label,
    )  # fmt: skip
    for x, median, point in zip(xs, medians, series, strict=True):
        hollow = point.group.noisy or point.group.loadgen_bound
        ax.plot([x], [median], "o", color=color, markerfacecolor="white" if hollow else color)


def interval_axis(ax: Axes, intervals_ms: Sequence[float]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(intervals_ms)  # a tick at each interval swept, no others
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("switch interval i, ms (log)")
    ax.grid(True, which="both", alpha=0.3)


def plot_sweep(sweep: SweepSummary, path: Path) -> Path:
    found = points(sweep)
    figure = Figure(figsize=(14, 7), layout="constrained")
    rate_ax, long_ax = figure.subplots(1, 2)
    zero = False
    for variant, series in found.items():
        color = variant_color(variant)
        xs = [point.interval_s * 1000 for point in series]
        draw_spread(
            rate_ax, series, [p.during for p in series], f"{variant}: during the long fib",
            variant,
        )  # fmt: skip
        zero = zero or any(point.during.median == 0 for point in series)
        predicted = [point.predicted for point in series]
        if all(value is not None for value in predicted):
            rate_ax.plot(
                xs, predicted, "--", color=color, label=f"{variant}: predicted {law_text(variant)}"
            )
        rate_ax.plot(
            xs, [point.before.median for point in series], ":", color=color, alpha=0.7,
            label=f"{variant}: before",
        )  # fmt: skip
        convoy = [(x, p.convoy_during) for x, p in zip(xs, series, strict=True) if p.convoy_during]
        if convoy:
            rate_ax.plot(
                [x for x, _ in convoy], [rate.median for _, rate in convoy], "x", color=color,
                alpha=0.5, label=f"{variant}: the comparison's convoy stage",
            )  # fmt: skip
            zero = zero or any(rate.median == 0 for _, rate in convoy)
        draw_spread(
            long_ax, series, [point.long_seconds for point in series],
            f"{variant}: beside the short requests (the server's fib)", variant,
        )  # fmt: skip
        alone = [(x, point.long_alone) for x, point in zip(xs, series, strict=True)]
        long_ax.plot(
            [x for x, seconds in alone if seconds], [s for _, s in alone if s], ":x",
            color=color, label=f"{variant}: alone",
        )  # fmt: skip
    intervals_ms = [interval * 1000 for interval in sweep["environment"]["intervals_s"]]
    interval_axis(rate_ax, intervals_ms)
    log_axis(rate_ax, show_zero=zero)
    rate_ax.set_ylabel("short requests/s (log)")
    rate_ax.set_title(
        "Short requests while the server computes the long fib; hollow: noisy "
        f"{NOISY_MARK} or set by the load generator {LOADGEN_MARK}",
        fontsize="medium",
    )
    # below the panels: the lines fill them from top to bottom
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.12), "fontsize": "x-small"}
    rate_ax.legend(ncols=2, **below)
    interval_axis(long_ax, intervals_ms)
    long_ax.set_ylabel("seconds per long fib")
    long_ax.set_title("The long request's own time", fontsize="medium")
    long_ax.legend(ncols=2, **below)
    figure.savefig(path, dpi=110)
    return path
