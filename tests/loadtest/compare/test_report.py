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

import numpy
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from loadtest.compare.report import main, write_report
from loadtest.compare.report.plots import (
    bar_series,
    draw_convoy,
    grouped_bars,
    legend_with_marks,
    whole_seconds,
)
from loadtest.compare.report.tables import render_markdown
from loadtest.compare.summary import (
    SummaryError,
    TimelinePoint,
    check_summary,
    cpu_cores,
    group_figure,
    group_runs,
)
from loadtest.compare.verdicts import verdicts
from loadtest.talk import figures as talk
from tests.loadtest.compare.test_verdicts import (
    a_summary,
    convoy_run,
    noisy,
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
    written = write_report(lab_with_one_loadgen_bound_repeat(), out).paths
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
        "| variant | scenario | req/s | p50 ms | p99 ms | p99.9 ms | CPU cores | CPU s/request "
        "| peak memory MiB |" in (markdown)
    )
    # threads' short repeats: 17,444 / 17,800 / 18,156 req/s; p50 0.045 ms (45 µs)
    assert (
        "| threads | short | 17,800 (17,444–18,156) | 0.045 | 0.135 | 0.405 | 1.00 | "
        "56.2 µs (55.1 µs–57.3 µs) | 31.5 | 0 | server |"
    ) in markdown
    assert "| threads | 2 | 1.818 (1.782–1.854) | 2.02× |" in markdown  # long table
    assert "| threads | 3 | 2.745 (2.690–2.800) | 3.05× |" in markdown
    assert "| threads | 17,600 (17,248–17,952) | 195 (191–199) | 90× | 5.00 |" in markdown
    assert "| asyncio | 13,900 (13,622–14,178) | 0.00 | ∞ | 5.00 |" in markdown


def test_loadgen_bound_figures_are_marked(full_report: tuple[list[Path], str]) -> None:
    _, markdown = full_report
    sync_short = next(line for line in markdown.splitlines() if line.startswith("| sync | short"))
    assert "18,500 (18,130–18,870)†" in sync_short
    assert sync_short.endswith("| loadgen † (1/3) | – |")
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
        assert any(
            f"| {verdict.variant} |" in row
            and f"| {verdict.figures} | {verdict.margin_text} |" in row
            for row in rows
        ), "each verdict's row carries its figures and its margin"
    assert "| verdict | variant | behaviour | rule | lab | margin | talk (video time) |" in markdown


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


def test_peak_memory_is_beside_cpu_and_missing_is_a_dash_not_zero() -> None:
    runs = plausible_runs(("threads", "threads-procpool"), repeats=1)
    for run in runs:
        if run["variant"] == "threads-procpool":
            run["server_memory_peak_mib"] = 123.4 if run["scenario"] != "short" else None
        elif run["scenario"] == "short":
            del run["server_memory_peak_mib"]  # a report from before the figure
    checked = check_summary(a_summary(runs))
    markdown = render_markdown(checked, group_runs(checked), verdicts(checked), [])
    assert "| threads | short | 17,444 | 0.045 | 0.135 | 0.405 | 1.00 | 57.3 µs | – | 0 |" in (
        markdown
    )
    assert (
        "| threads-procpool | short | 5,684 | 0.045 | 0.135 | 0.405 | 1.00 | 175.9 µs | – |"
        in markdown
    )
    assert "| threads-procpool | convoy |" in markdown
    procpool_convoy = next(
        line for line in markdown.splitlines() if line.startswith("| threads-procpool | convoy |")
    )
    assert "| 123.4 |" in procpool_convoy
    assert "| 0.0 |" not in markdown, "a missing figure is never shown as zero"
    long_header = next(
        line for line in markdown.splitlines() if line.startswith("| variant | clients")
    )
    assert long_header.endswith("| CPU s/request | peak memory MiB |")
    assert "peak memory is" in markdown.split("## Throughput")[1].split("|")[0].lower()


def test_a_bad_peak_memory_is_named() -> None:
    runs = plausible_runs(("threads",), repeats=1)
    runs[0]["server_memory_peak_mib"] = "a lot"
    with pytest.raises(SummaryError, match=r"runs\[0\]\.server_memory_peak_mib"):
        check_summary(a_summary(runs))


def test_report_without_convoy_runs_has_no_convoy_plot(tmp_path: Path) -> None:
    runs = [r for r in plausible_runs(("threads",), repeats=1) if r["scenario"] == "short"]
    written = write_report(a_summary(runs), tmp_path).paths
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


# --- a noisy machine and long stages without data, in every table and plot ---------------


