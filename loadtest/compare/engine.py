# loadtest/compare/engine.py
#
# One scenario run with Locust as a library, for the comparison runner
# (DESIGN §6): an Environment and a LocalRunner drive the lab's users
# through the scenario's shape for a fixed time, and every request's own
# timing (microsecond resolution, not Locust's rounded one) is kept and
# summed up into a JSON-able dict:
#
#   by_name      per request name: requests, errors, rps, latency_ms {p50 .. max}
#   timeline     per second: short req/s and long users present
#   long         stages [{clients, seconds_per_request}]
#   convoy       short_rps_before / during / after, long_seconds, long_window
#   loadgen_cpu_percent, asked_rps (open loop) and achieved_rps: was the
#                load generator the limit?
#
#   python -m loadtest.compare.engine --address 127.0.0.1:25000 --variant threads \
#       --scenario convoy --duration 10 [--long-n N] [--rate R]
#
# prints that dict as JSON on stdout. The comparison runner calls it in a
# subprocess: importing Locust monkey-patches the process with gevent.

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import sys
import time
from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import locust
from locust.env import Environment
from locust.event import Events

from loadtest.swarm.shapes import SCENARIOS
from loadtest.swarm.targets import Address, TargetError, check_variant, parse_address, resolve
from loadtest.swarm.users import FibOptions, LongUser, ShortUser

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
SHUTDOWN_MARGIN = 30.0  # seconds past the scenario's length before the run is cut


@dataclass
class Stream:
    """The requests of one role (short or long): completion times and latencies in seconds."""

    name: str
    ends: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: int = 0
    error_messages: Counter[str] = field(default_factory=Counter)


class Recorder:
    """Listens to a run's request and spawn events; keeps the raw samples."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.start = time.perf_counter()
        self.streams: dict[str, Stream] = {}
        # (seconds since start, long users running) after each change of users.
        self.long_users: list[tuple[float, int]] = [(0.0, 0)]

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
            stream.errors += 1
            stream.error_messages[str(exception)[:200]] += 1

    def on_spawning_complete(self, **_: Any) -> None:
        runner = self.environment.runner
        assert runner is not None
        count = runner.user_classes_count.get(LongUser.__name__, 0)
        if count != self.long_users[-1][1]:
            self.long_users.append((time.perf_counter() - self.start, count))


def percentiles_ms(latencies: array[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles and max, in ms rounded to the microsecond."""
    if not latencies:
        return dict.fromkeys((*PERCENTILES, "max"))
    ordered = sorted(latencies)
    result: dict[str, float | None] = {}
    for key, p in PERCENTILES.items():
        rank = max(1, math.ceil(p / 100.0 * len(ordered)))
        result[key] = round(ordered[rank - 1] * 1000.0, 3)
    result["max"] = round(ordered[-1] * 1000.0, 3)
    return result


def count_between(ends: array[float], start: float, stop: float) -> int:
    # `ends` are in recording order, hence sorted.
    return bisect_left(ends, stop) - bisect_left(ends, start)


def rate_between(ends: array[float], start: float, stop: float) -> float | None:
    if stop - start <= 0:
        return None
    return round(count_between(ends, start, stop) / (stop - start), 3)


def users_at(changes: list[tuple[float, int]], t: float) -> int:
    count = 0
    for when, users in changes:
        if when > t:
            break
        count = users
    return count


def mean_users(changes: list[tuple[float, int]], start: float, stop: float) -> float:
    """Time-weighted mean of the users present in [start, stop)."""
    points = [start, *(when for when, _ in changes if start < when < stop), stop]
    total = sum(users_at(changes, a) * (b - a) for a, b in itertools.pairwise(points))
    return round(total / (stop - start), 3) if stop > start else 0.0


def timeline(recorder: Recorder, end: float) -> list[dict[str, float]]:
    short = recorder.streams.get(ShortUser.role)
    rows = []
    for second in range(math.ceil(end)):
        stop = min(second + 1.0, end)
        rows.append(
            {
                "t": float(second),
                "short_rps": (rate_between(short.ends, second, stop) or 0.0) if short else 0.0,
                "long_in_progress": mean_users(recorder.long_users, second, stop),
            }
        )
    return rows


def long_stages(recorder: Recorder) -> list[dict[str, Any]]:
    """Seconds per long request by number of long clients.

    A request during which the number of long users changed counts in no stage.
    """
    stream = recorder.streams.get(LongUser.role)
    by_clients: dict[int, list[float]] = {}
    if stream is not None:
        changes = [when for when, _ in recorder.long_users[1:]]
        for end, latency in zip(stream.ends, stream.latencies, strict=True):
            start = end - latency
            if any(start < when <= end for when in changes):
                continue
            by_clients.setdefault(users_at(recorder.long_users, start), []).append(latency)
    return [
        {
            "clients": clients,
            "requests": len(latencies),
            "seconds_per_request": round(sum(latencies) / len(latencies), 6),
        }
        for clients, latencies in sorted(by_clients.items())
        if clients > 0
    ]


def convoy_figures(recorder: Recorder, end: float) -> dict[str, Any]:
    joined = next((when for when, users in recorder.long_users if users > 0), None)
    if joined is None:  # the long user never ran: no convoy to speak of
        keys = ("long_window", "short_rps_before", "short_rps_during", "short_rps_after")
        return {**dict.fromkeys(keys), "long_requests": 0, "long_seconds": None}
    left = next((when for when, users in recorder.long_users if when > joined and users == 0), end)
    short = recorder.streams.get(ShortUser.role)
    ends = short.ends if short else array("d")
    long = recorder.streams.get(LongUser.role)
    long_latencies = (
        [
            latency
            for finish, latency in zip(long.ends, long.latencies, strict=True)
            if joined <= finish - latency and finish <= left
        ]
        if long
        else []
    )
    first = recorder.long_users[0][0]
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


