# loadtest/connections/slow.py
#
# N slow clients (a chat-like load): each connection sends one request at a
# fixed rate, open loop, its send times scheduled from the start and never
# waiting on a reply to send the next. One thread drives them all with
# selectors (epoll): a thread per client would be the generator's cost, not
# the server's. Each latency counts from the request's intended send time,
# so a generator that falls behind shows as latency and as a send rate
# below the one intended (the point is then marked generator-bound, as the
# capacity report marks an open loop that did not reach its rate).

from __future__ import annotations

import collections
import heapq
import selectors
import socket
import time
from dataclasses import dataclass

from loadtest.connections.clients import (
    CONNECT_TIMEOUT,
    LineProtocol,
    close_all,
    percentiles_ms,
)

# Replies still missing this long after the window are counted as missing.
DRAIN_SECONDS = 2.0
GENERATOR_BOUND_SHARE = 0.95  # achieved sends below this share of the intended: generator-bound


@dataclass(frozen=True)
class SlowResult:
    connections: int  # opened
    failure: str | None  # why fewer than asked were opened
    intended: int  # sends scheduled within the window
    sent: int
    replies: int
    missing: int  # sent and never answered within the drain
    latency_ms: dict[str, float | None]
    max_send_lag_ms: float
    seconds: float  # the window
    achieved_share: float  # sent ÷ intended

    @property
    def generator_bound(self) -> bool:
        return self.achieved_share < GENERATOR_BOUND_SHARE


def slow_clients(
    host: str, port: int, protocol: LineProtocol, count: int, rate: float, seconds: float
) -> SlowResult:
    """`count` connections each sending `protocol.request` `rate` times a second
    for `seconds`, their phases spread evenly over one period."""
    sockets: list[socket.socket] = []
    failure = None
    for index in range(count):
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        except OSError as error:
            failure = f"connection {index + 1:,} failed: {error or 'timed out'}"
            break
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sockets.append(sock)
    try:
        return _drive(sockets, protocol, count, rate, seconds, failure)
    finally:
        close_all(sockets)


def _drive(
    sockets: list[socket.socket],
    protocol: LineProtocol,
    asked: int,
    rate: float,
    seconds: float,
    failure: str | None,
) -> SlowResult:
    period = 1.0 / rate
    start = time.perf_counter() + 0.05
    end = start + seconds
    # (intended send time, socket index): a heap of each socket's next send
    due = [(start + period * index / max(1, len(sockets)), index) for index in range(len(sockets))]
    heapq.heapify(due)
    waiting: list[collections.deque[float]] = [collections.deque() for _ in sockets]
    partial = [b""] * len(sockets)
    latencies: list[float] = []
    intended = sent = 0
    max_lag = 0.0
    selector = selectors.DefaultSelector()
    for index, sock in enumerate(sockets):
        selector.register(sock, selectors.EVENT_READ, index)
    try:
        drain_until = end + DRAIN_SECONDS
        while True:
            now = time.perf_counter()
            while due and due[0][0] <= now and due[0][0] < end:
                at, index = heapq.heappop(due)
                intended += 1
                try:
                    sockets[index].send(protocol.request)  # a few bytes: the buffer takes them
                except OSError:
                    continue  # this connection is gone; its sends are not made
                sent += 1
                waiting[index].append(at)
                max_lag = max(max_lag, now - at)
                heapq.heappush(due, (at + period, index))
            outstanding = sum(len(queue) for queue in waiting)
            if now >= end and (outstanding == 0 or now >= drain_until):
                break
            next_send = due[0][0] if due and due[0][0] < end else drain_until
            for key, _events in selector.select(timeout=max(0.0, min(next_send - now, 0.05))):
                index = key.data
                try:
                    data = sockets[index].recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(sockets[index])
                    waiting[index].clear()
                    continue
                arrived = time.perf_counter()
                data = partial[index] + data
                lines = data.count(b"\n")
                partial[index] = data[data.rfind(b"\n") + 1 :]
                answered = min(lines, len(waiting[index]))
                latencies.extend(arrived - waiting[index].popleft() for _ in range(answered))
    finally:
        selector.close()
    # the scheduled sends the window held, sent or not (the generator's shortfall)
    scheduled = sum(
        max(0, int((end - (start + period * i / max(1, len(sockets)))) / period - 1e-9) + 1)
        for i in range(len(sockets))
    )
    missing = sent - len(latencies)
    return SlowResult(
        connections=len(sockets),
        failure=failure,
        intended=max(scheduled, intended),
        sent=sent,
        replies=len(latencies),
        missing=missing,
        latency_ms=percentiles_ms(latencies),
        max_send_lag_ms=round(max_lag * 1000, 3),
        seconds=seconds,
        achieved_share=round(sent / scheduled, 4) if scheduled else 0.0,
    )
