# tests/bench/test_hostile.py
#
# The reliability report's Markdown is rendered from its JSON alone
# (tests/bench/hostile.py): its rows and its sentences with figures come
# from the document, a report that lacks provenance is refused, and
# `--render DIR` writes the same report.md again. No server is started.

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from loadtest.toolbox import provenance
from tests.bench import hostile

THREADS_ROW = (
    "| `threads` | 20,000 | 18,774 | 0 | 0 | 0 | +13.0 | 9.4 | 0.02 | yes | 9,385 | 9,385 | 0 "
    "| EOF | 0.02 | 0 | n/a | n/a | n/a | n/a | n/a |"
)
PROCPOOL_ROW = (
    "| `threads-procpool` | 20,000 | 18,846 | 0 | 0 | 0 | +12.6 | 9.2 | 0.34 | yes | 2,557 "
    "| 2,557 | 0 | EOF | 0.06 | 0 | 5 | 11 | 0.00 | 2 | 6 |"
)
CORO_ROW = (
    "| `coro` | 20,001 | 18,669 | 0 | 0 | 0 | +7.5 | > limit (3/50) | 0.03 | yes | 9,722 "
    "| 9,722 | 0 | EOF | 0.02 | 0 | n/a | n/a | n/a | n/a | n/a |"
)


def entry(
    variant: str,
    checked: int,
    rss: float,
    seconds_to_close: float | None,
    closed: int,
    replies: int,
    median_ms: float,
    sigterm: tuple[int, float],
    kills: dict[str, Any] | None = None,
    inputs: int = 20_000,
) -> dict[str, Any]:
    sent, exit_seconds = sigterm
    return {
        "variant": variant,
        "fuzz": {
            "inputs": inputs, "connections": 97, "replies_checked": checked, "wrong": 0,
            "unanswered": 0, "resets": 0, "timeouts": 0, "crashed": False, "seconds": 30.5,
            "tracebacks": 0,
        },
        "non_reading": {
            "rss_before_mib": 20.0, "rss_growth_mib": rss, "seconds_to_close": seconds_to_close,
            "closed": closed, "idle_timeouts": closed, "replies": replies, "reply_bytes": 53,
            "tracebacks": 0,
        },
        "many_connections": {"admitted": 2000, "median_ms": median_ms, "up": True},
        "sigterm": {
            "signalled": True, "sent_before": sent, "replies": sent, "unanswered_before": 0,
            "wrong": 0, "end": "EOF", "exit_seconds": exit_seconds, "status": 0,
            "tracebacks": 0,
        },
        "worker_kills": kills,
        "notes": [],
    }  # fmt: skip


def sample_report() -> dict[str, Any]:
    args = argparse.Namespace(
        variants=["threads", "threads-procpool", "coro"],
        fuzz_inputs=20_000,
        seed=2015,
        close_limit=60.0,
    )
    parameters = hostile.parameters(args)
    parameters["server_max_unsent_bytes"] = 65536  # whatever FIB_MAX_UNSENT says here
    kills = {
        "kills": 5, "replies_ok": 4000, "server_errors": 11, "wrong": 0,
        "idle_cpu_seconds": 0.001, "workers": 2, "workers_at_start": 2, "other_processes": 1,
        "threads": 6, "tracebacks": 0,
    }  # fmt: skip
    coro = entry("coro", 18_669, 7.5, None, 3, 1_211_379, 0.03, (9_722, 0.02), inputs=20_001)
    coro["notes"] = ["SIGTERM: the server's log does not say 'stopped (drained)'"]
    return {
        "parameters": parameters,
        "load": {
            "start": {"load_average": [1.13, 18.35, 42.18], "tasks_running": 1, "tasks_total": 165},
            "end": {"load_average": [0.68, 4.3, 25.67], "tasks_running": 1, "tasks_total": 168},
            "cpu_busy_fraction": 0.2123,
            "run_seconds": 473.4,
        },
        "variants": [
            entry("threads", 18_774, 13.0, 9.4, 50, 2_640_000, 0.021, (9_385, 0.02)),
            entry("threads-procpool", 18_846, 12.6, 9.2, 50, 2_680_000, 0.34, (2_557, 0.06), kills),
            coro,
        ],
        "provenance": {
            "kind": "reliability",
            "schema": hostile.SCHEMA,
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "dirty": False,
            "command": "python -m tests.bench.hostile --out /tmp/hostile-out",
            "started": "2026-11-30T18:29:00+00:00",
            "wall_seconds": 474.1,
            "machine": {"cores": 2, "cpu_model": "Some CPU", "kernel": "6.1.0", "python": "3.11.7"},
        },
    }


