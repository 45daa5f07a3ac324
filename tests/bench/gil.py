# tests/bench/gil.py
#
# The GIL probe benchmark (`python -m tests.bench.gil`): a program that prints
# figures, not a test. It sets the probe of services/core/gil.py (gilknocker,
# 1 ms knocks) beside the pure-Python alternative it was chosen over (a daemon
# thread that sleeps 1 ms and counts its lateness as GIL wait), on:
#
#   1. accuracy: the wait share each reads while the process idles, while a
#      second thread spins pure Python, while a subprocess spins, and while a
#      thread hashes with the GIL released (1.5 s each);
#   2. the idle cost: CPU seconds per wall second of this process, idle,
#      without a probe and with each (--idle seconds each, 5 by default);
#   3. the cost to CPU-bound Python: iterations per second of a pure-Python
#      loop in the main thread, without and with each probe, in alternating
#      slots (--rounds of them, --slot seconds each), so drift on this shared
#      machine hits every column alike.
#
# About 50 s with the defaults. Output is Markdown.
#
# With --out DIR it goes on to the servers' side (tests/bench/server.py
# --gil-probe: fib(1) side by side and the convoy, probe on and off, on
# threads and coro; a few minutes more) and writes the whole report:
# DIR/report.json, every figure with the parameters and the provenance
# record, and DIR/report.md, rendered from that JSON alone by render();
# --render DIR renders it again.

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from loadtest.compare.verdicts import COLLAPSE_FACTOR
from loadtest.talk.perf1 import positive
from loadtest.toolbox import provenance
from loadtest.toolbox.formats import plural
from services.core.gil import POLL_MICROS, GilProbe, gil_probe_available
from tests.bench import Report, render_again, write_report
from tests.bench import server as bench_server

SCHEMA = 1  # report.json's shape, in its provenance record (docs/design.md §6.11)
KIND = "gil-probe"


