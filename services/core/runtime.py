# services/core/runtime.py
#
# What every variant needs around its own concurrency model: a listening
# socket, accept() that survives fd exhaustion and shutdown, per-connection
# bookkeeping (cap, deadlines, metrics, graceful close), and SIGTERM handling
# that stops accepting, answers what was already received, and exits.
#
# Draining works the same under threads, generator tasks and asyncio. At the
# signal, each connection notes how many bytes its kernel socket had received
# (TCP_INFO's tcpi_bytes_received): lines within them are answered, bytes past
# them are never parsed, and a connection that has read them all ends as if
# the client had closed. A blocking reader waits on its socket and on one
# pipe that becomes readable at the signal; an event loop looks at its next
# scan. (shutdown(SHUT_RD) would wake readers too, but on Linux bytes that
# arrive after it are still returned by recv, and once the write side is
# shut as well, they are answered with RST.)

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import logging
import os
import resource
import select
import signal
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import replace
from types import FrameType, TracebackType
from typing import Any

from .fib import fib
from .linger import Lingerer
from .metrics import ConnectionTally, Metrics, NullMetrics
from .metrics_http import SCRAPE_CONNECTIONS
from .protocol import ErrorCode, FibProtocol, Request, error_line, reply_line
from .settings import Settings
from .timeline import Timeline

log = logging.getLogger("fiblab")

RECV_SIZE = 65536
# The longest the main thread blocks in one wait. Python runs signal handlers
# in the main thread, and only between bytecodes: when the kernel (or
# valgrind) hands SIGTERM to another thread, a main thread blocked in
# accept() or select() would never see it.
SIGNAL_CHECK = 1.0
# accept() errors that mean "out of resources for now", not "broken" (trio).
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE}
# struct tcp_info (linux/tcp.h): the __u64 tcpi_bytes_received (Linux 4.1+).
_TCP_INFO_BYTES_RECEIVED = 128


def bytes_received(sock: Any) -> int | None:
    """Bytes the kernel has received on this TCP socket so far, read or not."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (AttributeError, OSError, ValueError):  # not Linux, not TCP, or closed
        return None
    if len(info) < _TCP_INFO_BYTES_RECEIVED + 8:
        return None
    return int(struct.unpack_from("Q", info, _TCP_INFO_BYTES_RECEIVED)[0])


# Descriptors besides the client sockets (measured with `ls /proc/PID/fd`):
# a process pool takes 8 plus 2 per worker, twice that while a pool broken
# by a killed worker is being replaced; SPARE covers the reserved
# descriptor, an asyncio socket duplicated while it closes, logs and pipes.
_POOL_FDS_FIXED, _POOL_FDS_PER_WORKER, _SPARE_FDS = 8, 2, 32


def fit_open_file_limit(settings: Settings) -> Settings:
    """Raise the soft open-file limit to the hard one; cap the connections to fit it.

    With the connection cap beyond the limit, client 1,001 of a server
    allowed 1,024 files would get nothing at all, not even ERR busy, and
    /metrics would be unreachable (docs/design.md §2).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:  # e.g. an unlimited hard limit on macOS
            log.warning("open files: could not raise the limit %d to %d: %s", soft, hard, error)
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 16
    pool = 2 * (_POOL_FDS_FIXED + _POOL_FDS_PER_WORKER * settings.workers)
    others = in_use + pool + SCRAPE_CONNECTIONS + _SPARE_FDS
    room = soft - others
    budget = f"{others} for the pool, /metrics and the process itself"
    if settings.max_connections > room:
        log.warning(
            "open files: the limit is %d, %s: serving at most %d connections, not %d",
            soft, budget, max(1, room), settings.max_connections,
        )  # fmt: skip
        return replace(settings, max_connections=max(1, room))
    log.info(
        "open files: limit %d = %d connections + %s + %d unused",
        soft, settings.max_connections, budget, room - settings.max_connections,
    )  # fmt: skip
    return settings


