# services/core/metrics_http.py
#
# The HTTP server behind /metrics (docs/design.md §4), bounded so that nothing
# done to the metrics port changes what the fib port serves.
#
# prometheus_client's start_http_server is a ThreadingWSGIServer: a thread per
# connection, any number of them, no timeout. Slow or idle clients there
# become hundreds of threads (CPU and GIL time taken from the variant) and,
# near RLIMIT_NOFILE, descriptors the fib listener then cannot accept with.
# This is the same server (socketserver + wsgiref, prometheus_client's WSGI
# app: content negotiation, gzip, `name[]`, any path) with three bounds:
#
# - at most SCRAPE_CONNECTIONS connections at once; one more is answered 503
#   and closed by the accepting thread itself, without a thread of its own;
# - SCRAPE_DEADLINE seconds for the whole exchange, from accept to close:
#   the request head is read, and the reply written, with socket timeouts
#   set to what is left of it (trickling bytes does not extend it); and the
#   accepting thread, between accepts, shuts down any connection still open
#   WATCHDOG_PERIOD after it (an app slower than the deadline);
# - a request head must start like one (an upper-case method, a space) and
#   end within SCRAPE_HEAD_BYTES: anything else is answered 400 (431 for a
#   head too long, 408 for one not complete in time) and closed at once.

from __future__ import annotations

import errno
import io
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import IO, Any, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer
from wsgiref.types import WSGIApplication

from prometheus_client import make_wsgi_app
from prometheus_client.registry import Collector

# Connections served at once: Prometheus (one scrape a second, 1 s timeout),
# the comparison runner's sampler and a person or a test fit with room to
# spare. The server's file-descriptor budget counts these, plus the listener.
SCRAPE_CONNECTIONS = 8
# Seconds from accept to close: every client of /metrics here gives up after
# at most 10 s (Prometheus after 1 s), so none is cut off that still waits.
SCRAPE_DEADLINE = 10.0
# Request line and headers: a scraper sends a few hundred bytes.
SCRAPE_HEAD_BYTES = 8192
# How often, at least, the accepting thread looks for connections past their
# deadline, and how long past it (prometheus_client's server polls as often).
WATCHDOG_PERIOD = 0.5

log = logging.getLogger("fiblab")

# What a request head may look like so far: a method of upper-case letters
# and a space, or the start of one. A TLS hello, a line-protocol request or
# binary noise fails at its first byte.
_HEAD_START = re.compile(rb"[A-Z]{1,20} |[A-Z]{0,20}\Z")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
# accept() failing for want of descriptors or memory: wait before the next try
# (docs/design.md §2, as the fib listener does) instead of spinning on a
# listener that stays readable.
_ACCEPT_SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS)


