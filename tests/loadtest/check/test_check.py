# tests/loadtest/check/test_check.py
#
# `python -m loadtest.check` as a user runs it (a subprocess), over real
# sockets on 127.0.0.1: against lab variants (every case passes), against
# small servers written here with one bug each (that case fails, exit 1),
# and against targets that are no fib server at all (exit 2, one message,
# in bounded time); --behaviours against a lab variant (its behaviour
# classified, findings that never change the exit status).

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtest.capacity.anchor import AnchorUnavailable, find_programs, running_redis
from loadtest.capacity.loadgen import free_port
from loadtest.check import behaviours
from loadtest.check.cases import CASES
from tests.conftest import ROOT, start_server, unavailable

TEMPLATE = ROOT / "docs" / "exercises" / "template.py"


def check(target: str, *args: str, out: Path, timeout: float = 60) -> tuple[int, str, float]:
    """Run the check; its exit status, its output (stdout and stderr) and seconds."""
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "loadtest.check", target, "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return run.returncode, run.stdout + run.stderr, time.monotonic() - started


# -- the lab's variants pass ----------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "limits_given"), [("threads", True), ("asyncio", False)], ids=["threads", "asyncio"]
)
def test_a_lab_variant_passes_every_case(variant: str, limits_given: bool, tmp_path: Path):
    # A small largest n keeps fib(max) cheap; `asyncio` leaves n and the line length
    # to be found by asking.
    server = start_server(
        variant, "--max-n", "27", "--max-line", "40", "--idle-timeout", "1.5",
        "--max-connections", "5",
    )  # fmt: skip
    try:
        given = ["--max-n", "27", "--max-line", "40"] if limits_given else []
        status, output, _ = check(
            f"tcp://127.0.0.1:{server.port}", *given, "--idle-timeout", "1.5",
            "--max-connections", "5", "--case-timeout", "5", out=tmp_path,
        )  # fmt: skip
    finally:
        server.close()
    assert status == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    assert [case["name"] for case in report["cases"]] == [case.name for case in CASES]
    assert {case["outcome"] for case in report["cases"]} == {"pass"}, output
    assert report["limits"]["max_n"] == {
        "value": 27, "source": "--max-n" if limits_given else "discovered"
    }  # fmt: skip
    assert report["limits"]["max_line"]["value"] == 40
    for case in report["cases"]:
        assert all(case[key] for key in ("sent", "expected", "got")), case
    assert "# Protocol check of" in (tmp_path / "report.md").read_text()
    assert len(re.findall(r"^✅ ", output, re.MULTILINE)) == len(CASES)


# -- servers with one bug each ----------------------------------------------------


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def right(line: bytes) -> bytes:
    """The protocol's reply to one line (docs/design.md §2), n at most 30."""
    match = re.fullmatch(rb"[ \t]*(-?[0-9]+)[ \t]*\r?\n", line)
    if match is None:
        return b"ERR not-an-integer say a number\n"
    n = int(match[1])
    return b"%d\n" % fib(n) if 0 <= n <= 30 else b"ERR out-of-range 0 to 30\n"


def takes_plus(line: bytes) -> bytes:
    """Bug: int() decides, so `+5` is 5."""
    with contextlib.suppress(ValueError):
        n = int(line)
        if 0 <= n <= 30:
            return b"%d\n" % fib(n)
    return right(line)


@contextlib.contextmanager
def line_server(
    answer: Callable[[bytes], bytes], reverse: bool = False, busy: frozenset[int] = frozenset()
) -> Iterator[int]:
    """A threaded server answering each line with `answer`; `reverse`: the lines of
    each read answered last first (the bug of pipelining); `busy`: the connections
    (counted from 1) turned away with ERR busy, as a cap still counting closed ones
    does. Its port."""
    accepted = itertools.count(1)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            if next(accepted) in busy:
                self.request.sendall(b"ERR busy 5 connections are open; try later\n")
                return
            pending = b""
            while chunk := self.request.recv(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                replies = [answer(line + b"\n") for line in lines]
                self.request.sendall(b"".join(reversed(replies) if reverse else replies))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("bug", "reverse", "failing"),
    [
        (takes_plus, False, "+5: not-an-integer"),
        (right, True, "pipelined lines, answered in order"),
    ],
    ids=["plus-sign-taken", "pipelined-out-of-order"],
)
def test_a_buggy_server_fails_that_case(
    bug: Callable[[bytes], bytes], reverse: bool, failing: str, tmp_path: Path
):
    with line_server(bug, reverse) as port:
        status, output, _ = check(
            f"tcp://127.0.0.1:{port}", "--max-n", "30", "--max-line", "1000",
            "--case-timeout", "3", out=tmp_path,
        )  # fmt: skip
    assert status == 1, output
    assert f"❌ {failing}: expected" in output
    report = json.loads((tmp_path / "report.json").read_text())
    case = next(case for case in report["cases"] if case["name"] == failing)
    assert case["outcome"] == "fail", case
    assert case["reason"], case
    assert case["got"], case


