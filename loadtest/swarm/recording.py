# loadtest/swarm/recording.py
#
# What one Locust run recorded, and the figures made of it (docs/design.md §6).
# The comparison engine and a standalone convoy run both keep, per role
# (short, long), the completion time and latency of every reply, and the
# number of long users over time (Recorder, fed by Locust's events). Nothing
# here imports Locust at run time (it monkey-patches whatever imports it with
# gevent), so tests feed these functions known samples and check known
# answers.
#
#   timeline        short req/s and long users present, per WHOLE second
#   long_stages     per number of long clients: its window, duration, replies,
#                   req/s, latency percentiles, seconds per request
#   convoy_figures  short req/s before / during / after the long request

from __future__ import annotations

import itertools
import math
import time
from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust.env import Environment

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}

# (seconds since the run's start, long users running from then on)
UserChanges = list[tuple[float, int]]


@dataclass
class Stream:
    """The replies of one role (short or long): completion times and latencies in seconds.

    Completion times are appended as replies arrive, hence sorted.
    """

    name: str
    ends: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    error_ends: array[float] = field(default_factory=lambda: array("d"))
    error_messages: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return len(self.error_ends)


def percentiles_ms(latencies: array[float] | list[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles and max, in ms rounded to the microsecond."""
    if not latencies:
        return dict.fromkeys((*PERCENTILES, "max"))
    ordered = sorted(latencies)
    result: dict[str, float | None] = {}
    for key, p in PERCENTILES.items():
        # rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point
        rank = max(1, math.ceil(round(p / 100.0 * len(ordered), 9)))
        result[key] = round(ordered[rank - 1] * 1000.0, 3)
    result["max"] = round(ordered[-1] * 1000.0, 3)
    return result


def count_between(ends: array[float], start: float, stop: float) -> int:
    """Completions in [start, stop)."""
    return bisect_left(ends, stop) - bisect_left(ends, start)


def rate_between(ends: array[float], start: float, stop: float) -> float | None:
    if stop - start <= 0:
        return None
    return round(count_between(ends, start, stop) / (stop - start), 3)


def users_at(changes: UserChanges, t: float) -> int:
    count = 0
    for when, users in changes:
        if when > t:
            break
        count = users
    return count


def mean_users(changes: UserChanges, start: float, stop: float) -> float:
    """Time-weighted mean of the users present in [start, stop)."""
    points = [start, *(when for when, _ in changes if start < when < stop), stop]
    total = sum(users_at(changes, a) * (b - a) for a, b in itertools.pairwise(points))
    return round(total / (stop - start), 3) if stop > start else 0.0


def timeline(short: Stream | None, long_users: UserChanges, end: float) -> list[dict[str, float]]:
    """Short req/s and mean long users for each whole second [t, t+1) before `end`.

    A last, partial second is left out: the users stop in it, so its rate
    would show a drop that the server never made.
    """
    rows = []
    for second in range(math.floor(end)):
        stop = second + 1.0
        rows.append(
            {
                "t": float(second),
                "short_rps": (rate_between(short.ends, second, stop) or 0.0) if short else 0.0,
                "long_in_progress": mean_users(long_users, second, stop),
            }
        )
    return rows


def user_intervals(long_users: UserChanges, end: float) -> list[tuple[int, float, float]]:
    """(long users, start, stop) for each stretch with a constant number of them before `end`."""
    bounds = [*(when for when, _ in long_users[1:]), end]
    return [
        (users, start, min(stop, end))
        for (start, users), stop in zip(long_users, bounds, strict=True)
        if min(stop, end) > start
    ]


def long_stages(stream: Stream | None, long_users: UserChanges, end: float) -> list[dict[str, Any]]:
    """Each stage of the long scenario (one per number of long clients) on its own.

    requests, errors, rps: the replies that arrived during the stage.
    latency_ms, seconds_per_request: the requests that ran wholly inside it
    (latency_requests of them); one that began in the stage before ran partly
    with another number of clients. A stage in which no reply arrived is kept
    with requests 0 and null figures: the report says so.
    """
    ends = stream.ends if stream else array("d")
    latencies = stream.latencies if stream else array("d")
    error_ends = stream.error_ends if stream else array("d")
    by_clients: dict[int, list[tuple[float, float]]] = {}
    for users, start, stop in user_intervals(long_users, end):
        if users > 0:
            by_clients.setdefault(users, []).append((start, stop))
    stages = []
    for clients, spans in sorted(by_clients.items()):
        seconds = sum(stop - start for start, stop in spans)
        replies = sum(count_between(ends, start, stop) for start, stop in spans)
        errors = sum(count_between(error_ends, start, stop) for start, stop in spans)
        inside = [
            latency
            for finish, latency in zip(ends, latencies, strict=True)
            if any(start <= finish - latency and finish < stop for start, stop in spans)
        ]
        stages.append(
            {
                "clients": clients,
                "window": [round(spans[0][0], 3), round(spans[-1][1], 3)],
                "duration_s": round(seconds, 3),
                "requests": replies + errors,
                "errors": errors,
                "rps": round(replies / seconds, 3),
                "latency_requests": len(inside),
                "latency_ms": percentiles_ms(inside),
                "seconds_per_request": round(sum(inside) / len(inside), 6) if inside else None,
            }
        )
    return stages


def convoy_figures(
    short: Stream | None, long: Stream | None, long_users: UserChanges, end: float
) -> dict[str, Any]:
    joined = next((when for when, users in long_users if users > 0), None)
    if joined is None:  # the long user never ran: no convoy to speak of
        keys = ("long_window", "short_rps_before", "short_rps_during", "short_rps_after")
        return {**dict.fromkeys(keys), "long_requests": 0, "long_seconds": None}
    left = next((when for when, users in long_users if when > joined and users == 0), end)
    ends = short.ends if short else array("d")
    long_latencies = (
        [
            latency
            for finish, latency in zip(long.ends, long.latencies, strict=True)
            if joined <= finish - latency and finish <= left
        ]
        if long
        else []
    )
    first = long_users[0][0]
    return {
        "long_window": [round(joined, 3), round(left, 3)],
        "short_rps_before": rate_between(ends, first, joined),
        "short_rps_during": rate_between(ends, joined, left),
        "short_rps_after": rate_between(ends, left, end),
        "long_requests": len(long_latencies),
        "long_seconds": round(sum(long_latencies) / len(long_latencies), 6)
        if long_latencies
        else None,
    }


class Recorder:
    """Listens to a run's request and spawn events; keeps the raw samples."""

    def __init__(self, environment: Environment, *, long_user: str) -> None:
        self.environment = environment
        self.long_user = long_user  # the class name whose users are the long clients
        self.start = time.perf_counter()
        self.streams: dict[str, Stream] = {}
        # (seconds since start, long users running) after each change of users.
        self.long_users: UserChanges = [(0.0, 0)]
        self.stopped: float | None = None  # when the shape's end began stopping the users

    def on_request(
        self,
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        end = time.perf_counter() - self.start
        role = context.get("role", name) if context else name
        stream = self.streams.get(role)
        if stream is None:
            stream = self.streams[role] = Stream(name)
        if exception is None:
            stream.ends.append(end)
            stream.latencies.append(response_time / 1000.0)
        else:
            stream.error_ends.append(end)
            stream.error_messages[str(exception)[:200]] += 1

    def on_spawning_complete(self, **_: Any) -> None:
        runner = self.environment.runner
        assert runner is not None
        count = runner.user_classes_count.get(self.long_user, 0)
        if count != self.long_users[-1][1]:
            self.long_users.append((time.perf_counter() - self.start, count))

    def on_test_stopping(self, **_: Any) -> None:
        if self.stopped is None:
            self.stopped = time.perf_counter() - self.start
