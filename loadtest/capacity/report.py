# loadtest/capacity/report.py
#
# A capacity run's summary.json made readable (docs/design.md §6.4):
# capacity.md with the sweep, the Redis anchor and the rate curves as tables,
# and three plots:
#
#   capacity-rps.png      req/s against connections (log x), a line per variant,
#                         Redis dashed: how far each Python model is from the machine
#   capacity-latency.png  p50, p99, p99.9 against connections
#   rate-curve.png        p99 against the rate achieved (log y), a line per variant:
#                         the open loop's "hockey stick", alone and beside a long client
#
# A point the load generator set is marked † in the tables and drawn hollow:
# it is never the server's capacity. Noisy points (others used the machine)
# are marked ‡.
#
#   python -m loadtest.capacity.report results/capacity-DIR/summary.json

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from loadtest.toolbox import provenance
from loadtest.toolbox.formats import (
    LOADGEN_MARK,
    NOISY_MARK,
    fmt_ms_significant,
    marks,
    variant_order,
)
from loadtest.toolbox.plots import log_axis, plain_number, variant_color

PERCENTILE_KEYS = ("p50", "p99", "p99.9")
ANCHOR_LABEL = "redis (C)"
KIND_TITLES = {
    "rates": "open loop, short requests only",
    "rates-convoy": "open loop, one long client in the background",
}


class CapacityReportError(ValueError):
    """A summary.json that is not a capacity run's."""


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise CapacityReportError(f"{path}: {error}") from None
    if not isinstance(data, dict) or data.get("kind") != "capacity":
        raise CapacityReportError(
            f'{path}: not a capacity run\'s summary (no "kind": "capacity"): '
            "loadtest.compare's summaries go to python -m loadtest.compare.report"
        )
    if not isinstance(data.get("points"), list):
        raise CapacityReportError(f"{path}: no list of points")
    return data


