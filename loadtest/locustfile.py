# loadtest/locustfile.py
#
# What `locust -f loadtest/locustfile.py` loads: the lab's users and
# scenario shapes, its `--fib-*` options, and the client-side exporter.
#
#   locust -f loadtest/locustfile.py --class-picker        web UI on :8089: pick a
#        variant (drop-down), user classes or a scenario shape, start
#   locust -f loadtest/locustfile.py --headless -u 1 -t 10s --fib-target coro
#   locust -f loadtest/locustfile.py --headless --fib-scenario convoy --fib-stage-seconds 5
#
# The variant's address: FIB_TARGETS (local | compose | a map) or --fib-address.

from __future__ import annotations

from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import Runner, WorkerRunner

from loadtest.swarm import exporter
from loadtest.swarm.shapes import SCENARIOS, ConvoyScenario, LongScenario, ShortScenario
from loadtest.swarm.users import FibOptions, LongUser, ShortUser, add_arguments

__all__ = ["ConvoyScenario", "LongScenario", "LongUser", "ShortScenario", "ShortUser"]


def on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def on_init(environment: Environment, runner: Runner, **_: Any) -> None:
    options = FibOptions.of(environment)  # bad options stop Locust here, with the reason
    if not isinstance(runner, WorkerRunner):
        options.address_of_target()
        choose_scenario(environment, runner, options.scenario)
    exporter.attach(
        environment,
        host=options.metrics_host,
        port=options.metrics_port,
        linger_seconds=options.metrics_linger,
    )


events.init_command_line_parser.add_listener(on_parser)  # type: ignore[no-untyped-call]
events.init.add_listener(on_init)  # type: ignore[no-untyped-call]


def choose_scenario(environment: Environment, runner: Runner, scenario: str) -> None:
    """Run the shape of --fib-scenario, or none (Locust would take the first one found)."""
    shapes = environment.available_shape_classes or {}
    for shape in shapes.values():
        shape.runner = runner
    environment.shape_class = (
        shapes.get(SCENARIOS[scenario].__name__) if scenario in SCENARIOS else None
    )
