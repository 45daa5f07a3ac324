# services/core/timeline.py
#
# The server's own account of a convoy, for `make timeline` (docs/design.md
# §6.6): on which thread (or pool worker) each request was received and
# answered, and when fib ran. Off unless FIB_TIMELINE names a folder; then
# each server process keeps its last FIB_TIMELINE_EVENTS events in a ring
# (bounded whatever the load) and writes them there, as timeline-<pid>.json,
# when it stops. Times are time.monotonic(): one clock for every process on
# the machine, containers included, so that the client's and the GIL
# sampler's times (services/sampler.py) line up with these.
#
# Who waits for the GIL is not recorded here: a thread cannot see itself
# wait. The sampler reads it from outside (docs/design.md §6.6).

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .fib import fib

P = ParamSpec("P")
T = TypeVar("T")

# kind, pid, thread (native id), start, end, detail: n for "request" and
# "fib", the client's port for "connection" (start == end).
Event = tuple[str, int, int, float, float, int | None]


def file_name(pid: int) -> str:
    return f"timeline-{pid}.json"


class Timeline:
    """The ring of one server process's events, written once when it stops."""

    def __init__(self, folder: str, capacity: int, variant: str) -> None:
        self.folder = Path(folder)
        self.variant = variant
        self.capacity = capacity
        self.events: deque[Event] = deque(maxlen=capacity)
        self.names: dict[tuple[int, int], str] = {}  # (pid, thread) -> its name
        self._recorded = itertools.count()  # next() is atomic: threads share it
        self.pid = os.getpid()
        self.fib = self.timed(fib)  # an inline fib: a pool's calls come back by TracedPool

    def _here(self) -> int:
        thread = threading.get_native_id()
        if (self.pid, thread) not in self.names:
            self.names[self.pid, thread] = threading.current_thread().name
        return thread

    def add(self, kind: str, start: float, end: float, detail: int | None) -> None:
        """An event of this thread."""
        next(self._recorded)
        self.events.append((kind, self.pid, self._here(), start, end, detail))

    def add_elsewhere(self, event: Event, name: str) -> None:
        """An event of a pool worker (another process, or a thread of this one)."""
        next(self._recorded)
        self.names.setdefault((event[1], event[2]), name)
        self.events.append(event)

    def traced(self, pool: Executor) -> Executor:
        return TracedPool(pool, self)

    def timed(self, fn: Callable[[int], T]) -> Callable[[int], T]:
        """`fn`, each call a "fib" event of the thread that runs it."""

        def timed_fn(n: int) -> T:
            started = time.monotonic()
            result = fn(n)
            self.add("fib", started, time.monotonic(), n)
            return result

        return timed_fn

    def write(self) -> Path:
        recorded = next(self._recorded)
        path = self.folder / file_name(self.pid)
        document = {
            "pid": self.pid,
            "variant": self.variant,
            "clock": "time.monotonic",
            "capacity": self.capacity,
            "dropped": max(0, recorded - len(self.events)),
            "threads": [[pid, thread, name] for (pid, thread), name in self.names.items()],
            "events": list(self.events),
        }
        path.write_text(json.dumps(document) + "\n", "utf-8")
        return path


def check_folder(text: str) -> str:
    """FIB_TIMELINE: "" (off) or a folder this process can write in."""
    if text and not (os.path.isdir(text) and os.access(text, os.W_OK | os.X_OK)):
        raise ValueError("not a folder this server can write in (the timeline goes there)")
    return text


def _worker_name() -> str:
    try:
        from concurrent import interpreters  # type: ignore[attr-defined]  # CPython 3.14+

        interpreter: int = interpreters.get_current().id
    except (ImportError, AttributeError):
        interpreter = 0
    if interpreter:
        return f"interpreter {interpreter}"
    if threading.current_thread() is threading.main_thread():
        return f"pool process {os.getpid()}"
    return threading.current_thread().name


def timed_call(fn: Callable[..., T], *args: Any) -> tuple[T, tuple[int, int, float, float], str]:
    """Runs in a pool worker: fn's result, and where and when it ran."""
    started = time.monotonic()
    result = fn(*args)
    where = (os.getpid(), threading.get_native_id(), started, time.monotonic())
    return result, where, _worker_name()


class TracedPool(Executor):
    """A pool whose calls land on the timeline as "fib" events of the worker
    that ran them; the caller's future gets the plain result."""

    def __init__(self, pool: Executor, timeline: Timeline) -> None:
        self.pool = pool
        self.timeline = timeline

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        outer: Future[T] = Future()
        inner = self.pool.submit(timed_call, fn, *args)
        detail = args[0] if args and isinstance(args[0], int) else None

        def finish(done: Future[tuple[T, tuple[int, int, float, float], str]]) -> None:
            if done.cancelled() or not outer.set_running_or_notify_cancel():
                outer.cancel()
                return
            if (failure := done.exception()) is not None:
                outer.set_exception(failure)
                return
            result, (pid, thread, started, ended), name = done.result()
            self.timeline.add_elsewhere(("fib", pid, thread, started, ended, detail), name)
            outer.set_result(result)

        inner.add_done_callback(finish)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait, cancel_futures=cancel_futures)
