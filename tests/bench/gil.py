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

from __future__ import annotations

import argparse
import ctypes
import datetime
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
from typing import Protocol

from services.core.gil import POLL_MICROS, GilProbe, gil_probe_available


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.gil")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of each idle slot")
    parser.add_argument("--slot", type=float, default=1.5, help="seconds of each loop slot")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the loop slots")
    parser.add_argument("--accuracy", type=float, default=1.5, help="seconds of each load")
    args = parser.parse_args(argv)

    if (reason := gil_probe_available()) is not None:
        sys.exit(f"bench_gil: {reason}")
    probes: dict[str, Callable[[], Probe]] = {
        "gilknocker (GilProbe)": lambda: GilProbe("bench"),
        "pure Python, 1 ms sleep": SleepLatenessProbe,
    }
    load1, load5, load15 = os.getloadavg()
    print(f"# GIL probe benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"\n{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load1:.2f} {load5:.2f} "
        f"{load15:.2f} at start; switch interval {sys.getswitchinterval() * 1000:g} ms\n"
    )

    print("## Wait share read (rate(wait) / rate(probe))\n")
    print(f"| load ({args.accuracy:g} s) | " + " | ".join(probes) + " |")
    print("|---|" + "---:|" * len(probes))
    running = {name: make() for name, make in probes.items()}
    for probe in running.values():
        probe.start()
    time.sleep(0.3)
    for load_name, load in LOADS.items():
        # Both probes run at once here, so each knocks on a GIL the other also wants
        # (briefly): the figures are each probe's reading, not its cost.
        before = {name: probe.totals() for name, probe in running.items()}
        run_load(load, args.accuracy)
        cells = [f"{share_between(before[name], p.totals()):.4f}" for name, p in running.items()]
        print(f"| {load_name} | " + " | ".join(cells) + " |", flush=True)
    for probe in running.values():
        probe.stop()

    print(f"\n## Idle process: CPU seconds per wall second ({args.idle:g} s each)\n")
    print("| probe | CPU s / s | % of one core |")
    print("|---|---:|---:|")
    rows: list[tuple[str, Callable[[], Probe] | None]] = [("none", None), *probes.items()]
    for name, make in rows:
        per_second = idle_cpu_per_second(make() if make else None, args.idle)
        print(f"| {name} | {per_second:.5f} | {per_second * 100:.2f} |", flush=True)

    print(
        f"\n## CPU-bound pure-Python loop in the main thread: iterations/s "
        f"({args.rounds} rounds of {args.slot:g} s slots, alternating)\n"
    )
    loop_rate(args.slot)  # warm-up: the first slot of a process runs slower
    rates: dict[str, list[float]] = {name: [] for name, _ in rows}
    shares: dict[str, list[float]] = {name: [] for name, _ in rows}
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
            shares[name].append(share_between(at_start, slot_probe.totals()))
            slot_probe.stop()
    baseline = statistics.fmean(rates["none"])
    print("| probe | iterations/s (mean) | per round | vs none | wait share read meanwhile |")
    print("|---|---:|---|---:|---:|")
    for name, _ in rows:
        mean = statistics.fmean(rates[name])
        per_round = ", ".join(f"{rate / 1e6:.1f} M" for rate in rates[name])
        share = f"{statistics.fmean(shares[name]):.3f}" if shares[name] else "–"
        print(f"| {name} | {mean / 1e6:.2f} M | {per_round} | {mean / baseline:.3f} | {share} |")
    load1, _, _ = os.getloadavg()
    print(f"\nload average {load1:.2f} at the end (2 shared cores: other work shows here)")


if __name__ == "__main__":
    main()
