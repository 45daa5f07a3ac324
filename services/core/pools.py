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
    """Pool worker initializer: obey the server's signals only, exit when it does."""
    # Ctrl-C reaches the whole process group: the server decides when its
    # workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM too is the server's alone, but it must still stop a worker: a
    # broken executor SIGTERMs the survivors and waits for them, and a
    # survivor that ignores it keeps that executor's thread waiting (or
    # spinning on a full call queue) and its semaphores alive for good.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "sigwaitinfo"):
        # Blocked before any thread starts, so every thread has it blocked
        # and only the sigwaitinfo() below takes it, with its sender's pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_obey_server_sigterm, args=(server_pid,), daemon=True).start()
    threading.Thread(target=exit_with_server, args=(server_pid,), daemon=True).start()


def _obey_server_sigterm(server_pid: int) -> None:
    while signal.sigwaitinfo({signal.SIGTERM}).si_pid != server_pid:
        pass  # anyone else's SIGTERM (one sent to the whole group) is ignored
    # SIGTERM is still SIG_DFL: unblocked here and raised at this thread, it
    # ends the process as terminate() expects (exit code -SIGTERM).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    signal.raise_signal(signal.SIGTERM)


def exit_with_server(server_pid: int) -> None:
    """A worker's thread: end this process as soon as its server's ends."""
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
    server-error) and so does every later submit. Here a fresh executor,
    with all its workers, replaces the broken one as soon as the broken
    one has stopped (or at the next submit, if that comes first).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._watchers: list[threading.Thread] = []  # one per executor, until it stops
        self._executor: ProcessPoolExecutor | None
        with self._lock:  # its watcher may not look before it is in place
            self._executor, started = self._start()
        _pools.append(self)
        # Wait for every worker here, from this thread, so the first requests
        # do not pay for process start-up.
        wait(started)

    def _start(self) -> tuple[ProcessPoolExecutor, list[Future[int]]]:
        executor = ProcessPoolExecutor(
            self.workers,
            mp_context=self._context,
            initializer=_die_with_server,
            initargs=(os.getpid(),),
        )
        # A "spawn" executor starts a process per submit while none is idle:
        # one trivial task per worker starts them all now, without waiting.
        started = [executor.submit(os.getpid) for _ in range(self.workers)]
        watcher = threading.Thread(
            target=self._replace_once_stopped, args=(executor,), name="pool-watch", daemon=True
        )
        watcher.start()
        self._watchers = [thread for thread in self._watchers if thread.is_alive()] + [watcher]
        return executor, started

    def _replace_once_stopped(self, executor: ProcessPoolExecutor) -> None:
        """Watch one executor: once its manager thread ends (shut down, or broken
        with every worker stopped), replace it if it broke. A worker killed while
        the server is idle would otherwise leave no workers until a request came."""
        manager: threading.Thread | None = getattr(executor, "_executor_manager_thread", None)
        if manager is not None:
            manager.join()
        if getattr(executor, "_broken", False):
            self._renew(executor)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        executor = self._executor
        if executor is None:
            raise RuntimeError("the pool is shut down")
        try:
            return executor.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            renewed = self._renew(executor)
            if renewed is None:
                raise RuntimeError("the pool is shut down") from None
            return renewed.submit(fn, *args, **kwargs)

    def _renew(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor | None:
        """The executor that replaces `broken` (None once the pool is shut down)."""
        with self._lock:
            if self._executor is broken:
                log.warning("a pool worker died; starting a new pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor, _started = self._start()
            return self._executor

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers, within a second: a fib(45) left running for a
        client that went away must not hold the exit past Docker's grace
        period."""
        with self._lock:  # not while _renew swaps in a fresh executor
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
        # The manager thread (now that its workers are gone) and the watchers
        # hold the executors' queues: once they end, shutdown_all's collection
        # frees the queues' semaphores, which the resource tracker would
        # otherwise report as leaked when the server exits.
        deadline = time.monotonic() + 1.0
        for thread in [manager, *self._watchers]:
            if thread is not None:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))


_pools: list[ProcessPool] = []


def shutdown_all() -> None:
    """Shut every process pool of this server (called on the way out)."""
    while _pools:
        _pools.pop().shutdown()
    while _interpreter_pools:  # a running fib cannot be stopped: os._exit will
        _interpreter_pools.pop().shutdown(wait=False, cancel_futures=True)
    gc.collect()  # the executors' semaphores are unlinked when collected


def interpreter_pool(workers: int) -> Executor:
    """A pool of subinterpreters, each with its own GIL (CPython 3.14+), its
    workers started now so that the first requests do not pay for them."""
    from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]

    pool: Executor = InterpreterPoolExecutor(workers)
    # A worker starts per submit while none is idle: tasks that outlast the
    # submits start them all. Each interpreter imports fib's module once.
    wait([pool.submit(time.sleep, 0.2) for _ in range(workers)])
    _interpreter_pools.append(pool)
    return pool


_interpreter_pools: list[Executor] = []
