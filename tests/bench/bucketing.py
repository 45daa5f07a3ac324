# tests/bench/bucketing.py
#
# What the lab's response-time buckets (loadtest/swarm/bucketing.py) cost
# (`make bench-bucketing`): a program that prints figures, not a test.
#
#   - the workers': req/s of one Locust ShortUser (`locust -f
#     loadtest/locustfile.py --headless -u 1`) against one `threads` variant,
#     with the lab's buckets and with Locust's own (the same locustfile with
#     install() undone), in alternating rounds so that the neighbours' load
#     hits both; each round's figures and their ratio;
#   - the master's: the keys each run's fib(1) histogram held, and for the
#     worst case (every key up to 10 s, then one per second to 120 s), the
#     keys, the memory of one request name on a master (its histogram and
#     the 20 per-second copies Locust keeps for the charts), the bytes of one
#     worker report on the wire and the time to add it up, for both rules;
#     with a worker's CPU per request (Locust's log_request), which the
#     req/s figures, noisy on a shared machine, cannot resolve.

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.bench import this_commit
from tests.conftest import ROOT, start_server

LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
# The lab's locustfile with Locust's own buckets put back.
LOCUSTS_OWN = """
from locust import stats

own = stats.bucket_response_time, stats.StatsCSV._percentile_fields
from loadtest.locustfile import *  # the users, the shapes and the hooks
stats.bucket_response_time, stats.StatsCSV._percentile_fields = own
"""
# Locust first: it monkey-patches ssl, which this module's imports load.
MASTER_COST = "import locust; from tests.bench.bucketing import master_cost; master_cost()"
LONGEST_MS = 120_000.0  # the worst case's longest request: fib(45)'s scale


def locust_rate(locustfile: Path, port: int, seconds: float, json_file: Path) -> tuple[float, int]:
    """req/s of one ShortUser over its run (Locust's own count and clock),
    and how many keys its fib(1) histogram ended with."""
    subprocess.run(
        [Path(sys.executable).with_name("locust"), "-f", locustfile, "--headless",
         "-u", "1", "-t", f"{seconds:g}s", "--stop-timeout", "0", "ShortUser",
         "--host", f"tcp://127.0.0.1:{port}", "--fib-metrics-port", "0",
         "--only-summary", "--loglevel", "WARNING", "--json-file", json_file.with_suffix("")],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120, check=True,
    )  # fmt: skip
    (entry,) = (e for e in json.loads(json_file.read_text()) if e["name"] == "fib(1)")
    elapsed = entry["last_request_timestamp"] - entry["start_time"]
    return entry["num_requests"] / elapsed, len(entry["response_times"])


def master_cost() -> None:
    """A worker's CPU per request and the worst case on a master, both rules
    side by side (run in a process of its own: importing Locust
    monkey-patches it with gevent)."""
    import tracemalloc

    from locust import stats
    from locust.rpc import protocol

    from loadtest.swarm import bucketing

    wire_format: Any = protocol.Message  # what workers send the master (untyped in Locust)
    rules: dict[str, Callable[[float], float]] = {
        "Locust's own": stats.bucket_response_time,
        "the lab's": bucketing.bucket_ms,
    }

    def use(rule: Callable[[float], float]) -> None:
        stats.bucket_response_time = rule  # type: ignore[assignment]  # hinted int, takes floats

    def logged(times: list[float]) -> tuple[float, Any]:
        """Seconds per log_request over `times`, and the worker's fib(1) entry."""
        worker = stats.RequestStats(use_response_times_cache=False)
        start = time.perf_counter()
        for milliseconds in times:
            worker.log_request("fib", "fib(1)", milliseconds, 1)  # type: ignore[arg-type]
        return (time.perf_counter() - start) / len(times), worker.get("fib(1)", "fib")

    def master_sums(report: Any) -> tuple[float, Any]:
        """25 reports a second apart added up on a master (which caches 20
        per-second copies of the histogram for the charts): the median
        seconds per report, and the master's entry."""
        master = stats.RequestStats()
        entry = stats.StatsEntry(master, "fib(1)", "fib", use_response_times_cache=True)
        seconds = []
        for second in range(25):
            sent = wire_format("stats", report, "worker").serialize()
            incoming = stats.StatsEntry.unserialize(wire_format.unserialize(sent).data, master)
            incoming.last_request_timestamp = time.time() + second
            start = time.perf_counter()
            entry.extend(incoming)
            seconds.append(time.perf_counter() - start)
        return statistics.median(seconds), entry

    # A worker: fib(1)-like times, 0.02 .. 0.22 ms; best of 5 alternating repeats.
    fib1 = [0.02 + (i % 2000) / 10_000 for i in range(100_000)]
    per_request = dict.fromkeys(rules, math.inf)
    for _ in range(5):
        for label, rule in rules.items():
            use(rule)
            per_request[label] = min(per_request[label], logged(fib1)[0])
    # The worst case: 0.1 µs steps below 10 ms, then 0.01 % steps: every key of either rule.
    every = [step / 10_000 for step in range(100_000)]
    steps = math.ceil(math.log(LONGEST_MS / 10.0) / math.log(1.0001))
    every += [10.0 * 1.0001**i for i in range(steps)]
    for label, rule in rules.items():
        use(rule)
        report = logged(every)[1].serialize()
        wire = len(wire_format("stats", {"stats": [report]}, "worker").serialize())
        adding, _entry = master_sums(report)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        _seconds, entry = master_sums(report)
        memory = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        del entry
        print(
            f"| {label} | {per_request[label] * 1e9:,.0f} ns | {len(report['response_times'])} "
            f"| {memory / 1024:,.0f} KiB | {wire / 1024:,.1f} KiB | {adding * 1e6:,.0f} µs |"
        )


