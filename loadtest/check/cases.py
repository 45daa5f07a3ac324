# loadtest/check/cases.py
#
# The protocol cases of `python -m loadtest.check` (docs/design.md §6.9),
# black-box: each opens its own connections to the target, sends bytes,
# and sets what came back against docs/design.md §2. A case has one
# deadline (--case-timeout) for all it does; a case that cannot apply to
# this server (a limit not known, or longer than the deadline) is skipped
# with the reason. The server's limits are options or found by asking
# (discover_limits), never assumed.

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from loadtest.check.wire import Mismatch, NoReply, Transcript, Wire
from loadtest.swarm.client import fib_value
from loadtest.swarm.targets import Address

PHI = (1 + math.sqrt(5)) / 2  # naive fib(n + 1) costs about PHI times fib(n)
TIMED_N = 25  # n of the timed request the cost of a larger n is reckoned from
LONGEST_LINE_PROBE = 1 << 20  # the longest line discovery sends: beyond it, "no limit found"
DISCOVERY_ROUNDS = 8  # at most this many larger n asked while looking for the largest
CONNECTIONS_AT_ONCE = 4  # the "several connections at once" case (a small backlog holds 4)
CLOSED_SETTLE_SECONDS = 0.5
MOST_CONNECTIONS = 512  # a connection cap above this is not tried (a case opens cap + 1)
ANSWERED, REFUSED = "answered", "refused"


class Skip(Exception):
    """The case does not apply to this server; the message says why."""


@dataclass
class Limit:
    """One of the server's limits: its value (None: unknown) and where it came from."""

    value: float | None
    source: str  # "--max-n", "discovered", or why it is unknown


@dataclass
class Limits:
    max_n: Limit
    max_line: Limit
    idle_timeout: Limit
    max_connections: Limit
    fib_seconds: float  # the timed fib(TIMED_N): the cost of a larger n is reckoned from it


@dataclass
class Result:
    name: str
    sent: str
    expected: str
    got: str
    outcome: str  # "pass", "fail" or "skipped"
    reason: str
    seconds: float

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Context:
    address: Address
    timeout: float  # --case-timeout
    limits: Limits

    def seconds_for(self, n: int) -> float:
        """What fib(n) should take here, reckoned from the timed fib(TIMED_N) as naive
        recursion (docs/design.md §2): an upper bound for a faster server."""
        return self.limits.fib_seconds * PHI ** (n - TIMED_N)


# -- what a reply must be -------------------------------------------------------


def number(n: int) -> bytes:
    """The reply to fib(n), n >= 0."""
    value = fib_value(n)
    assert value is not None, n
    return b"%d\n" % value


def error_pattern(code: str) -> re.Pattern[bytes]:
    # `ERR <code> <text>\n`: a human text follows the code
    return re.compile(rb"ERR " + code.encode() + rb" [^\r\n]*\S[^\r\n]*\n")


Expected = bytes | str  # a whole line, or an ERR code


def describe(expected: Expected) -> str:
    return repr(expected) if isinstance(expected, bytes) else f"ERR {expected} <text>\\n"


def matches(line: bytes, expected: Expected) -> bool:
    if isinstance(expected, bytes):
        return line == expected
    return error_pattern(expected).fullmatch(line) is not None


def expect_line(transcript: Transcript, wire: Wire, expected: Expected, why: str = "") -> None:
    transcript.expect(describe(expected) + (f" ({why})" if why else ""))
    line = wire.line()
    if matches(line, expected):
        return
    if not line:
        raise Mismatch(f"expected {describe(expected)}, the server closed the connection")
    raise Mismatch(f"expected {describe(expected)}, got {line!r}")


def expect_closed(transcript: Transcript, wire: Wire) -> None:
    transcript.expect("EOF (the server closes the connection)")
    if rest := wire.closed():
        raise Mismatch(f"expected the connection closed, got {rest!r} first")


def still_open(transcript: Transcript, wire: Wire) -> None:
    """The connection stays usable: fib(10) on it."""
    wire.send(b"10\n")
    expect_line(transcript, wire, b"55\n", "the connection stays open")


# -- the cases ------------------------------------------------------------------

