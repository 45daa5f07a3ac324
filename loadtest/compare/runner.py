# loadtest/compare/runner.py
#
# The comparison runner (docs/design.md §6): every chosen scenario on every chosen
# variant, one variant at a time, identical settings, a warm-up that is not
# counted, R repeats; the server's own /metrics read before and after each
# run (and every SAMPLE_PERIOD during a long run, to give each stage its own
# CPU); the machine's CPU used by other processes over each run
# (loadtest.compare.machine); then summary.json, summary.md and the plots
# (loadtest.compare.report).
#
#   python -m loadtest.compare                          all variants, local processes
#   python -m loadtest.compare --variants threads,coro --scenarios convoy --repeat 3
#   python -m loadtest.compare --target-from-compose     the running containers
#   python -m loadtest.compare --target-from-kubernetes  the Services of deploy/k8s
#   python -m loadtest.compare --target threads=127.0.0.1:25002
#
# Each scenario runs in its own `python -m loadtest.compare.engine` process: Locust
# monkey-patches with gevent whatever imports it, and the load generator's
# CPU is then simply that child's CPU.

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.compare import machine
from loadtest.compare.report import write_report
from loadtest.compare.servers import (
    CPU_METRIC,
    GIL_PROBE_METRIC,
    GIL_WAIT_METRIC,
    SAMPLE_PERIOD,
    SERVER_METRICS_PORT,
    CompareError,
    Sampler,
    Scrape,
    Target,
    compose_target,
    cpu_between,
    delta,
    local_variant,
    long_seconds_on,
    nearest_scrape,
    parse_targets,
    python_image,
    scrape,
    server_info,
    server_latency_ms,
    wait_until_answering,
)
from loadtest.compare.summary import SCENARIOS, plural
from loadtest.compare.verdicts import verdicts
from services import MODERN_VARIANTS, TALK_VARIANTS, VARIANTS
from services.core.fib import fib
from services.core.settings import Settings

MAX_N = Settings("threads").max_n  # the servers' default largest n (docs/design.md §2)
# A run is the load generator's, not the server's, when the generator got
# less than this share of the rate it asked for ...
ACHIEVED_SHARE = 0.9
# ... or when it used a whole core (gevent runs on one) while a server that
# computes under one GIL had CPU to spare.
LOADGEN_SATURATED_PERCENT = 90.0
SERVER_SPARE_CORES = 0.8
# ... or when it spent this many times the server's CPU on each request.
CLIENT_SHARE_FACTOR = 1.5


# --- one scenario ----------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    variants: list[str]
    scenarios: list[str]
    duration: float
    repeat: int
    warmup: float
    short_n: int
    long_n: int
    short_users: int
    rate: float
    image: str | None = None  # --python: the servers run in this image
    server_cpus: set[int] | None = None  # --server-cpus: the servers run on these CPUs only
    loadgen_cpus: set[int] | None = None  # --loadgen-cpus: the load engine on these


def run_engine(target: Target, scenario: str, duration: float, plan: Plan) -> dict[str, Any]:
    """One scenario in a `loadtest.compare.engine` child; its figures (its own CPU among them)."""
    command = [
        sys.executable, "-m", "loadtest.compare.engine", "--variant", target.variant,
        "--address", f"{target.host}:{target.port}", "--scenario", scenario,
        "--duration", str(duration), "--short-n", str(plan.short_n),
        "--long-n", str(plan.long_n), "--short-users", str(plan.short_users),
        "--rate", str(plan.rate),
    ]  # fmt: skip
    cpus = plan.loadgen_cpus
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration * 3 + 120, check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    if result.returncode != 0:
        raise CompareError(
            f"the load engine failed on {target.variant}/{scenario}:\n{result.stderr[-2000:]}"
        )
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def bottleneck(run: dict[str, Any]) -> str:
    """`loadgen` when the load generator, not the server, set the figure."""
    asked = run.get("asked_rps")
    achieved = run.get("achieved_rps") or 0.0
    if asked and achieved < ACHIEVED_SHARE * asked:
        return "loadgen"
    loadgen = run.get("loadgen_cpu_percent") or 0.0
    server_cores = run.get("server_cpu_cores")
    if loadgen >= LOADGEN_SATURATED_PERCENT and (
        server_cores is None or server_cores < SERVER_SPARE_CORES
    ):
        return "loadgen"
    # A closed loop is a ping-pong: the side that spends more CPU on each
    # round trip is the one that sets the rate.
    requests, duration = run.get("requests") or 0, run.get("duration_s") or 0.0
    server_per_request = run.get("cpu_seconds_per_request")
    if requests and server_per_request:
        client_per_request = loadgen / 100.0 * duration / requests
        if client_per_request > CLIENT_SHARE_FACTOR * server_per_request:
            return "loadgen"
    return "server"


