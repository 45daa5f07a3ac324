# loadtest/toolbox/servers.py
#
# The variants under test, as both runners see them: started as
# local processes on free ports, found in the compose network, or given as
# addresses; checked to answer; and read from their own /metrics (docs/design.md
# §4): before and after each run, and every SAMPLE_PERIOD during a long run so
# that each stage gets its own server CPU.

from __future__ import annotations

import bisect
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

from loadtest.swarm.client import LineConnection, fib_value
from loadtest.swarm.targets import CONTAINER_PORT, TargetError, parse_address
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.machine import format_cpus
from services import PYTHON_NEEDED, VARIANTS
from services.health import check as health_check

SERVER_METRICS_PORT = 9100  # docs/design.md §2 default, also inside every container


@dataclass(frozen=True)
class Target:
    """Where one variant answers, and where its /metrics are (None: unknown)."""

    variant: str
    host: str
    port: int
    metrics_url: str | None
    # Started by local_variant: the process it started (`docker run` for a
    # container) and the container's name (None: a plain process).
    pid: int | None = None
    container: str | None = None


# The image compose builds for the variants that need a newer Python
# (docker-compose.yml: threads-interppool builds it).
NEWER_PYTHON_IMAGE = "fiblab-services-py3.14:latest"


ROOT = Path(__file__).resolve().parents[2]


def python_image(version: str) -> str:
    """The variants image on CPython `version`, built from this checkout
    (services/Dockerfile's PYTHON_VERSION); its tag."""
    if not re.fullmatch(r"3\.\d+", version):
        raise LabError(f"--python {version!r}: expected a CPython version such as 3.14")
    tag = f"fiblab-services:py{version}"
    print(f"building {tag} (services/Dockerfile on python:{version}-slim)", file=sys.stderr)
    try:
        built = subprocess.run(
            ["docker", "build", "--quiet", "--build-arg", f"PYTHON_VERSION={version}",
             "-f", "services/Dockerfile", "-t", tag, "."],
            cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise LabError("--python needs Docker: no docker client on PATH") from None
    if built.returncode:
        raise LabError(f"--python {version}: building {tag} failed: {built.stderr[-800:]}")
    return tag


def local_command(
    variant: str,
    extra_args: Sequence[str],
    image: str | None = None,
    cpus: set[int] | None = None,
    wrapper: Sequence[str] = (),
    docker_options: Sequence[str] = (),
    launcher: Sequence[str] = (),
) -> tuple[list[str], str | None]:
    """`python -m services <variant>` on free ports of 127.0.0.1: here, or in
    `image`, or, for a variant that needs a newer Python than this one, in
    its compose image. A container runs with `--network host`: the same
    ports, no proxy between. Returns the command and the container's name
    (None: a plain process). `cpus`: a container gets them as its cpuset (a
    plain process is pinned by local_variant). `wrapper`: Python arguments
    that run the server through another module (`-m services.sampler ...`),
    which takes the variant and its flags last; `docker_options`: more
    options of `docker run`; `launcher`: a program and its arguments that
    run the Python command as their own child (`py-spy record ... --`), its
    paths valid here and in a container alike."""
    flags = [variant, "--port", "0", "--metrics-port", "0", *extra_args]
    module = list(wrapper) or ["-m", "services"]
    if image is None:
        needed = PYTHON_NEEDED.get(variant)
        if needed is None or sys.version_info >= needed:
            return [*launcher, sys.executable, *module, *flags], None
        image = NEWER_PYTHON_IMAGE
        found = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, check=False
        )
        if found.returncode:
            raise LabError(
                f"{variant} needs Python {needed[0]}.{needed[1]} (this is "
                f"{sys.version.split()[0]}) and its image {image} is not built: "
                f"`docker compose build {variant}` builds it"
            )
    name = f"fiblab-compare-{os.getpid()}-{variant}"
    # The image's entrypoint is `python -m services`; a wrapper or a launcher replaces it.
    program = [*launcher, "python", *module] if wrapper or launcher else []
    return [
        "docker", "run", "--rm", "--name", name, "--network", "host",
        "--env", "FIB_HOST=127.0.0.1", *docker_options,
        *(["--cpuset-cpus", format_cpus(cpus)] if cpus else []),
        *(["--entrypoint", program[0], image, *program[1:]] if program else [image]), *flags,
    ], name  # fmt: skip


