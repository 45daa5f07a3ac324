# loadtest/compare/runner.py
#
# The comparison runner (DESIGN §6): every chosen scenario on every chosen
# variant, one variant at a time, identical settings, a warm-up that is not
# counted, R repeats; the server's own /metrics read before and after each
# run; then summary.json, summary.md and the plots (loadtest.compare.report).
#
#   python -m loadtest.compare                          all variants, local processes
#   python -m loadtest.compare --variants threads,coro --scenarios convoy --repeat 3
#   python -m loadtest.compare --target-from-compose     the running containers
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
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadtest.compare.report import write_report
from loadtest.compare.verdicts import verdicts
from loadtest.swarm.targets import CONTAINER_PORT, TargetError, parse_address
from services import VARIANTS
from services.core.fib import fib

SCENARIOS = ("short", "long", "convoy")
SERVER_METRICS_PORT = 9100  # DESIGN §2 default, also inside every container
# A run is the load generator's, not the server's, when the generator got
# less than this share of the rate it asked for ...
ACHIEVED_SHARE = 0.9
# ... or when it used a whole core (gevent runs on one) while a server that
# computes under one GIL had CPU to spare.
LOADGEN_SATURATED_PERCENT = 90.0
SERVER_SPARE_CORES = 0.8
# ... or when it spent this many times the server's CPU on each request.
CLIENT_SHARE_FACTOR = 1.5


class CompareError(Exception):
    """A setting or a target that makes the comparison impossible."""


@dataclass(frozen=True)
class Target:
    """Where one variant answers, and where its /metrics are (None: unknown)."""

    variant: str
    host: str
    port: int
    metrics_url: str | None


# --- the variants under test ---------------------------------------------------