CaseRun = Callable[[Context, Transcript], None]


@dataclass(frozen=True)
class Case:
    name: str
    run: CaseRun


def one_request(line: bytes, expected: Expected) -> CaseRun:
    def run(context: Context, transcript: Transcript) -> None:
        with transcript.connect(context.address) as wire:
            wire.send(line)
            expect_line(transcript, wire, expected)

    return run


def small_n_one_at_a_time(context: Context, transcript: Transcript) -> None:
    with transcript.connect(context.address) as wire:
        for n in range(2, TIMED_N + 1):
            wire.send(b"%d\n" % n)
            expect_line(transcript, wire, number(n), f"fib({n})")


def largest_n(context: Context, transcript: Transcript) -> None:
    limit = context.limits.max_n
    if limit.value is None:
        raise Skip(f"the largest n is not known: {limit.source}")
    n = int(limit.value)
    if (seconds := context.seconds_for(n)) > context.timeout / 2:
        raise Skip(
            f"fib({n}) would take about {seconds:,.0f} s here (fib({TIMED_N}) took "
            f"{context.limits.fib_seconds * 1000:.1f} ms), over half of --case-timeout "
            f"{context.timeout:g} s; a smaller --max-n on the server brings it in"
        )
    with transcript.connect(context.address) as wire:
        wire.send(b"%d\n" % n)
        expect_line(transcript, wire, number(n), f"fib({n}), the largest n")


def bad_line(line: bytes, code: str) -> CaseRun:
    """A line the server must refuse with `code`, the connection staying open."""

    def run(context: Context, transcript: Transcript) -> None:
        with transcript.connect(context.address) as wire:
            wire.send(line + b"\n")
            expect_line(transcript, wire, code)
            still_open(transcript, wire)

    return run


def above_largest_n(context: Context, transcript: Transcript) -> None:
    limit = context.limits.max_n
    if limit.value is None:
        raise Skip(f"the largest n is not known: {limit.source}")
    bad_line(b"%d" % (int(limit.value) + 1), "out-of-range")(context, transcript)


def crlf_and_blanks(context: Context, transcript: Transcript) -> None:
    with transcript.connect(context.address) as wire:
        wire.send(b"10\r\n")
        expect_line(transcript, wire, b"55\n", "a \\r before the \\n is ignored")
        wire.send(b" \t7\t \r\n")
        expect_line(transcript, wire, b"13\n", "blanks around the integer")


def line_in_pieces(context: Context, transcript: Transcript) -> None:
    with transcript.connect(context.address) as wire:
        for byte in b"  20 \r\n":
            wire.send(bytes([byte]))
            time.sleep(0.01)  # each byte its own segment (TCP_NODELAY)
        expect_line(transcript, wire, number(20))


def pipelined(context: Context, transcript: Transcript) -> None:
    with transcript.connect(context.address) as wire:
        wire.send(b"".join(b"%d\n" % n for n in range(TIMED_N + 1)))
        for n in range(TIMED_N + 1):
            expect_line(transcript, wire, number(n), f"fib({n}), in order")


def pipelined_with_errors(context: Context, transcript: Transcript) -> None:
    with transcript.connect(context.address) as wire:
        wire.send(b"10\nabc\n-1\n12\n")
        for expected in (b"55\n", "not-an-integer", "out-of-range", b"144\n"):
            expect_line(transcript, wire, expected, "in order")


def eof_with_unfinished_line(context: Context, transcript: Transcript) -> None:
    with transcript.connect(context.address) as wire:
        wire.send(b"10\n12")
        wire.shutdown_write()
        expect_line(transcript, wire, b"55\n", "the complete line is answered")
        transcript.expect("EOF (the unfinished line is dropped)")
        if rest := wire.closed():
            raise Mismatch(f"the unfinished line was answered: {rest!r}")