@contextlib.contextmanager
def local_variant(
    variant: str,
    extra_args: Sequence[str] = (),
    image: str | None = None,
    cpus: set[int] | None = None,
    wrapper: Sequence[str] = (),
    docker_options: Sequence[str] = (),
    launcher: Sequence[str] = (),
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Target]:
    """A variant on free ports of 127.0.0.1, in its own process group; on
    `cpus` only when given (its pool workers inherit them). `wrapper`,
    `docker_options` and `launcher`: see local_command. `stop_signal` ends
    it (SIGTERM: the server drains; py-spy writes its profile on SIGINT
    only, and `docker run` relays either)."""
    command, container = local_command(
        variant, extra_args, image, cpus, wrapper, docker_options, launcher
    )
    pin = cpus if cpus and container is None else None
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, pin)) if pin else None,
    )  # fmt: skip
    assert process.stdout is not None
    output = process.stdout
    drained = False
    try:
        metrics_url = None
        for line in output:
            if line.startswith("metrics on "):
                metrics_url = line.split()[-1]
            if match := re.match(r"listening on (\S+):(\d+)", line):
                # Keep reading its output so that it never blocks on a full pipe.
                _drain(output)
                drained = True
                yield Target(variant, match[1], int(match[2]), metrics_url, process.pid, container)
                break
        else:
            raise LabError(f"{variant} did not start (exit code {process.wait()})")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, stop_signal)
        try:
            process.wait(15)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # pool workers included
            if container is not None:  # `docker run` relays the signal; this if it did not stop
                subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
            if not drained:
                output.close()


def _drain(output: IO[str]) -> None:
    """Read `output` to its end in a thread, then close it."""

    def read_to_end() -> None:
        with output:
            output.read()

    threading.Thread(target=read_to_end, daemon=True).start()


def parse_targets(specs: Sequence[str], metrics_port: int) -> dict[str, Target]:
    """`--target VARIANT=HOST:PORT` (repeatable); metrics on HOST:metrics_port."""
    targets = {}
    for spec in specs:
        variant, sep, address = spec.partition("=")
        if not sep or variant not in VARIANTS:
            raise LabError(
                f"--target {spec!r}: expected VARIANT=HOST:PORT with VARIANT one of "
                f"{', '.join(VARIANTS)}"
            )
        try:
            host, port = parse_address(address)
        except TargetError as error:
            raise LabError(f"--target {spec!r}: {error}") from None
        targets[variant] = Target(variant, host, port, f"http://{host}:{metrics_port}/metrics")
    return targets


def compose_target(variant: str) -> Target:
    """The service of that name inside the compose network (or deploy/k8s's namespace)."""
    return Target(
        variant, variant, CONTAINER_PORT, f"http://{variant}:{SERVER_METRICS_PORT}/metrics"
    )


