# tests/loadtest/test_locustfile.py
#
# The Locust side of the load generator: target resolution and the latency
# table in-process (fast), then `locust -f loadtest/locustfile.py` as users
# run it against real local variants: headless standalone, distributed
# (master + 2 workers), and the web UI's form. The exporter's counters must
# equal Locust's own totals. Locust's own statistics keep fib(1)'s
# sub-millisecond times (loadtest/swarm/bucketing.py): in --csv, through a
# distributed master, and in the web UI's stats.

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

from loadtest.capacity.loadgen import free_port
from loadtest.swarm.bucketing import bucket_ms
from loadtest.swarm.client import LineConnection, fib_value
from loadtest.swarm.exporter import BUCKETS, LatencyTable
from tests.conftest import Server
from tests.loadtest.conftest import (
    Process,
    fib_targets,
    get_when_up,
    locust_command,
    metric_value,
)

# --- in-process ------------------------------------------------------------


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


@pytest.mark.unmeasured  # counts and labels: the parallel pass
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


# Percentiles of fib(1) that stay below a millisecond even on a busy
# machine (one user on loopback: ~0.02-0.1 ms); the higher ones must at
# least not be 0.
SUB_MS_PERCENTILES = ("50%", "66%", "75%", "80%", "90%")
NONZERO_PERCENTILES = ("95%", "98%", "99%")


def check_sub_millisecond(row: dict[str, str]) -> None:
    """A row of Locust's --csv for fib(1): median and percentiles in ms with
    their fractions (Locust's own buckets would give 0)."""
    assert 0.01 < float(row["Median Response Time"]) < 1.0, row
    for column in SUB_MS_PERCENTILES:
        value = float(row[column])
        assert 0.01 < value < 1.0, (column, row)
        assert bucket_ms(value) == value, (column, row)  # a key of the lab's buckets
    assert all(float(row[column]) > 0.01 for column in NONZERO_PERCENTILES), row


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


@pytest.mark.slow
def test_headless_csv_shows_fib1s_sub_millisecond_percentiles(
    spawn: Callable[..., Process], threads_server: Server, tmp_path: Path
):
    """The issue's acceptance check: one ShortUser, --csv."""
    locust = spawn(
        *locust_command(
            "--headless", "-u", 1, "-t", "2s", "--stop-timeout", 0, "ShortUser",
            "--host", f"tcp://127.0.0.1:{threads_server.port}", "--fib-metrics-port", 0,
            "--csv", tmp_path / "run",
        )
    )  # fmt: skip
    assert locust.wait(30) == 0, locust.output
    rows = {row["Name"]: row for row in csv_rows(tmp_path / "run_stats.csv")}
    assert int(rows["fib(1)"]["Request Count"]) > 100
    check_sub_millisecond(rows["fib(1)"])
    # the history file's last row: the run's percentiles so far, every second
    last = csv_rows(tmp_path / "run_stats_history.csv")[-1]
    assert 0.01 < float(last["50%"]) < 1.0, last


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["--worker", "--processes"])
def test_distributed_master_keeps_the_workers_sub_millisecond_times(
    spawn: Callable[..., Process], threads_server: Server, tmp_path: Path, workers: str
):
    """The workers' response-time keys reach the master's --csv intact: from a
    worker that loads the locustfile itself, and from a --processes child
    (forked after the master loaded it)."""
    master_port = free_port()
    run = (
        "--headless", "-u", 1, "-t", "2s", "--stop-timeout", 0, "ShortUser",
        "--host", f"tcp://127.0.0.1:{threads_server.port}", "--fib-metrics-port", 0,
        "--master-bind-host", "127.0.0.1", "--master-bind-port", master_port,
        "--csv", tmp_path / "run",
    )  # fmt: skip
    if workers == "--worker":
        master = spawn(*locust_command("--master", "--expect-workers", 1, *run))
        spawn(
            *locust_command(
                "--worker", "--master-host", "127.0.0.1", "--master-port", master_port,
                "--fib-metrics-port", 0,
            )
        )  # fmt: skip
    else:
        master = spawn(*locust_command("--processes", 1, "--master-port", master_port, *run))
    assert master.wait(60) == 0, master.output
    rows = {row["Name"]: row for row in csv_rows(tmp_path / "run_stats.csv")}
    assert int(rows["fib(1)"]["Request Count"]) > 100
    check_sub_millisecond(rows["fib(1)"])


