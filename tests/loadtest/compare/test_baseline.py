# tests/loadtest/compare/test_baseline.py
#
# A run compared with a baseline run (`python -m loadtest.compare.report
# --baseline OLD NEW`): SYNTHETIC pairs with known answers (built with
# test_verdicts.py's builders: a regression outside both spreads, a change
# inside them, a noisy and a loadgen-bound figure, single repeats, a changed
# verdict, mismatched settings, bad files), the two real runs stored in
# docs/results/, and two real quick runs of the comparison runner (the
# session's shared ones, conftest.py).

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loadtest.compare.report import main
from loadtest.compare.report.baseline import compare_side, load_side, write_baseline
from loadtest.compare.summary import check_summary
from loadtest.toolbox.baseline import (
    BETTER,
    CHANGED,
    NO_SPREAD,
    NOT_JUDGED_LOADGEN,
    NOT_JUDGED_NOISY,
    WITHIN,
    WORSE,
    Comparison,
    FigureChange,
    compare_sides,
)
from tests.conftest import ROOT
from tests.loadtest.compare.conftest import RealRun
from tests.loadtest.compare.test_verdicts import a_summary, convoy_run, noisy, short_run

# --- synthetic pairs --------------------------------------------------------------

# Old and new short req/s per variant over two repeats, and what the comparison
# must call the change.
OLD_THREADS_SHORT = (10_000.0, 10_200.0)
NEW_THREADS_SHORT = (7_000.0, 7_100.0)  # far below the old spread: worse
OLD_CORO_SHORT = (9_000.0, 9_400.0)
NEW_CORO_SHORT = (9_100.0, 9_300.0)  # inside the old spread
OLD_GEVENT_SHORT = (8_000.0, 8_200.0)
# the new median (8,600) is outside the old spread, but the old median (8,100)
# is inside the new one: not outside both
NEW_GEVENT_SHORT = (7_700.0, 9_500.0)
OLD_ASYNCIO_SHORT = (8_000.0, 8_200.0)
NEW_ASYNCIO_SHORT = (4_000.0, 4_100.0)  # halved, but one repeat noisy
OLD_POOL_SHORT = (7_000.0, 7_100.0)
NEW_POOL_SHORT = (3_000.0, 3_100.0)  # more than halved, but the generator's figure
OLD_SYNC_SHORT = 5_000.0  # one repeat on each side: no spread
NEW_SYNC_SHORT = 2_500.0


def old_runs() -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for repeat in (0, 1):
        runs += [
            short_run("threads", OLD_THREADS_SHORT[repeat], repeat),
            short_run("coro", OLD_CORO_SHORT[repeat], repeat),
            short_run("asyncio", OLD_ASYNCIO_SHORT[repeat], repeat),
            short_run("coro-threadpool", OLD_POOL_SHORT[repeat], repeat),
            # a 50× collapse: convoy-collapse reproduced
            convoy_run("threads", 10_000 + 100 * repeat, 200 + 10 * repeat, repeat),
            # a stall to 0 both times: an infinite drop factor, convoy-stall reproduced
            convoy_run("coro", 9_000 + 100 * repeat, 0.0, repeat),
            short_run("gevent", OLD_GEVENT_SHORT[repeat], repeat),
        ]
    runs.append(short_run("sync", OLD_SYNC_SHORT, 0))
    return runs


def new_runs() -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for repeat in (0, 1):
        asyncio = short_run("asyncio", NEW_ASYNCIO_SHORT[repeat], repeat)
        pool = short_run("coro-threadpool", NEW_POOL_SHORT[repeat], repeat)
        runs += [
            # slower, with twice the latency and more CPU
            short_run("threads", NEW_THREADS_SHORT[repeat], repeat, p50=0.09, cpu_cores=1.5),
            short_run("coro", NEW_CORO_SHORT[repeat], repeat),
            noisy(asyncio) if repeat == 0 else asyncio,
            pool | {"bottleneck": "loadgen"} if repeat == 1 else pool,
            # only 5× now: convoy-collapse not reproduced
            convoy_run("threads", 10_000 + 100 * repeat, 2_000 + 100 * repeat, repeat),
            # other figures, the same verdict: convoy-stall still reproduced
            convoy_run("coro", 9_500 + 100 * repeat, 0.0, repeat),
            short_run("gevent", NEW_GEVENT_SHORT[repeat], repeat),
        ]
    runs.append(short_run("sync", NEW_SYNC_SHORT, 0))
    return runs


