# loadtest/swarm/users.py
#
# Locust users for the line protocol (docs/design.md §5), and the options they read.
#
#   ShortUser  fib(1) back to back: the talk's perf2 (n: --fib-short-n)
#   LongUser   fib(30) back to back: the talk's perf1 (n: --fib-long-n)
#
# ShortUser weighs 3, LongUser 1: with both classes, Locust's first user is
# a short one, the second a long one (the talk's convoy), then three short
# users for each long one.
#
# The target is Locust's Host (--host, the web UI's Host field) when given:
# tcp://HOST:PORT or a variant (coro, tcp://coro); else --fib-target (and
# --fib-address).
#
# Each user holds ONE persistent connection to the target and reports
# every request through events.request (request_type "fib", name "fib(N)"),
# with the response time in float milliseconds (not rounded) and the variant
# and the user's role in the request context (the exporter and the engine
# read them). ERR replies, wrong replies and connection failures are failures
# carrying the server's text; after a close the next request reconnects.
#
# Closed loop (default): the next request goes out when the reply is in; a
# good reply is reported while the next request is with the server, so that
# Locust's bookkeeping is not in the loop's path.
# Open loop (--fib-rate R, short users): requests are due at fixed times,
# R per second, and each latency counts from the time its request was due,
# as wrk2 does, so a server stall shows as the latency its clients would
# have seen (no coordinated omission).

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from locust import User, constant, task
from locust.env import Environment

from loadtest.swarm.client import LineConnection, ServerError, WrongReply, fib_value, yield_to_hub
from loadtest.swarm.exporter import DEFAULT_PORT
from loadtest.swarm.targets import Target, check_variant, choose_target
from services import VARIANTS

REQUEST_TYPE = "fib"
# Seconds of requests per run of the task. A lone short user that takes its
# replies in the kernel hands over to gevent's hub after each run, so that
# Locust's own greenlets (shape ticks, reports, web UI, the master link) run
# at least this often; Locust's loop and that hand-over (~30 µs) cost ~0.5%.
# (Other users' replies do not wait for it: see loadtest.swarm.client.) Users that
# wait in the hub anyway take longer runs: between runs Locust's loop may
# leave a long user's next request unsent for a few ms, and a server idle
# for those ms serves short requests at full speed (hiding a convoy).
TASK_SLICE = 0.005
COOPERATIVE_TASK_SLICE = 1.0
# A ShortUser alone in its process first waits for each reply in the kernel,
# up to this long (see loadtest.swarm.client): with several, they would hold each
# other up, so then all wait cooperatively.
SOLO_KERNEL_WAIT_MS = 1
RECONNECT_PAUSE = 0.2  # after a failure on a new connection (refused, ERR busy)


class OptionError(ValueError):
    """A `--fib-*` option with a value that cannot be used."""


@dataclass(frozen=True)
class FibOptions:
    """The lab's Locust options (all `--fib-*`), with their defaults."""

    target: str = "threads"
    address: str = ""
    short_n: int = 1
    long_n: int = 30
    rate: float = 0.0
    scenario: str = "none"
    stage_seconds: float = 10.0
    metrics_port: int = DEFAULT_PORT
    metrics_host: str = "127.0.0.1"
    metrics_linger: float = 2.0

    @classmethod
    def of(cls, environment: Environment) -> FibOptions:
        """The options in effect (the web UI may have changed them since start)."""
        parsed = environment.parsed_options
        values = {
            name: getattr(parsed, "fib_" + name)
            for name in cls.__dataclass_fields__
            if parsed is not None and getattr(parsed, "fib_" + name, None) is not None
        }
        return cls(**values).checked()

    def checked(self) -> FibOptions:
        check_variant(self.target)
        if not self.rate >= 0:
            raise OptionError(f"--fib-rate must be >= 0 requests/s per user, got {self.rate}")
        if not self.stage_seconds > 0:
            raise OptionError(f"--fib-stage-seconds must be > 0, got {self.stage_seconds}")
        return self


def target_of(environment: Environment) -> Target:
    """What `environment` loads: its Host when set, else --fib-target (and --fib-address)."""
    options = FibOptions.of(environment)
    return choose_target(environment.host, options.target, address=options.address or None)