@pytest.mark.unmeasured  # counts and labels: the parallel pass
@pytest.mark.slow
@pytest.mark.parametrize("form", ["address", "variant"])
def test_headless_host_is_the_target(
    spawn: Callable[..., Process], threads_server: Server, coro_server: Server, form: str
):
    """--host tcp://HOST:PORT or --host VARIANT loads that target, whatever
    --fib-target says, and the log and the exporter's labels name it."""
    host = f"tcp://127.0.0.1:{coro_server.port}" if form == "address" else "coro"
    metrics_port = free_port()
    coro_before, threads_before = served(coro_server), served(threads_server)
    locust = spawn(
        *locust_command(
            "--headless", "-u", 1, "-t", "2s", "--stop-timeout", 0, "--host", host,
            "--fib-target", "threads", "--fib-metrics-port", metrics_port,
            "--fib-metrics-linger", 2,
        ),
        env=fib_targets(threads_server, coro_server),
    )  # fmt: skip
    text = scrape_final(locust, metrics_port)
    assert locust.wait(30) == 0, locust.output
    assert f"loading coro at 127.0.0.1:{coro_server.port} (from Host {host!r})" in locust.output
    assert served(coro_server) > coro_before + 100
    assert served(threads_server) == threads_before
    ok = metric_value(text, "locust_requests_total", variant="coro", name="fib(1)", outcome="ok")
    assert ok > 100
    assert metric_value(text, "locust_requests_total", variant="threads") == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("http://127.0.0.1:25004", "Host 'http://127.0.0.1:25004' is neither tcp://HOST:PORT"),
        ("corro", "Host 'corro' is neither tcp://HOST:PORT nor a variant"),
        ("tcp://127.0.0.1:http", "Host 'tcp://127.0.0.1:http': address"),
    ],
)
@pytest.mark.unmeasured  # counts and labels: the parallel pass
def test_headless_bad_host_exits_1_naming_it(
    spawn: Callable[..., Process], host: str, message: str
):
    locust = spawn(
        *locust_command("--headless", "-u", 1, "-t", "2s", "--host", host, "--fib-metrics-port", 0)
    )
    assert locust.wait(30) == 1, locust.output
    assert message in locust.output
    assert "Ramping" not in locust.output, "no user may start"


@pytest.mark.unmeasured  # counts and labels: the parallel pass
def test_fib_help_lists_the_labs_options_with_locusts(spawn: Callable[..., Process]):
    # Locust's own --help runs before it loads a locustfile (locustio/locust#2917).
    locust = spawn(*locust_command("--fib-help"))
    assert locust.wait(30) == 0, locust.output
    for option in ("--host", "fiblab options", "--fib-target", "--fib-scenario", "--fib-long-n"):
        assert option in locust.output, option


CONVOY_LINE = re.compile(r"convoy: fib\(1\) requests/s (before|during|after)[^:]*\): ([\d,.]+)$")


@pytest.mark.slow
def test_headless_convoy_ends_with_the_rates_before_during_and_after(
    spawn: Callable[..., Process], coro_server: Server
):
    """coro computes fib inline: while the long client runs, a short request
    waits for each long one (the talk's convoy at its worst)."""
    locust = spawn(
        *locust_command(
            "--headless", "--host", "coro", "--fib-scenario", "convoy",
            "--fib-stage-seconds", 2, "--fib-metrics-port", 0,
        ),
        env=fib_targets(coro_server),
    )  # fmt: skip
    assert locust.wait(60) == 0, locust.output
    lines = locust.output.splitlines()
    rates = {
        match[1]: float(match[2].replace(",", ""))
        for line in lines
        if (match := CONVOY_LINE.search(line))
    }
    assert set(rates) == {"before", "during", "after"}, locust.output
    assert rates["before"] > 10 * rates["during"], rates
    assert rates["after"] > 10 * rates["during"], rates
    long_line = next(line for line in lines if "convoy: long request fib(30): " in line)
    long_time = re.search(r": ([\d.]+) s each \((\d+) requests\)", long_line)
    assert long_time, long_line
    assert 0.001 < float(long_time[1]) < 2.0, long_line
    assert int(long_time[2]) >= 1, long_line
    # The figures are the run's last words, after Locust's own totals.
    totals = next(i for i, line in enumerate(lines) if "Response time percentiles" in line)
    assert all(i > totals for i, line in enumerate(lines) if "convoy: " in line)


def template_args(html: str) -> dict[str, Any]:
    match = re.search(r"window\.templateArgs = (.*)$", html, re.M)
    assert match, html[:2000]
    return dict(json.loads(match[1]))


def served(server: Server, n: int = 1) -> float:
    """Requests of fib(n) the server answered so far (its own count)."""
    return server.metric("fib_requests_total", n=str(n), outcome="ok")


def stats(base: str) -> dict[str, Any]:
    report: dict[str, Any] = requests.get(base + "/stats/requests", timeout=10).json()
    return report


def requests_of(report: dict[str, Any], name: str) -> int:
    return sum(int(row["num_requests"]) for row in report["stats"] if row["name"] == name)


