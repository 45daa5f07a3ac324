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
# Every loop is bounded in requests and in time. Output is Markdown: one
# table row per variant, then notes on anything that looks wrong.

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import os
import platform
import queue
import random
import resource
import shlex
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

from loadtest.talk.perf1 import positive
from services import VARIANTS
from tests.bench.server import variant_list
from tests.conftest import (
    POOL_VARIANTS,
    Server,
    group_cpu_seconds,
    pool_workers,
    rss_bytes,
    send_without_reading,
    start_server,
    thread_count,
)
from tests.services.core.test_protocol import reference_outcomes

# The fuzz asks at most fib(25) (~4 ms) so that 20,000 lines stay quick;
# larger numbers are out-of-range by the server's --max-n.
FUZZ_MAX_N = 25
MAX_LINE = 64  # the default --max-line
FUZZ_CLIENTS = 4  # connections open at once
FUZZ_SECONDS = 240.0  # the fuzz stops starting connections after this

NON_READING_CLIENTS = 50
NEVER_READ = b"\n" * 300_000  # 300 KB asking for 15.9 MB of ERR not-an-integer
NON_READING_IDLE_TIMEOUT = 3

IDLE_CONNECTIONS = 2_000
ROUND_TRIPS = 200  # fib(1) on the extra connection

SIGTERM_AFTER = 1.0
SIGTERM_IN_FLIGHT = 64
SIGTERM_READ_LIMIT = 20.0  # seconds of reading before giving up on the server
EXIT_WAIT = 15.0

KILLS = 5
LOAD_CLIENTS = 4
LOAD_IN_FLIGHT = 16
IDLE_CPU_SECONDS = 5.0


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
    return 1 + index % 20


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
        digits = bytes(rng.choice(b"0123456789") for _ in range(rng.randint(7, 60)))
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
        wanted = min(rng.randint(20, 400), total_inputs - made)
        while len(pieces) < wanted:
            piece, closes = random_input(rng)
            pieces.append(piece)
            if closes:  # a few lines after it, which must not be answered
                pieces += [b"%d\n" % rng.randint(0, 9) for _ in range(rng.randint(0, 3))]
                break
        if rng.random() < 0.1:
            pieces.append(b"12")  # an unfinished line at EOF: dropped, not answered
        made += len(pieces)
        stream = b"".join(pieces)
        cut_count = rng.randint(0, min(30, len(stream) - 1))
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
        if total.inputs < inputs:
            notes.append(f"fuzz: stopped at {total.inputs:,} inputs ({seconds:.0f} s)")
        if crashed:
            notes.append(f"fuzz: the server no longer answers ({exit_text(server)})")
        if total.resets or total.timeouts:
            notes.append(
                f"fuzz: {total.resets} connections reset, {total.timeouts} timed out "
                f"(of {total.connections})"
            )
        notes += [f"fuzz: {example}" for example in total.examples]
        notes += [f"fuzz: a client stopped: {error}" for error in errors[:3]]
        if count := tracebacks(server):
            notes.append(f"fuzz: {count} tracebacks in the server's log")
    return Fuzz(total, crashed, seconds)


# -- 2. clients that never read --------------------------------------------------


@dataclass
class NonReading:
    rss_growth_mib: float
    seconds_to_close: float | None  # None: not all closed within the limit
    closed: int
    idle_timeouts: int


def measure_non_reading(variant: str, limit: float, notes: list[str]) -> NonReading:
    with running(variant, "--idle-timeout", str(NON_READING_IDLE_TIMEOUT)) as server:
        wait_no_connections(server)
        # As many polite clients first: what any 50 connections cost (thread
        # stacks, buffers, allocator arenas) is in the baseline.
        for _ in range(NON_READING_CLIENTS):
            with server.connect() as sock:
                sock.sendall(b"1\n")
                sock.recv(16)
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
        if idle_timeouts != closed:
            notes.append(f"non-reading: {closed} closed, {idle_timeouts} of them with idle-timeout")
        if closed_after is None:
            notes.append(
                f"non-reading: {closed} of {NON_READING_CLIENTS} closed within {limit:g} s, "
                f"{replies:,} lines answered by then"
            )
        if not still_answering(server):
            notes.append(f"non-reading: the server no longer answers ({exit_text(server)})")
        if count := tracebacks(server):
            notes.append(f"non-reading: {count} tracebacks in the server's log")
    return NonReading(peak - before, closed_after, closed, idle_timeouts)


# -- 3. many idle connections ------------------------------------------------------


