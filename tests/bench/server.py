# tests/bench/server.py
#
# The server benchmark (`make bench-server`, `python -m tests.bench.server`):
# a program that prints figures, not a test. Every variant runs as a real
# subprocess on 127.0.0.1; one raw client connection measures
#
#   - fib(1) requests per second: the talk's perf2 loop (send "1\n", read the
#     reply, repeat) for --duration seconds after a 0.5 s warm-up, and the
#     server's CPU per request (its whole process group, from /proc);
#   - fib(30) seconds per request: the mean of a few, after one warm-up.
#
# Then `threads` with metrics against `threads --no-metrics`: the cost of
# instrumentation (goal >= 0.97 of the uninstrumented rate). A cost of a few
# percent drowns in this VM's swings if the two run one after the other, so
# they run side by side, several servers of each kind, and the client times
# each request while going round all of them in a shuffled order: drift and
# the neighbours' load hit both kinds alike, and each kind is averaged over
# several processes' memory layouts (one layout alone can be a percent or
# two faster or slower). Each kind's rate is its requests over the time they
# took; server CPU per request is read in nanoseconds from schedstat. Output
# is Markdown.

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from loadtest.talk.perf1 import positive
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import comma_list
from services import VARIANTS
from services.core.fib import fib
from tests.bench import this_commit
from tests.conftest import ROOT, Server, group_cpu_seconds, group_members, start_server

WARM_UP = 0.5
OVERHEAD_GOAL = 0.97
OFF_GOAL = 0.99  # the timeline, off, against the code before it (docs/design.md §6.6)


