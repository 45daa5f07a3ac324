# services/core/workers.py
#
# Pre-forked worker processes on one listening socket (the `prefork` variant):
# start them, replace any that dies, stop them with the server, and speak
# for them on this process's single /metrics.
#
# One shared listener, not SO_REUSEPORT (docs/design.md §3.1): port 0 works,
# the kernel hands the next connection to whichever worker waits in accept()
# (not to a hash of the client's address), and a worker that dies takes no
# queued connection with it (a REUSEPORT socket's backlog dies with it).
#
# Started with "spawn", like the pools: this process already runs threads
# (/metrics, the lingerer) that fork() would not copy, along with any lock
# one of them held. multiprocessing hands each worker the listener (it
# passes the descriptor over a Unix socket).

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from .metrics import Families, Metrics, NullMetrics
from .pools import exit_with_server
from .runtime import SIGNAL_CHECK, Lab
from .settings import Settings

log = logging.getLogger("fiblab")

Serve = Callable[[Lab, socket.socket], None]

# How long a scrape waits for a worker's figures: a worker's reporting thread
# needs the GIL, which a long fib holds for up to the switch interval.
REPORT_TIMEOUT = 1.0
# Families that only grow: a dead worker's last report of them is kept.
_CUMULATIVE = ("counter", "histogram")


@dataclass
class _Worker:
    process: BaseProcess
    reports: Connection  # the request-reply pipe of its figures
    last: Families = field(default_factory=list)


class Workers:
    """`count` processes, each running `serve(lab, listener)` on the shared listener."""

    def __init__(self, lab: Lab, listener: socket.socket, count: int, serve: Serve) -> None:
        self.lab = lab
        self.listener = listener
        self.count = count
        self.serve = serve
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # one scrape at a time talks to the workers
        self._workers: list[_Worker] = []
        self._retired: list[Families] = []  # the dead workers' counters
        self._asked = itertools.count()
        if isinstance(lab.metrics, Metrics):
            lab.metrics.registry.reporters.append(self.report)

    def run(self) -> None:
        """Keep `count` workers alive until the server stops; then stop them
        and wait for their drain (returns by the drain deadline, plus a second)."""
        with self._lock:
            self._workers = [self._start() for _ in range(self.count)]
        self.lab.on_stop(self._terminate)
        while not self.lab.stopping.is_set():
            sentinels = [worker.process.sentinel for worker in self._workers]
            wait([*sentinels, self.lab.stop_signal], timeout=SIGNAL_CHECK)
            if self.lab.stopping.is_set():
                break
            for index, worker in enumerate(self._workers):
                if worker.process.exitcode is not None:
                    log.warning("worker %d exited (%s); starting another",
                                worker.process.pid, worker.process.exitcode)  # fmt: skip
                    with self._lock:
                        self._retire(worker)
                        self._workers[index] = self._start()
        for worker in self._workers:
            worker.process.join(max(0.0, self.lab.drain_deadline - time.monotonic()) + 1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(self.lab.settings, self.listener, theirs, self.serve, os.getpid()),
            name="fib-worker",
            daemon=False,  # it drains its own connections on the way out
        )
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _terminate(self) -> None:
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: drain and exit

    def _retire(self, worker: _Worker) -> None:
        """Keep what a dead worker counted, as of its last report (what it
        counted since is lost with it)."""
        kept = [family for family in worker.last if family.type in _CUMULATIVE]
        if kept:
            self._retired.append(kept)
        worker.reports.close()

    def report(self) -> list[Families]:
        """Every worker's families, fresh, and the dead ones' last counters."""
        with self._lock:
            asked = next(self._asked)
            live = [worker for worker in self._workers if worker.process.is_alive()]
            for worker in live:
                try:
                    worker.reports.send(asked)
                except OSError:
                    continue
            for worker in live:
                # Its answer to this question; a late answer to an earlier one
                # is still its figures at some moment: kept, and read on.
                try:
                    while worker.reports.poll(REPORT_TIMEOUT):
                        answered, families = worker.reports.recv()
                        worker.last = families
                        if answered == asked:
                            break
                except (EOFError, OSError):
                    pass  # it just died: its last report stands
            return [*self._retired, *(worker.last for worker in self._workers)]


def _worker_main(
    settings: Settings, listener: socket.socket, reports: Connection, serve: Serve, server_pid: int
) -> None:
    """A worker: serve clients until SIGTERM, drain, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the server decides
    threading.Thread(target=exit_with_server, args=(server_pid,), daemon=True).start()
    metrics: NullMetrics = NullMetrics()
    if settings.metrics:
        metrics = Metrics(
            settings.variant, settings.cpu_source, gil_probe=settings.gil_probe, whole_variant=False
        )
        metrics.start_gil_probe()
        threading.Thread(target=_answer_reports, args=(reports, metrics), daemon=True).start()
    lab = Lab(settings, metrics=metrics)
    # Not install_signal_handlers: shutting the listener down would stop every
    # worker. This one stops accepting within SIGNAL_CHECK.
    signal.signal(signal.SIGTERM, lab.stop)
    listener.settimeout(SIGNAL_CHECK)
    try:
        serve(lab, listener)
    except OSError:
        if not lab.stopping.is_set():  # the server shut the listener: it is stopping
            lab.stop()
    lab.wait_closed()
    lab.save_timeline()
    os._exit(0)


def _answer_reports(reports: Connection, metrics: Metrics) -> None:
    while True:
        try:
            asked = reports.recv()
            reports.send((asked, list(metrics.registry.collect())))
        except (EOFError, OSError):
            return
