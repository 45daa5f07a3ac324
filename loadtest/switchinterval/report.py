# loadtest/switchinterval/report.py
#
# A sweep's summary.json made readable (docs/design.md §6.7): report.md with
# the verdict of `switch-interval law` and its margin, a table per variant
# (per interval, from the timeline recordings: short req/s before and while
# the server computed the long fib, the median gap between replies, during
# × i, the law's prediction, measured ÷ predicted; beside them the
# comparison's convoy stage; the long fib's time beside the short requests
# and alone), what else the machine was doing at each interval, and
# switch-interval.png (plots.py). Tables, marks and notes are the comparison
# report's (loadtest.compare.report.tables).
#
#   python -m loadtest.switchinterval.report results/switch-interval-DIR/summary.json

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from loadtest.compare.report import Report
from loadtest.compare.report.tables import (
    LOADGEN_NOTE,
    cell,
    environment_section,
    group_marks,
    machine_rows,
    noisy_note,
    verdict_table,
)
from loadtest.compare.summary import Summary, SummaryError, noisy_threshold
from loadtest.compare.verdicts import SWITCH_LAW_CONTROL, Verdict
from loadtest.switchinterval.plots import plot_sweep
from loadtest.switchinterval.summary import (
    IntervalRecord,
    Point,
    SweepSummary,
    check_sweep,
    fmt_interval,
    interval_summary,
    law_text,
    load_sweep,
    points,
)
from loadtest.switchinterval.verdict import verdicts
from loadtest.toolbox import provenance
from loadtest.toolbox.formats import NOISY_MARK, fixed, fmt_rps, markdown_table, plural
from loadtest.toolbox.spread import spread

PLOT_NAME = "switch-interval.png"


def fmt_signed_percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


def fmt_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def convoy_cell(point: Point) -> str:
    """The comparison's during-rate, its ratio to the law in brackets (with its own t)."""
    during = point.convoy_during
    if during is None:
        return "–"
    ratio = point.convoy_ratio
    return cell(during, fmt_rps, point.convoy) + ("" if ratio is None else f" ({ratio:.2f}×)")


def variant_rows(series: Sequence[Point]) -> list[list[str]]:
    return [
        [
            fmt_interval(point.interval_s),
            cell(point.before, fmt_rps, point.group),
            cell(point.during, fmt_rps, point.group),
            cell(point.gap_ms, fixed(2), point.group),
            f"{point.per_interval:.3g}{group_marks(point.group)}",
            fmt_rps(point.predicted),
            fmt_ratio(point.ratio),
            convoy_cell(point),
            cell(point.long_seconds, fixed(3), point.group),
            fixed(3)(point.long_alone),
            fmt_signed_percent(point.long_cost),
        ]
        for point in series
    ]


def variant_section(variant: str, series: Sequence[Point]) -> list[str]:
    if series[0].predicted is not None:
        title = f"### {variant}: the law predicts {law_text(variant)}"
        predicted = f"predicted {law_text(variant)}"
    else:
        control = " (the control)" if variant == SWITCH_LAW_CONTROL else ""
        title = f"### {variant}{control}: no law"
        predicted = "predicted"
    header = [
        "switch interval i",
        "short req/s before",
        "during the long fib",
        "median gap between replies during it, ms",
        "during × i",
        predicted,
        "during ÷ predicted",
        "the comparison's convoy stage: during (÷ predicted)",
        "long fib s (beside the short)",
        "long request s (alone)",
        "long: beside vs alone",
    ]
    return [title, "", *markdown_table(header, variant_rows(series)), ""]


RECORDINGS_LABEL = "other processes' CPU during the recordings"


def recordings_row(record: IntervalRecord, threshold: float) -> str:
    """Other processes' CPU over an interval's recordings, as machine_rows says it of runs."""
    recordings = record["recordings"]
    foreign = spread(recording["foreign_cpu_cores"] for recording in recordings)
    noisy = sum(recording["noisy"] for recording in recordings)
    cores = "unknown" if foreign is None else f"median {foreign.median:.2f}, max {foreign.high:.2f}"
    return (
        f"{cores} cores; {noisy} of {len(recordings)} recordings noisy {NOISY_MARK} "
        f"(≥ {threshold:g} core)"
    )


def machine_section(sweep: SweepSummary) -> list[str]:
    """What else the machine was doing, interval by interval (docs/design.md §6.2)."""
    threshold = noisy_threshold(cast(Summary, {"environment": sweep["environment"]}))
    labelled = []
    for record in sweep["intervals"]:
        machine = machine_rows(interval_summary(sweep, record))
        # in the order they ran: the busy sample, the recordings, the convoy runs
        machine.insert(1, [RECORDINGS_LABEL, recordings_row(record, threshold)])
        labelled.append((record["switch_interval_s"], dict(machine)))
    labels = list(dict.fromkeys(label for _, texts in labelled for label in texts))
    rows = [
        [fmt_interval(interval), *(texts.get(label, "–") for label in labels)]
        for interval, texts in labelled
    ]
    return [
        "## The machine while it ran",
        "",
        "Sampled for 1 s before each interval's first server started, then over every "
        "recording and every convoy run (other processes' CPU: the machine's busy CPU from "
        "/proc/stat minus the lab's own).",
        "",
        *markdown_table(["switch interval", *labels], rows),
        "",
    ]


