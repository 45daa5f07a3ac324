# tests/bench/hostile.py
#
# The reliability benchmark (`make bench-hostile`, `python -m tests.bench.hostile`):
# a program that prints figures, not a test. Every variant runs as a real
# subprocess on 127.0.0.1, a fresh one for each of five measurements:
#
#   1. fuzz: random request lines (valid numbers, blanks, \r, signs, huge
#      numbers, non-ASCII digits, binary garbage, over-long lines), cut at
#      random points into sends, over a few connections at once; every reply
#      is checked against the reference model of docs/design.md §2 in
#      tests/services/core/test_protocol.py;
#   2. 50 clients that each send 300,000 empty lines and read nothing: the
#      server's memory growth and how long it takes to close them all;
#   3. 2,000 idle connections, then fib(1) round trips on one more;
#   4. SIGTERM while a client pipelines: what is answered, how it ends;
#   5. (process-pool variants) SIGKILL a pool worker 5 times under load, then
#      what the server costs and holds once idle.
#
# Every loop is bounded in requests and in time. The figures go into one
# JSON document (report.json with --out DIR: the run's parameters, the
# machine's load, per variant what each part measured, and the provenance
# of loadtest/toolbox/provenance.py); the Markdown (stdout, and report.md)
# is rendered from that document alone by render(), one table row per
# variant and notes on anything that looks wrong. `--render DIR` renders a
# stored report.json again without measuring.

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import random
import resource
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from loadtest.talk.perf1 import positive
from loadtest.toolbox import provenance
from services import VARIANTS
from services.core.settings import parse_settings
from tests.bench import write_report as write_bench_report
from tests.bench.server import variant_list
from tests.conftest import (
    POOL_VARIANTS,
    Server,
    group_cpu_seconds,
    pool_workers,
    read_line,
    rss_bytes,
    send_without_reading,
    start_server,
    thread_count,
)
from tests.services.core.test_protocol import reference_outcomes
from tests.services.test_hostile_clients import RSS_GROWTH_PER_CLIENT

SCHEMA = 1  # of report.json; raise it when a key changes meaning or goes away

# The fuzz asks at most fib(25) (~4 ms) so that 20,000 lines stay quick;
# larger numbers are out-of-range by the server's --max-n.
FUZZ_MAX_N = 25
MAX_LINE = 64  # the default --max-line
FUZZ_CLIENTS = 4  # connections open at once
FUZZ_SECONDS = 240.0  # the fuzz stops starting connections after this
FUZZ_PER_CONNECTION = (20, 400)  # inputs per connection, at random
FUZZ_MAX_CUTS = 30  # random points a connection's bytes are cut at into sends
UNFINISHED_SHARE = 0.1  # of the connections, that end with an unfinished line
HUGE_EXTRA_DIGITS = (7, 60)  # a huge number: "1" and this many more digits

NON_READING_CLIENTS = 50
NEVER_READ = b"\n" * 300_000  # 300 KB asking for 15.9 MB of ERR not-an-integer
NON_READING_IDLE_TIMEOUT = 3

IDLE_CONNECTIONS = 2_000
IDLE_MAX_CONNECTIONS = 3_000  # the server's --max-connections for them
ROUND_TRIPS = 200  # fib(1) on the extra connection

PIPELINED_MAX_N = 20  # pipelining clients ask fib(1..20), round and round

SIGTERM_AFTER = 1.0
SIGTERM_IN_FLIGHT = 64
SIGTERM_READ_LIMIT = 20.0  # seconds of reading before giving up on the server
EXIT_WAIT = 15.0

KILLS = 5
LOAD_CLIENTS = 4
LOAD_IN_FLIGHT = 16
IDLE_CPU_SECONDS = 5.0
SETTLE_SECONDS = 1.0  # after the load stopped, before the idle CPU is measured


def fibonacci_table(top: int) -> list[int]:
    """fib(0..top), iteratively: a model independent of the server's recursion."""
    table = [0, 1]
    while len(table) <= top:
        table.append(table[-1] + table[-2])
    return table[: top + 1]


FIB = fibonacci_table(45)
T = TypeVar("T")


def pipelined_n(index: int) -> int:
    """The n of the index-th pipelined line: fib(1..20) round and round."""
    return 1 + index % PIPELINED_MAX_N


def pipelined_lines(start: int, count: int) -> bytes:
    return b"".join(b"%d\n" % pipelined_n(i) for i in range(start, start + count))


def expected_reply(outcome: int | str) -> bytes:
    """The reply line (without its \\n) for one reference outcome; an error
    reply is checked up to its code (its text is free)."""
    if isinstance(outcome, int):
        return b"%d" % FIB[outcome]
    return b"ERR %s " % outcome.encode()


def reply_matches(reply: bytes, outcome: int | str) -> bool:
    expected = expected_reply(outcome)
    return reply.startswith(expected) if isinstance(outcome, str) else reply == expected


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def still_answering(server: Server) -> bool:
    if server.process.poll() is not None:
        return False
    try:
        return server.ask(b"10\n", timeout=10) == b"55\n"
    except OSError:
        return False


def exit_text(server: Server) -> str:
    code = server.process.poll()
    return "still running" if code is None else f"exited with status {code}"


def tracebacks(server: Server) -> int:
    return sum("Traceback" in line for line in list(server.output))


@contextlib.contextmanager
def running(variant: str, *args: str) -> Iterator[Server]:
    server = start_server(variant, *args)
    try:
        yield server
    finally:
        server.close()


def wait_no_connections(server: Server) -> None:
    """Until the readiness probe's connection is gone."""
    wait_until(lambda: server.metric("fib_connections_active") == 0, 5)


# -- 1. fuzz -------------------------------------------------------------------

NON_ASCII = ["٤٢", "４２", "\u00a05", "5\u00a0", "१२", "߁", "²", "Ⅻ", "٣\u200b", "๓"]
EDGE_BLANKS = [b"", b"", b" ", b"\t", b"  \t ", b"\x0b", b"\x0c"]


