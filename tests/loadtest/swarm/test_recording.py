# tests/loadtest/swarm/test_recording.py
#
# The figures made of one engine run's raw samples, from SYNTHETIC samples
# with known answers: each long stage has its own duration, replies, req/s,
# latency and seconds per request, a stage without a reply is kept and says
# so, and the convoy timeline covers whole seconds only.

from __future__ import annotations

from array import array
from typing import Any

import pytest

from loadtest.swarm.recording import (
    Stream,
    UserChanges,
    convoy_figures,
    long_stages,
    percentiles_ms,
    timeline,
)

# The long scenario: 1 client from 0.0 s, 2 from 2.0 s, 3 from 3.0 s; the
# users are stopped at 4.0 s.
LONG_USERS: UserChanges = [(0.0, 0), (0.0, 1), (2.0, 2), (3.0, 3)]
END = 4.0


def stream(requests: list[tuple[float, float]], errors: tuple[float, ...] = ()) -> Stream:
    """A stream of (start, end) requests, in the order their replies arrived."""
    ordered = sorted(requests, key=lambda request: request[1])
    return Stream(
        "fib(30)",
        ends=array("d", [end for _, end in ordered]),
        latencies=array("d", [end - start for start, end in ordered]),
        error_ends=array("d", sorted(errors)),
    )


def by_clients(stages: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {stage["clients"]: stage for stage in stages}


def test_each_long_stage_has_its_own_figures() -> None:
    long = stream(
        [
            # 1 client: 0.5 s each, back to back
            (0.0, 0.5),
            (0.5, 1.0),
            (1.0, 1.5),
            (1.5, 2.0),
            # 2 clients: 1.0 s each; the first user's request from 2.0 ends at 3.0
            (2.0, 3.0),
            (2.0, 3.0),
            # 3 clients: 1.5 s each: one ends inside, two are cut at the end
            (3.0, 3.75),  # a short one to have a latency known inside stage 3
        ]
    )
    stages = by_clients(long_stages(long, LONG_USERS, END))
    assert sorted(stages) == [1, 2, 3]
    one, two, three = stages[1], stages[2], stages[3]

    assert one["window"] == [0.0, 2.0]
    assert one["duration_s"] == 2.0
    assert one["requests"] == 3  # at 0.5, 1.0, 1.5: the reply at 2.0 arrived in stage 2
    assert one["rps"] == 1.5  # 3 replies / 2 s
    assert one["latency_requests"] == 3
    assert one["seconds_per_request"] == 0.5
    assert one["latency_ms"] == {
        "p50": 500.0,
        "p90": 500.0,
        "p99": 500.0,
        "p999": 500.0,
        "max": 500.0,
    }

    assert two["window"] == [2.0, 3.0]
    assert two["duration_s"] == 1.0
    # the reply at 2.0 (a 1-client request) arrived in stage 2; the two at 3.0 in stage 3
    assert two["requests"] == 1
    assert two["latency_requests"] == 0, "the one reply ran with 1 client"
    assert two["seconds_per_request"] is None

    assert three["window"] == [3.0, 4.0]
    assert three["requests"] == 3
    assert three["rps"] == 3.0
    assert three["latency_requests"] == 1
    assert three["seconds_per_request"] == 0.75
    assert three["latency_ms"]["p50"] == 750.0


def test_requests_are_not_counted_with_the_wrong_clients() -> None:
    # the old rule counted a stage's requests by start only and dropped the
    # rest; here every reply is in the stage it arrived in, once
    long = stream([(0.0, 0.9), (0.9, 1.8), (1.8, 2.7), (2.0, 3.5), (2.7, 3.9)])
    stages = long_stages(long, LONG_USERS, END)
    assert sum(stage["requests"] for stage in stages) == 5
    assert [stage["latency_requests"] for stage in stages] == [2, 0, 0]


def test_a_stage_without_a_reply_is_kept_with_null_figures() -> None:
    long = stream([(0.0, 1.0), (1.0, 2.5)])  # nothing arrives after 2.5 s
    stages = by_clients(long_stages(long, LONG_USERS, END))
    assert sorted(stages) == [1, 2, 3], "no stage is dropped"
    three = stages[3]
    assert three["requests"] == 0
    assert three["rps"] == 0.0
    assert three["duration_s"] == 1.0
    assert three["latency_requests"] == 0
    assert three["seconds_per_request"] is None
    assert three["latency_ms"] == dict.fromkeys(("p50", "p90", "p99", "p999", "max"))


def test_stages_without_any_long_stream_are_still_reported() -> None:
    stages = long_stages(None, LONG_USERS, END)
    assert [(stage["clients"], stage["requests"]) for stage in stages] == [(1, 0), (2, 0), (3, 0)]


def test_errors_count_in_the_stage_they_arrived_in() -> None:
    long = stream([(0.0, 0.5)], errors=(1.0, 2.5, 3.5, 3.6))
    stages = by_clients(long_stages(long, LONG_USERS, END))
    assert [stages[k]["errors"] for k in (1, 2, 3)] == [1, 1, 2]
    assert stages[3]["requests"] == 2, "an error is a request that got a reply"
    assert stages[3]["rps"] == 0.0, "req/s counts the answers"


def test_timeline_has_whole_seconds_only() -> None:
    # 10 short replies a second for 3 s, then the users stop 0.2 s into the
    # fourth second: that second would show 2 replies, a fake drop
    ends = [second + k / 10 for second in range(3) for k in range(10)] + [3.0, 3.1]
    short = Stream("fib(1)", ends=array("d", ends), latencies=array("d", [0.001] * len(ends)))
    rows = timeline(short, [(0.0, 0), (1.0, 1), (2.0, 0)], 3.2)
    assert [row["t"] for row in rows] == [0.0, 1.0, 2.0]
    assert [row["short_rps"] for row in rows] == [10.0, 10.0, 10.0]
    assert [row["long_in_progress"] for row in rows] == [0.0, 1.0, 0.0]


def test_convoy_figures_from_known_rates() -> None:
    # 100 req/s for 2 s, 2 req/s while the long user runs [2, 4), 100 again after
    ends = (
        [k / 100 for k in range(200)] + [2.25, 2.75, 3.25, 3.75] + [4 + k / 100 for k in range(200)]
    )
    short = Stream("fib(1)", ends=array("d", ends), latencies=array("d", [0.001] * len(ends)))
    long = stream([(2.0, 3.9)])
    figures = convoy_figures(short, long, [(0.0, 0), (2.0, 1), (4.0, 0)], 6.0)
    assert figures["short_rps_before"] == 100.0
    assert figures["short_rps_during"] == 2.0
    assert figures["short_rps_after"] == 100.0
    assert figures["long_seconds"] == pytest.approx(1.9)


def test_percentiles_are_nearest_rank_in_microseconds() -> None:
    latencies = [k / 1_000_000 for k in range(1, 1001)]  # 1 µs .. 1 ms
    assert percentiles_ms(latencies) == {
        "p50": 0.5,
        "p90": 0.9,
        "p99": 0.99,
        "p999": 0.999,
        "max": 1.0,
    }
