# loadtest/toolbox/formats.py
#
# Figures as text, the same in every report: the marks, number formats, the
# variants' order and markdown tables. A figure the load generator limited
# is marked † (it is not the server's); one measured while other processes
# kept the machine busy is marked ‡ (noisy, docs/design.md §6.2).

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from loadtest.toolbox.spread import Spread
from services import VARIANTS

LOADGEN_MARK = "†"
NOISY_MARK = "‡"

Format = Callable[[float | None], str]


def marks(*, loadgen: bool, noisy: bool) -> str:
    return (LOADGEN_MARK if loadgen else "") + (NOISY_MARK if noisy else "")


def spread_text(figure: Spread, fmt: Format) -> str:
    """The median, then its spread over repeats (min–max) when the two ends differ as text."""
    text = fmt(figure.median)
    low, high = fmt(figure.low), fmt(figure.high)
    return text + (f" ({low}–{high})" if low != high else "")


def plural(count: int, noun: str) -> str:
    """1 repeat, 2 repeats."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def fmt_rps(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    # microsecond resolution where it matters: 0.045 ms, not 0 ms
    if value is None:
        return "–"
    if value < 100:
        return f"{value:.3f}"
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


def fmt_ms_significant(value: float | None) -> str:
    # three significant digits: capacity.md's wide tables of interpolated
    # percentiles, where fmt_ms's microseconds would be false precision
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def fmt_seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f} s"


def fmt_factor(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:,.0f}×" if value >= 10 else f"{value:.2f}×"


def fmt_percent(fraction: float) -> str:
    # a stall leaves a tiny share: 0.0059 %, not 0.0 %
    percent = fraction * 100
    if percent == 0 or percent >= 1:
        return f"{percent:.1f}%"
    return f"{percent:.2g}%"


def fixed(digits: int) -> Format:
    """A formatter with `digits` decimals ("–" for no figure)."""
    return lambda value: "–" if value is None else f"{value:.{digits}f}"


fmt_cores = fixed(2)


def percent_or_dash(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def fmt_count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def fmt_mib(value: float | None) -> str:
    """Resident memory in MiB, to a tenth ("–": not measured, never 0)."""
    return "–" if value is None else f"{value:,.1f}"


def fmt_cpu_per_request(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1e6:,.1f} µs" if value < 0.01 else f"{value:.3f} s"


def variant_order(variant: str) -> tuple[int, str]:
    # the talk's order (docs/design.md §3); anything else after it, by name
    if variant in VARIANTS:
        return (VARIANTS.index(variant), variant)
    return (len(VARIANTS), variant)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(text.replace("|", "\\|") for text in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]
