# tests/loadtest/switchinterval/test_cli.py
#
# The commands' input, in-process: every bad option of `python -m
# loadtest.switchinterval` exits 2 before anything runs, with a message that
# names it (docs/design.md §6.7); `python -m loadtest.switchinterval.report`
# refuses what is not a sweep's summary.json and redraws one that is.

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.switchinterval import cli, report
from tests.loadtest.switchinterval.sweeps import immune, on_law, sweep


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--variants", "threads,nope"], "--variants 'threads,nope': unknown variant nope"),
        (["--intervals-ms", "0.5,0"], "--intervals-ms '0.5,0': '0' is not"),
        (["--intervals-ms", "1,-2"], "'-2' is not a number of ms above 0"),
        (["--intervals-ms", "1,fast"], "'fast' is not"),
        (["--intervals-ms", "1,nan"], "'nan' is not"),
        (["--intervals-ms", "1,inf"], "'inf' is not"),
        (["--intervals-ms", "5"], "--intervals-ms '5': expected at least two different"),
        (["--intervals-ms", "5,5"], "--intervals-ms '5,5': expected at least two different"),
        (["--duration", "1"], "--duration 1: must be at least 3 seconds"),
        (["--repeat", "0"], "--repeat 0: must be at least 1"),
        (["--convoy-repeat", "-1"], "--convoy-repeat -1: must be at least 0"),
        (["--warmup", "-1"], "--warmup -1: must be at least 0"),
        (["--long-n", "99"], "--long-n '99': expected auto or an integer"),
        (["--long-seconds", "0"], "--long-seconds 0: must be more than 0"),
        (["--server-cpus", "99"], "--server-cpus '99': no CPU 99 here"),
        (["--loadgen-cpus", "1-0"], "--loadgen-cpus '1-0': the range '1-0' runs backwards"),
    ],
)
def test_a_bad_option_exits_2_naming_it_before_anything_runs(
    arguments: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert cli.main([*arguments, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("loadtest.switchinterval: ")
    assert named in error
    assert not out.exists()


def test_intervals_are_milliseconds_run_shortest_first() -> None:
    assert cli.parse_intervals_ms("20, 0.5,5") == [0.0005, 0.005, 0.02]


def test_the_report_refuses_what_is_not_a_sweeps_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.json"
    assert report.main([str(missing)]) == 2
    assert f"cannot read {missing}" in capsys.readouterr().err
    comparison = tmp_path / "summary.json"
    comparison.write_text(json.dumps({"environment": {}, "runs": []}), "utf-8")
    assert report.main([str(comparison)]) == 2
    assert '"kind": "switch-interval"' in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_the_report_is_redrawn_from_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.json"
    figures = {"threads": on_law(1, factor=1.2), "threads-procpool": immune()}
    summary.write_text(json.dumps(sweep(figures)), "utf-8")
    assert report.main([str(summary)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("✅ as predicted: threads:")
    assert printed[-2:] == [
        f"wrote {tmp_path / 'report.md'}",
        f"wrote {tmp_path / report.PLOT_NAME}",
    ]
    text = (tmp_path / "report.md").read_text("utf-8")
    # threads at 0.5 ms: t = 0.1 ms, so 1/(0.6 ms) = 1,667 predicted and 1.2× that recorded,
    # a reply every 0.5 ms; the comparison's convoy stage 1.5× higher again
    assert (
        "| 0.5 ms | 10,000 | 2,000 | 0.50 | 1 | 1,667 | 1.20× | 3,000 (1.80×) | 0.530 | 0.500 "
        "| +6.0% |"
    ) in text
    assert "### threads-procpool (the control): no law" in text
    assert "| 20 ms | 4,000 | 3,200 | 0.31 | 64 | – | – | 4,800 | 0.500 | 0.500 | +0.0% |" in text
    assert (tmp_path / report.PLOT_NAME).read_bytes().startswith(b"\x89PNG")
