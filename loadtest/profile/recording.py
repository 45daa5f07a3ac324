# loadtest/profile/recording.py
#
# The runs of one profile (docs/design.md §6.8). For each view the variant
# starts under py-spy (`py-spy record ... -- python -m services VARIANT`:
# py-spy is the server's parent), the comparison's convoy runs at it
# (loadtest.compare.runner: the engine in its own process, bounded by the
# scenario's length), and SIGINT makes py-spy write its file and end the
# server. py-spy writes one format per run and filters GIL holders while it
# samples, so each view is a run of its own on a fresh server.
#
# py-spy reads the server from outside: the server is the lab's own, not an
# instrumented copy. Being its parent, py-spy may read it without ptrace
# rights. A variant this Python cannot run goes in its image (as the
# comparison starts it), the host's py-spy (a static binary) mounted at the
# same path, hardened as compose's containers are, plus CAP_SYS_PTRACE for
# that one container: without it Docker's seccomp filter refuses
# process_vm_readv, and py-spy falls back to /proc/PID/mem at twice its CPU
# per sample, the server paused meanwhile (docs/design.md §6.8).

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.compare.plan import Plan
from loadtest.compare.runner import runs_of
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import (
    NEWER_PYTHON_IMAGE,
    local_variant,
    scrape,
    server_info,
    wait_until_answering,
)
from services import PYTHON_NEEDED


@dataclass(frozen=True)
class View:
    """One py-spy recording: its file, py-spy's flags for it, what it shows."""

    title: str
    file: str
    flags: tuple[str, ...]
    shows: str


# Every view takes every thread (--idle keeps those that wait: in the convoy
# the short handler waiting for the GIL is the point) and the pool workers.
WALL = View(
    "wall clock",
    "wall.svg",
    ("--format", "flamegraph", "--idle"),
    "every thread of the server and of its worker processes at each sample, waiting or not",
)
# A thread that holds the GIL while the kernel has it off a CPU still holds it: --idle.
GIL = View(
    "GIL holders",
    "gil.svg",
    ("--format", "flamegraph", "--gil", "--idle"),
    "only the thread holding the GIL at each sample (per process: each worker has its own)",
)
SPEEDSCOPE = View(
    "wall clock, speedscope",
    "wall.speedscope.json",
    ("--format", "speedscope", "--idle"),
    "the wall-clock view as a timeline per thread: open it in speedscope",
)
VIEWS = (WALL, GIL, SPEEDSCOPE)

# What compose gives every service (docker-compose.yml's x-hardened, docs/design.md §7),
# and the one capability py-spy's fast reads need.
CONTAINER_OPTIONS = (
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
    "--read-only", "--tmpfs", "/tmp:size=16m,mode=1777", "--cap-add", "SYS_PTRACE",
)  # fmt: skip

# A Python server holds the GIL at least while it starts, so a file without
# a stack is py-spy's failure: at its start it can miss the GIL's address
# (the interpreter pools on 3.14, about 1 run in 15). Run it again.
ATTEMPTS = 3


@dataclass(frozen=True)
class Recorded:
    """One run of the convoy: under a view's recording, or without a profiler (view None)."""

    view: View | None
    seconds: float  # from the server's start to its end: what py-spy sampled
    stacks: int | None  # one thread at one sample, as the file holds them
    server: dict[str, str]  # its fib_info labels: python, implementation, gil
    convoy: dict[str, Any]  # the convoy's run object (loadtest.compare.runner)


def py_spy() -> Path:
    """py-spy beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = beside if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise LabError("no py-spy here: `make venv` installs it (pyproject's dev extra)")
    return Path(found).resolve()


def py_spy_version(program: Path) -> str:
    shown = subprocess.run(
        [program, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return shown.stdout.strip() or "py-spy (version unknown)"


def image_for(variant: str, image: str | None) -> str | None:
    """The image the server runs in (None: here), as local_command chooses it: what
    the report says (local_command itself checks that a variant's own image is built)."""
    needed = PYTHON_NEEDED.get(variant)
    if image is None and needed is not None and sys.version_info < needed:
        return NEWER_PYTHON_IMAGE
    return image


def launcher(program: Path, view: View, rate: int, out: Path) -> list[str]:
    """py-spy's command line up to the server's own."""
    return [
        str(program), "record", *view.flags, "--subprocesses", "--rate", str(rate),
        "--output", str(out / view.file), "--",
    ]  # fmt: skip


def container_options(program: Path, out: Path) -> list[str]:
    """What a container needs for py-spy: it and the output folder at their paths here,
    and this user, whose files they are (py-spy, the server's parent, runs as it too)."""
    return [
        *CONTAINER_OPTIONS, "--user", f"{os.getuid()}:{os.getgid()}",
        "--volume", f"{program}:{program}:ro", "--volume", f"{out}:{out}",
    ]  # fmt: skip


def stacks_in(path: Path) -> int:
    """The stacks py-spy wrote: a flame graph's `all`, or a speedscope file's samples."""
    try:
        text = path.read_text("utf-8")
    except OSError:
        raise LabError(f"py-spy wrote no {path}") from None
    if path.suffix == ".svg":
        match = re.search(r"<title>all \(([\d,]+) samples?", text)
        return int(match[1].replace(",", "")) if match else 0
    return sum(len(profile["samples"]) for profile in json.loads(text)["profiles"])


def record(
    plan: Plan, view: View | None, rate: int, out: Path, image: str | None, program: Path
) -> Recorded:
    """One convoy on a fresh server of plan's variant, recorded as `view` (None: no
    profiler); again when py-spy wrote no stack, at most ATTEMPTS times."""
    recorded = record_once(plan, view, rate, out, image, program)
    for attempt in range(2, ATTEMPTS + 1):
        if recorded.stacks != 0 or view is None:
            break
        print(f"  py-spy wrote no stack in {view.file}; again ({attempt}/{ATTEMPTS})",
              file=sys.stderr)  # fmt: skip
        recorded = record_once(plan, view, rate, out, image, program)
    return recorded


def record_once(
    plan: Plan, view: View | None, rate: int, out: Path, image: str | None, program: Path
) -> Recorded:
    """One convoy on a fresh server, recorded as `view` (None: no profiler)."""
    [variant] = plan.variants
    profiled: dict[str, Any] = {}
    if view is not None:
        profiled = {
            "launcher": launcher(program, view, rate, out),
            "docker_options": container_options(program, out),
            "stop_signal": signal.SIGINT,  # py-spy writes its file on SIGINT only
        }
    started = time.monotonic()
    try:
        with local_variant(variant, image=image, **profiled) as target:
            wait_until_answering(target)
            server = server_info(scrape(target))
            [convoy] = runs_of(target, "convoy", 0, plan)
    except FileNotFoundError as error:  # no docker client for a variant in its image
        raise LabError(f"{variant} runs in its image: {error.filename} is not here") from None
    seconds = time.monotonic() - started
    stacks = None if view is None else stacks_in(out / view.file)
    return Recorded(view, round(seconds, 1), stacks, server, convoy)