@dataclass
class Slot:
    """One timed run of the fib(1) loop."""

    requests: int
    seconds: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU microseconds per request."""
        return self.server_cpu / self.requests * 1e6


def read_reply(sock: socket.socket) -> bytes:
    reply = sock.recv(128)
    while not reply.endswith(b"\n"):  # a reply split across segments: rare
        more = sock.recv(128)
        if not more:
            raise ConnectionError(f"server closed the connection after {reply!r}")
        reply += more
    return reply


def ask(variant: str, sock: socket.socket, line: bytes, expected: bytes) -> None:
    """One request line and its reply, checked."""
    sock.sendall(line)
    reply = read_reply(sock)
    if reply != expected:
        raise RuntimeError(f"{variant}: {line!r} answered {reply!r}")


def short_loop(server: Server, sock: socket.socket, seconds: float) -> Slot:
    """The perf2 loop on an open connection for `seconds`."""
    done = 0
    cpu_before = group_cpu_seconds(server.pid)
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        ask(server.variant, sock, b"1\n", b"1\n")
        done += 1
    elapsed = time.perf_counter() - start
    return Slot(done, elapsed, group_cpu_seconds(server.pid) - cpu_before)


def long_seconds(server: Server, n: int, repeat: int) -> float:
    """Mean seconds of one fib(n) request, after one warm-up request."""
    line, expected = b"%d\n" % n, b"%d\n" % fib(n)
    times = []
    with server.connect(timeout=600) as sock:
        for _ in range(repeat + 1):
            start = time.perf_counter()
            ask(server.variant, sock, line, expected)
            times.append(time.perf_counter() - start)
    return statistics.fmean(times[1:])


def shut(server: Server) -> None:
    server.stop()
    server.close()


def bench_variants(variants: Sequence[str], seconds: float, n: int, repeat: int) -> None:
    print(f"| variant | fib(1) req/s | server CPU µs per fib(1) | fib({n}) s/request |")
    print("|---|---:|---:|---:|")
    for variant in variants:
        server = start_server(variant)
        try:
            with server.connect() as sock:
                short_loop(server, sock, WARM_UP)
                slot = short_loop(server, sock, seconds)
            per_request = long_seconds(server, n, repeat)
        finally:
            shut(server)
        print(
            f"| `{variant}` | {slot.rate:,.0f} | {slot.cpu_us:.1f} | {per_request:.4f} |",
            flush=True,
        )


def schedstat_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, from schedstat (nanoseconds)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def group_schedstat_seconds(pid: int) -> float:
    """CPU of a server's whole process group (a pre-fork server's workers too)."""
    total = 0.0
    for member in group_members(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            total += schedstat_cpu_seconds(member)
    return total


def bench_metrics_overhead(rounds: int, requests: int, pairs: int, control: bool = False) -> float:
    """Print each round and the summary; returns the median ratio of rates.

    `control`: both kinds run --no-metrics, which shows the method's own
    noise (the ratio should be 1.000).
    """
    return bench_side_by_side(
        "threads",
        {True: ["--no-metrics"] if control else [], False: ["--no-metrics"]},
        {True: "A", False: "B"} if control else {True: "with metrics", False: "without"},
        rounds, requests, pairs,
        goal="a control: should be 1.000" if control else f"goal >= {OVERHEAD_GOAL}",
    )  # fmt: skip


def bench_side_by_side(
    variant: str | dict[bool, str],
    flags: dict[bool, list[str]],
    label: dict[bool, str],
    rounds: int,
    requests: int,
    pairs: int,
    goal: str,
    started: list[Server] | None = None,
    env: dict[bool, dict[str, str]] | None = None,
    minimum: float = OVERHEAD_GOAL,
) -> float:
    """`pairs` servers of each kind (flags[True], flags[False]; a variant per
    kind, or one for both; `env`: more environment per kind) side by side,
    fib(1) interleaved over all of them; the median ratio of kind True's
    rate to kind False's."""
    variants = variant if isinstance(variant, dict) else {True: variant, False: variant}
    shuffle = random.Random(2015).shuffle
    servers: list[tuple[bool, Server]] = []
    try:
        for pair in range(pairs):
            kinds = (True, False) if pair % 2 == 0 else (False, True)  # neither always first
            servers.extend(
                (kind, start_server(variants[kind], *flags[kind], env=(env or {}).get(kind)))
                for kind in kinds
            )
            if started is not None:  # for a scraper running meanwhile
                started.extend(server for _kind, server in servers[-2:])
        with contextlib.ExitStack() as stack:
            order = [
                (instrumented, server, stack.enter_context(server.connect()))
                for instrumented, server in servers
            ]
            for _instrumented, server, sock in order:
                short_loop(server, sock, WARM_UP)
            print(f"| round | {label[True]} req/s | {label[False]} req/s | ratio "
                  f"| server CPU µs/request: {label[True]}, {label[False]} |")  # fmt: skip
            print("|---:|---:|---:|---:|---:|")
            ratios, cpu = [], {True: 0.0, False: 0.0}
            for round_number in range(rounds):
                seconds = {True: 0.0, False: 0.0}
                cpu_before = {
                    server.pid: group_schedstat_seconds(server.pid) for _i, server, _s in order
                }
                for _ in range(requests):
                    shuffle(order)
                    for instrumented, _server, sock in order:
                        start = time.perf_counter()
                        ask(variants[instrumented], sock, b"1\n", b"1\n")
                        seconds[instrumented] += time.perf_counter() - start
                used = {True: 0.0, False: 0.0}
                for instrumented, server, _sock in order:
                    spent = group_schedstat_seconds(server.pid) - cpu_before[server.pid]
                    used[instrumented] += spent
                per_kind = requests * pairs
                ratios.append(seconds[False] / seconds[True])
                cpu[True] += used[True]
                cpu[False] += used[False]
                print(
                    f"| {round_number + 1} | {per_kind / seconds[True]:,.0f} "
                    f"| {per_kind / seconds[False]:,.0f} | {ratios[-1]:.3f} "
                    f"| {used[True] / per_kind * 1e6:.1f}, {used[False] / per_kind * 1e6:.1f} |",
                    flush=True,
                )
    finally:
        for _instrumented, server in servers:
            shut(server)
    ratio = statistics.median(ratios)
    if goal.startswith("goal >="):
        goal += ": met" if ratio >= minimum else ": NOT met"
    per_request = {kind: used / (rounds * requests * pairs) * 1e6 for kind, used in cpu.items()}
    print(
        f"\nreq/s {label[True]} / {label[False]}: median of {rounds} rounds **{ratio:.3f}** "
        f"(range {min(ratios):.3f} .. {max(ratios):.3f}; {goal}).  \n"
        f"server CPU per request: {per_request[True]:.2f} µs {label[True]}, "
        f"{per_request[False]:.2f} µs {label[False]} "
        f"({per_request[True] - per_request[False]:+.2f} µs)."
    )
    return ratio


