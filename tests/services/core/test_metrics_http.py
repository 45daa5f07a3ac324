# tests/services/core/test_metrics_http.py
#
# The bounded /metrics server (services/core/metrics_http.py), running for real
# on port 0 in this process: normal scrapes are served exactly as
# prometheus_client's own server serves them; garbage gets a 400 at once; a
# client trickling its request or not reading its reply is cut off at the
# deadline; the connection over the cap gets a 503 at once, without a thread;
# and a scrape works again as soon as the slots are free.

from __future__ import annotations

import gzip
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import HTTPServer
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.core.metrics import Metrics
from services.core.metrics_http import (
    SCRAPE_HEAD_BYTES,
    WATCHDOG_PERIOD,
    ScrapeServer,
    start_scrape_server,
)
from tests.conftest import wait_for
from tests.repo.prometheus3 import PROMETHEUS_3_ACCEPT, scraped_family_names

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"


def small_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("lab_temperature_celsius", "A value", ["room"], registry=registry).labels("a").set(21.5)
    Counter("lab_visits", "A counter", registry=registry).inc(3)
    return registry


class HugeCollector(Collector):
    """About 8 MB of text: more than loopback socket buffers hold for a
    client that does not read."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("lab_padding", "Padding", labels=["key"])
        for i in range(80_000):
            family.add_metric([f"{i:0100d}"], i)
        yield family


class SlowCollector(Collector):
    """A collector that takes its time (a registry stuck on a lock, say)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        time.sleep(self.seconds)
        yield GaugeMetricFamily("lab_slow", "Slow", value=1)


Start = Callable[..., ScrapeServer]


@pytest.fixture
def start() -> Iterator[Start]:
    """start_scrape_server(registry, **bounds) on 127.0.0.1:0, shut down at the end."""
    servers: list[ScrapeServer] = []

    def starting(registry: Collector, **bounds: Any) -> ScrapeServer:
        server, _thread = start_scrape_server(registry, "127.0.0.1", 0, **bounds)
        servers.append(server)
        return server

    yield starting
    for server in servers:
        server.shutdown()
        server.server_close()
    # No handler thread left over for the next test's thread counts.
    wait_for(lambda: not any(s.open_connections() for s in servers), 5, "connections closed")


