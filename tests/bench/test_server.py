# tests/bench/test_server.py
#
# The reports of tests/bench/server.py (--prefork, --timeline, --yield-cost)
# rendered from small synthetic report dicts: the Result sentences are
# computed from the figures, the tables show every round, and --render
# makes report.md again from report.json alone. Nothing here starts a server.

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadtest.toolbox.errors import LabError
from tests.bench import server, write_report
from tests.conftest import ROOT


def made_by(kind: str) -> dict[str, Any]:
    return {
        "kind": kind, "schema": server.SCHEMA, "commit": "0123456789" * 4, "dirty": False,
        "command": f"python -m tests.bench.server --{kind}", "started": "2026-11-30T22:07:00+00:00",
        "wall_seconds": 61.2,
        "machine": {"cores": 2, "cpu_model": "Test CPU", "kernel": "6.1.0", "python": "3.11.7"},
    }  # fmt: skip


def comparison(
    labels: tuple[str, str],
    ratios: list[float],
    cpu: tuple[float, float],
    goal: dict[str, Any],
    ratio: tuple[float, float, float] | None = None,
) -> dict[str, Any]:
    """Rounds of 10,000 req/s on side b; `ratio`: median, min, max (else the rounds')."""
    rows = [
        {"round": number, "rate_a": 10_000 * value, "rate_b": 10_000.0, "ratio": value,
         "cpu_us_a": cpu[0], "cpu_us_b": cpu[1]}
        for number, value in enumerate(ratios, 1)
    ]  # fmt: skip
    median, low, high = ratio or (sorted(ratios)[len(ratios) // 2], min(ratios), max(ratios))
    return {
        "variants": {"a": "threads", "b": "threads"}, "flags": {"a": [], "b": []},
        "labels": {"a": labels[0], "b": labels[1]}, "pairs": 2, "rounds": len(ratios),
        "round_requests": 3000, "goal": goal, "by_round": rows,
        "ratio": {"median": median, "min": low, "max": high},
        "cpu_us_per_request": {"a": cpu[0], "b": cpu[1], "difference": cpu[0] - cpu[1]},
    }  # fmt: skip


PARAMETERS = {"rounds": 6, "round_requests": 3000, "pairs": 2, "warm_up_seconds": 0.5}
LOAD = {"start": [0.59, 0.7, 0.8], "end": [0.58, 0.6, 0.7]}
PREFORK_ROUNDS = [0.964, 1.051, 0.977, 0.953, 1.036, 1.007]


def prefork_report(
    ratio: float = 0.992, cpu: tuple[float, float] = (48.09, 47.36)
) -> dict[str, Any]:
    return {
        "parameters": {**PARAMETERS, "workers": 2, "scrape_seconds": 1.0},
        "comparison": comparison(("prefork", "threads"), PREFORK_ROUNDS, cpu, server.COST,
                                 ratio=(ratio, 0.953, 1.051)),
        "load_average": LOAD,
        "provenance": made_by("prefork-cost"),
    }  # fmt: skip


def test_prefork_result_is_computed_from_the_figures() -> None:
    markdown = server.render(prefork_report())
    assert markdown.startswith("# What serving from pre-forked workers costs per request\n")
    assert "Made by `python -m tests.bench.server --prefork-cost` at commit 0123456789" in markdown
    assert (
        "**Result:** prefork answers fib(1) at 0.992 of threads' rate (median of 6 rounds, "
        "range 0.953-1.051) for 0.73 µs more server CPU per request (48.09 against 47.36 µs): "
        "within this machine's round-to-round noise (here: a median within 2% of 1.000)."
    ) in markdown
    assert "| round | prefork req/s | threads req/s | ratio |" in markdown
    assert "| 2 | 10,510 | 10,000 | 1.051 | 48.1, 47.4 |" in markdown
    assert "median of 6 rounds **0.992** (range 0.953 .. 1.051; no goal: a cost)" in markdown
    assert "0.59 0.70 0.80 at the start, 0.58 0.60 0.70 at the end" in markdown


def test_prefork_beyond_the_noise_says_so() -> None:
    result = server.prefork_result(prefork_report(ratio=0.95, cpu=(47.0, 48.0)))
    assert "at 0.950 of threads' rate" in result
    assert "1.00 µs less server CPU per request (47.00 against 48.00 µs)" in result
    assert "a cost per request beyond this machine's round-to-round noise" in result


def timeline_report(
    on_median: float = 0.906, off_ratios: list[float] | None = None
) -> dict[str, Any]:
    off = off_ratios or [0.978, 1.036, 0.970, 1.028, 1.006, 1.042]
    return {
        "parameters": PARAMETERS,
        "base": {"given": "ae197c3", "compared_with": "ae197c3" + "0" * 33},
        "off": comparison(("this commit, timeline off", "commit ae197c3"), off, (44.23, 44.46),
                          server.at_least(server.OFF_GOAL), ratio=(1.017, min(off), max(off))),
        "control": comparison(("A", "B"), [1.017, 0.989, 1.017, 1.035, 1.004, 1.003],
                              (43.67, 44.21), server.CONTROL, ratio=(1.011, 0.989, 1.035)),
        "on": comparison(("timeline on", "timeline off"), [0.906, 0.900, 0.912, 0.934, 0.886],
                         (50.0, 44.58), server.COST, ratio=(on_median, 0.886, 0.934)),
        "load_average": LOAD,
        "provenance": made_by("timeline-cost"),
    }  # fmt: skip


def test_timeline_result_judges_off_and_on_against_the_control() -> None:
    markdown = server.render(timeline_report())
    assert (
        "**Result:** The method's noise is its control, commit ae197c3 against itself: 1.011 "
        "(median of 6 rounds, range 0.989-1.035); a median inside the range of its rounds, "
        "0.989-1.035, is noise. Off, the timeline costs nothing this method can resolve: "
        "`threads` answers fib(1) at 1.017 of commit ae197c3's rate (median of 6 rounds, range "
        "0.970-1.042; goal >= 0.99: met), 0.23 µs less server CPU per request (44.23 against "
        "44.46 µs). On, recording runs at 0.906 of the rate with it off (median of 5 rounds, "
        "range 0.886-0.934) for 5.42 µs more server CPU per request (50.00 against 44.58 µs): "
        "a cost beyond the method's noise."
    ) in markdown
    assert "against commit ae197c3 (ae197c30000" in markdown
    for heading in ("## Off, against commit ae197c3 (no timeline code)",
                    "## Control: commit ae197c3 against itself", "## On, against off"):  # fmt: skip
        assert heading in markdown
    assert "| 5 | 8,860 | 10,000 | 0.886 | 50.0, 44.6 |" in markdown


def test_timeline_off_below_its_goal() -> None:
    report = timeline_report(off_ratios=[0.95, 0.96, 0.97])
    report["off"]["ratio"]["median"] = 0.96
    result = server.timeline_result(report)
    assert "Off, the timeline costs more than the method's noise" in result
    assert "goal >= 0.99: NOT met" in result


def yield_report() -> dict[str, Any]:
    at_least = server.at_least(server.YIELD_GOAL)
    variants = [
        ("asyncio", [0.989, 0.994, 0.984, 0.991, 0.992, 0.984], 0.990, (93.67, 92.78)),
        ("gevent", [0.987, 0.971, 0.989, 0.999, 0.977, 0.989], 0.988, (98.75, 97.54)),
    ]
    return {
        "parameters": PARAMETERS,
        "base": {"given": "360bd02", "compared_with": "360bd02" + "1" * 33},
        "variants": [
            {"variant": name, "comparison": comparison(
                ("this commit, --yield-every 1", "commit 360bd02"), ratios, cpu, at_least,
                ratio=(median, min(ratios), max(ratios)))}
            for name, ratios, median, cpu in variants
        ],
        "control": comparison(("A", "B"), [0.981, 1.002, 0.998, 1.002, 1.003, 1.011],
                              (93.72, 93.93), server.CONTROL, ratio=(1.002, 0.981, 1.011)),
        "goal": server.YIELD_GOAL,
        "load_average": LOAD,
        "provenance": made_by("yield-cost"),
    }  # fmt: skip


def test_yield_result_names_the_goal_a_median_misses() -> None:
    markdown = server.render(yield_report())
    assert (
        "**Result:** no cost this method can resolve; gevent's median misses the goal of >= "
        "0.99. A client sending one line at a time, with `--yield-every 1`, gets asyncio 0.990 "
        "of commit 360bd02's rate (median of 6 rounds, range 0.984-0.994; goal >= 0.99: met), "
        "0.89 µs more server CPU per request (93.67 against 92.78 µs): within the method's "
        "noise; gevent 0.988 of commit 360bd02's rate (median of 6 rounds, range 0.971-0.999; "
        "goal >= 0.99: NOT met), 1.21 µs more server CPU per request (98.75 against 97.54 µs): "
        "within the method's noise. The method's noise is its control, asyncio at commit "
        "360bd02 against itself: 1.002 (median of 6 rounds, range 0.981-1.011)"
    ) in markdown
    assert "## gevent: this commit against commit 360bd02" in markdown
    assert "## Control: asyncio at commit 360bd02 against itself" in markdown
    assert markdown.count("| round | this commit, --yield-every 1 req/s |") == 2


def test_render_again_from_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = yield_report()
    (tmp_path / "report.json").write_text(json.dumps(report), "utf-8")
    server.main(["--render", str(tmp_path)])
    assert (tmp_path / "report.md").read_text("utf-8") == server.render(report)
    assert capsys.readouterr().out == f"wrote {tmp_path / 'report.md'}\n"


def test_write_report_writes_what_render_reads_back(tmp_path: Path) -> None:
    written = write_report(tmp_path / "new", prefork_report(), server.render)
    assert [path.name for path in written] == ["report.json", "report.md"]
    again = json.loads((tmp_path / "new" / "report.json").read_text("utf-8"))
    assert again == prefork_report()
    assert (tmp_path / "new" / "report.md").read_text("utf-8") == server.render(again)


def test_out_needs_a_report_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        server.parse(["--out", "/tmp/nowhere"])
    assert "--out: only with --prefork" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        server.parse(["--prefork", "--rounds", "0"])


def test_base_commit_is_the_full_hash() -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert server.base_commit(head[:7]) == head
    with pytest.raises(LabError, match="'fedcba9876' is not in the repository"):
        server.base_commit("fedcba9876")


def test_services_at_a_commit_from_git_objects() -> None:
    with server.services_at(server.base_commit("HEAD")) as before:
        assert (Path(before) / "services" / "__init__.py").is_file()


def test_one_control_round_judges_nothing() -> None:
    report = yield_report()
    report["control"] = comparison(("A", "B"), [1.02], (93.0, 93.0), server.CONTROL)
    result = server.yield_result(report)
    assert result.startswith("**Result:** no cost judged (the control ran one round);")
    assert result.count("not judged against noise (the control ran one round)") == 2