def line_too_long(context: Context, transcript: Transcript) -> None:
    limit = context.limits.max_line
    if limit.value is None:
        raise Skip(f"the longest line is not known: {limit.source}")
    longest = int(limit.value)
    with transcript.connect(context.address) as wire:
        wire.send(b" " * (longest - 3) + b"10\n")
        expect_line(transcript, wire, b"55\n", f"a line of {longest} bytes with its \\n")
        wire.send(b"10\n" + b"1" * longest)
        expect_line(transcript, wire, b"55\n", "lines complete before it are answered first")
        expect_line(transcript, wire, "line-too-long", f"{longest} bytes without a \\n")
        expect_closed(transcript, wire)


def several_connections(context: Context, transcript: Transcript) -> None:
    # All open before any is answered; each is read and closed in turn, so
    # a server that serves one connection at a time passes too.
    cap = context.limits.max_connections.value
    count = min(CONNECTIONS_AT_ONCE, int(cap)) if cap is not None else CONNECTIONS_AT_ONCE
    wires = [transcript.connect(context.address) for _ in range(count)]
    try:
        for index, wire in enumerate(wires):
            wire.send(b"%d\n" % (10 + index))
        for index, wire in enumerate(wires):
            expect_line(transcript, wire, number(10 + index), "its own reply")
            wire.close()
    finally:
        for wire in wires:
            wire.close()


IDLE_SLACK = 1.0  # seconds past the idle timeout its ERR may take to arrive


def idle_timeout(context: Context, transcript: Transcript) -> None:
    limit = context.limits.idle_timeout
    if limit.value is None:
        raise Skip(f"the idle timeout is not known: {limit.source}")
    seconds = limit.value
    if seconds * 1.25 + IDLE_SLACK > context.timeout:
        raise Skip(
            f"the idle timeout {seconds:g} s (and its slack) is longer than "
            f"--case-timeout {context.timeout:g} s"
        )
    with transcript.connect(context.address) as wire:
        wire.send(b"10\n")
        expect_line(transcript, wire, b"55\n")
        replied = time.monotonic()
        wire.send(b"1")  # an unfinished line does not count as activity
        expect_line(transcript, wire, "idle-timeout", f"{seconds:g} s after the reply")
        waited = time.monotonic() - replied
        expect_closed(transcript, wire)
    if not seconds * 0.8 <= waited <= seconds * 1.25 + IDLE_SLACK:
        raise Mismatch(f"idle-timeout came {waited:.2f} s after the reply, not {seconds:g} s")


def connection_cap(context: Context, transcript: Transcript) -> None:
    limit = context.limits.max_connections
    if limit.value is None:
        raise Skip(f"the connection cap is not known: {limit.source}")
    cap = int(limit.value)
    if cap > MOST_CONNECTIONS:
        raise Skip(f"a cap of {cap:,} connections is more than this check opens")
    # A server counts a connection until it has seen it close: the earlier
    # cases' connections get a moment to leave before the cap is filled.
    time.sleep(CLOSED_SETTLE_SECONDS)
    admitted: list[Wire] = []
    try:
        for _ in range(cap):
            wire = transcript.connect(context.address)
            admitted.append(wire)
            wire.send(b"1\n")
            expect_line(transcript, wire, b"1\n", "admitted")
        with transcript.connect(context.address) as extra:
            expect_line(transcript, extra, "busy", f"{cap} connections already open")
            expect_closed(transcript, extra)
        admitted[0].send(b"10\n")
        expect_line(transcript, admitted[0], b"55\n", "the admitted carry on")
    finally:
        for wire in admitted:
            wire.close()


NON_ASCII_DIGITS = "٤٢".encode()  # Arabic-Indic 42: int() takes it, the grammar does not

