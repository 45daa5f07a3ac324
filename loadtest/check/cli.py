# loadtest/check/cli.py
#
# The command `python -m loadtest.check tcp://HOST:PORT` (`make check
# TARGET=...`, docs/design.md §6.9): any server that speaks the line
# protocol, checked from outside against §2. First one request (fib(10))
# tells a fib server from anything else: nothing listening, another
# protocol, a server that closes or never answers all end here with one
# message and exit 2. Then the server's limits (options, or found by
# asking), every case with its own deadline, the summary and the report.
# --behaviours then runs the talk's scenarios against it (behaviours.py):
# findings in the summary and the report, never a failure.
#
#   python -m loadtest.check tcp://127.0.0.1:25000
#   python -m loadtest.check tcp://127.0.0.1:25000 --max-n 45 --idle-timeout 2 --case-timeout 5
#   python -m loadtest.check tcp://127.0.0.1:25100 --behaviours --like threads

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from loadtest.check import behaviours
from loadtest.check.cases import CASES, Context, find_limits, run_case
from loadtest.check.report import case_lines, limit_lines, tally_line, write_report
from loadtest.check.wire import NoReply, Transcript
from loadtest.compare.plan import MIN_DURATION
from loadtest.swarm.targets import HOST_SCHEME, Address, TargetError, parse_address
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import Rule, check_rules
from services import VARIANTS

