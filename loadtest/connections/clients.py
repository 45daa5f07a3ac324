# loadtest/connections/clients.py
#
# The client side of the idle part: N connections opened one after another
# (nothing sent: the time is the server's admission, and the kernel's), a
# check of which the server turned away, and a fresh client's latency while
# they are held. The same code speaks to a variant (`1\n` → `1\n`) and to
# Redis (`PING\r\n` → `+PONG\r\n`): both answer a line with a line.

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LineProtocol:
    """One request and the reply it must get."""

    name: str
    request: bytes
    reply: bytes  # the whole reply line, its \n included


FIB = LineProtocol("fib(1)", b"1\n", b"1\n")
REDIS_PING = LineProtocol("PING", b"PING\r\n", b"+PONG\r\n")

# One connect: a full backlog drops the SYN; Linux retries it after 1 s and 3 s.
CONNECT_TIMEOUT = 3.5
REPLY_TIMEOUT = 2.0  # one reply to the fresh client


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank, as every report of the lab takes it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    return {
        key: None if (value := nearest_rank(seconds, q)) is None else round(value * 1000, 3)
        for key, q in (("p50", 0.5), ("p99", 0.99))
    }


@dataclass
class Held:
    """Idle connections opened one after another, and how far that got."""

    sockets: list[socket.socket] = field(default_factory=list)
    open_seconds: float = 0.0
    failure: str | None = None  # why the next one could not be opened


def open_idle(host: str, port: int, count: int, budget_s: float, already: int = 0) -> Held:
    """`count` connections, one after another, nothing sent; stops at the
    first that fails or once `budget_s` has passed (the failure says so,
    counting from `already` held before)."""
    held = Held()
    started = time.perf_counter()
    deadline = started + budget_s
    for index in range(count):
        if time.perf_counter() > deadline:
            held.failure = f"{index:,} more opened in the {budget_s:g} s allowed"
            break
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        except OSError as error:
            reason = "timed out" if isinstance(error, TimeoutError) else str(error)
            held.failure = f"connection {already + index + 1:,} failed: {reason}"
            break
        held.sockets.append(sock)
    held.open_seconds = time.perf_counter() - started
    return held


def turned_away(sockets: Sequence[socket.socket]) -> int:
    """Connections the server has written to or closed (`ERR busy`, a reset):
    an idle connection it holds has nothing to read."""
    if not sockets:
        return 0
    with selectors.DefaultSelector() as selector:  # epoll: not limited to 1,024 descriptors
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        return len(selector.select(timeout=0))


# SO_LINGER on with 0 s: close() resets the connection instead of leaving it in
# TIME_WAIT for a minute. A run opens some 300,000 connections to 127.0.0.1 in
# ten minutes, ten times the ephemeral ports; connect() slows down searching
# for a free one among those waiting (measured: 5,000 connections took 2.3 s
# behind 20,000 in TIME_WAIT, against 0.02 s for 1,000 on a fresh range). A
# reset ends a server's connection quietly (docs/design.md §2, vanished
# clients), as a close does.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def close_all(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            sock.close()


@dataclass(frozen=True)
class Latency:
    """A fresh client's requests, one after another, while others are held."""

    requests: int
    latency_ms: dict[str, float | None]
    failure: str | None  # why it stopped before `requests` replies


def read_reply(sock: socket.socket, expected: bytes) -> bytes:
    """Bytes until the reply line's \\n (the reply is tiny: one recv, nearly always)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    if data != expected:
        raise ValueError(f"unexpected reply {data[:80]!r}")
    return data


@contextlib.contextmanager
def connected(host: str, port: int, timeout: float = REPLY_TIMEOUT) -> Iterator[socket.socket]:
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        yield sock


def fresh_latency(
    host: str, port: int, protocol: LineProtocol, requests: int, budget_s: float = 10.0
) -> Latency:
    """`requests` requests on a new connection, each sent when the last reply is in."""
    took: list[float] = []
    failure = None
    deadline = time.perf_counter() + budget_s
    try:
        with connected(host, port) as sock:
            for _ in range(requests):
                if time.perf_counter() > deadline:
                    failure = f"{len(took)} replies in the {budget_s:g} s allowed"
                    break
                sent = time.perf_counter()
                sock.sendall(protocol.request)
                read_reply(sock, protocol.reply)
                took.append(time.perf_counter() - sent)
    except TimeoutError:
        failure = f"no reply within {REPLY_TIMEOUT:g} s after {len(took)}"
    except (OSError, ValueError) as error:
        failure = f"{error} after {len(took)} replies"
    return Latency(len(took), percentiles_ms(took), failure)
