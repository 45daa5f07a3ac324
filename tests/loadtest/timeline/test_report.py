# tests/loadtest/timeline/test_report.py
#
# The committed timelines (docs/results/timeline, made by `make timeline
# VARIANT=six`): the six pictures of docs/design.md §3.2 from one run, each
# trace with a lane per server thread holding that thread's events, and
# every figure, check, trace and picture made from the recording beside it.

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loadtest.timeline import report
from loadtest.timeline.cli import SIX
from loadtest.timeline.draw import STATE_TRACK, figures, lanes
from loadtest.timeline.record import digest, load
from tests.conftest import ROOT

COMMITTED = ROOT / "docs" / "results" / "timeline"


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((COMMITTED / "timeline.json").read_text())
    return document


def test_the_six_variants_of_the_design_from_one_run() -> None:
    document = committed()
    assert list(document["variants"]) == SIX
    assert document["command"].startswith("python -m loadtest.timeline --variants six")
    pids = {
        variant: {p["pid"] for p in load(COMMITTED / r["recording"])["server"]}
        for variant, r in document["variants"].items()
    }
    assert all(pids.values())


@pytest.mark.parametrize("variant", SIX)
def test_each_file_is_made_from_its_recording(variant: str) -> None:
    result = committed()["variants"][variant]
    source = COMMITTED / result["recording"]
    sha = digest(source)
    assert result["recording_sha256"] == sha
    recording = load(source)
    assert recording["variant"] == variant
    assert result["figures"] == json.loads(json.dumps(figures(recording)))
    checks = [e.__dict__ for e in report.expectations(variant, result["figures"])]
    assert result["expectations"] == checks
    with Image.open(COMMITTED / result["png"]) as picture:
        assert picture.info["Description"] == f"recording sha256 {sha}"
    trace = json.loads(gzip.decompress((COMMITTED / result["trace"]).read_bytes()))
    assert trace["otherData"]["recording_sha256"] == sha
    assert (COMMITTED / "timeline.md").read_text() == report.render(committed())


@pytest.mark.parametrize("variant", SIX)
def test_each_trace_has_a_lane_per_server_thread_with_its_events(variant: str) -> None:
    result = committed()["variants"][variant]
    recording = load(COMMITTED / result["recording"])
    trace = json.loads(gzip.decompress((COMMITTED / result["trace"]).read_bytes()))
    named = {
        (e["pid"], e["tid"])
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    spans: dict[tuple[int, int], int] = {}
    for event in trace["traceEvents"]:
        if event["ph"] == "X":
            key = (event["pid"], event["tid"])
            spans[key] = spans.get(key, 0) + 1
    server = lanes(recording)
    with_events = [lane for lane in server if any(k != "connection" for k, *_ in lane.events)]
    assert with_events, "no server thread handled a request"
    for lane in server:
        assert {(lane.pid, lane.thread), (lane.pid, STATE_TRACK + lane.thread)} <= named
        assert spans.get((lane.pid, lane.thread), 0) == sum(
            1 for kind, *_ in lane.events if kind != "connection"
        )
    sampled = sum(n for (_pid, tid), n in spans.items() if tid >= STATE_TRACK)
    assert sampled > 0, "no sampled state in the trace"


def test_the_readme_shows_the_pictures() -> None:
    readme = (ROOT / "README.md").read_text()
    for variant in SIX:
        assert f"docs/results/timeline/{variant}.png" in readme


def test_a_recording_that_differs_is_caught(tmp_path: Path) -> None:
    # the checks above compare with the recording: a changed one fails them
    result = committed()["variants"]["threads"]
    recording = load(COMMITTED / result["recording"])
    recording["client"][0]["requests"] = recording["client"][0]["requests"][50:]
    assert json.loads(json.dumps(figures(recording))) != result["figures"]