def server_cpu_figures(cpu: float | None, requests: int, duration: float) -> dict[str, Any]:
    """The server's CPU over a run or a stage: seconds, cores on average, seconds per reply."""
    return {
        "server_cpu_seconds": None if cpu is None else round(cpu, 4),
        "server_cpu_cores": None if cpu is None or duration <= 0 else round(cpu / duration, 3),
        "cpu_seconds_per_request": round(cpu / requests, 7) if cpu and requests else None,
    }


def loadgen_per_request(loadgen_cpu_percent: float, requests: int, duration: float) -> float | None:
    return round(loadgen_cpu_percent / 100.0 * duration / requests, 7) if requests else None


def runs_of(target: Target, scenario: str, repeat: int, plan: Plan) -> list[dict[str, Any]]:
    """Run one scenario once; its run objects (long: one per clients stage)."""
    machine_before = machine.snapshot()
    with Sampler(target, SAMPLE_PERIOD if scenario == "long" else None) as sampler:
        figures = run_engine(target, scenario, plan.duration, plan)
    machine_after = machine.snapshot()
    before, after = sampler.scrapes[0].samples, sampler.scrapes[-1].samples
    duration = figures["duration_s"]
    requests = figures["requests"]
    cpu = delta(before, after, CPU_METRIC)
    base: dict[str, Any] = {
        "variant": target.variant,
        "scenario": scenario,
        "repeat": repeat,
        "duration_s": duration,
        "requests": requests,
        "errors": figures["errors"],
        "rps": figures["rps"],
        "latency_ms": figures["latency_ms"],
        "server_latency_ms": server_latency_ms(
            before, after, plan.long_n if scenario == "long" else plan.short_n
        ),
        **server_cpu_figures(cpu, requests, duration),
        "loadgen_cpu_percent": figures["loadgen_cpu_percent"],
        "gil_wait_share": gil_wait_share(before, after),
        "asked_rps": figures["asked_rps"],
        "achieved_rps": figures["achieved_rps"],
        # The engine child was reaped inside the window: own_cpu counts it.
        **machine.foreign_cpu(machine_before, machine_after, cpu),
        "timeline": figures["timeline"],
    }
    base["bottleneck"] = bottleneck(base)
    base["loadgen_cpu_seconds_per_request"] = loadgen_per_request(
        figures["loadgen_cpu_percent"], requests, duration
    )
    if scenario == "convoy":
        for key in ("short_rps_before", "short_rps_during", "long_seconds", "long_window"):
            base[key] = figures.get(key)
        return [base]
    if scenario == "long":
        return stage_runs(base, figures, sampler.scrapes, plan.long_n)
    return [base]


def gil_wait_share(before: dict[Any, float], after: dict[Any, float]) -> float | None:
    """The GIL probe's waiting over its running between two scrapes (None: no probe)."""
    waited = delta(before, after, GIL_WAIT_METRIC)
    probed = delta(before, after, GIL_PROBE_METRIC)
    return round(waited / probed, 4) if waited is not None and probed else None