def wait_until_answering(target: Target, timeout: float = 60.0) -> None:
    """Until fib(10) is answered right (the containers' health check), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while (problem := health_check(target.host, target.port, timeout=30)) is not None:
        if time.monotonic() >= deadline:
            raise LabError(f"{target.variant} does not answer: {problem}")
        time.sleep(0.5)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


CPU_METRIC = "fib_cpu_seconds_total"
GIL_WAIT_METRIC = "fib_gil_wait_seconds_total"
GIL_PROBE_METRIC = "fib_gil_probe_seconds_total"
MEMORY_METRIC = "fib_resident_memory_bytes"  # the server's tree, pool workers included
MIB = 1 << 20


# Seconds between scrapes during a long run. The server's CPU rate steps at
# a stage boundary; interpolating between scrapes this far apart puts at
# most about a tenth of a CPU-second in the wrong stage, against stages of
# a few seconds; more often would cost the server CPU (a scrape folds its
# tallies) for nothing.
SAMPLE_PERIOD = 0.2
# Seconds between scrapes during any other run: enough for the peak of the
# server's resident memory, which moves slowly, and Prometheus' own rate in
# the compose stack (a scrape costs the server a little CPU).
MEMORY_SAMPLE_PERIOD = 1.0


def scrape(target: Target) -> Samples:
    """Every sample of the variant's /metrics, keyed by (name, labels); {} if unknown."""
    if target.metrics_url is None:
        return {}
    try:
        with urllib.request.urlopen(target.metrics_url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass(frozen=True)
class Scrape:
    at: float  # time.monotonic() halfway through the scrape
    samples: Samples


def timed_scrape(target: Target) -> Scrape:
    sent = time.monotonic()
    samples = scrape(target)
    return Scrape((sent + time.monotonic()) / 2, samples)


class Sampler:
    """The server's /metrics at the start, every `period` s in a thread, and at the end.

    period None: the start and the end only.
    """

    def __init__(self, target: Target, period: float | None) -> None:
        self.target = target
        self.period = period
        self.scrapes: list[Scrape] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self.scrapes.append(timed_scrape(self.target))
        if self.period is not None and self.target.metrics_url is not None:
            self._thread = threading.Thread(target=self._run, args=(self.period,), daemon=True)
            self._thread.start()
        return self

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.scrapes.append(timed_scrape(self.target))

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.scrapes.append(timed_scrape(self.target))


def cpu_at(scrapes: Sequence[Scrape], t: float) -> float | None:
    """The server's cumulative CPU seconds at monotonic time t, linear between scrapes.

    None outside the scraped span or when no scrape has the metric.
    """
    points = [
        (one.at, total)
        for one in scrapes
        if (total := metric_total(one.samples, CPU_METRIC)) is not None
    ]
    if not points or not points[0][0] <= t <= points[-1][0]:
        return None
    index = bisect.bisect_left([at for at, _ in points], t)
    if points[index][0] == t:
        return points[index][1]
    (t0, cpu0), (t1, cpu1) = points[index - 1], points[index]
    return cpu0 + (cpu1 - cpu0) * (t - t0) / (t1 - t0)


def cpu_between(scrapes: Sequence[Scrape], start: float, stop: float) -> float | None:
    first, last = cpu_at(scrapes, start), cpu_at(scrapes, stop)
    return None if first is None or last is None else last - first


def memory_peak_mib(
    scrapes: Sequence[Scrape], start: float | None = None, stop: float | None = None
) -> float | None:
    """The most resident memory the server's tree had in any scrape (MiB) taken
    between `start` and `stop` (monotonic; None: no bound); in a window no
    scrape fell in, the scrapes nearest its two ends. None when no scrape has
    the metric: missing, not zero."""
    points = [
        (one.at, total)
        for one in scrapes
        if (total := metric_total(one.samples, MEMORY_METRIC)) is not None
    ]
    low = -math.inf if start is None else start
    high = math.inf if stop is None else stop
    inside = [total for at, total in points if low <= at <= high]
    if not inside and points:
        inside = [min(points, key=lambda point: abs(point[0] - bound))[1] for bound in (low, high)]
    return round(max(inside) / MIB, 1) if inside else None


def nearest_scrape(scrapes: Sequence[Scrape], t: float) -> Samples:
    return min(scrapes, key=lambda one: abs(one.at - t)).samples if scrapes else {}


def metric_total(samples: Samples, name: str) -> float | None:
    values = [value for (sample, _labels), value in samples.items() if sample == name]
    return sum(values) if values else None


def delta(before: dict[Any, float], after: dict[Any, float], name: str) -> float | None:
    keys = [key for key in after if key[0] == name]
    if not keys:
        return None
    return sum(after[key] - before.get(key, 0.0) for key in keys)


def server_latency_ms(
    before: dict[Any, float], after: dict[Any, float], n: int
) -> dict[str, float | None] | None:
    """p50 and p99 of fib(n) requests from the server's histogram (bucket upper bounds)."""
    buckets: dict[float, float] = {}
    for (name, labels), value in after.items():
        label = dict(labels)
        if name == "fib_request_duration_seconds_bucket" and label.get("n") == str(n):
            bound = float(label["le"])
            buckets[bound] = value - before.get((name, labels), 0.0)
    if not buckets or max(buckets.values()) <= 0:
        return None
    total = buckets[math.inf]
    result: dict[str, float | None] = {}
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        bound = next(b for b in sorted(buckets) if buckets[b] >= q * total)
        result[key] = None if math.isinf(bound) else round(bound * 1000.0, 3)
    return result


def long_seconds_on(target: Target, n: int) -> float:
    """One fib(n) request to the server alone: the seconds until its reply."""
    with LineConnection((target.host, target.port), reply_timeout=600) as connection:
        connection.connect()
        started = time.perf_counter()
        try:
            reply = connection.ask(b"%d\n" % n)
        except OSError as error:
            raise LabError(f"{target.variant} did not answer fib({n}): {error}") from None
        took = time.perf_counter() - started
    if reply != str(fib_value(n)).encode():
        raise LabError(f"{target.variant} answered fib({n}) with {reply!r}")
    return took


def server_info(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, str]:
    """What the variant runs, from its fib_info labels (the runner's Python may differ)."""
    for name, labels in samples:
        if name == "fib_info":
            return {key: value for key, value in labels if key != "variant"}
    return {}
