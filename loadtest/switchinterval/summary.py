# loadtest/switchinterval/summary.py
#
# The shape of a switch-interval sweep's summary.json (docs/design.md §6.7),
# a loader that checks it and names a bad field, and the figures the verdict,
# the tables and the plot all read: per variant per interval, medians (and
# spread) over repeats of the short requests' rate before the long request
# and while the server computed it, the median gap between their replies,
# the law's prediction and the long request's own time.
#
# Two measurements per variant per interval:
#
#   recordings  timeline recordings (loadtest.timeline.record, on this
#               Python, the server's own timeline on): "during" is while
#               the server computed the long fib, from its own fib event.
#               The law is judged on these.
#   runs        the comparison runner's convoy runs, unchanged (checked and
#               grouped by loadtest.compare.summary): "during" is the whole
#               long stage, the moments between back-to-back long requests
#               included. Shown beside, not judged.
#
# Both are grouped as loadtest.compare.summary groups runs, so every mark
# (‡ noisy, † loadgen-bound) means what it means in a comparison.

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired, TypedDict, cast

from loadtest.compare.summary import (
    Environment,
    Run,
    RunGroup,
    Summary,
    SummaryError,
    check_summary,
    find_group,
    group_runs,
    read_json,
    variants_of,
)
from loadtest.compare.verdicts import SWITCH_LAW_INTERVALS_PER_REQUEST
from loadtest.toolbox.formats import variant_order
from loadtest.toolbox.machine import ForeignCpu
from loadtest.toolbox.spread import Spread

KIND = "switch-interval"
SCHEMA = 1  # summary.json's shape, in its provenance record (docs/design.md §6.11)


class SweepEnvironment(Environment):
    """The comparison's environment (loadtest.compare.environment) and the sweep's own."""

    intervals_s: list[float]  # the switch intervals swept, in seconds, in the order run
    variants: list[str]
    command: str  # the command line that made the sweep
    seconds_taken: float  # the sweep's wall time
    recording_repeat: int  # timeline recordings per variant per interval
    recording_before_s: float  # seconds of short requests before the long one is sent
    recording_after_s: float  # ... and after its reply


class Recording(ForeignCpu):
    """One timeline recording's figures (loadtest.timeline.draw.figures) and the machine
    over it (loadtest.toolbox.machine.foreign_cpu)."""

    variant: str
    repeat: int
    short_per_s_before: float  # short replies per second before the long request was sent
    short_per_s_during: float  # ... while the server computed the long fib
    short_replies_during: int
    median_gap_during_ms: float | None  # between those replies; None: fewer than two
    long_fib_s: float  # the server's own time for the long fib, beside the short requests
    long_round_trip_s: float  # the client's: send to reply


class IntervalRecord(TypedDict):
    """One switch interval: every variant's recordings and convoy runs at it."""

    switch_interval_s: float
    busy_cores_at_start: float | None  # other processes' CPU over 1 s before its first server
    load_average_at_start: float | None
    servers: dict[str, dict[str, str]]  # per variant: its fib_info labels
    long_seconds_server: dict[str, float]  # per variant: fib(long_n) alone on that server
    recordings: list[Recording]  # the timeline recordings: the law's figures
    runs: list[Run]  # the comparison runner's convoy runs


class SweepSummary(TypedDict):
    kind: Literal["switch-interval"]
    environment: SweepEnvironment
    intervals: list[IntervalRecord]
    provenance: NotRequired[dict[str, object]]  # docs/design.md §6.11


# --- loading and checking ---------------------------------------------------------


def load_sweep(path: Path) -> SweepSummary:
    return check_sweep(read_json(path))


def _number(value: object, *, positive: bool = False) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )


def _positive(value: object) -> bool:
    return _number(value, positive=True)


# Each recording's figures: (field, may be null, must be above 0).
RECORDING_FIGURES = (
    ("repeat", False, False),
    ("short_per_s_before", False, False),
    ("short_per_s_during", False, False),
    ("short_replies_during", False, False),
    ("median_gap_during_ms", True, False),
    ("long_fib_s", False, True),
    ("long_round_trip_s", False, True),
    ("foreign_cpu_cores", True, False),
    ("steal_cpu_cores", True, False),
)


