# loadtest/check/behaviours.py
#
# `python -m loadtest.check TARGET --behaviours` (docs/design.md §6.9): after
# the protocol cases, the talk's short, long and convoy scenarios against
# the target, run by the comparison's runner (loadtest.compare.runner) as a
# running target and judged by its rules (loadtest.compare.verdicts), with
# their margins. Without --like the target is classified from what it
# measured: during a long request its short requests stall (stop),
# convoy (collapse but keep coming) or are immune (keep half their rate);
# its long requests run in parallel or serialised. With --like VARIANT it
# gets the verdicts the comparison report gives that lab variant.
# Server-side figures (CPU) come only from a --metrics URL that serves the
# lab's metric names; otherwise they are missing, never guessed. These are
# findings, never the check's failures: the exit status is the protocol's.

from __future__ import annotations

import contextlib
import http.client
import io
import math
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.check.cases import PHI, TIMED_N, Limits
from loadtest.compare.environment import environment
from loadtest.compare.plan import MAX_N, Plan
from loadtest.compare.progress import ENGINE_START_SECONDS
from loadtest.compare.runner import compare
from loadtest.compare.summary import (
    SCENARIOS,
    RunGroup,
    Summary,
    SummaryError,
    check_summary,
    cpu_cores,
    find_group,
    group_figure,
    group_runs,
)
from loadtest.compare.verdicts import (
    RULES,
    Verdict,
    convoy_collapse,
    convoy_stall,
    long_serialised,
    second_long_in_parallel,
    separate_process_immune,
    verdicts,
)
from loadtest.swarm.targets import Address
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.formats import (
    fmt_cores,
    fmt_ms,
    fmt_rps,
    fmt_seconds,
    markdown_table,
    marks,
    plural,
    spread_text,
)
from loadtest.toolbox.servers import CPU_METRIC, Target, metric_total, scrape
from services import VARIANTS

DURATION = 6.0  # seconds per scenario run (the comparison's least is 3)
REPEAT = 1
LONG_SECONDS = 0.3  # the long request: fib(n) reckoned to take this long on the target (3 clients:
# about 1 s a request, so whole requests fit in the 2-s stages of the default --duration)
WARMUP = 1.0  # seconds of short requests before the runs, not counted
TARGET_LABEL = "target"  # the runs' `variant` without --like
# The load engine labels its figures with a lab variant's name
# (loadtest.swarm.targets.check_variant); without --like any will do: the
# runs are labelled TARGET_LABEL afterwards.
ENGINE_LABEL = VARIANTS[0]
# Short requests "stop" during a long one (a stall, not a convoy) when the
# longest of them waited at least this share of the long request's time:
# they waited for the whole fib, not for a switch interval.
STOPPED_SHARE = 0.5
METRICS_TIMEOUT = 5.0  # seconds the --metrics URL has to answer the first scrape


@dataclass(frozen=True)
class Settings:
    duration: float
    repeat: int
    long_seconds: float
    like: str | None  # judge as this lab variant
    metrics: str | None  # the target's /metrics URL


@dataclass(frozen=True)
class Metrics:
    """Where the runs read the server's /metrics (None: nowhere) and what it gives."""

    url: str | None
    note: str  # where the server's CPU comes from, or why it is missing
    cpu: bool = False  # the URL exports the lab's CPU metric