def refusal(status: int, text: str) -> bytes:
    """A complete HTTP/1.0 response that ends the connection."""
    body = f"{status} {_REASONS[status]}: {text}\n".encode()
    head = (
        f"HTTP/1.0 {status} {_REASONS[status]}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class DeadlineWriter(io.BufferedIOBase):
    """What a reply is written through: each write may take what is left of
    the connection's deadline, so that all of them together end by it."""

    def __init__(self, sock: socket.socket, time_left: Callable[[], float]) -> None:
        self._sock = sock
        self._time_left = time_left

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        left = self._time_left()
        if left <= 0:
            raise TimeoutError("the /metrics deadline has passed")
        self._sock.settimeout(left)
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class QuietServerHandler(ServerHandler):
    """wsgiref's handler, which would print a traceback for a reply the
    client stopped reading (the deadline's timeout, a reset): those are the
    client's doing and cost only its own connection."""

    def log_exception(self, exc_info: Any) -> None:
        if not isinstance(exc_info[1], OSError):
            log.error("/metrics request failed", exc_info=exc_info)


class ScrapeHandler(WSGIRequestHandler):
    """One request per connection (HTTP/1.0), its head read under the deadline."""

    server: ScrapeServer
    # Errors found by http.server (a bad version, say) get a status line and
    # headers: it would answer as to HTTP/0.9, a bare body, which nobody speaks.
    default_request_version = "HTTP/1.0"

    def handle(self) -> None:
        head = self.read_head()
        if head is None:
            return
        # As WSGIRequestHandler.handle, on the head already read (a GET has no
        # body), with a ServerHandler that logs no traceback for a client gone.
        self.rfile.close()  # the socket's own reader: it holds a reference to the socket
        self.rfile = io.BytesIO(head)
        self.raw_requestline = self.rfile.readline()
        if not self.parse_request():  # it has answered the error itself
            return
        sock: socket.socket = self.connection
        self.wfile = DeadlineWriter(sock, lambda: self.server.time_left(sock))
        reply = cast(IO[bytes], self.wfile)
        handler = QuietServerHandler(
            self.rfile, reply, self.get_stderr(), self.get_environ(), multithread=False
        )
        handler.request_handler = self  # type: ignore[attr-defined]  # as wsgiref does
        handler.run(self.server.app)

    def read_head(self) -> bytes | None:
        """The request line and headers, or None once refused or gone."""
        sock: socket.socket = self.connection
        head = bytearray()
        while True:
            left = self.server.time_left(sock)
            try:
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(4096)
            except TimeoutError:
                self.refuse(408, "the request took too long")
                return None
            except OSError:  # reset, or shut down by the watchdog
                return None
            if not chunk:
                return None  # the client left before a whole request
            searched = max(0, len(head) - 3)  # a head's end may straddle two chunks
            head += chunk
            if not _HEAD_START.match(head):
                self.refuse(400, "not an HTTP request")
                return None
            end = _HEAD_END.search(head, searched)
            if end is not None and end.end() <= SCRAPE_HEAD_BYTES:
                return bytes(head[: end.end()])
            if len(head) >= SCRAPE_HEAD_BYTES:
                self.refuse(431, f"the request head exceeds {SCRAPE_HEAD_BYTES} bytes")
                return None

    def refuse(self, status: int, text: str) -> None:
        """Answer `status` and let the connection close."""
        sock: socket.socket = self.connection
        try:
            sock.settimeout(1.0)
            sock.sendall(refusal(status, text))
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request (as prometheus_client's own server)."""


class ScrapeServer(ThreadingMixIn, WSGIServer):
    """A WSGI server with a connection cap and a per-connection deadline."""

    daemon_threads = True  # never joined: the process exits with its connections
    request_queue_size = 128  # the backlog: connections over the cap are refused at once

    def __init__(
        self,
        address: tuple[str, int],
        app: WSGIApplication,
        *,
        family: socket.AddressFamily = socket.AF_INET,
        connections: int = SCRAPE_CONNECTIONS,
        deadline: float = SCRAPE_DEADLINE,
    ) -> None:
        self.address_family = family
        self.connections = connections
        self.deadline = deadline
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}  # open connection -> its deadline
        super().__init__(address, ScrapeHandler)
        self.app = app

    def open_connections(self) -> int:
        with self._lock:
            return len(self._deadlines)

    def time_left(self, sock: socket.socket) -> float:
        with self._lock:
            deadline = self._deadlines.get(sock, 0.0)
        return deadline - time.monotonic()

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in _ACCEPT_SHORTAGE:
                log.warning("/metrics accept: %s", error)
                time.sleep(0.1)
            raise  # socketserver drops this accept and goes on

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit a connection under the cap; refuse one over it (this thread)."""
        sock: socket.socket = request
        with self._lock:
            if len(self._deadlines) < self.connections:
                self._deadlines[sock] = time.monotonic() + self.deadline
                return True
        try:  # a fresh socket's send buffer is empty: this cannot block
            sock.setblocking(False)
            discard_pending(sock)  # so that closing sends a FIN, not a reset
            sock.send(refusal(503, f"{self.connections} scrapes already in progress"))
        except OSError:
            pass
        return False  # socketserver then closes it

    def shutdown_request(self, request: Any) -> None:
        with self._lock:  # forgotten before it closes: the watchdog never sees a closed socket
            self._deadlines.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """The watchdog, run by the accepting thread between accepts.

        A handler's own socket timeouts end its connection at the deadline
        (with a 408 while the request is incomplete). Whatever they do not
        cover, this shuts down WATCHDOG_PERIOD later, which wakes the handler
        from the recv or send it is blocked in."""
        overdue = time.monotonic() - WATCHDOG_PERIOD
        with self._lock:
            for sock, deadline in self._deadlines.items():
                if deadline <= overdue:
                    try:  # again on the next pass if its handler has not ended yet
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that fails costs only itself: not logged when it is
        the client's doing (a reset, a timeout), logged otherwise."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return
        log.error("/metrics request from %s failed", client_address, exc_info=error)


def discard_pending(sock: socket.socket) -> None:
    """Read and drop what a non-blocking socket has received so far."""
    for _ in range(16):
        try:
            if not sock.recv(65536):
                return
        except BlockingIOError:
            return


def address_family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The family and address to bind `host` with (IPv6 too), as
    prometheus_client's own server chooses them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _type, _proto, _name, sockaddr = infos[0]
    return family, str(sockaddr[0])


def start_scrape_server(
    registry: Collector,
    host: str,
    port: int,
    *,
    connections: int = SCRAPE_CONNECTIONS,
    deadline: float = SCRAPE_DEADLINE,
) -> tuple[ScrapeServer, threading.Thread]:
    """Serve `registry` at http://host:port/metrics from one daemon thread
    (and one per connection, at most `connections`). OSError if it cannot bind."""
    family, address = address_family(host, port)
    server = ScrapeServer(
        (address, port),
        make_wsgi_app(registry),
        family=family,
        connections=connections,
        deadline=deadline,
    )
    thread = threading.Thread(
        target=server.serve_forever, args=(WATCHDOG_PERIOD,), name="metrics", daemon=True
    )
    thread.start()
    return server, thread
