# loadtest/talk/perf1.py
#
# Time of a long running request: the talk's perf1 client. One connection,
# fib(n) asked again and again, the seconds each reply took printed one per
# line. Run two or three at once against `threads` to watch the time double
# and triple (the GIL), and against a *-procpool variant to see it not.
#
#   python -m loadtest.talk.perf1 [--host 127.0.0.1] [--port 25002] [--n 30]
#                            [--duration 30] [--count C]
#
# Unlike the talk's client, requests end with "\n" (docs/design.md §2), and the run is
# bounded. The line-protocol client here is shared with perf2.

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable, Sequence

# The compose-published port of `threads` (docs/design.md §7: sync 25001, threads 25002, ...).
DEFAULT_PORT = 25002
CONNECT_TIMEOUT = 5.0


class ServerClosed(ConnectionError):
    """The server closed the connection before a whole reply line."""

    def __init__(self) -> None:
        super().__init__("the server closed the connection")


class ErrorReply(Exception):
    """The server answered `ERR <code> <text>`."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


class LineClient:
    """One connection speaking the line protocol: a request out, a reply line in."""

    def __init__(self, host: str, port: int, reply_timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(reply_timeout)
        self.replies = self.sock.makefile("rb")

    def ask(self, request: bytes) -> int:
        """Send one request line; fib's value, or ErrorReply / ServerClosed."""
        self.sock.sendall(request)
        line = self.replies.readline()
        if not line.endswith(b"\n"):
            raise ServerClosed
        if line.startswith(b"ERR "):
            raise ErrorReply(line.decode("ascii", "replace").rstrip())
        return int(line)

    def close(self) -> None:
        self.replies.close()
        self.sock.close()


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value

    return check


def connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="server address [127.0.0.1]")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"server port [{DEFAULT_PORT}: threads]"
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=300.0,
        help="seconds to wait for one reply before giving up [300]",
    )


def connect(prog: str, host: str, port: int, reply_timeout: float) -> LineClient:
    """A connected client, or a one-line message and exit status 1."""
    try:
        return LineClient(host, port, reply_timeout)
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        print(f"{prog}: cannot connect to {host}:{port}: {reason}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.talk.perf1",
        description="Ask fib(n) repeatedly on one connection; print seconds per request.",
    )
    connection_arguments(parser)
    parser.add_argument("--n", type=int, default=30, help="the n of fib(n) [30]")
    parser.add_argument(
        "--duration", type=positive(float), default=30.0, help="stop after this many seconds [30]"
    )
    parser.add_argument(
        "--count", type=positive(int), default=None, help="stop after this many requests"
    )
    args = parser.parse_args(argv)

    client = connect("perf1", args.host, args.port, args.timeout)
    request = b"%d\n" % args.n
    times: list[float] = []
    end = time.monotonic() + args.duration
    status = 0
    try:
        while time.monotonic() < end and (args.count is None or len(times) < args.count):
            start = time.perf_counter()
            client.ask(request)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            print(f"{elapsed:.6f}", flush=True)
    except ErrorReply as error:
        print(f"perf1: the server answered: {error.line}", file=sys.stderr)
        status = 1
    except OSError as error:
        reason = "no reply in time" if isinstance(error, TimeoutError) else error
        print(f"perf1: {reason}, after {len(times)} requests", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        client.close()
    if times:
        mean = sum(times) / len(times)
        print(f"perf1: fib({args.n}): {len(times)} requests, {mean:.6f} s/request", file=sys.stderr)
    return status


def run(entry: Callable[[], int]) -> None:
    """The command line: Ctrl-C ends it quietly, with status 130."""
    try:
        sys.exit(entry())
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run(main)