def write_summary(path: Path, summary: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary), "utf-8")
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    old = write_summary(tmp_path / "old" / "summary.json", a_summary(old_runs()))
    new = write_summary(tmp_path / "new" / "summary.json", a_summary(new_runs()))
    return old, new


def synthetic_comparison() -> Comparison:
    old = compare_side(check_summary(a_summary(old_runs())), Path("old/summary.json"))
    new = compare_side(check_summary(a_summary(new_runs())), Path("new/summary.json"))
    return compare_sides(old, new)


def figure_change(
    comparison: Comparison, variant: str, scenario: str, figure: str, clients: int | None = None
) -> FigureChange:
    key = (("variant", variant), ("scenario", scenario), ("clients", clients))
    found = [c for c in comparison.figures if c.row == key and c.kind.name == figure]
    assert len(found) == 1, f"expected one {figure} of {key}, got {found}"
    return found[0]


def percent(old: float, new: float) -> float:
    return (new - old) / old * 100


def test_a_regression_outside_both_spreads_is_worse() -> None:
    change = figure_change(synthetic_comparison(), "threads", "short", "req/s")
    assert change.old.spread.median == statistics.median(OLD_THREADS_SHORT)
    assert change.new.spread.median == statistics.median(NEW_THREADS_SHORT)
    assert change.change_percent == pytest.approx(
        percent(statistics.median(OLD_THREADS_SHORT), statistics.median(NEW_THREADS_SHORT))
    )
    assert change.outside_both_spreads is True
    assert change.status == WORSE


def test_each_figure_is_judged_by_its_direction() -> None:
    comparison = synthetic_comparison()
    # latency up: worse (lower is better)
    assert figure_change(comparison, "threads", "short", "p50 ms").status == WORSE
    # the convoy drops 5× instead of 50×: the drop factor and the short req/s during
    # the long request are better (lower, higher), the figure before it unchanged
    assert figure_change(comparison, "threads", "convoy", "drop factor").status == BETTER
    assert figure_change(comparison, "threads", "convoy", "short req/s during").status == BETTER
    assert figure_change(comparison, "threads", "convoy", "short req/s before").status == WITHIN
    # more server CPU is neither better nor worse in itself
    assert figure_change(comparison, "threads", "short", "CPU cores").status == CHANGED


def test_a_change_inside_the_spread_is_within_spread() -> None:
    change = figure_change(synthetic_comparison(), "coro", "short", "req/s")
    assert change.change_percent == pytest.approx(
        percent(statistics.median(OLD_CORO_SHORT), statistics.median(NEW_CORO_SHORT))
    )
    assert change.outside_both_spreads is False
    assert change.status == WITHIN
    one_sided = figure_change(synthetic_comparison(), "gevent", "short", "req/s")
    assert not OLD_GEVENT_SHORT[0] <= one_sided.new.spread.median <= OLD_GEVENT_SHORT[1]
    assert one_sided.outside_both_spreads is False
    assert one_sided.status == WITHIN


def test_noisy_and_loadgen_bound_figures_are_never_judged(pair: tuple[Path, Path]) -> None:
    comparison = synthetic_comparison()
    halved = figure_change(comparison, "asyncio", "short", "req/s")
    assert halved.outside_both_spreads is True, "outside the spread, yet not a regression"
    assert halved.status == NOT_JUDGED_NOISY
    generator = figure_change(comparison, "coro-threadpool", "short", "req/s")
    assert generator.outside_both_spreads is True
    assert generator.status == NOT_JUDGED_LOADGEN
    for change in comparison.figures:
        if change.row[0][1] in ("asyncio", "coro-threadpool"):
            assert change.status in (NOT_JUDGED_NOISY, NOT_JUDGED_LOADGEN), change

    old, new = pair
    write_baseline(old, new, new.parent)
    markdown = (new.parent / "baseline.md").read_text("utf-8")
    asyncio_row = next(
        line for line in markdown.splitlines() if "| asyncio | short |  | req/s" in line
    )
    assert "4,050 (4,000–4,100)‡" in asyncio_row
    assert asyncio_row.endswith("| not judged (noisy) |")
    pool_row = next(
        line for line in markdown.splitlines() if "| coro-threadpool | short |  | req/s" in line
    )
    assert "3,050 (3,000–3,100)†" in pool_row
    assert pool_row.endswith("| not judged (load generator) |")
    assert "† limited by the load generator" in markdown
    assert "‡ noisy: other processes used the machine" in markdown