CASES = [
    Case("n = 0", one_request(b"0\n", b"0\n")),
    Case("n = 1", one_request(b"1\n", b"1\n")),
    Case(f"n = 2..{TIMED_N}, one at a time", small_n_one_at_a_time),
    Case("n = the largest", largest_n),
    Case("n = the largest + 1: out-of-range", above_largest_n),
    Case("n = -1: out-of-range", bad_line(b"-1", "out-of-range")),
    Case("n huge: out-of-range", bad_line(b"99999999999999999999999", "out-of-range")),
    Case("abc: not-an-integer", bad_line(b"abc", "not-an-integer")),
    Case("empty line: not-an-integer", bad_line(b"", "not-an-integer")),
    Case("+5: not-an-integer", bad_line(b"+5", "not-an-integer")),
    Case("4_2: not-an-integer", bad_line(b"4_2", "not-an-integer")),
    Case("non-ASCII digits: not-an-integer", bad_line(NON_ASCII_DIGITS, "not-an-integer")),
    Case("1 2: not-an-integer", bad_line(b"1 2", "not-an-integer")),
    Case("\\r\\n and blanks", crlf_and_blanks),
    Case("a line in pieces", line_in_pieces),
    Case("pipelined lines, answered in order", pipelined),
    Case("pipelined answers and errors, in order", pipelined_with_errors),
    Case("EOF with an unfinished line", eof_with_unfinished_line),
    Case("line-too-long, then closed", line_too_long),
    Case("several connections at once", several_connections),
    Case("idle-timeout, then closed", idle_timeout),
    Case("connection cap: busy, then closed", connection_cap),
]


BUSY_RETRIES = 5  # tries of a case turned away by the cap before it counts as failed
BUSY_LINE = re.compile(r"b'ERR busy ")  # as a Transcript shows it


def turned_away(transcript: Transcript) -> bool:
    """Whether the server answered one of the case's connections with ERR busy."""
    return any(BUSY_LINE.search(got) for got in transcript.got)


def attempt(case: Case, context: Context, transcript: Transcript) -> tuple[str, str]:
    try:
        case.run(context, transcript)
    except Skip as skip:
        return "skipped", str(skip)
    except (Mismatch, NoReply) as failure:
        return "fail", str(failure)
    except OSError as error:  # refused, reset while sending, unreachable
        return "fail", f"{type(error).__name__}: {error}"
    return "pass", ""


def run_case(case: Case, context: Context) -> Result:
    started = time.monotonic()
    transcript = Transcript(context.timeout)
    outcome, reason = attempt(case, context, transcript)
    # A server counts a connection until it has seen it close, which a loaded
    # one may do late: a case (other than the cap's own) that was turned away
    # with ERR busy is tried again after the earlier connections had a moment.
    tries = 1
    while (
        outcome == "fail" and case.run is not connection_cap and turned_away(transcript)
        and tries < BUSY_RETRIES
    ):  # fmt: skip
        time.sleep(CLOSED_SETTLE_SECONDS)
        tries += 1
        transcript = Transcript(context.timeout)
        outcome, reason = attempt(case, context, transcript)
    if tries > 1:
        reason = f"{reason}; " if reason else ""
        reason += f"try {tries}: the earlier tries were turned away with ERR busy"

    def joined(parts: list[str]) -> str:
        return "; ".join(parts)

    return Result(
        case.name,
        joined(transcript.sent),
        joined(transcript.expected),
        joined(transcript.got),
        outcome,
        reason,
        round(time.monotonic() - started, 3),
    )


# -- the server's limits, found by asking ----------------------------------------


def ask(address: Address, line: bytes, timeout: float) -> tuple[bytes, float]:
    """One line on a fresh connection: the reply line (b"": closed) and its seconds."""
    for _ in range(BUSY_RETRIES):
        transcript = Transcript(timeout)
        with transcript.connect(address) as wire:
            started = time.perf_counter()
            wire.send(line)
            reply = wire.line()
        if not matches(reply, "busy"):  # a cap still counting closed connections: wait
            break
        time.sleep(CLOSED_SETTLE_SECONDS)
    return reply, time.perf_counter() - started


def timed_fib(address: Address, timeout: float) -> float:
    """The best of three fib(TIMED_N), seconds; a wrong reply is a LimitProblem."""
    best = math.inf
    for _ in range(3):
        reply, seconds = ask(address, b"%d\n" % TIMED_N, timeout)
        if reply != number(TIMED_N):
            raise LimitProblem(f"fib({TIMED_N}) answered {reply!r}")
        best = min(best, seconds)
    return best


class LimitProblem(Exception):
    """Asking for a limit got neither of the two replies the protocol allows."""


