# loadtest/toolbox/provenance.py
#
# What made a report (docs/design.md §6.11): the commit and whether the
# tree differed from it, the command line, the wall time, the machine and
# the writer's schema version. Every report writer puts this record under
# the key "provenance" of its JSON, so that a figure quoted anywhere can be
# traced to the code and the machine that measured it.
#
# Reports written under docs/results are left out of "dirty": `make
# results` writes them one after another, and a report the run already
# rewrote is not code that made the next one.

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("kind", "schema", "commit", "dirty", "command", "started", "wall_seconds", "machine")
MACHINE_FIELDS = ("cores", "cpu_model", "kernel", "python")
NOT_CODE = ":(exclude)docs/results"  # pathspec: reports are not the code that made them


def _git(*args: str) -> str | None:
    try:
        run = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def commit() -> tuple[str | None, bool | None]:
    """HEAD's full hash and whether tracked code differs from it (None, None: no git here)."""
    head = _git("rev-parse", "HEAD")
    if head is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", NOT_CODE)
    return head, bool(status) if status is not None else None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first 'model name' of /proc/cpuinfo, or the platform's processor."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def command_line(argv: list[str] | None = None) -> str:
    """The command as a reader would type it: `python -m loadtest.compare --variants talk`."""
    words = list(sys.orig_argv if argv is None else argv)
    if words:
        words[0] = "python"
    return shlex.join(words)


@dataclass
class Provenance:
    """Begun when a run starts; `record()` when its report is written."""

    kind: str
    schema: int
    command: str = field(default_factory=command_line)
    started_wall: float = field(default_factory=time.time)
    started_clock: float = field(default_factory=time.monotonic)

    def record(self) -> dict[str, Any]:
        head, dirty = commit()
        started = datetime.datetime.fromtimestamp(self.started_wall, datetime.UTC)
        return {
            "kind": self.kind,
            "schema": self.schema,
            "commit": head,
            "dirty": dirty,
            "command": self.command,
            "started": started.isoformat(timespec="seconds"),
            "wall_seconds": round(time.monotonic() - self.started_clock, 1),
            "machine": machine(),
        }


def begin(kind: str, schema: int) -> Provenance:
    return Provenance(kind, schema)


def missing(record: Any) -> list[str]:
    """The fields of FIELDS (and machine's) that a report's provenance lacks or leaves empty."""
    if not isinstance(record, dict):
        return ["provenance"]
    absent = [name for name in FIELDS if record.get(name) in (None, "")]
    box = record.get("machine")
    if isinstance(box, dict):
        absent += [f"machine.{name}" for name in MACHINE_FIELDS if box.get(name) in (None, "")]
    return absent


def markdown_line(record: Mapping[str, Any]) -> str:
    """One line for a report's Markdown: what made it, on what, in how long."""
    head = (record.get("commit") or "unknown")[:10]
    dirty = " with uncommitted changes" if record.get("dirty") else ""
    box = record.get("machine") or {}
    return (
        f"Made by `{record.get('command')}` at commit {head}{dirty}, {record.get('started')}, "
        f"in {record.get('wall_seconds')} s; {box.get('cores')} cores ({box.get('cpu_model')}), "
        f"Linux {box.get('kernel')}, CPython {box.get('python')}; "
        f"report schema {record.get('schema')}."
    )


def lines_of(document: Mapping[str, Any]) -> list[str]:
    """The made-by line and a blank one, for a report whose JSON has a provenance record."""
    record = document.get("provenance")
    return [markdown_line(record), ""] if isinstance(record, dict) else []