def noisy_threads_convoy_summary() -> dict[str, Any]:
    """threads and threads-procpool; threads' convoy measured only on a busy machine,
    its 3-client long stage without a reply."""
    runs = plausible_runs(("threads", "threads-procpool"), repeats=1)
    runs = without(runs, "threads", "convoy")
    runs.append(noisy(convoy_run("threads", 17_600, 1_470)))
    third = next(r for r in runs if r["variant"] == "threads" and r.get("clients") == 3)
    third |= {
        "requests": 0,
        "rps": 0.0,
        "seconds_per_request": None,
        "cpu_seconds_per_request": None,
    }
    third["latency_ms"] = dict.fromkeys(third["latency_ms"])
    for run in runs:
        run.setdefault("foreign_cpu_cores", 0.03)
        run.setdefault("steal_cpu_cores", 0.0)
        run.setdefault("load_average", {"start": 0.4, "end": 0.5})
        run.setdefault("noisy", False)
    summary = a_summary(runs)
    summary["environment"] |= {
        "busy_cores_at_start": 1.02,
        "load_average_at_start": 4.1,
        "noisy_threshold_cores": 0.25,
        "long_seconds_server": {"threads": 0.891, "threads-procpool": 0.902},
    }
    return summary


@pytest.fixture(scope="module")
def noisy_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("noisy")
    write_report(noisy_threads_convoy_summary(), out)
    return (out / "summary.md").read_text("utf-8")


def line_starting(markdown: str, start: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(start))


def test_noisy_runs_are_marked_in_every_table(noisy_report: str) -> None:
    convoy_row = line_starting(noisy_report, "| threads | convoy |")
    assert "‡" in convoy_row
    assert convoy_row.endswith("| 1.02 noisy ‡ (1/1) |")
    quiet_row = line_starting(noisy_report, "| threads | short |")
    assert "‡" not in quiet_row
    assert quiet_row.endswith("| 0.03 |")
    # the convoy table, the talk's figures beside the lab's, the verdicts
    assert "| threads | 17,600‡ | 1,470‡ | 12× |" in noisy_report
    assert "| 1,470 req/s (from 17,600)‡ |" in noisy_report
    assert "| ‡ noisy — rerun on a quiet machine | threads | one long request collapses" in (
        noisy_report
    )
    assert "‡ noisy: other processes used at least 0.25 CPU core on average" in noisy_report


def test_environment_shows_foreign_cpu_and_load_average(noisy_report: str) -> None:
    assert (
        "| other processes' CPU before the first run | 1.02 cores over 1 s, "
        "1-minute load average 4.1 |"
    ) in noisy_report
    assert (
        "| other processes' CPU during the runs | median 0.03, max 1.02 cores; "
        "steal max 0.00 cores; load average 0.4–5.3; 1 of 6 runs noisy ‡ (≥ 0.25 core) |"
    ) in noisy_report
    assert "| fib(34) alone on each server | threads 0.891 s, threads-procpool 0.902 s |" in (
        noisy_report
    )
    assert "fib(34), 0.90 s alone on this machine (0.89–0.90 s alone on the servers)" in (
        noisy_report
    )


def test_a_long_stage_without_reply_says_so_in_every_table(noisy_report: str) -> None:
    runs_row = line_starting(noisy_report, "| threads | long ×3 (no reply in this stage) |")
    assert "| 0.00 | – | – | – |" in runs_row
    long_row = line_starting(noisy_report, "| threads | 3 |")
    assert long_row.startswith("| threads | 3 | no reply in this stage | – | 0.00 | 0 |")
    assert "3 clients: no reply in this stage" in noisy_report  # the verdict
    talk_row = line_starting(noisy_report, "| perf1, 3 clients at once | threads |")
    assert talk_row.endswith("| no reply in this stage |")


def test_old_summaries_have_no_machine_rows(full_report: tuple[list[Path], str]) -> None:
    _, markdown = full_report
    assert "other processes' CPU" not in markdown
    assert "‡" not in markdown


def bars_of(ax: Axes) -> list[Rectangle]:
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def test_bar_plots_hatch_noisy_bars_and_name_missing_stages() -> None:
    summary = check_summary(noisy_threads_convoy_summary())
    groups = group_runs(summary)
    variants = ["threads", "threads-procpool"]
    series = bar_series(groups, variants, lambda group: group_figure(group, cpu_cores))
    figure = Figure()
    ax = figure.subplots()
    grouped_bars(ax, variants, series)
    legend_with_marks(ax, series)

    labels = [one.label for one in series]
    convoy = bars_of(ax)[len(variants) * labels.index("convoy")]  # threads' convoy bar
    assert convoy.get_hatch() == "xx"
    short = bars_of(ax)[len(variants) * labels.index("short")]
    assert short.get_hatch() is None
    notes = [text.get_text() for text in ax.texts]
    assert notes.count("no reply in this stage") == 1, "threads' long ×3 bar"
    legend = ax.get_legend()
    assert legend is not None
    assert any("noisy ‡" in text.get_text() for text in legend.get_texts())


