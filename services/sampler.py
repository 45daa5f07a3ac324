# services/sampler.py
#
#   python -m services.sampler --out FILE [--rate HZ] [--keep SECONDS] <variant> [flags]
#
# Runs `python -m services <variant> [flags]` as its child and samples every
# thread of it, and of its pool or pre-fork worker processes, from outside:
# at each sample, each thread's state as CPython itself records it (holds
# the GIL, has asked for it, on a CPU) and the function it is in. That is
# what the timeline (docs/design.md §6.6) draws as "waits for the GIL":
# measured, not inferred from a gap. It reads the server's memory the way
# CPython 3.15's own sampling profiler does (`profiling.sampling`, built on
# `_remote_debugging`), so it needs CPython 3.15 on both sides; being the
# server's parent lets it read the server without ptrace rights, except
# where a seccomp filter refuses process_vm_readv (Docker's default one:
# the timeline's container adds CAP_SYS_PTRACE, to itself only).
#
# It keeps the last --keep seconds of samples (a bounded ring) and writes
# them to --out when the server exits. SIGTERM and SIGINT go to the server.

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One thread at one sample: pid, interpreter, native thread id, CPython's
# status flags (THREAD_STATUS_*), the function it is in, whether fib is on
# its stack.
Sampled = tuple[int, int, int, int, str, bool]
LOOK_FOR_WORKERS = 0.25  # seconds between looks for new worker processes


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.sampler",
        description="Run a variant and sample the GIL state of its threads (CPython 3.15+).",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file written at exit")
    parser.add_argument("--rate", type=float, default=1000.0, help="samples per second")
    parser.add_argument("--keep", type=float, default=5.0, help="seconds of samples kept")
    parser.add_argument("server", nargs=argparse.REMAINDER, help="<variant> [flags]")
    args = parser.parse_args(argv)
    if not 1 <= args.rate <= 20_000:
        parser.error(f"--rate {args.rate:g}: must be from 1 to 20000 samples per second")
    if not 0 < args.keep <= 600:
        parser.error(f"--keep {args.keep:g}: must be more than 0 and at most 600 seconds")
    folder = args.out.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        parser.error(f"--out {args.out}: {folder} is not a folder this sampler can write in")
    if not args.server:
        parser.error("name the variant to run, e.g. threads")
    return args


class Sampler:
    """Samples `pid` and its Python descendants until `pid` exits."""

    def __init__(self, pid: int, rate: float, keep: float) -> None:
        import _remote_debugging  # type: ignore[import-not-found]  # CPython 3.15+
        from profiling.sampling.constants import (  # type: ignore[import-not-found]
            PROFILING_MODE_ALL,
        )

        self._remote = _remote_debugging
        self._mode = PROFILING_MODE_ALL  # every thread, with its status flags
        self.pid = pid
        self.period = 1.0 / rate
        self.sweeps: deque[tuple[float, list[Sampled]]] = deque(maxlen=int(rate * keep))
        self.taken = 0
        self.failed = 0  # a read that raced the process changing its own memory
        self.seconds_reading = 0.0
        self._unwinders: dict[int, Any] = {}
        self._next_look = 0.0

    def _look_for_processes(self) -> None:
        try:
            children = self._remote.get_child_pids(self.pid, recursive=True)
        except OSError:
            children = []
        for pid in [self.pid, *children]:
            if pid in self._unwinders or _is_resource_tracker(pid):
                continue
            with contextlib.suppress(Exception):  # not a Python process yet: next look
                self._unwinders[pid] = self._remote.RemoteUnwinder(
                    pid, all_threads=True, mode=self._mode, cache_frames=True
                )

    def sample(self) -> None:
        now = time.monotonic()
        if now >= self._next_look:
            self._look_for_processes()
            self._next_look = now + LOOK_FOR_WORKERS
        sweep: list[Sampled] = []
        for pid, unwinder in list(self._unwinders.items()):
            interpreters = self._read(pid, unwinder)
            if interpreters is None:
                continue
            for interpreter in interpreters:
                for thread in interpreter.threads:
                    frames = thread.frame_info
                    sweep.append((
                        pid, interpreter.interpreter_id, thread.thread_id, thread.status,
                        frames[0].funcname if frames else "",
                        any(frame.funcname == "fib" for frame in frames),
                    ))  # fmt: skip
        self.seconds_reading += time.monotonic() - now
        self.taken += 1
        self.sweeps.append((now, sweep))

    def _read(self, pid: int, unwinder: Any) -> list[Any] | None:
        """Its threads now; two retries, since a read can race the process
        pushing a frame (often, in a deep recursion such as fib's)."""
        for _attempt in range(3):
            try:
                return list(unwinder.get_stack_trace())
            except Exception:
                self.failed += 1
                if not os.path.exists(f"/proc/{pid}"):  # gone (a replaced worker)
                    del self._unwinders[pid]
                    return None
        return None

    def document(self, rate: float) -> dict[str, Any]:
        return {
            "server_pid": self.pid,
            "clock": "time.monotonic",
            "rate": rate,
            "python": sys.version.split()[0],
            "status_flags": {
                name.removeprefix("THREAD_STATUS_").lower(): getattr(self._remote, name)
                for name in dir(self._remote)
                if name.startswith("THREAD_STATUS_")
            },
            "taken": self.taken,
            "failed": self.failed,
            "seconds_reading": round(self.seconds_reading, 4),
            "sweeps": list(self.sweeps),
        }


def _is_resource_tracker(pid: int) -> bool:
    """multiprocessing's resource tracker: a Python child that serves no client."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    try:
        import _remote_debugging  # noqa: F401
    except ImportError:
        sys.exit(
            f"services.sampler needs CPython 3.15 or later (this is {sys.version.split()[0]}): "
            "it reads thread states with _remote_debugging (make timeline runs it in the "
            "python:3.15 image)"
        )
    server = subprocess.Popen([sys.executable, "-m", "services", *args.server])

    def relay(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signum)

    signal.signal(signal.SIGTERM, relay)
    signal.signal(signal.SIGINT, relay)
    sampler = Sampler(server.pid, args.rate, args.keep)
    while server.poll() is None:
        due = time.monotonic() + sampler.period
        sampler.sample()
        time.sleep(max(0.0, due - time.monotonic()))
    args.out.write_text(json.dumps(sampler.document(args.rate)) + "\n", "utf-8")
    print(f"sampler: {sampler.taken} samples, {sampler.failed} failed reads", flush=True)
    return server.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