def test_a_case_turned_away_by_a_lagging_cap_is_tried_again(tmp_path: Path):
    # Connection 1 asks fib(10) to see a fib server; 2 and 3 are the timing's
    # (asked again), 8 is case "n = 1"'s.
    with line_server(right, busy=frozenset({2, 3, 8})) as port:
        status, output, _ = check(
            f"tcp://127.0.0.1:{port}", "--max-n", "30", "--max-line", "1000",
            "--case-timeout", "1", out=tmp_path,
        )  # fmt: skip
    assert "✅ n = 1: try 2: the earlier tries were turned away with ERR busy" in output
    assert "✅ n = 0\n" in output, output
    # The one failure is this server's own: it has no longest line.
    assert status == 1, output
    report = json.loads((tmp_path / "report.json").read_text())
    failed = [case["name"] for case in report["cases"] if case["outcome"] == "fail"]
    assert failed == ["line-too-long, then closed"], output


# -- targets that are not fib servers ---------------------------------------------


@contextlib.contextmanager
def raw_server(behave: Callable[[socket.socket], None]) -> Iterator[int]:
    """A listener that does `behave` with each accepted connection, in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                held.append(client)
                behave(client)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for client in held:
            client.close()


@contextlib.contextmanager
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def answer_too_late(client: socket.socket) -> None:
    """A fib server slower than any deadline: the right answer, after 4 s."""

    def later() -> None:
        with contextlib.suppress(OSError):
            client.recv(64)
            time.sleep(4)
            client.sendall(b"55\n")

    threading.Thread(target=later, daemon=True).start()


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """Debian's redis-server (make test installs it), on a free port."""
    try:
        program, _benchmark = find_programs()
    except AnchorUnavailable as error:
        unavailable("redis-server", str(error))
    with running_redis(program, None) as running:
        yield running.port


def refused_port() -> Iterator[int]:
    yield free_port()  # bound and closed: nothing listens there


@pytest.mark.parametrize(
    ("make_target", "message"),
    [
        (contextlib.contextmanager(refused_port), "nothing listens at tcp://127.0.0.1:{port} "
         "(connection refused)"),
        (http_server, "does not speak the fib line protocol: fib(10) got b'"),
        (redis_server, 'does not speak the fib line protocol: fib(10) got b"-ERR unknown command'),
        (lambda: raw_server(lambda client: None), "accepted the connection but did not answer "
         "fib(10) within 2 s"),
        (lambda: raw_server(lambda client: client.close()), "closed the connection without "
         "answering fib(10)"),
        (lambda: raw_server(answer_too_late), "accepted the connection but did not answer "
         "fib(10) within 2 s"),
    ],
    ids=["refused", "http-server", "redis", "never-answers", "closes-at-once", "too-slow"],
)  # fmt: skip
def test_a_target_that_is_no_fib_server_exits_2_naming_it(
    make_target: Callable[[], contextlib.AbstractContextManager[int]], message: str, tmp_path: Path
):
    with make_target() as port:
        status, output, seconds = check(
            f"tcp://127.0.0.1:{port}", "--case-timeout", "2", out=tmp_path / "run"
        )
    assert status == 2, output
    assert output.startswith("loadtest.check: "), output
    assert message.format(port=port) in output
    assert len(output.strip().splitlines()) == 1, output
    assert seconds < 10
    assert not (tmp_path / "run").exists(), "no report for a target that is no fib server"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["http://127.0.0.1:80"], "TARGET 'http://127.0.0.1:80' is not tcp://HOST:PORT"),
        (["tcp://127.0.0.1"], "TARGET 'tcp://127.0.0.1' is not tcp://HOST:PORT"),
        (["tcp://127.0.0.1:25000", "--case-timeout", "0"], "--case-timeout 0: must be above 0"),
        (["tcp://127.0.0.1:25000", "--max-line", "2"], "--max-line 2: must be at least 3"),
        (["tcp://127.0.0.1:25000", "--behaviours", "--like", "nosuch"],
         "--like 'nosuch': unknown variant; the variants are: sync, threads"),
        (["tcp://127.0.0.1:25000", "--like", "threads"], "--like only go with --behaviours"),
        (["tcp://127.0.0.1:25000", "--behaviours", "--duration", "1"],
         "--duration 1: must be at least 3 seconds"),
        (["tcp://127.0.0.1:25000", "--behaviours", "--metrics", "127.0.0.1:9100"],
         "--metrics '127.0.0.1:9100' is not an http:// or https:// URL"),
    ],
    ids=["scheme", "no-port", "case-timeout", "max-line", "like-unknown", "like-alone",
         "duration", "metrics-not-a-url"],
)  # fmt: skip
def test_a_malformed_target_or_option_exits_2_naming_it(
    arguments: list[str], named: str, tmp_path: Path
):
    status, output, _ = check(*arguments, out=tmp_path / "run")
    assert status == 2, output
    assert named in output