def convoy_rates(server: Server, long_n: int, seconds: float) -> tuple[float, float]:
    """Short fib(1) req/s on one connection for `seconds`, then again while
    another connection asks fib(long_n) back to back: the talk's convoy."""
    with server.connect() as short:
        before = short_loop(server, short, seconds).rate
        stop = threading.Event()

        def hog() -> None:
            with server.connect(timeout=60) as long:
                while not stop.is_set():
                    ask(server.variant, long, b"%d\n" % long_n, b"%d\n" % fib(long_n))

        hogger = threading.Thread(target=hog, daemon=True)
        hogger.start()
        time.sleep(0.2)  # the first long request is running
        during = short_loop(server, short, seconds).rate
        stop.set()
        hogger.join(60)
    return before, during


def bench_gil_probe(variants: Sequence[str], rounds: int, requests: int, pairs: int) -> None:
    """What the GIL probe costs: fib(1) req/s side by side, probe on and off,
    then the convoy on each, alternating, in the same run."""
    flags = {True: [], False: ["--gil-probe", "off"]}
    label = {True: "probe on", False: "probe off"}
    for variant in variants:
        print(f"\n#### `{variant}`: fib(1), {pairs} servers each, side by side\n", flush=True)
        bench_side_by_side(variant, flags, label, rounds, requests, pairs, "no goal: a cost")
        print(f"\n#### `{variant}`: the convoy (fib(1) rate before / during fib(30) back "
              "to back), probe on and off alternately\n", flush=True)  # fmt: skip
        print("| round | probe | short req/s before | during | before / during |")
        print("|---:|---|---:|---:|---:|")
        factors: dict[bool, list[float]] = {True: [], False: []}
        for round_number in range(rounds // 2 or 1):
            for probe in (True, False) if round_number % 2 == 0 else (False, True):
                server = start_server(variant, *flags[probe])
                try:
                    before, during = convoy_rates(server, 30, 2.0)
                finally:
                    shut(server)
                factors[probe].append(before / during if during else float("inf"))
                print(f"| {round_number + 1} | {label[probe]} | {before:,.0f} | {during:,.0f} "
                      f"| {factors[probe][-1]:.1f}× |", flush=True)  # fmt: skip
        print(
            f"\nconvoy factor, median: probe on {statistics.median(factors[True]):.1f}×, "
            f"probe off {statistics.median(factors[False]):.1f}×",
            flush=True,
        )


def bench_prefork(rounds: int, requests: int, pairs: int) -> None:
    """prefork's requests against threads' (the model each of its workers
    runs): what serving from worker processes and merging their /metrics at
    each scrape costs per request. A scraper reads every server's /metrics
    once a second, as Prometheus does."""
    stop = threading.Event()
    scraped: list[Server] = []

    def scrape_every_second() -> None:
        while not stop.wait(1.0):
            for server in scraped.copy():
                with contextlib.suppress(OSError, ValueError):
                    server.metrics_text()

    scraper = threading.Thread(target=scrape_every_second, daemon=True)
    scraper.start()
    try:
        bench_side_by_side(
            {True: "prefork", False: "threads"},
            {True: ["--pool-workers", "2"], False: []},
            {True: "prefork", False: "threads"},
            rounds, requests, pairs, "no goal: a cost", started=scraped,
        )  # fmt: skip
    finally:
        stop.set()
        scraper.join(5)


@contextlib.contextmanager
def services_at(base: str) -> Iterator[str]:
    """A folder holding the services package as it was at commit `base`: a
    server started with PYTHONPATH set to it (and PYTHONSAFEPATH, which keeps
    `python -m` from putting the current folder first) runs that code."""
    with tempfile.TemporaryDirectory() as before:
        archive = subprocess.run(["git", "archive", base, "services"], cwd=ROOT,
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", before], input=archive, check=True)
        yield before


YIELD_GOAL = 0.99  # yielding between a read's lines, for a client sending one at a time


def bench_yield(rounds: int, requests: int, pairs: int, base: str) -> None:
    """What letting the loop run others between one read's lines (FIB_YIELD_EVERY,
    docs/design.md §2 Fairness) costs a client that sends one line at a time:
    the event-loop variants that gained it, against the code of commit `base`."""
    with services_at(base) as before:
        at_base = {"PYTHONSAFEPATH": "1", "PYTHONPATH": before}
        for variant in ("asyncio", "gevent"):
            print(f"\n#### {variant}: this commit against commit {base}\n", flush=True)
            bench_side_by_side(
                variant, {True: [], False: []},
                {True: "this commit, --yield-every 1", False: f"commit {base}"},
                rounds, requests, pairs, f"goal >= {YIELD_GOAL}",
                env={False: at_base}, minimum=YIELD_GOAL,
            )  # fmt: skip
        print(f"\n#### Control: asyncio at commit {base} against itself (the method's noise)\n",
              flush=True)  # fmt: skip
        bench_side_by_side(
            "asyncio", {True: [], False: []}, {True: "A", False: "B"},
            rounds, requests, pairs, "a control: should be 1.000",
            env={True: at_base, False: at_base},
        )  # fmt: skip


def bench_timeline(rounds: int, requests: int, pairs: int, base: str) -> None:
    """The server's timeline (FIB_TIMELINE, docs/design.md §6.6) on `threads`:
    off against the code of commit `base` (before the timeline existed: its
    hooks cost nothing when off, goal >= 0.99), `base` against itself (the
    method's noise), then on against off (what recording costs)."""
    with services_at(base) as before, tempfile.TemporaryDirectory() as written:
        print(f"#### Off, against commit {base} (no timeline code)\n", flush=True)
        bench_side_by_side(
            "threads", {True: [], False: []},
            {True: "this commit, timeline off", False: f"commit {base}"},
            rounds, requests, pairs, f"goal >= {OFF_GOAL}",
            env={False: {"PYTHONSAFEPATH": "1", "PYTHONPATH": before}}, minimum=OFF_GOAL,
        )  # fmt: skip
        print(f"\n#### Control: commit {base} against itself (the method's own noise)\n",
              flush=True)  # fmt: skip
        bench_side_by_side(
            "threads", {True: [], False: []}, {True: "A", False: "B"},
            rounds, requests, pairs, "a control: should be 1.000",
            env={kind: {"PYTHONSAFEPATH": "1", "PYTHONPATH": before} for kind in (True, False)},
        )  # fmt: skip
        print("\n#### On, against off\n", flush=True)
        bench_side_by_side(
            "threads", {True: ["--timeline", written], False: []},
            {True: "timeline on", False: "timeline off"},
            rounds, requests, pairs, "no goal: a cost",
        )  # fmt: skip


def variant_list(text: str) -> list[str]:
    try:
        return comma_list(text, VARIANTS, "variant")
    except LabError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.server",
        description="Print fib(1) req/s and fib(30) s/request of every variant, "
        "and the cost of metrics on threads.",
    )
    parser.add_argument(
        "--variants", type=variant_list, default=list(VARIANTS), help="comma-separated, or all"
    )
    parser.add_argument(
        "--duration", type=positive(float), default=3.0, help="seconds per fib(1) measurement [3]"
    )
    parser.add_argument("--long-n", type=int, default=30, help="n of the long request [30]")
    parser.add_argument("--repeat", type=int, default=3, help="long requests averaged [3]")
    parser.add_argument(
        "--rounds", type=int, default=6, help="metrics vs --no-metrics rounds (0: skip) [6]"
    )
    parser.add_argument(
        "--round-requests", type=positive(int), default=4000,
        help="fib(1) requests per server in each round [4000]",
    )  # fmt: skip
    parser.add_argument(
        "--pairs", type=positive(int), default=4,
        help="servers of each kind, side by side [4]",
    )  # fmt: skip
    parser.add_argument(
        "--prefork", action="store_true",
        help="instead: prefork's fib(1) rate against threads', side by side, scraped every second",
    )  # fmt: skip
    parser.add_argument(
        "--gil-probe", action="store_true",
        help="instead: what the GIL probe costs on threads and coro (fib(1) and the convoy)",
    )  # fmt: skip
    parser.add_argument(
        "--timeline", metavar="BASE",
        help="instead: the timeline's cost on threads, off against commit BASE, then on",
    )  # fmt: skip
    parser.add_argument(
        "--yield-cost", metavar="BASE",
        help="instead: what yielding between a read's lines costs asyncio and gevent, "
        "against commit BASE",
    )  # fmt: skip
    parser.add_argument(
        "--control", action="store_true",
        help="run --no-metrics on both sides: the method's own noise (ratio ~1.000)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"## fiblab server benchmark\n\n{now}; {platform.python_implementation()} "
        f"{platform.python_version()}; {cores} cores; load average {os.getloadavg()[0]:.2f} "
        f"at start. One client connection on 127.0.0.1 (the client's own per-request cost "
        f"is part of the fib(1) rate); fib(1) over {args.duration:g} s after {WARM_UP:g} s "
        f"of warm-up; fib({args.long_n}): mean of {args.repeat}.\n",
        flush=True,
    )
    if args.prefork:
        print(
            f"### prefork (2 workers) against threads: {args.pairs} servers each, "
            f"{args.rounds} rounds of {args.round_requests} interleaved fib(1) requests per "
            "server, every /metrics read once a second\n",
            flush=True,
        )
        bench_prefork(args.rounds, args.round_requests, args.pairs)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        return
    if args.timeline:
        print(
            f"### What the server's timeline costs (`python -m tests.bench.server --timeline "
            f"{args.timeline}` at commit {this_commit()}): {args.pairs} servers of each kind, "
            f"{args.rounds} rounds of {args.round_requests} interleaved fib(1) requests per "
            "server\n",
            flush=True,
        )
        bench_timeline(args.rounds, args.round_requests, args.pairs, args.timeline)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        return
    if args.yield_cost:
        print(
            f"### What yielding between a read's lines costs (`python -m tests.bench.server "
            f"--yield-cost {args.yield_cost}` at commit {this_commit()}): {args.pairs} servers "
            f"of each kind, {args.rounds} rounds of {args.round_requests} interleaved fib(1) "
            "requests per server, one line at a time\n",
            flush=True,
        )
        bench_yield(args.rounds, args.round_requests, args.pairs, args.yield_cost)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        return
    if args.gil_probe:
        print(
            f"### Cost of the GIL probe: `--gil-probe off` against on, {args.rounds} rounds "
            f"of {args.round_requests} interleaved fib(1) requests per server",
            flush=True,
        )
        bench_gil_probe(["threads", "coro"], args.rounds, args.round_requests, args.pairs)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        return
    bench_variants(args.variants, args.duration, args.long_n, args.repeat)
    if args.rounds > 0:
        sides = (
            f"CONTROL: {args.pairs} servers A and {args.pairs} servers B, all `--no-metrics`"
            if args.control
            else f"{args.pairs} servers with metrics and {args.pairs} with `--no-metrics`"
        )
        print(
            f"\n### Cost of metrics: `threads`, {sides}, {args.rounds} rounds of "
            f"{args.round_requests} interleaved fib(1) requests each\n",
            flush=True,
        )
        bench_metrics_overhead(args.rounds, args.round_requests, args.pairs, args.control)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
