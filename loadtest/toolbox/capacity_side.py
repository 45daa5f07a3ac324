# loadtest/toolbox/capacity_side.py
#
# A capacity run as one side of a baseline comparison (docs/design.md §6.5):
# its points as rows (variant, kind, connections, rate share) with the
# figures of capacity.md. A capacity run measures each point once, so a
# change is shown with its size but never called better or worse ("no
# spread"); a point the load generator set (†) or measured while others used
# the machine (‡) is marked as in the comparison runner's summaries.
#
# It reads only the capacity summary's documented fields (docs/design.md
# §6.4), and lives below both runners because the baseline command
# (`python -m loadtest.compare.report --baseline`) reads capacity runs too,
# while the comparison runner imports nothing of the capacity runner.

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loadtest.toolbox.baseline import FigureKind, Measured, RowKey, Rows, Side
from loadtest.toolbox.formats import fmt_cores, fmt_ms, fmt_rps

CAPACITY_KIND = "loadtest.capacity summary"
PointFigure = Callable[[Mapping[str, Any]], float | None]


def latency(percentile: str) -> PointFigure:
    return lambda point: point["latency_ms"].get(percentile)


def field(name: str) -> PointFigure:
    return lambda point: point.get(name)


POINT_FIGURES: tuple[tuple[FigureKind, PointFigure], ...] = (
    (FigureKind("req/s", "req/s", "higher is better", fmt_rps), field("rps")),
    (FigureKind("achieved req/s", "req/s", "higher is better", fmt_rps), field("achieved_rps")),
    (FigureKind("p50 ms", "ms", "lower is better", fmt_ms), latency("p50")),
    (FigureKind("p99 ms", "ms", "lower is better", fmt_ms), latency("p99")),
    (FigureKind("p99.9 ms", "ms", "lower is better", fmt_ms), latency("p99.9")),
    (FigureKind("server CPU", "cores", "no direction", fmt_cores), field("server_cpu_cores")),
    (FigureKind("Locust CPU", "cores", "no direction", fmt_cores), field("loadgen_cpu_cores")),
)
# What must match for like-for-like points.
SETTINGS = ("connections", "rate_shares", "seconds", "rate_seconds", "warmup_s", "short_n",
            "long_n", "loadgen_processes", "cores", "pinning")  # fmt: skip


def row_of(point: Mapping[str, Any]) -> RowKey:
    share = point.get("rate_share")
    return (
        ("variant", point["variant"]),
        ("kind", point["kind"]),
        ("connections", point["connections"]),
        ("rate share", None if share is None else f"{share:.0%}"),
    )


def capacity_side(summary: Mapping[str, Any], path: Path) -> Side:
    rows: Rows = {}
    for point in summary["points"]:
        figures = {}
        for kind, figure in POINT_FIGURES:
            if (value := figure(point)) is not None:
                figures[kind.name] = Measured(
                    (float(value),),
                    1,
                    noisy_repeats=int(bool(point.get("noisy"))),
                    loadgen_repeats=int(point["bottleneck"] == "loadgen"),
                )
        rows[row_of(point)] = figures
    for anchor in summary.get("anchor") or []:
        rows[(("variant", "redis (C)"), ("kind", "anchor"), ("connections", anchor["connections"]),
              ("rate share", None))] = {
            "req/s": Measured((float(anchor["rps"]),), 1)
        }  # fmt: skip
    environment = summary["environment"]
    pinning = environment.get("pinning")
    return Side(
        path=path,
        kind=CAPACITY_KIND,
        facts={
            "date": environment["date"],
            "Python": environment["python"],
            "image": environment.get("image") or "–",
            "variants": ", ".join(environment.get("variants", [])),
            "parts": ", ".join(environment.get("parts", [])),
            "pinning": "none"
            if not pinning
            else (f"servers {pinning['server_cpus']}, Locust {pinning['loadgen_cpus']}"),
            "cores": str(environment["cores"]),
        },
        settings={
            name: (environment.get(name) or "none") if name == "pinning" else environment[name]
            for name in SETTINGS
            if name in environment
        },
        figures={kind.name: kind for kind, _ in POINT_FIGURES},
        rows=rows,
        verdicts={},
    )
