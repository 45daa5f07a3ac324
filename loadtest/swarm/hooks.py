# loadtest/swarm/hooks.py
#
# What the lab adds to a Locust process, through Locust's own events
# (docs/design.md §5): the --fib-* options on its parser; at init, the
# target (Locust's Host: tcp://HOST:PORT or a variant; else --fib-target)
# checked before anything starts, the scenario shape of --fib-scenario, a
# check of the web UI's start form that refuses a bad Host with a message
# naming it, the client-side exporter; at each start, the target shown in
# the UI's header and logged; at the end of a standalone convoy run, the
# short-request rate before, during and after the long client.

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from locust.env import Environment
from locust.runners import LocalRunner, Runner, WorkerRunner

from loadtest.swarm import exporter
from loadtest.swarm.recording import Recorder, convoy_figures
from loadtest.swarm.shapes import SCENARIOS, ConvoyScenario
from loadtest.swarm.targets import Target, TargetError, check_variant, parse_host
from loadtest.swarm.users import (
    USER_CLASSES,
    FibOptions,
    LongUser,
    OptionError,
    ShortUser,
    add_arguments,
    request_name,
    target_of,
)

log = logging.getLogger("fiblab")


def on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def on_init(environment: Environment, runner: Runner, web_ui: Any = None, **_: Any) -> None:
    worker = isinstance(runner, WorkerRunner)
    try:
        options = FibOptions.of(environment)
        # A worker loads the target the master sends with each start.
        target = None if worker else target_of(environment)
    except (TargetError, OptionError) as error:
        log.error("%s", error)
        raise SystemExit(1) from None  # Locust would log a traceback and go on to exit 1
    if target is None:
        attach_exporter(environment, options, variant=lambda: "")  # the master labels
        return
    run = LabRun(environment, target)
    choose_scenario(environment, runner, options.scenario)
    if web_ui is not None:
        web_ui.app.before_request(run.check_swarm_request)
    hooks = environment.events
    hooks.test_start.add_listener(run.on_test_start)  # type: ignore[no-untyped-call]
    hooks.request.add_listener(run.on_request)  # type: ignore[no-untyped-call]
    hooks.spawning_complete.add_listener(run.on_spawning_complete)  # type: ignore[no-untyped-call]
    hooks.test_stopping.add_listener(run.on_test_stopping)  # type: ignore[no-untyped-call]
    # Before the exporter's: its quit listener lingers for a last scrape.
    hooks.quit.add_listener(run.on_quit)  # type: ignore[no-untyped-call]
    attach_exporter(environment, options, variant=lambda: run.target.variant)


def attach_exporter(
    environment: Environment, options: FibOptions, *, variant: Callable[[], str]
) -> None:
    exporter.attach(
        environment,
        host=options.metrics_host,
        port=options.metrics_port,
        linger_seconds=options.metrics_linger,
        variant=variant,
    )


def choose_scenario(environment: Environment, runner: Runner, scenario: str) -> None:
    """Run the shape of --fib-scenario, or none (Locust would take the first one found)."""
    shapes = environment.available_shape_classes or {}
    for shape in shapes.values():
        shape.runner = runner
    environment.shape_class = (
        shapes.get(SCENARIOS[scenario].__name__) if scenario in SCENARIOS else None
    )


