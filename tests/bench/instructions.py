# tests/bench/instructions.py
#
# The cost of instrumentation in instructions (`make bench-instructions`): a
# program that prints figures, not a test. `make bench-server` measures that
# cost in time; this counts it, exactly and repeatably, which shows what a
# change to the hot path does. valgrind's callgrind runs the `threads`
# server, once answering no request and once answering N fib(1) requests on
# one connection; the difference over N is its user-space instructions per
# request (kernel time, the larger part of a fib(1) request, is not
# counted). With metrics and with --no-metrics, side by side.

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from loadtest.capacity.loadgen import free_port
from tests.conftest import ROOT


def instructions(extra: Sequence[str], requests: int, workdir: Path) -> int:
    """Instructions callgrind counted for a server that answered `requests` fib(1)."""
    out = workdir / f"callgrind.{len(extra)}.{requests}"
    port = free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         sys.executable, "-m", "services", "threads", "--port", str(port),
         "--metrics-port", "0", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("listening on "):
                break
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            for _ in range(requests):
                sock.sendall(b"1\n")
                if sock.recv(16) != b"1\n":
                    raise RuntimeError("fib(1) answered wrongly")
    finally:
        server.terminate()
        server.communicate(timeout=300)
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match[1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.instructions")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (apt-get install valgrind)")
    per_request = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("with metrics", []), ("--no-metrics", ["--no-metrics"])):
            idle = instructions(extra, 0, Path(tmp))
            busy = instructions(extra, args.requests, Path(tmp))
            per_request[label] = (busy - idle) / args.requests
            print(f"{label}: {per_request[label]:,.0f} instructions per fib(1)", flush=True)
    ratio = per_request["--no-metrics"] / per_request["with metrics"]
    cost = per_request["with metrics"] - per_request["--no-metrics"]
    print(f"\ninstrumentation: {cost:,.0f} instructions per request; "
          f"user-space instructions without / with: {ratio:.3f}")  # fmt: skip
    print(f"(callgrind; {args.requests} requests against an idle server)")


if __name__ == "__main__":
    main()
