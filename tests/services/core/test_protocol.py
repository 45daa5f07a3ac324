# tests/services/core/test_protocol.py
#
# The sans-IO line protocol (services/core/protocol.py) against docs/design.md §2:
# framing, the strict integer grammar, the line limit, end of stream. The
# property tests compare it with a reference model written from docs/design.md §2
# alone and check that how the bytes are split into chunks never matters.

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.protocol import ErrorCode, FibProtocol, Request, error_line, reply_line

MAX_N = 45
MAX_LINE = 64


def feed(data: bytes, max_n: int = MAX_N, max_line: int = MAX_LINE) -> list[Request]:
    return list(FibProtocol(max_n, max_line).receive(data))


def outcome(request: Request) -> int | str:
    """n for a valid line, else the error code."""
    if request.error is None:
        assert request.n is not None
        return request.n
    assert request.n is None
    return request.error.code


def outcomes(data: bytes, **limits: int) -> list[int | str]:
    return [outcome(request) for request in feed(data, **limits)]


# -- valid lines ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "n"),
    [
        (b"0\n", 0),
        (b"10\n", 10),
        (b"45\n", 45),
        (b"007\n", 7),
        (b"-0\n", 0),
        (b" 5\n", 5),
        (b"5 \n", 5),
        (b"\t 5 \t\n", 5),
        (b"5\r\n", 5),
        (b"  12  \r\n", 12),
    ],
)
def test_valid_line(line: bytes, n: int) -> None:
    assert outcomes(line) == [n]


# -- not-an-integer: what int() would accept, and plain junk ---------------


@pytest.mark.parametrize(
    "line",
    [
        b"\n",  # an empty line asks for nothing
        b"\r\n",
        b"   \n",
        b"-\n",
        b"--1\n",
        b"+5\n",  # int() accepts these four
        b"4_2\n",
        "٤٢\n".encode(),  # Arabic-Indic digits
        "４２\n".encode(),  # fullwidth digits
        "\u00a05\n".encode(),  # a non-ASCII blank
        b"abc\n",
        b"1 2\n",
        b"1.0\n",
        b"0x10\n",
        b"1e3\n",
        b"5\r\r\n",  # only one \r before \n is part of the line ending
        b"5\rx\n",
        b"\x005\n",
        b"\xff\xfe\n",
    ],
)
def test_not_an_integer(line: bytes) -> None:
    [request] = feed(line)
    assert request.error is ErrorCode.NOT_AN_INTEGER
    assert request.n is None
    assert request.error_text  # the human text is not empty


@pytest.mark.parametrize("line", [b"-1\n", b"46\n", b"-45\n", b"99999999999999999999999999\n"])
def test_out_of_range(line: bytes) -> None:
    [request] = feed(line)
    assert request.error is ErrorCode.OUT_OF_RANGE
    assert "45" in request.error_text  # says what the limit is


def test_max_n_is_the_setting() -> None:
    assert outcomes(b"10\n11\n", max_n=10) == [10, "out-of-range"]


def test_huge_number_within_a_long_line_limit_is_out_of_range() -> None:
    # FIB_MAX_LINE accepts any value >= 3. int() refuses strings of more than
    # 4300 digits (CPython's int_max_str_digits): that must be out-of-range,
    # not a ValueError escaping receive().
    assert outcomes(b"1" * 5000 + b"\n", max_line=10_000) == ["out-of-range"]


# -- framing ----------------------------------------------------------------


def test_pipelined_lines_answered_in_order() -> None:
    assert outcomes(b"1\n2\nx\n-1\n3\r\n") == [1, 2, "not-an-integer", "out-of-range", 3]


def test_line_split_across_receives() -> None:
    protocol = FibProtocol(MAX_N, MAX_LINE)
    assert list(protocol.receive(b" 1")) == []
    assert protocol.buffered == 2
    assert list(protocol.receive(b"2\r")) == []
    [request] = protocol.receive(b"\n3")
    assert request.n == 12
    assert protocol.buffered == 1


def test_byte_by_byte() -> None:
    protocol = FibProtocol(MAX_N, MAX_LINE)
    found = [r for byte in b"10\n-3\n7\r\n" for r in protocol.receive(bytes([byte]))]
    assert [outcome(r) for r in found] == [10, "out-of-range", 7]


def test_end_of_stream_drops_the_partial_line_and_closes() -> None:
    protocol = FibProtocol(MAX_N, MAX_LINE)
    assert [outcome(r) for r in protocol.receive(b"1\n2")] == [1]
    assert list(protocol.receive(b"")) == []
    assert protocol.closed
    assert protocol.buffered == 0
    assert list(protocol.receive(b"\n3\n")) == []


# -- the line limit: the \n must come within max_line bytes ---------------


@pytest.mark.parametrize("max_line", [3, 8, 64])
def test_longest_line_allowed(max_line: int) -> None:
    body = b"0" * (max_line - 2) + b"5"  # max_line - 1 bytes, then \n: max_line in all
    assert outcomes(body + b"\n", max_line=max_line) == [5]
    # Across two receives too, and with \r\n one digit fewer fits.
    protocol = FibProtocol(MAX_N, max_line)
    assert list(protocol.receive(body)) == []
    assert protocol.buffered == max_line - 1
    assert [outcome(r) for r in protocol.receive(b"\n")] == [5]
    assert outcomes(body[1:] + b"\r\n", max_line=max_line) == [5]


