# loadtest/toolbox/machine.py
#
# Is anyone else using the machine? (docs/design.md §6.) The convoy's depth
# depends on whether a core is free for the server's other threads, so a run
# measured while other processes kept a core busy is not the same
# experiment. The machine's busy CPU comes from /proc/stat (every CPU, steal
# included); what the lab itself used is taken away from it (the server's
# fib_cpu_seconds_total, the load engine child's and the runner's own CPU);
# what is left is foreign CPU. Above NOISY_FOREIGN_CORES on average a run is
# marked noisy.
#
# Busy is the wall time of every CPU minus its idle time, not the sum of
# /proc/stat's user, system, ... columns: those are sampled at each timer
# tick, and a ping-pong between the server and the load generator (or the
# GIL's 5 ms timeouts) runs between ticks, so they miss 0.1-0.3 core of it
# (measured on a 250 Hz kernel), while idle time is counted exactly (NO_HZ)
# and the processes' own CPU too (rusage).
#
# Also the CPU lists that pin servers and load generators (docs/design.md
# §6.3), and every process alive, read with services.core.cpu's parser of
# /proc/PID/stat.

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from services.core.cpu import CLOCK_TICKS, ProcessStat, own_cpu_seconds, process_stat

PROC_STAT = Path("/proc/stat")
# Other processes using a tenth of a core on average mark a run noisy: a
# quiet comparison's runs read a few hundredths of a core (the foreign-CPU
# column of docs/results/talk), while one or two busy cores change the
# threads convoy itself (docs/results/one-busy-core, two-busy-cores). A
# tenth of a core stays above the quiet readings; with more cores it errs on
# the side of "rerun".
NOISY_FOREIGN_CORES = 0.1
BUSY_SAMPLE_SECONDS = 1.0


class ProcStatError(ValueError):
    """/proc/stat does not have the expected `cpu` line."""


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time since boot, all CPUs summed, in seconds."""

    idle: float  # idle and iowait: no CPU work
    steal: float  # taken by the hypervisor for other guests
    cpus: int  # the CPUs counted (one cpuN line each)


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate `cpu` line of /proc/stat's text (proc(5)) and the number of CPUs."""
    cpus = sum(1 for line in text.splitlines() if re.match(r"cpu\d+ ", line))
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and cpus:
            try:
                ticks = [int(value) for value in fields[1:]]
            except ValueError:
                break
            if len(ticks) < 4:
                break
            # user nice system idle iowait irq softirq steal guest guest_nice;
            # older kernels stop earlier
            ticks += [0] * (8 - len(ticks))
            idle, iowait, steal = ticks[3], ticks[4], ticks[7]
            return CpuTimes(
                idle=(idle + iowait) / CLOCK_TICKS, steal=steal / CLOCK_TICKS, cpus=cpus
            )
    raise ProcStatError(
        "no aggregate 'cpu user nice system idle ...' line and cpuN lines in /proc/stat"
    )


def read_proc_stat(path: Path = PROC_STAT) -> CpuTimes | None:
    """The machine's CPU times; None where there is no /proc (not Linux)."""
    try:
        return parse_proc_stat(path.read_text())
    except (OSError, ProcStatError):
        return None