def add_arguments(parser: Any) -> None:
    """The `--fib-*` options on Locust's parser, in a group of their own in
    --help, shown in the web UI unless hidden.

    Each also reads an env var, FIB_<NAME> (--fib-long-n: FIB_LONG_N), but
    the port's is FIB_LOCUST_METRICS_PORT: FIB_METRICS_PORT is a variant's.
    """
    group = parser.add_argument_group(
        "fiblab options (loadtest/locustfile.py)",
        "Locust's --host (or the web UI's Host) names the target: tcp://HOST:PORT, or a "
        "variant (coro or tcp://coro) at its address from FIB_TARGETS (local, compose, "
        "kubernetes or a map). With no Host, --fib-target (and --fib-address) do.",
    )

    def option(*flags: str, include_in_web_ui: bool = True, **settings: Any) -> None:
        action = group.add_argument(*flags, **settings)
        # What Locust's own parser records for the web UI (a group's add_argument
        # does not take these keywords).
        action.include_in_web_ui = include_in_web_ui
        action.is_secret = action.is_required = action.is_multiple = False

    # Locust answers --help before it loads a locustfile, so its --help never
    # lists these options (locustio/locust#2917); this prints the help with them.
    option(
        "--fib-help",
        action="help",
        include_in_web_ui=False,
        help="show this help, with the lab's --fib-* options, and exit",
    )
    # Not in the web UI: there the Host field names the target, and the
    # header shows the Host; a second field could load one variant while the
    # header shows another.
    option(
        "--fib-target",
        choices=VARIANTS,
        default=FibOptions.target,
        env_var="FIB_TARGET",
        include_in_web_ui=False,
        help="variant to load when no --host is given (its address comes from FIB_TARGETS: "
        "local, compose, kubernetes or a map); --host tcp://HOST:PORT or --host VARIANT wins",
    )
    option(
        "--fib-short-n",
        type=int,
        default=FibOptions.short_n,
        env_var="FIB_SHORT_N",
        help="n of ShortUser requests (the talk's perf2 asks fib(1))",
    )
    option(
        "--fib-long-n",
        type=int,
        default=FibOptions.long_n,
        env_var="FIB_LONG_N",
        help="n of LongUser requests (the talk's perf1 asks fib(30))",
    )
    option(
        "--fib-rate",
        type=float,
        default=FibOptions.rate,
        env_var="FIB_RATE",
        help="open loop: requests/s per ShortUser, latency from each intended send time "
        "(0 = closed loop)",
    )
    option(
        "--fib-stage-seconds",
        type=float,
        default=FibOptions.stage_seconds,
        env_var="FIB_STAGE_SECONDS",
        help="length of each stage of a scenario shape",
    )
    option(
        "--fib-address",
        default="",
        env_var="FIB_ADDRESS",
        include_in_web_ui=False,
        help="host:port to load as --fib-target instead of its FIB_TARGETS address "
        "(when no --host is given)",
    )
    option(
        "--fib-scenario",
        choices=("none", "short", "long", "convoy"),
        default=FibOptions.scenario,
        env_var="FIB_SCENARIO",
        include_in_web_ui=False,
        help="run a scenario shape (in the web UI: start with --class-picker and pick it)",
    )
    option(
        "--fib-metrics-port",
        type=int,
        default=FibOptions.metrics_port,
        env_var="FIB_LOCUST_METRICS_PORT",
        include_in_web_ui=False,
        help="port of the master's client-side /metrics (0 = none)",
    )
    option(
        "--fib-metrics-host",
        default=FibOptions.metrics_host,
        env_var="FIB_METRICS_HOST",
        include_in_web_ui=False,
        help="address /metrics listens on (containers: 0.0.0.0)",
    )
    option(
        "--fib-metrics-linger",
        type=float,
        default=FibOptions.metrics_linger,
        env_var="FIB_METRICS_LINGER",
        include_in_web_ui=False,
        help="seconds /metrics stays up after the run, for a last scrape",
    )


def request_name(n: int) -> str:
    return f"fib({n})"