def connect(server: ScrapeServer, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset after its reply counts as closed)."""
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


def url(server: HTTPServer, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{server.server_port}{path}"


def threads_now() -> int:
    return threading.active_count()


# -- normal scrapes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/metrics", {}),
        ("/metrics", {"Accept-Encoding": "gzip"}),
        ("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}),
        ("/metrics?name[]=lab_visits_total", {"Accept-Encoding": "identity"}),
        ("/anything", {}),
    ],
)
def test_a_scrape_is_served_as_prometheus_client_serves_it(
    start, path: str, headers: dict[str, str]
) -> None:
    registry = small_registry()
    ours = start(registry)
    reference, reference_thread = start_http_server(0, "127.0.0.1", registry=registry)
    try:
        got = requests.get(url(ours, path), headers=headers, timeout=5)
        expected = requests.get(url(reference, path), headers=headers, timeout=5)
    finally:
        reference.shutdown()
        reference.server_close()
        reference_thread.join(5)
    assert got.status_code == expected.status_code == 200
    for header in ("Content-Type", "Content-Encoding"):
        assert got.headers.get(header) == expected.headers.get(header), header
    assert got.content == expected.content  # requests has undone the gzip, if any
    assert b"lab_visits_total 3.0" in got.content


def test_gzip_is_sent_when_asked(start: Start) -> None:
    server = start(small_registry())
    with connect(server) as sock:
        sock.sendall(REQUEST.replace(b"\r\n\r\n", b"\r\nAccept-Encoding: gzip\r\n\r\n"))
        reply = read_all(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert b"Content-Encoding: gzip" in head
    assert b"lab_temperature_celsius" in gzip.decompress(body)


def test_metrics_serve_binds_and_serves_the_registry() -> None:
    metrics = Metrics("threads", cpu_source="process")
    port = metrics.serve("127.0.0.1", 0)
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert "fib_info{" in response.text


@pytest.mark.parametrize("accept", [PROMETHEUS_3_ACCEPT, None], ids=["prometheus-3", "none"])
def test_a_scrape_has_a_content_type_prometheus_3_parses(start: Start, accept: str | None) -> None:
    """Prometheus 3 fails a scrape without a valid Content-Type (the lab sets
    no fallback_scrape_protocol), and reads the body in the format it names."""
    server = start(Metrics("threads", cpu_source="process").registry)
    names = scraped_family_names(url(server), accept)
    assert "fib_request_duration_seconds" in names, names


# -- garbage -------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        bytes.fromhex("160301020001000001fc0303") + bytes(range(256)) * 4,  # a TLS hello
        b"25\n",  # the line protocol, on the wrong port
        b"hello world\r\n\r\n",
        b"\x00" * 100,
        b"get /metrics HTTP/1.1\r\n\r\n",  # methods are case-sensitive
    ],
)
def test_garbage_is_answered_400_and_closed_at_once(start: Start, garbage: bytes) -> None:
    server = start(small_registry(), deadline=30.0)
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(garbage)
        reply = read_all(sock)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.0 400 Bad Request\r\n"), reply[:80]
    assert elapsed < 1.0, f"answered after {elapsed:.2f} s"
    wait_for(lambda: server.open_connections() == 0, 2, "the slot freed")


def test_a_malformed_request_line_is_answered_by_http_server(start: Start) -> None:
    server = start(small_registry(), deadline=30.0)
    with connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/9\r\n\r\n")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.0 400 "), reply[:80]


def test_a_head_longer_than_the_limit_is_answered_431(start: Start) -> None:
    server = start(small_registry(), deadline=30.0)
    padding = b"X-Padding: " + b"a" * SCRAPE_HEAD_BYTES + b"\r\n"
    with connect(server) as sock:
        try:
            sock.sendall(REQUEST.replace(b"\r\n\r\n", b"\r\n" + padding + b"\r\n"))
        except ConnectionResetError:
            pass  # it may close before taking all of it; the reply is still read
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.0 431 "), reply[:80]


# -- the deadline --------------------------------------------------------------


@pytest.mark.serial  # the deadline to a few tenths of a second: alone
def test_a_client_trickling_its_request_is_cut_off_at_the_deadline(start: Start) -> None:
    deadline = 1.0
    server = start(small_registry(), deadline=deadline)
    trickle = REQUEST[:-2] + b"X-Padding: " + b"a" * 1000  # never a whole head
    with connect(server) as sock:
        started = time.monotonic()
        for byte in trickle:  # a byte every 20 ms until it answers: at most 20 s
            sock.sendall(bytes([byte]))
            answered, _, _ = select.select([sock], [], [], 0.02)
            if answered:
                break
        elapsed = time.monotonic() - started
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.0 408 Request Timeout\r\n"), reply[:80]
    assert deadline - 0.05 < elapsed < deadline + 0.5, f"cut off after {elapsed:.2f} s"
    wait_for(lambda: server.open_connections() == 0, 2, "the slot freed")


@pytest.mark.serial  # the deadline to a few tenths of a second: alone
def test_a_client_that_never_reads_its_reply_is_cut_off_at_the_deadline(start: Start) -> None:
    deadline = 2.0
    server = start(HugeCollector(), deadline=deadline)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
    with sock:
        sock.connect(("127.0.0.1", server.server_port))
        started = time.monotonic()
        sock.sendall(REQUEST)
        wait_for(lambda: server.open_connections() == 1, 1, "the connection admitted")
        wait_for(lambda: server.open_connections() == 0, deadline + 2, "the connection dropped")
        elapsed = time.monotonic() - started
    # The 8 MB reply takes a moment to generate; it is the write that waits.
    assert deadline - 0.05 < elapsed < deadline + 0.3, f"dropped after {elapsed:.2f} s"


def test_the_watchdog_releases_a_client_whose_reply_is_late(start: Start) -> None:
    # No socket timeout covers the time the app takes: the watchdog shuts the
    # connection down WATCHDOG_PERIOD after the deadline.
    deadline = 1.0
    server = start(SlowCollector(3.0), deadline=deadline)
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(REQUEST)
        reply = read_all(sock)
        elapsed = time.monotonic() - started
    assert reply == b""
    assert deadline < elapsed < deadline + 2 * WATCHDOG_PERIOD + 0.3, f"after {elapsed:.2f} s"


# -- the connection cap --------------------------------------------------------


def test_the_connection_over_the_cap_gets_503_at_once_without_a_thread(start: Start) -> None:
    cap, deadline = 3, 1.5
    server = start(small_registry(), connections=cap, deadline=deadline)
    threads_before = threads_now()
    idle = [connect(server) for _ in range(cap)]
    try:
        wait_for(lambda: server.open_connections() == cap, 2, "the idle clients admitted")
        assert threads_now() == threads_before + cap
        with connect(server) as extra:
            started = time.monotonic()
            reply = read_all(extra)
            elapsed = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.0 503 Service Unavailable\r\n"), reply[:80]
        assert elapsed < 0.5, f"refused after {elapsed:.2f} s"
        assert threads_now() == threads_before + cap, "the refused connection got a thread"
        # The cap holds for scrapes too: while the slots are taken, a scrape is refused.
        assert requests.get(url(server), timeout=5).status_code == 503
        # A client that leaves frees its slot at once.
        idle.pop().close()
        wait_for(lambda: server.open_connections() == cap - 1, 1, "the slot freed on close")
        assert requests.get(url(server), timeout=5).status_code == 200
        # The rest are cut off at the deadline (408), and scrapes are served again.
        for sock in idle:
            assert read_all(sock).startswith(b"HTTP/1.0 408 ")
        assert server.open_connections() == 0
        assert requests.get(url(server), timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: threads_now() == threads_before, 2, "the handler threads ended")
