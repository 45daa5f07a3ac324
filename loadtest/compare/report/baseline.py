# loadtest/compare/report/baseline.py
#
# A run set against a baseline run (docs/design.md §6.5):
#
#   python -m loadtest.compare.report --baseline OLD/summary.json NEW/summary.json
#
# writes baseline.md and baseline.json into NEW's folder. Here: the
# comparison runner's summary.json as a Side of the generic model
# (loadtest.toolbox.baseline, which compares and writes), and each file
# read as the Side of its kind (a capacity run's: loadtest.toolbox.capacity_side).

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from loadtest.compare.summary import (
    GIL_BUSY,
    SCENARIOS,
    Run,
    Summary,
    SummaryError,
    cpu_cores,
    drop_factor,
    group_runs,
    load_summary,
    run_number,
    variants_of,
)
from loadtest.compare.verdicts import verdicts
from loadtest.toolbox.baseline import (
    Comparison,
    FigureKind,
    Measured,
    RowKey,
    Rows,
    Side,
    VerdictKey,
    VerdictState,
    compare_sides,
    write_comparison,
)
from loadtest.toolbox.capacity_side import capacity_side
from loadtest.toolbox.formats import (
    NOISY_MARK,
    fixed,
    fmt_cores,
    fmt_cpu_per_request,
    fmt_factor,
    fmt_mib,
    fmt_ms,
    fmt_rps,
    percent_or_dash,
    plural,
)

# --- the comparison runner's summary.json as a Side --------------------------------

RunFigure = Callable[[Run], float | None]


def latency_of(percentile: str) -> RunFigure:
    return lambda run: cast(Mapping[str, float | None], run["latency_ms"]).get(percentile)


def field_of(name: str) -> RunFigure:
    return lambda run: run_number(run, name)


fmt_three = fixed(3)
fmt_two = fixed(2)

# What summary.md's tables show, figure by figure (a run lacking one, e.g. a
# short run's convoy figures, simply has no value for it).
RUN_FIGURES: tuple[tuple[FigureKind, RunFigure], ...] = (
    (FigureKind("req/s", "req/s", "higher is better", fmt_rps), field_of("rps")),
    (FigureKind("p50 ms", "ms", "lower is better", fmt_ms), latency_of("p50")),
    (FigureKind("p99 ms", "ms", "lower is better", fmt_ms), latency_of("p99")),
    (FigureKind("p99.9 ms", "ms", "lower is better", fmt_ms), latency_of("p999")),
    (FigureKind("CPU cores", "cores", "no direction", fmt_cores), cpu_cores),
    (
        FigureKind("CPU s/request", "s", "lower is better", fmt_cpu_per_request),
        field_of("cpu_seconds_per_request"),
    ),
    (
        FigureKind("peak memory MiB", "MiB", "lower is better", fmt_mib),
        field_of("server_memory_peak_mib"),
    ),
    (
        FigureKind("s/request", "s", "lower is better", fmt_three),
        field_of("seconds_per_request"),
    ),
    (
        FigureKind("short req/s before", "req/s", "higher is better", fmt_rps),
        field_of("short_rps_before"),
    ),
    (
        FigureKind("short req/s during", "req/s", "higher is better", fmt_rps),
        field_of("short_rps_during"),
    ),
    (FigureKind("drop factor", "×", "lower is better", fmt_factor), drop_factor),
    (FigureKind("long request s", "s", "lower is better", fmt_two), field_of("long_seconds")),
    (
        FigureKind(GIL_BUSY, "share", "lower is better", percent_or_dash),
        field_of("gil_wait_share"),
    ),
)
COMPARE_KIND = "loadtest.compare summary"


def compare_rows(summary: Summary) -> Rows:
    """Each (variant, scenario, clients) group of repeats: its figures over repeats."""
    rows: Rows = {}
    for group in group_runs(summary):
        key: RowKey = (
            ("variant", group.variant),
            ("scenario", group.scenario),
            ("clients", group.clients),
        )
        figures: dict[str, Measured] = {}
        for kind, figure in RUN_FIGURES:
            values = tuple(float(value) for run in group.runs if (value := figure(run)) is not None)
            if values:
                figures[kind.name] = Measured(
                    values, len(group.runs), group.noisy_runs, group.loadgen_runs
                )
        rows[key] = figures
    return rows


