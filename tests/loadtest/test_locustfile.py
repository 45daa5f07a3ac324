# tests/loadtest/test_locustfile.py
#
# The Locust side of the load generator: target resolution and the latency
# table in-process (fast), then `locust -f loadtest/locustfile.py` as users
# run it against real local variants: headless standalone, distributed
# (master + 2 workers), and the web UI's form. The exporter's counters must
# equal Locust's own totals.

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import requests

from loadtest.swarm.client import LineConnection, fib_value
from loadtest.swarm.exporter import BUCKETS, LatencyTable
from loadtest.swarm.targets import LOCAL_FIRST_PORT, TargetError, parse_targets, resolve
from services import VARIANTS
from tests.conftest import Server
from tests.loadtest.conftest import Process, free_port, locust_command, metric_value

# --- in-process ------------------------------------------------------------


def test_targets_local_compose_map_and_override():
    assert resolve("sync", targets="local") == ("127.0.0.1", LOCAL_FIRST_PORT)
    assert resolve("asyncio-procpool", targets="local") == ("127.0.0.1", 25009)
    assert resolve("coro", targets="compose") == ("coro", 25000)
    mapped = "threads=127.0.0.1:25000, coro=[::1]:25004"
    assert resolve("coro", targets=mapped) == ("::1", 25004)
    assert resolve("coro", targets=mapped, address="10.0.0.2:7") == ("10.0.0.2", 7)
    assert set(parse_targets("compose")) == set(VARIANTS)


@pytest.mark.parametrize(
    ("variant", "targets", "address", "message"),
    [
        ("nope", "local", None, "unknown variant 'nope'"),
        ("coro", "threads=127.0.0.1:1", None, "has no address for 'coro'"),
        ("coro", "coro=127.0.0.1", None, "is not host:port"),
        ("coro", "coro:127.0.0.1:1", None, "is not variant=host:port"),
        ("coro", "bogus=127.0.0.1:1", None, "unknown variant 'bogus'"),
        ("coro", "coro=h:1,coro=h:2", None, "names 'coro' twice"),
        ("coro", "local", "127.0.0.1:http", "is not a number"),
        ("coro", "local", "127.0.0.1:70000", "out of range"),
    ],
)
def test_targets_bad_input_says_why(variant, targets, address, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        resolve(variant, targets=targets, address=address)


def exposition(table: LatencyTable) -> str:
    registry = prometheus_client.CollectorRegistry()
    registry.register(table)
    return prometheus_client.generate_latest(registry).decode()


def test_latency_table_buckets_and_worker_reports_add_up():
    assert BUCKETS[0] == 10e-6
    assert BUCKETS[-1] == 120.0
    worker_a, worker_b = LatencyTable(), LatencyTable()
    for _ in range(3):
        worker_a.on_request(name="fib(1)", response_time=0.045, context={"variant": "coro"})
    worker_b.on_request(name="fib(1)", response_time=0.012, context={"variant": "coro"})
    worker_b.on_request(
        name="fib(1)", response_time=0.5, exception=OSError("refused"), context={"variant": "coro"}
    )
    master = LatencyTable(users=lambda: ("coro", 7))
    master.add_report(worker_a.take_report())
    master.add_report(worker_b.take_report())
    assert worker_a.take_report() == []  # a report is what came since the last one
    text = exposition(master)
    labels = {"variant": "coro", "name": "fib(1)"}
    assert metric_value(text, "locust_requests_total", **labels, outcome="ok") == 4
    assert metric_value(text, "locust_requests_total", **labels, outcome="error") == 1
    assert metric_value(text, "locust_request_duration_seconds_count", **labels) == 4
    # 45 µs lands in the 50 µs bucket, 12 µs in the 15 µs one: microsecond resolution.
    assert metric_value(text, "locust_request_duration_seconds_bucket", **labels, le="1e-05") == 0
    assert metric_value(text, "locust_request_duration_seconds_bucket", **labels, le="1.5e-05") == 1
    assert metric_value(text, "locust_request_duration_seconds_bucket", **labels, le="3e-05") == 1
    assert metric_value(text, "locust_request_duration_seconds_bucket", **labels, le="5e-05") == 4
    assert metric_value(text, "locust_request_duration_seconds_sum", **labels) == pytest.approx(
        147e-6
    )
    assert metric_value(text, "locust_users", variant="coro") == 7
    assert "_created" not in text


@pytest.mark.parametrize("kernel_wait_ms", [0, 1])
def test_connection_gets_err_replies_and_reconnects_after_a_close(threads_server, kernel_wait_ms):
    connection = LineConnection(("127.0.0.1", threads_server.port))
    connection.kernel_wait_ms = kernel_wait_ms
    with connection:
        assert connection.ask(b"10\n") == b"55"
        assert connection.ask(b"-1\r\n").startswith(b"ERR out-of-range")  # connection kept
        assert connection.ask(b"1\n") == b"1"
        # line-too-long: the reply, then the server closes the connection.
        assert connection.ask(b"7" * 100 + b"\n").startswith(b"ERR line-too-long")
        with pytest.raises(ConnectionError):  # EOF (ConnectionClosed) or a reset
            connection.ask(b"1\n")
        assert not connection.connected
        assert connection.ask(b"20\n") == b"6765"  # on a new connection
    assert [fib_value(n) for n in (-1, 0, 1, 2, 30)] == [None, 0, 1, 1, 832040]


# --- locust as users run it ------------------------------------------------


def metrics_line(process: Process) -> int:
    line = process.wait_for(lambda line: "client-side metrics on http://" in line, timeout=30)
    return int(re.search(r":(\d+)/metrics", line)[1])  # type: ignore[index]


def scrape_final(process: Process, port: int) -> str:
    """/metrics once the run is over (the master lingers for a last scrape)."""
    process.wait_for(lambda line: "metrics stay up" in line, timeout=60)
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def locust_totals(json_file: Path) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in json.loads(json_file.read_text())}


