# loadtest/swarm/client.py
#
# One persistent TCP connection speaking the line protocol (docs/design.md §2): send
# `N\n`, read one reply line. Plain `socket`: under Locust, gevent's monkey
# patching makes it cooperative, so thousands of users share one thread; in
# a plain program it is an ordinary blocking socket.
#
# Kept lean on purpose: a request is one send and (almost always) one recv,
# so the client is not what limits a run. Under gevent a reply that is not
# there yet costs a trip through gevent's hub (epoll, two greenlet switches):
# about 20 µs, as long as the server's own work on fib(1). So a connection
# may first wait for its reply in the kernel, in a blocking poll of at most
# `kernel_wait_ms` (this holds up every other greenlet of the process), and
# go through the hub only after. The poll watches every connection of the
# process: when another one has data, its greenlet gets its turn at once.

from __future__ import annotations

import os
import select
import socket
import time

from loadtest.swarm.targets import Address

CONNECT_TIMEOUT = 10.0
RECV_SIZE = 65536


class ConnectionClosed(ConnectionError):
    """The server closed the connection before a whole reply line arrived."""


class ServerError(Exception):
    """An `ERR <code> <text>` reply; the message is the server's line."""


class WrongReply(Exception):
    """A reply that is neither the expected number nor an ERR line."""


def fib_value(n: int) -> int | None:
    """fib(n) computed fast (to check replies), None where the server must refuse."""
    if n < 0:
        return None
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class LineConnection:
    """A client connection that reconnects on the next request after a close."""

    def __init__(self, address: Address, *, reply_timeout: float | None = None) -> None:
        self.address = address
        # None: wait as long as the server takes (fib(45) takes about a minute;
        # a stalled server is a result to measure, not a client failure).
        self.reply_timeout = reply_timeout
        # 0: wait for replies cooperatively; n: first up to n ms in a blocking poll.
        self.kernel_wait_ms = 0
        self._sock: socket.socket | None = None
        self._fd = -1
        self._only_ours: list[tuple[int, int]] = []
        self._pending = b""  # bytes after the last reply line (only if the server sent extra)

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.reply_timeout)
        self._sock, self._fd, self._pending = sock, sock.fileno(), b""
        _KERNEL_WAIT.register(self._fd, select.POLLIN)
        self._only_ours = [(self._fd, select.POLLIN)]  # what poll() returns when only we have data
        return sock

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            _KERNEL_WAIT.unregister(self._fd)
            self._fd = -1
            sock.close()

    def ask(self, line: bytes) -> bytes:
        """Send one request line (with its `\\n`); the reply line without `\\n`.

        Raises OSError (ConnectionClosed, refused, reset, timeout); the
        connection is then closed and the next call reconnects.
        """
        self.send(line)
        return self.receive()

    # Both halves use os.write and os.read on the socket's descriptor: the
    # plain system calls, without the Python layers of gevent's socket
    # methods. Under gevent the descriptor is non-blocking: what they cannot
    # do at once, the socket's own (cooperative) methods do.

    def send(self, line: bytes) -> None:
        """The first half of ask(): send a request line (connecting first if needed)."""
        sock = self._sock or self.connect()
        try:
            try:
                sent = os.write(self._fd, line)
            except BlockingIOError:
                sent = 0
            if sent < len(line):
                sock.sendall(line[sent:])
        except OSError:
            self.close()
            raise

    def receive(self) -> bytes:
        """The second half of ask(): the next reply line, without `\\n`."""
        sock = self._sock
        if sock is None:
            raise ConnectionClosed("not connected: send a request first")
        try:
            data = self._pending
            while (end := data.find(b"\n")) < 0:
                ready = _KERNEL_WAIT.poll(self.kernel_wait_ms) if self.kernel_wait_ms else None
                if ready == self._only_ours:
                    chunk = os.read(self._fd, RECV_SIZE)  # our reply, nobody else's
                else:
                    if ready:  # others have data: let their greenlets run first
                        yield_to_hub()
                    chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    host, port = self.address
                    raise ConnectionClosed(f"server {host}:{port} closed the connection")
                data += chunk
            self._pending = data[end + 1 :]
            return data[:end].rstrip(b"\r")
        except OSError:
            self.close()
            raise

    def __enter__(self) -> LineConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _blocking_poll() -> select.poll:
    """A poll object that blocks the thread: the original one if gevent patched `select`."""
    try:
        from gevent import monkey
    except ImportError:
        return select.poll()
    return monkey.get_original("select", "poll")()  # type: ignore[no-any-return]


_KERNEL_WAIT = _blocking_poll()  # every open connection of this process


def yield_to_hub() -> None:
    """Let gevent's hub poll for I/O and run whoever is ready (a no-op without gevent).

    A timer, not sleep(0): gevent runs sleep(0) callbacks without polling sockets.
    """
    time.sleep(0.000_001)