def render_markdown(sweep: SweepSummary, found: Sequence[Verdict], plots: Sequence[Path]) -> str:
    environment = sweep["environment"]
    found_points = points(sweep)
    minutes = environment["seconds_taken"] / 60
    short_n, long_n = environment.get("short_n"), environment.get("long_n")
    convoys = environment.get("repeat", 0)
    convoy = (
        f"and {plural(convoys, 'run')} of the comparison's convoy "
        f"({environment.get('duration_s', 0):g} s: one user asking fib({short_n}) in a closed "
        f"loop, joined for the middle third by one asking fib({long_n}) back to back)"
        if convoys
        else "and no run of the comparison's convoy"
    )
    lines = [
        f"# The convoy against the switch interval, {environment['date']}",
        "",
        *provenance.lines_of(sweep),
        f"Made by `{environment['command']}` in {minutes:.1f} min on {environment['cores']} "
        f"CPU cores, Python {environment['python']}. At each switch interval "
        f"({', '.join(fmt_interval(i) for i in environment['intervals_s'])}) each variant "
        f"ran {plural(environment['recording_repeat'], 'timeline recording')} (each: the "
        "server started here with `--switch-interval` and its own timeline on, one client "
        f"asking fib({short_n}) in the talk's perf2 loop, after "
        f"{environment.get('recording_before_s', 0):g} s one fib({long_n}) request, until "
        f"{environment.get('recording_after_s', 0):g} s after its reply) {convoy}.",
        "",
        "*During* is while the server computed the long fib, from its own fib event in the "
        "recording: the law is judged on it. The comparison's convoy stage also counts the "
        "moments between back-to-back long requests, when short requests run at full speed "
        "(after a long reply the short thread can keep the GIL until the next long "
        "request's thread is given it, up to one interval), which lifts its during-rate most "
        "where the predicted rate is small: shown beside, not judged.",
        "",
        "The law (docs/design.md §3.2, written before this was measured): while the long "
        "request holds the GIL, a short request waits about one switch interval `i` for it on "
        "threads, three on coro-threadpool, so short req/s during the long request is "
        "`1/(i + t)` and `1/(3i + t)`, with `t = 1/(short req/s before)`. The process pool "
        "(the control) computes fib in another process: no law, its rate stays.",
        "",
        "## Verdict",
        "",
        *verdict_table(found, with_talk=False),
        "*Not as predicted* is a finding to report, not a threshold to tune.",
        "",
        "## Per variant, per switch interval",
        "",
        "Medians over the recordings (min–max in brackets). *during × i*: short requests "
        "answered per switch interval; *median gap*: between two short replies while the "
        "server computed the long fib (the law: about `i + t` on threads, `3i + t` on "
        "coro-threadpool). *The comparison's convoy stage*: its during-rate (median over its "
        "runs) and that ÷ the law with `t` from its own rate before. *long fib s*: the "
        "server's own time for the long fib in the recordings, beside the short requests; "
        "*alone*: one fib request alone on the comparison's server after its warm-up "
        "(a round trip).",
        "",
    ]
    for variant, series in found_points.items():
        lines += variant_section(variant, series)
    lines += machine_section(sweep)
    if plots:
        lines += ["## Plot", "", *(f"![{plot.stem}]({plot.name})" for plot in plots), ""]
    sweep_only = cast(Summary, {"environment": environment, "runs": []})
    lines += environment_section(sweep_only)
    groups = [
        group
        for series in found_points.values()
        for point in series
        for group in (point.group, point.convoy)
        if group is not None
    ]
    if any(group.loadgen_bound for group in groups):
        lines += [LOADGEN_NOTE, ""]
    if any(group.noisy for group in groups):
        lines += [noisy_note(noisy_threshold(sweep_only)), ""]
    return "\n".join(lines)


def write_report(sweep: Mapping[str, object] | SweepSummary, out: Path) -> Report:
    """Write report.md and switch-interval.png into `out`."""
    checked = check_sweep(sweep)
    found = verdicts(checked)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_sweep(checked, out / PLOT_NAME)]
    markdown = out / "report.md"
    markdown.write_text(render_markdown(checked, found, plots), "utf-8")
    return Report([markdown, *plots], found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.switchinterval.report",
        description="Redraw a switch-interval report (report.md and its plot) from summary.json.",
    )
    parser.add_argument("summary", type=Path, help="a summary.json of loadtest.switchinterval")
    parser.add_argument("--out", type=Path, help="default: the summary's folder")
    args = parser.parse_args(argv)
    try:
        report = write_report(load_sweep(args.summary), args.out or args.summary.parent)
    except SummaryError as error:
        print(f"loadtest.switchinterval.report: {error}", file=sys.stderr)
        return 2
    report.announce()
    return 0


if __name__ == "__main__":
    sys.exit(main())
