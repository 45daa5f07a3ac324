# tests/loadtest/connections/test_cli.py
#
# The command's input, in-process: every bad option of `python -m
# loadtest.connections` exits 2 before anything runs, with a message that
# names it (docs/design.md §6.10); the report refuses what is not a
# connection run's report.json.

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.connections import cli, report


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--variants", "threads,nope"], "--variants 'threads,nope': unknown variant nope"),
        (["--counts", "10,x"], "--counts '10,x': expected a comma list of integers"),
        (["--counts", "0,10"], "--counts '0,10': every count must be at least 1"),
        (["--counts", "10,10"], "--counts '10,10': a count appears twice"),
        (["--counts", "1000000"], "--counts 1,000,000: this process may open"),
        (["--slow-counts", "-5"], "--slow-counts '-5': every count must be at least 1"),
        (["--slow-rate", "0"], "--slow-rate 0: must be in (0, 100]"),
        (["--slow-rate", "nan"], "--slow-rate nan: must be a finite number"),
        (["--slow-seconds", "0.5"], "--slow-seconds 0.5: must be at least 1 second"),
        (["--latency-requests", "3"], "--latency-requests 3: must be at least 10"),
        (["--fairness-seconds", "0.1"], "--fairness-seconds 0.1: must be 0 (none) or at least 0.5"),
    ],
)
def test_a_bad_option_exits_2_naming_it_before_anything_runs(
    arguments: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert cli.main([*arguments, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("loadtest.connections: ")
    assert named in error
    assert not out.exists()


def test_the_report_refuses_what_is_not_a_connection_runs_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report.main([str(tmp_path / "none.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    other = tmp_path / "report.json"
    other.write_text(json.dumps({"kind": "capacity", "points": []}))
    assert cli.main(["--redraw", str(tmp_path)]) == 2
    assert 'not a connection run\'s report (no "kind": "connections")' in capsys.readouterr().err
