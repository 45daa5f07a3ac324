# loadtest/check/wire.py
#
# The check's side of a connection (docs/design.md §6.9): raw bytes with
# one deadline for a whole case. LineConnection (loadtest/swarm/client.py)
# is the load generator's client: it strips `\r`, reconnects after a close
# and times each recv on its own; a conformance check must see the exact
# bytes, an EOF where one is due, and give up on a case as a whole, so it
# has this thin wrapper over a plain socket instead. Every byte sent and
# received is kept for the report.

from __future__ import annotations

import socket
import time

from loadtest.swarm.targets import Address

RECV_SIZE = 65536
SHOWN_BYTES = 60  # longer byte strings are shown cut, with their length


class NoReply(Exception):
    """Nothing (no line, no EOF) arrived before the case's deadline."""


class Mismatch(Exception):
    """What came back is not what the protocol says; the message says how."""


def shown(data: bytes) -> str:
    """Bytes as a Python literal, long ones cut: b'   ...1\\n' (300 bytes)."""
    if len(data) <= SHOWN_BYTES:
        return repr(data)
    half = SHOWN_BYTES // 2
    return f"{data[:half]!r}…{data[-half:]!r} ({len(data):,} bytes)"


class Transcript:
    """What a case sent, expected and got, in order, over all its connections."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.sent: list[str] = []
        self.expected: list[str] = []
        self.got: list[str] = []
        self.connections = 0

    def connect(self, address: Address) -> Wire:
        self.connections += 1
        return Wire(address, self, self.connections)

    def expect(self, text: str) -> None:
        self.expected.append(text)

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise NoReply(f"no reply within {self.timeout:g} s")
        return left


class Wire:
    """One connection of a case; its reads wait at most until the case's deadline."""

    def __init__(self, address: Address, transcript: Transcript, number: int) -> None:
        self.transcript = transcript
        # Numbered only when a case opens several: "[2] b'10\n'".
        self.label = f"[{number}] " if number > 1 or transcript.connections > 1 else ""
        try:
            self.sock = socket.create_connection(address, timeout=transcript.remaining())
        except TimeoutError:
            raise NoReply(
                f"connection {number} not accepted within {transcript.timeout:g} s"
            ) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.at_eof = False

    def note(self, into: list[str], text: str) -> None:
        into.append(self.label + text)

    def send(self, data: bytes) -> None:
        self.note(self.transcript.sent, shown(data))
        self.sock.settimeout(self.transcript.remaining())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise NoReply(
                f"the server took no more bytes within {self.transcript.timeout:g} s"
            ) from None

    def shutdown_write(self) -> None:
        """Our side closed (the server then sees EOF)."""
        self.note(self.transcript.sent, "EOF")
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self) -> None:
        """More bytes into the buffer, or at_eof (a reset counts as EOF)."""
        self.sock.settimeout(self.transcript.remaining())
        try:
            chunk = self.sock.recv(RECV_SIZE)
        except TimeoutError:
            raise NoReply(f"no reply within {self.transcript.timeout:g} s") from None
        except ConnectionResetError:
            chunk = b""
        if chunk:
            self.buffer += chunk
        else:
            self.at_eof = True

    def line(self) -> bytes:
        """The next line with its `\\n`; at EOF what is left (b"": nothing)."""
        while b"\n" not in self.buffer and not self.at_eof:
            self._fill()
        end = self.buffer.find(b"\n")
        line, self.buffer = (
            (self.buffer, b"") if end < 0 else (self.buffer[: end + 1], self.buffer[end + 1 :])
        )
        self.note(self.transcript.got, shown(line) if line else "EOF")
        return line

    def closed(self) -> bytes:
        """Bytes up to the server's EOF: b"" when it closes with nothing more."""
        while not self.at_eof:
            self._fill()
        rest, self.buffer = self.buffer, b""
        self.note(self.transcript.got, (shown(rest) + ", then " if rest else "") + "EOF")
        return rest

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