def random_input(rng: random.Random) -> tuple[bytes, bool]:
    """One fuzz input and whether it must end its connection (line-too-long)."""
    kind = rng.choices(
        ["valid", "blank", "cr", "sign", "range", "huge", "unicode", "garbage", "edge", "long"],
        weights=[40, 8, 6, 8, 6, 6, 6, 12, 6, 2],
    )[0]
    end = rng.choice([b"\n", b"\n", b"\r\n"])
    if kind == "valid":
        number = b"0" * rng.choice([0, 0, 0, 1, 3]) + b"%d" % rng.randint(0, FUZZ_MAX_N)
        if rng.random() < 0.05:
            number = b"-0"
        return rng.choice(EDGE_BLANKS[:5]) + number + rng.choice(EDGE_BLANKS[:5]) + end, False
    if kind == "blank":
        return rng.choice([b"", b" ", b"\t \t", b"\r"]) + end, False
    if kind == "cr":
        return rng.choice([b"5\r\r\n", b"\r\r\n", b"5\rx\n", b"\r5\n", b"5\r \n", b"\r"]), False
    if kind == "sign":
        return rng.choice([b"+5", b"-3", b"--1", b"-", b"+", b"- 1", b"+-2", b"5-"]) + end, False
    if kind == "range":
        return b"%d" % rng.choice(
            [rng.randint(FUZZ_MAX_N + 1, 999), -rng.randint(1, 99)]
        ) + end, False
    if kind == "huge":
        extra = rng.randint(*HUGE_EXTRA_DIGITS)
        digits = bytes(rng.choice(b"0123456789") for _ in range(extra))
        return rng.choice([b"", b"-"]) + b"1" + digits + b"\n", False
    if kind == "unicode":
        return rng.choice(NON_ASCII).encode() + end, False
    if kind == "garbage":  # may hold \n and \r of its own
        return rng.randbytes(rng.randint(1, 40)) + b"\n", False
    if kind == "edge":  # at the line limit: 64 bytes with the \n pass, 65 do not
        body_length = MAX_LINE - 1 + rng.choice([-1, 0, 0, 1])
        return b"0" * (body_length - 1) + b"7\n", body_length >= MAX_LINE
    # Over-long: bytes without a \n well past the limit, then one.
    return rng.choice([b"9", b"x", b" "]) * rng.randint(MAX_LINE + 1, 20_000) + b"\n", True


@dataclass
class FuzzStream:
    """What one connection sends (already cut into sends) and what it must get."""

    inputs: int
    sends: list[bytes]
    expected: list[int | str]
    pauses: list[bool]


def fuzz_streams(rng: random.Random, total_inputs: int) -> list[FuzzStream]:
    streams: list[FuzzStream] = []
    made = 0
    while made < total_inputs:
        pieces: list[bytes] = []
        wanted = min(rng.randint(*FUZZ_PER_CONNECTION), total_inputs - made)
        while len(pieces) < wanted:
            piece, closes = random_input(rng)
            pieces.append(piece)
            if closes:  # a few lines after it, which must not be answered
                pieces += [b"%d\n" % rng.randint(0, 9) for _ in range(rng.randint(0, 3))]
                break
        if rng.random() < UNFINISHED_SHARE:
            pieces.append(b"12")  # an unfinished line at EOF: dropped, not answered
        made += len(pieces)
        stream = b"".join(pieces)
        cut_count = rng.randint(0, min(FUZZ_MAX_CUTS, len(stream) - 1))
        cuts = sorted(rng.sample(range(1, len(stream)), cut_count))
        sends = [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]
        expected = reference_outcomes(stream, FUZZ_MAX_N, MAX_LINE)
        pauses = [rng.random() < 0.1 for _ in sends]
        streams.append(FuzzStream(len(pieces), sends, expected, pauses))
    return streams


@dataclass
class FuzzTally:
    inputs: int = 0
    connections: int = 0
    replies_checked: int = 0
    wrong: int = 0
    unanswered: int = 0
    resets: int = 0
    timeouts: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: FuzzTally) -> None:
        self.inputs += other.inputs
        self.connections += other.connections
        self.replies_checked += other.replies_checked
        self.wrong += other.wrong
        self.unanswered += other.unanswered
        self.resets += other.resets
        self.timeouts += other.timeouts
        self.examples += other.examples


