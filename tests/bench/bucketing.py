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
#
# With --out DIR: DIR/report.json (every figure, the parameters and the
# provenance record) and DIR/report.md, rendered from that JSON alone by
# render(); --render DIR renders it again.

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loadtest.talk.perf1 import positive
from loadtest.toolbox import provenance
from loadtest.toolbox.formats import plural
from tests.bench import Report, render_again, spread, write_report
from tests.conftest import ROOT, start_server

SCHEMA = 1  # report.json's shape, in its provenance record (docs/design.md §6.11)
KIND = "bucketing-cost"
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
WORST_CASE_MARK = "worst case: "  # master_cost's line of JSON
LONGEST_MS = 120_000.0  # the worst case's longest request: fib(45)'s scale
WARM_UP_SECONDS = 1.0
CHART_COPIES = 20  # the per-second copies of a histogram Locust's master keeps for its charts
RULES = {"lab": "the lab's buckets", "own": "Locust's own"}
WORST_CASE_KEYS = {"Locust's own": "own", "the lab's": "lab"}  # master_cost's labels


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
    monkey-patches it with gevent); printed as one JSON line."""
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
    found = []
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
        found.append({
            "rule": label, "key": WORST_CASE_KEYS[label],
            "log_request_ns": per_request[label] * 1e9,
            "keys": len(report["response_times"]), "memory_kib": memory / 1024,
            "wire_kib": wire / 1024, "adding_us": adding * 1e6,
        })  # fmt: skip
    print(f"{WORST_CASE_MARK}{json.dumps(found)}")


def worst_case() -> list[dict[str, Any]]:
    """master_cost's figures, from a process of its own."""
    run = subprocess.run([sys.executable, "-c", MASTER_COST], cwd=ROOT, check=True, timeout=300,
                         capture_output=True, text=True)  # fmt: skip
    (line,) = (line for line in run.stdout.splitlines() if line.startswith(WORST_CASE_MARK))
    rows: list[dict[str, Any]] = json.loads(line.removeprefix(WORST_CASE_MARK))
    return rows


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def round_line(row: dict[str, Any]) -> str:
    return (
        f"- round {row['round']}: the lab's buckets {row['lab']:,.0f} req/s, Locust's own "
        f"{row['own']:,.0f} req/s, ratio {row['ratio']:.3f}"
    )


def measure(seconds: float, rounds: int) -> Report:
    """Alternating rounds of one ShortUser with each rule, then the worst case
    on a master; prints each round as it ends."""
    report: Report = {
        "parameters": {"seconds": seconds, "rounds": rounds, "warm_up_seconds": WARM_UP_SECONDS,
                       "longest_ms": LONGEST_MS, "chart_copies": CHART_COPIES},
        "locust": importlib.metadata.version("locust"),
        "load_average": {"start": load_average()},
        "by_round": [],
    }  # fmt: skip
    server = start_server("threads")
    with tempfile.TemporaryDirectory() as tmp:
        locusts_own = Path(tmp) / "locusts_own.py"
        locusts_own.write_text(LOCUSTS_OWN)
        files = {"lab": LOCUSTFILE, "own": locusts_own}
        try:
            locust_rate(LOCUSTFILE, server.port, WARM_UP_SECONDS, Path(tmp) / "warm.json")
            for round_ in range(rounds):
                # alternate which goes first, so that neither always runs second
                order = ("lab", "own") if round_ % 2 == 0 else ("own", "lab")
                row: dict[str, Any] = {"round": round_ + 1, "first": order[0]}
                for rule in order:
                    rate, keys = locust_rate(files[rule], server.port, seconds,
                                             Path(tmp) / f"{rule}.json")  # fmt: skip
                    row |= {rule: rate, f"{rule}_keys": keys}
                row["ratio"] = row["lab"] / row["own"]
                report["by_round"].append(row)
                print(round_line(row), flush=True)
        finally:
            server.close()
    rows = report["by_round"]
    report["rate_median"] = {rule: statistics.median(row[rule] for row in rows) for rule in RULES}
    report["keys_max"] = {rule: max(row[f"{rule}_keys"] for row in rows) for rule in RULES}
    report["ratio"] = spread([row["ratio"] for row in rows])
    print(f"\nratio lab / Locust's own: {report['ratio']['median']:.3f} (median of paired rounds)")
    print("the worst case on a master ...", flush=True)
    report["worst_case"] = worst_case()
    report["load_average"]["end"] = load_average()
    return report


# -- the report: figures to sentences, JSON to Markdown (nothing measured) -----


def rate_judgement(report: Report) -> str:
    """What the paired req/s rounds can say, by where 1.000 lies among them."""
    ratio, rounds = report["ratio"], report["parameters"]["rounds"]
    if rounds < 2:
        return "one round: no spread to judge by"
    if ratio["min"] <= 1.0 <= ratio["max"]:
        return (
            "the rounds straddle 1.000, so the req/s figures cannot resolve the cost; a "
            "worker's CPU per request can"
        )
    if ratio["max"] < 1.0:
        return "every round ran slower with the lab's buckets: a cost the req/s figures resolve"
    return "every round ran faster with the lab's buckets"


