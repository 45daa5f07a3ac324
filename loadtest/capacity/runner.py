# loadtest/capacity/runner.py
#
# The capacity run (docs/design.md §6.4), one variant at a time:
#
#   sweep   closed loops of fib(1) on C connections, C in --connections
#           (1, 4, 16, 64, 256): req/s, p50/p99/p99.9, CPU, bottleneck per point.
#           The variant's capacity is its best req/s among the points the
#           server set (never a generator-bound one).
#   rates   open loops at shares of that capacity (--rate-shares, 10 % ..
#           110 %), on the connections where the capacity was reached:
#           latency from each intended send time against the rate achieved
#           (the "hockey stick"); then the same with one long client in the
#           background (the convoy as a latency curve).
#   anchor  Redis (a C server and client) on the same connections, in the
#           same run: the machine's limit beside the Python models.
#
# The load generator is Locust with --processes worker processes
# (loadtest.capacity.loadgen), started once. --server-cpus / --loadgen-cpus
# pin the servers and the generator to separate CPUs (FIB_SERVER_CPUS,
# FIB_LOADGEN_CPUS); the run records it.
#
#   python -m loadtest.capacity [--variants talk] [--parts sweep,rates,anchor]
#   python -m loadtest.capacity --server-cpus 1 --loadgen-cpus 0

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadtest.capacity import points
from loadtest.capacity.loadgen import LoadgenError, LocustSwarm
from loadtest.capacity.report import CapacityReportError, load, points_of, write_report
from loadtest.toolbox import machine, provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import VARIANT_SETS, add_pinning_options, comma_list
from loadtest.toolbox.servers import (
    Target,
    local_variant,
    python_image,
    scrape,
    server_info,
    wait_until_answering,
)
from services import VARIANTS

KINDS = ("sweep", "rates", "rates-convoy")
SCHEMA = 1  # summary.json's shape, in its provenance record (docs/design.md §6.11)
PARTS = ("sweep", "rates", "anchor")
DEFAULT_CONNECTIONS = (1, 4, 16, 64, 256)
DEFAULT_RATE_SHARES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1)
# The connections for the rate curve: the fewest whose req/s came this close
# to the best (the knee: sweep points of one variant differ by up to 10 %
# from noise alone, sync's five by 9 % in the first quiet run).
NEAR_BEST = 0.9


@dataclass(frozen=True)
class CapacityPlan:
    variants: list[str]
    parts: list[str]
    connections: list[int]
    rate_shares: list[float]
    processes: int
    warmup: float
    seconds: float
    rate_seconds: float
    rate_warmup: float
    long_n: int
    short_n: int = 1
    server_cpus: set[int] | None = None
    loadgen_cpus: set[int] | None = None
    image: str | None = None
    # variant -> (req/s, connections) from an earlier run's sweep (--capacity-from)
    capacities: dict[str, tuple[float, int]] | None = None


def capacity_of(sweep: Sequence[dict[str, Any]]) -> tuple[float, int] | None:
    """A variant's best req/s among its server-bound sweep points, and the
    fewest connections that came within NEAR_BEST of it; None if none."""
    served = [point for point in sweep if point["bottleneck"] == "server" and point["rps"] > 0]
    if not served:
        return None
    best = max(point["rps"] for point in served)
    connections = min(served_on(point) for point in served if point["rps"] >= NEAR_BEST * best)
    return best, connections


def served_on(point: dict[str, Any]) -> int:
    """The connections a point was served on: fewer than it opened when the
    server held fewer (`sync` answers one; the others wait unanswered)."""
    held = point.get("server_connections")
    return int(min(point["connections"], held)) if held else int(point["connections"])


