# tests/loadtest/capacity/test_report.py
#
# The capacity report (loadtest/capacity/report.py) from a summary alone:
# the committed run of the talk's nine variants (docs/results/capacity)
# redraws to the very Markdown committed beside it, with a row per variant
# and three plots; a file that is not a capacity summary is named.

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.capacity.report import CapacityReportError, load, main, write_report
from tests.conftest import ROOT

COMMITTED = ROOT / "docs" / "results" / "capacity"
PLOTS = ("capacity-rps.png", "capacity-latency.png", "rate-curve.png")

pytestmark = pytest.mark.unmeasured  # drawn from figures already measured


def test_the_committed_run_redraws_to_its_own_markdown(tmp_path: Path) -> None:
    summary = load(COMMITTED / "summary.json")
    written = write_report(summary, tmp_path)
    assert [path.name for path in written] == ["capacity.md", *PLOTS]
    markdown = (tmp_path / "capacity.md").read_text("utf-8")
    assert markdown == (COMMITTED / "capacity.md").read_text("utf-8")
    for variant in {point["variant"] for point in summary["points"]}:
        assert f"| {variant} |" in markdown, variant
    for plot in PLOTS:
        assert (tmp_path / plot).read_bytes().startswith(b"\x89PNG"), plot
        assert f"]({plot})" in markdown


@pytest.mark.parametrize(
    ("content", "culprit"),
    [
        ("{", "Expecting property name"),
        (json.dumps({"kind": "compare", "runs": []}), "not a capacity run's summary"),
        (json.dumps({"kind": "capacity", "points": {}}), "no list of points"),
    ],
)
def test_a_summary_that_is_not_a_capacity_runs_is_named(
    tmp_path: Path, content: str, culprit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "summary.json"
    path.write_text(content, "utf-8")
    with pytest.raises(CapacityReportError, match=culprit):
        load(path)
    assert main([str(path)]) == 2
    error = capsys.readouterr().err
    assert str(path) in error
    assert culprit in error
