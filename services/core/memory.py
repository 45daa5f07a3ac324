# services/core/memory.py
#
# Resident memory of a variant as a whole: this process and every live
# descendant (pool workers, pre-fork workers, multiprocessing's resource
# tracker), from /proc at scrape time (docs/design.md §4,
# fib_resident_memory_bytes). Linux only: without /proc there is no figure.
# The descendants are the ones cpu.py finds, each counted once.

from __future__ import annotations

import os
from pathlib import Path

from .cpu import descendants


def memory_readable() -> bool:
    """Whether this system shows resident memory in /proc (Linux)."""
    return resident_bytes(os.getpid()) is not None


def parse_resident_bytes(status: str) -> int | None:
    """VmRSS of a /proc/PID/status text, in bytes (None: no such line, e.g. a zombie)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":  # proc(5): always kB; anything else is not understood
                return None
            return int(value) * 1024
    return None


def resident_bytes(pid: int) -> int | None:
    """One process's resident memory (VmRSS); None once it is gone, or without /proc."""
    try:
        return parse_resident_bytes(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


def tree_resident_bytes(pid: int | None = None) -> int | None:
    """Resident memory of a process and all its live descendants, each once;
    None when the process itself cannot be read. Pages two processes share
    (a forked child's, the interpreter's code) count in each, as in `ps`."""
    root = pid or os.getpid()
    own = resident_bytes(root)
    if own is None:
        return None
    return own + sum(resident_bytes(child) or 0 for child in set(descendants(root)) - {root})
