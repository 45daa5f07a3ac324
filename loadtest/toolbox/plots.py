# loadtest/toolbox/plots.py
#
# What the comparison's and the capacity run's plots share: a colour per
# variant that is the same in every report, and log axes labelled in plain
# numbers that readers can set against the tables.

from __future__ import annotations

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

from loadtest.toolbox.formats import variant_order

Color = tuple[float, float, float, float]


def series_color(index: int) -> Color:
    color: Color = colormaps["tab10"](index % 10)
    return color


def variant_color(variant: str) -> Color:
    # stable across reports: the variant's place in the talk's order
    return series_color(variant_order(variant)[0])


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
