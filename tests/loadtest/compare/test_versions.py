# tests/loadtest/compare/test_versions.py
#
# The cross-version table: one row per variant per Python, from each run's
# summary (the runs themselves are the runner's, tested in test_runner.py).

from __future__ import annotations

import pytest

from loadtest.compare.versions import main, versions_table

from .test_verdicts import a_summary, convoy_run, plausible_runs


def summary_on(python: str, convoy_during: float) -> dict[str, object]:
    runs = [
        run if run["scenario"] != "convoy" else convoy_run(run["variant"], 10_000, convoy_during)
        for run in plausible_runs(("threads", "coro"), repeats=1)
    ]
    for run in runs:
        if run["scenario"] == "convoy":
            run["gil_wait_share"] = 0.8
    summary = a_summary(runs)
    summary["environment"]["servers"] = {
        variant: {"python": python, "implementation": "cpython", "gil": "enabled"}
        for variant in ("threads", "coro")
    }
    return summary


def test_one_row_per_variant_per_python_with_the_convoy_and_the_gil() -> None:
    table = versions_table({"host": summary_on("3.11.7", 50), "3.14": summary_on("3.14.10", 0)})
    rows = [line for line in table.splitlines() if line.startswith(("| threads", "| coro"))]
    assert [row.split(" | ")[1] for row in rows] == [
        "host (3.11.7)", "host (3.11.7)", "3.14.10", "3.14.10"
    ]  # fmt: skip
    assert "10,000 → 50" in rows[0] or "10000 → 50" in rows[0], rows[0]
    assert "200.0×" in rows[0]
    assert "| ∞ |" in rows[2], "no short reply during the long one: an infinite drop"
    assert rows[0].endswith("| 80% |")
    assert "| GIL busy (probe, convoy run) |" in table
    # The column is a busy GIL, not server threads' contention, and says so under the table.
    assert "single-threaded loop" in table.split(rows[-1], 1)[1]


def test_a_bad_option_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--pythons", " , "])
    assert exit_info.value.code == 2
    assert "--pythons" in capsys.readouterr().err
