# loadtest/connections/summary.py
#
# report.json's figures (docs/design.md §6.10), computed from its points so
# that a redraw computes them again the same way:
#
#   memory per connection  the least-squares slope of the tree's RSS against
#                          N over the points the server held, with its
#                          standard error and the range of the slopes
#                          between adjacent points (the spread); the same
#                          slope for threads and descriptors
#   admission              connections admitted per second at each N
#   fairness               the fresh client's p99 beside the pipeline, before
#                          and after
#
# and §3.3's predictions judged on them: as predicted ✅, not as predicted
# ❌, noisy ‡ (every point it reads ran noisy, §6.2) or not measured ❔.
# The predicted ranges were written before the first run; a miss is a
# finding and the ranges are never tuned to the lab's figures.

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

KIB = 1024.0
AS_PREDICTED, NOT_AS_PREDICTED, NOISY, NO_DATA = (
    "as predicted", "not as predicted", "noisy", "not measured",
)  # fmt: skip
STATUS_MARKS = {AS_PREDICTED: "✅", NOT_AS_PREDICTED: "❌", NOISY: "‡", NO_DATA: "❔"}

THREAD_PER_CONNECTION = ("threads", "threads-procpool", "threads-interppool", "prefork")
# docs/design.md §3.3: KiB of the process tree's RSS per idle connection.
PREDICTED_KIB: dict[str, tuple[float, float]] = {
    **dict.fromkeys(THREAD_PER_CONNECTION, (12.0, 30.0)),
    "sync": (-1.0, 1.0),  # "about 0 past the first": within a KiB either way
    **dict.fromkeys(("coro", "coro-threadpool", "coro-procpool", "coro-asyncsocket"), (2.0, 6.0)),
    **dict.fromkeys(
        ("asyncio", "asyncio-procpool", "asyncio-interppool", "asyncio-tothread"), (4.0, 10.0)
    ),
    "asyncio-uvloop": (3.0, 8.0),
    "gevent": (4.0, 16.0),
    "trio": (3.0, 8.0),
    "redis": (1.0, 25.0),
}
# "one per connection" against "constant": per connection, within these.
ONE_PER_CONNECTION = (0.9, 1.1)
CONSTANT = (-0.01, 0.01)
ADMISSION_PER_S = 2_000.0  # §3.3: every variant at least this, up to 10,000
# Judged from this count on: the time until the server reports them all is
# read from its /metrics, a scrape of some 10-30 ms, against 0.5 s for 1,000
# connections at the floor; at 10 or 100 the scrape is the figure.
ADMISSION_FROM = 1_000
FAIR_AFTER_P99_MS = 5.0  # §3.3: about one request's compute once a handler yields
UNFAIR_BEFORE_P99_MS = 10.0  # "tens to hundreds of ms" while a loop answers a whole read first
# §3.3's "before" speaks of a loop that answers every line of a read before
# running anything else: fib inline, and a handler whose sends never yield
# (docs/design.md §2 Fairness). `coro` and `trio` yield at every reply (the
# scheduler's select, trio's checkpoints): fair whatever the setting, so
# their "before" is judged as an "after". Where each request awaits a pool,
# the loop runs others at every request: their "before" is shown, not judged.
STALLED_BEFORE = ("asyncio", "asyncio-uvloop", "gevent")
ALREADY_FAIR = ("coro", "trio")


@dataclass(frozen=True)
class Slope:
    per_connection: float
    stderr: float | None  # None with two points
    pair_low: float  # the slopes between adjacent points: the lowest ...
    pair_high: float  # ... and the highest
    points: int


def slope(xs: Sequence[float], ys: Sequence[float]) -> Slope | None:
    """Least squares of ys against xs; None under two distinct xs."""
    if len(set(xs)) < 2:
        return None
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    stderr = None
    if n > 2:
        residuals = sum((y - mean_y - b * (x - mean_x)) ** 2 for x, y in zip(xs, ys, strict=True))
        stderr = math.sqrt(residuals / (n - 2) / sxx)
    pairs = sorted(zip(xs, ys, strict=True))
    adjacent = [
        (y1 - y0) / (x1 - x0) for (x0, y0), (x1, y1) in itertools.pairwise(pairs) if x1 > x0
    ]
    return Slope(b, stderr, min(adjacent), max(adjacent), n)


def within_margin(value: float, low: float, high: float) -> float:
    """The factor to the nearer bound of [low, high] (≥ 1 inside); for a range
    around 0, the bound over the value's size."""
    if low <= 0:
        return math.inf if value == 0 else high / abs(value)
    if value <= 0:
        return 0.0
    return min(value / low, high / value)


