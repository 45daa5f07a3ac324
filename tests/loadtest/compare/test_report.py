# tests/loadtest/compare/test_report.py
#
# The comparison report from SYNTHETIC summaries (built in test_verdicts.py;
# no measurement): summary.md holds the tables, the talk beside the lab with
# every verdict, loadgen-bound figures marked †, and the plots are real PNGs;
# `python -m loadtest.compare.report summary.json` regenerates it all from a file.

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loadtest.compare.report import main, write_report
from loadtest.compare.report.tables import render_markdown
from loadtest.compare.summary import check_summary, group_runs
from loadtest.compare.verdicts import verdicts
from loadtest.talk import figures as talk
from tests.loadtest.compare.test_verdicts import (
    a_summary,
    convoy_run,
    plausible_runs,
    plausible_summary,
    short_run,
    without,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("rps.png", "latency.png", "convoy.png", "cpu.png")
ROOT = Path(__file__).resolve().parents[3]


def assert_real_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
    assert len(data) > 10_000, f"{path.name} is only {len(data)} bytes"
    with Image.open(path) as image:
        image.verify()  # a complete, uncorrupted PNG
    with Image.open(path) as image:
        width, height = image.size
    assert width >= 800
    assert height >= 400


def lab_with_one_loadgen_bound_repeat() -> dict[str, Any]:
    # every variant, 3 repeats; sync's first short repeat was limited by the client
    summary = plausible_summary()
    first_sync_short = next(
        r for r in summary["runs"] if (r["variant"], r["scenario"]) == ("sync", "short")
    )
    first_sync_short["bottleneck"] = "loadgen"
    return summary


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], str]:
    out = tmp_path_factory.mktemp("report")
    written = write_report(lab_with_one_loadgen_bound_repeat(), out)
    return written, (out / "summary.md").read_text("utf-8")


def test_report_writes_markdown_and_every_plot(full_report: tuple[list[Path], str]) -> None:
    written, _ = full_report
    assert [path.name for path in written] == ["summary.md", *PLOTS]
    for path in written[1:]:
        assert_real_png(path)


def test_tables_show_median_and_spread_with_microsecond_latency(
    full_report: tuple[list[Path], str],
) -> None:
    _, markdown = full_report
    assert (
        "| variant | scenario | req/s | p50 ms | p99 ms | p99.9 ms | CPU cores | CPU s/request"
        in (markdown)
    )
    # threads' short repeats: 17,444 / 17,800 / 18,156 req/s; p50 0.045 ms (45 µs)
    assert (
        "| threads | short | 17,800 (17,444–18,156) | 0.045 | 0.135 | 0.405 | 1.00 | "
        "56.2 µs (55.1 µs–57.3 µs) | 0 | server |"
    ) in markdown
    assert "| threads | 2 | 1.818 (1.782–1.854) | 2.02× |" in markdown  # long table
    assert "| threads | 3 | 2.745 (2.690–2.800) | 3.05× |" in markdown
    assert "| threads | 17,600 (17,248–17,952) | 195 (191–199) | 90× | 5.00 |" in markdown
    assert "| asyncio | 13,900 (13,622–14,178) | 0.00 | ∞ | 5.00 |" in markdown


def test_loadgen_bound_figures_are_marked(full_report: tuple[list[Path], str]) -> None:
    _, markdown = full_report
    sync_short = next(line for line in markdown.splitlines() if line.startswith("| sync | short"))
    assert "18,500 (18,130–18,870)†" in sync_short
    assert sync_short.endswith("| loadgen † (1/3) |")
    threads_short = next(
        line for line in markdown.splitlines() if line.startswith("| threads | short")
    )
    assert "†" not in threads_short
    assert "† limited by the load generator" in markdown


def test_talk_section_sets_every_figure_beside_the_lab(full_report: tuple[list[Path], str]) -> None:
    _, markdown = full_report
    assert "## The talk reproduced" in markdown
    assert "fib(34), 0.90 s alone on this machine" in markdown
    assert "fib(30) at 0.33 s" in markdown
    for figure in talk.FIGURES:
        assert f'"{figure.quote}"' in markdown
        assert figure.at in markdown
    assert "| 17,800 req/s |" in markdown  # threads' short beside the talk's 25,000
    assert "| 195 req/s (from 17,600) |" in markdown  # beside the talk's 90
    assert "| 65.0 req/s (from 11,400) |" in markdown  # beside the talk's 29


def test_every_verdict_is_in_the_report(full_report: tuple[list[Path], str]) -> None:
    _, markdown = full_report
    found = verdicts(check_summary(lab_with_one_loadgen_bound_repeat()))
    assert len(found) == 14
    rows = [line for line in markdown.splitlines() if line.startswith("| ✅ reproduced |")]
    assert len(rows) == len(found)
    for verdict in found:
        assert any(f"| {verdict.variant} |" in row and verdict.figures in row for row in rows)


def test_cli_regenerates_the_report_from_summary_json(tmp_path: Path) -> None:
    # a run that does not reproduce: threads' convoy limited by the client, and
    # the process pool collapsing
    runs = without(plausible_runs(("threads", "threads-procpool"), repeats=1), "threads", "convoy")
    runs = without(runs, "threads-procpool", "convoy")
    runs += [
        convoy_run("threads", 17_600, 195, bottleneck="loadgen"),
        convoy_run("threads-procpool", 5_700, 300),
    ]
    saved = tmp_path / "results" / "summary.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps(a_summary(runs)), "utf-8")

    done = subprocess.run(
        [sys.executable, "-m", "loadtest.compare.report", str(saved)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "⚠ loadgen-bound: threads: one long request collapses short req/s" in done.stdout
    assert "❌ not reproduced: threads-procpool: a CPU hog in a separate process" in done.stdout
    assert "✅ reproduced: threads-procpool: a process pool costs baseline" in done.stdout
    markdown = (saved.parent / "summary.md").read_text("utf-8")
    assert "| ⚠ loadgen-bound | threads |" in markdown
    assert "| ❌ not reproduced | threads-procpool |" in markdown
    assert "5.3% of before" in markdown
    for name in PLOTS:
        assert_real_png(saved.parent / name)
        assert f"wrote {saved.parent / name}" in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        (json.dumps({"environment": {}, "runs": []}), "environment.cores: missing"),
        (json.dumps(a_summary([short_run("threads", 100.0) | {"rps": None}])), "runs[0].rps"),
    ],
)
def test_cli_rejects_a_bad_summary_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content, "utf-8")
    assert main([str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "summary.md").exists()


def test_report_without_convoy_runs_has_no_convoy_plot(tmp_path: Path) -> None:
    runs = [r for r in plausible_runs(("threads",), repeats=1) if r["scenario"] == "short"]
    written = write_report(a_summary(runs), tmp_path)
    assert [path.name for path in written] == ["summary.md", "rps.png", "latency.png", "cpu.png"]
    markdown = written[0].read_text("utf-8")
    assert "No rule applies" in markdown
    assert "## Convoy" not in markdown


def test_free_threaded_build_is_called_out() -> None:
    summary = a_summary(plausible_runs(("threads",), repeats=1))
    summary["environment"]["gil"] = "disabled"
    checked = check_summary(summary)
    markdown = render_markdown(checked, group_runs(checked), verdicts(checked), [])
    assert "without the GIL" in markdown
    assert "| gil | disabled |" in markdown