def probe_metrics(url: str | None, address: Address) -> Metrics:
    """One scrape of `url`: whether it answers, serves Prometheus text and names the
    lab's CPU metric. A URL that fails is not scraped again."""
    if url is None:
        return Metrics(None, "server CPU missing: no --metrics given")
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT) as response:
            response.read()
    except (OSError, ValueError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        return Metrics(None, f"server CPU missing: --metrics {url} did not answer ({reason})")
    try:
        samples = scrape(Target(TARGET_LABEL, *address, url))
    except ValueError as error:
        return Metrics(
            None, f"server CPU missing: --metrics {url} is not Prometheus text ({error})"
        )
    if metric_total(samples, CPU_METRIC) is None:
        return Metrics(url, f"server CPU missing: --metrics {url} exports no {CPU_METRIC}")
    return Metrics(url, f"server CPU from {url} ({CPU_METRIC})", cpu=True)


def long_n_for(limits: Limits, long_seconds: float) -> int:
    """The n whose fib should take about `long_seconds` on the target, reckoned from its
    fib(TIMED_N) as naive recursion; at most its largest n (the lab's when unknown)."""
    if math.isinf(limits.fib_seconds):
        raise LabError(f"fib({TIMED_N}) was not answered: no long request can be sized")
    steps = math.log(long_seconds / max(limits.fib_seconds, 1e-9), PHI)
    largest = int(limits.max_n.value) if limits.max_n.value is not None else MAX_N
    return min(TIMED_N + max(0, round(steps)), largest)


def expected_seconds(settings: Settings) -> float:
    """About how long the runs take: the warm-up, then each scenario with its engine's start."""
    runs = len(SCENARIOS) * settings.repeat
    return (
        WARMUP
        + ENGINE_START_SECONDS
        + settings.long_seconds
        + runs * (settings.duration + ENGINE_START_SECONDS)
    )


def measure(address: Address, settings: Settings, long_n: int, metrics: Metrics) -> Summary:
    """The three scenarios against the target: a comparison summary (summary.json's shape)
    whose runs are labelled the --like variant, else TARGET_LABEL."""
    engine = settings.like or ENGINE_LABEL
    plan = Plan(
        variants=[engine], scenarios=list(SCENARIOS), duration=settings.duration,
        repeat=settings.repeat, warmup=WARMUP, short_n=1, long_n=long_n, short_users=1,
        rate=0.0,
    )  # fmt: skip
    target = Target(engine, *address, metrics.url)
    # The runner's progress names the engine's label: this check prints its own line.
    with contextlib.redirect_stderr(io.StringIO()):
        measured = compare(plan, {engine: target}, "given")
    label = settings.like or TARGET_LABEL
    for run in measured["runs"]:
        run["variant"] = label
    found = environment(plan, "given", 0.0)
    del found["long_seconds_single"]  # fib(long_n) in this process: not timed, not the target's
    found["servers"] = {label: measured["servers"].get(engine, {})}
    found["long_seconds_server"] = {label: measured["long_seconds_server"][engine]}
    return check_summary({"environment": found, "runs": measured["runs"]})


# --- what it shows -------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    question: str
    answer: str  # "stall", "convoy", "immune", "partial"; "parallel", "serialised", "neither";
    # "not classified"
    figures: str  # what the answer rests on
    rules: tuple[Verdict, ...]  # the rules it was read from, with their margins

    def as_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "figures": self.figures,
            "rules": [rule_json(verdict) for verdict in self.rules],
        }


def holds(verdict: Verdict) -> bool:
    return verdict.margin is not None and verdict.margin >= 1


def rule_text(verdict: Verdict) -> str:
    """One rule read for a classification: its test, whether the figures meet it, the margin."""
    if verdict.margin is None:
        state = "no figure"
    else:
        state = ("holds" if holds(verdict) else "does not hold") + f", {verdict.margin_text}"
    caveat = f"; {verdict.status}" if verdict.noisy or verdict.loadgen_bound else ""
    return f"{verdict.rule} ({RULES[verdict.rule].test}): {state}{caveat}"


def rule_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "rule": verdict.rule,
        "variant": verdict.variant,
        "test": RULES[verdict.rule].test,
        "status": verdict.status,
        "reproduced": verdict.reproduced,
        "margin": None if verdict.margin is None or math.isinf(verdict.margin) else verdict.margin,
        "margin_text": verdict.margin_text,
        "figures": verdict.figures,
        "line": verdict.line(),
    }


def longest_wait(group: RunGroup) -> tuple[bool | None, str]:
    """Whether the short requests stopped during the long one (the longest waited at
    least STOPPED_SHARE of its time), and the figures; None: no figure to tell."""
    longest, long_seconds = group.latency("max"), group.stat("long_seconds")
    if longest is None or long_seconds is None or long_seconds.median <= 0:
        return None, "no longest wait or long request time to tell a stop by"
    share = longest.median / 1000 / long_seconds.median
    stopped = share >= STOPPED_SHARE
    return stopped, (
        f"the longest short request took {fmt_ms(longest.median)} ms, {share:.0%} of the long "
        f"request's {fmt_seconds(long_seconds.median)}: "
        + ("they waited for it whole" if stopped else "they kept being answered")
    )