@contextlib.contextmanager
def local_variant(variant: str, extra_args: Sequence[str] = ()) -> Iterator[Target]:
    """`python -m services <variant>` on free ports, in its own process group."""
    process = subprocess.Popen(
        [sys.executable, "-m", "services", variant, "--port", "0", "--metrics-port", "0",
         *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        metrics_url = None
        for line in process.stdout:
            if line.startswith("metrics on "):
                metrics_url = line.split()[-1]
            if match := re.match(r"listening on (\S+):(\d+)", line):
                # Keep reading its output so that it never blocks on a full pipe.
                _drain(process)
                yield Target(variant, match[1], int(match[2]), metrics_url)
                break
        else:
            raise CompareError(f"{variant} did not start (exit code {process.wait()})")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # pool workers included


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    stream = process.stdout
    threading.Thread(target=lambda: stream.read(), daemon=True).start()


def parse_targets(specs: Sequence[str], metrics_port: int) -> dict[str, Target]:
    """`--target VARIANT=HOST:PORT` (repeatable); metrics on HOST:metrics_port."""
    targets = {}
    for spec in specs:
        variant, sep, address = spec.partition("=")
        if not sep or variant not in VARIANTS:
            raise CompareError(
                f"--target {spec!r}: expected VARIANT=HOST:PORT with VARIANT one of "
                f"{', '.join(VARIANTS)}"
            )
        try:
            host, port = parse_address(address)
        except TargetError as error:
            raise CompareError(f"--target {spec!r}: {error}") from None
        targets[variant] = Target(variant, host, port, f"http://{host}:{metrics_port}/metrics")
    return targets


def compose_target(variant: str) -> Target:
    """The service of that name inside the compose network."""
    return Target(
        variant, variant, CONTAINER_PORT, f"http://{variant}:{SERVER_METRICS_PORT}/metrics"
    )


def wait_until_answering(target: Target, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((target.host, target.port), timeout=5) as sock:
                sock.settimeout(30)
                sock.sendall(b"10\n")
                if sock.recv(16) == b"55\n":
                    return
        except OSError as error:
            last_error = error
        time.sleep(0.5)
    raise CompareError(
        f"{target.variant} at {target.host}:{target.port} does not answer: {last_error}"
    )


# --- the server's own view ---------------------------------------------------------


def scrape(target: Target) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the variant's /metrics, keyed by (name, labels); {} if unknown."""
    if target.metrics_url is None:
        return {}
    try:
        with urllib.request.urlopen(target.metrics_url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: dict[Any, float], after: dict[Any, float], name: str) -> float | None:
    keys = [key for key in after if key[0] == name]
    if not keys:
        return None
    return sum(after[key] - before.get(key, 0.0) for key in keys)


def server_latency_ms(
    before: dict[Any, float], after: dict[Any, float], n: int
) -> dict[str, float | None] | None:
    """p50 and p99 of fib(n) requests from the server's histogram (bucket upper bounds)."""
    buckets: dict[float, float] = {}
    for (name, labels), value in after.items():
        label = dict(labels)
        if name == "fib_request_duration_seconds_bucket" and label.get("n") == str(n):
            bound = float(label["le"])
            buckets[bound] = value - before.get((name, labels), 0.0)
    if not buckets or max(buckets.values()) <= 0:
        return None
    total = buckets[math.inf]
    result: dict[str, float | None] = {}
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        bound = next(b for b in sorted(buckets) if buckets[b] >= q * total)
        result[key] = None if math.isinf(bound) else round(bound * 1000.0, 3)
    return result


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


def run_engine(target: Target, scenario: str, duration: float, plan: Plan) -> dict[str, Any]:
    """One scenario in a `loadtest.compare.engine` child; its figures and its CPU."""
    command = [
        sys.executable, "-m", "loadtest.compare.engine", "--variant", target.variant,
        "--address", f"{target.host}:{target.port}", "--scenario", scenario,
        "--duration", str(duration), "--short-n", str(plan.short_n),
        "--long-n", str(plan.long_n), "--short-users", str(plan.short_users),
        "--rate", str(plan.rate),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration * 3 + 120, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise CompareError(
            f"the load engine failed on {target.variant}/{scenario}:\n{result.stderr[-2000:]}"
        )
    figures: dict[str, Any] = json.loads(result.stdout)
    figures["engine_cpu_seconds"] = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime
    )
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


def runs_of(target: Target, scenario: str, repeat: int, plan: Plan) -> list[dict[str, Any]]:
    """Run one scenario once; its run objects (long: one per clients stage)."""
    before = scrape(target)
    figures = run_engine(target, scenario, plan.duration, plan)
    after = scrape(target)
    duration = figures["duration_s"]
    requests = figures["requests"]
    cpu = delta(before, after, "fib_cpu_seconds_total")
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
        "server_cpu_seconds": None if cpu is None else round(cpu, 4),
        "server_cpu_cores": None if cpu is None else round(cpu / duration, 3),
        "cpu_seconds_per_request": round(cpu / requests, 7) if cpu and requests else None,
        "loadgen_cpu_percent": figures["loadgen_cpu_percent"],
        "asked_rps": figures["asked_rps"],
        "achieved_rps": figures["achieved_rps"],
        "timeline": figures["timeline"],
    }
    base["bottleneck"] = bottleneck(base)
    base["loadgen_cpu_seconds_per_request"] = (
        round(figures["loadgen_cpu_percent"] / 100.0 * duration / requests, 7) if requests else None
    )
    if scenario == "convoy":
        for key in ("short_rps_before", "short_rps_during", "long_seconds", "long_window"):
            base[key] = figures.get(key)
        return [base]
    if scenario == "long":
        return [
            {
                **base,
                "clients": stage["clients"],
                "requests": stage["requests"],
                "rps": round(stage["requests"] / duration, 3),
                "seconds_per_request": stage["seconds_per_request"],
            }
            for stage in figures.get("stages", [])
        ]
    return [base]


# --- the whole comparison ------------------------------------------------------------


def choose_long_n(target_seconds: float) -> tuple[int, float]:
    """The n whose naive fib takes about `target_seconds` here (fib grows by φ per n)."""
    n = 20
    started = time.perf_counter()
    fib(n)
    took = time.perf_counter() - started
    phi = (1 + 5**0.5) / 2
    while took * phi < target_seconds and n < 45:
        n += 1
        took *= phi
    return n, took


def environment(plan: Plan, target_kind: str, long_seconds: float) -> dict[str, Any]:
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
    for variant in plan.variants:
        context = (
            contextlib.nullcontext(targets[variant])
            if targets is not None
            else local_variant(variant)
        )
        with context as target:
            wait_until_answering(target)
            servers[variant] = server_info(scrape(target))
            if plan.warmup > 0:
                print(f"      {variant}: warm-up {plan.warmup:g} s", file=sys.stderr, flush=True)
                run_engine(target, "short", plan.warmup, plan)
                progress.warmups_left -= 1
            for scenario in plan.scenarios:
                for repeat in range(plan.repeat):
                    progress.step(variant, scenario, repeat, plan.repeat)
                    runs += runs_of(target, scenario, repeat, plan)
    return {"servers": servers, "runs": runs}


def server_info(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, str]:
    """What the variant runs, from its fib_info labels (the runner's Python may differ)."""
    for name, labels in samples:
        if name == "fib_info":
            return {key: value for key, value in labels if key != "variant"}
    return {}


def comma_list(text: str, allowed: Sequence[str], what: str) -> list[str]:
    if text == "all":
        return list(allowed)
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise CompareError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from: "
            f"{', '.join(allowed)} or all"
        )
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.compare",
        description="Run the same scenarios on every chosen variant; write a report.",
    )
    parser.add_argument("--variants", default="all", help="comma list or all")
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
        "--target", action="append", default=[], metavar="VARIANT=HOST:PORT",
        help="a running variant (repeatable); its metrics on HOST:--metrics-port",
    )  # fmt: skip
    parser.add_argument("--metrics-port", type=int, default=SERVER_METRICS_PORT)
    args = parser.parse_args(argv)
    try:
        variants = comma_list(args.variants, VARIANTS, "variant")
        scenarios = comma_list(args.scenarios, SCENARIOS, "scenario")
        if args.duration < 3 or args.repeat < 1 or args.warmup < 0 or args.short_users < 1:
            raise CompareError(
                "need --duration >= 3, --repeat >= 1, --warmup >= 0, --short-users >= 1"
            )
        if args.long_n == "auto":
            long_n, long_seconds = choose_long_n(args.long_seconds)
        elif args.long_n.isdigit():
            long_n = int(args.long_n)
            started = time.perf_counter()
            fib(long_n)
            long_seconds = time.perf_counter() - started
        else:
            raise CompareError(f"--long-n {args.long_n!r}: expected an integer or auto")
        targets: dict[str, Target] | None = None
        target_kind = "local"
        if args.target_from_compose:
            targets, target_kind = {v: compose_target(v) for v in variants}, "compose"
        elif args.target:
            targets, target_kind = parse_targets(args.target, args.metrics_port), "given"
            missing = [v for v in variants if v not in targets]
            if args.variants == "all":
                variants = [v for v in variants if v in targets]
            elif missing:
                raise CompareError(f"no --target for {', '.join(missing)}")
        plan = Plan(
            variants, scenarios, args.duration, args.repeat, args.warmup,
            args.short_n, long_n, args.short_users, args.rate,
        )  # fmt: skip
        out = args.out or Path("results") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        print(
            f"comparing {', '.join(variants)} on {', '.join(scenarios)}: {args.duration:g} s x "
            f"{args.repeat}; short fib({args.short_n}), long fib({long_n}) "
            f"(~{long_seconds:.2f} s here)",
            file=sys.stderr,
        )
        measured = compare(plan, targets, target_kind)
        summary = {
            "environment": environment(plan, target_kind, long_seconds)
            | {"servers": measured["servers"]},
            "runs": measured["runs"],
        }
    except CompareError as error:
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