PROG = "python -m loadtest.check"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check a server against the line protocol (docs/design.md §2), from "
        "outside: every case with what it sent, expected and got; a report folder. With "
        "--behaviours, then the talk's scenarios against it, judged by the comparison's rules. "
        "Exit status: 0 when every protocol case passes (behaviours are findings, never "
        "failures), 1 when one fails, 2 for a bad target or option.",
    )
    parser.add_argument("target", metavar="TARGET", help="tcp://HOST:PORT")
    parser.add_argument(
        "--max-n", type=int, help="the server's largest n (default: found by asking)"
    )
    parser.add_argument(
        "--max-line", type=int, metavar="BYTES",
        help="the server's longest line, its \\n included (default: found by asking)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-timeout", type=float, metavar="S",
        help="the server's idle timeout (default: unknown, its case skipped)",
    )  # fmt: skip
    parser.add_argument(
        "--max-connections", type=int, metavar="N",
        help="the server's connection cap (default: unknown, its case skipped)",
    )  # fmt: skip
    parser.add_argument(
        "--case-timeout", type=float, default=10.0, metavar="S",
        help="each case's deadline, seconds",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: results/check-<time>")
    parser.add_argument(
        "--behaviours", action="store_true",
        help="then the talk's short, long and convoy scenarios against the target, judged by "
        "the comparison's rules: findings, not failures",
    )  # fmt: skip
    parser.add_argument(
        "--like", metavar="VARIANT",
        help="(--behaviours) judge it as this lab variant, by that variant's verdicts "
        "(default: classified from what it measured)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", metavar="URL",
        help="(--behaviours) the server's /metrics in the lab's names, for its CPU "
        "(default: none, server-side figures missing; one that does not answer: missing too)",
    )  # fmt: skip
    parser.add_argument(
        "--duration", type=float, metavar="S",
        help=f"(--behaviours) seconds per scenario run (default {behaviours.DURATION:g})",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int,
        help=f"(--behaviours) runs of each scenario (default {behaviours.REPEAT})",
    )  # fmt: skip
    parser.add_argument(
        "--long-seconds", type=float, metavar="S",
        help="(--behaviours) the long request: the n whose fib is reckoned to take this long "
        f"on the target (default {behaviours.LONG_SECONDS:g})",
    )  # fmt: skip
    return parser


def parse_target(text: str) -> Address:
    if not text.startswith(HOST_SCHEME):
        raise LabError(f"TARGET {text!r} is not {HOST_SCHEME}HOST:PORT")
    try:
        return parse_address(text.removeprefix(HOST_SCHEME))
    except TargetError as error:
        raise LabError(f"TARGET {text!r} is not {HOST_SCHEME}HOST:PORT: {error}") from None


def check_options(args: argparse.Namespace) -> None:
    rules: list[Rule] = [
        ("--case-timeout", args.case_timeout, args.case_timeout > 0, "must be above 0")
    ]
    # (option, its value, its least value, whether that least is allowed)
    for option, value, least, inclusive in (
        ("--max-n", args.max_n, 0, True),
        ("--max-line", args.max_line, 3, True),
        ("--idle-timeout", args.idle_timeout, 0, False),
        ("--max-connections", args.max_connections, 1, True),
    ):
        if value is not None:  # not given: found by asking, or its case skipped
            ok = value >= least if inclusive else value > least
            rule = f"must be at least {least}" if inclusive else f"must be above {least}"
            rules.append((option, value, ok, rule))
    behaviour_options = {
        "--like": args.like, "--metrics": args.metrics, "--duration": args.duration,
        "--repeat": args.repeat, "--long-seconds": args.long_seconds,
    }  # fmt: skip
    given = [option for option, value in behaviour_options.items() if value is not None]
    if given and not args.behaviours:
        raise LabError(f"{', '.join(given)} only go with --behaviours")
    for option, value, ok, rule in (
        ("--duration", args.duration, lambda v: v >= MIN_DURATION,
         f"must be at least {MIN_DURATION:g} seconds (three stages of whole seconds)"),
        ("--repeat", args.repeat, lambda v: v >= 1, "must be at least 1"),
        ("--long-seconds", args.long_seconds, lambda v: v > 0, "must be above 0"),
    ):  # fmt: skip
        if value is not None:
            rules.append((option, value, ok(value), rule))
    check_rules(rules)
    if args.like is not None and args.like not in VARIANTS:
        raise LabError(
            f"--like {args.like!r}: unknown variant; the variants are: {', '.join(VARIANTS)}"
        )
    if args.metrics is not None and not args.metrics.startswith(("http://", "https://")):
        raise LabError(f"--metrics {args.metrics!r} is not an http:// or https:// URL")


def behaviour_settings(args: argparse.Namespace) -> behaviours.Settings:
    return behaviours.Settings(
        duration=behaviours.DURATION if args.duration is None else args.duration,
        repeat=behaviours.REPEAT if args.repeat is None else args.repeat,
        long_seconds=(behaviours.LONG_SECONDS if args.long_seconds is None else args.long_seconds),
        like=args.like,
        metrics=args.metrics,
    )


def check_speaks_fib(target: str, address: Address, timeout: float) -> None:
    """fib(10) once: a LabError naming what failed unless the reply is a number
    or an ERR line (a fib server, right or wrong; the cases judge it)."""
    transcript = Transcript(timeout)
    try:
        with transcript.connect(address) as wire:
            wire.send(b"10\n")
            reply = wire.line()
    except ConnectionRefusedError:
        raise LabError(f"nothing listens at {target} (connection refused)") from None
    except NoReply:
        raise LabError(
            f"{target} accepted the connection but did not answer fib(10) within "
            f"{timeout:g} s (--case-timeout)"
        ) from None
    except OSError as error:
        raise LabError(f"{target}: {error.strerror or error}") from None
    if not reply:
        raise LabError(f"{target} closed the connection without answering fib(10)")
    if not (reply.rstrip(b"\r\n").isdigit() or reply.startswith(b"ERR ")):
        raise LabError(f"{target} does not speak the fib line protocol: fib(10) got {reply[:80]!r}")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    started = time.monotonic()
    try:
        address = parse_target(args.target)
        check_options(args)
        check_speaks_fib(args.target, address, args.case_timeout)
    except LabError as error:
        print(f"loadtest.check: {error}", file=sys.stderr)
        return 2
    now = datetime.datetime.now()
    out = args.out or Path("results") / now.strftime("check-%Y%m%d-%H%M%S")
    print(f"checking {args.target} against the line protocol (docs/design.md §2)", flush=True)
    limits = find_limits(
        address, args.case_timeout, args.max_n, args.max_line, args.idle_timeout,
        args.max_connections,
    )  # fmt: skip
    for name, value in limit_lines(limits):
        print(f"  {name}: {value}")
    context = Context(address, args.case_timeout, limits)
    results = []
    for case in CASES:
        results.append(result := run_case(case, context))
        print("\n".join(case_lines(result)), flush=True)
    print(tally_line(results))
    found = None
    if args.behaviours:
        found = behaviours.run(address, behaviour_settings(args), limits)
        print("\n".join(behaviours.terminal_lines(found)), flush=True)
    failed = any(result.outcome == "fail" for result in results)
    status = 1 if failed else 0
    head = {
        "target": args.target,
        "command": " ".join([PROG, *map(shlex.quote, arguments)]),
        "time": now.isoformat(timespec="seconds"),
        "seconds_taken": round(time.monotonic() - started, 1),
        "exit_status": status,
    }
    for path in write_report(out, head, limits, results, found):
        print(f"wrote {path}")
    return status