@pytest.mark.slow
def test_headless_counts_requests_and_err_replies_like_locust(
    spawn: Callable[..., Process], threads_server: Server, tmp_path: Path
):
    metrics_port = free_port()
    served_before = threads_server.metric("fib_requests_total", n="1", outcome="ok")
    # One ShortUser asks fib(1); one LongUser asks fib(46), beyond FIB_MAX_N:
    # every one of its requests gets `ERR out-of-range` and is a failure.
    locust = spawn(
        *locust_command(
            "--headless", "-u", 2, "-r", 10, "-t", "3s", "--stop-timeout", 0,
            "--fib-target", "threads", "--fib-address", f"127.0.0.1:{threads_server.port}",
            "--fib-long-n", 46,
            "--fib-metrics-port", metrics_port, "--fib-metrics-linger", 3,
            "--csv", tmp_path / "run",
        )
    )  # fmt: skip
    assert metrics_line(locust) == metrics_port
    text = scrape_final(locust, metrics_port)
    assert locust.wait(30) == 1, locust.output  # Locust exits 1 when requests failed
    with (tmp_path / "run_stats.csv").open() as stats:
        totals = {row["Name"]: row for row in csv.DictReader(stats)}
    with (tmp_path / "run_failures.csv").open() as failures:
        failure_rows = list(csv.DictReader(failures))

    short = {"num_requests": int(totals["fib(1)"]["Request Count"])}
    errors = {"num_requests": int(totals["fib(46)"]["Request Count"])}
    assert short["num_requests"] > 100
    assert totals["fib(1)"]["Failure Count"] == "0"
    assert int(totals["fib(46)"]["Failure Count"]) == errors["num_requests"] > 0
    # Locust's failure report carries the server's own text.
    assert [row["Name"] for row in failure_rows] == ["fib(46)"]
    assert "ERR out-of-range" in failure_rows[0]["Error"]
    labels = {"variant": "threads"}
    assert (
        metric_value(text, "locust_requests_total", **labels, name="fib(1)", outcome="ok")
        == (short["num_requests"])
    )
    assert (
        metric_value(text, "locust_requests_total", **labels, name="fib(1)", outcome="error") == 0
    )
    assert (
        metric_value(text, "locust_requests_total", **labels, name="fib(46)", outcome="error")
        == (errors["num_requests"])
    )
    count = metric_value(text, "locust_request_duration_seconds_count", **labels, name="fib(1)")
    assert count == short["num_requests"]
    # Loopback fib(1) is well under a millisecond: the histogram resolves it.
    below_1ms = metric_value(
        text, "locust_request_duration_seconds_bucket", **labels, name="fib(1)", le="0.001"
    )
    assert below_1ms > count / 2
    assert "_created" not in text
    # The server saw every request Locust counted, and at most the one the
    # user was waiting for when it was stopped.
    served = threads_server.metric("fib_requests_total", n="1", outcome="ok") - served_before
    assert short["num_requests"] <= served <= short["num_requests"] + 1


