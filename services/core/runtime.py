# services/core/runtime.py
#
# What every variant needs around its own concurrency model: a listening
# socket, accept() that survives fd exhaustion and shutdown, per-connection
# bookkeeping (cap, whole-line deadline, metrics, closing), and SIGTERM
# handling that stops accepting, answers what was already read, and exits.
#
# Shutdown works the same under threads, generator tasks and asyncio: every
# open client socket gets shutdown(SHUT_RD). A reader blocked in recv (or a
# selector waiting on it) wakes with end-of-stream after the bytes already
# received, so each handler answers what it has and leaves on its own.

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType

from .metrics import ConnectionTally, Metrics, NullMetrics
from .protocol import ErrorCode, FibProtocol, Request, error_line, reply_line
from .settings import Settings

log = logging.getLogger("fiblab")

RECV_SIZE = 65536
# The longest the main thread blocks in one wait. Python runs signal handlers
# in the main thread, and only between bytecodes: when the kernel (or
# valgrind) hands SIGTERM to another thread, a main thread blocked in
# accept() or select() would never see it.
SIGNAL_CHECK = 1.0
# accept() errors that mean "out of resources for now", not "broken" (trio).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


class Lab:
    """The settings, metrics and open connections of this server process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics: NullMetrics = (
            Metrics(settings.variant, settings.cpu_source) if settings.metrics else NullMetrics()
        )
        self.stopping = threading.Event()
        self.drain_deadline = float("inf")
        self._stop_callbacks: list[Callable[[], object]] = []
        # Reentrant: the SIGTERM handler (stop) runs in the main thread, which
        # may be inside _admit or _release at that moment (sync, coro*).
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._open: set[Connection] = set()

    # -- connections -------------------------------------------------------

    def connection(
        self, sock: socket.socket, *, write: Callable[[bytes], object] | None = None,
        close: Callable[[], object] | None = None,
    ) -> Connection:  # fmt: skip
        return Connection(self, sock, write=write, close=close)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def _admit(self, connection: Connection) -> bool:
        with self._lock:
            self._open.add(connection)
            admitted = len(self._open) <= self.settings.max_connections
        if self.stopping.is_set():
            connection.shutdown_reading()
        return admitted

    def _release(self, connection: Connection) -> None:
        with self._lock:
            self._open.discard(connection)
            if not self._open:
                self._idle.notify_all()

    def wait_closed(self) -> bool:
        """Block until every connection is closed or the drain deadline passes."""
        with self._lock:
            while self._open:
                left = self.drain_deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.5))
        return True

    # -- listening ---------------------------------------------------------

    def listen(self) -> socket.socket:
        s = self.settings
        listener = socket.create_server((s.host, s.port), backlog=s.backlog)
        listener.settimeout(SIGNAL_CHECK)  # blocking accept() loops; event loops unset it
        return listener

    def accept(self, listener: socket.socket) -> socket.socket | None:
        """One accepted client, or None (stopping, or nothing to accept now)."""
        try:
            client, _addr = listener.accept()
        except (BlockingIOError, TimeoutError):  # nobody yet: the caller loops
            return None
        except OSError as error:
            if self.stopping.is_set():
                return None
            if error.errno in _ACCEPT_CAPACITY_ERRNOS:
                log.warning("accept: %s; retrying in 100 ms", error)
                time.sleep(0.1)
                return None
            raise
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    # -- shutdown ----------------------------------------------------------

    def on_stop(self, callback: Callable[[], object]) -> None:
        self._stop_callbacks.append(callback)

    def stop(self, *_signal: int | FrameType | None) -> None:
        """Stop accepting; let every connection finish what it has read."""
        if self.stopping.is_set():
            return
        self.drain_deadline = time.monotonic() + self.settings.drain_timeout
        self.stopping.set()
        for callback in reversed(self._stop_callbacks):  # the variant's first
            callback()
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.shutdown_reading()

    def install_signal_handlers(self, listener: socket.socket) -> None:
        def stop_listening() -> None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
            except OSError:
                pass

        self.on_stop(stop_listening)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)


class Connection:
    """One client: its protocol state, deadline and bookkeeping (no I/O of its own).

    Used as a context manager around a handler's loop. On the way out it
    answers a passed deadline with `ERR idle-timeout`, treats a vanished
    client as normal, logs anything else without letting it reach other
    clients, and closes the socket exactly once.
    """

    def __init__(
        self, lab: Lab, sock: socket.socket, *, write: Callable[[bytes], object] | None,
        close: Callable[[], object] | None,
    ) -> None:  # fmt: skip
        self.lab = lab
        self.sock = sock
        self.protocol = FibProtocol(lab.settings.max_n, lab.settings.max_line)
        self.metrics = lab.metrics
        self.tally: ConnectionTally | None = None  # set on entry, when metrics are on
        self._idle_timeout = lab.settings.idle_timeout
        self._raw = write is None  # we own a plain socket (not an asyncio transport's)
        self._write = write or sock.sendall
        self._close = close or sock.close
        self.deadline = time.monotonic() + self._idle_timeout

    @property
    def closed(self) -> bool:
        return self.protocol.closed

    def remaining(self) -> float:
        """Seconds left to complete the next line; raises TimeoutError when none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def receive(self, data: bytes) -> list[Request]:
        """The complete lines in `data` (b"": the client closed)."""
        requests = self.protocol.receive(data)
        if requests and (tally := self.tally) is not None:
            now = time.monotonic()
            for request in requests:
                request.started = now
            tally.started += len(requests)
            if tally.started >= tally.fold_at:  # keeps its lists short without a scraper
                tally.fold()
        return requests

    def reply(self, request: Request, compute: Callable[[int], int] | None = None) -> bytes:
        """The line that answers `request`.

        Its ERR line when the request line was bad; otherwise fib's value,
        from `compute(n)` when given (fib runs right here, in this thread),
        else from the finished `request.future` (fib ran in a pool). A
        failure of either is `ERR server-error`: the client may retry.
        """
        error, n = request.error, request.n
        if error is None:
            assert n is not None
            try:
                if compute is not None:
                    line = reply_line(compute(n))
                else:
                    assert request.future is not None, "no compute and no future"
                    line = reply_line(request.future.result())
            except Exception as failure:  # a dead pool worker, a cancelled future
                log.warning("fib(%s) failed: %r", n, failure)
                error, request.error_text = ErrorCode.SERVER_ERROR, "the computation failed; retry"
        if error is not None:
            line = error_line(error, request.error_text)
        now = time.monotonic()  # one clock read: the duration and the next deadline
        if (tally := self.tally) is not None:
            if error is None and n == tally.n:  # inline: a call would add 0.3 µs to fib(1)
                tally.durations.append(now - request.started)
            else:
                tally.answered(n, error, now - request.started)
        self.deadline = now + self._idle_timeout
        return line

    def shutdown_reading(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def __enter__(self) -> Connection:
        self.tally = self.metrics.connection_opened()
        if not self.lab._admit(self):
            self.protocol.closed = True
            limit = self.lab.settings.max_connections
            self._send_final(ErrorCode.BUSY, f"{limit} connections are open; try later")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            if isinstance(error, TimeoutError):
                self._send_final(ErrorCode.IDLE_TIMEOUT, "no complete line in time")
            elif isinstance(error, ConnectionError):
                pass  # the client went away: it costs its own requests only
            elif isinstance(error, Exception):
                log.error("connection failed", exc_info=error)
        finally:
            self.protocol.closed = True
            try:
                self._close()
            except OSError:
                pass
            self.lab._release(self)
            self.metrics.connection_closed(self.tally)
        return isinstance(error, Exception)

    def _send_final(self, error: ErrorCode, text: str) -> None:
        self.metrics.count_error(error)
        line = error_line(error, text)
        try:
            if self._raw:
                self.sock.settimeout(1.0)  # a short line into an empty buffer, then close
                self.sock.send(line)
            else:
                self._write(line)
        except OSError:
            pass