def check_recording(recording: object, variants: list[str], where: str) -> None:
    if not isinstance(recording, dict):
        raise SummaryError(f"{where}: expected an object")
    if recording.get("variant") not in variants:
        raise SummaryError(f"{where}.variant: expected one of environment.variants")
    for field, nullable, positive in RECORDING_FIGURES:
        if field not in recording:
            raise SummaryError(f"{where}.{field}: missing")
        value = recording[field]
        if not (value is None and nullable) and not _number(value, positive=positive):
            expected = "a number above 0" if positive else "a number from 0"
            raise SummaryError(f"{where}.{field}: expected {expected}, got {value!r}")
    if not isinstance(recording.get("noisy"), bool):
        raise SummaryError(f"{where}.noisy: expected true or false")


def check_sweep(data: object) -> SweepSummary:
    """Return `data` typed as a SweepSummary, or raise SummaryError naming the bad field."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise SummaryError(f'summary: not a switch-interval sweep (no "kind": "{KIND}")')
    environment = data.get("environment")
    intervals = data.get("intervals")
    if not isinstance(intervals, list) or not intervals:
        raise SummaryError("summary.intervals: expected a list of interval objects")
    # The comparison's own check: the environment's fields, then each interval's runs.
    check_summary({"environment": environment, "runs": []})
    assert isinstance(environment, dict)
    swept = environment.get("intervals_s")
    if not (isinstance(swept, list) and swept and all(_positive(i) for i in swept)):
        raise SummaryError("environment.intervals_s: expected a list of seconds > 0")
    for field in ("command", "seconds_taken", "variants", "recording_repeat"):
        if field not in environment:
            raise SummaryError(f"environment.{field}: missing")
    variants = environment["variants"]
    for index, record in enumerate(intervals):
        where = f"intervals[{index}]"
        if not isinstance(record, dict):
            raise SummaryError(f"{where}: expected an object")
        if not _positive(record.get("switch_interval_s")):
            raise SummaryError(f"{where}.switch_interval_s: expected seconds > 0")
        for field in ("servers", "long_seconds_server"):
            if not isinstance(record.get(field), dict):
                raise SummaryError(f"{where}.{field}: expected an object")
        for variant, seconds in record["long_seconds_server"].items():
            if not _positive(seconds):
                raise SummaryError(f"{where}.long_seconds_server.{variant}: expected seconds > 0")
        recordings = record.get("recordings")
        if not isinstance(recordings, list):
            raise SummaryError(f"{where}.recordings: expected a list of recording objects")
        for number, recording in enumerate(recordings):
            check_recording(recording, variants, f"{where}.recordings[{number}]")
        try:
            check_summary({"environment": environment, "runs": record.get("runs")})
        except SummaryError as error:
            raise SummaryError(f"{where}.{error}") from None
        for number, run in enumerate(record["runs"]):
            if run["scenario"] != "convoy":
                raise SummaryError(f"{where}.runs[{number}].scenario: a sweep runs the convoy only")
    if [record["switch_interval_s"] for record in intervals] != swept:
        raise SummaryError("intervals: their switch_interval_s differ from environment.intervals_s")
    return cast(SweepSummary, data)


def interval_summary(sweep: SweepSummary, record: IntervalRecord) -> Summary:
    """One interval's convoy runs as a comparison run's summary, the machine before them."""
    environment = cast(Mapping[str, object], sweep["environment"])
    return cast(
        Summary,
        {
            "environment": {
                **environment,
                "busy_cores_at_start": record["busy_cores_at_start"],
                "load_average_at_start": record["load_average_at_start"],
                "long_seconds_server": record["long_seconds_server"],
                "servers": record["servers"],
            },
            "runs": record["runs"],
        },
    )


# --- the figures per variant per interval ----------------------------------------------


def fmt_interval(seconds: float) -> str:
    """0.5 ms, 20 ms: the sweep's unit."""
    return f"{seconds * 1000:g} ms"


def law(intervals_per_request: int, interval_s: float, before: float) -> float | None:
    """docs/design.md §3.2's during-rate, 1 / (k·i + t) with t = 1/before; None without a
    rate before."""
    return 1.0 / (intervals_per_request * interval_s + 1.0 / before) if before > 0 else None


def law_text(variant: str) -> str:
    """The law of a variant it names, as the report writes it: 1/(i + t), 1/(3i + t)."""
    k = SWITCH_LAW_INTERVALS_PER_REQUEST[variant]
    return "1/(i + t)" if k == 1 else f"1/({k}i + t)"