def test_convoy_plot_dashes_noisy_runs_and_drops_partial_seconds() -> None:
    runs = plausible_runs(("threads", "threads-procpool"), repeats=1)
    runs = without(runs, "threads", "convoy")
    busy = noisy(convoy_run("threads", 17_600, 1_470))
    # as summaries written before the fix have it: a last, partial second with a fake drop
    busy["duration_s"] = 11.3
    busy["timeline"].append({"t": 11.0, "short_rps": 20.0, "long_in_progress": 0})
    runs.append(busy)
    groups = group_runs(check_summary(a_summary(runs)))
    figure = Figure()
    ax = figure.subplots()
    draw_convoy(ax, [group for group in groups if group.scenario == "convoy"])
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"threads ‡ noisy", "threads-procpool"}
    assert lines["threads ‡ noisy"].get_linestyle() == "--"
    assert lines["threads-procpool"].get_linestyle() == "-"
    noisy_line = lines["threads ‡ noisy"]
    assert numpy.asarray(noisy_line.get_xdata()).tolist() == [float(t) for t in range(11)]
    assert 20.0 not in numpy.asarray(noisy_line.get_ydata()).tolist()


def test_whole_seconds_keeps_the_points_that_cover_a_whole_second() -> None:
    points: list[TimelinePoint] = [
        {"t": float(t), "short_rps": 100.0, "long_in_progress": 0} for t in range(7)
    ]
    assert [p["t"] for p in whole_seconds(points, 6.05)] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [p["t"] for p in whole_seconds(points, 7.0)] == [float(t) for t in range(7)]


def test_a_run_with_the_gil_probe_gets_a_gil_plot_and_column(tmp_path: Path) -> None:
    runs = plausible_runs(("threads", "threads-procpool"), repeats=1)
    for run in runs:
        if run["scenario"] != "long":
            run["gil_wait_share"] = 0.4 if run["variant"] == "threads" else 0.03
    written = write_report(a_summary(runs), tmp_path).paths
    assert [path.name for path in written][-1] == "gil.png"
    with Image.open(tmp_path / "gil.png") as image:
        assert image.width > 800
    markdown = written[0].read_text("utf-8")
    convoy = markdown.split("## Convoy", 1)[1]
    assert "GIL busy (probe, run)" in convoy
    # The column is a busy GIL, not server threads' contention, and says so.
    (note,) = [line for line in convoy.splitlines() if line.startswith("GIL busy (probe):")]
    assert "single-threaded loop" in note, note
    assert "not that a server thread waited" in note, note
    assert "timeline (docs/design.md §6.6)" in note, note
    rows = {line.split(" | ")[0].strip("| "): line for line in convoy.splitlines() if "|" in line}
    assert rows["threads"].endswith("| 40% |"), rows["threads"]
    assert rows["threads-procpool"].endswith("| 3% |"), rows["threads-procpool"]


def test_a_run_without_the_gil_probe_draws_no_gil_plot(tmp_path: Path) -> None:
    written = write_report(a_summary(plausible_runs(("threads",), repeats=1)), tmp_path).paths
    assert "gil.png" not in [path.name for path in written]
    assert not (tmp_path / "gil.png").exists()


def test_the_report_gives_back_the_verdicts_it_wrote(tmp_path: Path) -> None:
    # the runner and the command print them: judged once, not again
    summary = a_summary(plausible_runs(("threads", "coro"), repeats=1))
    report = write_report(summary, tmp_path)
    assert report.verdicts == verdicts(check_summary(summary))
    assert report.verdicts, "threads and coro have rules"
    markdown = report.paths[0].read_text("utf-8")
    for verdict in report.verdicts:
        assert f"| {verdict.mark} {verdict.status} | {verdict.variant} |" in markdown


def test_a_run_with_timelines_shows_them_in_its_report(tmp_path: Path) -> None:
    # `--timeline` leaves OUT/timeline/timeline.json: the committed one here,
    # beside the committed comparison run's summary.json
    results = Path(__file__).resolve().parents[3] / "docs" / "results"
    (tmp_path / "timeline").mkdir()
    drawn = json.loads((results / "timeline" / "timeline.json").read_text())
    (tmp_path / "timeline" / "timeline.json").write_text(json.dumps(drawn))
    summary = json.loads((results / "talk" / "summary.json").read_text())
    write_report(summary, tmp_path)
    markdown = (tmp_path / "summary.md").read_text()
    assert "\n## The convoy, drawn: timelines\n" in markdown
    for variant in drawn["variants"]:
        assert f"### {variant}\n\n![{variant}](timeline/{variant}.png)" in markdown
        assert f"[trace](timeline/{variant}.trace.json.gz)" in markdown
