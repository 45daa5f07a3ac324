# loadtest/connections/cli.py
#
# The command `python -m loadtest.connections` (`make connections`,
# docs/design.md §6.10): its options, checked by name (a bad one exits 2
# naming it, before anything starts); the open-file limit raised; the run
# (runner.py); report.json; the report (report.py).
#
#   python -m loadtest.connections                                   every variant, Redis
#   python -m loadtest.connections --variants threads,asyncio --quick
#   python -m loadtest.connections --redraw results/connections-DIR  md and png again

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.connections import report as report_module
from loadtest.connections.runner import CAP_SPARE, Plan, run
from loadtest.connections.summary import figures
from loadtest.connections.tree import raise_open_files
from loadtest.toolbox import machine, provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import VARIANT_SETS, check_rules, comma_list
from services import VARIANTS

DEFAULT_COUNTS = "10,100,1000,5000,10000"
# 1,000 slow clients are 1,000 requests a second, which one selectors thread
# sends on time with room to spare; 5,000 would be more than half of what the
# slowest variants serve and would turn the point into a capacity test, and
# three points per variant keep `make connections` within 10 minutes (§6.10).
DEFAULT_SLOW_COUNTS = "10,100,1000"
QUICK: dict[str, object] = {  # --quick: a smoke test of every part, about 10 s per variant
    "counts": "10,100",
    "slow_counts": "10,50",
    "slow_seconds": 1.5,
    "latency_requests": 50,
    "fairness_seconds": 1.0,
}
FULL: dict[str, object] = {
    "counts": DEFAULT_COUNTS,
    "slow_counts": DEFAULT_SLOW_COUNTS,
    "slow_seconds": 3.0,
    "latency_requests": 200,
    "fairness_seconds": 2.5,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.connections",
        description="What a connection costs per variant: idle connections' memory, threads "
        "and descriptors, admission, slow clients, fairness; Redis beside them.",
    )
    parser.add_argument("--variants", default="all", help="comma list, talk, modern or all")
    parser.add_argument(
        "--counts", help=f"idle connection counts (default {DEFAULT_COUNTS}; --quick: 10,100)"
    )
    parser.add_argument(
        "--slow-counts", help=f"slow client counts (default {DEFAULT_SLOW_COUNTS}; 0: none)"
    )
    parser.add_argument("--slow-rate", type=float, default=1.0,
                        help="requests a second per slow client")  # fmt: skip
    parser.add_argument("--slow-seconds", type=float, help="each slow point's window (3)")
    parser.add_argument(
        "--latency-requests", type=int, help="the fresh client's requests per idle point (200)"
    )
    parser.add_argument(
        "--fairness-seconds",
        type=float,
        help="the pipeline's time per setting (2.5; 0: no fairness)",
    )
    parser.add_argument(
        "--fairness-before", default="--yield-every 0",
        help="the servers' flags for fairness' before (default: --yield-every 0)",
    )  # fmt: skip
    parser.add_argument(
        "--fairness-after", default="", help="the servers' flags for after (default: none)"
    )
    parser.add_argument("--no-admission-before", action="store_true",
                        help="skip asyncio's and asyncio-uvloop's --backlog 100 rows")  # fmt: skip
    parser.add_argument("--no-redis", action="store_true", help="no Redis anchor")
    parser.add_argument("--quick", action="store_true", help="small counts and short windows")
    parser.add_argument("--out", type=Path, help="default: results/connections-<time>")
    parser.add_argument("--redraw", type=Path, metavar="DIR",
                        help="only redraw DIR's report.md and plots")  # fmt: skip
    return parser


def counts_list(text: str, option: str, *, zero_is_none: bool = False) -> list[int]:
    if zero_is_none and text.strip() == "0":
        return []
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise LabError(f"{option} {text!r}: expected a comma list of integers") from None
    if not values or any(value < 1 for value in values):
        raise LabError(f"{option} {text!r}: every count must be at least 1")
    if len(set(values)) != len(values):
        raise LabError(f"{option} {text!r}: a count appears twice")
    return sorted(values)


