# loadtest/connections/plots.py
#
# The connection report's plots (docs/design.md §6.10), a line per variant
# in its usual colour, Redis dashed black:
#
#   memory.png    the tree's RSS above its baseline against idle connections, log-log
#   p99.png       a fresh client's p99 against idle connections, and the slow
#                 clients' p99 against their number (hollow: generator-bound or
#                 noisy; a point the variant could not hold is left out)
#   fairness.png  the fresh client's p99 beside a pipelining client, before and after

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from loadtest.toolbox.formats import variant_order
from loadtest.toolbox.plots import Color, log_axis, plain_number, variant_color

ANCHOR = "redis"


def records(report: dict[str, Any]) -> list[dict[str, Any]]:
    found = sorted(report["variants"], key=lambda r: variant_order(r["variant"]))
    return found + ([report["anchor"]] if report.get("anchor") else [])


def style(variant: str) -> tuple[Color | str, str]:
    # ten colours for sixteen variants: those past the tenth dash-dotted
    if variant == ANCHOR:
        return "black", "--"
    return variant_color(variant), "-." if variant_order(variant)[0] >= 10 else "-"


def line(ax: Axes, variant: str, xs: Sequence[float], ys: Sequence[float],
         hollow: Sequence[bool]) -> None:  # fmt: skip
    color, dash = style(variant)
    if not xs:
        return
    ax.plot(xs, ys, dash, color=color, label=variant)
    for x, y, empty in zip(xs, ys, hollow, strict=True):
        ax.plot([x], [y], "o", color=color, markerfacecolor="white" if empty else color,
                markersize=6 if empty else 4)  # fmt: skip


def log_x(ax: Axes) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.grid(True, which="both", alpha=0.3)


def plot_memory(report: dict[str, Any], path: Path) -> Path | None:
    figure = Figure(figsize=(9, 6), layout="constrained")
    ax = figure.subplots()
    drawn = False
    for record in records(report):
        base = (record.get("baseline") or {}).get("rss_bytes")
        used = [p for p in record.get("idle") or [] if p["held"] and base is not None]
        pairs = [(p["connections"], (p["rss_bytes"] - base) / 2**20, p["noisy"]) for p in used]
        pairs = [pair for pair in pairs if pair[1] > 0]  # a log axis has no 0
        if pairs:
            drawn = True
            line(ax, record["variant"], [x for x, _, _ in pairs], [y for _, y, _ in pairs],
                 [noisy for _, _, noisy in pairs])  # fmt: skip
    if not drawn:
        return None
    log_x(ax)
    log_axis(ax)
    ax.set_xlabel("idle connections held")
    ax.set_ylabel("RSS of the process tree above its baseline, MiB (log)")
    ax.set_title("Memory against idle connections (hollow: noisy ‡)")
    ax.legend(fontsize="small", ncols=2)
    figure.savefig(path, dpi=110)
    return path


def plot_p99(report: dict[str, Any], path: Path) -> Path | None:
    figure = Figure(figsize=(13, 5.5), layout="constrained")
    idle_ax, slow_ax = figure.subplots(1, 2, sharey=True)
    drawn = False
    for record in records(report):
        idle = [p for p in record.get("idle") or []
                if p["held"] and (p["latency_ms"] or {}).get("p99")]  # fmt: skip
        if idle:
            drawn = True
            line(idle_ax, record["variant"], [p["connections"] for p in idle],
                 [p["latency_ms"]["p99"] for p in idle], [p["noisy"] for p in idle])  # fmt: skip
        slow = [p for p in record.get("slow") or [] if p["served_all"] and p["latency_ms"]["p99"]]
        if slow:
            drawn = True
            line(slow_ax, record["variant"], [p["asked"] for p in slow],
                 [p["latency_ms"]["p99"] for p in slow],
                 [p["noisy"] or p["generator_bound"] for p in slow])  # fmt: skip
    if not drawn:
        return None
    for ax in (idle_ax, slow_ax):
        log_x(ax)
        log_axis(ax)
    idle_ax.set_title("a fresh client's fib(1) p99 while N idle connections are held")
    idle_ax.set_xlabel("idle connections")
    idle_ax.set_ylabel("p99, ms (log)")
    slow_ax.set_title("N slow clients' p99 (from each intended send time)")
    slow_ax.set_xlabel("slow clients")
    slow_ax.legend(fontsize="small", ncols=2)
    figure.savefig(path, dpi=110)
    return path


def plot_fairness(figures: dict[str, Any], path: Path) -> Path | None:
    rows = [f for f in figures["fairness"]
            if any("p99_ms" in f[side] for side in ("before", "after"))]  # fmt: skip
    if not rows:
        return None
    figure = Figure(figsize=(max(7, 0.8 * len(rows) + 3), 5), layout="constrained")
    ax = figure.subplots()
    width = 0.38
    for offset, side, hatch in ((-width / 2, "before", "//"), (width / 2, "after", "")):
        for index, row in enumerate(rows):
            value = row[side].get("p99_ms")
            if value:
                ax.bar(index + offset, value, width, color=variant_color(row["variant"]),
                       hatch=hatch, edgecolor="black")  # fmt: skip
    ax.set_xticks(range(len(rows)), [row["variant"] for row in rows], rotation=30, ha="right")
    log_axis(ax)
    ax.axhline(5.0, color="grey", linestyle=":", linewidth=1)
    ax.set_ylabel("fresh client's fib(1) p99 beside the pipeline, ms (log)")
    ax.set_title("Fairness: hatched before (--yield-every 0), plain after (defaults); dotted 5 ms")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    figure.savefig(path, dpi=110)
    return path
