# loadtest/connections/fairness.py
#
# Fairness (docs/design.md §3.3, §6.10): one client pipelines 64 KiB of
# `1\n` (32,768 requests), reads every reply, and again, while a fresh
# client asks fib(1) every PROBE_PERIOD on its own connection and, every
# CONNECT_EVERY-th turn instead, opens a new connection and times it until
# its first reply. An event loop that answers every line of a read before
# it runs anything else makes the fresh client wait for the whole batch; a
# handler that yields to its loop between lines does not.
#
# The pipelining client runs in a thread of this process: it spends its time
# in sendall and recv of 64 KiB and more, with the GIL released, so the
# probe beside it is not delayed by it (its own latency alone, without the
# pipeline, is measured first: the "alone" figures).

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from loadtest.connections.clients import (
    CONNECT_TIMEOUT,
    FIB,
    connected,
    percentiles_ms,
    read_reply,
)

BATCH = b"1\n" * 32_768  # 64 KiB of requests
PROBE_PERIOD = 0.01
CONNECT_EVERY = 5  # one turn in five opens a new connection instead
PROBE_TIMEOUT = 5.0  # a reply later than this ends the probe (a stall is a figure too)
MAX_BATCHES = 10_000


@dataclass(frozen=True)
class ProbeResult:
    requests: int
    latency_ms: dict[str, float | None]
    connects: int
    connect_ms: dict[str, float | None]  # connect until the first reply
    failure: str | None


@dataclass(frozen=True)
class FairnessResult:
    alone: ProbeResult
    beside: ProbeResult
    batches: int  # whole 64 KiB batches answered meanwhile
    pipeline_rps: float  # the pipelining client's replies per second
    pipeline_failure: str | None


def probe(host: str, port: int, seconds: float, stop: threading.Event | None = None) -> ProbeResult:
    """The fresh client: fib(1) every PROBE_PERIOD, a new connection every
    CONNECT_EVERY-th turn, for `seconds` (or until `stop`)."""
    latencies: list[float] = []
    connects: list[float] = []
    failure = None
    end = time.perf_counter() + seconds
    turn = 0
    try:
        with connected(host, port, PROBE_TIMEOUT) as sock:
            next_at = time.perf_counter()
            while time.perf_counter() < end and not (stop and stop.is_set()):
                turn += 1
                started = time.perf_counter()
                if turn % CONNECT_EVERY == 1:  # the first turn too: a short probe has one
                    with connected(host, port, PROBE_TIMEOUT) as fresh:
                        fresh.sendall(FIB.request)
                        read_reply(fresh, FIB.reply)
                    connects.append(time.perf_counter() - started)
                else:
                    sock.sendall(FIB.request)
                    read_reply(sock, FIB.reply)
                    latencies.append(time.perf_counter() - started)
                next_at += PROBE_PERIOD
                time.sleep(max(0.0, next_at - time.perf_counter()))
    except TimeoutError:
        failure = f"no reply within {PROBE_TIMEOUT:g} s"
    except (OSError, ValueError) as error:
        failure = str(error)
    return ProbeResult(
        len(latencies), percentiles_ms(latencies), len(connects), percentiles_ms(connects), failure
    )


class Pipeliner(threading.Thread):
    """Sends BATCH, reads its 64 KiB of replies, again, until told to stop."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.address = (host, port)
        self.stop = threading.Event()
        self.started_batches = threading.Event()
        self.batches = 0
        self.seconds = 0.0
        self.failure: str | None = None

    def run(self) -> None:
        started = time.perf_counter()
        try:
            with socket.create_connection(self.address, timeout=CONNECT_TIMEOUT) as sock:
                sock.settimeout(PROBE_TIMEOUT * 2)
                while not self.stop.is_set() and self.batches < MAX_BATCHES:
                    self.started_batches.set()
                    sock.sendall(BATCH)
                    left = len(BATCH)  # every reply is `1\n`, as long as its request
                    while left > 0:
                        chunk = sock.recv(1 << 20)
                        if not chunk:
                            raise ConnectionError("the server closed the pipelining connection")
                        left -= len(chunk)
                    self.batches += 1
        except (OSError, ValueError) as error:
            self.failure = str(error) or type(error).__name__
        finally:
            self.seconds = time.perf_counter() - started
            self.started_batches.set()


def fairness(host: str, port: int, seconds: float) -> FairnessResult:
    """The probe alone for a second, then beside the pipelining client for `seconds`."""
    alone = probe(host, port, min(1.0, seconds))
    pipeliner = Pipeliner(host, port)
    pipeliner.start()
    pipeliner.started_batches.wait(CONNECT_TIMEOUT * 2)
    try:
        beside = probe(host, port, seconds)
    finally:
        pipeliner.stop.set()
        pipeliner.join(PROBE_TIMEOUT * 3)
    rps = pipeliner.batches * len(BATCH) / 2 / pipeliner.seconds if pipeliner.seconds else 0.0
    return FairnessResult(alone, beside, pipeliner.batches, round(rps, 1), pipeliner.failure)
