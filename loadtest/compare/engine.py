# loadtest/compare/engine.py
#
# One scenario run with Locust as a library, for the comparison runner
# (docs/design.md §6): an Environment and a LocalRunner drive the lab's users
# through the scenario's shape for a fixed time, and every request's own
# timing (microsecond resolution, not Locust's rounded one) is kept and
# summed up into a JSON-able dict:
#
#   by_name      per request name: requests, errors, rps, latency_ms {p50 .. max}
#   timeline     per whole second: short req/s and long users present
#   long         stages [{clients, window, duration_s, requests, rps,
#                latency_ms, seconds_per_request}], each stage on its own
#   convoy       short_rps_before / during / after, long_seconds, long_window
#   loadgen_cpu_percent, asked_rps (open loop) and achieved_rps: was the
#                load generator the limit?
#   monotonic_start  time.monotonic() at the run's second 0, so that the
#                runner can place the stages on its own clock
#
# The samples are kept and the figures made in loadtest.swarm.recording.
#
#   python -m loadtest.compare.engine --address 127.0.0.1:25000 --variant threads \
#       --scenario convoy --duration 10 [--long-n N] [--rate R]
#
# prints that dict as JSON on stdout. The comparison runner calls it in a
# subprocess: importing Locust monkey-patches the process with gevent.

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from array import array
from dataclasses import asdict
from typing import Any

import locust
from locust.env import Environment
from locust.event import Events

from loadtest.swarm import bucketing
from loadtest.swarm.recording import (
    Recorder,
    convoy_figures,
    long_stages,
    percentiles_ms,
    timeline,
)
from loadtest.swarm.shapes import SCENARIOS
from loadtest.swarm.targets import (
    Address,
    TargetError,
    check_variant,
    format_address,
    parse_address,
    resolve,
)
from loadtest.swarm.users import FibOptions, LongUser, ShortUser

SHUTDOWN_MARGIN = 30.0  # seconds past the scenario's length before the run is cut


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
    options = FibOptions(
        target=variant,
        address=format_address(address),
        short_n=short_n,
        long_n=long_n,
        rate=rate,
        scenario=scenario,
        stage_seconds=duration if scenario == "short" else duration / 3.0,
        metrics_port=0,
    ).checked()
    shape = SCENARIOS[scenario](options, short_users)
    bucketing.install()  # Locust's own stats as the locustfile keeps them (figures: recording)
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
    recorder = Recorder(environment, long_user=LongUser.__name__)
    environment.events.request.add_listener(recorder.on_request)  # type: ignore[no-untyped-call]
    environment.events.spawning_complete.add_listener(recorder.on_spawning_complete)  # type: ignore[no-untyped-call]
    environment.events.test_stopping.add_listener(recorder.on_test_stopping)  # type: ignore[no-untyped-call]
    runner = environment.create_local_runner()

    cpu_start = time.process_time()
    recorder.start = time.perf_counter()
    monotonic_start = time.monotonic()
    runner.start_shape()
    shape_greenlet = runner.shape_greenlet
    if shape_greenlet is not None:
        shape_greenlet.join(timeout=shape.duration() + SHUTDOWN_MARGIN)
    elapsed = time.perf_counter() - recorder.start
    cpu_seconds = time.process_time() - cpu_start
    # The load ends when the shape began stopping the users, not when that is done.
    end = recorder.stopped if recorder.stopped is not None else elapsed
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
    long = recorder.streams.get(LongUser.role)
    short_active = end - recorder.long_users[0][0]
    result: dict[str, Any] = {
        "variant": variant,
        "scenario": scenario,
        "address": options.address,
        "duration_s": round(end, 3),
        "monotonic_start": monotonic_start,
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
        "timeline": timeline(short, recorder.long_users, end),
        "loadgen_cpu_percent": round(100.0 * cpu_seconds / elapsed, 1),
        "asked_rps": round(rate * short_users, 3) if rate > 0 and scenario != "long" else None,
        "achieved_rps": (
            round((len(short.latencies) + short.errors) / short_active, 3) if short else 0.0
        ),
        "locust_version": locust.__version__,
    }
    if scenario == "long":
        stages = long_stages(long, recorder.long_users, end)
        result["stages"] = stages
        result["clients"] = [stage["clients"] for stage in stages]
        result["seconds_per_request"] = [stage["seconds_per_request"] for stage in stages]
    if scenario == "convoy":
        result.update(convoy_figures(short, long, recorder.long_users, end))
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