def result(report: Report) -> str:
    """The Result paragraph, every figure in it from the report's figures."""
    parameters, rate, keys = report["parameters"], report["rate_median"], report["keys_max"]
    ratio = report["ratio"]
    worst = {row["key"]: row for row in report["worst_case"]}
    lab, own = worst["lab"], worst["own"]
    more = lab["log_request_ns"] - own["log_request_ns"]
    return (
        f"**Result:** one ShortUser's fib(1) req/s against one `threads` server, "
        f"{plural(parameters['rounds'], 'alternating pair')} of {parameters['seconds']:g} s "
        "runs: "
        f"{rate['lab']:,.0f} with the lab's buckets and {rate['own']:,.0f} with Locust's own "
        f"(medians), a median paired ratio of {ratio['median']:.3f} ({ratio['min']:.3f}-"
        f"{ratio['max']:.3f} by round): {rate_judgement(report)}. A worker's `log_request` of "
        f"fib(1) takes {lab['log_request_ns'] / 1000:.2f} µs instead of "
        f"{own['log_request_ns'] / 1000:.2f} µs ({more:+,.0f} ns a request). On a master, the "
        f"worst case of one request name (every key up to {parameters['longest_ms'] / 1000:g} s: "
        f"{lab['keys']} keys, Locust's {own['keys']}) holds {lab['memory_kib']:,.0f} KiB instead "
        f"of {own['memory_kib']:,.0f} KiB, with the {parameters['chart_copies']} per-second "
        f"copies Locust keeps for the charts; a worker's report of it is {lab['wire_kib']:.1f} "
        f"KiB instead of {own['wire_kib']:.1f} KiB and adds up in {lab['adding_us']:,.0f} µs "
        f"instead of {own['adding_us']:,.0f} µs. A {parameters['seconds']:g} s run of one "
        f"ShortUser fills at most {keys['lab']} keys (Locust's: {keys['own']})."
    )


def worst_case_row(row: dict[str, Any]) -> str:
    return (
        f"| {row['rule']} | {row['log_request_ns']:,.0f} ns | {row['keys']} "
        f"| {row['memory_kib']:,.0f} KiB | {row['wire_kib']:,.1f} KiB "
        f"| {row['adding_us']:,.0f} µs |"
    )


def render(report: Report) -> str:
    """report.md from report.json alone."""
    parameters, rate, keys = report["parameters"], report["rate_median"], report["keys_max"]
    load = report["load_average"]

    def three(values: list[float]) -> str:
        return " ".join(f"{value:.2f}" for value in values)

    lines = [
        "# What Locust's sub-millisecond buckets cost", "",
        provenance.markdown_line(report["provenance"]), "",
        f"Locust {report['locust']}; one ShortUser against one `threads` server, the lab's "
        "buckets and Locust's own in alternating order, after a "
        f"{parameters['warm_up_seconds']:g} s warm-up; load average (1, 5, 15 min) "
        f"{three(load['start'])} at the start, {three(load['end'])} at the end.", "",
        result(report), "",
        *(round_line(row) for row in report["by_round"]), "",
        "| one ShortUser, fib(1), against threads | req/s (median) | fib(1) keys (max) |",
        "|---|---:|---:|",
        *(f"| {RULES[rule]} | {rate[rule]:,.0f} | {keys[rule]} |" for rule in RULES), "",
        f"ratio lab / Locust's own: {report['ratio']['median']:.3f} (median of paired rounds)", "",
        f"The worst case (every key up to {parameters['longest_ms'] / 1000:g} s), one request "
        "name:", "",
        "| rule | a worker's log_request (fib(1)) | keys | memory on a master "
        "| one report on the wire | the master adding it up |",
        "|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    return "\n".join([*lines, *(worst_case_row(row) for row in report["worst_case"]), ""])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bucketing")
    parser.add_argument("--seconds", type=positive(float), default=3.0, help="per run [3]")
    parser.add_argument("--rounds", type=positive(int), default=8, help="pairs of runs [8]")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write DIR/report.json and DIR/report.md")  # fmt: skip
    parser.add_argument("--render", type=Path, metavar="DIR",
                        help="only render DIR/report.md again from DIR/report.json")  # fmt: skip
    args = parser.parse_args(argv)
    if args.render is not None:
        print(f"wrote {render_again(args.render, render)}")
        return
    record = provenance.begin(KIND, SCHEMA)
    print("# What Locust's sub-millisecond buckets cost\n", flush=True)
    report = measure(args.seconds, args.rounds)
    report["provenance"] = record.record()
    if args.out is None:
        print(f"\n{result(report)}")
        return
    for path in write_report(args.out, report, render):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