def plan_from(args: argparse.Namespace) -> Plan:
    chosen = QUICK if args.quick else FULL

    def pick(name: str) -> str:
        given = getattr(args, name)
        return str(chosen[name] if given is None else given)

    try:
        variants = comma_list(args.variants, VARIANTS, "variant", VARIANT_SETS)
    except LabError as error:
        raise LabError(f"--variants {args.variants!r}: {error}") from None
    counts = counts_list(pick("counts"), "--counts")
    slow_counts = counts_list(pick("slow_counts"), "--slow-counts", zero_is_none=True)
    slow_seconds, latency_requests = float(pick("slow_seconds")), int(pick("latency_requests"))
    fairness_seconds = float(pick("fairness_seconds"))
    check_rules([
        ("--slow-rate", args.slow_rate, 0 < args.slow_rate <= 100, "must be in (0, 100]"),
        ("--slow-seconds", slow_seconds, slow_seconds >= 1, "must be at least 1 second"),
        ("--latency-requests", latency_requests, latency_requests >= 10, "must be at least 10"),
        ("--fairness-seconds", fairness_seconds, fairness_seconds == 0 or fairness_seconds >= 0.5,
         "must be 0 (none) or at least 0.5 seconds"),
    ])  # fmt: skip
    limits = raise_open_files()
    # each held connection is a descriptor here; the server needs as many, plus its own
    needed = max([*counts, *slow_counts]) + CAP_SPARE + 64
    if needed > limits.soft:
        raise LabError(
            f"--counts {max(counts):,}: this process may open {limits.soft:,} files "
            f"(hard limit {limits.hard:,}); raise the hard limit (ulimit -Hn) or lower the counts"
        )
    return Plan(
        variants=variants,
        counts=counts,
        slow_counts=slow_counts,
        slow_rate=args.slow_rate,
        slow_seconds=slow_seconds,
        latency_requests=latency_requests,
        fairness_seconds=fairness_seconds,
        fairness_before=shlex.split(args.fairness_before),
        fairness_after=shlex.split(args.fairness_after),
        admission_before=not args.no_admission_before,
        redis=not args.no_redis,
        open_files=limits,
    )


def somaxconn() -> int | None:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return None


def memory_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def environment(plan: Plan, busy: machine.Busy, command: str, seconds: float) -> dict[str, Any]:
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)),
        "machine": f"{platform.machine()}, Linux {platform.release()}, "
        f"{memory_total_mib()} MiB memory",
        "python": platform.python_version(),
        "variants": plan.variants,
        "counts": plan.counts,
        "slow_counts": plan.slow_counts,
        "slow_rate": plan.slow_rate,
        "slow_seconds": plan.slow_seconds,
        "latency_requests": plan.latency_requests,
        "fairness_seconds": plan.fairness_seconds,
        "fairness_before": plan.fairness_before,
        "fairness_after": plan.fairness_after,
        "open_files": {
            "soft_before": plan.open_files.soft_before,
            "soft": plan.open_files.soft,
            "hard": plan.open_files.hard,
        },
        "max_connections": max([*plan.counts, *plan.slow_counts]) + CAP_SPARE,
        "somaxconn": somaxconn(),
        "busy_cores_at_start": busy.cores,
        "load_average_at_start": busy.load,
        "noisy_threshold_cores": machine.NOISY_FOREIGN_CORES,
        "seconds_taken": round(seconds, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    if args.redraw is not None:
        return report_module.main([str(args.redraw)])
    started = time.monotonic()
    made = provenance.begin(report_module.KIND, report_module.SCHEMA)
    try:
        plan = plan_from(args)
        busy = machine.busy_now()
        if busy.busy:
            print(busy.warning(), file=sys.stderr, flush=True)
        out = args.out or Path("results") / datetime.datetime.now().strftime(
            "connections-%Y%m%d-%H%M%S"
        )
        print(
            f"connections: {', '.join(plan.variants)}; idle {plan.counts}, slow "
            f"{plan.slow_counts}; open files {plan.open_files.soft:,}",
            file=sys.stderr,
        )
        measured = run(plan, out)
    except LabError as error:
        print(f"loadtest.connections: {error}", file=sys.stderr)
        return 2
    command = " ".join(["python -m loadtest.connections", *map(shlex.quote, arguments)])
    report: dict[str, Any] = {
        "kind": report_module.KIND,
        "environment": environment(plan, busy, command, time.monotonic() - started),
    } | measured
    report["figures"] = figures(report)
    report["provenance"] = made.record()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    for path in [out / "report.json", *report_module.write_report(report, out)]:
        print(f"wrote {path}")
    return 0