@dataclass
class ManyConnections:
    admitted: int
    median_ms: float | None
    up: bool


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure_many_connections(variant: str, notes: list[str]) -> ManyConnections:
    with running(variant, "--max-connections", "3000") as server:
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
        if admitted < IDLE_CONNECTIONS:
            notes.append(f"many connections: only {admitted} of {IDLE_CONNECTIONS} admitted")
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
            notes.append("SIGTERM: never sent (no reply within the first second)")
            return Sigterm(0, answered, 0, wrong, end, None, None)
        waiter.join(EXIT_WAIT + SIGTERM_READ_LIMIT)
        status = server.process.poll()
        if server.reader:
            server.reader.join(2)  # the server's last lines
        exit_seconds = exited_at[0] - signalled_at if exited_at else None
        if status is None:
            notes.append(f"SIGTERM: the server did not exit within {EXIT_WAIT:g} s")
        elif "stopped (drained)" not in "".join(server.output):
            notes.append("SIGTERM: the server's log does not say 'stopped (drained)'")
        if wrong:
            notes.append(f"SIGTERM: {wrong} wrong replies")
        if count := tracebacks(server):
            notes.append(f"SIGTERM: {count} tracebacks in the server's log")
    unanswered = max(0, sent_before - answered)
    return Sigterm(sent_before, answered, unanswered, wrong, end, exit_seconds, status)


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
    idle_cpu: float
    workers: int
    threads: int


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
        time.sleep(1.0)  # the last replacements settle
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
        if load.wrong:
            notes.append(f"worker kills: {load.wrong} wrong replies under load")
        notes += [f"worker kills: a load client ended: {broken}" for broken in load.broken[:4]]
        if worker_count != len(first_workers):
            notes.append(
                f"worker kills: {worker_count} workers at the end "
                f"({sorted(pool_workers(server))}), {len(first_workers)} at start"
            )
        if others != 1:  # the resource tracker
            notes.append(f"worker kills: {others} processes in the group besides the workers")
        if not still_answering(server):
            notes.append(f"worker kills: the server no longer answers ({exit_text(server)})")
        if count := tracebacks(server):
            notes.append(f"worker kills: {count} tracebacks in the server's log")
    return WorkerKills(kills, load.ok, load.server_errors, idle_cpu, worker_count, threads)


# -- the report --------------------------------------------------------------------------


