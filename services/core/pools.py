# services/core/pools.py
#
# The talk's `Pool = ProcessPoolExecutor`, made fit for a server that runs for
# days: an explicit start method ("spawn": the same on every Python and OS,
# and safe in a process that already has threads, which "fork" is not),
# workers that die with their server even when it is SIGKILLed, and a pool
# that replaces itself when a worker is killed instead of failing forever.

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger("fiblab")

P = ParamSpec("P")
T = TypeVar("T")


def _die_with_server(server_pid: int) -> None:
    """Pool worker initializer: leave signals to the server, exit when it does."""
    # Ctrl-C reaches the whole process group and docker stop the server only:
    # either way the server decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_watch_server, args=(server_pid,), daemon=True).start()


def _watch_server(server_pid: int) -> None:
    try:
        pidfd = os.pidfd_open(server_pid)  # readable when that process exits
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
        while os.getppid() == server_pid:
            time.sleep(0.5)
        os._exit(0)
    select.select([pidfd], [], [])
    os._exit(0)


class ProcessPool(Executor):
    """A process pool that outlives the death of any of its workers.

    A killed worker breaks a ProcessPoolExecutor for good: every pending
    future fails with BrokenProcessPool (their requests get ERR
    server-error) and so does every later submit. Here the next submit
    replaces the broken executor and goes on.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = self._start()
        _pools.append(self)
        # Start every worker now, from this thread, so the first requests do
        # not pay for process start-up.
        wait([self.submit(os.getpid) for _ in range(workers)])

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=_die_with_server,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        executor = self._executor
        if executor is None:
            raise RuntimeError("the pool is shut down")
        try:
            return executor.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            return self._replace(executor).submit(fn, *args, **kwargs)

    def _replace(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                raise RuntimeError("the pool is shut down")
            if self._executor is broken:
                log.warning("a pool worker died; starting a new pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._start()
            return self._executor

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers, within a second: a fib(45) left running for a
        client that went away must not hold the exit past Docker's grace
        period."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes: dict[int, Any] = dict(getattr(executor, "_processes", None) or {})
        executor.shutdown(wait=False, cancel_futures=True)
        manager = getattr(executor, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(timeout=1.0)
        for process in processes.values():
            if process.is_alive():
                process.kill()
                process.join(timeout=1.0)


_pools: list[ProcessPool] = []


def shutdown_all() -> None:
    """Shut every process pool of this server (called on the way out)."""
    while _pools:
        _pools.pop().shutdown()
    gc.collect()  # the executors' semaphores are unlinked when collected
