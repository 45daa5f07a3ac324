# tests/bench/loadgen.py
#
# The load-generator benchmark (`make bench-loadgen`): a program that prints
# figures, not a test. Against one `threads` variant, in alternating rounds
# (raw, Locust, raw, Locust, ...) so that the neighbours' load hits both:
#
#   - req/s of the raw perf2 loop (one blocking socket, send "1\n", read);
#   - req/s of one Locust ShortUser (loadtest.compare.engine, the comparison
#     runner's engine, in its own process as the runner runs it);
#
# and their ratio (goal >= 0.95). The engine's own CPU is printed beside it:
# at ~100 % of one core, Locust (one gevent thread) is what limits the rate.

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from tests.bench.server import read_reply
from tests.conftest import ROOT, start_server

GOAL = 0.95


def raw_rate(port: int, seconds: float) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = 0
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            sock.sendall(b"1\n")
            if read_reply(sock) != b"1\n":
                raise RuntimeError("fib(1) answered wrongly")
            done += 1
        return done / (time.perf_counter() - start)


def locust_rate(port: int, seconds: float) -> tuple[float, float]:
    """req/s of one ShortUser, and the engine's CPU percent."""
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.compare.engine", "--variant", "threads",
         "--address", f"127.0.0.1:{port}", "--scenario", "short", "--duration", str(seconds)],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout)
    return float(figures["rps"]), float(figures["loadgen_cpu_percent"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.loadgen")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    server = start_server("threads")
    try:
        raw_rate(server.port, 1.0)  # warm-up
        raws, locusts, cpus = [], [], []
        for round_ in range(args.rounds):
            raws.append(raw_rate(server.port, args.seconds))
            rate, cpu = locust_rate(server.port, args.seconds)
            locusts.append(rate)
            cpus.append(cpu)
            print(
                f"round {round_ + 1}: raw {raws[-1]:,.0f} req/s, Locust {rate:,.0f} req/s "
                f"(engine CPU {cpu:.0f} %), ratio {rate / raws[-1]:.3f}",
                flush=True,
            )
    finally:
        server.close()
    raw, locust = statistics.median(raws), statistics.median(locusts)
    ratio = statistics.median(lo / ra for lo, ra in zip(locusts, raws, strict=True))
    print()
    print("| client (one connection, fib(1), against threads) | req/s (median) |")
    print("|---|---:|")
    print(f"| raw perf2 loop | {raw:,.0f} |")
    print(f"| one Locust ShortUser (engine CPU {statistics.median(cpus):.0f} %) | {locust:,.0f} |")
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"\nratio Locust / raw: {ratio:.3f} (median of paired rounds; goal >= {GOAL}: {verdict})")


if __name__ == "__main__":
    main()
