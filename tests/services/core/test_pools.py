# tests/services/core/test_pools.py
#
# The process pool (services/core/pools.py, docs/design.md §2 "Pool
# breakage") against real worker processes started from this process, which
# plays the server: a worker's death must cost the executor it broke and
# nothing more (no survivor, no thread, no CPU left behind), the pool must be
# whole again without waiting for a request, and a worker obeys SIGTERM from
# its server only.

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from services.core.cpu import process_stat
from services.core.fib import fib
from services.core.pools import ProcessPool
from tests.conftest import cpu_ticks

BUSY_WORK = 34  # about 0.7 s: a worker still computing while the other is killed,
# even on a loaded machine (0.3 s of fib(32) once ended before the kill landed)
SETTLE_SECONDS = 5.0


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    running = ProcessPool(2)
    yield running
    running.shutdown()


def executor_of(pool: ProcessPool) -> ProcessPoolExecutor:
    executor = pool._executor
    assert executor is not None, "the pool is shut down"
    return executor


def worker_pids(executor: ProcessPoolExecutor) -> list[int]:
    return list(executor._processes)


def alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat.state != "Z"


def eventually(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {SETTLE_SECONDS} s: {what}")
        time.sleep(0.02)


def test_worker_killed_while_waiting_for_work_costs_its_executor_only(pool):
    """The idle worker waits in the call queue holding the queue's lock: once
    it is killed, its busy sibling can never take another task, so the broken
    executor must stop it or wait (or spin) for it forever."""
    broken = executor_of(pool)
    manager: threading.Thread | None = getattr(broken, "_executor_manager_thread", None)
    assert manager is not None
    busy_future = pool.submit(fib, BUSY_WORK)
    workers = worker_pids(broken)
    assert len(workers) == 2
    before = {pid: cpu_ticks(pid) for pid in workers}
    time.sleep(0.15)
    busy = max(workers, key=lambda pid: cpu_ticks(pid) - before[pid])
    idle = next(pid for pid in workers if pid != busy)
    assert cpu_ticks(busy) > before[busy], "the busy worker is not computing"
    threads_before = threading.active_count()

    os.kill(idle, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        busy_future.result(timeout=SETTLE_SECONDS)

    eventually(lambda: not manager.is_alive(), "the broken executor's manager thread ends")
    eventually(lambda: not alive(busy), "the broken executor's surviving worker is stopped")
    # Replaced with every worker, without a request to trigger it.
    eventually(lambda: pool._executor is not broken, "a new executor")
    fresh = executor_of(pool)
    eventually(lambda: len(worker_pids(fresh)) == 2, "the new executor's 2 workers")
    assert not set(worker_pids(fresh)) & set(workers)
    eventually(
        lambda: threading.active_count() == threads_before, f"{threads_before} threads again"
    )
    assert pool.submit(fib, 20).result(timeout=SETTLE_SECONDS) == 6765

    process_cpu = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - process_cpu < 0.05, "a thread keeps spinning"


def test_submit_after_the_break_gets_a_working_executor(pool):
    broken = executor_of(pool)
    workers = worker_pids(broken)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: broken._broken, "the executor knows it is broken")
    # Whether the submit or the pool's watcher replaces the executor first.
    assert pool.submit(fib, 20).result(timeout=SETTLE_SECONDS) == 6765
    eventually(lambda: not any(alive(pid) for pid in workers), "the killed workers reaped")


def test_workers_obey_sigterm_from_their_server_only(pool):
    pid = pool.submit(os.getpid).result(timeout=SETTLE_SECONDS)  # it has run its initializer
    process = executor_of(pool)._processes[pid]

    # SIGINT (Ctrl-C reaches the whole process group) and another process's
    # SIGTERM (one sent to the group) leave the worker be.
    os.kill(pid, signal.SIGINT)
    subprocess.run(
        [sys.executable, "-c", f"import os; os.kill({pid}, {int(signal.SIGTERM)})"],
        check=True,
        timeout=30,
    )
    time.sleep(0.5)
    assert process.is_alive()
    assert pool.submit(fib, 20).result(timeout=SETTLE_SECONDS) == 6765

    # The server's own SIGTERM (what a broken executor sends) stops it.
    os.kill(pid, signal.SIGTERM)
    eventually(lambda: process.exitcode is not None, "the worker exits")
    assert process.exitcode == -signal.SIGTERM


def test_shutdown_stops_a_busy_worker_within_about_a_second():
    pool = ProcessPool(1)
    process = next(iter(executor_of(pool)._processes.values()))
    pool.submit(fib, 40)  # seconds of work, abandoned
    time.sleep(0.2)
    started = time.monotonic()
    pool.shutdown()
    assert time.monotonic() - started < 2.5
    assert not process.is_alive()
    with pytest.raises(RuntimeError):
        pool.submit(fib, 1)