@dataclass(frozen=True)
class IntervalGroup(RunGroup):
    """A variant's comparison convoy repeats at one switch interval: labelled with it in
    every note."""

    interval_s: float

    @property
    def label(self) -> str:
        return f"convoy at {fmt_interval(self.interval_s)}"


@dataclass(frozen=True)
class RecordingGroup(IntervalGroup):
    """A variant's timeline recordings at one switch interval, read as a group of runs: their
    figures by name and their noisy flags. A recording's one-thread client waits on the
    server during the long fib, so no recording is loadgen-bound."""

    @property
    def label(self) -> str:
        return f"recordings at {fmt_interval(self.interval_s)}"

    @property
    def loadgen_runs(self) -> int:
        return 0


@dataclass(frozen=True)
class Point:
    """One variant at one switch interval: medians (and spread) over its recordings, and
    its comparison convoy runs (None: the sweep ran none)."""

    group: RecordingGroup
    convoy: IntervalGroup | None
    long_alone: float | None  # fib(long_n) alone on the comparison's server, seconds

    @property
    def variant(self) -> str:
        return self.group.variant

    @property
    def interval_s(self) -> float:
        return self.group.interval_s

    def _figure(self, field: str) -> Spread:
        figure = self.group.stat(field)
        assert figure is not None  # the loader checked every recording has it
        return figure

    @property
    def before(self) -> Spread:
        return self._figure("short_per_s_before")

    @property
    def during(self) -> Spread:
        """Short replies per second while the server computed the long fib."""
        return self._figure("short_per_s_during")

    @property
    def gap_ms(self) -> Spread | None:
        """The median gap between those replies, ms (None: fewer than two in every one)."""
        return self.group.stat("median_gap_during_ms")

    @property
    def long_seconds(self) -> Spread:
        """The server's own time for the long fib, beside the short requests."""
        return self._figure("long_fib_s")

    @property
    def per_interval(self) -> float:
        """during × i: short requests answered per switch interval."""
        return self.during.median * self.interval_s

    def _predicted(self, before: float) -> float | None:
        intervals = SWITCH_LAW_INTERVALS_PER_REQUEST.get(self.variant)
        return None if intervals is None else law(intervals, self.interval_s, before)

    @property
    def predicted(self) -> float | None:
        """The law's during-rate with t from the recordings' rate before; None for a variant
        without a law or without a rate before."""
        return self._predicted(self.before.median)

    @property
    def ratio(self) -> float | None:
        """Measured during-rate ÷ predicted."""
        predicted = self.predicted
        return None if predicted is None else self.during.median / predicted

    @property
    def convoy_during(self) -> Spread | None:
        """The comparison's figure: short req/s over its whole long stage."""
        return None if self.convoy is None else self.convoy.stat("short_rps_during")

    @property
    def convoy_ratio(self) -> float | None:
        """The comparison's during-rate ÷ the law's, with t from its own rate before."""
        if self.convoy is None:
            return None
        during, before = self.convoy.stat("short_rps_during"), self.convoy.stat("short_rps_before")
        if during is None or before is None:
            return None
        predicted = self._predicted(before.median)
        return None if predicted is None else during.median / predicted

    @property
    def long_cost(self) -> float | None:
        """The long fib's time beside the short requests over its time alone, minus 1: what
        switching costs it."""
        if not self.long_alone:
            return None
        return self.long_seconds.median / self.long_alone - 1.0


def points(sweep: SweepSummary) -> dict[str, list[Point]]:
    """Per variant (the talk's order), its points by increasing interval."""
    found: dict[str, list[Point]] = {}
    for record in sorted(sweep["intervals"], key=lambda record: record["switch_interval_s"]):
        interval = record["switch_interval_s"]
        summary = interval_summary(sweep, record)
        groups = group_runs(summary)
        convoys = {
            variant: IntervalGroup(variant, group.scenario, group.clients, group.runs, interval)
            for variant in variants_of(summary)
            if (group := find_group(groups, variant, "convoy")) is not None
        }
        recordings: dict[str, list[Run]] = {}
        for recording in record["recordings"]:
            recordings.setdefault(recording["variant"], []).append(cast(Run, recording))
        for variant, repeats in recordings.items():
            group = RecordingGroup(variant, "convoy", None, tuple(repeats), interval)
            alone = record["long_seconds_server"].get(variant)
            found.setdefault(variant, []).append(Point(group, convoys.get(variant), alone))
    return {variant: found[variant] for variant in sorted(found, key=variant_order)}
