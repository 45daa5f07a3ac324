# tests/loadtest/docgen/test_reports.py
#
# The report loader and a few figures, on reports written here (SYNTHETIC
# test data, nothing measured): a missing report or key is an error naming
# the report's path and the key; fib's cost is scaled from the committed
# long request by φ per n; a "time grows per client" verdict is explained
# by the stage nearest its bound; the provenance table says "not recorded"
# where a report has no record, and how long `make results` took; a
# benchmark's ratio comes with its rounds and goal.

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.docgen import figures, tables
from loadtest.docgen.context import Context
from loadtest.docgen.reports import ReportError, Reports


def write(root: Path, relative: str, data: object) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), "utf-8")


def long_run(variant: str, clients: int, seconds: float, repeat: int = 0) -> dict[str, Any]:
    return {
        "variant": variant, "scenario": "long", "repeat": repeat, "clients": clients,
        "duration_s": 3.0, "requests": 6, "errors": 0, "rps": clients / seconds,
        "latency_ms": {"p50": seconds * 1e3, "p90": None, "p99": None, "p999": None, "max": None},
        "server_cpu_seconds": 1.0, "cpu_seconds_per_request": seconds,
        "loadgen_cpu_percent": 1.0, "bottleneck": "server", "seconds_per_request": seconds,
    }  # fmt: skip


def summary(runs: list[dict[str, Any]], **environment: Any) -> dict[str, Any]:
    return {
        "environment": {"cores": 2, "python": "3.11.7", "date": "2026-01-01", **environment},
        "runs": runs,
    }


@pytest.fixture
def reports(tmp_path: Path) -> Reports:
    return Reports(tmp_path)  # named docs/results/... as the committed ones


def test_a_missing_report_names_its_path_and_the_key(reports: Reports) -> None:
    with pytest.raises(ReportError, match=r"^docs/results/nope\.json: cannot read the report "
                       r"\(for environment\.long_n\)"):  # fmt: skip
        reports.get("nope.json", "environment", "long_n")


def test_a_missing_key_names_the_report_and_the_key(reports: Reports, tmp_path: Path) -> None:
    write(tmp_path, "a/summary.json", {"environment": {"cores": 2}, "points": [{"rps": 1}]})
    assert reports.get("a/summary.json", "points", 0, "rps") == 1
    missing = r"^docs/results/a/summary\.json: no key environment\.long_n$"
    with pytest.raises(ReportError, match=missing):
        reports.get("a/summary.json", "environment", "long_n")
    with pytest.raises(ReportError, match=r"no key points\[3\]$"):
        reports.get("a/summary.json", "points", 3)
    write(tmp_path, "b.json", {"environment": {"cores": "x"}})
    with pytest.raises(ReportError, match=r"environment\.cores is 'x', not a number"):
        reports.number("b.json", "environment", "cores")


def test_a_run_the_summary_lacks_is_named(reports: Reports, tmp_path: Path) -> None:
    write(tmp_path, "summary.json", summary([long_run("threads", 1, 0.5)]))
    assert reports.group("summary.json", "threads", "long", 1).variant == "threads"
    with pytest.raises(ReportError, match=r"^docs/results/summary\.json: no runs for coro convoy"):
        reports.group("summary.json", "coro", "convoy")
    assert reports.json("summary.json") is reports.json("summary.json")  # read once


def test_fib_is_scaled_from_the_committed_long_request_by_phi_per_n(
    reports: Reports, tmp_path: Path
) -> None:
    write(tmp_path, figures.TALK, summary([], long_n=34, long_seconds_single=0.471))
    context = Context(reports, "README.md")
    assert figures.fib_seconds(context, 34) == pytest.approx(0.471)
    assert figures.fib_seconds(context, 30) == pytest.approx(0.0687, abs=5e-4)
    assert figures.fib_seconds(context, 35) == pytest.approx(0.762, abs=5e-3)
    assert figures.fib_talk_long(context) == "~0.069 s"
    assert figures.fib_talk_slower(context) == "~4.8×"  # 0.33 s in 2015
    estimates = figures.fib_estimates(context)
    assert "fib(30) ≈ 0.069 s" in estimates
    assert "fib(34) = 0.471 s" in estimates


def test_the_long_verdict_is_explained_by_the_stage_nearest_its_bound(
    reports: Reports, tmp_path: Path
) -> None:
    # 2 clients 1.80× (1.6 floor: 1.125 to spare), 3 clients 2.59× (2.4 floor: 1.08)
    runs = [long_run("coro", k, s) for k, s in ((1, 0.6), (2, 1.08), (3, 1.554))]
    write(tmp_path, "summary.json", summary(runs))
    context = Context(reports, "docs/talk.md")
    text = figures.binding_stage(context, "summary.json", "coro")
    assert text == "3 clients took 2.59× one client's time against the 2.4 floor"
    # outside its bounds: every stage that is outside is named
    runs = [long_run("gevent", k, s) for k, s in ((1, 0.5), (2, 0.79), (3, 1.1))]
    write(tmp_path, "other.json", summary(runs))
    assert figures.stages_outside(context, "other.json", "gevent") == (
        "2 clients took 1.58× one client's time against the 1.6 floor and "
        "3 clients took 2.20× one client's time against the 2.4 floor"
    )


