# tests/loadtest/connections/test_summary.py
#
# report.json's figures from points made up here: the slope and its spread,
# and docs/design.md §3.3's predictions judged with their margins.

from __future__ import annotations

import math
from typing import Any

import pytest

from loadtest.connections.summary import (
    AS_PREDICTED,
    NO_DATA,
    NOISY,
    NOT_AS_PREDICTED,
    admission_figures,
    fairness_figures,
    memory_figures,
    slope,
    within_margin,
)


def idle(n: int, kib_each: float, *, threads: int = 4, held: bool = True,
         noisy: bool = False, admission: float = 5_000.0) -> dict[str, Any]:  # fmt: skip
    return {
        "connections": n, "held": held, "noisy": noisy,
        "rss_bytes": 30 * 2**20 + kib_each * 1024 * n, "threads": threads, "fds": 12 + n,
        "admission_per_s": admission,
    }  # fmt: skip


def test_the_slope_is_least_squares_with_its_standard_error_and_pair_range() -> None:
    found = slope([10, 100, 1000], [1000 + 10 * 10, 1000 + 100 * 12, 1000 + 1000 * 10])
    assert found is not None
    assert found.points == 3
    assert found.pair_low == pytest.approx((1000 * 10 - 100 * 12) / 900)
    assert found.pair_high == pytest.approx((100 * 12 - 10 * 10) / 90)
    assert found.stderr is not None
    assert found.stderr > 0
    exact = slope([1, 2], [5, 9])
    assert exact is not None
    assert exact.per_connection == 4
    assert exact.stderr is None
    assert slope([5, 5], [1, 2]) is None  # one count: no slope


def test_the_margin_is_the_factor_to_the_nearer_bound() -> None:
    assert within_margin(20, 12, 30) == pytest.approx(1.5)  # 30 / 20
    assert within_margin(6, 12, 30) == pytest.approx(0.5)  # below: short by 2x
    assert within_margin(0.5, -1, 1) == pytest.approx(2)  # a range around 0
    assert math.isinf(within_margin(0, -1, 1))


def test_memory_is_judged_against_the_predicted_range_of_its_variant() -> None:
    threads = {"variant": "threads", "server": {"python": "3.11.7"},
               "idle": [idle(n, 17, threads=4 + n) for n in (10, 100, 1000)]}  # fmt: skip
    figure = memory_figures(threads)
    assert figure["memory"]["per_connection"] == pytest.approx(17 * 1024)
    assert figure["verdict"]["status"] == AS_PREDICTED
    assert figure["threads_verdict"]["status"] == AS_PREDICTED  # one thread per connection
    assert figure["fds_verdict"]["status"] == AS_PREDICTED
    # the same memory on asyncio is above its 4-10 KiB, and a thread each is not constant
    asyncio = threads | {"variant": "asyncio"}
    figure = memory_figures(asyncio)
    assert figure["verdict"]["status"] == NOT_AS_PREDICTED
    assert figure["verdict"]["margin"] == pytest.approx(10 / 17, rel=1e-3)
    assert figure["threads_verdict"]["status"] == NOT_AS_PREDICTED


def test_a_point_not_held_is_left_out_and_all_noisy_points_make_a_noisy_verdict() -> None:
    record = {"variant": "coro", "server": None,
              "idle": [idle(10, 4, noisy=True), idle(100, 4, noisy=True),
                       idle(1000, 50, held=False)]}  # fmt: skip
    figure = memory_figures(record)
    assert figure["held_up_to"] == 100
    assert figure["memory"]["per_connection"] == pytest.approx(4 * 1024)
    assert figure["verdict"]["status"] == NOISY
    alone = memory_figures({"variant": "coro", "idle": [idle(10, 4)]})
    assert alone["verdict"]["status"] == NO_DATA


def test_admission_is_judged_from_a_thousand_connections_on() -> None:
    record = {"variant": "asyncio", "idle": [
        idle(10, 6, admission=300.0), idle(1000, 6, admission=2_500.0),
        idle(5000, 6, admission=1_900.0)]}  # fmt: skip
    figure = admission_figures(record)
    assert figure["lowest_per_s"] == 1_900.0  # not the 300/s of ten connections
    assert figure["verdict"]["status"] == NOT_AS_PREDICTED
    assert figure["verdict"]["margin"] == pytest.approx(0.95)


def side(p99: float | None) -> dict[str, Any]:
    latency = {"p50": 0.1, "p99": p99}
    return {
        "beside": {"latency_ms": latency, "connect_ms": latency, "failure": None},
        "alone": {"latency_ms": latency}, "pipeline_rps": 1.0, "pipeline_failure": None,
        "noisy": False,
    }  # fmt: skip


def test_fairness_before_must_be_slow_and_after_fast_except_for_the_control() -> None:
    sides = {"before": side(200.0), "after": side(2.0)}
    figure = fairness_figures({"variant": "asyncio", "fairness": sides})
    assert figure is not None
    assert figure["before_verdict"]["status"] == AS_PREDICTED
    assert figure["before_verdict"]["margin"] == pytest.approx(20)
    assert figure["after_verdict"]["margin"] == pytest.approx(2.5)
    slow_after = fairness_figures({"variant": "trio", "fairness": {"after": side(50.0)}})
    assert slow_after is not None
    assert slow_after["after_verdict"]["status"] == NOT_AS_PREDICTED
    assert slow_after["before_verdict"]["status"] == NO_DATA
    control = fairness_figures({"variant": "threads", "fairness": {"after": side(50.0)}})
    assert control is not None
    assert control["after_verdict"]["status"] == "control"
    assert fairness_figures({"variant": "sync", "fairness": {}}) is None


def test_before_is_judged_as_a_stall_only_where_a_read_held_the_loop() -> None:
    pooled = fairness_figures(
        {"variant": "asyncio-procpool", "fairness": {"before": side(1.0), "after": side(1.0)}}
    )
    assert pooled is not None
    assert pooled["before_verdict"]["status"] == "not judged (awaits a pool)"
    assert pooled["after_verdict"]["status"] == AS_PREDICTED
    stalled = fairness_figures({"variant": "asyncio", "fairness": {"before": side(1.0)}})
    assert stalled is not None
    assert stalled["before_verdict"]["status"] == NOT_AS_PREDICTED
    # coro yields at every reply, whatever the setting: fair before too
    fair = fairness_figures({"variant": "coro", "fairness": {"before": side(1.0)}})
    assert fair is not None
    assert fair["before_verdict"]["status"] == AS_PREDICTED
    held = fairness_figures({"variant": "coro", "fairness": {"before": side(200.0)}})
    assert held is not None
    assert held["before_verdict"]["status"] == NOT_AS_PREDICTED