@pytest.mark.parametrize("max_line", [3, 8, 64])
def test_one_byte_over_the_limit(max_line: int) -> None:
    body = b"0" * (max_line - 1) + b"5"  # max_line bytes before the \n
    assert outcomes(body + b"\n", max_line=max_line) == ["line-too-long"]
    assert outcomes(body[1:] + b"\r\n", max_line=max_line) == ["line-too-long"]
    # Detected as soon as max_line bytes are held, without waiting for a \n.
    protocol = FibProtocol(MAX_N, max_line)
    assert list(protocol.receive(body[:-1])) == []
    [request] = protocol.receive(body[-1:])
    assert request.error is ErrorCode.LINE_TOO_LONG
    assert str(max_line) in request.error_text
    assert protocol.closed


def test_line_too_long_stops_parsing() -> None:
    protocol = FibProtocol(MAX_N, MAX_LINE)
    stream = b"1\n" + b"9" * 100 + b"\n2\n"
    assert [outcome(r) for r in protocol.receive(stream)] == [1, "line-too-long"]
    assert protocol.closed
    assert protocol.buffered == 0
    assert list(protocol.receive(b"3\n")) == []
    assert list(protocol.receive(b"")) == []


# -- reply formats ------------------------------------------------------------


def test_reply_line() -> None:
    assert reply_line(0) == b"0\n"
    assert reply_line(1134903170) == b"1134903170\n"


def test_error_line_format() -> None:
    for error in ErrorCode:
        line = error_line(error, "some text")
        assert line == f"ERR {error.code} some text\n".encode()
    # Whatever the text holds, the reply is one ASCII line.
    assert error_line(ErrorCode.BUSY, "naïve").isascii()


def test_error_codes_and_which_close_the_connection() -> None:
    closing = {error.code: error.closes for error in ErrorCode}
    assert closing == {
        "not-an-integer": False,
        "out-of-range": False,
        "server-error": False,
        "line-too-long": True,
        "busy": True,
        "idle-timeout": True,
    }


# -- properties ---------------------------------------------------------------

_BLANK = frozenset(b" \t")
_DIGITS = re.compile(rb"-?[0-9]+")


def reference_outcomes(stream: bytes, max_n: int, max_line: int) -> list[int | str]:
    """docs/design.md §2 read literally, for a stream followed by end of stream."""
    found: list[int | str] = []
    *lines, partial = stream.split(b"\n")
    for line in lines:
        if len(line) + 1 > max_line:  # the \n did not come within max_line bytes
            return [*found, "line-too-long"]
        if line.endswith(b"\r"):
            line = line[:-1]
        start, end = 0, len(line)
        while start < end and line[start] in _BLANK:
            start += 1
        while end > start and line[end - 1] in _BLANK:
            end -= 1
        number = line[start:end]
        if not _DIGITS.fullmatch(number):
            found.append("not-an-integer")
        elif (number.startswith(b"-") and number.strip(b"-0")) or len(number.lstrip(b"0")) > 6:
            found.append("out-of-range")  # negative, or more digits than any max_n here
        elif int(number) > max_n:
            found.append("out-of-range")
        else:
            found.append(int(number))
    if len(partial) >= max_line:
        found.append("line-too-long")
    return found


# Streams made mostly of protocol-ish bytes, so that valid lines, blanks, \r
# and long lines all occur, plus arbitrary bytes.
_protocol_bytes = st.sampled_from([b"0", b"1", b"2", b"9", b"-", b" ", b"\t", b"\r", b"\n", b"x"])
# Lines built around a number, with the characters at the edges of the grammar.
_edges = st.sampled_from(
    [b"", b" ", b"\t", b"  \t", b"\r", b"\x0b", b"\x0c", b"\xc2\xa0", b"+", b"-", b"_", b"0"]
)
_lines = st.tuples(
    _edges, st.sampled_from([b"", b"-"]), st.text("0123456789_", max_size=5).map(str.encode),
    _edges, st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\n\n"]),
).map(b"".join)  # fmt: skip
streams = st.one_of(
    st.lists(_lines, max_size=8).map(b"".join),
    st.lists(_protocol_bytes, max_size=200).map(b"".join),
    st.binary(max_size=200),
    st.lists(st.sampled_from([b"1\n", b"30\r\n", b" -2 \n", b"46\n", b"+5\n", b"9" * 70])).map(
        b"".join
    ),
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A stream and the same stream cut into non-empty chunks (b"" means EOF)."""
    stream = draw(streams)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=20)))
    bounds = [0, *(c for c in cuts if c < len(stream)), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return stream, chunks


@settings(max_examples=400, deadline=None)
@given(chunked(), st.integers(3, 80), st.integers(0, 45))
def test_chunking_never_matters(
    stream_and_chunks: tuple[bytes, list[bytes]], max_line: int, max_n: int
) -> None:
    stream, chunks = stream_and_chunks
    assert b"".join(chunks) == stream
    whole = FibProtocol(max_n, max_line)
    at_once = list(whole.receive(stream)) if stream else []
    assert whole.buffered < max_line

    split = FibProtocol(max_n, max_line)
    piecewise: list[Request] = []
    for chunk in chunks:
        was_closed = split.closed
        got = list(split.receive(chunk))
        if was_closed:
            assert got == []  # after line-too-long nothing more comes out
        piecewise += got
        assert split.buffered < max_line
    assert piecewise == at_once
    assert split.closed == whole.closed

    results = [outcome(r) for r in at_once]
    assert results == reference_outcomes(stream, max_n, max_line)
    if "line-too-long" in results:
        assert results.index("line-too-long") == len(results) - 1
        assert whole.closed

    # End of stream: nothing more, and closed.
    assert list(whole.receive(b"")) == []
    assert whole.closed
    assert whole.buffered == 0
    assert list(whole.receive(b"1\n")) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_text_line_parses_like_the_grammar(text: str) -> None:
    line = text.replace("\n", "").encode()
    results = outcomes(line + b"\n", max_line=1000)
    assert results == reference_outcomes(line + b"\n", MAX_N, 1000)
    assert len(results) == 1