class LabRun:
    """The master's (or a standalone Locust's) view of the runs: which target
    each loads, and a convoy run's figures."""

    def __init__(self, environment: Environment, target: Target) -> None:
        self.environment = environment
        self.target = target
        self.convoy: Recorder | None = None  # recording a convoy run (local runner only)
        self.report: list[str] = []  # a headless run's convoy figures, logged at the very end
        self.show(target)

    def show(self, target: Target) -> None:
        """Make `target` the Host the web UI shows (header, form, class picker).

        With no Host of its own, Locust shows its user classes' host.
        """
        self.target = target
        for user_class in USER_CLASSES:
            user_class.host = target.host

    # -- the web UI's start form ------------------------------------------

    def check_swarm_request(self) -> Any:
        """Before Locust's /swarm: a bad Host fails the start, with a message naming it.

        (A Flask before_request handler: returning a response answers the request.)
        """
        from flask import jsonify, request

        if request.endpoint != "locust.swarm" or request.method != "POST":
            return None
        form = request.form
        try:
            if "host" in form:
                if not form["host"].strip():
                    raise TargetError(
                        "Host is empty: name a variant (e.g. tcp://coro) or tcp://HOST:PORT"
                    )
                parse_host(form["host"])
            elif "fib_target" in form:
                # A start that names the variant alone (the HTTP API) means it,
                # not whatever Host an earlier start typed.
                check_variant(form["fib_target"])
                self.environment.host = None
        except TargetError as error:
            log.error("web UI start refused: %s", error)
            return jsonify({"success": False, "message": str(error), "host": self.environment.host})
        return None

    # -- each run -----------------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        options = FibOptions.of(environment)
        target = target_of(environment)
        if environment.host:
            source = f"Host {environment.host!r}"
        elif options.address:
            source = f"--fib-target {target.variant} at --fib-address {options.address}"
        else:
            source = f"--fib-target {target.variant}, FIB_TARGETS"
        log.info("loading %s (from %s)", target, source)
        self.show(target)
        runner = environment.runner
        convoy = isinstance(environment.shape_class, ConvoyScenario)
        self.convoy = (
            Recorder(environment, long_user=LongUser.__name__)
            if convoy and isinstance(runner, LocalRunner)
            else None
        )
        if convoy and self.convoy is None:
            log.warning("convoy figures: only a standalone Locust (no workers) sees each request")

    def on_request(self, **request: Any) -> None:
        if self.convoy is not None:
            self.convoy.on_request(**request)

    def on_spawning_complete(self, **_: Any) -> None:
        if self.convoy is not None:
            self.convoy.on_spawning_complete()

    def on_test_stopping(self, environment: Environment, **_: Any) -> None:
        """A convoy run's figures, as the users begin to stop: the load ends there."""
        recorder, self.convoy = self.convoy, None
        if recorder is None:
            return
        end = time.perf_counter() - recorder.start
        streams = recorder.streams
        figures = convoy_figures(
            streams.get(ShortUser.role), streams.get(LongUser.role), recorder.long_users, end
        )
        lines = convoy_report(figures, end, FibOptions.of(environment))
        if getattr(environment.parsed_options, "headless", False):
            self.report = lines  # after Locust's own totals, as the run's last words
        else:
            for line in lines:  # while the web UI still shows the log
                log.info("%s", line)

    def on_quit(self, **_: Any) -> None:
        for line in self.report:
            log.info("%s", line)


def convoy_report(figures: dict[str, Any], end: float, options: FibOptions) -> list[str]:
    """A convoy run's figures (loadtest.swarm.recording.convoy_figures) as log lines;
    `end`: the run's length in seconds."""
    short, long = request_name(options.short_n), request_name(options.long_n)
    window = figures["long_window"]
    if window is None:
        return [f"convoy: the long client ({long}) never ran: no convoy figures"]
    joined, left = window

    def rate(key: str, when: str) -> str:
        value = figures[key]
        shown = "none (the run ended first)" if value is None else f"{value:,.1f}"
        return f"convoy: {short} requests/s {when}: {shown}"

    long_seconds = figures["long_seconds"]
    long_time = (
        f"{long_seconds:.3f} s each ({figures['long_requests']} requests)"
        if long_seconds is not None
        else "none completed while it ran"
    )
    return [
        rate("short_rps_before", f"before the long client (0 s to {joined:.1f} s)"),
        rate("short_rps_during", f"during ({joined:.1f} s to {left:.1f} s)"),
        rate("short_rps_after", f"after it left ({left:.1f} s to {end:.1f} s)"),
        f"convoy: long request {long}: {long_time}",
    ]
