# tests/loadtest/test_results.py
#
# `make results` (loadtest/results.py): its steps are the ones the committed
# reports come from (tests/repo/test_reports.py reads those); here, what the
# runner itself does: lists its steps, names a step it does not know, runs
# each step in an emptied folder, removes on a full run what no step makes,
# and stops at the first failing step with a record of what ran.

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from loadtest import results
from loadtest.toolbox import machine, provenance


def test_list_prints_every_step_with_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert results.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].split(" (")[0] for line in lines] == results.NAMES
    assert "two-busy-cores (beside 2 busy cores): python -m loadtest.compare" in lines[3]


def test_an_unknown_step_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert results.main(["--only", "talk,tlak"]) == 2
    assert "tlak" in capsys.readouterr().err


def writes(folder: Path, name: str) -> tuple[str, ...]:
    """A step's command: a file in its folder, as a report writer makes one."""
    code = f"import pathlib; p = pathlib.Path({str(folder)!r}); p.mkdir()"
    return (results.PYTHON, "-c", f"{code}; (p / {name!r}).write_text('x')")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """docs/results in tmp_path, two steps writing into it, a clean tree, a quiet machine."""
    out = tmp_path / "results"
    out.mkdir()
    steps = (
        results.Step("first", (writes(out / "first", "report.json"),)),
        results.Step("second", (writes(out / "second", "report.json"),)),
    )
    monkeypatch.setattr(results, "RESULTS", out)
    monkeypatch.setattr(results, "STEPS", steps)
    monkeypatch.setattr(results, "NAMES", [step.name for step in steps])
    monkeypatch.setattr(provenance, "commit", lambda: ("0123456789" * 4, False))
    monkeypatch.setattr(machine, "busy_now", lambda: machine.Busy(0.0, 0.1))
    return out


def test_a_full_run_empties_each_folder_and_removes_what_no_step_makes(lab: Path) -> None:
    (lab / "first").mkdir()
    (lab / "first" / "from-older-code.png").write_text("stale")
    (lab / "old-run").mkdir()
    (lab / "summary.md").write_text("stale")
    assert results.main([]) == 0
    assert sorted(path.relative_to(lab).as_posix() for path in lab.rglob("*")) == [
        "first", "first/report.json", "results.json", "second", "second/report.json",
    ]  # fmt: skip
    run = json.loads((lab / "results.json").read_text())
    assert run["all_steps"]
    assert [step["status"] for step in run["steps"]] == [0, 0]


def test_a_partial_run_keeps_the_other_entries_and_the_full_runs_record(lab: Path) -> None:
    (lab / "results.json").write_text("{}")
    (lab / "notes.txt").write_text("kept")
    (lab / "second").mkdir()
    (lab / "second" / "stale.txt").write_text("stale")
    assert results.main(["--only", "second"]) == 0
    assert (lab / "results.json").read_text() == "{}"
    assert (lab / "notes.txt").exists()
    assert not (lab / "first").exists()
    assert [path.name for path in (lab / "second").iterdir()] == ["report.json"]


def test_a_failing_step_stops_the_run_and_says_so(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = results.Step("first", ((sys.executable, "-c", "raise SystemExit(3)"),))
    monkeypatch.setattr(results, "STEPS", (failing, results.STEPS[1]))
    assert results.main([]) == 1
    run = json.loads((lab / "results.json").read_text())
    assert [(step["name"], step["status"]) for step in run["steps"]] == [("first", 3)]
    assert not run["all_steps"]
    assert not (lab / "second").exists()
    assert "first failed: stopped there" in capsys.readouterr().err


def test_a_tree_that_differs_from_its_commit_is_refused(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(provenance, "commit", lambda: ("0123456789" * 4, True))
    assert results.main([]) == 2
    assert "differs from commit 0123456789" in capsys.readouterr().err
    assert not (lab / "first").exists()
