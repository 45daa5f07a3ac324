# tests/loadtest/connections/test_runner.py
#
# `python -m loadtest.connections` as a user runs it, on real servers with
# small counts: the report's structure, and figures that can only come from
# the run (the server's descriptors grew by the connections held, a thread
# each on `threads` and none on `asyncio`, memory grew), then a redraw
# from report.json; Redis, the anchor, measured the same way.

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.connections.runner import Plan, measure_redis
from loadtest.connections.tree import raise_open_files
from tests.conftest import ROOT

COUNTS = (10, 60)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("connections")
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.connections", "--variants", "threads,asyncio",
         "--counts", ",".join(map(str, COUNTS)), "--slow-counts", "20", "--slow-seconds", "1",
         "--latency-requests", "20", "--fairness-seconds", "0.5", "--no-admission-before",
         "--no-redis", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "report.json").read_text())


def by_variant(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["variant"]: record for record in report["variants"]}


def test_idle_connections_are_held_and_counted_in_the_servers_process(
    run: tuple[Path, dict[str, Any]],
) -> None:
    _out, report = run
    records = by_variant(report)
    assert report["kind"] == "connections"
    assert report["environment"]["counts"] == list(COUNTS)
    for variant, record in records.items():
        assert record["errors"] == [], variant
        base = record["baseline"]
        points = record["idle"]
        assert [p["connections"] for p in points] == list(COUNTS)
        for point in points:
            n = point["connections"]
            assert point["held"]
            assert point["opened"] == point["server_connections"] == n
            assert point["fds"] >= n
            assert point["rss_bytes"] > base["rss_bytes"] > 0
            assert point["latency_requests"] == 20
            assert 0 < point["latency_ms"]["p50"] <= point["latency_ms"]["p99"]
        assert record["release"]["connections"] == COUNTS[-1]
        # between the two counts (the baseline has a descriptor and a thread of the start
        # that go with the first connection)
        first, last = points
        assert abs(last["fds"] - first["fds"] - (COUNTS[1] - COUNTS[0])) <= 1
    grew = {v: r["idle"][1]["threads"] - r["idle"][0]["threads"] for v, r in records.items()}
    # a thread per connection on threads, none on asyncio; a helper thread of the
    # server's may come or go meanwhile
    assert abs(grew["threads"] - (COUNTS[1] - COUNTS[0])) <= 2
    assert abs(grew["asyncio"]) <= 2
    memory = {f["variant"]: f for f in report["figures"]["memory"]}
    assert memory["threads"]["threads"]["per_connection"] == pytest.approx(1.0, abs=0.05)
    assert memory["asyncio"]["threads"]["per_connection"] == pytest.approx(0.0, abs=0.05)
    for figure in memory.values():
        assert figure["memory"]["per_connection"] > 0
        assert figure["fds"]["per_connection"] == pytest.approx(1.0, abs=0.05)


def test_slow_clients_and_fairness_come_from_the_run(run: tuple[Path, dict[str, Any]]) -> None:
    _out, report = run
    for variant, record in by_variant(report).items():
        (slow,) = record["slow"]
        assert slow["asked"] == slow["connections"] == 20
        assert slow["served_all"], variant
        assert slow["replies"] == slow["sent"] >= 20
        assert slow["server_cpu_cores"] > 0
        assert slow["server_cpu_source"] == "metrics"
        assert slow["latency_ms"]["p99"] is not None
        for setting in ("before", "after"):
            side = record["fairness"][setting]
            assert side["batches"] >= 1, (variant, setting)  # 32,768 replies read at least once
            assert side["beside"]["requests"] > 0
            assert side["beside"]["connects"] > 0  # the probe's first turn is a new connection
        assert record["fairness"]["before"]["flags"] == ["--yield-every", "0"]


def test_the_report_has_every_section_and_redraws_the_same(
    run: tuple[Path, dict[str, Any]],
) -> None:
    out, _report = run
    markdown = (out / "report.md").read_text()
    for heading in (
        "## Memory per idle connection",
        "## Admission",
        "## Many slow clients",
        "## Fairness",
        "## Every idle point",
        "## What else the machine was doing",
    ):
        assert heading in markdown  # fmt: skip
    assert "| threads | 3." in markdown
    assert "12 to 30" in markdown  # §3.3's prediction beside the figure
    for plot in ("memory.png", "p99.png", "fairness.png"):
        assert (out / plot).stat().st_size > 1000
    (out / "report.md").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.connections", "--redraw", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "report.md").read_text() == markdown


def test_redis_is_measured_as_the_variants_are() -> None:
    pytest.importorskip("loadtest.capacity.anchor")
    limits = raise_open_files()
    plan = Plan(
        variants=[], counts=[10, 60], slow_counts=[10], slow_rate=1.0, slow_seconds=1.0,
        latency_requests=20, fairness_seconds=0, fairness_before=[], fairness_after=[],
        admission_before=False, redis=True, open_files=limits,
    )  # fmt: skip
    anchor, error = measure_redis(plan)
    if anchor is None and error and "on PATH" in error:
        pytest.skip(error)
    assert anchor is not None, error
    last = anchor["idle"][-1]
    assert last["held"]
    assert last["server_connections"] == 60
    # a descriptor each (the baseline may still hold the connection that asked
    # connected_clients a moment before)
    assert last["fds"] - anchor["baseline"]["fds"] >= 60 - 1
    assert last["latency_ms"]["p99"] is not None
    assert anchor["slow"][0]["replies"] >= 10