def stage_runs(
    base: dict[str, Any], figures: dict[str, Any], scrapes: Sequence[Scrape], long_n: int
) -> list[dict[str, Any]]:
    """One run object per stage of the long scenario, every figure the stage's own.

    The engine gives each stage's window in seconds since its start and that
    start on the monotonic clock this process shares; the server's CPU and
    histogram in the window come from the scrapes taken meanwhile.
    """
    origin = figures.get("monotonic_start")
    runs = []
    for stage in figures.get("stages", []):
        cpu, server_latency, gil = None, None, None
        if origin is not None:
            start, stop = (origin + t for t in stage["window"])
            cpu = cpu_between(scrapes, start, stop)
            first, last = nearest_scrape(scrapes, start), nearest_scrape(scrapes, stop)
            server_latency = server_latency_ms(first, last, long_n)
            gil = gil_wait_share(first, last)
        duration, requests = stage["duration_s"], stage["requests"]
        run = {
            key: value
            for key, value in base.items()
            if key != "timeline"  # the whole run's, not the stage's
        }
        run.update(
            {
                "clients": stage["clients"],
                "stage_window": stage["window"],
                "duration_s": duration,
                "requests": requests,
                "errors": stage["errors"],
                "rps": stage["rps"],
                "latency_ms": stage["latency_ms"],
                "latency_requests": stage["latency_requests"],
                "seconds_per_request": stage["seconds_per_request"],
                "server_latency_ms": server_latency,
                "gil_wait_share": gil,
                **server_cpu_figures(cpu, requests, duration),
                "loadgen_cpu_seconds_per_request": loadgen_per_request(
                    base["loadgen_cpu_percent"], requests, duration
                ),
            }
        )
        run["bottleneck"] = bottleneck(run)
        runs.append(run)
    return runs


# --- the whole comparison ------------------------------------------------------------


PHI = (1 + 5**0.5) / 2  # fib(n + 1) costs φ times fib(n)
# The shortest call timed to extrapolate from: a 1 ms call varies by a
# tenth or more from one call to the next (the chosen n flipped between
# two values on successive runs); 20 ms does not.
TIMED_AT_LEAST = 0.02


def timed_fib(n: int) -> float:
    """Seconds one naive fib(n) takes in this process."""
    started = time.perf_counter()
    fib(n)
    return time.perf_counter() - started


def choose_long_n(target_seconds: float) -> tuple[int, float]:
    """The n whose naive fib takes about `target_seconds` here, and what fib(n) took.

    The time returned is a measurement of fib(n) itself, not the extrapolation.
    """
    n, took = 20, timed_fib(20)
    while took < TIMED_AT_LEAST and n < MAX_N:
        n += 1
        took = timed_fib(n)
    while took * PHI < target_seconds and n < MAX_N:
        n += 1
        took *= PHI
    return n, timed_fib(n)


def environment(
    plan: Plan,
    target_kind: str,
    long_seconds: float,
    busy: machine.Busy = machine.NOT_SAMPLED,
    server_cpus: set[int] | None = None,
) -> dict[str, Any]:
    """The run's settings and machine; server_cpus: where the servers ran, if not plan's."""
    gil_check = getattr(sys, "_is_gil_enabled", None)
    return {
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "python_build": " ".join(platform.python_build()),
        "implementation": platform.python_implementation(),
        "gil": "enabled" if gil_check is None or gil_check() else "disabled",
        "switch_interval": sys.getswitchinterval(),
        "image": "fiblab-services:latest" if target_kind == "compose" else None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "short_n": plan.short_n,
        "long_n": plan.long_n,
        "long_seconds_single": round(long_seconds, 3),
        "duration_s": plan.duration,
        "repeat": plan.repeat,
        "target": target_kind,
        "short_users": plan.short_users,
        "rate": plan.rate,
        "busy_cores_at_start": busy.cores,
        "load_average_at_start": busy.load,
        "noisy_threshold_cores": machine.NOISY_FOREIGN_CORES,
        "pinning": machine.pinning_record(server_cpus or plan.server_cpus, plan.loadgen_cpus),
    }


class Progress:
    """One line per step on stderr: where we are and about how long is left."""

    def __init__(self, plan: Plan) -> None:
        self.total = len(plan.variants) * len(plan.scenarios) * plan.repeat
        self.step_seconds = plan.duration + 2.5  # + the engine's start-up
        self.warmups_left = len(plan.variants)
        self.warmup_seconds = plan.warmup + 2.5
        self.done = 0

    def step(self, variant: str, scenario: str, repeat: int, repeats: int) -> None:
        left = (
            self.total - self.done
        ) * self.step_seconds + self.warmups_left * self.warmup_seconds
        print(
            f"[{self.done + 1}/{self.total}] {variant}: {scenario}, repeat {repeat + 1}/{repeats}"
            f"  (about {left / 60:.1f} min left)",
            file=sys.stderr,
            flush=True,
        )
        self.done += 1