def test_render_gives_the_rows_and_computes_the_sentences() -> None:
    markdown = hostile.render(sample_report())
    lines = markdown.splitlines()
    assert lines[0] == "# Reliability under hostile clients"
    assert lines[2].startswith(
        "Made by `python -m tests.bench.hostile --out /tmp/hostile-out` at commit 0123456789,"
    )
    assert "CPython 3.11.7; report schema 1." in lines[2]
    for row in (THREADS_ROW, PROCPOOL_ROW, CORO_ROW):
        assert row in lines
    for sentence in (
        "On this 2-CPU machine the load average (1, 5, 15 min) was 1.13, 18.35, 42.18 at the "
        "start and 0.68, 4.30, 25.67 at the end, and the CPUs were 21% busy over the 473 s run",
        "**Why one variant needs more than 60 s to close 50 non-readers.** It is not a hang.",
        "`FIB_IDLE_TIMEOUT` (3 s here)",
        "`FIB_MAX_UNSENT` (64 KiB, doubled by Linux)",
        # median of 52,800 and 53,600 replies per client, 53 bytes each
        "some 53,000 `ERR not-an-integer` lines of 53 bytes (about 2.8 MB) per client",
        "closing all 50 means writing about 2.7 million replies first: the variants that closed "
        "all 50 took from 9.2 s (`threads-procpool`) to 9.4 s (`threads`).",
        "The generator-scheduler variants (`coro`) write 20,190 replies a second to the 50 "
        "clients",  # 1,211,379 in 60 s
        "so they had closed 3 of the 50 after 60 s, by when each client had taken 24,228 replies.",
        "at most 0.26 MiB each in this run (the conformance suite holds every variant to 3 MiB",
        "| variant | fuzz inputs | replies checked | wrong | unanswered | crashes "
        "| 50 non-readers: RSS +MiB | all closed, s | 2,000 idle: fib(1) median ms |",
        "random points into separate sends,\n4 connections at once",
        "8-61 digit numbers",
        "- `coro`: non-reading: 3 of 50 closed within 60 s, 1,211,379 lines answered by then",
        "- `coro`: SIGTERM: the server's log does not say 'stopped (drained)'",
    ):
        assert sentence in markdown, sentence


def test_the_figures_in_the_prose_follow_the_parameters() -> None:
    report = sample_report()
    report["parameters"] |= {
        "close_limit_s": 30.0,
        "non_reading_clients": 40,
        "non_reading_idle_timeout_s": 5,
        "server_max_unsent_bytes": 131072,
    }
    markdown = hostile.render(report)
    assert "more than 30 s to close 40 non-readers" in markdown
    assert "`FIB_IDLE_TIMEOUT` (5 s here)" in markdown
    assert "`FIB_MAX_UNSENT` (128 KiB, doubled by Linux)" in markdown
    assert "| 40 non-readers: RSS +MiB |" in markdown
    assert "> limit (3/40)" in markdown
    assert "3 of 40 closed within 30 s" in markdown

    for variant in report["variants"]:
        variant["non_reading"] |= {"seconds_to_close": 5.0, "closed": 40, "idle_timeouts": 40}
    markdown = hostile.render(report)
    assert "**What closing 40 non-readers takes.**" in markdown
    assert "more than 30 s" not in markdown
    assert "generator-scheduler" not in markdown


def test_a_report_without_its_provenance_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = sample_report()
    assert provenance.missing(report["provenance"]) == []
    del report["provenance"]["commit"]
    report["provenance"]["machine"]["cores"] = None
    assert provenance.missing(report["provenance"]) == ["commit", "machine.cores"]
    (tmp_path / "report.json").write_text(json.dumps(report), "utf-8")
    assert hostile.main(["--render", str(tmp_path)]) == 2
    assert "provenance lacks commit, machine.cores" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_render_writes_the_same_report_md_from_report_json(tmp_path: Path) -> None:
    report = sample_report()
    written = hostile.write_report(copy.deepcopy(report), tmp_path)
    assert written == [tmp_path / "report.json", tmp_path / "report.md"]
    first = (tmp_path / "report.md").read_text("utf-8")
    assert first == hostile.render(report)
    (tmp_path / "report.md").write_text("stale\n", "utf-8")
    assert hostile.main(["--render", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text("utf-8") == first
    assert json.loads((tmp_path / "report.json").read_text("utf-8")) == report


def test_out_names_a_directory_not_the_old_markdown_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        hostile.main(["--out", str(tmp_path / "reliability.md")])
    assert exited.value.code == 2
    assert not (tmp_path / "reliability.md").exists()