def test_the_provenance_table_says_what_made_each_report(reports: Reports, tmp_path: Path) -> None:
    record = {
        "kind": "compare", "schema": 1, "commit": "0123456789abcdef", "dirty": True,
        "command": "python -m loadtest.compare --variants talk",
        "started": "2026-01-01T00:00:00+00:00", "wall_seconds": 540.0, "machine": {},
    }  # fmt: skip
    write(tmp_path, "new/summary.json", {**summary([]), "provenance": record})
    write(tmp_path, "old/summary.json", summary([]))
    steps = [
        {"name": "talk", "commands": ["python -m x"], "busy_cores": 0, "status": 0,
         "seconds": 1800.0},
        {"name": "modern", "commands": ["python -m y"], "busy_cores": 0, "status": 0,
         "seconds": 1200.0},
    ]  # fmt: skip
    run = {"kind": "results", **{k: v for k, v in record.items() if k != "kind"}}
    write(tmp_path, "results.json", {"provenance": run, "steps": steps, "all_steps": True})
    table = tables.reports_provenance(Context(reports, "docs/testing.md"))
    lines = table.splitlines()
    rows = {line.split(" | ")[0]: line for line in lines[2:] if line.startswith("|")}
    new = rows["| [new/summary.json](results/new/summary.json)"]
    assert "`python -m loadtest.compare --variants talk` at 0123456789 (uncommitted changes)" in new
    assert new.endswith("| 9.0 min |")
    old = rows["| [old/summary.json](results/old/summary.json)"]
    assert old.count("not recorded") == 3
    assert not [row for row in rows if "results.json" in row]  # the run: the line below
    assert lines[-1] == (
        "The whole run ([results.json](results/results.json)): 2 steps, 50 min together, "
        "started 2026-01-01 00:00 UTC."
    )


def test_a_run_of_make_results_that_stopped_says_where(reports: Reports, tmp_path: Path) -> None:
    steps = [
        {"name": "talk", "status": 0, "seconds": 60.0},
        {"name": "pinning", "status": 2, "seconds": 30.0},
    ]
    started = "2026-01-01T10:30:00+00:00"
    write(tmp_path, "results.json", {"provenance": {"started": started}, "steps": steps})
    assert figures.results_run(Context(reports, "README.md")) == (
        "2 steps, 2 min together, started 2026-01-01 10:30 UTC; it stopped at `pinning` (exit 2)"
    )


def side_by_side(median: float, low: float, high: float, rounds: int, **extra: Any) -> Any:
    return {
        "rounds": rounds, "ratio": {"median": median, "min": low, "max": high},
        "cpu_us_per_request": {"a": 48.09, "b": 47.36, "difference": 0.73},
        "labels": {"a": "prefork", "b": "threads"}, **extra,
    }  # fmt: skip


def test_a_benchmarks_ratio_is_its_median_over_rounds_with_its_goal(
    reports: Reports, tmp_path: Path
) -> None:
    write(tmp_path, figures.PREFORK_COST, {"comparison": side_by_side(0.992, 0.953, 1.051, 6)})
    context = Context(reports, "docs/testing.md")
    assert figures.prefork_cost_ratio(context) == (
        "`prefork` answers fib(1) at 0.992 (median of 6 rounds, 0.953–1.051) of `threads`' "
        "rate, +0.73 µs server CPU per request"
    )
    goal = {"kind": "minimum", "minimum": 0.99}
    missed = side_by_side(0.988, 0.971, 0.999, 6, goal=goal)
    assert figures.ratio_text(context, "x", missed) == (
        "0.988 (median of 6 rounds, 0.971–0.999; goal ≥ 0.99: NOT met)"
    )
    one_round = side_by_side(1.5, 1.5, 1.5, 1)
    assert figures.ratio_text(context, "x", one_round) == "1.500 (median of 1 round)"
    with pytest.raises(ReportError, match=r"docs/results/x: no key ratio\.median or rounds"):
        figures.ratio_text(context, "x", {"ratio": {"median": 1.0}})


def test_the_reliability_headline_adds_up_every_variant(reports: Reports, tmp_path: Path) -> None:
    def variant(name: str, wrong: int, replies: int) -> dict[str, Any]:
        return {
            "variant": name,
            "fuzz": {"inputs": 100, "wrong": wrong, "unanswered": 0, "crashed": False},
            "sigterm": {"sent_before": 10, "replies": replies, "unanswered_before": 0,
                        "wrong": 0, "status": 0},
        }  # fmt: skip

    report = {
        "parameters": {"fuzz_inputs": 20000},
        "variants": [variant("sync", 0, 10), variant("asyncio", 1, 12)],
    }
    write(tmp_path, figures.RELIABILITY, report)
    context = Context(reports, "docs/reliability.md")
    assert figures.reliability_headline(context) == (
        "2 variants, 200 fuzzed inputs in all: 1 wrong reply, 0 unanswered, 0 crashes; "
        "after SIGTERM, 2 of 2 answered every line sent before it and exited 0"
    )
    assert figures.reliability_fuzz_inputs(context) == "20,000"
    assert figures.reliability_sigterm_extra(context) == "`asyncio`"


def test_a_link_is_relative_to_the_page(reports: Reports) -> None:
    assert Context(reports, "README.md").report_link("talk/summary.md") == (
        "docs/results/talk/summary.md"
    )
    assert Context(reports, "docs/talk.md").report_link("a/b.md") == "results/a/b.md"
    assert Context(reports, "docs/x/y.md").link("README.md") == "../../README.md"


def test_a_markdown_reports_table_is_read_under_its_heading(
    reports: Reports, tmp_path: Path
) -> None:
    (tmp_path / "report.md").write_text(
        "# r\n\n## Verdict\n\n| verdict | lab |\n|---|---|\n| ✅ | a \\| b |\n\ntext\n", "utf-8"
    )
    table = reports.markdown_table("report.md", "## Verdict")
    assert table == [["verdict", "lab"], ["✅", "a | b"]]
    with pytest.raises(ReportError, match=r"^docs/results/report\.md: no heading '## Plots'"):
        reports.markdown_table("report.md", "## Plots")