def fuzz_one(server: Server, stream: FuzzStream, tally: FuzzTally) -> None:
    received = bytearray()
    with server.connect(timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for data, pause in zip(stream.sends, stream.pauses, strict=True):
                sock.sendall(data)
                if pause:  # let this piece arrive on its own
                    time.sleep(0.001)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed after line-too-long; what it sent is read below
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            tally.resets += 1
        except TimeoutError:
            tally.timeouts += 1
    tally.inputs += stream.inputs
    tally.connections += 1
    *replies, unfinished = bytes(received).split(b"\n")
    complete = len(replies)
    if unfinished:
        replies.append(unfinished)  # a reply without its \n: checked, and wrong
    tally.replies_checked += len(replies)
    for index, reply in enumerate(replies):
        outcome = stream.expected[index] if index < len(stream.expected) else None
        if outcome is None or index >= complete or not reply_matches(reply, outcome):
            tally.wrong += 1
            if len(tally.examples) < 3:
                want = "nothing" if outcome is None else repr(expected_reply(outcome))
                tally.examples.append(f"reply {index} was {reply[:60]!r}, expected {want}")
    tally.unanswered += max(0, len(stream.expected) - len(replies))


@dataclass
class Fuzz:
    tally: FuzzTally
    crashed: bool
    seconds: float
    tracebacks: int

    def record(self) -> dict[str, Any]:
        tally = self.tally
        return {
            "inputs": tally.inputs,
            "connections": tally.connections,
            "replies_checked": tally.replies_checked,
            "wrong": tally.wrong,
            "unanswered": tally.unanswered,
            "resets": tally.resets,
            "timeouts": tally.timeouts,
            "crashed": self.crashed,
            "seconds": round(self.seconds, 3),
            "tracebacks": self.tracebacks,
        }


def measure_fuzz(variant: str, inputs: int, seed: int, notes: list[str]) -> Fuzz:
    streams = fuzz_streams(random.Random(f"{seed}-{variant}"), inputs)
    work: queue.SimpleQueue[FuzzStream] = queue.SimpleQueue()
    for stream in streams:
        work.put(stream)
    tallies = [FuzzTally() for _ in range(FUZZ_CLIENTS)]
    errors: list[str] = []
    with running(variant, "--max-n", str(FUZZ_MAX_N)) as server:
        started = time.monotonic()
        deadline = started + FUZZ_SECONDS

        def client(tally: FuzzTally) -> None:
            while time.monotonic() < deadline:
                try:
                    stream = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    fuzz_one(server, stream, tally)
                except OSError as error:  # connect refused: the server is gone
                    errors.append(f"{type(error).__name__}: {error}")
                    return

        threads = [threading.Thread(target=client, args=(t,)) for t in tallies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        total = FuzzTally()
        for tally in tallies:
            total.add(tally)
        crashed = not still_answering(server)
        if crashed:
            notes.append(f"fuzz: the server no longer answers ({exit_text(server)})")
        notes += [f"fuzz: {example}" for example in total.examples]
        notes += [f"fuzz: a client stopped: {error}" for error in errors[:3]]
        logged = tracebacks(server)
    return Fuzz(total, crashed, seconds, logged)


# -- 2. clients that never read --------------------------------------------------


@dataclass
class NonReading:
    rss_before_mib: float
    rss_growth_mib: float
    seconds_to_close: float | None  # None: not all closed within the limit
    closed: int
    idle_timeouts: int
    replies: int  # lines the server answered them, until all closed or the limit
    reply_bytes: int  # one `ERR not-an-integer` reply, \n included
    tracebacks: int

    def record(self) -> dict[str, Any]:
        return {
            "rss_before_mib": round(self.rss_before_mib, 3),
            "rss_growth_mib": round(self.rss_growth_mib, 3),
            "seconds_to_close": None
            if self.seconds_to_close is None
            else round(self.seconds_to_close, 3),
            "closed": self.closed,
            "idle_timeouts": self.idle_timeouts,
            "replies": self.replies,
            "reply_bytes": self.reply_bytes,
            "tracebacks": self.tracebacks,
        }


def measure_non_reading(variant: str, limit: float, notes: list[str]) -> NonReading:
    with running(variant, "--idle-timeout", str(NON_READING_IDLE_TIMEOUT)) as server:
        wait_no_connections(server)
        # As many polite clients first: what any 50 connections cost (thread
        # stacks, buffers, allocator arenas) is in the baseline. The first
        # sends what the non-readers send: the length of their reply.
        reply_bytes = 0
        for index in range(NON_READING_CLIENTS):
            with server.connect() as sock:
                sock.sendall(NEVER_READ[:1] if index == 0 else b"1\n")
                reply = read_line(sock)
                reply_bytes = reply_bytes or len(reply)
        wait_until(lambda: server.metric("fib_connections_active") == 0, 10)
        accepted_before = server.metric("fib_connections_total")
        replies_before = server.metric("fib_requests_total")
        timeouts_before = server.metric("fib_errors_total", code="idle-timeout")
        before = peak = rss_bytes(server.pid) / 2**20
        clients = [server.connect() for _ in range(NON_READING_CLIENTS)]
        try:
            started = time.monotonic()
            for sock in clients:
                send_without_reading(sock, NEVER_READ)
            closed_after: float | None = None
            closed = 0
            while time.monotonic() - started < limit:
                peak = max(peak, rss_bytes(server.pid) / 2**20)
                # sync accepts them one after the other: all accepted, none open.
                accepted = server.metric("fib_connections_total") - accepted_before
                closed = int(accepted - server.metric("fib_connections_active"))
                if accepted >= NON_READING_CLIENTS and closed >= NON_READING_CLIENTS:
                    closed_after = time.monotonic() - started
                    break
                time.sleep(0.1)
            replies = int(server.metric("fib_requests_total") - replies_before)
            idle_timeouts = int(
                server.metric("fib_errors_total", code="idle-timeout") - timeouts_before
            )
        finally:
            for sock in clients:
                sock.close()
        if not still_answering(server):
            notes.append(f"non-reading: the server no longer answers ({exit_text(server)})")
        logged = tracebacks(server)
    return NonReading(
        before, peak - before, closed_after, closed, idle_timeouts, replies, reply_bytes, logged
    )


# -- 3. many idle connections ------------------------------------------------------


@dataclass
class ManyConnections:
    admitted: int
    median_ms: float | None
    up: bool

    def record(self) -> dict[str, Any]:
        median = None if self.median_ms is None else round(self.median_ms, 4)
        return {"admitted": self.admitted, "median_ms": median, "up": self.up}


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure_many_connections(variant: str, notes: list[str]) -> ManyConnections:
    with running(variant, "--max-connections", str(IDLE_MAX_CONNECTIONS)) as server:
        wait_no_connections(server)
        idle: list[socket.socket] = []
        try:
            idle.extend(server.connect(timeout=10) for _ in range(IDLE_CONNECTIONS))
            wait_until(lambda: server.metric("fib_connections_active") >= IDLE_CONNECTIONS, 30, 0.2)
            admitted = int(server.metric("fib_connections_active"))
            times = []
            median_ms: float | None = None
            try:
                with server.connect(timeout=10) as sock:
                    for _ in range(ROUND_TRIPS):
                        start = time.perf_counter()
                        sock.sendall(b"1\n")
                        if sock.recv(16) != b"1\n":
                            notes.append("many connections: fib(1) got a wrong reply")
                            break
                        times.append(time.perf_counter() - start)
                median_ms = statistics.median(times) * 1e3 if times else None
            except OSError as error:
                notes.append(f"many connections: the extra connection failed: {error!r}")
            up = still_answering(server)
        finally:
            for sock in idle:
                sock.close()
        if not up:
            notes.append(f"many connections: the server no longer answers ({exit_text(server)})")
    return ManyConnections(admitted, median_ms, up)


# -- 4. SIGTERM under pipelined load -----------------------------------------------


@dataclass
class Sigterm:
    sent_before: int
    replies: int
    unanswered_before: int
    wrong: int
    end: str  # EOF, reset, timeout
    exit_seconds: float | None
    status: int | None
    signalled: bool = True  # False: no reply within the first second, no SIGTERM
    tracebacks: int = 0

    def record(self) -> dict[str, Any]:
        return {
            "signalled": self.signalled,
            "sent_before": self.sent_before,
            "replies": self.replies,
            "unanswered_before": self.unanswered_before,
            "wrong": self.wrong,
            "end": self.end,
            "exit_seconds": None if self.exit_seconds is None else round(self.exit_seconds, 3),
            "status": self.status,
            "tracebacks": self.tracebacks,
        }


def measure_sigterm(variant: str, notes: list[str]) -> Sigterm:
    with running(variant) as server:
        answered, sent, sent_before, wrong = 0, SIGTERM_IN_FLIGHT, -1, 0
        signalled_at = 0.0
        exited_at: list[float] = []
        pending = b""
        end = "EOF"

        def wait_exit() -> None:
            with contextlib.suppress(Exception):
                server.process.wait(EXIT_WAIT + SIGTERM_READ_LIMIT)
                exited_at.append(time.monotonic())

        waiter = threading.Thread(target=wait_exit, daemon=True)
        with server.connect(timeout=5) as sock:
            sock.sendall(pipelined_lines(0, sent))
            started = time.monotonic()
            try:
                while chunk := sock.recv(65536):
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        if line != b"%d" % FIB[pipelined_n(answered)]:
                            wrong += 1
                        answered += 1
                    now = time.monotonic()
                    if sent_before < 0 and now - started > SIGTERM_AFTER:
                        sent_before, signalled_at = sent, time.monotonic()
                        server.process.send_signal(signal.SIGTERM)
                        waiter.start()
                    if now - started > SIGTERM_READ_LIMIT:
                        end = "still open"
                        break
                    with contextlib.suppress(OSError):  # the server may have closed
                        sock.sendall(pipelined_lines(sent, len(lines)))
                        sent += len(lines)
            except ConnectionResetError:
                end = "reset"
            except TimeoutError:
                end = "timeout"
        if sent_before < 0:
            return Sigterm(0, answered, 0, wrong, end, None, None, False, tracebacks(server))
        waiter.join(EXIT_WAIT + SIGTERM_READ_LIMIT)
        status = server.process.poll()
        if server.reader:
            server.reader.join(2)  # the server's last lines
        exit_seconds = exited_at[0] - signalled_at if exited_at else None
        if status is None:
            notes.append(f"SIGTERM: the server did not exit within {EXIT_WAIT:g} s")
        elif "stopped (drained)" not in "".join(server.output):
            notes.append("SIGTERM: the server's log does not say 'stopped (drained)'")
        logged = tracebacks(server)
    unanswered = max(0, sent_before - answered)
    return Sigterm(
        sent_before, answered, unanswered, wrong, end, exit_seconds, status, True, logged
    )


# -- 5. pool workers killed ------------------------------------------------------------


@dataclass
class LoadTally:
    ok: int = 0
    server_errors: int = 0
    wrong: int = 0
    broken: list[str] = field(default_factory=list)


def pipelining_client(server: Server, stop: threading.Event, tally: LoadTally) -> None:
    """Pipelines fib(1..20), LOAD_IN_FLIGHT lines in flight, until `stop`;
    then reads the replies still due."""
    try:
        with server.connect(timeout=15) as sock:
            sent = answered = 0
            sock.sendall(pipelined_lines(0, LOAD_IN_FLIGHT))
            sent = LOAD_IN_FLIGHT
            pending = b""
            deadline = time.monotonic() + 120
            while answered < sent and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    tally.broken.append(f"EOF after {answered} replies")
                    return
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line == b"%d" % FIB[pipelined_n(answered)]:
                        tally.ok += 1
                    elif line.startswith(b"ERR server-error "):
                        tally.server_errors += 1
                    else:
                        tally.wrong += 1
                    answered += 1
                if not stop.is_set():
                    sock.sendall(pipelined_lines(sent, len(lines)))
                    sent += len(lines)
            if answered < sent:
                tally.broken.append(f"{sent - answered} replies missing after 120 s")
    except OSError as error:
        tally.broken.append(f"{type(error).__name__}: {error}")


@dataclass
class WorkerKills:
    kills: int
    replies_ok: int
    server_errors: int
    wrong: int
    idle_cpu: float
    workers: int
    workers_at_start: int
    other_processes: int  # in the server's group besides the workers (the resource tracker)
    threads: int
    tracebacks: int

    def record(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "replies_ok": self.replies_ok,
            "server_errors": self.server_errors,
            "wrong": self.wrong,
            "idle_cpu_seconds": round(self.idle_cpu, 4),
            "workers": self.workers,
            "workers_at_start": self.workers_at_start,
            "other_processes": self.other_processes,
            "threads": self.threads,
            "tracebacks": self.tracebacks,
        }


def measure_worker_kills(variant: str, notes: list[str]) -> WorkerKills:
    with running(variant) as server:
        first_workers = set(pool_workers(server))
        stop = threading.Event()
        tallies = [LoadTally() for _ in range(LOAD_CLIENTS)]
        clients = [
            threading.Thread(target=pipelining_client, args=(server, stop, tally))
            for tally in tallies
        ]
        for client in clients:
            client.start()
        time.sleep(0.5)
        kills = 0
        try:
            for _ in range(KILLS):
                workers = set(pool_workers(server))
                if not workers:
                    notes.append(f"worker kills: no worker left after {kills} kills")
                    break
                os.kill(min(workers), signal.SIGKILL)
                kills += 1

                def replaced(old: set[int] = workers) -> bool:
                    # The broken pool is gone, all of it, and a full new one runs.
                    now = set(pool_workers(server))
                    return not now & old and len(now) == len(first_workers)

                if not wait_until(replaced, 10):
                    notes.append(
                        f"worker kills: 10 s after kill {kills} the workers are "
                        f"{sorted(pool_workers(server))}, before it {sorted(workers)}"
                    )
                time.sleep(0.5)
        finally:
            stop.set()
            for client in clients:
                client.join(130)
        time.sleep(SETTLE_SECONDS)  # the last replacements settle
        cpu_before = group_cpu_seconds(server.pid)
        time.sleep(IDLE_CPU_SECONDS)
        idle_cpu = group_cpu_seconds(server.pid) - cpu_before
        worker_count = len(pool_workers(server))
        threads = thread_count(server.pid)
        others = len(server.descendants()) - worker_count
        load = LoadTally()
        for tally in tallies:
            load.ok += tally.ok
            load.server_errors += tally.server_errors
            load.wrong += tally.wrong
            load.broken += tally.broken
        notes += [f"worker kills: a load client ended: {broken}" for broken in load.broken[:4]]
        if not still_answering(server):
            notes.append(f"worker kills: the server no longer answers ({exit_text(server)})")
        logged = tracebacks(server)
    return WorkerKills(
        kills, load.ok, load.server_errors, load.wrong, idle_cpu, worker_count,
        len(first_workers), others, threads, logged,
    )  # fmt: skip


# -- the report: report.json, and the Markdown rendered from it alone --------------------


class ReportError(ValueError):
    """A report.json that cannot be rendered."""


TITLE = "# Reliability under hostile clients"
REPORT_KEYS = ("provenance", "parameters", "load", "variants")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as the code used them (report.json's "parameters")."""
    server = parse_settings([args.variants[0]])  # the defaults a server gets here
    return {
        "variants": list(args.variants),
        "fuzz_inputs": args.fuzz_inputs,
        "seed": args.seed,
        "close_limit_s": args.close_limit,
        "fuzz_max_n": FUZZ_MAX_N,
        "max_line": MAX_LINE,
        "fuzz_clients": FUZZ_CLIENTS,
        "fuzz_seconds": FUZZ_SECONDS,
        "fuzz_per_connection": list(FUZZ_PER_CONNECTION),
        "fuzz_max_cuts": FUZZ_MAX_CUTS,
        "unfinished_share": UNFINISHED_SHARE,
        "huge_digits": [1 + HUGE_EXTRA_DIGITS[0], 1 + HUGE_EXTRA_DIGITS[1]],
        "non_reading_clients": NON_READING_CLIENTS,
        "non_reading_lines": NEVER_READ.count(b"\n"),
        "non_reading_bytes": len(NEVER_READ),
        "non_reading_idle_timeout_s": NON_READING_IDLE_TIMEOUT,
        "server_max_unsent_bytes": server.max_unsent,
        "conformance_rss_per_client_mib": RSS_GROWTH_PER_CLIENT / 2**20,
        "idle_connections": IDLE_CONNECTIONS,
        "idle_max_connections": IDLE_MAX_CONNECTIONS,
        "round_trips": ROUND_TRIPS,
        "pipelined_max_n": PIPELINED_MAX_N,
        "sigterm_after_s": SIGTERM_AFTER,
        "sigterm_in_flight": SIGTERM_IN_FLIGHT,
        "sigterm_read_limit_s": SIGTERM_READ_LIMIT,
        "exit_wait_s": EXIT_WAIT,
        "kill_variants": [variant for variant in args.variants if variant in POOL_VARIANTS],
        "kills": KILLS,
        "load_clients": LOAD_CLIENTS,
        "load_in_flight": LOAD_IN_FLIGHT,
        "settle_s": SETTLE_SECONDS,
        "idle_cpu_s": IDLE_CPU_SECONDS,
    }


def load_state() -> dict[str, Any]:
    """The machine's load average (1, 5, 15 min) and tasks, from /proc/loadavg."""
    fields = Path("/proc/loadavg").read_text().split()
    running_tasks, total_tasks = fields[3].split("/")
    return {
        "load_average": [float(value) for value in fields[:3]],
        "tasks_running": int(running_tasks),
        "tasks_total": int(total_tasks),
    }


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def columns(p: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("variant", "---"),
        ("fuzz inputs", "---:"),
        ("replies checked", "---:"),
        ("wrong", "---:"),
        ("unanswered", "---:"),
        ("crashes", "---:"),
        (f"{p['non_reading_clients']} non-readers: RSS +MiB", "---:"),
        ("all closed, s", "---:"),
        (f"{p['idle_connections']:,} idle: fib(1) median ms", "---:"),
        ("up", "---"),
        ("SIGTERM: sent before", "---:"),
        ("replies", "---:"),
        ("unanswered", "---:"),
        ("end", "---"),
        ("exit, s", "---:"),
        ("status", "---:"),
        ("kills", "---:"),
        ("ERR server-error", "---:"),
        (f"idle CPU s in {p['idle_cpu_s']:g} s", "---:"),
        ("workers", "---:"),
        ("threads", "---:"),
    ]


def seconds_text(value: float | None, limit: str = "—") -> str:
    return limit if value is None else f"{value:.2f}"


def table_row(p: dict[str, Any], entry: dict[str, Any]) -> str:
    fuzz, non_reading = entry["fuzz"], entry["non_reading"]
    many, sigterm, kills = entry["many_connections"], entry["sigterm"], entry["worker_kills"]
    closed = (
        f"{non_reading['seconds_to_close']:.1f}"
        if non_reading["seconds_to_close"] is not None
        else f"> limit ({non_reading['closed']}/{p['non_reading_clients']})"
    )
    cells = [
        f"`{entry['variant']}`",
        f"{fuzz['inputs']:,}",
        f"{fuzz['replies_checked']:,}",
        f"{fuzz['wrong']}",
        f"{fuzz['unanswered']}",
        "1" if fuzz["crashed"] else "0",
        f"{non_reading['rss_growth_mib']:+.1f}",
        closed,
        "n/a" if many is None else seconds_text(many["median_ms"], "failed"),
        "n/a" if many is None else ("yes" if many["up"] else "**no**"),
        f"{sigterm['sent_before']:,}",
        f"{sigterm['replies']:,}",
        f"{sigterm['unanswered_before']}",
        sigterm["end"],
        seconds_text(sigterm["exit_seconds"], "no exit"),
        "—" if sigterm["status"] is None else str(sigterm["status"]),
    ]
    if kills is None:
        cells += ["n/a"] * 5
    else:
        cells += [
            str(kills["kills"]),
            str(kills["server_errors"]),
            f"{kills['idle_cpu_seconds']:.2f}",
            str(kills["workers"]),
            str(kills["threads"]),
        ]
    return "| " + " | ".join(cells) + " |"


def averages(state: dict[str, Any]) -> str:
    return ", ".join(f"{value:.2f}" for value in state["load_average"])


def about(value: float) -> str:
    """Two significant digits: 53,123 -> 53,000; 2,656,150 -> 2.7 million."""
    if value >= 1e6:
        return f"{value / 1e6:.1f} million"
    digits = len(str(int(value)))
    return f"{round(value, 2 - digits):,.0f}"


def span(values: Sequence[float], form: str = "{:,.0f}") -> str:
    low, high = form.format(min(values)), form.format(max(values))
    return low if low == high else f"{low} to {high}"


def names(entries: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"`{entry['variant']}`" for entry in entries)


def introduction(report: dict[str, Any]) -> str:
    load = report["load"]
    cores = (report["provenance"].get("machine") or {}).get("cores")
    return (
        "The benchmark is `tests/bench/hostile.py` (`make bench-hostile`): every variant in "
        "the table runs as a real subprocess on 127.0.0.1, a fresh server for each part. On this "
        f"{cores}-CPU machine the load average (1, 5, 15 min) was {averages(load['start'])} "
        f"at the start and {averages(load['end'])} at the end, and the CPUs were "
        f"{load['cpu_busy_fraction']:.0%} busy over the {load['run_seconds']:.0f} s run "
        "(this program and its servers included). Counts (fuzz, SIGTERM, kills, workers, "
        "threads) do not depend on the machine; times and RSS do: read them as one run. "
        "The columns are explained under the table."
    )


# Why a variant writes replies to clients that never read slowly, by the
# start of its name; a variant cut at the limit without one is only counted.
SLOW_WRITERS = {
    "sync": "serves one connection at a time, so it takes the clients one after the other",
    "coro": "the talk's scheduler waits in `select` for writability before every send "
    "(each reply registers and unregisters the socket)",
}


def slow_writers(p: dict[str, Any], cut: list[dict[str, Any]]) -> list[str]:
    """A sentence per group of variants that had not closed every non-reader at the limit."""
    clients, limit = p["non_reading_clients"], p["close_limit_s"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in cut:
        key = next((k for k in SLOW_WRITERS if entry["variant"].startswith(k)), "")
        groups.setdefault(key, []).append(entry)
    sentences = []
    for key, entries in groups.items():
        closed = [entry["non_reading"]["closed"] for entry in entries]
        rates = [entry["non_reading"]["replies"] / limit for entry in entries]
        each_took = span([entry["non_reading"]["replies"] / clients for entry in entries])
        if key == "sync":
            each = f", {limit / closed[0]:.1f} s each" if closed[0] else ""
            sentences.append(
                f"`sync` {SLOW_WRITERS[key]}: it had closed {closed[0]} of the {clients} "
                f"after {limit:g} s{each}."
            )
        elif key:
            sentences.append(
                f"The generator-scheduler variants ({names(entries)}) write {span(rates)} "
                f"replies a second to the {clients} clients, because {SLOW_WRITERS[key]}, "
                f"so they had closed {span(closed)} of the {clients} after {limit:g} s, "
                f"by when each client had taken {each_took} replies."
            )
        else:
            sentences.append(
                f"{names(entries)} wrote {span(rates)} replies a second to the {clients} "
                f"clients and had closed {span(closed)} of them after {limit:g} s, by when "
                f"each client had taken {each_took} replies."
            )
    return sentences


def non_readers(report: dict[str, Any]) -> str:
    """Why closing clients that never read takes as long as it does, from the run's figures."""
    p, entries = report["parameters"], report["variants"]
    clients, limit = p["non_reading_clients"], p["close_limit_s"]
    done = [entry for entry in entries if entry["non_reading"]["seconds_to_close"] is not None]
    cut = [entry for entry in entries if entry["non_reading"]["seconds_to_close"] is None]
    if cut:
        some = "one variant needs" if len(cut) == 1 else "some variants need"
        title = (
            f"**Why {some} more than {limit:g} s to close {clients} non-readers.** "
            "It is not a hang."
        )
    else:
        title = f"**What closing {clients} non-readers takes.**"
    sentences = [
        title,
        f"The server closes a non-reader `FIB_IDLE_TIMEOUT` ({p['non_reading_idle_timeout_s']:g} "
        "s here) after the last reply it could write, and every reply written restarts that "
        "deadline.",
    ]
    buffers = (
        f"The server's send buffer is `FIB_MAX_UNSENT` ({p['server_max_unsent_bytes'] / 1024:g} "
        "KiB, doubled by Linux), but the client's loopback receive buffer grows far beyond it"
    )
    reply_bytes = [
        e["non_reading"]["reply_bytes"] for e in entries if e["non_reading"]["reply_bytes"]
    ]
    if done and reply_bytes:
        per_client = statistics.median(e["non_reading"]["replies"] / clients for e in done)
        size = statistics.median(reply_bytes)
        times = [entry["non_reading"]["seconds_to_close"] for entry in done]
        fastest = done[times.index(min(times))]["variant"]
        slowest = done[times.index(max(times))]["variant"]
        took = (
            f"`{fastest}` wrote them in {min(times):.1f} s"
            if len(done) == 1
            else f"the variants that closed all {clients} took from {min(times):.1f} s "
            f"(`{fastest}`) to {max(times):.1f} s (`{slowest}`)"
        )
        sentences.append(
            f"{buffers}: the server answers some {about(per_client)} `ERR not-an-integer` "
            f"lines of {size:g} bytes (about {per_client * size / 1e6:.1f} MB) per client before "
            f"its send blocks (the median over the variants that closed all {clients}), so "
            f"closing all {clients} means writing about {about(per_client * clients)} replies "
            f"first: {took}."
        )
    else:
        sentences.append(f"{buffers}, so many replies are written to each before its send blocks.")
    sentences += slow_writers(p, cut)
    most = max(entry["non_reading"]["rss_growth_mib"] for entry in entries)
    sentences.append(
        "The RSS column shows what those clients cost the process meanwhile: bounded per "
        f"client, at most {max(0.0, most) / clients:.2f} MiB each in this run (the conformance "
        f"suite holds every variant to {p['conformance_rss_per_client_mib']:g} MiB each)."
    )
    return " ".join(sentences)


def legend(p: dict[str, Any]) -> str:
    clients, per_connection = p["non_reading_clients"], p["fuzz_per_connection"]
    low_digits, high_digits = p["huge_digits"]
    return f"""\
Each part runs on a fresh server.
**fuzz**: {p["fuzz_inputs"]:,} random inputs per variant (seed {p["seed"]}: request lines
with valid numbers 0-{p["fuzz_max_n"]}, blanks, `\\r`, signs, out-of-range and
{low_digits}-{high_digits} digit numbers, non-ASCII digits, binary garbage, lines at the
{p["max_line"]}-byte limit and over-long ones; {p["unfinished_share"]:.0%} of the connections
end with an unfinished line), {per_connection[0]}-{per_connection[1]} inputs per connection, each
connection's bytes cut at up to {p["fuzz_max_cuts"]} random points into separate sends,
{p["fuzz_clients"]} connections at once for at most {p["fuzz_seconds"]:g} s, the server run
with `--max-n {p["fuzz_max_n"]}`. Every reply is compared with the reference model of
docs/design.md §2 (`reference_outcomes` in tests/services/core/test_protocol.py): *wrong*
is a reply that differs (its number, or its error code) or that should not exist,
*unanswered* an expected reply that never came, *crashes* 1 when the server no longer
answered fib(10) at the end.
**{clients} non-readers**: `--idle-timeout {p["non_reading_idle_timeout_s"]:g}`; {clients}
polite clients first (the baseline), then {clients} clients that each send
{p["non_reading_lines"]:,} empty lines ({p["non_reading_bytes"]:,} bytes) and read nothing.
*RSS +MiB*: the server process's peak VmRSS meanwhile, minus the baseline. *all closed, s*:
from the first send until the server had accepted and closed all {clients}
(`fib_connections_total`, `fib_connections_active`), mostly the time to write the replies
the kernel takes for each client (above the table); cut at {p["close_limit_s"]:g} s
(closed/{clients}).
**{p["idle_connections"]:,} idle**: `--max-connections {p["idle_max_connections"]}`,
{p["idle_connections"]:,} connections that send nothing, then the median of
{p["round_trips"]} fib(1) round trips on one more; *up*: it still answered fib(10) at the
end. n/a for `sync`, which serves one connection at a time.
**SIGTERM**: one client pipelines fib(1..{p["pipelined_max_n"]}), {p["sigterm_in_flight"]}
lines in flight (k more sent as k replies arrive); SIGTERM {p["sigterm_after_s"]:g} s after
its first send. *sent before*: lines sent before the signal; *replies*: all replies received;
*unanswered*: lines sent before the signal without a reply; *end*: how the connection ended
(read for at most {p["sigterm_read_limit_s"]:g} s); *exit, s*: from SIGTERM to the server's
exit; *status*: its exit status.
**kills** (process-pool variants, n/a for the others): while {p["load_clients"]} clients
pipeline fib(1..{p["pipelined_max_n"]}) with {p["load_in_flight"]} lines in flight each, one
pool worker is SIGKILLed {p["kills"]} times (the next kill once the broken pool has been
replaced whole); *ERR server-error*: the replies that said so (the requests the dead
worker's pool held). Then, {p["settle_s"]:g} s after the load stopped: the CPU seconds of the
server's process group over {p["idle_cpu_s"]:g} s, its pool workers, and the server's
threads."""


def computed_notes(p: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """The notes that follow from the figures; the run's own notes (what was seen,
    in words) are in entry["notes"]."""
    notes: list[str] = []
    fuzz, non_reading = entry["fuzz"], entry["non_reading"]
    many, sigterm, kills = entry["many_connections"], entry["sigterm"], entry["worker_kills"]
    clients = p["non_reading_clients"]
    if fuzz["inputs"] < p["fuzz_inputs"]:
        notes.append(f"fuzz: stopped at {fuzz['inputs']:,} inputs ({fuzz['seconds']:.0f} s)")
    if fuzz["resets"] or fuzz["timeouts"]:
        notes.append(
            f"fuzz: {fuzz['resets']} connections reset, {fuzz['timeouts']} timed out "
            f"(of {fuzz['connections']})"
        )
    if non_reading["idle_timeouts"] != non_reading["closed"]:
        notes.append(
            f"non-reading: {non_reading['closed']} closed, "
            f"{non_reading['idle_timeouts']} of them with idle-timeout"
        )
    if non_reading["seconds_to_close"] is None:
        notes.append(
            f"non-reading: {non_reading['closed']} of {clients} closed within "
            f"{p['close_limit_s']:g} s, {non_reading['replies']:,} lines answered by then"
        )
    if many is not None and many["admitted"] < p["idle_connections"]:
        notes.append(
            f"many connections: only {many['admitted']} of {p['idle_connections']} admitted"
        )
    if not sigterm["signalled"]:
        notes.append(f"SIGTERM: never sent (no reply within the first {p['sigterm_after_s']:g} s)")
    if sigterm["wrong"]:
        notes.append(f"SIGTERM: {sigterm['wrong']} wrong replies")
    if kills is not None:
        if kills["wrong"]:
            notes.append(f"worker kills: {kills['wrong']} wrong replies under load")
        if kills["workers"] != kills["workers_at_start"]:
            notes.append(
                f"worker kills: {kills['workers']} workers at the end, "
                f"{kills['workers_at_start']} at start"
            )
        if kills["other_processes"] != 1:  # the resource tracker
            notes.append(
                f"worker kills: {kills['other_processes']} processes in the group "
                "besides the workers"
            )
    for part, label in [
        ("fuzz", "fuzz"),
        ("non_reading", "non-reading"),
        ("sigterm", "SIGTERM"),
        ("worker_kills", "worker kills"),
    ]:
        if count := (entry[part] or {}).get("tracebacks"):
            notes.append(f"{label}: {count} tracebacks in the server's log")
    return notes


def render(report: dict[str, Any]) -> str:
    """report.md: from the report alone (measures nothing, reads no file)."""
    p = report["parameters"]
    shown = columns(p)
    notes = [
        f"- `{entry['variant']}`: {note}"
        for entry in report["variants"]
        for note in [*computed_notes(p, entry), *entry["notes"]]
    ]
    lines = [
        TITLE,
        "",
        provenance.markdown_line(report["provenance"]),
        "",
        introduction(report),
        "",
        non_readers(report),
        "",
        "## The run",
        "",
        "| " + " | ".join(name for name, _ in shown) + " |",
        "|" + "|".join(align for _, align in shown) + "|",
        *[table_row(p, entry) for entry in report["variants"]],
        "",
        legend(p),
        "",
        "**Notes** (anything that looks wrong):",
        "",
        *(notes or ["- none"]),
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """DIR/report.json and DIR/report.md; their paths."""
    return write_bench_report(out, report, render)


def load_report(folder: Path) -> dict[str, Any]:
    """DIR/report.json, checked: a reliability report with its whole provenance."""
    path = folder / "report.json"
    try:
        report = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read {path}: {error}") from None
    if not isinstance(report, dict):
        raise ReportError(f"{path}: not a JSON object")
    if absent := [key for key in REPORT_KEYS if key not in report]:
        raise ReportError(f"{path}: no {', '.join(absent)}")
    if lacking := provenance.missing(report["provenance"]):
        raise ReportError(f"{path}: its provenance lacks {', '.join(lacking)}")
    made = report["provenance"]
    if made["kind"] != "reliability" or made["schema"] != SCHEMA:
        raise ReportError(
            f"{path}: a {made['kind']!r} report of schema {made['schema']}, "
            f"not 'reliability' of schema {SCHEMA}"
        )
    return report


class Progress:
    """How long each part took, on stderr (the Markdown stays on stdout)."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.since = time.monotonic()

    def part(self, name: str, result: T) -> T:
        now = time.monotonic()
        print(f"{self.variant}: {name} {now - self.since:.1f} s", file=sys.stderr, flush=True)
        self.since = now
        return result


def measure(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every part on one variant: its entry of report.json's "variants"."""
    notes: list[str] = []
    progress = Progress(variant)
    fuzz = progress.part("fuzz", measure_fuzz(variant, args.fuzz_inputs, args.seed, notes))
    non_reading = progress.part(
        "non-reading", measure_non_reading(variant, args.close_limit, notes)
    )
    many = progress.part(
        "many connections",
        None if variant == "sync" else measure_many_connections(variant, notes),
    )
    sigterm = progress.part("SIGTERM", measure_sigterm(variant, notes))
    kills = progress.part(
        "worker kills",
        measure_worker_kills(variant, notes) if variant in POOL_VARIANTS else None,
    )
    return {
        "variant": variant,
        "fuzz": fuzz.record(),
        "non_reading": non_reading.record(),
        "many_connections": None if many is None else many.record(),
        "sigterm": sigterm.record(),
        "worker_kills": None if kills is None else kills.record(),
        "notes": notes,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.hostile",
        description="Every variant's reliability figures under hostile clients: "
        "fuzz, clients that never read, 2,000 idle connections, SIGTERM under load, "
        "pool workers killed. Prints the Markdown report; --out DIR also keeps it, "
        "with the JSON it is rendered from.",
    )
    parser.add_argument(
        "--variants", type=variant_list, default=list(VARIANTS), help="comma-separated, or all"
    )
    parser.add_argument(
        "--fuzz-inputs", type=positive(int), default=20_000,
        help="random inputs per variant [20000]",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=2015, help="of the fuzz inputs [2015]")
    parser.add_argument(
        "--close-limit", type=positive(float), default=60.0,
        help="seconds to wait for the 50 non-reading clients to be closed [60]; "
        "sync closes them one after the other, 3 s each",
    )  # fmt: skip
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--out", type=Path, metavar="DIR",
        help="also write DIR/report.json and DIR/report.md (DIR is made if missing)",
    )  # fmt: skip
    target.add_argument(
        "--render", type=Path, metavar="DIR",
        help="measure nothing: write DIR/report.md again from DIR/report.json "
        "(the other options are ignored)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    if args.render is not None:
        try:
            stored = load_report(args.render)
        except ReportError as error:
            print(f"tests.bench.hostile: {error}", file=sys.stderr)
            return 2
        markdown = args.render / "report.md"
        markdown.write_text(render(stored), "utf-8")
        print(f"wrote {markdown}", file=sys.stderr)
        return 0
    if args.out is not None:
        if args.out.suffix in (".md", ".json") or (args.out.exists() and not args.out.is_dir()):
            parser.error(f"--out names a directory (for report.json and report.md): {args.out}")
        args.out.mkdir(parents=True, exist_ok=True)

    record = provenance.begin("reliability", SCHEMA)
    raise_open_file_limit()  # 2,000 connections and then some
    # On SIGTERM unwind as on Ctrl-C, so that no server is left running.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    settings = parameters(args)
    load_at_start = load_state()
    busy_before, total_before = cpu_ticks()
    started = time.monotonic()
    entries = []
    for variant in args.variants:
        entries.append(measure(variant, args))
        print(table_row(settings, entries[-1]), file=sys.stderr, flush=True)
    busy_after, total_after = cpu_ticks()
    report: dict[str, Any] = {
        "parameters": settings,
        "load": {
            "start": load_at_start,
            "end": load_state(),
            "cpu_busy_fraction": round(
                (busy_after - busy_before) / max(1, total_after - total_before), 4
            ),
            "run_seconds": round(time.monotonic() - started, 1),
        },
        "variants": entries,
        "provenance": record.record(),
    }
    report = json.loads(json.dumps(report))  # rendered as --render will see it
    print(render(report), end="", flush=True)
    if lacking := provenance.missing(report["provenance"]):
        print(f"warning: the provenance lacks {', '.join(lacking)}", file=sys.stderr)
    if args.out is not None:
        for path in write_report(report, args.out):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