def judged(
    ok: bool | None, margin: float | None, points: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    if ok is None or not points:
        status = NO_DATA
    elif all(point.get("noisy") for point in points):
        status = NOISY
    else:
        status = AS_PREDICTED if ok else NOT_AS_PREDICTED
    noisy = sum(1 for point in points if point.get("noisy"))
    return {"status": status, "margin": None if margin is None else round(margin, 3),
            "noisy_points": noisy, "points": len(points)}  # fmt: skip


def held_points(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [point for point in record.get("idle") or [] if point["held"]]


def memory_figures(record: dict[str, Any]) -> dict[str, Any]:
    variant = record["variant"]
    used = held_points(record)
    xs = [float(point["connections"]) for point in used]
    figure: dict[str, Any] = {"variant": variant, "python": (record.get("server") or {}).get(
        "python", (record.get("server") or {}).get("redis_version") and "C"),
        "held_up_to": max((int(x) for x in xs), default=None)}  # fmt: skip
    for key, name in (("rss_bytes", "memory"), ("threads", "threads"), ("fds", "fds")):
        found = slope(xs, [float(point[key]) for point in used])
        figure[name] = None if found is None else asdict(found)
    memory = figure["memory"]
    low, high = PREDICTED_KIB.get(variant, (math.nan, math.nan))
    figure["predicted_kib"] = None if math.isnan(low) else [low, high]
    if memory is None or figure["predicted_kib"] is None:
        figure["verdict"] = judged(None, None, used)
    else:
        kib = memory["per_connection"] / KIB
        figure["verdict"] = judged(low <= kib <= high, within_margin(kib, low, high), used)
    threads = figure["threads"]
    bounds = ONE_PER_CONNECTION if variant in THREAD_PER_CONNECTION else CONSTANT
    figure["threads_predicted"] = list(bounds)
    figure["threads_verdict"] = (
        judged(None, None, used)
        if threads is None
        else judged(bounds[0] <= threads["per_connection"] <= bounds[1],
                    within_margin(threads["per_connection"], *bounds), used)
    )  # fmt: skip
    fds = figure["fds"]
    fd_bounds = CONSTANT if variant == "sync" else ONE_PER_CONNECTION
    figure["fds_predicted"] = list(fd_bounds)
    figure["fds_verdict"] = (
        judged(None, None, used)
        if fds is None
        else judged(fd_bounds[0] <= fds["per_connection"] <= fd_bounds[1],
                    within_margin(fds["per_connection"], *fd_bounds), used)
    )  # fmt: skip
    return figure


def admission_figures(record: dict[str, Any]) -> dict[str, Any]:
    """The lowest admission rate over the counts the server held from
    ADMISSION_FROM on; §3.3's floor."""
    used = [
        p
        for p in record.get("idle") or []
        if p["held"] and p["admission_per_s"] and p["connections"] >= ADMISSION_FROM
    ]
    lowest = min((p["admission_per_s"] for p in used), default=None)
    return {
        "variant": record["variant"],
        "per_count": {
            str(p["connections"]): p["admission_per_s"] for p in record.get("idle") or []
        },
        "lowest_per_s": lowest,
        "release": record.get("release"),
        "verdict": judged(
            None if lowest is None else lowest >= ADMISSION_PER_S,
            None if lowest is None else lowest / ADMISSION_PER_S,
            used,
        ),
    }


def fairness_figures(record: dict[str, Any]) -> dict[str, Any] | None:
    sides = record.get("fairness") or {}
    if not sides:
        return None
    figure: dict[str, Any] = {
        "variant": record["variant"],
        "control": record["variant"] == "threads",
    }
    for setting, bound, above in (("before", UNFAIR_BEFORE_P99_MS, True),
                                  ("after", FAIR_AFTER_P99_MS, False)):  # fmt: skip
        side = sides.get(setting)
        if side is None or "skipped" in side:
            figure[setting] = {"skipped": None if side is None else side["skipped"]}
            figure[f"{setting}_verdict"] = judged(None, None, [])
            continue
        p99 = side["beside"]["latency_ms"]["p99"]
        figure[setting] = {
            "p50_ms": side["beside"]["latency_ms"]["p50"], "p99_ms": p99,
            "alone_p99_ms": side["alone"]["latency_ms"]["p99"],
            "connect_p50_ms": side["beside"]["connect_ms"]["p50"],
            "connect_p99_ms": side["beside"]["connect_ms"]["p99"],
            "pipeline_rps": side["pipeline_rps"], "noisy": side["noisy"],
            "failure": side["beside"]["failure"] or side["pipeline_failure"],
        }  # fmt: skip
        if setting == "before" and record["variant"] in ALREADY_FAIR:
            bound, above = FAIR_AFTER_P99_MS, False
        pooled = above and record["variant"] not in STALLED_BEFORE
        if figure["control"] or pooled or p99 is None:
            figure[f"{setting}_verdict"] = judged(None, None, [side] if p99 else [])
            if figure["control"]:
                figure[f"{setting}_verdict"]["status"] = "control"
            elif pooled:
                figure[f"{setting}_verdict"]["status"] = "not judged (awaits a pool)"
            continue
        ok = p99 >= bound if above else p99 <= bound
        margin = p99 / bound if above else (bound / p99 if p99 > 0 else math.inf)
        figure[f"{setting}_verdict"] = judged(ok, margin, [side])
    return figure


def figures(report: dict[str, Any]) -> dict[str, Any]:
    records = list(report["variants"])
    if report.get("anchor"):
        records.append(report["anchor"])
    fair = [found for record in report["variants"] if (found := fairness_figures(record))]
    return {
        "memory": [memory_figures(record) for record in records],
        "admission": [admission_figures(record) for record in records],
        "fairness": fair,
    }
