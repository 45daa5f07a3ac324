# services/core/settings.py
#
# Settings come from FIB_* environment variables (what containers set) and
# command-line flags override them (what people type). A bad value in either
# is a clear error naming the variable or flag, before anything starts.

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

from .timeline import check_folder


def cpus_available() -> int:
    """CPUs this process may run on (affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Settings:
    variant: str
    host: str = "127.0.0.1"
    port: int = 25000
    metrics_port: int = 9100
    max_n: int = 45
    max_line: int = 64
    idle_timeout: float = 300.0
    max_connections: int = 1000
    pool_workers: int = 0  # 0: cpus_available()
    backlog: int = 4096  # the kernel caps it at net.core.somaxconn (4096 since Linux 5.4)
    drain_timeout: float = 8.0
    linger_timeout: float = 2.0
    max_unsent: int = 65536
    yield_every: int = 1  # 0: an event loop's handler answers a whole read at once
    switch_interval: float = 0.0  # 0: leave CPython's default (0.005 s)
    cpu_source: str = "auto"
    gil_probe: bool = True
    timeline: str = ""  # "": off; else the folder of timeline-<pid>.json (timeline.py)
    timeline_events: int = 100_000
    metrics: bool = True

    @property
    def workers(self) -> int:
        return self.pool_workers or cpus_available()


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("a TCP port is 0..65535 (0: any free port)")
    return value


def _at_least(minimum: float, kind: Callable[[str], float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        value = kind(text)
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return check


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError("must be on or off")
    return text == "on"


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return check


# field -> (parser, help). The environment variable is env_var(field).
_OPTIONS: dict[str, tuple[Callable[[str], object], str]] = {
    "host": (str, "address to listen on (containers use 0.0.0.0)"),
    "port": (_port, "TCP port of the line protocol"),
    "metrics_port": (_port, "port of the Prometheus /metrics endpoint"),
    "max_n": (_at_least(0, int), "largest n served; larger gets ERR out-of-range"),
    "max_line": (_at_least(3, int), "bytes allowed before a newline must come"),
    "idle_timeout": (_at_least(0.001, float), "seconds to send a whole line"),
    "max_connections": (_at_least(1, int), "open connections before ERR busy"),
    "pool_workers": (_at_least(0, int), "pool size (0: CPUs available)"),
    "backlog": (_at_least(1, int), "listen() backlog"),
    "drain_timeout": (_at_least(0, float), "seconds to finish work after SIGTERM"),
    "linger_timeout": (
        _at_least(0, float),
        "seconds a closing connection reads and discards input so replies arrive",
    ),
    "max_unsent": (
        _at_least(1024, int),
        "socket send buffer: replies a client has not read before its reading stops",
    ),
    "yield_every": (
        _at_least(0, int),
        "lines an event loop's handler answers before it lets the loop serve others "
        "(0: every line of a read first)",
    ),
    "switch_interval": (_at_least(0, float), "sys.setswitchinterval (0: default)"),
    "cpu_source": (_choice("auto", "cgroup", "process"), "what fib_cpu_seconds_total counts"),
    "gil_probe": (_on_off, "on|off: export how long threads wait for the GIL (fib_gil_*)"),
    "timeline": (
        check_folder,
        "record a timeline of requests and fib calls, written to this folder at exit (empty: off)",
    ),
    "timeline_events": (_at_least(1, int), "events a timeline keeps (its last ones)"),
}


def env_var(name: str) -> str:
    """The environment variable of a setting: FIB_<FIELD>."""
    return f"FIB_{name.upper()}"


def flag(name: str) -> str:
    """The command-line flag of a setting: --<field-with-dashes>."""
    return "--" + name.replace("_", "-")


def _for_argparse(kind: Callable[[str], object]) -> Callable[[str], object]:
    """argparse keeps the message of ArgumentTypeError only."""

    def convert(text: str) -> object:
        try:
            return kind(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None

    return convert


def parse_settings(
    argv: Sequence[str], environ: Mapping[str, str] = os.environ, variants: Sequence[str] = ()
) -> Settings:
    """Settings from the environment, overridden by argv (`<variant> [--flags]`)."""
    defaults = {f.name: f.default for f in fields(Settings)}
    parser = argparse.ArgumentParser(
        prog="python -m services", description="Run one fiblab server variant."
    )
    parser.add_argument("variant", choices=list(variants) or None, help="which server to run")
    for name, (kind, help_text) in _OPTIONS.items():
        env = env_var(name)
        default = defaults[name]
        if env in environ:
            try:
                default = kind(environ[env])
            except ValueError as error:
                parser.error(f"{env}={environ[env]!r}: {error}")
        # The value in force, the environment's when it sets one.
        shown = ("on" if default else "off") if isinstance(default, bool) else "%(default)s"
        parser.add_argument(
            flag(name),
            type=_for_argparse(kind),
            default=default,
            help=f"{help_text} [{env}] (default: {shown})",
        )
    parser.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="serve without instrumentation (default: metrics on)",
    )
    args = parser.parse_args(argv)
    return Settings(**vars(args))