class FibUser(User):
    """One simulated client: one connection, requests of one n."""

    abstract = True
    # What the web UI shows as the Host until one is typed: the locustfile
    # sets it to the Host of the target in use. Users load target_of(environment).
    host: str | None = None
    wait_time = constant(0)
    role: ClassVar[str]
    solo_kernel_wait_ms: ClassVar[int] = 0
    running: ClassVar[Counter[type[FibUser]]] = Counter()  # users of each class in this process

    def n_of(self, options: FibOptions) -> int:
        raise NotImplementedError

    def rate_of(self, options: FibOptions) -> float:
        return 0.0

    def on_start(self) -> None:
        options = FibOptions.of(self.environment)
        n = self.n_of(options)
        self.line = f"{n}\n".encode()
        self.name = request_name(n)
        expected = fib_value(n)
        self.expected = None if expected is None else str(expected).encode()
        target = target_of(self.environment)
        self.connection = LineConnection(target.address)
        self.request_context = {"variant": target.variant, "role": self.role}
        rate = self.rate_of(options)
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_due = time.perf_counter()
        self.fire = self.environment.events.request.fire
        self.running[type(self)] += 1

    def on_stop(self) -> None:
        self.running[type(self)] -= 1
        self.connection.close()

    @task
    def ask(self) -> None:
        """Requests for a slice of time: back to back (closed loop) or when due (open loop)."""
        alone = self.running[type(self)] == 1
        self.connection.kernel_wait_ms = self.solo_kernel_wait_ms if alone else 0
        slice_seconds = TASK_SLICE if self.connection.kernel_wait_ms else COOPERATIVE_TASK_SLICE
        until = time.perf_counter() + slice_seconds
        if self.interval:
            self.ask_when_due(until)
        else:
            self.ask_back_to_back(until)
        if self.connection.kernel_wait_ms:
            yield_to_hub()

    def ask_back_to_back(self, until: float) -> None:
        """Closed loop. A good reply is reported while the server works on the
        next request, so Locust's bookkeeping (several µs) does not come
        between requests. Were it ever longer than the server takes to reply,
        the next reply would be seen late by the difference; on loopback a
        reply takes tens of µs."""
        done: tuple[float, float, bytes] | None = None  # (start, end, reply) not yet reported
        try:
            while time.perf_counter() < until:
                was_connected = self.connection.connected
                start = time.perf_counter()
                try:
                    self.connection.send(self.line)
                    if done is not None:
                        self.report(*done)
                        done = None
                    reply = self.connection.receive()
                except OSError as error:
                    end = time.perf_counter()
                    if done is not None:
                        self.report(*done)
                        done = None
                    self.report(start, end, b"", error, was_connected)
                    continue
                end = time.perf_counter()
                if reply == self.expected:
                    done = (start, end, reply)
                else:  # a failure is reported at once: it may pause before the next request
                    self.report(start, end, reply, None, was_connected)
        finally:
            if done is not None:
                self.report(*done)

    def ask_when_due(self, until: float) -> None:
        """Open loop: each request's latency counts from the time it was due."""
        while self.next_due < until:
            delay = self.next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # gevent's, once Locust has patched time
            was_connected = self.connection.connected
            error: OSError | None = None
            try:
                reply = self.connection.ask(self.line)
            except OSError as failure:
                reply, error = b"", failure
            self.report(self.next_due, time.perf_counter(), reply, error, was_connected)
            self.next_due += self.interval

    def report(
        self,
        start: float,
        end: float,
        reply: bytes,
        error: OSError | None = None,
        was_connected: bool = True,
    ) -> None:
        """Fire Locust's request event for one request (the reply checked here)."""
        exception: Exception | None = error
        if exception is None and reply != self.expected:
            text = reply.decode("ascii", "replace")
            exception = ServerError(text) if reply.startswith(b"ERR ") else WrongReply(text)
        self.fire(
            request_type=REQUEST_TYPE,
            name=self.name,
            response_time=(end - start) * 1000.0,
            response_length=len(reply),
            exception=exception,
            context=self.request_context,
        )
        if exception is not None and not was_connected:
            # A refused or busy server: do not hammer it with reconnects.
            time.sleep(RECONNECT_PAUSE)


class ShortUser(FibUser):
    """fib(1) back to back, or at --fib-rate per second (the talk's perf2)."""

    role = "short"
    weight = 3
    solo_kernel_wait_ms = SOLO_KERNEL_WAIT_MS

    def n_of(self, options: FibOptions) -> int:
        return options.short_n

    def rate_of(self, options: FibOptions) -> float:
        return options.rate


class LongUser(FibUser):
    """fib(30) back to back (the talk's perf1)."""

    role = "long"
    weight = 1

    def n_of(self, options: FibOptions) -> int:
        return options.long_n


USER_CLASSES: tuple[type[FibUser], ...] = (ShortUser, LongUser)