def one_variant(
    plan: CapacityPlan, variant: str, swarm: LocustSwarm, target: Target, progress: Progress
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    if "sweep" in plan.parts:
        for connections in plan.connections:
            progress.step(f"{variant}: sweep, {connections} connections")
            point = points.measure(
                swarm, target, kind="sweep", connections=connections,
                warmup=plan.warmup, seconds=plan.seconds, short_n=plan.short_n,
            )  # fmt: skip
            progress.show(point)
            sweep.append(point)
    results += sweep
    if "rates" not in plan.parts:
        return results
    capacity = plan.capacities.get(variant) if plan.capacities else capacity_of(sweep)
    if capacity is None:
        print(
            f"      {variant}: no server-bound sweep point, so no capacity to set rates by: "
            "no rate curve",
            file=sys.stderr,
        )
        return results
    best, connections = capacity
    for kind, long_n in (("rates", None), ("rates-convoy", plan.long_n)):
        for share in plan.rate_shares:
            rate = share * best
            progress.step(f"{variant}: {kind}, {rate:.0f} req/s ({share:.0%}) on {connections}")
            point = points.measure(
                swarm, target, kind=kind, connections=connections, rate=rate,
                long_n=long_n, warmup=plan.rate_warmup, seconds=plan.rate_seconds,
                short_n=plan.short_n,
            )  # fmt: skip
            point["rate_share"] = share
            progress.show(point)
            results.append(point)
    return results


class Progress:
    """A line per point on stderr, with about how long is left."""

    def __init__(self, plan: CapacityPlan) -> None:
        per_variant = 0.0
        point_overhead = 1.2  # Locust's stop takes a second
        if "sweep" in plan.parts:
            per_variant += len(plan.connections) * (plan.warmup + plan.seconds + point_overhead)
        if "rates" in plan.parts:
            per_variant += (
                2 * len(plan.rate_shares) * (plan.rate_warmup + plan.rate_seconds + point_overhead)
            )
        self.left = (per_variant + 2.0) * len(plan.variants)  # + the server's start
        self.last = time.monotonic()

    def step(self, what: str) -> None:
        print(f"[~{self.left / 60:.1f} min left] {what}", file=sys.stderr, flush=True)

    def show(self, point: dict[str, Any]) -> None:
        now = time.monotonic()
        self.left = max(0.0, self.left - (now - self.last))
        self.last = now
        p99 = point["latency_ms"]["p99"]
        print(
            f"      {point['rps']:.0f} req/s, p99 {p99 if p99 is not None else '-'} ms, "
            f"server {point['server_cpu_cores']} cores, load generator "
            f"{point['loadgen_cpu_cores']} cores (busiest process "
            f"{point['loadgen_busiest_cores']}), {point['errors']} errors, {point['bottleneck']}"
            + (" (noisy)" if point["noisy"] else ""),
            file=sys.stderr,
            flush=True,
        )


def capacity(plan: CapacityPlan, out: Path) -> dict[str, Any]:
    busy = machine.busy_now()
    if busy.busy:
        print(busy.warning(), file=sys.stderr, flush=True)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    servers: dict[str, dict[str, str]] = {}
    progress = Progress(plan)
    needs_locust = bool({"sweep", "rates"} & set(plan.parts))
    swarm_context = (
        LocustSwarm(plan.processes, cpus=plan.loadgen_cpus, log=out / "locust.log")
        if needs_locust
        else contextlib.nullcontext()
    )
    anchor: list[dict[str, Any]] | None = None
    anchor_error: str | None = None
    with swarm_context as swarm:
        for variant in plan.variants:
            if swarm is None:  # the anchor only
                break
            with local_variant(variant, image=plan.image, cpus=plan.server_cpus) as target:
                wait_until_answering(target)
                servers[variant] = server_info(scrape(target))
                results += one_variant(plan, variant, swarm, target, progress)
    if "anchor" in plan.parts:
        anchor, anchor_error = measure_anchor(plan)
    return {
        "kind": "capacity",
        "environment": environment(plan, busy)
        | {
            "servers": servers,
            "seconds_taken": round(time.monotonic() - started, 1),
        },
        "anchor": anchor,
        "anchor_error": anchor_error,
        "points": results,
    }


def measure_anchor(plan: CapacityPlan) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Redis on the same connections; or why not (the run goes on without it)."""
    from loadtest.capacity.anchor import AnchorUnavailable
    from loadtest.capacity.anchor import measure_anchor as redis_anchor

    print(f"anchor: redis-benchmark ping_inline on {plan.connections}", file=sys.stderr)
    try:
        found = redis_anchor(
            plan.connections, server_cpus=plan.server_cpus, client_cpus=plan.loadgen_cpus
        )
    except (AnchorUnavailable, RuntimeError, OSError) as error:
        print(f"anchor: not measured: {error}", file=sys.stderr)
        return None, str(error)
    return [asdict(point) for point in found], None


def environment(plan: CapacityPlan, busy: machine.Busy) -> dict[str, Any]:
    return {
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "image": plan.image,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "variants": plan.variants,
        "parts": plan.parts,
        "connections": plan.connections,
        "rate_shares": plan.rate_shares,
        "loadgen_processes": plan.processes,
        "warmup_s": plan.warmup,
        "seconds": plan.seconds,
        "rate_seconds": plan.rate_seconds,
        "rate_warmup_s": plan.rate_warmup,
        # --capacity-from: variant -> [req/s, connections] the rates were set by
        "capacities_given": {v: list(c) for v, c in plan.capacities.items()}
        if plan.capacities
        else None,
        "short_n": plan.short_n,
        "long_n": plan.long_n,
        "pinning": machine.pinning_record(plan.server_cpus, plan.loadgen_cpus),
        "busy_cores_at_start": busy.cores,
        "load_average_at_start": busy.load,
        "noisy_threshold_cores": machine.NOISY_FOREIGN_CORES,
    }


def int_list(text: str, option: str, *, least: int = 1) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise LabError(f"{option} {text!r}: expected a comma list of integers") from None
    if not values or any(value < least for value in values):
        raise LabError(f"{option} {text!r}: every value must be at least {least}")
    return values


def share_list(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise LabError(
            f"--rate-shares {text!r}: expected a comma list of shares such as 0.5,1.1"
        ) from None
    if not values or any(not (math.isfinite(v) and 0 < v <= 10) for v in values):
        raise LabError(f"--rate-shares {text!r}: every share must be > 0 and <= 10")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    made = provenance.begin("capacity", SCHEMA)
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.capacity",
        description="Capacity and latency curves per variant: a concurrency sweep (closed "
        "loop), open-loop rate curves with and without a long client, and Redis as the "
        "machine's anchor.",
    )
    parser.add_argument(
        "--variants", default="talk", help="comma list, talk, modern or all (default: talk)"
    )
    parser.add_argument(
        "--parts", default="sweep,rates,anchor",
        help="comma list of sweep, rates (needs sweep), anchor",
    )  # fmt: skip
    parser.add_argument(
        "--connections", default=",".join(map(str, DEFAULT_CONNECTIONS)),
        help="the sweep's connection counts",
    )  # fmt: skip
    parser.add_argument(
        "--rate-shares", default=",".join(map(str, DEFAULT_RATE_SHARES)),
        help="the rate curve's rates, as shares of the sweep's best req/s",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=int,
        help="Locust worker processes (default: one per CPU it may use: --loadgen-cpus, else all)",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    parser.add_argument("--seconds", type=float, default=4.0, help="each sweep point's window")
    parser.add_argument("--rate-seconds", type=float, default=2.5, help="each rate point's window")
    parser.add_argument(
        "--rate-warmup", type=float, default=0.5, help="seconds before each rate point's window"
    )
    parser.add_argument(
        "--capacity-from", type=Path, metavar="SUMMARY",
        help="rates only: take each variant's capacity from this earlier run's summary.json",
    )  # fmt: skip
    parser.add_argument("--long-n", type=int, default=30, help="the convoy curve's long request")
    add_pinning_options(parser)
    parser.add_argument(
        "--python", metavar="VERSION",
        help="run the servers in the variants image for CPython VERSION",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: results/capacity-<timestamp>")
    args = parser.parse_args(argv)

    try:
        loadgen_cpus = machine.parse_cpus(args.loadgen_cpus, "--loadgen-cpus")
        plan = CapacityPlan(
            variants=comma_list(args.variants, VARIANTS, "variant", VARIANT_SETS),
            parts=comma_list(args.parts, PARTS, "part"),
            connections=int_list(args.connections, "--connections"),
            rate_shares=share_list(args.rate_shares),
            processes=int_list(str(args.processes), "--processes")[0]
            if args.processes is not None
            else len(loadgen_cpus or os.sched_getaffinity(0)),
            warmup=check_seconds(args.warmup, "--warmup", least=0.0),
            seconds=check_seconds(args.seconds, "--seconds"),
            rate_seconds=check_seconds(args.rate_seconds, "--rate-seconds"),
            rate_warmup=check_seconds(args.rate_warmup, "--rate-warmup", least=0.0),
            long_n=int_list(str(args.long_n), "--long-n")[0],
            server_cpus=machine.parse_cpus(args.server_cpus, "--server-cpus"),
            loadgen_cpus=loadgen_cpus,
        )
        if args.capacity_from is not None:
            if "sweep" in plan.parts:
                raise LabError("--capacity-from replaces the sweep: drop sweep from --parts")
            plan = replace(plan, capacities=capacities_from(args.capacity_from, plan.variants))
        elif "rates" in plan.parts and "sweep" not in plan.parts:
            raise LabError(
                "--parts rates needs sweep, or --capacity-from an earlier run's summary.json: "
                "the rates are shares of the capacity"
            )
        if args.python:
            plan = replace(plan, image=python_image(args.python))
        out = args.out or Path("results") / datetime.datetime.now().strftime(
            "capacity-%Y%m%d-%H%M%S"
        )
        out.mkdir(parents=True, exist_ok=True)
        summary = capacity(plan, out)
    except (LabError, LoadgenError, machine.CpuListError, CapacityReportError) as error:
        print(f"loadtest.capacity: {error}", file=sys.stderr)
        return 2
    summary["provenance"] = made.record()
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    for path in [out / "summary.json", *write_report(summary, out)]:
        print(f"wrote {path}")
    return 0


def capacities_from(path: Path, variants: Sequence[str]) -> dict[str, tuple[float, int]]:
    """Each variant's capacity in an earlier run's sweep; an error naming any it lacks."""
    sweeps = points_of(load(path), "sweep")
    found = {variant: capacity_of(sweeps.get(variant, [])) for variant in variants}
    if missing := [variant for variant, capacity in found.items() if capacity is None]:
        raise LabError(
            f"--capacity-from {path}: no server-bound sweep point for {', '.join(missing)}"
        )
    return {variant: capacity for variant, capacity in found.items() if capacity is not None}


def check_seconds(value: float, option: str, *, least: float = 0.5) -> float:
    if not (math.isfinite(value) and value >= least):
        raise LabError(f"{option} {value:g}: must be at least {least:g} seconds")
    return value
