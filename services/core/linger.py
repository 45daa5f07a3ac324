# services/core/linger.py
#
# Closing a TCP socket that still has unread input makes the kernel send RST,
# and an RST destroys replies already sent but not yet read by the client
# (its send fails too). A server that closes while the client may still be
# sending (a line too long, ERR busy, an idle timeout, a drain) must close
# the way nginx's `lingering_close` does: shut down the write side, so the
# replies are followed by EOF, then read and discard what the client still
# sends until it closes too, for a bounded time and byte count, then close.
#
# One daemon thread does that for every socket of the process, whatever the
# variant's concurrency model: a blocking handler or an event loop hands its
# socket over and is free at once, and a hostile client costs one descriptor
# for `seconds` at most (docs/design.md §2).

from __future__ import annotations

import collections
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("fiblab")

# Past this many discarded bytes the client is not closing: close anyway.
MAX_DISCARD = 1 << 20


@dataclass(slots=True)
class _Lingering:
    sock: socket.socket
    deadline: float
    done: Callable[[], object]
    discarded: int = 0


class Lingerer:
    """Closes sockets gracefully from one thread, started on first use."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._handed: list[_Lingering] = []
        self._thread: threading.Thread | None = None
        self._wake_writer, self._wake_reader = socket.socketpair()
        self._wake_writer.setblocking(False)
        self._wake_reader.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._scratch = bytearray(65536)

    @property
    def lingering(self) -> int:
        """Sockets not yet closed (for tests and logs)."""
        with self._lock:
            return len(self._handed) + len(self._selector.get_map()) - 1

    def close(self, sock: socket.socket, done: Callable[[], object]) -> None:
        """Send EOF after what was sent, discard the client's input, then close.

        `done` runs once the socket is closed, in the lingering thread.
        """
        try:
            sock.shutdown(socket.SHUT_WR)  # queued after the replies already sent
        except OSError:  # the client reset or closed the connection first
            self._finish(sock, done)
            return
        if self.seconds <= 0:
            self._finish(sock, done)
            return
        sock.setblocking(False)
        with self._lock:
            self._handed.append(_Lingering(sock, time.monotonic() + self.seconds, done))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="linger", daemon=True)
                self._thread.start()
        try:
            self._wake_writer.send(b"x")
        except BlockingIOError:  # a wake-up is already pending
            pass

    @staticmethod
    def _finish(sock: socket.socket, done: Callable[[], object]) -> None:
        try:
            sock.close()
        except OSError:
            pass
        try:
            done()
        except Exception:
            log.exception("after closing a connection")

    def _run(self) -> None:
        selector = self._selector
        # Handed over in order, all for the same `seconds`: in deadline order.
        # A turn costs what it handles, not what lingers (10,000 clients that
        # leave at once were a second's work, not a quadratic minute's).
        by_deadline: collections.deque[_Lingering] = collections.deque()
        while True:
            with self._lock:
                handed, self._handed = self._handed, []
            for item in handed:
                selector.register(item.sock, selectors.EVENT_READ, item)
                by_deadline.append(item)
            while by_deadline and by_deadline[0].sock.fileno() < 0:  # closed already
                by_deadline.popleft()
            timeout = by_deadline[0].deadline - time.monotonic() if by_deadline else None
            for key, _events in selector.select(None if timeout is None else max(0.0, timeout)):
                if key.data is None:
                    self._drain_wake_ups()
                elif self._discard(key.data):
                    self._end(key.data)
            now = time.monotonic()
            while by_deadline and by_deadline[0].deadline <= now:
                item = by_deadline.popleft()
                if item.sock.fileno() >= 0:
                    self._end(item)

    def _drain_wake_ups(self) -> None:
        try:
            while self._wake_reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _discard(self, item: _Lingering) -> bool:
        """Read what is there; True when the client closed, failed or sent too much."""
        try:
            while count := item.sock.recv_into(self._scratch):
                item.discarded += count
                if item.discarded > MAX_DISCARD:
                    return True
            return True  # EOF: the client has read our EOF and closed
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _end(self, item: _Lingering) -> None:
        self._selector.unregister(item.sock)
        self._finish(item.sock, item.done)