@pytest.mark.slow
def test_distributed_master_sums_both_workers(
    spawn: Callable[..., Process], threads_server: Server, tmp_path: Path
):
    master_port, metrics_port = free_port(), free_port()
    # The address is given to the master only: workers get it with each spawn.
    master = spawn(
        *locust_command(
            "--master", "--headless", "--expect-workers", 2,
            "--master-bind-host", "127.0.0.1", "--master-bind-port", master_port,
            "-u", 4, "-r", 100, "-t", "4s", "--stop-timeout", 0, "ShortUser",
            "--fib-target", "threads", "--fib-address", f"127.0.0.1:{threads_server.port}",
            "--fib-metrics-port", metrics_port, "--fib-metrics-linger", 3,
            "--json-file", tmp_path / "stats",
        )
    )  # fmt: skip
    workers = [
        spawn(
            *locust_command(
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                master_port,
                "--fib-metrics-port",
                0,
            )
        )
        for _ in range(2)
    ]
    metrics_line(master)
    master.wait_for(lambda line: "All users spawned" in line, timeout=60)
    time.sleep(1.0)
    running = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert metric_value(running, "locust_users", variant="threads") == 4
    text = scrape_final(master, metrics_port)
    assert master.wait(30) == 0, master.output
    for worker in workers:
        worker.wait(30)
    short = locust_totals(tmp_path / "stats.json")["fib(1)"]
    assert short["num_requests"] > 100
    labels = {"variant": "threads", "name": "fib(1)"}
    assert (
        metric_value(text, "locust_requests_total", **labels, outcome="ok") == short["num_requests"]
    )
    assert (
        metric_value(text, "locust_request_duration_seconds_count", **labels)
        == short["num_requests"]
    )
    # The users ran on both workers, so the totals above are sums over both.
    assert "Sending spawn jobs of 4 users at 100.00 spawn rate to 2 ready workers" in master.output


def get_when_up(url: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(url, timeout=10)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        response.raise_for_status()
        return response.text


def template_args(html: str) -> dict[str, Any]:
    match = re.search(r"window\.templateArgs = (.*)$", html, re.M)
    assert match, html[:2000]
    return dict(json.loads(match[1]))


@pytest.mark.slow
def test_web_ui_offers_variants_and_shapes_and_runs_the_picked_variant(
    web_ui: str, coro_server: Server
):
    base = web_ui
    args = template_args(get_when_up(base + "/"))
    target = args["extra_options"]["fib_target"]
    assert target["choices"] == list(VARIANTS)
    assert target["default_value"] == "threads"
    assert "fib_address" not in args["extra_options"]
    assert {"ShortScenario", "LongScenario", "ConvoyScenario"} <= set(
        args["available_shape_classes"]
    )
    assert set(args["available_user_classes"]) == {"ShortUser", "LongUser"}

    before = coro_server.metric("fib_requests_total", n="1", outcome="ok")
    form = {
        "user_count": "1",
        "spawn_rate": "1",
        "user_classes": "ShortUser",
        "shape_class": "Default",
        "fib_target": "coro",
    }
    started = requests.post(base + "/swarm", data=form, timeout=10).json()
    assert started["success"], started
    deadline = time.monotonic() + 20
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = requests.get(base + "/stats/requests", timeout=10).json()
        if stats["total_rps"] > 0 and any(
            s["name"] == "fib(1)" and s["num_requests"] > 100 for s in stats["stats"]
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no requests counted: {stats}")
    requests.post(base + "/stop", timeout=10)
    # The picked variant, not the default one, got the requests.
    assert coro_server.metric("fib_requests_total", n="1", outcome="ok") > before + 100
