# loadtest/swarm/exporter.py
#
# The client's view of the load, in Prometheus form (docs/design.md §4-5), with
# microsecond resolution from each request's unrounded time (Locust's own
# stats keep two significant digits below 10 ms: bucketing.py):
#
#   locust_requests_total{variant,name,outcome}   outcome ok | error
#   locust_request_duration_seconds{variant,name} histogram, 10 µs .. 120 s
#                                                 (successful requests)
#   locust_users{variant}                         users running now
#
# Every request event feeds a LatencyTable. A worker sends what it gathered
# since its last report to the master every FLUSH_PERIOD in a custom message
# (MESSAGE_TYPE), and the rest inside Locust's own report message
# (events.report_to_master, every 3 s and a last one at quit); the master adds
# each to its table (events.worker_report): the master's /metrics is the sum
# over workers, at most FLUSH_PERIOD behind them (the capacity sweep reads it
# over windows of a few seconds: docs/design.md §6.4).
# The master (or a standalone locust) serves /metrics on its own port from
# its own CollectorRegistry. The table is a prometheus_client Collector
# rather than a Histogram because bucket counts must be added up across
# processes, which a Histogram does not let one do.

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:  # importing Locust monkey-patches the process: only where it runs
    from locust.env import Environment

# Upper bounds in seconds: fine from 10 µs (a short request on loopback takes
# 20-100 µs) to two minutes (fib(45)); about four buckets per decade.
BUCKETS: tuple[float, ...] = (
    *(
        round(mantissa * 10.0**exponent, 9)
        for exponent in range(-5, 2)
        for mantissa in (1.0, 1.5, 2.0, 3.0, 5.0, 7.5)
    ),
    120.0,
)
REPORT_KEY = "fiblab_latency"  # our part of a worker's report to the master
MESSAGE_TYPE = "fiblab_latency"  # ... and our own message between reports
FLUSH_PERIOD = 0.5  # seconds
DEFAULT_PORT = 9646

log = logging.getLogger("fiblab.exporter")

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series (docs/design.md §4)


@dataclass
class Series:
    """The requests of one (variant, name): outcome counts and latency buckets."""

    ok: int = 0
    errors: int = 0
    seconds_sum: float = 0.0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))

    def as_report(self) -> list[Any]:
        return [self.ok, self.errors, self.seconds_sum, self.bucket_counts]

    def add_report(self, report: list[Any]) -> None:
        ok, errors, seconds_sum, bucket_counts = report
        if len(bucket_counts) != len(self.bucket_counts):
            raise ValueError("a worker reported other latency buckets (another fiblab version?)")
        self.ok += int(ok)
        self.errors += int(errors)
        self.seconds_sum += float(seconds_sum)
        for i, count in enumerate(bucket_counts):
            self.bucket_counts[i] += int(count)


class LatencyTable(Collector):
    """Request counts and latency histograms per (variant, name); a Prometheus collector."""

    def __init__(self, users: Callable[[], tuple[str, int]] | None = None) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        # What locust_users shows: (variant, user count), read at scrape time.
        self.users = users

    def observe(self, variant: str, name: str, seconds: float, ok: bool) -> None:
        key = (variant, name)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        if ok:
            series.ok += 1
            series.seconds_sum += seconds
            series.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        else:
            series.errors += 1

    def on_request(
        self,
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """Listener for events.request (response_time in ms, as Locust has it)."""
        variant = context.get("variant", "") if context else ""
        self.observe(variant, name, response_time / 1000.0, exception is None)

    def take_report(self) -> list[list[Any]]:
        """What was gathered since the last call, as plain lists, and forget it."""
        report = [
            [variant, name, *series.as_report()] for (variant, name), series in self.series.items()
        ]
        self.series = {}
        return report

    def add_report(self, report: list[list[Any]]) -> None:
        for variant, name, *counts in report:
            key = (str(variant), str(name))
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = Series()
            series.add_report(counts)

    def totals(self) -> dict[str, int]:
        """ok and error counts over every series (for logs and tests)."""
        return {
            "ok": sum(s.ok for s in self.series.values()),
            "error": sum(s.errors for s in self.series.values()),
        }

    def collect(self) -> Iterator[prometheus_client.Metric]:
        requests = CounterMetricFamily(
            "locust_requests",
            "Requests the load generator sent, by reply: ok or error (ERR reply, "
            "wrong reply or connection failure).",
            labels=["variant", "name", "outcome"],
        )
        durations = HistogramMetricFamily(
            "locust_request_duration_seconds",
            "Client-side latency of successful requests, from send (open loop: "
            "from the intended send time) to the whole reply line.",
            labels=["variant", "name"],
        )
        for (variant, name), series in sorted(self.series.items()):
            requests.add_metric([variant, name, "ok"], series.ok)
            requests.add_metric([variant, name, "error"], series.errors)
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), series.bucket_counts, strict=True):
                cumulative += count
                label = floatToGoString(bound)  # type: ignore[no-untyped-call]
                buckets.append((label, cumulative))
            durations.add_metric([variant, name], buckets, sum_value=series.seconds_sum)
        yield requests
        yield durations
        users = GaugeMetricFamily(
            "locust_users", "Simulated users running now.", labels=["variant"]
        )
        if self.users is not None:
            variant, count = self.users()
            users.add_metric([variant], count)
        yield users


