# services/core/cpu.py
#
# CPU accounting: what a variant (this process and its pool workers) has
# used, from its cgroup's own accounting or from /proc (docs/design.md §4,
# fib_cpu_seconds_total). The one parser of /proc/PID/stat is here too: the
# load tests read other processes through it (loadtest depends on services,
# never the other way).

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

# /proc counts CPU time in USER_HZ ticks
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcessStat:
    """One process as /proc/PID/stat shows it (proc(5))."""

    name: str  # the command name, as in parentheses there
    state: str  # R, S, D, Z ...
    parent: int
    group: int  # process group
    cpu_seconds: float  # user + system, every thread
    reaped_cpu_seconds: float  # user + system of the children it has waited for


def parse_process_stat(text: str) -> ProcessStat:
    # The name may hold spaces and parentheses: the fields start after the
    # last ")". Counted from there: utime, stime are fields 14 and 15 of
    # proc(5), cutime, cstime (its reaped children) 16 and 17.
    fields = text[text.rindex(")") + 2 :].split()
    return ProcessStat(
        name=text[text.index("(") + 1 : text.rindex(")")],
        state=fields[0],
        parent=int(fields[1]),
        group=int(fields[2]),
        cpu_seconds=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        reaped_cpu_seconds=(int(fields[13]) + int(fields[14])) / CLOCK_TICKS,
    )


def process_stat(pid: int) -> ProcessStat | None:
    """The process now; None once it is gone (or without /proc)."""
    try:
        return parse_process_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def cgroup_cpu_file(forced: bool = False) -> Path | None:
    """The CPU accounting file of this process's cgroup, if it has its own.

    `auto` takes it only when /proc/self/cgroup names a cgroup other than the
    root, since the root's figure is the whole machine's. A container with a
    private cgroup namespace also shows "/": its image sets
    FIB_CPU_SOURCE=cgroup (`forced`).
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates = [Path("/sys/fs/cgroup/cpu.stat")]  # v2, unified
        elif "cpuacct" in controllers.split(","):
            candidates = [
                Path("/sys/fs/cgroup/cpuacct/cpuacct.usage"),  # v1: the container's own
                Path("/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"),
            ]
        else:
            continue
        for candidate in candidates:
            if candidate.exists() and (forced or path != "/"):
                return candidate
    return None


def cgroup_cpu_seconds(accounting: Path) -> float:
    text = accounting.read_text()
    if accounting.name == "cpu.stat":
        for line in text.splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
        return 0.0
    return int(text) / 1e9  # cpuacct.usage is in nanoseconds


def own_cpu_seconds() -> float:
    """CPU of this process (all its threads) and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def tree_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of this process and all its descendants."""
    live = sum(_live_cpu_seconds(child) for child in descendants(pid or os.getpid()))
    return own_cpu_seconds() + live


def descendants(pid: int) -> list[int]:
    """Live descendants, from /proc/<pid>/task/<tid>/children (Linux)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            found.extend(map(int, children))
            frontier.extend(map(int, children))
    return found


def _live_cpu_seconds(pid: int) -> float:
    """A descendant's CPU with its own reaped children's (gone: 0)."""
    stat = process_stat(pid)
    return 0.0 if stat is None else stat.cpu_seconds + stat.reaped_cpu_seconds
