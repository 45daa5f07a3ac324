# loadtest/compare/summary.py
#
# The shape of a comparison run's summary.json (docs/design.md §6) as TypedDicts, a
# loader that checks it and says clearly what is wrong, and the grouping of
# runs by (variant, scenario, clients) with median and spread over repeats,
# which the verdicts and the report both read. Fields added later (the
# long stages' own figures, the machine's foreign CPU, `noisy`) are
# optional, so that older summaries still load.

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, TypeGuard, cast

from loadtest.toolbox.formats import variant_order
from loadtest.toolbox.machine import NOISY_FOREIGN_CORES, LoadAverage
from loadtest.toolbox.spread import Spread, spread

Scenario = Literal["short", "long", "convoy"]
Bottleneck = Literal["server", "loadgen"]
SCENARIOS: tuple[Scenario, ...] = ("short", "long", "convoy")
PERCENTILES = ("p50", "p90", "p99", "p999", "max")
NO_REPLY = "no reply in this stage"
NO_WHOLE_REQUEST = "no request ran wholly inside this stage"
# `gil_wait_share` is the GIL probe's own wait (docs/design.md §4): how busy
# the GIL was, not whether a server thread waited. Every table and plot that
# shows it says so in these words; which server threads wait is the
# timeline's figure (docs/design.md §6.6).
GIL_BUSY = "GIL busy (probe)"
GIL_BUSY_NOTE = (
    "GIL busy (probe): the share of the time the server's GIL probe, a thread of its own "
    "that asks for the GIL every millisecond, waits for it (`gil_wait_share`, "
    "docs/design.md §4). It says how busy the GIL was, not that a server thread waited: "
    "a single-threaded loop computing fib inline (coro, asyncio, gevent, asyncio-uvloop, "
    "trio) reads as high as threads though no other server thread waits. Which server threads "
    "wait: the timeline (docs/design.md §6.6)."
)


class LatencyMs(TypedDict):
    # Client side, milliseconds with microsecond resolution; None when a run
    # completed no request.
    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None
    max: float | None


class TimelinePoint(TypedDict):
    t: float  # seconds since the run's start
    short_rps: float
    long_in_progress: int


class Environment(TypedDict):
    cores: int
    python: str
    date: str
    python_build: NotRequired[str]
    implementation: NotRequired[str]
    gil: NotRequired[str]  # "enabled" or "disabled"
    switch_interval: NotRequired[float]
    image: NotRequired[str | None]
    short_n: NotRequired[int]
    long_n: NotRequired[int]
    long_seconds_single: NotRequired[float]  # fib(long_n) alone, seconds
    duration_s: NotRequired[float]
    repeat: NotRequired[int]
    target: NotRequired[str]  # "local", "compose", "kubernetes", "given" or "python VERSION"
    # CPU cores other processes used in the second before the first run, and
    # the 1-minute load average then
    busy_cores_at_start: NotRequired[float | None]
    load_average_at_start: NotRequired[float | None]
    noisy_threshold_cores: NotRequired[float]  # foreign CPU from which a run is noisy
    # Per variant: seconds one fib(long_n) takes on that server alone
    long_seconds_server: NotRequired[dict[str, float]]
    # Per variant, what it runs: its fib_info labels (python, implementation, gil).
    servers: NotRequired[dict[str, dict[str, str]]]


class Run(TypedDict):
    variant: str
    scenario: Scenario
    repeat: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    latency_ms: LatencyMs
    server_cpu_seconds: float | None
    cpu_seconds_per_request: float | None
    loadgen_cpu_percent: float | None
    bottleneck: Bottleneck
    server_latency_ms: NotRequired[dict[str, float | None] | None]
    server_cpu_cores: NotRequired[float | None]
    # The most resident memory of the server's process tree (pool workers
    # included) in any scrape of the run, MiB (None: the server does not
    # export it; absent: a report from before the figure)
    server_memory_peak_mib: NotRequired[float | None]
    # Share of the GIL probe's time it waited for the GIL over the run: how
    # busy the GIL was, not a server thread's wait (None: the variant exports
    # no probe)
    gil_wait_share: NotRequired[float | None]
    asked_rps: NotRequired[float | None]
    # long runs: one run object per clients stage, every figure the stage's own
    clients: NotRequired[int]
    seconds_per_request: NotRequired[float | None]
    stage_window: NotRequired[list[float]]  # [start, end] s since the run's start
    latency_requests: NotRequired[int]  # requests wholly inside the stage (latency, s/request)
    # The machine during the run (all stages of a long run share them)
    foreign_cpu_cores: NotRequired[float | None]  # other processes, cores on average
    steal_cpu_cores: NotRequired[float | None]  # taken by the hypervisor, cores on average
    load_average: NotRequired[LoadAverage]
    noisy: NotRequired[bool]  # foreign_cpu_cores >= noisy_threshold_cores
    # convoy runs
    short_rps_before: NotRequired[float]
    short_rps_during: NotRequired[float]
    long_seconds: NotRequired[float | None]
    long_window: NotRequired[list[float] | None]  # [start, end] s since the run's start
    timeline: NotRequired[list[TimelinePoint]]