# -- --behaviours -------------------------------------------------------------------


def test_behaviours_classify_threads_as_a_convoy_and_a_dead_metrics_url_as_missing(
    tmp_path: Path,
):
    # Short runs (1-s stages, a 0.2-s long request); /metrics asked of a port where
    # nothing listens: the server-side figures are missing, the run goes on.
    server = start_server("threads", "--max-n", "32", "--max-line", "40")
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    try:
        status, output, seconds = check(
            f"tcp://127.0.0.1:{server.port}", "--max-n", "32", "--max-line", "40",
            "--case-timeout", "5", "--behaviours", "--duration", "3", "--long-seconds", "0.1",
            "--metrics", dead, out=tmp_path, timeout=120,
        )  # fmt: skip
    finally:
        server.close()
    assert status == 0, output
    assert "behaviours (short, long, convoy: 3 s × 1 run each" in output
    assert f"server CPU missing: --metrics {dead} did not answer" in output
    assert "short requests during a long one → convoy: " in output, output
    found = json.loads((tmp_path / "report.json").read_text())["behaviours"]
    answers = {finding["question"]: finding for finding in found["classification"]}
    convoy = answers["short requests during a long one"]
    assert convoy["answer"] == "convoy", convoy
    assert [rule["rule"] for rule in convoy["rules"]] == [
        "convoy-collapse", "convoy-stall", "separate-process-immune"
    ]  # fmt: skip
    assert answers["2 and 3 long clients against 1"]["answer"] in ("serialised", "not classified")
    runs = found["summary"]["runs"]
    assert {run["scenario"] for run in runs} == {"short", "long", "convoy"}
    assert {run["variant"] for run in runs} == {behaviours.TARGET_LABEL}
    assert all(run["server_cpu_seconds"] is None for run in runs), "no CPU without /metrics"
    assert found["verdicts"] == []  # no --like
    assert "## Behaviours" in (tmp_path / "report.md").read_text()
    # The same figures judged as the lab variant they come from: the comparison's verdicts.
    summary = found["summary"]
    for run in summary["runs"]:
        run["variant"] = "threads"
    settings = behaviours.Settings(3.0, 1, 0.2, "threads", None)
    judged = behaviours.judge(settings, found["settings"]["long_n"], behaviours.Metrics(None, ""),
                              summary)  # fmt: skip
    collapse = next(verdict for verdict in judged.verdicts if verdict.rule == "convoy-collapse")
    assert collapse.variant == "threads"
    assert collapse.margin is not None, collapse
    assert collapse.margin >= 1, collapse.line()
    assert seconds < 60


# -- the exercises' template --------------------------------------------------------


def test_the_exercise_template_fails_the_error_cases_it_leaves_to_the_reader(tmp_path: Path):
    if not TEMPLATE.exists():
        pytest.skip(f"{TEMPLATE.relative_to(ROOT)} does not exist")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(TEMPLATE), str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("listening on")
        status, output, _ = check(
            f"tcp://127.0.0.1:{port}", "--max-n", "45", "--max-line", "64",
            "--case-timeout", "3", out=tmp_path,
        )  # fmt: skip
    finally:
        server.kill()
        server.wait(10)
        assert server.stdout is not None
        server.stdout.close()
    assert status == 1, output
    report = {
        case["name"]: case for case in json.loads((tmp_path / "report.json").read_text())["cases"]
    }
    # it answers numbers right, pipelined and in pieces, and closes instead of ERR
    for name in ("n = 0", "n = 1", "pipelined lines, answered in order", "a line in pieces"):
        assert report[name]["outcome"] == "pass", report[name]
    for name in ("abc: not-an-integer", "+5: not-an-integer", "n = -1: out-of-range"):
        assert report[name]["outcome"] == "fail", report[name]