def test_one_repeat_has_no_spread_and_is_never_significant() -> None:
    change = figure_change(synthetic_comparison(), "sync", "short", "req/s")
    assert change.change_percent == pytest.approx(percent(OLD_SYNC_SHORT, NEW_SYNC_SHORT))
    assert change.outside_both_spreads is None
    assert change.status == NO_SPREAD


def test_a_changed_verdict_is_listed_first(pair: tuple[Path, Path]) -> None:
    comparison = synthetic_comparison()
    changed = [(c.rule, c.variant) for c in comparison.verdicts_changed]
    assert changed == [("convoy-collapse", "threads")]
    only = comparison.verdicts_changed[0]
    assert only.old is not None
    assert only.new is not None
    assert (only.old.status, only.new.status) == ("reproduced", "not reproduced")
    # convoy-stall on coro: reproduced twice, on other figures
    assert comparison.verdicts_unchanged == 1

    old, new = pair
    write_baseline(old, new, new.parent)
    markdown = (new.parent / "baseline.md").read_text("utf-8")
    verdicts_at = markdown.index("## Verdicts that changed")
    assert verdicts_at < markdown.index("## Every figure side by side")
    row = next(line for line in markdown.splitlines() if line.startswith("| convoy-collapse |"))
    assert "| threads | ✅ reproduced: short req/s 10,050 before → 205 during" in row
    assert "| ❌ not reproduced: short req/s 10,050 before → 2,050 during" in row
    assert "1 verdict unchanged." in markdown


def test_differing_settings_are_warned_about(tmp_path: Path) -> None:
    old_summary = a_summary(old_runs())
    # a runner that pinned nothing says null; one from before pinning says nothing
    unpinned = a_summary(new_runs())
    unpinned["environment"]["pinning"] = None
    same = compare_sides(
        compare_side(check_summary(old_summary), Path("a")),
        compare_side(check_summary(unpinned), Path("b")),
    )
    assert same.settings_differ == []

    new_summary = a_summary(new_runs())
    new_summary["environment"] |= {
        "duration_s": 3,
        "long_n": 27,
        "short_users": 1,
        "pinning": {"server_cpus": [1], "loadgen_cpus": [0]},
    }
    old = write_summary(tmp_path / "old" / "summary.json", old_summary)
    new = write_summary(tmp_path / "new" / "summary.json", new_summary)
    comparison, _ = write_baseline(old, new, new.parent)
    assert {name: (old, new) for name, old, new in comparison.settings_differ} == {
        "duration_s": (10, 3),
        "long_n": (34, 27),
        "short_users": ("not recorded", 1),
        "pinning": ("none", {"server_cpus": [1], "loadgen_cpus": [0]}),
    }
    markdown = (new.parent / "baseline.md").read_text("utf-8")
    warning = next(line for line in markdown.splitlines() if "settings differ" in line)
    assert "duration_s 10 → 3" in warning
    assert "long_n 34 → 27" in warning
    assert "short_users not recorded → 1" in warning
    assert 'pinning none → {"server_cpus": [1], "loadgen_cpus": [0]}' in warning
    assert "not comparable like for like" in warning
    assert "| duration × repeats | 10 s × 3 repeats | 3 s × 3 repeats |" in markdown
    data = json.loads((new.parent / "baseline.json").read_text("utf-8"))
    assert {"setting": "duration_s", "baseline": 10, "new": 3} in data["settings_differ"]