class Lab:
    """The settings, metrics and open connections of this server process."""

    def __init__(self, settings: Settings, metrics: NullMetrics | None = None) -> None:
        self.settings = settings
        if metrics is None and settings.metrics:
            metrics = Metrics(settings.variant, settings.cpu_source, gil_probe=settings.gil_probe)
        self.metrics: NullMetrics = metrics or NullMetrics()
        self.timeline: Timeline | None = None
        if settings.timeline:
            self.timeline = Timeline(settings.timeline, settings.timeline_events, settings.variant)
        self.stopping = threading.Event()
        self.drain_deadline = float("inf")
        self.lingerer = Lingerer(settings.linger_timeout)
        self._stop_callbacks: list[Callable[[], object]] = []
        # Reentrant: the SIGTERM handler (stop) runs in the main thread, which
        # may be inside _admit or _release at that moment (sync, coro*).
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._open: dict[Any, Connection] = {}  # by socket
        # A descriptor kept for the moment accept() fails for lack of one: it
        # is freed to accept the client and tell it ERR busy (libuv, nginx).
        self._reserve: int | None = os.open(os.devnull, os.O_RDONLY)
        # Readable from the signal on (a byte written, never read): wakes
        # every blocking reader at once, for two descriptors in all.
        self.stop_signal, self._stop_writer = os.pipe()
        # The listener's descriptor (a variant may wrap it in a socket object of
        # its own), and the connections its backlog held when the stop came,
        # each with the bytes it had received by then (stop, accept).
        self._listener_fd: int | None = None
        self._backlog: collections.deque[socket.socket] = collections.deque()
        self._received_at_stop: dict[socket.socket, int | None] = {}

    # -- connections -------------------------------------------------------

    def connection(
        self, sock: Any, *, write: Callable[[bytes], object] | None = None,
        close: Callable[[], object] | None = None,
    ) -> Connection:  # fmt: skip
        return Connection(self, sock, write=write, close=close)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def drained(self, sock: Any) -> bool:
        """True when the connection on `sock` has read all it may while draining."""
        connection = self._open.get(sock)
        return connection is not None and connection.drained

    def _admit(self, connection: Connection) -> bool:
        with self._lock:
            self._open[connection.sock] = connection
            admitted = len(self._open) <= self.settings.max_connections
        if self.stopping.is_set():  # one from the backlog: what it had at the stop
            connection.stop_reading(self._received_at_stop.pop(connection.sock, None))
        return admitted

    def _release(self, connection: Connection) -> None:
        """Its socket is closed: its slot is free, and /metrics says so at the
        same moment (a client that saw the gauge at 0 finds every slot free)."""
        with self._lock:
            if self._open.get(connection.sock) is connection:
                del self._open[connection.sock]
            if not self._open:
                self._idle.notify_all()
        self.metrics.connection_closed(connection.tally)

    def _close(self, connection: Connection) -> None:
        """Hand the socket to the lingerer; the slot is free once it is closed."""
        sock = connection.sock
        if not connection.raw:
            # An asyncio transport's socket. The transport would close at
            # once or wait forever for a client that reads nothing: keep the
            # kernel socket in a duplicate and abort the transport.
            try:
                sock = socket.socket(fileno=os.dup(sock.fileno()))
            except OSError:  # out of descriptors: no graceful close this time
                sock = None
            connection.close_transport()
            if sock is None:
                self._release(connection)
                return
        self.lingerer.close(sock, lambda: self._release(connection))

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

    def accepts_on(self, listener: socket.socket) -> None:
        """This process accepts on `listener` (accept() says so itself): at the
        stop, it takes the listener's backlog. Not prefork's server, whose
        workers accept."""
        self._listener_fd = listener.fileno()

    @property
    def accepting(self) -> bool:
        """An accept loop's condition: until the stop, and then until every
        connection the backlog held at the stop has been handed out."""
        return not self.stopping.is_set() or bool(self._backlog)

    def accept(self, listener: socket.socket) -> socket.socket | None:
        """One accepted client, or None (stopping, or nothing to accept now).

        After the stop, the connections the backlog held then, one by one.
        Never sleeps on an event loop's listener: out of descriptors, the
        client is told ERR busy from the reserved one; out of memory, the
        loop simply comes back when the listener is readable again.
        """
        if self._backlog:
            return self._backlog.popleft()
        self._listener_fd = listener.fileno()
        try:
            client, _addr = listener.accept()
        except (BlockingIOError, TimeoutError):  # nobody yet: the caller loops
            return None
        except OSError as error:
            if self.stopping.is_set():
                return None
            if error.errno in _OUT_OF_DESCRIPTORS and self._refuse_from_reserve(listener):
                return None
            if error.errno in _ACCEPT_CAPACITY_ERRNOS:
                log.warning("accept: %s", error)
                if listener.gettimeout() != 0.0:  # a thread of its own: it may wait
                    time.sleep(0.1)
                return None
            raise
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    def _refuse_from_reserve(self, listener: socket.socket) -> bool:
        if self._reserve is None:
            return False
        os.close(self._reserve)
        self._reserve = None
        try:
            client, _addr = listener.accept()
        except OSError:
            return False
        finally:
            try:
                self._reserve = os.open(os.devnull, os.O_RDONLY)
            except OSError:  # taken meanwhile: tried again next time
                pass
        with client:
            client.setblocking(False)
            self.metrics.count_error(ErrorCode.BUSY)
            try:
                client.send(error_line(ErrorCode.BUSY, "out of file descriptors; try later"))
                client.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        log.warning("accept: out of file descriptors; a client was told ERR busy")
        return True

    # -- shutdown ----------------------------------------------------------

    def traced(self, pool: Executor) -> Executor:
        """`pool`, its calls on the timeline when there is one."""
        return pool if self.timeline is None else self.timeline.traced(pool)

    def timed(self, fn: Callable[[int], int]) -> Callable[[int], int]:
        """`fn`, its calls on the timeline (on the thread that runs them) when
        there is one: for a pool traced() cannot wrap, such as asyncio's
        default executor, which must be a ThreadPoolExecutor."""
        return fn if self.timeline is None else self.timeline.timed(fn)

    def save_timeline(self) -> None:
        if self.timeline is not None:
            log.info("timeline written to %s", self.timeline.write())

    def on_stop(self, callback: Callable[[], object]) -> None:
        self._stop_callbacks.append(callback)

    def stop(self, *_signal: int | FrameType | None) -> None:
        """Stop accepting; let every connection finish what it has received."""
        if self.stopping.is_set():
            return
        self.drain_deadline = time.monotonic() + self.settings.drain_timeout
        with self._lock:
            connections = list(self._open.values())
        for connection in connections:
            if not connection.closed:  # not those already lingering
                connection.stop_reading()
        self._take_backlog()
        self.stopping.set()
        log.info(
            "stopping: draining %d connections (%d from the backlog) for at most %g s",
            len(connections) + len(self._backlog), len(self._backlog),
            self.settings.drain_timeout,
        )  # fmt: skip
        os.write(self._stop_writer, b"x")
        for callback in reversed(self._stop_callbacks):  # the variant's first
            callback()

    def _take_backlog(self) -> None:
        """Accept every connection the kernel completed before the stop, before
        the listener is shut (which would reset them): they are served and
        drained like the others (docs/design.md §2, SIGTERM)."""
        if self._listener_fd is None:  # no accept here (prefork's server), or none yet
            return
        # A socket object of our own on the same listener (gevent's wraps it);
        # every variant's listener is already non-blocking.
        with socket.socket(fileno=os.dup(self._listener_fd)) as listener:
            listener.setblocking(False)
            while True:
                try:
                    client, _addr = listener.accept()
                except OSError:  # BlockingIOError: none left; or no descriptor left
                    return
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._received_at_stop[client] = bytes_received(client)
                self._backlog.append(client)

    def backlog(self) -> Iterator[socket.socket]:
        """The connections the backlog held at the stop, for a variant whose
        accept loop is its event loop's (asyncio's server, trio's)."""
        while self._backlog:
            yield self._backlog.popleft()

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
    clients, and closes the socket gracefully exactly once.
    """

    def __init__(
        self, lab: Lab, sock: Any, *, write: Callable[[bytes], object] | None,
        close: Callable[[], object] | None,
    ) -> None:  # fmt: skip
        self.lab = lab
        self.sock = sock
        self.protocol = FibProtocol(lab.settings.max_n, lab.settings.max_line)
        self.metrics = lab.metrics
        self.tally: ConnectionTally | None = None  # set on entry, when metrics are on
        self.timeline = lab.timeline
        self._idle_timeout = lab.settings.idle_timeout
        self._yield_every = lab.settings.yield_every
        self.raw = write is None  # we own a plain socket (not an asyncio transport's)
        self._write = write or sock.sendall
        self.close_transport: Callable[[], object] = close or sock.close
        self.deadline = time.monotonic() + self._idle_timeout
        self.consumed = 0  # bytes handed to receive()
        self.read_limit: int | None = None  # set by a drain: bytes received before it
        self._poller: select.poll | None = None  # recv()'s, made on first use
        # Replies the client has not read wait in the kernel, up to this many
        # bytes (Linux doubles it); past it, sending blocks and the handler
        # reads no new line (docs/design.md §2).
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, lab.settings.max_unsent)
        except OSError:
            pass
        if self.raw and sock.gettimeout() is None:
            # A blocking socket: sendall() of a reply, which reply() has just
            # given the idle timeout, raises TimeoutError when the client
            # does not take it by then. (recv() waits in poll, see recv.)
            sock.settimeout(self._idle_timeout)

    @property
    def closed(self) -> bool:
        return self.protocol.closed

    @property
    def drained(self) -> bool:
        """A drain began and every byte received before it has been read."""
        return self.read_limit is not None and self.consumed >= self.read_limit

    def remaining(self) -> float:
        """Seconds left to complete the next line; raises TimeoutError when none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def recv(self, sock: socket.socket) -> bytes:
        """Wait for bytes on a blocking socket: b"" at EOF or once drained.

        It waits on the socket and on the lab's stop signal: nothing else
        wakes a thread blocked in recv when a drain begins (see the top of
        this file). TimeoutError when the line's deadline passes.
        """
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
            self._poller.register(self.lab.stop_signal, select.POLLIN)
        while not self.drained:
            ready = self._poller.poll(self.remaining() * 1000)
            if any(fd != self.lab.stop_signal for fd, _event in ready):
                return sock.recv(RECV_SIZE)
        return b""

    def turn_due(self, index: int) -> bool:
        """Whether an event loop's handler, about to answer the line at `index`
        of one read, should first let its loop run others (FIB_YIELD_EVERY):
        one client's pipelined batch then holds the loop for about one
        request, not the whole read. Never before a read's first line: a
        client sending one line at a time pays nothing for it."""
        every = self._yield_every
        return every > 0 and index > 0 and index % every == 0

    def receive(self, data: bytes) -> Iterator[Request]:
        """The complete lines in `data` (b"": the client closed), one at a time.

        While draining, bytes past those received before the signal are not
        looked at, and reaching them ends the input.
        """
        ending = False
        if (limit := self.read_limit) is not None and len(data) >= limit - self.consumed:
            data, ending = data[: max(0, limit - self.consumed)], True
        self.consumed += len(data)
        tally = self.tally
        arrived = time.monotonic()  # one clock read per read: every line in it arrived then
        for request in self.protocol.receive(data):
            request.started = arrived
            if tally is not None:
                tally.started += 1
                if tally.started >= tally.fold_at:  # keeps its lists short without a scraper
                    tally.fold()
            yield request
        if ending:
            self.protocol.closed = True

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
                    if compute is fib and self.timeline is not None:
                        compute = self.timeline.fib  # fib in this thread, on the timeline
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
        if (timeline := self.timeline) is not None:
            timeline.add("request", request.started, now, n)
        if (tally := self.tally) is not None:
            if error is None and n == tally.n:  # inline: a call would add 0.3 µs to fib(1)
                tally.durations.append(now - request.started)
            else:
                tally.answered(n, error, now - request.started)
        # The reply must be written, and the next line arrive, by then.
        self.deadline = now + self._idle_timeout
        return line

    def stop_reading(self, received: int | None = None) -> None:
        """Drain: read no further than what the kernel has received by now
        (or by the stop, `received`, for a connection accepted after it)."""
        if received is None:
            received = bytes_received(self.sock)
        if received is None:  # no TCP_INFO: what was read, plus what waits to be
            received = self.consumed + self.protocol.buffered + _unread(self.sock)
        self.read_limit = received

    def __enter__(self) -> Connection:
        self.tally = self.metrics.connection_opened()
        if (timeline := self.timeline) is not None:  # prefork: which worker it landed on
            with contextlib.suppress(OSError):
                now = time.monotonic()
                timeline.add("connection", now, now, self.sock.getpeername()[1])
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
                if not self.drained:  # a drain ends a waiting reader with its deadline
                    self._send_final(ErrorCode.IDLE_TIMEOUT, "no complete line in time")
            elif isinstance(error, ConnectionError):
                pass  # the client went away: it costs its own requests only
            elif isinstance(error, Exception):
                log.error("connection failed", exc_info=error)
        finally:
            self.protocol.closed = True
            self.lab._close(self)  # counted as open (metrics too) until its socket is closed
        return isinstance(error, Exception)

    def _send_final(self, error: ErrorCode, text: str) -> None:
        """A last ERR line, if it fits now: a client that reads nothing gets none."""
        self.metrics.count_error(error)
        line = error_line(error, text)
        try:
            if self.raw:
                self.sock.setblocking(False)
                self.sock.send(line)
            else:
                self._write(line)
        except OSError:
            pass


def _unread(sock: Any) -> int:
    try:
        buffer = bytearray(4)
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, buffer)
        return int.from_bytes(buffer, "little")
    except (OSError, ValueError):
        return 0