def classify_convoy(groups: Sequence[RunGroup], label: str) -> Finding | None:
    question = "short requests during a long one"
    stall = convoy_stall(groups, label)
    collapse = convoy_collapse(groups, label)
    immune = separate_process_immune(groups, label)
    group = find_group(groups, label, "convoy")
    if stall is None or collapse is None or immune is None or group is None:
        return None
    rules = (collapse, stall, immune)
    if stall.margin is None:
        return Finding(question, "not classified", stall.figures, rules)
    stopped, wait = longest_wait(group)
    figures = f"{collapse.figures}; {wait}"
    if holds(stall) and stopped is not False:
        answer = "stall"
    elif holds(collapse):
        answer = "convoy"
    elif holds(immune):
        answer = "immune"
    else:
        answer = "partial"  # slowed, but neither collapsed (10×) nor kept half
    return Finding(question, answer, figures, rules)


def classify_long(groups: Sequence[RunGroup], label: str) -> Finding | None:
    question = "2 and 3 long clients against 1"
    serial = long_serialised(groups, label)
    parallel = second_long_in_parallel(groups, label)
    if serial is None or parallel is None:
        return None
    rules = (parallel, serial)
    if serial.margin is None and parallel.margin is None:
        return Finding(question, "not classified", serial.figures, rules)
    if holds(parallel):
        answer = "parallel"
    elif holds(serial):
        answer = "serialised"
    else:
        answer = "neither"
    return Finding(question, answer, serial.figures, rules)


@dataclass(frozen=True)
class Behaviours:
    settings: Settings
    long_n: int | None  # None: not sized
    metrics: Metrics
    summary: Summary | None  # None: not measured
    findings: tuple[Finding, ...]
    verdicts: tuple[Verdict, ...]  # --like: the comparison's verdicts for that variant
    problem: str  # why nothing was measured ("" when it was)

    @property
    def label(self) -> str:
        return self.settings.like or TARGET_LABEL


def not_measured(
    settings: Settings, long_n: int | None, metrics: Metrics, problem: str
) -> Behaviours:
    return Behaviours(settings, long_n, metrics, None, (), (), problem)


def run(address: Address, settings: Settings, limits: Limits) -> Behaviours:
    """The behaviours of the target at `address`: measured and judged, or why not."""
    metrics = probe_metrics(settings.metrics, address)
    try:
        long_n = long_n_for(limits, settings.long_seconds)
    except LabError as error:
        return not_measured(settings, None, metrics, str(error))
    print(
        f"behaviours: {', '.join(SCENARIOS)} against the target, about "
        f"{expected_seconds(settings):.0f} s",
        flush=True,
    )
    try:
        summary = measure(address, settings, long_n, metrics)
    except (LabError, SummaryError, subprocess.TimeoutExpired) as error:
        return not_measured(settings, long_n, metrics, str(error))
    return judge(settings, long_n, metrics, summary)


def judge(settings: Settings, long_n: int, metrics: Metrics, summary: Summary) -> Behaviours:
    groups = group_runs(summary)
    label = settings.like or TARGET_LABEL
    findings = tuple(
        finding
        for finding in (classify_convoy(groups, label), classify_long(groups, label))
        if finding is not None
    )
    judged = tuple(verdicts(summary)) if settings.like else ()
    return Behaviours(settings, long_n, metrics, summary, findings, judged, "")


# --- as text --------------------------------------------------------------------


def group_row(group: RunGroup) -> list[str]:
    """label, req/s, p50, p99, max ms, s/request, server CPU cores, marks."""
    return [
        group.label,
        spread_text(rps, fmt_rps) if (rps := group.stat("rps")) else "–",
        *(
            spread_text(value, fmt_ms) if (value := group.latency(p)) else "–"
            for p in ("p50", "p99", "max")
        ),
        spread_text(s, fmt_seconds) if (s := group.stat("seconds_per_request")) else "–",
        spread_text(cores, fmt_cores) if (cores := group_figure(group, cpu_cores)) else "missing",
        marks(loadgen=group.loadgen_bound, noisy=group.noisy),
    ]