def points_of(summary: dict[str, Any], kind: str) -> dict[str, list[dict[str, Any]]]:
    """The points of one kind by variant, variants in the talk's order."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for point in summary["points"]:
        if point["kind"] == kind:
            by_variant.setdefault(point["variant"], []).append(point)
    return dict(sorted(by_variant.items(), key=lambda item: variant_order(item[0])))


def point_marks(point: dict[str, Any]) -> str:
    return marks(loadgen=point["bottleneck"] == "loadgen", noisy=bool(point.get("noisy")))


def open_on_server(point: dict[str, Any]) -> str:
    """` (1)` when the server held fewer connections than the clients opened."""
    held = point.get("server_connections")
    return f" ({held})" if held is not None and held < point["connections"] else ""


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def latency_cells(latency: Mapping[str, float | None], keys: Sequence[str]) -> str:
    """Table cells of these percentiles, in ms."""
    return " | ".join(fmt_ms_significant(latency.get(key)) for key in keys)


def capacity_line(sweep: Sequence[dict[str, Any]]) -> tuple[str, str]:
    served = [p for p in sweep if p["bottleneck"] == "server"]
    if not served:
        best = max(sweep, key=lambda p: p["rps"])
        return f"≥ {fmt(best['rps'])} {LOADGEN_MARK}", f"{best['connections']}"
    best = max(served, key=lambda p: p["rps"])
    return fmt(best["rps"]), str(best["connections"])


def render_markdown(summary: dict[str, Any], plots: Sequence[Path]) -> str:
    env = summary["environment"]
    pinning = env.get("pinning")
    lines = [
        "# Capacity and latency curves",
        "",
        *provenance.lines_of(summary),
        f"{env['date']}, {env['cores']} CPUs, Python {env['python']}"
        + (f" in {env['image']}" if env.get("image") else "")
        + f"; load generator: Locust, {env['loadgen_processes']} worker processes; "
        + (
            f"pinned: servers on CPUs {pinning['server_cpus']}, Locust on {pinning['loadgen_cpus']}"
            if pinning
            else "not pinned (servers and Locust share every CPU)"
        )
        + f". Took {env.get('seconds_taken', 0) / 60:.1f} min; others used "
        f"{env.get('busy_cores_at_start')} cores at the start.",
        "",
        f"{LOADGEN_MARK} the load generator set this point (a worker process used "
        "≥ 0.9 of its core, or the machine was full and Locust used more than 1.5× the "
        "server's CPU): not the server's figure, and never taken as its capacity. "
        f"{NOISY_MARK} noisy: other processes used ≥ {env.get('noisy_threshold_cores')} core.",
        "",
    ]
    sweep = points_of(summary, "sweep")
    anchor = summary.get("anchor") or []
    if sweep:
        connections = env["connections"]
        lines += [
            "## Concurrency sweep (closed loop: each connection sends fib(1) when its reply is in)",
            "",
            "req/s (server replies) per connection count; capacity: the best server-bound point.",
            "",
            "| variant | " + " | ".join(f"{c} conn." for c in connections) + " | capacity | at |",
            "|---|" + "---:|" * (len(connections) + 2),
        ]
        for variant, found in sweep.items():
            by_c = {p["connections"]: p for p in found}
            cells = [
                fmt(by_c[c]["rps"]) + point_marks(by_c[c]) if c in by_c else "–"
                for c in connections
            ]
            best, at = capacity_line(found)
            lines.append(f"| {variant} | " + " | ".join(cells) + f" | {best} | {at} |")
        if anchor:
            by_c = {a["connections"]: a for a in anchor}
            cells = [fmt(by_c[c]["rps"]) if c in by_c else "–" for c in connections]
            best_anchor = max(a["rps"] for a in anchor)
            lines.append(
                f"| *{ANCHOR_LABEL}* | " + " | ".join(cells) + f" | {fmt(best_anchor)} | |"
            )
        lines += ["", "Every point: latency on the clients (ms), CPU in cores on average.", ""]
        lines += [
            "| variant | conn. (open on the server) | req/s | p50 | p99 | p99.9 | errors "
            "| server CPU | Locust CPU (busiest process) | others | bottleneck |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for variant, found in sweep.items():
            for p in found:
                lat = p["latency_ms"]
                lines.append(
                    f"| {variant} | {p['connections']}{open_on_server(p)} | "
                    f"{fmt(p['rps'])}{point_marks(p)} | "
                    f"{latency_cells(lat, PERCENTILE_KEYS)} | "
                    f"{p['errors']} | {fmt(p['server_cpu_cores'], 2)} | "
                    f"{fmt(p['loadgen_cpu_cores'], 2)} ({fmt(p['loadgen_busiest_cores'], 2)}) | "
                    f"{fmt(p['foreign_cpu_cores'], 2)} | {p['bottleneck']} |"
                )
    if anchor:
        lines += [
            "",
            "## The machine's anchor: Redis, a C server and client, measured in this run",
            "",
            "`redis-benchmark -t ping_inline` against a local `redis-server` "
            "(no persistence), on the same CPUs as the variants when they are pinned.",
            "",
            "| connections | req/s | p50 ms | p99 ms | server CPU | client CPU |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for a in anchor:
            lat = a.get("latency_ms") or {}
            lines.append(
                f"| {a['connections']} | {fmt(a['rps'])} | {latency_cells(lat, ('p50', 'p99'))} | "
                f"{fmt(a.get('server_cpu_cores'), 2)} | "
                f"{fmt(a.get('client_cpu_cores'), 2)} |"
            )
    elif summary.get("anchor_error"):
        lines += ["", f"Redis anchor: not measured: {summary['anchor_error']}"]
    for kind, title in KIND_TITLES.items():
        curves = points_of(summary, kind)
        if not curves:
            continue
        lines += [
            "",
            f"## Rate curve: {title}",
            "",
            "Latency counts from each request's intended send time (no coordinated omission).",
            "",
            "| variant | conn. | asked req/s | achieved | p50 | p99 | p99.9 | errors "
            + ("| long replies " if kind == "rates-convoy" else "")
            + "| server CPU | Locust CPU (busiest) | bottleneck |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"
            + ("---:|" if kind == "rates-convoy" else "")
            + "---:|---:|---|",
        ]
        for variant, found in curves.items():
            for p in found:
                lat = p["latency_ms"]
                long = f"{p.get('long_replies')} | " if kind == "rates-convoy" else ""
                lines.append(
                    f"| {variant} | {p['connections']} | {fmt(p['asked_rps'])} "
                    f"({p['rate_share']:.0%}) | {fmt(p['achieved_rps'])}{point_marks(p)} | "
                    f"{latency_cells(lat, PERCENTILE_KEYS)} | "
                    f"{p['errors']} | {long}{fmt(p['server_cpu_cores'], 2)} | "
                    f"{fmt(p['loadgen_cpu_cores'], 2)} ({fmt(p['loadgen_busiest_cores'], 2)}) | "
                    f"{p['bottleneck']} |"
                )
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{plot.stem}]({plot.name})" for plot in plots]
    return "\n".join(lines) + "\n"


# --- plots -------------------------------------------------------------------------


def draw_line(
    ax: Axes, xs: Sequence[float], ys: Sequence[float | None], found: Sequence[dict[str, Any]],
    variant: str,
) -> None:  # fmt: skip
    color = variant_color(variant)
    pairs = [(x, y, p) for x, y, p in zip(xs, ys, found, strict=True) if y is not None and y > 0]
    if not pairs:
        return
    ax.plot([x for x, _, _ in pairs], [y for _, y, _ in pairs], "-", color=color, label=variant)
    for x, y, p in pairs:
        hollow = p["bottleneck"] == "loadgen"
        ax.plot(
            [x], [y], "o", color=color, markerfacecolor="white" if hollow else color,
            markersize=6 if hollow else 4,
        )  # fmt: skip


def plot_sweep_rps(summary: dict[str, Any], path: Path) -> Path | None:
    sweep = points_of(summary, "sweep")
    if not sweep:
        return None
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    ax = figure.subplots()
    for variant, found in sweep.items():
        draw_line(ax, [p["connections"] for p in found], [p["rps"] for p in found], found, variant)
    if anchor := summary.get("anchor"):
        ax.plot(
            [a["connections"] for a in anchor], [a["rps"] for a in anchor], "k--",
            label=ANCHOR_LABEL,
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(plain_number_formatter())
    log_axis(ax)
    ax.set_xlabel("connections (closed loop, fib(1))")
    ax.set_ylabel("requests/s (log)")
    ax.set_title(f"Concurrency sweep; hollow: set by the load generator {LOADGEN_MARK}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", ncols=2)
    figure.savefig(path, dpi=110)
    return path


def plain_number_formatter() -> FuncFormatter:
    return FuncFormatter(plain_number)


def plot_sweep_latency(summary: dict[str, Any], path: Path) -> Path | None:
    sweep = points_of(summary, "sweep")
    if not sweep:
        return None
    figure = Figure(figsize=(13, 4.8), layout="constrained")
    axes = figure.subplots(1, len(PERCENTILE_KEYS), sharey=True)
    for ax, key in zip(axes, PERCENTILE_KEYS, strict=True):
        for variant, found in sweep.items():
            xs = [p["connections"] for p in found]
            draw_line(ax, xs, [p["latency_ms"][key] for p in found], found, variant)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(plain_number_formatter())
        log_axis(ax)
        ax.set_title(f"{key} latency on the clients")
        ax.set_xlabel("connections")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (log)")
    axes[-1].legend(fontsize="small")
    figure.savefig(path, dpi=110)
    return path


def plot_rate_curves(summary: dict[str, Any], path: Path) -> Path | None:
    kinds = [kind for kind in KIND_TITLES if points_of(summary, kind)]
    if not kinds:
        return None
    figure = Figure(figsize=(6.5 * len(kinds), 5.2), layout="constrained")
    axes = figure.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        for variant, found in points_of(summary, kind).items():
            xs = [p["achieved_rps"] for p in found]
            draw_line(ax, xs, [p["latency_ms"]["p99"] for p in found], found, variant)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain_number_formatter())
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2,000 ... 9,000 would overlap
        log_axis(ax)
        ax.set_title(KIND_TITLES[kind], fontsize="medium")
        ax.set_xlabel("requests/s achieved (log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("p99 latency from the intended send time, ms (log)")
    axes[-1].legend(fontsize="small")
    figure.suptitle("Rate curves: 10 % to 110 % of each variant's capacity")
    figure.savefig(path, dpi=110)
    return path


def write_report(summary: dict[str, Any], out: Path) -> list[Path]:
    """capacity.md and the plots in `out`; their paths, capacity.md first."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = (
        plot_sweep_rps(summary, out / "capacity-rps.png"),
        plot_sweep_latency(summary, out / "capacity-latency.png"),
        plot_rate_curves(summary, out / "rate-curve.png"),
    )
    plots = [plot for plot in drawn if plot is not None]
    markdown = out / "capacity.md"
    markdown.write_text(render_markdown(summary, plots), "utf-8")
    return [markdown, *plots]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.capacity.report",
        description="Redraw a capacity report (capacity.md and plots) from its summary.json.",
    )
    parser.add_argument("summary", type=Path)
    parser.add_argument("--out", type=Path, help="default: the summary's folder")
    args = parser.parse_args(argv)
    try:
        summary = load(args.summary)
    except CapacityReportError as error:
        print(f"loadtest.capacity.report: {error}", file=sys.stderr)
        return 2
    for path in write_report(summary, args.out or args.summary.parent):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
