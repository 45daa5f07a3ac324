# loadtest/capacity/loadgen.py
#
# The capacity sweep's load generator (docs/design.md §6.4): Locust itself, a
# master with N local worker processes (`locust --processes N`), started once
# and driven through its web API the way a user drives the web UI: each point
# is a POST /swarm (users, host, --fib-rate) and a GET /stop. One gevent
# process tops out at one core; N of them can outrun a Python server on the
# same machine, and each worker's CPU is read from /proc, so that a point where
# a worker used its whole core is known to be the generator's, not the
# server's.
#
# Client latency comes from the master's own /metrics (the lab's exporter:
# microsecond buckets summed over the workers, at most 0.5 s behind them),
# read at both ends of a point's window.

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loadtest.toolbox import machine
from loadtest.toolbox.servers import Samples, Target, scrape

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
READY_TIMEOUT = 60.0  # seconds for the master and its workers to come up
STATE_TIMEOUT = 30.0  # ... for a swarm to be running, or stopped
SPAWN_RATE = 1000  # users/s: a point's users all start within a second


class LoadgenError(RuntimeError):
    """Locust did not start, or refused a swarm (its message is kept)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_tree_cpu(root_pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of root_pid and every descendant alive now."""
    alive = machine.processes()
    tree = {root_pid}
    grew = True
    while grew:
        children = {pid for pid, stat in alive.items() if stat.parent in tree} - tree
        tree |= children
        grew = bool(children)
    return {pid: alive[pid].cpu_seconds for pid in tree if pid in alive}


@dataclass(frozen=True)
class LoadgenCpu:
    """The generator's CPU over a window, in cores on average."""

    total_cores: float
    busiest_cores: float  # its busiest process: one gevent process runs on one core
    processes: int


def loadgen_cpu_between(
    before: dict[int, float], after: dict[int, float], seconds: float
) -> LoadgenCpu:
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    return LoadgenCpu(
        total_cores=round(sum(used.values()) / seconds, 3),
        busiest_cores=round(max(used.values(), default=0.0) / seconds, 3),
        processes=len(used),
    )


class LocustSwarm:
    """`locust -f loadtest/locustfile.py --processes N ShortUser`, web UI on a free port."""

    def __init__(self, processes: int, *, cpus: set[int] | None = None, log: Path | None = None):
        if processes < 1:
            raise ValueError(f"the load generator needs >= 1 worker process, got {processes}")
        self.processes = processes
        self.cpus = cpus
        self.log_path = log
        self.web = f"http://127.0.0.1:{free_port()}"
        self.metrics = Target("loadgen", "127.0.0.1", 0, None)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> LocustSwarm:
        web_port = urllib.parse.urlsplit(self.web).port
        metrics_port, master_port = free_port(), free_port()
        self.metrics = Target("loadgen", "127.0.0.1", 0, f"http://127.0.0.1:{metrics_port}/metrics")
        command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
            "--processes", str(self.processes),
            "--web-host", "127.0.0.1", "--web-port", str(web_port),
            # not Locust's default 5557: another Locust (the lab's own) may hold
            # it; the forked workers connect to --master-port
            "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
            "--master-port", str(master_port),
            "--fib-metrics-port", str(metrics_port), "--fib-metrics-linger", "0",
            "--loglevel", "WARNING", "ShortUser",
        ]  # fmt: skip
        if self.log_path is not None:
            self._log = self.log_path.open("wb")
        else:
            self._log = tempfile.TemporaryFile()
        cpus = self.cpus
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the workers are its children: one group to stop
            # forked workers inherit the master's CPUs
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self._log is not None:
            self._log.close()

    def log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.web}/stats/requests", timeout=10) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LoadgenError(f"locust exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if self.stats().get("worker_count") == self.processes:
                    return
            time.sleep(0.2)
        raise LoadgenError(
            f"locust's {self.processes} workers were not ready in {READY_TIMEOUT:g} s:\n"
            f"{self.log_tail()}"
        )

    def _wait_state(self, done: str, users: int) -> None:
        deadline = time.monotonic() + STATE_TIMEOUT
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats.get("state") == done and stats.get("user_count") == users:
                return
            time.sleep(0.05)
        raise LoadgenError(
            f"locust not {done} with {users} users after {STATE_TIMEOUT:g} s: "
            f"state {stats.get('state')}, {stats.get('user_count')} users"
        )

    def start(self, target: Target, users: int, *, rate: float = 0.0, short_n: int = 1) -> None:
        """`users` ShortUsers on `target`; rate > 0: open loop, rate requests/s in all."""
        form = {
            "user_count": str(users),
            "spawn_rate": str(SPAWN_RATE),
            "host": f"tcp://{target.host}:{target.port}",
            "fib_rate": repr(rate / users) if rate > 0 else "0.0",
            "fib_short_n": str(short_n),
        }
        request = urllib.request.Request(
            f"{self.web}/swarm", data=urllib.parse.urlencode(form).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        if not answer.get("success"):
            raise LoadgenError(f"locust refused the swarm: {answer.get('message')}")
        # Not waiting for Locust's "running": its master learns the user
        # counts from the workers' 3-second reports and waits a second for
        # them. The users run within 1/SPAWN_RATE s each; a point's warm-up
        # covers that.

    def stop(self) -> None:
        request = urllib.request.Request(f"{self.web}/stop", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        self._wait_state("stopped", 0)

    def scrape(self) -> Samples:
        """The master's /metrics: every worker's requests, summed."""
        return scrape(self.metrics)

    def cpu(self) -> dict[int, float]:
        """CPU seconds per process of the generator (master and workers)."""
        assert self.process is not None
        return process_tree_cpu(self.process.pid)
