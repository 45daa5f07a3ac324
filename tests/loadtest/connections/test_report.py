# tests/loadtest/connections/test_report.py
#
# The committed connection report (docs/results/connections, docs/design.md
# §6.10): its report.md is what the current code draws from its report.json,
# so every figure and verdict in it comes from the run's points.

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.connections.report import load, render
from loadtest.connections.summary import figures
from services import VARIANTS

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "results" / "connections"


def test_the_committed_report_is_what_its_points_draw() -> None:
    if not (COMMITTED / "report.json").is_file():
        pytest.fail(f"no committed connection report in {COMMITTED}")
    report = load(COMMITTED / "report.json")
    # The plots are the committed ones (a redraw, --redraw, draws them too).
    plots = [COMMITTED / name for name in ("memory.png", "p99.png", "fairness.png")]
    assert all(plot.is_file() for plot in plots)
    assert render(report, figures(report), plots) == (COMMITTED / "report.md").read_text()


def test_the_committed_report_covers_every_variant_and_the_anchor() -> None:
    report = load(COMMITTED / "report.json")
    assert [record["variant"] for record in report["variants"]] == list(VARIANTS)
    assert report["anchor"] is not None
    assert report["anchor"]["variant"] == "redis"