def start_and_count(
    base: str, form: dict[str, Any], name: str = "fib(1)", at_least: int = 100
) -> dict[str, Any]:
    """POST the start form; once Locust counts `at_least` `name` requests, its stats."""
    started = requests.post(base + "/swarm", data=form, timeout=10).json()
    assert started["success"], started
    deadline = time.monotonic() + 20

    def counted(report: dict[str, Any]) -> bool:
        # Locust starts in a greenlet of its own and clears the last run's
        # stats only then: until it runs, the counts are the previous run's.
        running = report["state"] in ("spawning", "running")
        return running and requests_of(report, name) >= at_least

    while not counted(report := stats(base)):
        assert time.monotonic() < deadline, f"no {name} requests counted: {report}"
        time.sleep(0.5)
    return report


def stop(base: str) -> None:
    requests.post(base + "/stop", timeout=10).raise_for_status()
    deadline = time.monotonic() + 20
    while stats(base)["state"] != "stopped":
        assert time.monotonic() < deadline, "Locust did not stop"
        time.sleep(0.2)


FORM = {"user_count": "1", "spawn_rate": "1", "shape_class": "Default"}


@pytest.mark.unmeasured  # counts and labels: the parallel pass
@pytest.mark.slow
def test_web_ui_host_names_the_target_and_the_header_shows_it(
    web_ui: str, threads_server: Server, coro_server: Server
):
    base = web_ui
    args = template_args(get_when_up(base + "/"))
    # The Host field (and header) starts as the default target; no second
    # target field could load one variant while the header shows another.
    assert args["host"] == "tcp://threads"
    assert "fib_target" not in args["extra_options"]
    assert "fib_address" not in args["extra_options"]
    assert {"fib_long_n", "fib_short_n"} <= set(args["extra_options"])
    assert {"ShortScenario", "LongScenario", "ConvoyScenario"} <= set(
        args["available_shape_classes"]
    )
    assert set(args["available_user_classes"]) == {"ShortUser", "LongUser"}

    # A bad Host fails the start with a message that names it; nothing runs.
    for host, message in [
        ("http://127.0.0.1:1", "Host 'http://127.0.0.1:1' is neither tcp://HOST:PORT"),
        ("corro", "Host 'corro' is neither"),
        ("tcp://127.0.0.1:99999", "port 99999 is out of range 1..65535"),
        (" ", "Host is empty"),
    ]:
        answer = requests.post(base + "/swarm", data={**FORM, "host": host}, timeout=10).json()
        assert not answer["success"], (host, answer)
        assert message in answer["message"], (host, answer)
    assert stats(base)["state"] == "ready"

    coro_before, threads_before = served(coro_server), served(threads_server)
    start_and_count(base, {**FORM, "user_classes": "ShortUser", "host": "tcp://coro"})
    # A page loaded now shows the real target in its header and Host field.
    assert template_args(get_when_up(base + "/"))["host"] == "tcp://coro"
    stop(base)
    assert served(coro_server) > coro_before + 100
    assert served(threads_server) == threads_before

    # A start through the HTTP API that names --fib-target alone loads that
    # variant, not the Host typed before.
    start_and_count(base, {**FORM, "user_classes": "ShortUser", "fib_target": "threads"})
    stop(base)
    assert served(threads_server) > threads_before + 100
    assert template_args(get_when_up(base + "/"))["host"] == "tcp://threads"


@pytest.mark.unmeasured  # counts and labels: the parallel pass
@pytest.mark.slow
def test_web_ui_default_classes_start_a_short_user_then_a_long_one(
    web_ui: str, coro_server: Server
):
    """Both classes ticked (the picker's default): 1 user is a ShortUser, a
    second one a LongUser (the convoy by hand)."""
    both = {**FORM, "host": "coro", "user_classes": ["ShortUser", "LongUser"]}
    report = start_and_count(web_ui, both)
    assert requests_of(report, "fib(30)") == 0, report
    assert report["user_count"] == 1
    start_and_count(web_ui, {**both, "user_count": "2"}, name="fib(30)", at_least=1)
    stop(web_ui)
    assert served(coro_server, 30) >= 1


@pytest.mark.slow
def test_web_ui_stats_show_fib1s_sub_millisecond_median(web_ui: str, threads_server: Server):
    """/stats/requests, what the web UI's table and charts read: fib(1)'s
    median and percentiles in ms with their fractions, not 0."""
    report = start_and_count(web_ui, {**FORM, "user_classes": "ShortUser", "host": "threads"})
    # The charts' current percentiles need a few seconds of Locust's cache.
    deadline = time.monotonic() + 15
    while report["current_response_time_percentiles"]["response_time_percentile_0.5"] is None:
        assert time.monotonic() < deadline, report
        time.sleep(0.5)
        report = stats(web_ui)
    stop(web_ui)
    charted = report["current_response_time_percentiles"]
    (row,) = (row for row in report["stats"] if row["name"] == "fib(1)")
    assert 0.01 < row["median_response_time"] < 1.0, row
    assert row["response_time_percentile_0.95"] > 0.01, row
    assert 0.01 < charted["response_time_percentile_0.5"] < 1.0, charted
    assert charted["response_time_percentile_0.95"] > 0.01, charted
