# services/core/protocol.py
#
# The Fibonacci line protocol, with no I/O in it (h11's "bring your own I/O").
# Bytes go in, requests come out; replies and error lines are bytes to send.
# Every variant drives this same object from its own kind of I/O: blocking
# sockets, generator tasks or asyncio streams. Framing, strict parsing and
# limits therefore live here once (docs/design.md §2).

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class ErrorCode(Enum):
    """The error replies of docs/design.md §2, and whether the connection survives them."""

    NOT_AN_INTEGER = ("not-an-integer", False)
    OUT_OF_RANGE = ("out-of-range", False)
    SERVER_ERROR = ("server-error", False)
    LINE_TOO_LONG = ("line-too-long", True)
    BUSY = ("busy", True)
    IDLE_TIMEOUT = ("idle-timeout", True)

    def __init__(self, code: str, closes: bool) -> None:
        self.code = code
        self.closes = closes


def error_line(error: ErrorCode, text: str) -> bytes:
    """`ERR <code> <human text>\\n`, the one error format of the protocol."""
    return f"ERR {error.code} {text}\n".encode("ascii", "replace")


# Python's int() also takes "+5", "4_2" and non-ASCII digits: the grammar
# below does not. Blanks around the number are allowed, nothing else.
_INTEGER = re.compile(rb"[ \t]*(-?[0-9]+)[ \t]*")


class Outcome(Protocol):
    """A finished computation: concurrent.futures.Future or asyncio.Future."""

    def result(self) -> int: ...


@dataclass(slots=True)
class Request:
    """One complete request line.

    `n` is the integer asked for when the line is valid; otherwise `error`
    says why not and `n` is None. `started` is set by whoever times requests;
    `future` by a variant that hands fib to a pool.
    """

    n: int | None
    error: ErrorCode | None = None
    error_text: str = ""
    started: float = 0.0
    future: Outcome | None = None


class FibProtocol:
    """Framing and parsing for one connection.

    `receive(data)` takes whatever bytes arrived (b"" means end of stream) and
    yields the complete lines among them as Requests, in order, one at a
    time: 64 KiB of empty lines is 65,536 requests, and a client that sends
    them without reading its replies must not make the server hold them all
    (docs/design.md §2). A partial line stays buffered, never more than
    `max_line` bytes of it: past that the stream has lost its framing, a
    `line-too-long` request is yielded and the protocol accepts nothing more
    (`closed`).
    """

    def __init__(self, max_n: int, max_line: int) -> None:
        self.max_n = max_n
        self.max_line = max_line
        self.closed = False
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the end of a line."""
        return len(self._buffer)

    def receive(self, data: bytes) -> Iterator[Request]:
        if self.closed:
            return
        if not data:  # end of stream: an unfinished line is dropped
            self.closed = True
            self._buffer.clear()
            return
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start, start + self.max_line)) >= 0:
            line = bytes(buffer[start:end])
            start = end + 1
            yield self.parse(line)
        del buffer[:start]
        if len(buffer) >= self.max_line:
            self.closed = True
            buffer.clear()
            yield Request(None, ErrorCode.LINE_TOO_LONG, f"no newline within {self.max_line} bytes")

    def parse(self, line: bytes) -> Request:
        """One line, without its `\\n`, as a Request (valid or not)."""
        match = _INTEGER.fullmatch(line.removesuffix(b"\r"))
        if match is None:
            return Request(None, ErrorCode.NOT_AN_INTEGER, "send one integer per line, e.g. 30")
        digits = match[1]
        # Longer than max_n can be is out of range; int() would also refuse
        # more than 4300 digits (a long FIB_MAX_LINE) with a ValueError.
        if len(digits.lstrip(b"-0")) > len(str(self.max_n)):
            return Request(None, ErrorCode.OUT_OF_RANGE, f"n must be between 0 and {self.max_n}")
        n = int(digits)
        if not 0 <= n <= self.max_n:
            return Request(None, ErrorCode.OUT_OF_RANGE, f"n must be between 0 and {self.max_n}")
        return Request(n)


def reply_line(value: int) -> bytes:
    return b"%d\n" % value
