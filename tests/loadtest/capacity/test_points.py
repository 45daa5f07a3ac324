# The figures of one capacity point, from real scrapes' shapes: counters and
# histograms summed by label, Prometheus-style quantiles, and who set the point.

from __future__ import annotations

import math

import pytest

from loadtest.capacity.points import (
    LOADGEN_SATURATED_CORES,
    bottleneck,
    counter_delta,
    histogram_delta,
    latency_ms,
    quantile,
)
from loadtest.toolbox.servers import Samples


def key(metric: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return metric, frozenset(labels.items())


def histogram(counts: dict[float, float], **labels: str) -> Samples:
    """Cumulative buckets of `locust_request_duration_seconds` with those labels."""
    return {
        key("locust_request_duration_seconds_bucket", le=str(bound), **labels): count
        for bound, count in counts.items()
    }


def test_counter_delta_sums_the_series_whose_labels_match() -> None:
    before = {key("fib_requests_total", n="1", outcome="ok"): 10.0}
    after = {
        key("fib_requests_total", n="1", outcome="ok"): 110.0,
        key("fib_requests_total", n="1", outcome="error"): 5.0,  # new since before
        key("fib_requests_total", n="30", outcome="ok"): 7.0,
        key("fib_cpu_seconds_total"): 3.0,
    }
    assert counter_delta(before, after, "fib_requests_total", n="1") == 105.0
    assert counter_delta(before, after, "fib_requests_total", n="1", outcome="ok") == 100.0
    assert counter_delta(before, after, "fib_requests_total") == 112.0
    assert counter_delta(before, after, "fib_connections_active") == 0.0


def test_quantiles_interpolate_within_the_bucket_like_histogram_quantile() -> None:
    # 100 samples: 50 up to 1 ms, 40 in (1, 2] ms, 10 in (2, 4] ms
    buckets = [(0.001, 50.0), (0.002, 90.0), (0.004, 100.0), (math.inf, 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.001)
    assert quantile(buckets, 0.25) == pytest.approx(0.0005)  # from 0 up to the first bound
    assert quantile(buckets, 0.7) == pytest.approx(0.0015)
    assert quantile(buckets, 0.99) == pytest.approx(0.0038)
    assert latency_ms(buckets) == {"p50": 1.0, "p99": 3.8, "p99.9": 3.98}


def test_no_samples_or_the_inf_bucket_give_no_figure() -> None:
    assert quantile([], 0.5) is None
    assert quantile([(0.001, 0.0), (math.inf, 0.0)], 0.5) is None
    # the slowest 2 % are beyond the last finite bound: p99 is unknown, not that bound
    buckets = [(0.001, 98.0), (math.inf, 100.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.0005102, rel=1e-3)
    assert quantile(buckets, 0.99) is None


def test_histogram_delta_is_the_window_only_and_per_request_name() -> None:
    before = histogram({0.001: 10, 0.002: 10, math.inf: 10}, name="fib(1)")
    after = histogram({0.001: 10, 0.002: 30, math.inf: 30}, name="fib(1)") | histogram(
        {0.001: 99, 0.002: 99, math.inf: 99}, name="fib(30)"
    )
    window = histogram_delta(before, after, "locust_request_duration_seconds", name="fib(1)")
    assert window == [(0.001, 0.0), (0.002, 20.0), (math.inf, 20.0)]
    # every sample of the window lies in (1, 2] ms
    assert 1.0 < (latency_ms(window)["p50"] or 0.0) <= 2.0


def point(**figures: float | None) -> dict[str, float | None]:
    return {
        "loadgen_busiest_cores": 0.3,
        "loadgen_cpu_cores": 0.5,
        "server_cpu_cores": 0.9,
        "foreign_cpu_cores": 0.0,
    } | figures


def test_a_worker_on_its_whole_core_makes_the_point_the_generators() -> None:
    assert bottleneck(point(), cores=2) == "server"
    assert bottleneck(point(loadgen_busiest_cores=LOADGEN_SATURATED_CORES), cores=2) == "loadgen"


def test_a_full_machine_where_locust_costs_more_than_the_server_is_the_generators() -> None:
    # 2 cores all busy; Locust used 1.6 against the server's 0.4: it took the server's CPU
    full = point(loadgen_cpu_cores=1.6, server_cpu_cores=0.4, loadgen_busiest_cores=0.8)
    assert bottleneck(full, cores=2) == "loadgen"
    # the same split with a core to spare: the server was not short of CPU
    assert bottleneck(full, cores=4) == "server"
    # a full machine where the server costs more: the server's
    assert bottleneck(point(loadgen_cpu_cores=0.8, server_cpu_cores=1.2), cores=2) == "server"