def test_rows_in_one_run_only_are_listed_not_compared() -> None:
    new = a_summary([r for r in new_runs() if r["variant"] != "sync"])
    new["runs"].append(short_run("prefork", 9_000.0, 0))
    comparison = compare_sides(
        compare_side(check_summary(a_summary(old_runs())), Path("a")),
        compare_side(check_summary(new), Path("b")),
    )
    assert comparison.rows_only_old == [
        (("variant", "sync"), ("scenario", "short"), ("clients", None))
    ]
    assert comparison.rows_only_new == [
        (("variant", "prefork"), ("scenario", "short"), ("clients", None))
    ]
    assert not any(c.row[0][1] in ("sync", "prefork") for c in comparison.figures)


def test_json_holds_what_markdown_shows_and_is_strict(pair: tuple[Path, Path]) -> None:
    old, new = pair
    comparison, written = write_baseline(old, new, new.parent)
    assert written == [new.parent / "baseline.md", new.parent / "baseline.json"]

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    data = json.loads(written[1].read_text("utf-8"), parse_constant=no_constants)
    markdown = written[0].read_text("utf-8")
    assert len(data["figures"]) == len(comparison.figures)
    for figure in data["figures"]:
        row = figure["row"]
        line = (
            f"| {row['variant']} | {row['scenario']} | {row['clients'] or ''} | "
            f"{figure['figure']} | {figure['baseline']['text']} | {figure['new']['text']} | "
        )
        assert line in markdown, line
        assert f"{figure['status']} |" in markdown
    # the coro stall: an infinite drop factor on both sides, null in JSON, ∞ in words
    stall = next(
        f for f in data["figures"] if f["row"]["variant"] == "coro" and f["figure"] == "drop factor"
    )
    assert stall["baseline"]["median"] is None
    assert stall["baseline"]["text"] == "∞"
    assert stall["change_percent"] is None
    assert data["verdicts_changed"][0]["baseline"]["status"] == "reproduced"
    assert data["verdicts_unchanged"] == 1


# --- bad input and the command --------------------------------------------------

BAD_FILES: dict[str, tuple[str | None, str]] = {
    "missing": (None, "cannot read"),
    "not JSON": ("{not json", "is not JSON"),
    "wrong schema": (json.dumps({"environment": {}, "runs": []}), "environment.cores: missing"),
}