class Output:
    """Prints, and writes the same lines to --out as they come."""

    def __init__(self, path: Path | None) -> None:
        self.file: TextIO | None = path.open("w") if path else None

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        if self.file:
            self.file.write(text + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


COLUMNS = [
    ("variant", "---"),
    ("fuzz inputs", "---:"),
    ("replies checked", "---:"),
    ("wrong", "---:"),
    ("unanswered", "---:"),
    ("crashes", "---:"),
    ("50 non-readers: RSS +MiB", "---:"),
    ("all closed, s", "---:"),
    ("2,000 idle: fib(1) median ms", "---:"),
    ("up", "---"),
    ("SIGTERM: sent before", "---:"),
    ("replies", "---:"),
    ("unanswered", "---:"),
    ("end", "---"),
    ("exit, s", "---:"),
    ("status", "---:"),
    ("kills", "---:"),
    ("ERR server-error", "---:"),
    ("idle CPU s in 5 s", "---:"),
    ("workers", "---:"),
    ("threads", "---:"),
]


def seconds_text(value: float | None, limit: str = "—") -> str:
    return limit if value is None else f"{value:.2f}"


def row(
    variant: str,
    fuzz: Fuzz,
    non_reading: NonReading,
    many: ManyConnections | None,
    sigterm: Sigterm,
    kills: WorkerKills | None,
) -> str:
    tally = fuzz.tally
    closed = (
        f"{non_reading.seconds_to_close:.1f}"
        if non_reading.seconds_to_close is not None
        else f"> limit ({non_reading.closed}/{NON_READING_CLIENTS})"
    )
    cells = [
        f"`{variant}`",
        f"{tally.inputs:,}",
        f"{tally.replies_checked:,}",
        f"{tally.wrong}",
        f"{tally.unanswered}",
        "1" if fuzz.crashed else "0",
        f"{non_reading.rss_growth_mib:+.1f}",
        closed,
        "n/a" if many is None else seconds_text(many.median_ms, "failed"),
        "n/a" if many is None else ("yes" if many.up else "**no**"),
        f"{sigterm.sent_before:,}",
        f"{sigterm.replies:,}",
        f"{sigterm.unanswered_before}",
        sigterm.end,
        seconds_text(sigterm.exit_seconds, "no exit"),
        "—" if sigterm.status is None else str(sigterm.status),
    ]
    if kills is None:
        cells += ["n/a"] * 5
    else:
        cells += [
            str(kills.kills),
            str(kills.server_errors),
            f"{kills.idle_cpu:.2f}",
            str(kills.workers),
            str(kills.threads),
        ]
    return "| " + " | ".join(cells) + " |"


def legend(fuzz_inputs: int, close_limit: float) -> str:
    return f"""\
Each part runs on a fresh server.
**fuzz**: {fuzz_inputs:,} random inputs per variant (request lines with valid numbers
0-{FUZZ_MAX_N}, blanks, `\\r`, signs, out-of-range and 8-62 digit numbers, non-ASCII digits,
binary garbage, lines at the {MAX_LINE}-byte limit and over-long ones; a tenth of the
connections end with an unfinished line), 20-400 per connection, each connection's bytes
cut at up to 30 random points into separate sends, {FUZZ_CLIENTS} connections at once,
the server run with `--max-n {FUZZ_MAX_N}`. Every reply is compared with the reference
model of docs/design.md §2 (`reference_outcomes` in tests/services/core/test_protocol.py):
*wrong* is a reply that differs (its number, or its error code) or that should not
exist, *unanswered* an expected reply that never came, *crashes* 1 when the server no
longer answered fib(10) at the end.
**50 non-readers**: `--idle-timeout {NON_READING_IDLE_TIMEOUT}`; 50 polite clients
first (the baseline), then 50 clients that each send 300,000 empty lines and read
nothing. *RSS +MiB*: the server process's peak VmRSS meanwhile, minus the baseline.
*all closed, s*: from the first send until the server had accepted and closed all 50
(`fib_connections_total`, `fib_connections_active`). Loopback's socket buffers take
about 2.8 MB of replies (some 53,000 `ERR not-an-integer` lines) per client before the
server's send blocks, and every reply written restarts the deadline, so this is mostly
the time to write 50 × 2.8 MB; `sync` takes the clients one after the other (about 4 s
each) and is cut at {close_limit:g} s (closed/50).
**2,000 idle**: `--max-connections 3000`, {IDLE_CONNECTIONS:,} connections that send
nothing, then the median of {ROUND_TRIPS} fib(1) round trips on one more; *up*: it
still answered fib(10) at the end. n/a for `sync`, which serves one connection at a time.
**SIGTERM**: one client pipelines fib(1..20), {SIGTERM_IN_FLIGHT} lines in flight (k
more sent as k replies arrive); SIGTERM {SIGTERM_AFTER:g} s after its first send.
*sent before*: lines sent before the signal; *replies*: all replies received;
*unanswered*: lines sent before the signal without a reply; *end*: how the connection
ended; *exit, s*: from SIGTERM to the server's exit; *status*: its exit status.
**kills** (process-pool variants): while {LOAD_CLIENTS} clients pipeline fib(1..20)
with {LOAD_IN_FLIGHT} lines in flight each, one pool worker is SIGKILLed {KILLS} times
(the next kill once the broken pool has been replaced whole); *ERR server-error*: the
replies that said so (the requests the dead worker's pool held). Then, 1 s after the
load stopped: the CPU seconds of the server's process group over
{IDLE_CPU_SECONDS:g} s, its pool workers, and the server's threads."""


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


def machine_state() -> str:
    fields = Path("/proc/loadavg").read_text().split()
    return f"load average {' '.join(fields[:3])} (1, 5, 15 min), {fields[3]} tasks running/total"


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.hostile",
        description="Print every variant's reliability figures under hostile clients: "
        "fuzz, clients that never read, 2,000 idle connections, SIGTERM under load, "
        "pool workers killed.",
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
    parser.add_argument("--out", type=Path, help="also write the Markdown to this file")
    args = parser.parse_args(argv)

    raise_open_file_limit()  # 2,000 connections and then some
    # On SIGTERM unwind as on Ctrl-C, so that no server is left running.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    output = Output(args.out)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cores = len(os.sched_getaffinity(0))
    command = shlex.join(
        ["python", "-m", "tests.bench.hostile", *(sys.argv[1:] if argv is None else argv)]
    )
    busy_before, total_before = cpu_ticks()
    started = time.monotonic()
    output.line("## fiblab reliability under hostile clients\n")
    output.line(
        f"`{command}`, {now}; {platform.python_implementation()} "
        f"{platform.python_version()}; {cores} CPUs; at the start {machine_state()}.\n"
    )
    output.line("| " + " | ".join(name for name, _ in COLUMNS) + " |")
    output.line("|" + "|".join(align for _, align in COLUMNS) + "|")
    all_notes: list[tuple[str, str]] = []
    for variant in args.variants:
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
        output.line(row(variant, fuzz, non_reading, many, sigterm, kills))
        all_notes += [(variant, note) for note in notes]
    output.line()
    output.line(legend(args.fuzz_inputs, args.close_limit))
    busy_after, total_after = cpu_ticks()
    busy_share = (busy_after - busy_before) / max(1, total_after - total_before)
    output.line()
    output.line(
        f"Run took {time.monotonic() - started:.0f} s; the machine's CPUs were "
        f"{busy_share:.0%} busy over it (this program and its servers included); "
        f"at the end {machine_state()}."
    )
    output.line()
    output.line("**Notes** (anything that looks wrong):\n")
    if not all_notes:
        output.line("- none")
    for variant, note in all_notes:
        output.line(f"- `{variant}`: {note}")
    output.close()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