def compare(plan: Plan, targets: dict[str, Target] | None, target_kind: str) -> dict[str, Any]:
    progress = Progress(plan)
    runs: list[dict[str, Any]] = []
    servers: dict[str, dict[str, str]] = {}
    long_seconds: dict[str, float] = {}
    for variant in plan.variants:
        context = (
            contextlib.nullcontext(targets[variant])
            if targets is not None
            else local_variant(variant, image=plan.image, cpus=plan.server_cpus)
        )
        with context as target:
            wait_until_answering(target)
            servers[variant] = server_info(scrape(target))
            if plan.warmup > 0:
                print(f"      {variant}: warm-up {plan.warmup:g} s", file=sys.stderr, flush=True)
                run_engine(target, "short", plan.warmup, plan)
                progress.warmups_left -= 1
            if {"long", "convoy"} & set(plan.scenarios):
                # what the figures of one long client are set against: the
                # server's own time for fib(long_n) alone (the runner's may differ)
                long_seconds[variant] = round(long_seconds_on(target, plan.long_n), 3)
                print(
                    f"      {variant}: fib({plan.long_n}) alone takes "
                    f"{long_seconds[variant]:.2f} s on the server",
                    file=sys.stderr,
                    flush=True,
                )
            for scenario in plan.scenarios:
                for repeat in range(plan.repeat):
                    progress.step(variant, scenario, repeat, plan.repeat)
                    runs += runs_of(target, scenario, repeat, plan)
    return {"servers": servers, "long_seconds_server": long_seconds, "runs": runs}


# Named sets of --variants (docs/design.md §6): the talk's nine, and the five
# beyond it with the talk's variants their predictions compare them with.
VARIANT_SETS = {
    "talk": list(TALK_VARIANTS),
    "modern": ["threads", "threads-procpool", "asyncio", "asyncio-procpool", *MODERN_VARIANTS],
}


def comma_list(
    text: str, allowed: Sequence[str], what: str, sets: dict[str, list[str]] | None = None
) -> list[str]:
    if text == "all":
        return list(allowed)
    if sets and text in sets:
        return list(sets[text])
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise CompareError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from: "
            f"{', '.join(allowed)} or {' or '.join([*(sets or {}), 'all'])}"
        )
    return chosen


MIN_DURATION = 3.0  # three stages, each at least one of the shape's one-second ticks