@pytest.mark.parametrize("bad_side", ["old", "new"])
@pytest.mark.parametrize("what", list(BAD_FILES))
def test_a_bad_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_side: str, what: str
) -> None:
    content, message = BAD_FILES[what]
    good = write_summary(tmp_path / "good" / "summary.json", a_summary(old_runs()))
    bad = tmp_path / "bad" / "summary.json"
    bad.parent.mkdir()
    if content is not None:
        bad.write_text(content, "utf-8")
    old, new = (bad, good) if bad_side == "old" else (good, bad)
    assert main(["--baseline", str(old), str(new), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert str(bad) in error
    assert message in error
    assert not (tmp_path / "out" / "baseline.md").exists()


def test_without_baseline_the_report_is_regenerated(tmp_path: Path) -> None:
    saved = write_summary(tmp_path / "summary.json", a_summary(old_runs()))
    assert main([str(saved)]) == 0
    assert (tmp_path / "summary.md").exists()
    assert not (tmp_path / "baseline.md").exists()


def report_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.compare.report", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_prints_the_paths_or_exits_2(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = pair
    done = report_cli("--baseline", str(old), str(new))
    assert done.returncode == 0, done.stderr
    assert f"wrote {new.parent / 'baseline.md'}" in done.stdout.splitlines()
    assert f"wrote {new.parent / 'baseline.json'}" in done.stdout.splitlines()
    assert "1 verdict changed" in done.stdout
    assert (new.parent / "baseline.md").exists()
    assert not (new.parent / "summary.md").exists(), "--baseline compares, it does not redraw"

    missing = tmp_path / "nowhere" / "summary.json"
    failed = report_cli("--baseline", str(missing), str(new), "--out", str(tmp_path / "out"))
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [
        f"loadtest.compare.report: cannot read {missing}: No such file or directory"
    ]


# --- real pairs -----------------------------------------------------------------------

# Each figure as read straight from a run object, written again here so that
# the comparison's medians are checked against an independent reading.
RAW_FIGURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "req/s": lambda run: run["rps"],
    "p50 ms": lambda run: run["latency_ms"]["p50"],
    "p99 ms": lambda run: run["latency_ms"]["p99"],
    "CPU s/request": lambda run: run["cpu_seconds_per_request"],
    "s/request": lambda run: run.get("seconds_per_request"),
    "short req/s before": lambda run: run.get("short_rps_before"),
    "short req/s during": lambda run: run.get("short_rps_during"),
    "GIL busy (probe)": lambda run: run.get("gil_wait_share"),
}


def raw_medians(summary: dict[str, Any]) -> dict[tuple[str, str, int | None, str], float]:
    """(variant, scenario, clients, figure) -> median over repeats, from the raw runs."""
    values: dict[tuple[str, str, int | None, str], list[float]] = {}
    for run in summary["runs"]:
        clients = run.get("clients") if run["scenario"] == "long" else None
        for name, read in RAW_FIGURES.items():
            value = read(run)
            if value is not None:
                values.setdefault((run["variant"], run["scenario"], clients, name), []).append(
                    value
                )
    return {key: statistics.median(found) for key, found in values.items()}


def assert_medians_match(data: dict[str, Any], old: Path, new: Path) -> None:
    old_summary, new_summary = (json.loads(path.read_text("utf-8")) for path in (old, new))
    old_medians, new_medians = raw_medians(old_summary), raw_medians(new_summary)
    compared = {
        (f["row"]["variant"], f["row"]["scenario"], f["row"]["clients"], f["figure"]): f
        for f in data["figures"]
    }
    both = set(old_medians) & set(new_medians)
    assert both, "the two runs share figures"
    assert both <= set(compared), both - set(compared)
    for key in both:
        figure = compared[key]
        assert figure["baseline"]["median"] == pytest.approx(old_medians[key]), key
        assert figure["new"]["median"] == pytest.approx(new_medians[key]), key

    # every row both runs have is compared
    def rows(summary: dict[str, Any]) -> set[tuple[str, str, int | None]]:
        return {
            (r["variant"], r["scenario"], r.get("clients") if r["scenario"] == "long" else None)
            for r in summary["runs"]
        }

    assert {key[:3] for key in compared} == rows(old_summary) & rows(new_summary)


def test_the_stored_pair_of_talk_runs_unpinned_and_pinned(tmp_path: Path) -> None:
    # docs/results/ (make results): the talk's variants, then the same pinned
    old = ROOT / "docs" / "results" / "talk" / "summary.json"
    new = ROOT / "docs" / "results" / "pinning" / "summary.json"
    comparison, written = write_baseline(old, new, tmp_path)
    data = json.loads(written[1].read_text("utf-8"))
    assert_medians_match(data, old, new)
    assert "pinning" in {name for name, *_ in comparison.settings_differ}
    assert comparison.verdicts_unchanged + len(comparison.verdicts_changed) == len(
        load_side(new).verdicts
    )


@pytest.mark.slow
def test_two_real_quick_runs_compare_median_by_median(
    quick_threads: RealRun, quick_threads_again: RealRun
) -> None:
    # the session's two runs of one command (each asserted to exit 0)
    old, new = quick_threads.summary_path, quick_threads_again.summary_path
    done = report_cli("--baseline", str(old), str(new))
    assert done.returncode == 0, done.stderr
    assert f"wrote {new.parent / 'baseline.json'}" in done.stdout
    data = json.loads((new.parent / "baseline.json").read_text("utf-8"))
    assert_medians_match(data, old, new)
    assert data["settings_differ"] == [], "same command, same settings"
    assert {(f["row"]["scenario"], f["figure"]) for f in data["figures"]} >= {
        ("short", "req/s"),
        ("convoy", "short req/s before"),
        ("convoy", "drop factor"),
    }
    for figure in data["figures"]:
        flagged = figure["baseline"]["noisy_repeats"] or figure["new"]["noisy_repeats"]
        generator = figure["baseline"]["loadgen_repeats"] or figure["new"]["loadgen_repeats"]
        if flagged:
            assert figure["status"] == "not judged (noisy)", figure
        elif generator:
            assert figure["status"] == "not judged (load generator)", figure
        else:
            assert figure["status"] in ("better", "worse", "changed", "within spread"), figure
