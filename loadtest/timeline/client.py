# loadtest/timeline/client.py
#
# The convoy as the timeline sees it from the client side: a few short
# connections each in the talk's perf2 loop (send "1\n", wait for the reply,
# send again) and, after `before` seconds, one long request; the loop ends
# `after` seconds after the long reply. Every request's send and reply times
# are kept, on time.monotonic() like the server's and the sampler's. One
# thread drives every connection (a selector): client threads would fight
# over this process's own GIL and blur the server's picture.

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field

from loadtest.toolbox.errors import LabError

MAX_REQUESTS = 2_000_000  # a bound on the loop, far above what 2 s can bring


@dataclass
class ClientConnection:
    role: str  # "short" or "long"
    sock: socket.socket
    n: int
    port: int = 0  # the client's port: the server's "connection" event names it
    requests: list[tuple[float, float]] = field(default_factory=list)  # (sent, replied)
    sent_at: float | None = None
    pending: bytearray = field(default_factory=bytearray)

    def send(self) -> None:
        self.sent_at = time.monotonic()
        self.sock.sendall(b"%d\n" % self.n)

    def as_record(self) -> dict[str, object]:
        return {"role": self.role, "n": self.n, "port": self.port, "requests": self.requests}


def _connect(host: str, port: int, role: str, n: int, timeout: float) -> ClientConnection:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise LabError(f"cannot connect to {host}:{port}: {error}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return ClientConnection(role, sock, n, port=sock.getsockname()[1])


def convoy(
    host: str,
    port: int,
    *,
    short_clients: int,
    short_n: int,
    long_n: int,
    before: float,
    after: float,
    long_timeout: float,
) -> list[dict[str, object]]:
    """Run the convoy once; every connection's requests, each as (sent, replied)."""
    shorts = [_connect(host, port, "short", short_n, 5.0) for _ in range(short_clients)]
    connections = list(shorts)
    selector = selectors.DefaultSelector()
    for connection in shorts:
        selector.register(connection.sock, selectors.EVENT_READ, connection)
        connection.send()
    started = time.monotonic()
    long_connection: ClientConnection | None = None
    ends_at: float | None = None
    deadline = started + before + long_timeout + after
    answered = 0
    try:
        # Until `after` past the long reply, and every request sent has its
        # reply: the server's record of each then has the client's beside it.
        while (
            ends_at is None
            or time.monotonic() < ends_at
            or any(connection.sent_at is not None for connection in connections)
        ):
            now = time.monotonic()
            if now > deadline:
                raise LabError(
                    f"fib({long_n}) was not answered within {long_timeout:g} s: "
                    "choose a smaller --long-n"
                )
            if answered > MAX_REQUESTS:
                raise LabError(f"more than {MAX_REQUESTS} replies in one timeline: stopped")
            if long_connection is None and now >= started + before:
                long_connection = _connect(host, port, "long", long_n, 5.0)
                connections.append(long_connection)
                selector.register(long_connection.sock, selectors.EVENT_READ, long_connection)
                long_connection.send()
            for key, _events in selector.select(timeout=0.005):
                connection = key.data
                try:
                    data = connection.sock.recv(65536)
                except OSError as error:
                    raise LabError(f"a {connection.role} connection failed: {error}") from None
                replied = time.monotonic()
                if not data:
                    raise LabError(f"the server closed a {connection.role} connection")
                connection.pending += data
                while (end := connection.pending.find(b"\n")) >= 0:
                    line = bytes(connection.pending[:end])
                    del connection.pending[: end + 1]
                    if not line.isdigit():
                        raise LabError(f"fib({connection.n}) was answered {line!r}")
                    assert connection.sent_at is not None
                    connection.requests.append((connection.sent_at, replied))
                    connection.sent_at = None
                    answered += 1
                    if connection.role == "long":
                        ends_at = replied + after
                    elif ends_at is None or replied < ends_at:
                        connection.send()
    finally:
        selector.close()
        for connection in connections:
            connection.sock.close()
    return [connection.as_record() for connection in connections]
