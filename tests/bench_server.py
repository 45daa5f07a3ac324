# tests/bench_server.py
#
# The server benchmark (`make bench-server`, `python -m tests.bench_server`):
# a program that prints figures, not a test. Every variant runs as a real
# subprocess on 127.0.0.1; one raw client connection measures
#
#   - fib(1) requests per second: the talk's perf2 loop (send "1\n", read the
#     reply, repeat) for --duration seconds after a 0.5 s warm-up, and the
#     server's CPU per request (its whole process group, from /proc);
#   - fib(30) seconds per request: the mean of a few, after one warm-up.
#
# Then `threads` with metrics against `threads --no-metrics`, both running,
# measured in short alternating slots (A B, B A, A B, ...) so that drift and
# the neighbours' load hit both alike: the ratio of their fib(1) rates is the
# cost of instrumentation (goal >= 0.97). Server CPU per request is printed
# beside it: on a busy machine it is steadier than wall-clock rates. Output
# is Markdown.

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.compare import CompareError, comma_list
from loadtest.perf1 import positive
from services import VARIANTS
from services.core.fib import fib
from tests.conftest import Server, group_cpu_seconds, start_server

WARM_UP = 0.5
OVERHEAD_GOAL = 0.97


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


def short_loop(server: Server, sock: socket.socket, seconds: float) -> Slot:
    """The perf2 loop on an open connection for `seconds`."""
    done = 0
    cpu_before = group_cpu_seconds(server.pid)
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        sock.sendall(b"1\n")
        reply = read_reply(sock)
        if reply != b"1\n":
            raise RuntimeError(f"{server.variant}: fib(1) answered {reply!r}")
        done += 1
    elapsed = time.perf_counter() - start
    return Slot(done, elapsed, group_cpu_seconds(server.pid) - cpu_before)


def long_seconds(server: Server, n: int, repeat: int) -> float:
    """Mean seconds of one fib(n) request, after one warm-up request."""
    expected = b"%d\n" % fib(n)
    times = []
    with server.connect(timeout=600) as sock:
        for _ in range(repeat + 1):
            start = time.perf_counter()
            sock.sendall(b"%d\n" % n)
            reply = read_reply(sock)
            times.append(time.perf_counter() - start)
            if reply != expected:
                raise RuntimeError(f"{server.variant}: fib({n}) answered {reply!r}")
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


def bench_metrics_overhead(slot_seconds: float, rounds: int) -> None:
    instrumented = start_server("threads")
    bare = start_server("threads", "--no-metrics")
    with_metrics: list[Slot] = []
    without: list[Slot] = []
    try:
        with instrumented.connect() as a, bare.connect() as b:
            short_loop(instrumented, a, WARM_UP)
            short_loop(bare, b, WARM_UP)
            for round_number in range(rounds):
                # Alternate which goes first, so that neither always gets the
                # warmer (or the quieter) slot.
                if round_number % 2 == 0:
                    with_metrics.append(short_loop(instrumented, a, slot_seconds))
                    without.append(short_loop(bare, b, slot_seconds))
                else:
                    without.append(short_loop(bare, b, slot_seconds))
                    with_metrics.append(short_loop(instrumented, a, slot_seconds))
    finally:
        shut(instrumented)
        shut(bare)

    print("| round | `threads` req/s | `--no-metrics` req/s | ratio | CPU µs/req: with, without |")
    print("|---:|---:|---:|---:|---:|")
    paired = [on.rate / off.rate for on, off in zip(with_metrics, without, strict=True)]
    for index, (on, off) in enumerate(zip(with_metrics, without, strict=True)):
        print(
            f"| {index + 1} | {on.rate:,.0f} | {off.rate:,.0f} | {paired[index]:.3f} "
            f"| {on.cpu_us:.1f}, {off.cpu_us:.1f} |"
        )

    def cpu_per_request(slots: list[Slot]) -> float:
        return sum(s.server_cpu for s in slots) / sum(s.requests for s in slots)

    rate_ratio = statistics.median(paired)
    cpu_ratio = cpu_per_request(without) / cpu_per_request(with_metrics)
    verdict = "met" if rate_ratio >= OVERHEAD_GOAL else "NOT met"
    print(
        f"\nreq/s with metrics / without: median of paired rounds **{rate_ratio:.3f}** "
        f"(range {min(paired):.3f} .. {max(paired):.3f}; goal >= {OVERHEAD_GOAL}: {verdict}).  \n"
        f"server CPU per request, without / with: **{cpu_ratio:.3f}** "
        f"({cpu_per_request(without) * 1e6:.1f} vs "
        f"{cpu_per_request(with_metrics) * 1e6:.1f} µs)."
    )


def variant_list(text: str) -> list[str]:
    try:
        return comma_list(text, VARIANTS, "variant")
    except CompareError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench_server",
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
        "--rounds", type=int, default=20, help="metrics vs --no-metrics rounds (0: skip) [20]"
    )
    parser.add_argument(
        "--slot", type=positive(float), default=0.5, help="seconds of each such measurement [0.5]"
    )
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
    bench_variants(args.variants, args.duration, args.long_n, args.repeat)
    if args.rounds > 0:
        print(
            f"\n### Cost of metrics: `threads`, {args.rounds} alternating rounds of "
            f"{args.slot:g} s\n",
            flush=True,
        )
        bench_metrics_overhead(args.slot, args.rounds)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