def serve(table: LatencyTable, host: str, port: int) -> int:
    """Serve `table` at http://host:port/metrics in its own registry; the bound port."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(table)
    try:
        server, _thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise OSError(
            f"cannot serve load-generator metrics on {host}:{port}: {error.strerror or error} "
            "(--fib-metrics-port another port, or 0 for none)"
        ) from error
    return int(server.server_address[1])


def linger(table: LatencyTable, seconds: float) -> None:
    """Keep /metrics up a little after the run so that a 1 s scrape sees the final counts."""
    if seconds > 0:
        log.info("final counts %s; metrics stay up %.1f s", table.totals(), seconds)
        time.sleep(seconds)


def attach(
    environment: Environment,
    *,
    host: str,
    port: int,
    linger_seconds: float,
    variant: Callable[[], str],
) -> LatencyTable:
    """Feed a LatencyTable from `environment`'s requests; serve or forward it by runner kind.

    Worker: its counts go to the master with each stats report. Master or
    standalone: /metrics on host:port (port 0: not served), summing workers'
    reports on a master; `variant()` labels its user count.
    """
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    table = LatencyTable()
    environment.events.request.add_listener(table.on_request)  # type: ignore[no-untyped-call]
    if isinstance(runner, WorkerRunner):

        def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
            data[REPORT_KEY] = table.take_report()

        environment.events.report_to_master.add_listener(on_report_to_master)  # type: ignore[no-untyped-call]
        runner.greenlet.spawn(flush_to_master, runner, table)
        return table

    def users() -> tuple[str, int]:
        return variant(), runner.user_count if runner is not None else 0

    table.users = users
    if isinstance(runner, MasterRunner):

        def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
            table.add_report(data.get(REPORT_KEY, []))

        environment.events.worker_report.add_listener(on_worker_report)  # type: ignore[no-untyped-call]

        def on_flush(msg: Any, **_: Any) -> None:
            table.add_report(msg.data)

        runner.register_message(MESSAGE_TYPE, on_flush)
    if port:
        bound = serve(table, host, port)
        log.info("client-side metrics on http://%s:%d/metrics", host, bound)

        def on_quit(**_: Any) -> None:
            linger(table, linger_seconds)

        environment.events.quit.add_listener(on_quit)  # type: ignore[no-untyped-call]
    return table


def flush_to_master(runner: Any, table: LatencyTable) -> None:
    """A worker's loop: what it gathered, to the master every FLUSH_PERIOD."""
    import gevent
    from locust.exception import RPCError

    while True:
        gevent.sleep(FLUSH_PERIOD)
        if table.series:
            report = table.take_report()
            try:
                runner.send_message(MESSAGE_TYPE, report)
            except RPCError as error:  # the master is away: kept for the next report
                table.add_report(report)
                log.warning("could not send latencies to the master: %s", error)