def probe_n(address: Address, n: int, timeout: float) -> tuple[str, float]:
    reply, seconds = ask(address, b"%d\n" % n, timeout)
    if reply == number(n):
        return ANSWERED, seconds
    if matches(reply, "out-of-range"):
        return REFUSED, seconds
    raise LimitProblem(f"n = {n} got {reply!r}, neither fib({n}) nor ERR out-of-range")


def discover_max_n(address: Address, fib_seconds: float, timeout: float) -> Limit:
    """The largest n answered, asking only n whose fib should take at most a fifth
    of the deadline (naive recursion: each n more costs PHI times)."""
    budget = timeout / 5
    answered, seconds = TIMED_N, fib_seconds
    try:
        for _ in range(DISCOVERY_ROUNDS):
            # the largest n affordable from the last one answered, then one more
            reach = answered + max(0, math.floor(math.log(budget / max(seconds, 1e-6), PHI)))
            probe = reach + 1  # at most PHI times the budget
            outcome, took = probe_n(address, probe, timeout)
            if outcome == REFUSED:
                refused = probe
                while refused - answered > 1:  # bisect: every n asked here is affordable
                    middle = (answered + refused) // 2
                    if probe_n(address, middle, timeout)[0] == ANSWERED:
                        answered = middle
                    else:
                        refused = middle
                return Limit(answered, "discovered")
            answered, seconds = probe, took
            if took > budget:
                break
    except (LimitProblem, NoReply, OSError) as problem:
        return Limit(None, f"asking for it: {problem}; give it with --max-n")
    return Limit(
        None,
        f"asking stopped at fib({answered}), answered in {seconds:.2f} s (a larger n may "
        f"take longer than a fifth of --case-timeout); give it with --max-n",
    )


def probe_line(address: Address, length: int, timeout: float) -> str:
    """A line of `length` bytes, its `\\n` included (blanks, then 1): answered or refused."""
    reply, _ = ask(address, b" " * (length - 2) + b"1\n", timeout)
    if reply == b"1\n":
        return ANSWERED
    if matches(reply, "line-too-long"):
        return REFUSED
    raise LimitProblem(f"a line of {length} bytes got {reply!r}, neither 1 nor ERR line-too-long")


def discover_max_line(address: Address, timeout: float) -> Limit:
    """The longest line answered: doubling from 64 bytes, then bisecting."""
    answered, length = 3, 64  # `10\n` was answered before this
    try:
        while length <= LONGEST_LINE_PROBE:
            if probe_line(address, length, timeout) == REFUSED:
                refused = length
                while refused - answered > 1:
                    middle = (answered + refused) // 2
                    if probe_line(address, middle, timeout) == ANSWERED:
                        answered = middle
                    else:
                        refused = middle
                return Limit(answered, "discovered")
            answered, length = length, length * 2
    except (LimitProblem, NoReply, OSError) as problem:
        return Limit(None, f"asking for it: {problem}; give it with --max-line")
    return Limit(None, f"lines of {LONGEST_LINE_PROBE:,} bytes were answered: no limit found")


def known(value: float | None, option: str, unknown: str) -> Limit:
    return Limit(value, option) if value is not None else Limit(None, unknown)


def find_limits(
    address: Address,
    timeout: float,
    max_n: int | None,
    max_line: int | None,
    idle: float | None,
    max_connections: int | None,
) -> Limits:
    """The options where given, else what asking finds; the rest unknown."""
    try:
        fib_seconds = timed_fib(address, timeout)
    except (LimitProblem, NoReply, OSError):
        fib_seconds = math.inf  # nothing above TIMED_N is affordable; its case fails
    if max_n is not None:
        n_limit = Limit(max_n, "--max-n")
    elif math.isinf(fib_seconds):
        n_limit = Limit(None, f"fib({TIMED_N}) was not answered; give it with --max-n")
    else:
        n_limit = discover_max_n(address, fib_seconds, timeout)
    line_limit = (
        Limit(max_line, "--max-line")
        if max_line is not None
        else discover_max_line(address, timeout)
    )
    return Limits(
        n_limit,
        line_limit,
        known(idle, "--idle-timeout", "give it with --idle-timeout (no server waits to tell)"),
        known(max_connections, "--max-connections", "give it with --max-connections"),
        fib_seconds,
    )
