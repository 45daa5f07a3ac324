# loadtest/compare/cli.py
#
# The command `python -m loadtest.compare` (docs/design.md §6): its options,
# checked by name; the plan they make; the targets; then the comparison
# (runner.py), summary.json and the report (loadtest.compare.report), and
# one line per verdict.
#
#   python -m loadtest.compare                          all variants, local processes
#   python -m loadtest.compare --variants threads,coro --scenarios convoy --repeat 3
#   python -m loadtest.compare --target-from-compose     the running containers
#   python -m loadtest.compare --target-from-kubernetes  the Services of deploy/k8s
#   python -m loadtest.compare --target threads=127.0.0.1:25002

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.compare.environment import environment
from loadtest.compare.plan import MAX_N, MIN_DURATION, Plan, choose_long_n, timed_fib
from loadtest.compare.report import write_report
from loadtest.compare.runner import compare
from loadtest.compare.summary import SCENARIOS
from loadtest.compare.summary import SCHEMA as SUMMARY_SCHEMA
from loadtest.timeline import cli as timeline
from loadtest.timeline.record import Recipe
from loadtest.toolbox import machine, provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.formats import plural
from loadtest.toolbox.options import VARIANT_SETS, add_pinning_options, check_rules, comma_list
from loadtest.toolbox.servers import (
    SERVER_METRICS_PORT,
    Target,
    compose_target,
    parse_targets,
    python_image,
)
from services import VARIANTS


def check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option in its range; a LabError naming each one that is not."""
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
    check_rules(rules)


def check_long_n(text: str) -> None:
    """--long-n: auto or an n the servers answer; a LabError naming it otherwise."""
    if text != "auto" and not (text.isdigit() and int(text) <= MAX_N):
        raise LabError(
            f"--long-n {text!r}: expected auto or an integer from 0 to {MAX_N} "
            "(the servers' largest n)"
        )


def long_request(long_n: str, long_seconds: float) -> tuple[int, float]:
    """The long request's n (--long-n; auto: fib(n) lasts about --long-seconds here) and the
    seconds one fib(n) takes in this process."""
    if long_n == "auto":
        return choose_long_n(long_seconds)
    return int(long_n), timed_fib(int(long_n))


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
    parser.add_argument(
        "--timeline", action="store_true",
        help="then record and draw each variant's convoy into OUT/timeline (Docker: §6.6)",
    )  # fmt: skip
    add_pinning_options(parser)
    return parser


def chosen_targets(
    args: argparse.Namespace, variants: list[str]
) -> tuple[dict[str, Target] | None, str, list[str]]:
    """The running servers to load (None: start them here), what they are (summary.json's
    `target`), and the variants; `--variants all` with --target: the targets given."""
    if args.target_from_compose:
        return {v: compose_target(v) for v in variants}, "compose", variants
    if args.target_from_kubernetes:
        # deploy/k8s names each variant's Service like its compose service
        return {v: compose_target(v) for v in variants}, "kubernetes", variants
    if not args.target:
        return None, "local", variants
    targets = parse_targets(args.target, args.metrics_port)
    missing = [v for v in variants if v not in targets]
    if args.variants == "all":
        variants = [v for v in variants if v in targets]
    elif missing:
        raise LabError(f"no --target for {', '.join(missing)}")
    return targets, "given", variants


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    made = provenance.begin("compare", SUMMARY_SCHEMA)
    try:
        variants = comma_list(args.variants, VARIANTS, "variant", VARIANT_SETS)
        scenarios = comma_list(args.scenarios, SCENARIOS, "scenario")
        check_numbers(args)
        check_long_n(args.long_n)
        if args.timeline:
            timeline.check_docker()
        targets, target_kind, variants = chosen_targets(args, variants)
        image = python_image(args.python) if args.python else None
        if image is not None:
            target_kind = f"python {args.python}"
        busy = machine.busy_now()
        if busy.busy:
            print(busy.warning(), file=sys.stderr, flush=True)
        long_n, long_seconds = long_request(args.long_n, args.long_seconds)
        plan = Plan(
            variants=variants,
            scenarios=scenarios,
            duration=args.duration,
            repeat=args.repeat,
            warmup=args.warmup,
            short_n=args.short_n,
            long_n=long_n,
            short_users=args.short_users,
            rate=args.rate,
            image=image,
            server_cpus=machine.parse_cpus(args.server_cpus, "--server-cpus"),
            loadgen_cpus=machine.parse_cpus(args.loadgen_cpus, "--loadgen-cpus"),
        )
        if targets is not None and plan.server_cpus:
            raise LabError(
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
        summary: dict[str, Any] = {
            "environment": environment(plan, target_kind, long_seconds, busy, server_cpus)
            | {
                "servers": measured["servers"],
                "long_seconds_server": measured["long_seconds_server"],
            },
            "runs": measured["runs"],
        }
        if args.timeline:  # its own servers, after the measured runs, never during them
            command = shlex.join(["python", "-m", "loadtest.compare", *(argv or sys.argv[1:])])
            timeline.run(variants, out / "timeline", Recipe(long_n=long_n), 2, command)
    except (LabError, machine.CpuListError) as error:
        print(f"loadtest.compare: {error}", file=sys.stderr)
        return 2
    summary["provenance"] = made.record()
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    write_report(summary, out).announce([out / "summary.json"])
    return 0
