# loadtest/connections/tree.py
#
# A server as the kernel sees it: the process the runner started (or, in a
# container, the host's view of the container's first process) and all its
# descendants, pool workers and prefork children included. Memory is the
# sum of their VmRSS: shared pages count once per process, which moves the
# baseline, not the slope against connections. Kernel memory (socket
# buffers, the listen backlog) is in no process's RSS and is not counted.

from __future__ import annotations

import os
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadtest.toolbox.errors import LabError
from services.core.cpu import descendants, process_stat
from services.core.memory import parse_resident_bytes


@dataclass(frozen=True)
class Footprint:
    """One moment of a process tree."""

    rss_bytes: int
    threads: int
    fds: int
    processes: int


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def _threads(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def tree_pids(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def footprint(pid: int) -> Footprint:
    """RSS, threads and open descriptors of `pid` and its descendants, summed;
    a process that ends while it is read counts nothing."""
    rss = threads = fds = count = 0
    for one in tree_pids(pid):
        status = _status(one)
        if not status:
            continue
        try:
            fds += len(os.listdir(f"/proc/{one}/fd"))
        except OSError:
            continue
        rss += parse_resident_bytes(status) or 0  # a zombie has none
        threads += _threads(status)
        count += 1
    return Footprint(rss, threads, fds, count)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of the live tree (every thread)."""
    total = 0.0
    for one in tree_pids(pid):
        if (stat := process_stat(one)) is not None:
            total += stat.cpu_seconds
    return total


def container_pid(name: str, timeout: float = 30.0) -> int:
    """The host's pid of a running container's first process."""
    try:
        found = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", name],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"docker inspect {name}: {error}") from None
    pid = int(found.stdout.strip() or 0) if found.returncode == 0 else 0
    if pid <= 0:
        raise LabError(f"docker inspect {name}: no running process ({found.stderr.strip()})")
    return pid


@dataclass(frozen=True)
class OpenFiles:
    """RLIMIT_NOFILE of this process: before the run raised it, and as run."""

    soft_before: int
    soft: int
    hard: int


def raise_open_files() -> OpenFiles:
    """The soft open-file limit raised to the hard one: N idle connections take
    N descriptors here, and a local server inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return OpenFiles(soft_before=soft, soft=target, hard=hard)
