# loadtest/switchinterval/cli.py
#
# The command `python -m loadtest.switchinterval` (`make switch-interval`,
# docs/design.md §6.7): its options, checked by name as the comparison
# runner checks its own (a bad one exits 2 naming it); the sweep
# (sweep.py); summary.json; the report (report.py); one line per verdict.
#
#   python -m loadtest.switchinterval                       threads, coro-threadpool,
#                                                           threads-procpool at 0.5 .. 20 ms
#   python -m loadtest.switchinterval --variants threads --intervals-ms 1,10 --convoy-repeat 0

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from loadtest.compare.cli import check_long_n, check_numbers, long_request
from loadtest.compare.environment import environment
from loadtest.compare.plan import Plan
from loadtest.compare.progress import ENGINE_START_SECONDS
from loadtest.compare.verdicts import SWITCH_LAW_VARIANTS
from loadtest.switchinterval.report import write_report
from loadtest.switchinterval.summary import KIND, SCHEMA, SweepSummary, check_sweep
from loadtest.switchinterval.sweep import (
    RECORDING_AFTER_S,
    RECORDING_BEFORE_S,
    SweepPlan,
    sweep,
)
from loadtest.toolbox import machine, provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.formats import plural
from loadtest.toolbox.options import add_pinning_options, check_rules, comma_list
from loadtest.toolbox.servers import SERVER_METRICS_PORT
from services import VARIANTS

INTERVALS_MS = "0.5,1,2,5,10,20"  # docs/design.md §3.2's sweep
SERVER_START_SECONDS = 1.0  # a server's start and stop, about
RECORDING_SECONDS = 1.5  # a recording's server, short client and files, beside its long fib


def parse_intervals_ms(text: str) -> list[float]:
    """--intervals-ms: a comma list of milliseconds, each > 0, at least two and all
    different (the control's span needs a sweep); seconds, increasing."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    intervals = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise LabError(f"--intervals-ms {text!r}: {item!r} is not a number of ms above 0")
        intervals.append(value / 1000.0)
    if len(set(intervals)) != len(intervals) or len(intervals) < 2:
        raise LabError(
            f"--intervals-ms {text!r}: expected at least two different intervals (a sweep)"
        )
    return sorted(intervals)


def build_parser() -> argparse.ArgumentParser:
    """The sweep's options (docs/design.md §6.7)."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.switchinterval",
        description="The convoy at several switch intervals: the during-rate against the "
        "switch-interval law (docs/design.md §3.2); write a report.",
    )
    parser.add_argument(
        "--variants", default=",".join(SWITCH_LAW_VARIANTS),
        help="comma list of variants (the law speaks of the default three)",
    )  # fmt: skip
    parser.add_argument(
        "--intervals-ms", default=INTERVALS_MS, metavar="MS,...",
        help="the switch intervals, milliseconds, comma list",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=3,
        help="timeline recordings per variant per interval (the law is judged on these)",
    )  # fmt: skip
    parser.add_argument(
        "--convoy-repeat", type=int, default=1,
        help="the comparison's convoy runs per variant per interval, shown beside (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=float, default=8.0, help="seconds per comparison convoy run"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0,
        help="seconds of short load on the comparison's server, not counted",
    )  # fmt: skip
    parser.add_argument(
        "--long-n", default="auto", help="n of the long request, or auto: fib(n) lasts "
        "--long-seconds",
    )  # fmt: skip
    parser.add_argument("--long-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, help="default: results/switch-interval-<time>")
    add_pinning_options(parser)
    # The convoy's short load is fixed (one closed-loop user asking fib(1)); the
    # comparison's checks read these too.
    parser.set_defaults(short_n=1, short_users=1, rate=0.0, metrics_port=SERVER_METRICS_PORT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    started = time.monotonic()
    made = provenance.begin(KIND, SCHEMA)
    try:
        try:
            variants = comma_list(args.variants, VARIANTS, "variant")
        except LabError as error:
            raise LabError(f"--variants {args.variants!r}: {error}") from None
        intervals = parse_intervals_ms(args.intervals_ms)
        check_numbers(args)
        check_rules(
            [("--convoy-repeat", args.convoy_repeat, args.convoy_repeat >= 0, "must be at least 0")]
        )
        check_long_n(args.long_n)
        server_cpus = machine.parse_cpus(args.server_cpus, "--server-cpus")
        loadgen_cpus = machine.parse_cpus(args.loadgen_cpus, "--loadgen-cpus")
        busy = machine.busy_now()
        if busy.busy:
            print(busy.warning(), file=sys.stderr, flush=True)
        long_n, long_seconds = long_request(args.long_n, args.long_seconds)
        convoy = Plan(
            variants=variants,
            scenarios=["convoy"],
            duration=args.duration,
            repeat=args.convoy_repeat,
            warmup=args.warmup,
            short_n=args.short_n,
            long_n=long_n,
            short_users=args.short_users,
            rate=args.rate,
            server_cpus=server_cpus,
            loadgen_cpus=loadgen_cpus,
        )
        plan = SweepPlan(intervals, convoy, args.repeat)
        out = args.out or Path("results") / datetime.datetime.now().strftime(
            "switch-interval-%Y%m%d-%H%M%S"
        )
        per_variant = (
            args.repeat * (RECORDING_SECONDS + long_seconds)
            + SERVER_START_SECONDS
            + (args.warmup + ENGINE_START_SECONDS if args.warmup > 0 else 0.0)
            + long_seconds
            + args.convoy_repeat * (args.duration + ENGINE_START_SECONDS)
        )
        print(
            f"sweeping the switch interval over {args.intervals_ms} ms on "
            f"{', '.join(variants)}: {plural(args.repeat, 'timeline recording')} and "
            f"{plural(args.convoy_repeat, 'convoy run')} of {args.duration:g} s each; long "
            f"fib({long_n}): {long_seconds:.2f} s in this process",
            file=sys.stderr,
        )
        records = sweep(plan, per_variant)
    except (LabError, machine.CpuListError) as error:
        print(f"loadtest.switchinterval: {error}", file=sys.stderr)
        return 2
    summary: SweepSummary = check_sweep(
        {
            "kind": KIND,
            "environment": {
                # the runner's own switch interval says nothing of the servers'
                key: value
                for key, value in environment(plan.convoy, "local", long_seconds, busy).items()
                if key != "switch_interval"
            }
            | {
                "intervals_s": intervals,
                "variants": variants,
                "command": " ".join(
                    ["python -m loadtest.switchinterval", *map(shlex.quote, arguments)]
                ),
                "seconds_taken": round(time.monotonic() - started, 1),
                "recording_repeat": args.repeat,
                "recording_before_s": RECORDING_BEFORE_S,
                "recording_after_s": RECORDING_AFTER_S,
            },
            "intervals": records,
            "provenance": made.record(),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    write_report(summary, out).announce([out / "summary.json"])
    return 0