GROUP_HEADER = ["run", "req/s", "p50 ms", "p99 ms", "max ms", "s/request", "server CPU, cores", ""]


def headline(behaviours: Behaviours) -> str:
    settings = behaviours.settings
    text = (
        f"{', '.join(SCENARIOS)}: {settings.duration:g} s × {plural(settings.repeat, 'run')} each"
    )
    if behaviours.long_n is not None:
        text += f"; short fib(1), long fib({behaviours.long_n})"
    return text


def terminal_lines(behaviours: Behaviours) -> list[str]:
    lines = [f"behaviours ({headline(behaviours)}); findings, not failures:"]
    if behaviours.summary is None:
        return [*lines, f"  not measured: {behaviours.problem}"]
    alone = behaviours.summary["environment"].get("long_seconds_server", {})
    if (seconds := alone.get(behaviours.label)) is not None:
        lines.append(f"  fib({behaviours.long_n}) alone: {seconds:.3f} s on the target")
    for group in group_runs(behaviours.summary):
        label, rps, p50, p99, longest, per, cpu, mark = group_row(group)
        if group.scenario == "long":
            client = f"{per} per request"
        else:
            client = f"{rps} req/s, p50 {p50} ms, p99 {p99} ms, max {longest} ms"
        server = f"; server CPU {cpu} cores" if behaviours.metrics.cpu else ""
        lines.append(f"  {label}: {client}{server}{' ' + mark if mark else ''}")
    lines.append(f"  {behaviours.metrics.note}")
    for finding in behaviours.findings:
        lines.append(f"  {finding.question} → {finding.answer}: {finding.figures}")
        lines += [f"      {rule_text(verdict)}" for verdict in finding.rules]
    if behaviours.settings.like:
        lines.append(f"  judged as {behaviours.settings.like} (the comparison report's verdicts):")
        lines += [f"  {verdict.line()}" for verdict in behaviours.verdicts] or [
            f"  no rule of the comparison speaks of {behaviours.settings.like} alone"
        ]
    return lines


def markdown_lines(behaviours: Behaviours) -> list[str]:
    lines = [
        "## Behaviours",
        "",
        f"{headline(behaviours)} (docs/design.md §6.9). Findings, not failures: they do not "
        "change the exit status.",
        "",
    ]
    if behaviours.summary is None:
        return [*lines, f"Not measured: {behaviours.problem}", ""]
    lines += [
        *markdown_table(GROUP_HEADER, [group_row(g) for g in group_runs(behaviours.summary)]),
        "",
        f"{behaviours.metrics.note}. † limited by the load generator, ‡ noisy (docs/design.md "
        "§6.2).",
        "",
        *markdown_table(
            ["question", "answer", "figures", "rules read"],
            [
                [f.question, f.answer, f.figures, "; ".join(rule_text(v) for v in f.rules)]
                for f in behaviours.findings
            ],
        ),
        "",
    ]
    if behaviours.settings.like:
        lines += [f"### Judged as {behaviours.settings.like}", ""]
        lines += [f"- {verdict.line()}" for verdict in behaviours.verdicts] or [
            f"No rule of the comparison speaks of {behaviours.settings.like} alone."
        ]
        lines.append("")
    return lines


def as_json(behaviours: Behaviours) -> dict[str, Any]:
    settings = behaviours.settings
    return {
        "settings": {
            "duration_s": settings.duration,
            "repeat": settings.repeat,
            "long_seconds": settings.long_seconds,
            "long_n": behaviours.long_n,
            "like": settings.like,
            "metrics": settings.metrics,
        },
        "metrics": behaviours.metrics.note,
        "problem": behaviours.problem or None,
        "summary": behaviours.summary,
        "classification": [finding.as_json() for finding in behaviours.findings],
        "verdicts": [rule_json(verdict) for verdict in behaviours.verdicts],
    }