def load_average() -> float | None:
    """The 1-minute load average (runnable and waiting tasks), None if unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


@dataclass(frozen=True)
class Snapshot:
    """The machine at one moment, to be compared with a later one."""

    at: float  # time.monotonic()
    cpu: CpuTimes | None
    own_cpu: float  # own_cpu_seconds()
    load: float | None


def snapshot() -> Snapshot:
    return Snapshot(time.monotonic(), read_proc_stat(), own_cpu_seconds(), load_average())


class LoadAverage(TypedDict):
    start: float | None  # 1-minute load average when the run began
    end: float | None  # ... and when it ended


class ForeignCpu(TypedDict):
    foreign_cpu_cores: float | None
    steal_cpu_cores: float | None
    load_average: LoadAverage
    noisy: bool


def foreign_cpu(before: Snapshot, after: Snapshot, lab_cpu_seconds: float | None) -> ForeignCpu:
    """What other processes used between two snapshots, in cores on average.

    lab_cpu_seconds: the CPU of the processes under test that are not this
    process or its reaped children (the server); None when unknown, and
    then the foreign share is unknown too, never guessed.
    """
    seconds = after.at - before.at
    loads = LoadAverage(start=before.load, end=after.load)
    if before.cpu is None or after.cpu is None or seconds <= 0:
        return ForeignCpu(
            foreign_cpu_cores=None, steal_cpu_cores=None, load_average=loads, noisy=False
        )
    steal = (after.cpu.steal - before.cpu.steal) / seconds
    foreign: float | None = None
    if lab_cpu_seconds is not None:
        # steal included: the guest saw its CPU busy while the host ran another
        busy = after.cpu.cpus * seconds - (after.cpu.idle - before.cpu.idle)
        ours = lab_cpu_seconds + (after.own_cpu - before.own_cpu)
        # idle comes in ticks (10 ms): a quiet machine can come out a hair below zero
        foreign = max(0.0, (busy - ours) / seconds)
    return ForeignCpu(
        foreign_cpu_cores=None if foreign is None else round(foreign, 3),
        steal_cpu_cores=round(steal, 3),
        load_average=loads,
        noisy=foreign is not None and foreign >= NOISY_FOREIGN_CORES,
    )


@dataclass(frozen=True)
class Busy:
    """The machine before the comparison starts: CPU cores in use by others."""

    cores: float | None
    load: float | None

    @property
    def busy(self) -> bool:
        return self.cores is not None and self.cores >= NOISY_FOREIGN_CORES

    def warning(self) -> str:
        load = "" if self.load is None else f", load average {self.load:g}"
        return (
            f"warning: this machine is already busy: other processes used {self.cores:.2f} CPU "
            f"cores over the last {BUSY_SAMPLE_SECONDS:g} s{load}. The convoy's depth depends "
            f"on a free core: runs where others use >= {NOISY_FOREIGN_CORES:g} core are marked "
            "noisy (‡) and their verdicts not judged. Rerun on a quiet machine for the talk's "
            "figures."
        )


NOT_SAMPLED = Busy(cores=None, load=None)


def busy_now(seconds: float = BUSY_SAMPLE_SECONDS) -> Busy:
    """Sample the machine for `seconds` while this process waits."""
    before = snapshot()
    time.sleep(seconds)
    after = snapshot()
    figures = foreign_cpu(before, after, 0.0)
    return Busy(figures["foreign_cpu_cores"], after.load)


class CpuListError(ValueError):
    """A CPU list (--server-cpus, FIB_SERVER_CPUS ...) that cannot be used here."""


def parse_cpus(text: str, option: str, *, here: bool = True) -> set[int] | None:
    """A CPU list as taskset and Docker's cpuset write it ("1", "0,2", "0-1"); None when empty.

    here: every CPU must be one this process may run on (pinning to a CPU
    that is not there would fail later, in a child, with a less clear
    message); False for CPUs of another container.
    """
    if not text.strip():
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())):
            raise CpuListError(f"{option} {text!r}: {part!r} is not a CPU number or range (0-1)")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise CpuListError(f"{option} {text!r}: the range {part!r} runs backwards")
        cpus.update(range(low, high + 1))
    available = os.sched_getaffinity(0)
    if here and (missing := sorted(cpus - available)):
        raise CpuListError(
            f"{option} {text!r}: no CPU {', '.join(map(str, missing))} here "
            f"(this machine runs on {format_cpus(available)})"
        )
    return cpus


def format_cpus(cpus: set[int]) -> str:
    """The CPUs as a comma list, the form taskset and Docker's --cpuset-cpus take."""
    return ",".join(str(cpu) for cpu in sorted(cpus))


def pinning_record(server: set[int] | None, loadgen: set[int] | None) -> dict[str, Any] | None:
    """What summary.json's environment says of pinning; None: nothing was pinned."""
    if not server and not loadgen:
        return None
    return {
        "server_cpus": sorted(server) if server else None,
        "loadgen_cpus": sorted(loadgen) if loadgen else None,
    }


def processes() -> dict[int, ProcessStat]:
    """Every process alive now, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := process_stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found