def made_by(argv: Sequence[str]) -> str:
    """What made these figures, and on what: the command, the commit (and
    whether the tree had changes), the machine and its load at the start."""
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"`{' '.join(['python -m tests.bench.bucketing', *argv])}`"
        f" at commit {this_commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())};"
        f" {platform.python_implementation()} {platform.python_version()}, Locust"
        f" {importlib.metadata.version('locust')}; {os.cpu_count()} CPUs; load average"
        f" at the start {load} (1, 5, 15 min)."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bucketing")
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--rounds", type=int, default=8)
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(arguments)
    print("# What Locust's sub-millisecond buckets cost\n")
    print(made_by(arguments) + "\n", flush=True)
    server = start_server("threads")
    rates: dict[str, list[float]] = {"lab": [], "own": []}
    keys: dict[str, list[int]] = {"lab": [], "own": []}
    with tempfile.TemporaryDirectory() as tmp:
        locusts_own = Path(tmp) / "locusts_own.py"
        locusts_own.write_text(LOCUSTS_OWN)
        files = {"lab": LOCUSTFILE, "own": locusts_own}
        try:
            locust_rate(LOCUSTFILE, server.port, 1.0, Path(tmp) / "warm.json")  # warm-up
            for round_ in range(args.rounds):
                # alternate which goes first, so that neither always runs second
                order = ("lab", "own") if round_ % 2 == 0 else ("own", "lab")
                for rule in order:
                    rate, count = locust_rate(
                        files[rule], server.port, args.seconds, Path(tmp) / f"{rule}.json"
                    )
                    rates[rule].append(rate)
                    keys[rule].append(count)
                lab, own = rates["lab"][-1], rates["own"][-1]
                print(
                    f"- round {round_ + 1}: the lab's buckets {lab:,.0f} req/s, Locust's own "
                    f"{own:,.0f} req/s, ratio {lab / own:.3f}",
                    flush=True,
                )
        finally:
            server.close()
    ratio = statistics.median(
        lab / own for lab, own in zip(rates["lab"], rates["own"], strict=True)
    )
    print()
    print("| one ShortUser, fib(1), against threads | req/s (median) | fib(1) keys (max) |")
    print("|---|---:|---:|")
    print(f"| the lab's buckets | {statistics.median(rates['lab']):,.0f} | {max(keys['lab'])} |")
    print(f"| Locust's own | {statistics.median(rates['own']):,.0f} | {max(keys['own'])} |")
    print(f"\nratio lab / Locust's own: {ratio:.3f} (median of paired rounds)")
    print(f"\nThe worst case (every key up to {LONGEST_MS / 1000:g} s), one request name:\n")
    print(
        "| rule | a worker's log_request (fib(1)) | keys | memory on a master "
        "| one report on the wire | the master adding it up |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    sys.stdout.flush()
    subprocess.run([sys.executable, "-c", MASTER_COST], cwd=ROOT, check=True, timeout=300)


if __name__ == "__main__":
    main()