class Probe(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def totals(self) -> tuple[float, float]: ...


class SleepLatenessProbe:
    """The pure-Python alternative: a daemon thread sleeps `interval`, then
    needs the GIL to go on; how late it wakes is counted as GIL wait. The
    lateness also holds the kernel's wake-up latency (its timer slack is set
    to 1 ns to keep that small), which is its floor on an idle process."""

    def __init__(self, interval: float = POLL_MICROS / 1e6) -> None:
        self.interval = interval
        self._totals = (0.0, 0.0)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="gil-sleep-probe", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None

    def totals(self) -> tuple[float, float]:
        return self._totals

    def _run(self) -> None:
        with_libc = ctypes.CDLL(None)
        with_libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK: 1 ns for this thread
        wait, probed = self._totals
        clock, sleep, interval = time.monotonic, time.sleep, self.interval
        while not self._stopping.is_set():
            before = clock()
            sleep(interval)
            after = clock()
            wait += after - before - interval
            probed += after - before
            self._totals = (wait, probed)  # one store: readers see a consistent pair


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def hash_without_gil(seconds: float) -> None:
    data = b"x" * (1 << 24)  # hashlib releases the GIL for inputs over 2 KiB
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        hashlib.sha256(data).digest()


def spin_in_subprocess(seconds: float) -> None:
    code = f"import time\nd = time.monotonic() + {seconds}\nwhile time.monotonic() < d: pass"
    subprocess.run([sys.executable, "-c", code], check=True)


LOADS: dict[str, Callable[[float], None] | None] = {
    "idle": None,
    "a thread spins Python": spin,
    "a subprocess spins": spin_in_subprocess,
    "a thread hashes, GIL released": hash_without_gil,
}


def run_load(load: Callable[[float], None] | None, seconds: float) -> None:
    if load is None:
        time.sleep(seconds)
    else:
        worker = threading.Thread(target=load, args=(seconds,))
        worker.start()
        worker.join()


def share_between(before: tuple[float, float], after: tuple[float, float]) -> float:
    """rate(wait) / rate(probe) between two readings of (wait, probe) seconds."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1e-9)


def idle_cpu_per_second(probe: Probe | None, seconds: float) -> float:
    if probe is not None:
        probe.start()
        time.sleep(0.3)
    cpu_before, wall_before = process_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    cpu = process_cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    if probe is not None:
        probe.stop()
    return cpu / wall


def loop_rate(seconds: float) -> float:
    """Iterations per second of a pure-Python loop in this thread."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10_000):
            done += 1
        if time.perf_counter() >= deadline:
            return done / (time.perf_counter() - start)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


PROBES: dict[str, Callable[[], Probe]] = {
    "gilknocker (GilProbe)": lambda: GilProbe("bench"),
    "pure Python, 1 ms sleep": SleepLatenessProbe,
}
NO_PROBE = "none"
SHARE_NOISE = 0.01  # wait shares closer than this read alike
SHORT = {"gilknocker (GilProbe)": "gilknocker", "pure Python, 1 ms sleep": "the pure-Python probe"}


def short(name: str) -> str:
    return SHORT.get(name, name)


def accuracy_head(probes: Sequence[str], seconds: float) -> list[str]:
    return [f"| load ({seconds:g} s) | " + " | ".join(probes) + " |",
            "|---|" + "---:|" * len(probes)]  # fmt: skip


def accuracy_row(row: dict[str, Any]) -> str:
    return f"| {row['load']} | " + " | ".join(f"{s:.4f}" for s in row["shares"].values()) + " |"


IDLE_HEAD = ["| probe | CPU s / s | % of one core |", "|---|---:|---:|"]


def idle_row(row: dict[str, Any]) -> str:
    return f"| {row['probe']} | {row['cpu_per_second']:.5f} | {row['percent_of_one_core']:.2f} |"


LOOP_HEAD = [
    "| probe | iterations/s (mean) | per round | vs none | wait share read meanwhile |",
    "|---|---:|---|---:|---:|",
]


def loop_row(row: dict[str, Any]) -> str:
    per_round = ", ".join(f"{rate / 1e6:.1f} M" for rate in row["rates"])
    share = "–" if row["wait_share"] is None else f"{row['wait_share']:.3f}"
    return (
        f"| {row['probe']} | {row['mean'] / 1e6:.2f} M | {per_round} | {row['vs_none']:.3f} "
        f"| {share} |"
    )


def measure_process(args: argparse.Namespace) -> Report:
    """The probes in this process: accuracy, idle cost, a loop's rate. Prints
    each table as it fills; returns every figure."""
    part: Report = {
        "parameters": {
            "accuracy_seconds": args.accuracy,
            "idle_seconds": args.idle,
            "slot_seconds": args.slot,
            "rounds": args.rounds,
            "switch_interval_ms": sys.getswitchinterval() * 1000,
            "poll_micros": POLL_MICROS,
            "arch": platform.machine(),
        },
        "load_average": {"start": load_average()},
        "probes": list(PROBES),
        "accuracy": [],
        "idle": [],
        "loop": [],
    }
    start = " ".join(f"{value:.2f}" for value in part["load_average"]["start"])
    print(f"# GIL probe benchmark\n\nload average {start} at start; switch interval "
          f"{sys.getswitchinterval() * 1000:g} ms\n")  # fmt: skip
    print("## Wait share read (rate(wait) / rate(probe))\n")
    print("\n".join(accuracy_head(list(PROBES), args.accuracy)))
    running = {name: make() for name, make in PROBES.items()}
    for probe in running.values():
        probe.start()
    time.sleep(0.3)
    for load_name, load in LOADS.items():
        # Both probes run at once here, so each knocks on a GIL the other also wants
        # (briefly): the figures are each probe's reading, not its cost.
        before = {name: probe.totals() for name, probe in running.items()}
        run_load(load, args.accuracy)
        shares = {name: share_between(before[name], p.totals()) for name, p in running.items()}
        part["accuracy"].append({"load": load_name, "shares": shares})
        print(accuracy_row(part["accuracy"][-1]), flush=True)
    for probe in running.values():
        probe.stop()

    print(f"\n## Idle process: CPU seconds per wall second ({args.idle:g} s each)\n")
    print("\n".join(IDLE_HEAD))
    rows: list[tuple[str, Callable[[], Probe] | None]] = [(NO_PROBE, None), *PROBES.items()]
    for name, make in rows:
        per_second = idle_cpu_per_second(make() if make else None, args.idle)
        part["idle"].append({"probe": name, "cpu_per_second": per_second,
                             "percent_of_one_core": per_second * 100})  # fmt: skip
        print(idle_row(part["idle"][-1]), flush=True)

    print(
        f"\n## CPU-bound pure-Python loop in the main thread: iterations/s "
        f"({plural(args.rounds, 'round')} of {args.slot:g} s slots, alternating)\n", flush=True
    )  # fmt: skip
    loop_rate(args.slot)  # warm-up: the first slot of a process runs slower
    rates: dict[str, list[float]] = {name: [] for name, _ in rows}
    shares_read: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(args.rounds):
        for name, make in rows:
            if make is None:
                rates[name].append(loop_rate(args.slot))
                continue
            slot_probe = make()
            slot_probe.start()
            time.sleep(0.25)
            at_start = slot_probe.totals()
            rates[name].append(loop_rate(args.slot))
            shares_read[name].append(share_between(at_start, slot_probe.totals()))
            slot_probe.stop()
    baseline = statistics.fmean(rates[NO_PROBE])
    print("\n".join(LOOP_HEAD))
    for name, _ in rows:
        mean = statistics.fmean(rates[name])
        part["loop"].append({
            "probe": name, "rates": rates[name], "mean": mean, "vs_none": mean / baseline,
            "wait_share": statistics.fmean(shares_read[name]) if shares_read[name] else None,
        })  # fmt: skip
        print(loop_row(part["loop"][-1]))
    part["load_average"]["end"] = load_average()
    print(f"\nload average {part['load_average']['end'][0]:.2f} at the end")
    return part


# -- the report: figures to sentences, JSON to Markdown (nothing measured) -----

# A sentence, and what it finds: "noise" (no effect beyond it), "differs"
# (an effect beyond it), "unjudged" (too few rounds to tell) or "info" (a
# figure with nothing to judge it against).
Finding = tuple[str, str]


def process_findings(part: Report) -> list[Finding]:
    idle = {row["probe"]: row["percent_of_one_core"] for row in part["idle"]}
    loop = {row["probe"]: row for row in part["loop"]}
    probes = part["probes"]
    found: list[Finding] = [(
        f"Idle, {short(probes[0])} costs {idle[probes[0]]:.2f} % of one core ("
        + ", ".join(f"{short(name)}: {idle[name]:.2f} %" for name in [*probes[1:], NO_PROBE])
        + f"; {part['parameters']['idle_seconds']:g} s each).", "info",
    )]  # fmt: skip
    rounds = part["parameters"]["rounds"]
    without = loop[NO_PROBE]["rates"]

    def millions(rates: list[float]) -> str:
        return f"{min(rates) / 1e6:.1f}-{max(rates) / 1e6:.1f} M/s"

    for name in probes:
        rates = loop[name]["rates"]
        lead = (
            f"With {short(name)} on, a CPU-bound Python loop runs at {loop[name]['vs_none']:.3f} "
            "of its rate without a probe"
        )
        if rounds < 2:
            found.append((f"{lead}: one round, no spread to judge by.", "unjudged"))
            continue
        apart = max(rates) < min(without) or min(rates) > max(without)
        overlap = "do not overlap" if apart else "overlap"
        judged = "a difference beyond the noise" if apart else "within the noise"
        found.append((
            f"{lead} (mean of {plural(rounds, 'round')}): its rounds ({millions(rates)}) "
            f"{overlap} those "
            f"without a probe ({millions(without)}), {judged}.",
            "differs" if apart else "noise",
        ))  # fmt: skip
    shares = {row["load"]: row["shares"][probes[0]] for row in part["accuracy"]}
    spinning, idle_share = shares.get("a subprocess spins"), shares.get("idle")
    if spinning is not None and idle_share is not None:
        found.append((
            f"With a subprocess spinning on another core (no thread of this process wants the "
            f"GIL) {short(probes[0])} reads a wait share of {spinning:.3f}, idle {idle_share:.3f}"
            + (": what it reads beyond idle there is its own wake-ups waiting for a core, not "
               "for the GIL." if spinning - idle_share > SHARE_NOISE
               else f": no more than idle (within {SHARE_NOISE})."),
            "info",
        ))  # fmt: skip
    return found


def judge_convoy(variant: str, convoy: dict[str, Any]) -> Finding:
    """Does the convoy factor move more between rounds than between probe on and off?"""
    on, off = convoy["on"], convoy["off"]
    medians = (
        f"medians {bench_server.times(on['median'])} on, {bench_server.times(off['median'])} off"
    )
    if any(value is None for value in (*on.values(), *off.values())):
        return f"The `{variant}` convoy starved a short client ({medians}).", "unjudged"
    low, high = min(on["min"], off["min"]), max(on["max"], off["max"])
    between = abs(on["median"] - off["median"])
    ranges = f"{on['max'] - on['min']:.1f}× on and {off['max'] - off['min']:.1f}× off"
    within = min(on["max"] - on["min"], off["max"] - off["min"])
    if within == 0:
        return (f"The `{variant}` convoy factor reads {low:.1f}-{high:.1f}× ({medians}): one "
                "round each, no spread to judge by.", "unjudged")  # fmt: skip
    if between < within:
        return (
            f"The `{variant}` convoy factor moves more from round to round ({low:.1f}-"
            f"{high:.1f}×) than between probe on and off ({medians}: {between:.1f}× apart, less "
            f"than the range of either setting's rounds, {ranges}).", "noise",
        )  # fmt: skip
    return (
        f"The `{variant}` convoy factor differs between probe on and off ({medians}: "
        f"{between:.1f}× apart) by more than the range of one setting's rounds ({ranges}; "
        f"all rounds {low:.1f}-{high:.1f}×).", "differs",
    )  # fmt: skip


def convoy_rule(part: Report) -> Finding:
    """Would the probe change the convoy verdict (before/during >= COLLAPSE_FACTOR)?"""
    split = []
    for entry in part["variants"]:
        factors = [row["factor"] for row in entry["convoy"]["by_round"]]
        sides = {factor is None or factor >= COLLAPSE_FACTOR for factor in factors}
        if len(sides) > 1:
            split.append(f"`{entry['variant']}`")
    if split:
        return (
            f"Rounds of {' and '.join(split)} fall on both sides of the convoy rule's "
            f"{COLLAPSE_FACTOR:g}× (loadtest/compare/verdicts.py): its verdict could change.",
            "differs",
        )
    return (
        f"No verdict can change: every convoy round, probe on or off, lies on the same side of "
        f"the convoy rule's {COLLAPSE_FACTOR:g}× (loadtest/compare/verdicts.py) for each variant.",
        "noise",
    )


def servers_findings(part: Report) -> list[Finding]:
    band = bench_server.MACHINE_BAND
    rates, beyond = [], []
    for entry in part["variants"]:
        fib1 = entry["fib1"]
        rates.append(f"{fib1['ratio']['median']:.3f} (`{entry['variant']}`, "
                     f"{bench_server.span(fib1)})")  # fmt: skip
        if bench_server.placement(fib1["ratio"]["median"], band) != "within":
            beyond.append(f"`{entry['variant']}`")
    judged = (f"beyond {bench_server.MACHINE_NOISE} for {' and '.join(beyond)}" if beyond
              else f"within {bench_server.MACHINE_NOISE}")  # fmt: skip
    found: list[Finding] = [(
        f"fib(1) req/s with the probe are {' and '.join(rates)} of those without it, side by "
        f"side in one run: {judged}.", "differs" if beyond else "noise",
    )]  # fmt: skip
    found += [judge_convoy(entry["variant"], entry["convoy"]) for entry in part["variants"]]
    found.append(convoy_rule(part))
    return found


def verdict(report: Report) -> str:
    """The Verdict paragraph, every figure and word of it from the report's figures."""
    found = [
        *(servers_findings(report["servers"]) if "servers" in report else []),
        *(process_findings(report["process"]) if "process" in report else []),
    ]
    differs = [sentence for sentence, status in found if status == "differs"]
    unjudged = [sentence for sentence, status in found if status == "unjudged"]
    if differs:
        lead = f"the probe shows an effect beyond the noise in {len(differs)} of these figures."
    elif unjudged:
        lead = (f"no cost measured, but {len(unjudged)} of these figures had too few rounds "
                "to judge.")  # fmt: skip
    else:
        lead = "no cost to throughput measurable against this machine's noise."
    return " ".join([f"**Verdict:** {lead}", *(sentence for sentence, _status in found)])


def method(report: Report) -> str:
    text = []
    if "process" in report:
        parameters = report["process"]["parameters"]
        text.append(
            f"In one process ({parameters['arch']}, switch interval "
            f"{parameters['switch_interval_ms']:g} ms), the probe of services/core/gil.py "
            f"(gilknocker's native thread, {parameters['poll_micros'] / 1000:g} ms knocks, "
            "docs/design.md §4) beside the pure-Python one it was chosen over: the wait share "
            f"each reads under four loads ({parameters['accuracy_seconds']:g} s each), this "
            f"process's CPU idle ({parameters['idle_seconds']:g} s each), and a pure-Python "
            "loop's rate in "
            f"{plural(parameters['rounds'], 'alternating round')} of "
            f"{parameters['slot_seconds']:g} s "
            f"slots. {bench_server.load_text(report['process']['load_average'])}"
        )
    if "servers" in report:
        parameters = report["servers"]["parameters"]
        variants = " and ".join(f"`{variant}`" for variant in parameters["variants"])
        text.append(
            f"Then {variants}, probe on against `--gil-probe off`: fib(1) with "
            f"{plural(parameters['pairs'], 'server')} of each side by side, "
            f"{plural(parameters['rounds'], 'round')} "
            f"of {parameters['round_requests']} requests per server; and the convoy (fib(1) "
            f"rate for {parameters['convoy_seconds']:g} s before and during fib("
            f"{parameters['convoy_long_n']}) back to back), "
            f"{plural(parameters['convoy_rounds'], 'round')} of one server probe on and one off, "
            "alternately. "
            f"{bench_server.load_text(report['servers']['load_average'])}"
        )
    return " ".join(text)


def process_lines(part: Report) -> list[str]:
    parameters = part["parameters"]
    return [
        "## The probe in one process", "",
        "### Wait share read (rate(wait) / rate(probe))", "",
        *accuracy_head(part["probes"], parameters["accuracy_seconds"]),
        *(accuracy_row(row) for row in part["accuracy"]), "",
        f"### Idle process: CPU seconds per wall second ({parameters['idle_seconds']:g} s each)",
        "", *IDLE_HEAD, *(idle_row(row) for row in part["idle"]), "",
        "### CPU-bound pure-Python loop in the main thread: iterations/s "
        f"({plural(parameters['rounds'], 'round')} of {parameters['slot_seconds']:g} s slots, "
        "alternating)",
        "", *LOOP_HEAD, *(loop_row(row) for row in part["loop"]), "",
    ]  # fmt: skip


def servers_lines(part: Report) -> list[str]:
    parameters = part["parameters"]
    lines = ["## The servers: fib(1) side by side and the convoy", ""]
    for entry in part["variants"]:
        variant, convoy = entry["variant"], entry["convoy"]
        lines += [
            f"### `{variant}`: fib(1), {plural(parameters['pairs'], 'server')} each, side by side",
            "",
            *bench_server.comparison_lines(entry["fib1"]), "",
            f"### `{variant}`: the convoy (fib(1) rate before / during "
            f"fib({parameters['convoy_long_n']}) back to back), probe on and off alternately", "",
            "| round | probe | short req/s before | during | before / during |",
            "|---:|---|---:|---:|---:|",
            *(bench_server.convoy_row(row) for row in convoy["by_round"]), "",
            bench_server.convoy_median_line(convoy), "",
        ]  # fmt: skip
    return lines


def render(report: Report) -> str:
    """report.md from report.json alone."""
    return "\n".join([
        "# What the GIL probe costs", "",
        provenance.markdown_line(report["provenance"]), "",
        method(report), "",
        verdict(report) + " The probe is on everywhere, `make compare` included, and the "
        "compare report's GIL column comes from it; `FIB_GIL_PROBE=off` (`--gil-probe off`) "
        "turns it off.", "",
        *(process_lines(report["process"]) if "process" in report else []),
        *(servers_lines(report["servers"]) if "servers" in report else []),
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.gil")
    parser.add_argument("--idle", type=positive(float), default=5.0,
                        help="seconds of each idle slot [5]")  # fmt: skip
    parser.add_argument("--slot", type=positive(float), default=1.5,
                        help="seconds of each loop slot [1.5]")  # fmt: skip
    parser.add_argument("--rounds", type=positive(int), default=3,
                        help="alternations of the loop slots [3]")  # fmt: skip
    parser.add_argument("--accuracy", type=positive(float), default=1.5,
                        help="seconds of each load [1.5]")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help="then the servers' side too (server.py --gil-probe), and write the whole report: "
        "DIR/report.json and DIR/report.md",
    )  # fmt: skip
    parser.add_argument("--render", type=Path, metavar="DIR",
                        help="only render DIR/report.md again from DIR/report.json")  # fmt: skip
    servers = parser.add_argument_group("the servers' side (with --out)")
    servers.add_argument("--server-rounds", type=positive(int), default=6,
                         help="rounds of fib(1) side by side [6]")  # fmt: skip
    servers.add_argument("--round-requests", type=positive(int), default=4000,
                         help="fib(1) requests per server in each round [4000]")  # fmt: skip
    servers.add_argument("--pairs", type=positive(int), default=4,
                         help="servers of each kind, side by side [4]")  # fmt: skip
    servers.add_argument("--convoy-rounds", type=positive(int),
                         help="convoy rounds of probe on and off [server rounds / 2]")  # fmt: skip
    args = parser.parse_args(argv)
    if args.render is not None:
        print(f"wrote {render_again(args.render, render)}")
        return

    if (reason := gil_probe_available()) is not None:
        sys.exit(f"bench_gil: {reason}")
    record = provenance.begin(KIND, SCHEMA)
    report: Report = {"process": measure_process(args)}
    if args.out is None:
        print(f"\n{verdict(report)}")
        return
    print(f"\n# The servers: `--gil-probe off` against on, {args.server_rounds} rounds of "
          f"{args.round_requests} interleaved fib(1) requests per server", flush=True)  # fmt: skip
    report["servers"] = bench_server.bench_gil_probe(
        bench_server.GIL_PROBE_VARIANTS, args.server_rounds, args.round_requests, args.pairs,
        args.convoy_rounds or args.server_rounds // 2 or 1,
    )  # fmt: skip
    report["provenance"] = record.record()
    for path in write_report(args.out, report, render):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