# The version of summary.json's shape, in its provenance record
# (docs/design.md §6.11): 1 is the first shape that records what made it.
SCHEMA = 1


class Summary(TypedDict):
    environment: Environment
    runs: list[Run]
    provenance: NotRequired[dict[str, object]]  # docs/design.md §6.11


class SummaryError(ValueError):
    """summary.json does not have the shape of docs/design.md §6."""


# --- loading and checking ---------------------------------------------------


def read_json(path: Path) -> object:
    """A JSON file's content; a SummaryError naming the file when it has none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SummaryError(f"cannot read {path}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise SummaryError(f"{path} is not JSON: {error}") from error


def load_summary(path: Path) -> Summary:
    return check_summary(read_json(path))


def check_summary(data: object) -> Summary:
    """Return `data` typed as a Summary, or raise SummaryError naming the bad field."""
    if not isinstance(data, dict):
        raise SummaryError("summary: expected an object with 'environment' and 'runs'")
    environment = _object(data, "environment", "summary")
    _number(environment, "cores", "environment")
    for field in ("python", "date"):
        if not isinstance(environment.get(field), str):
            raise SummaryError(f"environment.{field}: expected a string")
    for field in ("busy_cores_at_start", "load_average_at_start", "noisy_threshold_cores"):
        if field in environment:
            _number(environment, field, "environment", nullable=field != "noisy_threshold_cores")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise SummaryError("summary.runs: expected a list of run objects")
    for index, run in enumerate(runs):
        _check_run(run, f"runs[{index}]")
    return cast(Summary, data)


def _check_run(run: object, where: str) -> None:
    if not isinstance(run, dict):
        raise SummaryError(f"{where}: expected an object")
    if not isinstance(run.get("variant"), str):
        raise SummaryError(f"{where}.variant: expected a string")
    if run.get("scenario") not in SCENARIOS:
        raise SummaryError(f"{where}.scenario: expected one of {', '.join(SCENARIOS)}")
    if run.get("bottleneck") not in ("server", "loadgen"):
        raise SummaryError(f"{where}.bottleneck: expected 'server' or 'loadgen'")
    for field in ("repeat", "duration_s", "requests", "errors", "rps"):
        _number(run, field, where)
    for field in ("server_cpu_seconds", "cpu_seconds_per_request", "loadgen_cpu_percent"):
        _number(run, field, where, nullable=True)
    latency = _object(run, "latency_ms", where)
    for field in PERCENTILES:
        _number(latency, field, f"{where}.latency_ms", nullable=True)
    if run["scenario"] == "long":
        _number(run, "clients", where)
        _number(run, "seconds_per_request", where, nullable=True)
    for field in (
        "latency_requests", "foreign_cpu_cores", "steal_cpu_cores", "server_memory_peak_mib",
    ):  # fmt: skip
        if field in run:
            _number(run, field, where, nullable=field != "latency_requests")
    if "noisy" in run and not isinstance(run["noisy"], bool):
        raise SummaryError(f"{where}.noisy: expected true or false")
    if "load_average" in run:
        loads = _object(run, "load_average", where)
        for field in ("start", "end"):
            _number(loads, field, f"{where}.load_average", nullable=True)
    if run["scenario"] == "convoy":
        _number(run, "short_rps_before", where)
        _number(run, "short_rps_during", where)
        _number(run, "long_seconds", where, nullable=True)
    for field in ("long_window", "stage_window"):
        window = run.get(field)
        if window is not None and not (
            isinstance(window, list | tuple)
            and len(window) == 2
            and all(_is_number(t) for t in window)
        ):
            raise SummaryError(f"{where}.{field}: expected [start, end] in seconds")
    timeline = run.get("timeline")
    if timeline is not None:
        if not isinstance(timeline, list):
            raise SummaryError(f"{where}.timeline: expected a list")
        for step, point in enumerate(timeline):
            if not isinstance(point, dict):
                raise SummaryError(f"{where}.timeline[{step}]: expected an object")
            for field in ("t", "short_rps"):
                _number(point, field, f"{where}.timeline[{step}]")


def _object(parent: Mapping[str, object], field: str, where: str) -> dict[str, object]:
    value = parent.get(field)
    if not isinstance(value, dict):
        raise SummaryError(f"{where}.{field}: expected an object")
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int to Python, never a figure here
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(
    parent: Mapping[str, object], field: str, where: str, *, nullable: bool = False
) -> None:
    if field not in parent:
        raise SummaryError(f"{where}.{field}: missing")
    value = parent[field]
    if value is None and nullable:
        return
    if not _is_number(value):
        expected = "a finite number or null" if nullable else "a finite number"
        raise SummaryError(f"{where}.{field}: expected {expected}, got {value!r}")


# --- median and spread over repeats -----------------------------------------


def run_number(run: Run, field: str) -> float | None:
    """A numeric top-level field of a run by name; None when absent or null."""
    value = cast(Mapping[str, object], run).get(field)
    return float(value) if _is_number(value) else None


@dataclass(frozen=True)
class RunGroup:
    """The repeats of one (variant, scenario, clients) measurement."""

    variant: str
    scenario: Scenario
    clients: int | None  # the long scenario's stage; None otherwise
    runs: tuple[Run, ...]

    @property
    def label(self) -> str:
        if self.clients is None:
            return self.scenario
        return f"long ×{self.clients}"

    @property
    def loadgen_runs(self) -> int:
        return sum(run["bottleneck"] == "loadgen" for run in self.runs)

    @property
    def loadgen_bound(self) -> bool:
        return self.loadgen_runs > 0

    @property
    def noisy_runs(self) -> int:
        return sum(run.get("noisy") is True for run in self.runs)

    @property
    def noisy(self) -> bool:
        """Other processes kept the machine busy in at least one repeat (marked ‡)."""
        return self.noisy_runs > 0

    @property
    def only_noisy(self) -> bool:
        """Every repeat ran on a busy machine: no quiet figure to judge by."""
        return bool(self.runs) and self.noisy_runs == len(self.runs)

    @property
    def gap(self) -> str | None:
        """What a long stage lacks, in words: a stage with no reply says so."""
        gaps = [stage_gap(run) for run in self.runs]
        for text in (NO_REPLY, NO_WHOLE_REQUEST):
            count = gaps.count(text)
            if count:
                return text if count == len(gaps) else f"{text} in {count} of {len(gaps)} repeats"
        return None

    def stat(self, field: str) -> Spread | None:
        return spread(run_number(run, field) for run in self.runs)

    def median(self, field: str) -> float:
        """The median of a field every repeat must have (the loader checked it)."""
        figure = self.stat(field)
        if figure is None:
            raise SummaryError(f"{self.variant} {self.label}: no {field} in any repeat")
        return figure.median

    def latency(self, percentile: str) -> Spread | None:
        return spread(
            cast(Mapping[str, float | None], run["latency_ms"]).get(percentile) for run in self.runs
        )


def stage_gap(run: Run) -> str | None:
    if run["scenario"] != "long":
        return None
    if run["requests"] == 0:
        return NO_REPLY
    if run.get("seconds_per_request") is None:
        return NO_WHOLE_REQUEST
    return None


def noisy_threshold(summary: Summary) -> float:
    return summary["environment"].get("noisy_threshold_cores", NOISY_FOREIGN_CORES)


def variants_of(summary: Summary) -> list[str]:
    return sorted({run["variant"] for run in summary["runs"]}, key=variant_order)


def group_runs(summary: Summary) -> list[RunGroup]:
    """Runs grouped over repeats, in the talk's variant order, then short, long ×k, convoy."""
    grouped: dict[tuple[str, Scenario, int | None], list[Run]] = {}
    for run in summary["runs"]:
        clients = run.get("clients") if run["scenario"] == "long" else None
        grouped.setdefault((run["variant"], run["scenario"], clients), []).append(run)

    def order(key: tuple[str, Scenario, int | None]) -> tuple[tuple[int, str], int, int]:
        variant, scenario, clients = key
        return (variant_order(variant), SCENARIOS.index(scenario), clients or 0)

    return [
        RunGroup(variant, scenario, clients, tuple(sorted(runs, key=lambda run: run["repeat"])))
        for (variant, scenario, clients), runs in sorted(
            grouped.items(), key=lambda kv: order(kv[0])
        )
    ]


def find_group(
    groups: Iterable[RunGroup], variant: str, scenario: Scenario, clients: int | None = None
) -> RunGroup | None:
    for group in groups:
        if (group.variant, group.scenario, group.clients) == (variant, scenario, clients):
            return group
    return None


# --- figures of a run and of a group of repeats --------------------------------


def cpu_cores(run: Run) -> float | None:
    """Server CPU cores used on average during the run."""
    cores = run_number(run, "server_cpu_cores")
    if cores is not None:
        return cores
    seconds = run_number(run, "server_cpu_seconds")
    if seconds is None or run["duration_s"] <= 0:
        return None
    return seconds / run["duration_s"]


def drop_factor(run: Run) -> float | None:
    before = run_number(run, "short_rps_before")
    during = run_number(run, "short_rps_during")
    if before is None or during is None or before <= 0:
        return None
    return float("inf") if during == 0 else before / during


def group_figure(group: RunGroup, figure: Callable[[Run], float | None]) -> Spread | None:
    return spread(figure(run) for run in group.runs)