def run_scenario(
    address: Address,
    variant: str,
    scenario: str,
    *,
    duration: float,
    short_n: int = 1,
    long_n: int = 30,
    short_users: int = 1,
    rate: float = 0.0,
) -> dict[str, Any]:
    """Run `scenario` against `variant` at `address` for about `duration` seconds.

    The scenario's stages each last duration/3 (short: one stage of
    duration); Locust's shape ticks once a second, so stages begin on whole
    seconds. `rate` > 0: open loop, requests/s per short user.
    """
    check_variant(variant)
    if scenario not in SCENARIOS:
        raise ValueError(
            f"unknown scenario {scenario!r}; the scenarios are: {', '.join(SCENARIOS)}"
        )
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    if short_users < 1:
        raise ValueError(f"short_users must be >= 1, got {short_users}")
    host, port = address
    options = FibOptions(
        target=variant,
        address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        short_n=short_n,
        long_n=long_n,
        rate=rate,
        scenario=scenario,
        stage_seconds=duration if scenario == "short" else duration / 3.0,
        metrics_port=0,
    ).checked()
    shape = SCENARIOS[scenario](options, short_users)
    parsed = argparse.Namespace(
        **{f"fib_{key}": value for key, value in asdict(options).items()},
        num_users=short_users,
        headless=False,  # the shape's end stops the runner; we quit it
    )
    environment = Environment(
        user_classes=[ShortUser, LongUser],
        shape_class=shape,
        parsed_options=parsed,
        events=Events(),  # type: ignore[no-untyped-call]
    )
    recorder = Recorder(environment)
    environment.events.request.add_listener(recorder.on_request)  # type: ignore[no-untyped-call]
    environment.events.spawning_complete.add_listener(recorder.on_spawning_complete)  # type: ignore[no-untyped-call]
    runner = environment.create_local_runner()

    cpu_start = time.process_time()
    recorder.start = time.perf_counter()
    runner.start_shape()
    shape_greenlet = runner.shape_greenlet
    if shape_greenlet is not None:
        shape_greenlet.join(timeout=shape.duration() + SHUTDOWN_MARGIN)
    end = time.perf_counter() - recorder.start
    cpu_seconds = time.process_time() - cpu_start
    runner.quit()

    by_name: dict[str, dict[str, Any]] = {}
    for stream in recorder.streams.values():
        by_name[stream.name] = {
            "requests": len(stream.latencies) + stream.errors,
            "errors": stream.errors,
            "rps": round(len(stream.latencies) / end, 3),
            "latency_ms": percentiles_ms(stream.latencies),
            "error_messages": dict(stream.error_messages.most_common(5)),
        }
    primary_role = LongUser.role if scenario == "long" else ShortUser.role
    primary = recorder.streams.get(primary_role)
    primary_figures = by_name.get(primary.name) if primary else None
    short = recorder.streams.get(ShortUser.role)
    short_active = end - recorder.long_users[0][0]
    result: dict[str, Any] = {
        "variant": variant,
        "scenario": scenario,
        "address": options.address,
        "duration_s": round(end, 3),
        "settings": {
            "short_n": short_n,
            "long_n": long_n,
            "short_users": short_users,
            "rate": rate,
            "stage_seconds": round(options.stage_seconds, 3),
        },
        "requests": sum(figures["requests"] for figures in by_name.values()),
        "errors": sum(figures["errors"] for figures in by_name.values()),
        "rps": primary_figures["rps"] if primary_figures else 0.0,
        "latency_ms": primary_figures["latency_ms"]
        if primary_figures
        else percentiles_ms(array("d")),
        "by_name": by_name,
        "timeline": timeline(recorder, end),
        "loadgen_cpu_percent": round(100.0 * cpu_seconds / end, 1),
        "asked_rps": round(rate * short_users, 3) if rate > 0 and scenario != "long" else None,
        "achieved_rps": (
            round((len(short.latencies) + short.errors) / short_active, 3) if short else 0.0
        ),
        "locust_version": locust.__version__,
    }
    if scenario == "long":
        stages = long_stages(recorder)
        result["stages"] = stages
        result["clients"] = [stage["clients"] for stage in stages]
        result["seconds_per_request"] = [stage["seconds_per_request"] for stage in stages]
    if scenario == "convoy":
        result.update(convoy_figures(recorder, end))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.compare.engine",
        description="Run one scenario with Locust as a library; print the figures as JSON.",
    )
    parser.add_argument("--variant", required=True, help="variant name (the label of the figures)")
    parser.add_argument(
        "--address", help="host:port to load (default: the variant's FIB_TARGETS address)"
    )
    parser.add_argument("--scenario", required=True, choices=tuple(SCENARIOS))
    parser.add_argument("--duration", type=float, required=True, help="seconds in all")
    parser.add_argument("--short-n", type=int, default=1)
    parser.add_argument("--long-n", type=int, default=30)
    parser.add_argument("--short-users", type=int, default=1)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop: requests/s per short user"
    )
    parser.add_argument("--verbose", action="store_true", help="Locust's log on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        address = parse_address(args.address) if args.address else resolve(args.variant)
        result = run_scenario(
            address,
            args.variant,
            args.scenario,
            duration=args.duration,
            short_n=args.short_n,
            long_n=args.long_n,
            short_users=args.short_users,
            rate=args.rate,
        )
    except (TargetError, ValueError) as error:
        parser.error(str(error))
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