def check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option in its range; a CompareError naming each one that is not."""
    rules = (
        ("--duration", args.duration, args.duration >= MIN_DURATION,
         f"must be at least {MIN_DURATION:g} seconds (a scenario has three stages of whole "
         "seconds)"),
        ("--repeat", args.repeat, args.repeat >= 1, "must be at least 1"),
        ("--warmup", args.warmup, args.warmup >= 0, "must be at least 0 seconds"),
        ("--short-n", args.short_n, 0 <= args.short_n <= MAX_N,
         f"must be from 0 to {MAX_N} (the servers' largest n)"),
        ("--long-seconds", args.long_seconds, args.long_seconds > 0,
         "must be more than 0 seconds"),
        ("--short-users", args.short_users, args.short_users >= 1, "must be at least 1"),
        ("--rate", args.rate, args.rate >= 0, "must be at least 0 (0: closed loop)"),
        ("--metrics-port", args.metrics_port, 1 <= args.metrics_port <= 65535,
         "must be a TCP port from 1 to 65535"),
    )  # fmt: skip
    broken = [
        f"{option} {value:g}: {rule if math.isfinite(value) else 'must be a finite number'}"
        for option, value, ok, rule in rules
        if not (math.isfinite(value) and ok)
    ]
    if broken:
        raise CompareError("; ".join(broken))


def build_parser() -> argparse.ArgumentParser:
    """The runner's options (docs/design.md §6)."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.compare",
        description="Run the same scenarios on every chosen variant; write a report.",
    )
    parser.add_argument(
        "--variants", default="all",
        help="comma list, talk (the talk's nine), modern (beyond the talk, with the talk's "
        "variants they are compared with) or all",
    )  # fmt: skip
    parser.add_argument("--scenarios", default="short,long,convoy", help="comma list or all")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per scenario run")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, not counted")
    parser.add_argument("--short-n", type=int, default=1)
    parser.add_argument(
        "--long-n", default="auto", help="n of long requests, or auto: fib(n) lasts --long-seconds"
    )
    parser.add_argument("--long-seconds", type=float, default=0.5)
    parser.add_argument("--short-users", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: req/s per short user")
    parser.add_argument("--out", type=Path, help="default: results/<timestamp>")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--target-from-compose", action="store_true", help="load the compose services by name"
    )
    where.add_argument(
        "--target-from-kubernetes", action="store_true",
        help="load the Services of deploy/k8s by name (from a pod in their namespace)",
    )  # fmt: skip
    where.add_argument(
        "--target", action="append", default=[], metavar="VARIANT=HOST:PORT",
        help="a running variant (repeatable); its metrics on HOST:--metrics-port",
    )  # fmt: skip
    where.add_argument(
        "--python", metavar="VERSION",
        help="run the servers on CPython VERSION, in the variants image built for it (Docker)",
    )  # fmt: skip
    parser.add_argument("--metrics-port", type=int, default=SERVER_METRICS_PORT)
    machine.add_pinning_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        variants = comma_list(args.variants, VARIANTS, "variant", VARIANT_SETS)
        scenarios = comma_list(args.scenarios, SCENARIOS, "scenario")
        check_numbers(args)
        if args.long_n != "auto" and not (args.long_n.isdigit() and int(args.long_n) <= MAX_N):
            raise CompareError(
                f"--long-n {args.long_n!r}: expected auto or an integer from 0 to {MAX_N} "
                "(the servers' largest n)"
            )
        targets: dict[str, Target] | None = None
        target_kind = "local"
        if args.target_from_compose:
            targets, target_kind = {v: compose_target(v) for v in variants}, "compose"
        elif args.target_from_kubernetes:
            # deploy/k8s names each variant's Service like its compose service
            targets, target_kind = {v: compose_target(v) for v in variants}, "kubernetes"
        elif args.target:
            targets, target_kind = parse_targets(args.target, args.metrics_port), "given"
            missing = [v for v in variants if v not in targets]
            if args.variants == "all":
                variants = [v for v in variants if v in targets]
            elif missing:
                raise CompareError(f"no --target for {', '.join(missing)}")
        image = python_image(args.python) if args.python else None
        if image is not None:
            target_kind = f"python {args.python}"
        busy = machine.busy_now()
        if busy.busy:
            print(busy.warning(), file=sys.stderr, flush=True)
        if args.long_n == "auto":
            long_n, long_seconds = choose_long_n(args.long_seconds)
        else:
            long_n = int(args.long_n)
            long_seconds = timed_fib(long_n)
        plan = Plan(
            variants, scenarios, args.duration, args.repeat, args.warmup,
            args.short_n, long_n, args.short_users, args.rate, image,
            machine.parse_cpus(args.server_cpus, "--server-cpus"),
            machine.parse_cpus(args.loadgen_cpus, "--loadgen-cpus"),
        )  # fmt: skip
        if targets is not None and plan.server_cpus:
            raise CompareError(
                "--server-cpus pins the servers this runner starts; running ones are pinned "
                "where they run (compose: FIB_SERVER_CPUS)"
            )
        # In compose the variants' cpuset is compose's (docker-compose.yml passes it on).
        compose_cpus = os.environ.get("FIB_COMPOSE_SERVER_CPUS", "")
        server_cpus = plan.server_cpus
        if target_kind == "compose" and compose_cpus:
            server_cpus = machine.parse_cpus(compose_cpus, "FIB_SERVER_CPUS", here=False)
        out = args.out or Path("results") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        print(
            f"comparing {', '.join(variants)} on {', '.join(scenarios)}: {args.duration:g} s x "
            f"{plural(args.repeat, 'repeat')}; short fib({args.short_n}), long fib({long_n}): "
            f"{long_seconds:.2f} s in this process",
            file=sys.stderr,
        )
        measured = compare(plan, targets, target_kind)
        summary = {
            "environment": environment(plan, target_kind, long_seconds, busy, server_cpus)
            | {
                "servers": measured["servers"],
                "long_seconds_server": measured["long_seconds_server"],
            },
            "runs": measured["runs"],
        }
    except (CompareError, machine.CpuListError) as error:
        print(f"loadtest.compare: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    written = write_report(summary, out)
    for verdict in verdicts(summary):  # type: ignore[arg-type]
        print(verdict.line())
    print(f"wrote {out / 'summary.json'}")
    for path in written:
        print(f"wrote {path}")
    return 0
