# tests/services/core/test_timeline.py
#
# The server's timeline (services/core/timeline.py, docs/design.md §6.6): off
# by default, refused at start when its folder or size is bad, bounded in
# memory, and, on real servers, a file per process with each request on the
# thread that answered it and each fib on the thread or pool worker that ran it.

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from services import VARIANTS
from services.core.fib import fib
from services.core.settings import parse_settings
from services.core.timeline import Timeline, TracedPool
from tests.conftest import Server, answer, read_line, start_server


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(argv, environ, VARIANTS)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_off_by_default() -> None:
    settings = parse_settings(["threads"], {}, VARIANTS)
    assert settings.timeline == ""
    assert settings.timeline_events == 100_000


@pytest.mark.parametrize("where", ["missing", "a-file"])
def test_a_folder_that_cannot_be_written_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    target = tmp_path / where
    if where == "a-file":
        target.write_text("not a folder")
    error = refused(capsys, ["threads"], {"FIB_TIMELINE": str(target)})
    assert f"FIB_TIMELINE={str(target)!r}" in error
    assert "not a folder this server can write in" in error
    error = refused(capsys, ["threads", "--timeline", str(target)], {})
    assert "--timeline" in error
    assert str(target) in error


@pytest.mark.parametrize("size", ["many", "0", "-5", "1.5"])
def test_a_size_that_is_not_a_positive_whole_number_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str], size: str
) -> None:
    error = refused(capsys, ["threads"], {"FIB_TIMELINE_EVENTS": size})
    assert f"FIB_TIMELINE_EVENTS={size!r}" in error


def test_the_ring_keeps_the_last_events_and_counts_the_dropped(tmp_path: Path) -> None:
    timeline = Timeline(str(tmp_path), capacity=10, variant="threads")
    for n in range(25):
        timeline.add("request", float(n), float(n) + 0.5, n)
    written = json.loads(timeline.write().read_text())
    assert written["dropped"] == 15
    assert [event[5] for event in written["events"]] == list(range(15, 25))
    assert written["threads"] == [[os.getpid(), threading.get_native_id(), "MainThread"]]


def test_a_traced_pool_gives_the_plain_result_and_records_where_fib_ran(tmp_path: Path) -> None:
    timeline = Timeline(str(tmp_path), capacity=100, variant="coro-threadpool")
    with ThreadPoolExecutor(1, thread_name_prefix="fibpool") as threads:
        pool = TracedPool(threads, timeline)
        assert pool.submit(fib, 20).result(timeout=10) == 6765
        with pytest.raises(RecursionError):
            pool.submit(_recurse).result(timeout=10)
    [(kind, pid, thread, start, end, n)] = list(timeline.events)
    assert (kind, pid, n) == ("fib", os.getpid(), 20)
    assert thread != threading.get_native_id()
    assert 0 < start < end
    assert timeline.names[pid, thread].startswith("fibpool")


def _recurse() -> None:
    _recurse()


def _stop_and_read(server: Server, folder: Path) -> list[dict[str, Any]]:
    assert server.stop(signal.SIGTERM) == 0
    server.close()
    files = sorted(folder.glob("timeline-*.json"))
    return [json.loads(path.read_text()) for path in files]


@pytest.mark.parametrize("variant", ["threads", "coro", "asyncio"])
def test_a_server_writes_each_request_on_the_thread_that_answered_it(
    tmp_path: Path, variant: str
) -> None:
    server = start_server(variant, "--timeline", str(tmp_path))
    try:
        with server.connect() as first, server.connect() as second:
            for sock in (first, second, first):
                sock.sendall(b"20\n")
                assert read_line(sock) == answer(20)
            port = first.getsockname()[1]
    finally:
        [written] = _stop_and_read(server, tmp_path)
    assert written["variant"] == variant
    assert written["pid"] == server.pid
    events = written["events"]
    requests = [e for e in events if e[0] == "request" and e[5] == 20]
    fibs = [e for e in events if e[0] == "fib" and e[5] == 20]
    assert len(requests) == 3
    assert len(fibs) == 3
    for request, computed in zip(requests, fibs, strict=True):
        assert request[2] == computed[2]  # fib ran on the thread that answered
        assert request[3] <= computed[3] <= computed[4] <= request[4]
    assert any(e[0] == "connection" and e[5] == port for e in events)
    names = {(pid, thread): name for pid, thread, name in written["threads"]}
    assert all((e[1], e[2]) in names for e in events)
    expected_threads = 2 if variant == "threads" else 1  # one per client, or the loop's
    assert len({e[2] for e in requests}) == expected_threads


def test_a_pool_variant_records_fib_on_the_worker_process(tmp_path: Path) -> None:
    server = start_server("threads-procpool", "--timeline", str(tmp_path), "--pool-workers", "1")
    try:
        with server.connect() as sock:
            sock.sendall(b"22\n")
            assert read_line(sock) == answer(22)
    finally:
        [written] = _stop_and_read(server, tmp_path)
    [computed] = [e for e in written["events"] if e[0] == "fib" and e[5] == 22]
    [request] = [e for e in written["events"] if e[0] == "request" and e[5] == 22]
    assert computed[1] != server.pid  # the pool's process
    assert request[3] <= computed[3] <= computed[4] <= request[4]
    names = {(pid, thread): name for pid, thread, name in written["threads"]}
    assert names[computed[1], computed[2]] == f"pool process {computed[1]}"


def test_prefork_writes_one_file_per_worker_naming_the_connections_it_accepted(
    tmp_path: Path,
) -> None:
    server = start_server("prefork", "--timeline", str(tmp_path), "--pool-workers", "2")
    ports = []
    workers = set(server.descendants())
    try:
        for _ in range(4):
            with server.connect() as sock:
                sock.sendall(b"5\n")
                assert read_line(sock) == answer(5)
                ports.append(sock.getsockname()[1])
    finally:
        written = _stop_and_read(server, tmp_path)
    assert {process["pid"] for process in written} <= workers | {server.pid}
    accepted = {
        e[5]: process["pid"]
        for process in written
        for e in process["events"]
        if e[0] == "connection"
    }
    assert set(ports) <= set(accepted)
    assert set(accepted.values()) <= workers  # the workers accept, the supervisor does not


def test_without_the_setting_nothing_is_written(tmp_path: Path) -> None:
    server = start_server("threads")
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"1\n")
            assert read_line(sock) == answer(1)
    finally:
        assert server.stop(signal.SIGTERM) == 0
        server.close()
    assert "timeline written" not in server.all_output()
    assert list(tmp_path.iterdir()) == []
