# loadtest/compare/runner.py
#
# The comparison itself (docs/design.md §6): every chosen scenario on every
# chosen variant, one variant at a time, identical settings, a warm-up that
# is not counted, R repeats; the server's own /metrics read before and after
# each run and during it (every SAMPLE_PERIOD in a long run, to give each
# stage its own CPU; every MEMORY_SAMPLE_PERIOD otherwise), so each run and
# stage has the peak of the server tree's resident memory; the machine's CPU
# used by other processes over each run (loadtest.toolbox.machine). The
# command around it is cli.py.
#
# Each scenario runs in its own `python -m loadtest.compare.engine` process: Locust
# monkey-patches with gevent whatever imports it, and the load generator's
# CPU is then simply that child's CPU.

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from loadtest.compare.bottleneck import bottleneck
from loadtest.compare.plan import Plan, long_scenario_seconds
from loadtest.compare.progress import Progress
from loadtest.toolbox import machine
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import (
    CPU_METRIC,
    GIL_PROBE_METRIC,
    GIL_WAIT_METRIC,
    MEMORY_SAMPLE_PERIOD,
    SAMPLE_PERIOD,
    Sampler,
    Scrape,
    Target,
    cpu_between,
    delta,
    local_variant,
    long_seconds_on,
    memory_peak_mib,
    nearest_scrape,
    scrape,
    server_info,
    server_latency_ms,
    wait_until_answering,
)

# --- one scenario ----------------------------------------------------------------


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
        raise LabError(
            f"the load engine failed on {target.variant}/{scenario}:\n{result.stderr[-2000:]}"
        )
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def server_cpu_figures(cpu: float | None, requests: int, duration: float) -> dict[str, Any]:
    """The server's CPU over a run or a stage: seconds, cores on average, seconds per reply."""
    return {
        "server_cpu_seconds": None if cpu is None else round(cpu, 4),
        "server_cpu_cores": None if cpu is None or duration <= 0 else round(cpu / duration, 3),
        "cpu_seconds_per_request": round(cpu / requests, 7) if cpu and requests else None,
    }


def loadgen_per_request(loadgen_cpu_percent: float, requests: int, duration: float) -> float | None:
    return round(loadgen_cpu_percent / 100.0 * duration / requests, 7) if requests else None


def runs_of(
    target: Target, scenario: str, repeat: int, plan: Plan, long_alone: float | None = None
) -> list[dict[str, Any]]:
    """Run one scenario once; its run objects (long: one per clients stage, long
    enough for whole requests of fib(long_n), which took `long_alone` s alone)."""
    seconds = long_scenario_seconds(plan.duration, long_alone) if scenario == "long" else None
    machine_before = machine.snapshot()
    with Sampler(target, SAMPLE_PERIOD if scenario == "long" else MEMORY_SAMPLE_PERIOD) as sampler:
        figures = run_engine(target, scenario, seconds or plan.duration, plan)
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
        # the most of fib_resident_memory_bytes in the run's scrapes (None: not exported)
        "server_memory_peak_mib": memory_peak_mib(sampler.scrapes),
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
        cpu, server_latency, gil, memory = None, None, None, None
        if origin is not None:
            start, stop = (origin + t for t in stage["window"])
            cpu = cpu_between(scrapes, start, stop)
            memory = memory_peak_mib(scrapes, start, stop)
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
                "server_memory_peak_mib": memory,
                "loadgen_cpu_seconds_per_request": loadgen_per_request(
                    base["loadgen_cpu_percent"], requests, duration
                ),
            }
        )
        run["bottleneck"] = bottleneck(run)
        runs.append(run)
    return runs


# --- the whole comparison ------------------------------------------------------------


def compare(plan: Plan, targets: dict[str, Target] | None, target_kind: str) -> dict[str, Any]:
    """Every run of the plan; with the servers' fib_info and each one's fib(long_n) alone."""
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
                progress.warmup(variant, plan.warmup)
                run_engine(target, "short", plan.warmup, plan)
                progress.warmed_up()
            if {"long", "convoy"} & set(plan.scenarios):
                # what the figures of one long client are set against: the
                # server's own time for fib(long_n) alone (the runner's may differ)
                long_seconds[variant] = round(long_seconds_on(target, plan.long_n), 3)
                progress.long_alone(variant, plan.long_n, long_seconds[variant])
            for scenario in plan.scenarios:
                for repeat in range(plan.repeat):
                    progress.step(variant, scenario, repeat, plan.repeat)
                    runs += runs_of(target, scenario, repeat, plan, long_seconds.get(variant))
    return {"servers": servers, "long_seconds_server": long_seconds, "runs": runs}
