# loadtest/profile/cli.py
#
# The command `python -m loadtest.profile` (docs/design.md §6.8): one
# variant under py-spy while the convoy runs, once per view (wall clock, GIL
# holders, speedscope), and report.md beside the files.
#
#   python -m loadtest.profile --variant threads
#   python -m loadtest.profile --variant threads-procpool --seconds 15 --rate 200 --reference
#   python -m loadtest.profile --variant threads --python 3.14   the server in that image

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.compare.plan import MIN_DURATION, Plan, choose_long_n
from loadtest.profile.recording import (
    VIEWS,
    View,
    image_for,
    py_spy,
    py_spy_version,
    record,
)
from loadtest.profile.report import Setting, write_report
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import python_image
from services import VARIANTS

MAX_SECONDS = 600.0  # py-spy keeps every sample in memory until it writes
MAX_RATE = 1000  # samples/s; py-spy pauses the server at each one
LONG_SECONDS = 0.5  # the long request, as the comparison's default --long-seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.profile",
        description="Flame graphs of one variant while the convoy runs; a report beside them.",
    )
    parser.add_argument("--variant", required=True, help="the variant to profile")
    parser.add_argument(
        "--seconds", type=float, default=9.0, help="the convoy's length (three equal stages)"
    )
    parser.add_argument("--rate", type=int, default=100, help="py-spy's samples per second")
    parser.add_argument("--out", type=Path, help="default: results/profile-<variant>-<time>")
    parser.add_argument(
        "--python", metavar="VERSION",
        help="run the server on CPython VERSION, in the variants image built for it (Docker)",
    )  # fmt: skip
    parser.add_argument(
        "--reference", action="store_true",
        help="also run the convoy once without the profiler (its cost, side by side)",
    )  # fmt: skip
    return parser


def check(args: argparse.Namespace) -> None:
    """Every option in its range; a LabError naming each one that is not."""
    broken = []
    if args.variant not in VARIANTS:
        broken.append(f"--variant {args.variant!r}: the variants are {', '.join(VARIANTS)}")
    if not (math.isfinite(args.seconds) and MIN_DURATION <= args.seconds <= MAX_SECONDS):
        broken.append(
            f"--seconds {args.seconds:g}: must be from {MIN_DURATION:g} to {MAX_SECONDS:g} "
            "(the convoy's three stages are whole seconds)"
        )
    if not 1 <= args.rate <= MAX_RATE:
        broken.append(f"--rate {args.rate}: must be from 1 to {MAX_RATE} samples/s")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        broken.append(f"--out {args.out}: is a file, not a folder")
    if broken:
        raise LabError("; ".join(broken))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check(args)
        program = py_spy()
        profiler = py_spy_version(program)
        image = python_image(args.python) if args.python else None
        runs_in = image_for(args.variant, image)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        # absolute: a container mounts it at the same path
        out = (args.out or Path("results") / f"profile-{args.variant}-{stamp}").resolve()
        out.mkdir(parents=True, exist_ok=True)
        where = (
            f"here, py-spy its parent ({sys.executable})"
            if runs_in is None
            else f"in `{runs_in}` (docker run --network host), py-spy its parent and the "
            "container's entrypoint, CAP_SYS_PTRACE added to that container alone"
        )
        long_n, long_seconds = choose_long_n(LONG_SECONDS)
        plan = Plan(
            variants=[args.variant], scenarios=["convoy"], duration=args.seconds, repeat=1,
            warmup=0.0, short_n=1, long_n=long_n, short_users=1, rate=0.0,
        )  # fmt: skip
        print(
            f"profiling {args.variant} ({where}) with {profiler} at {args.rate}/s: "
            f"{len(VIEWS) + args.reference} convoys of {args.seconds:g} s, long fib({long_n}) "
            f"{long_seconds:.2f} s in this process",
            file=sys.stderr,
        )
        views: list[View | None] = [*([None] if args.reference else []), *VIEWS]
        recorded = []
        for view in views:
            print(f"  {view.title if view else 'reference (no profiler)'}", file=sys.stderr)
            recorded.append(record(plan, view, args.rate, out, image, program))
    except LabError as error:
        print(f"loadtest.profile: {error}", file=sys.stderr)
        return 2
    setting = Setting(
        plan=plan, rate=args.rate, where=where, profiler=profiler,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        cores=len(os.sched_getaffinity(0)),
    )  # fmt: skip
    report = write_report(out, setting, recorded)
    for run in recorded:
        if run.view is not None:
            print(f"wrote {out / run.view.file}")
    print(f"wrote {report}")
    return 0