def compare_facts(summary: Summary) -> dict[str, str]:
    environment = summary["environment"]
    python = environment["python"]
    build = ", ".join(
        part
        for part in (
            environment.get("implementation"),
            f"GIL {environment['gil']}" if "gil" in environment else None,
        )
        if part
    )
    scenarios = {run["scenario"] for run in summary["runs"]}
    duration = environment.get("duration_s")
    repeats = environment.get("repeat")
    runs = {(run["variant"], run["scenario"], run["repeat"]): run for run in summary["runs"]}
    noisy = sum(run.get("noisy") is True for run in runs.values())
    long_n = environment.get("long_n")
    return {
        "date": environment["date"],
        "Python": f"{python} ({build})" if build else python,
        "image": environment.get("image") or "–",
        "target": str(environment.get("target", "–")),
        "variants": ", ".join(variants_of(summary)) or "none",
        "scenarios": ", ".join(s for s in SCENARIOS if s in scenarios) or "none",
        "duration × repeats": (
            f"{'–' if duration is None else f'{duration:g} s'} × "
            f"{'–' if repeats is None else plural(repeats, 'repeat')}"
        ),
        "long request": "–" if long_n is None else f"fib({long_n})",
        "cores": str(environment["cores"]),
        "noisy runs": f"{noisy} of {len(runs)} {NOISY_MARK}" if noisy else f"0 of {len(runs)}",
    }


# Settings that change what a figure means: a difference makes the runs not
# comparable like for like. Pinning fields (the CPUs the server and the load
# generator may use) are taken by name as well.
SETTINGS = ("duration_s", "repeat", "long_n", "short_n", "short_users", "rate", "target", "cores")
PINNING = "pinning"  # the runner's {server_cpus, loadgen_cpus}, null when nothing is pinned
PINNING_WORDS = ("pin", "affinity", "cpus")


def compare_settings(summary: Summary) -> dict[str, object]:
    environment: Mapping[str, object] = summary["environment"]
    names = [
        *SETTINGS,
        *(key for key in environment if any(word in key for word in PINNING_WORDS)),
    ]
    settings = {name: environment[name] for name in names if name in environment}
    # A summary from before pinning existed pinned nothing, as does a null.
    settings[PINNING] = environment.get(PINNING) or "none"
    return settings


def compare_verdicts(summary: Summary) -> dict[VerdictKey, VerdictState]:
    return {
        (verdict.rule, verdict.variant): VerdictState(
            verdict.status, verdict.mark, verdict.figures, verdict.margin_text
        )
        for verdict in verdicts(summary)
    }


def compare_side(summary: Summary, path: Path) -> Side:
    return Side(
        path=path,
        kind=COMPARE_KIND,
        facts=compare_facts(summary),
        settings=compare_settings(summary),
        figures={kind.name: kind for kind, _ in RUN_FIGURES},
        rows=compare_rows(summary),
        verdicts=compare_verdicts(summary),
    )


def load_side(path: Path) -> Side:
    """A summary file as a Side; SummaryError names the file and what is wrong."""
    # A capacity run's summary says so ("kind": "capacity").
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        data = None  # load_summary names what is wrong
    if isinstance(data, dict) and data.get("kind") == "capacity":
        try:
            return capacity_side(data, path)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SummaryError(f"{path}: not a whole capacity summary: {error!r}") from error
    try:
        return compare_side(load_summary(path), path)
    except SummaryError as error:
        message = str(error)
        raise SummaryError(message if str(path) in message else f"{path}: {message}") from error


def write_baseline(old_path: Path, new_path: Path, out_dir: Path) -> tuple[Comparison, list[Path]]:
    """Compare new_path's run with old_path's; write baseline.md and baseline.json."""
    comparison = compare_sides(load_side(old_path), load_side(new_path))
    return comparison, write_comparison(comparison, out_dir)
