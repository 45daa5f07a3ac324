# tests/loadtest/timeline/test_record.py
#
# One real timeline (Docker, CPython 3.15 in the variants image): the
# recording joins the client's, the server's and the sampler's records of
# the same run on one clock, and the trace and the picture are drawn from
# that recording and nothing else.

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loadtest.timeline.cli import run
from loadtest.timeline.draw import STATE_TRACK, lanes
from loadtest.timeline.record import RECORDING, Recipe, digest, load
from tests.conftest import unavailable


@pytest.fixture(scope="module")
def threads_timeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    if shutil.which("docker") is None:
        unavailable("Docker", "the timeline's servers run on CPython 3.15 in the variants image")
    folder = tmp_path_factory.mktemp("timeline")
    recipe = Recipe(long_n=30, before=0.15, after=0.15)
    results = run(["threads"], folder, recipe, workers=2, command="test")
    return folder, results["threads"]


def test_the_recording_joins_client_server_and_sampler_on_one_clock(
    threads_timeline: tuple[Path, dict[str, Any]],
) -> None:
    folder, result = threads_timeline
    recording = load(folder / "threads" / RECORDING)
    [short] = [c for c in recording["client"] if c["role"] == "short"]
    [long] = [c for c in recording["client"] if c["role"] == "long"]
    [server] = recording["server"]
    accepted = {e[5] for e in server["events"] if e[0] == "connection"}
    assert {short["port"], long["port"]} <= accepted  # the same run's connections
    # Each of the server's answers lies inside one client request's send → reply.
    requests = sorted(tuple(r) for r in short["requests"] + long["requests"])
    answered = [e for e in server["events"] if e[0] == "request"]
    assert len(answered) >= len(short["requests"])
    inside = sum(
        any(sent <= event[3] and event[4] <= replied for sent, replied in requests)
        for event in answered
    )
    assert inside == len(answered)
    # The sampler saw the long request's thread computing fib while it ran.
    sent, replied = long["requests"][0]
    flags = recording["samples"]["status_flags"]
    computing = [
        thread
        for at, sweep in recording["samples"]["sweeps"]
        if sent < at < replied
        for thread in sweep
        if thread[5] and thread[3] & flags["has_gil"]
    ]
    assert computing
    assert result["figures"]["long_n"] == 30


def test_the_trace_has_a_lane_per_server_thread_with_its_events(
    threads_timeline: tuple[Path, dict[str, Any]],
) -> None:
    folder, result = threads_timeline
    recording = load(folder / "threads" / RECORDING)
    trace = json.loads(gzip.decompress((folder / result["trace"]).read_bytes()))
    assert trace["otherData"]["recording_sha256"] == digest(folder / "threads" / RECORDING)
    named = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    spans: dict[tuple[int, int], int] = {}
    for event in trace["traceEvents"]:
        if event["ph"] == "X":
            spans[event["pid"], event["tid"]] = spans.get((event["pid"], event["tid"]), 0) + 1
    handlers = [lane for lane in lanes(recording) if lane.events]
    assert len(handlers) >= 2  # the short client's thread and the long one's
    for lane in lanes(recording):
        assert named[lane.pid, lane.thread] == lane.name
        assert (lane.pid, STATE_TRACK + lane.thread) in named
        recorded = sum(1 for kind, *_ in lane.events if kind != "connection")
        assert spans.get((lane.pid, lane.thread), 0) == recorded
    client_spans = sum(n for (pid, _tid), n in spans.items() if pid == 0)
    assert client_spans == sum(len(c["requests"]) for c in recording["client"])


def test_the_picture_names_the_recording_it_was_drawn_from(
    threads_timeline: tuple[Path, dict[str, Any]],
) -> None:
    folder, result = threads_timeline
    with Image.open(folder / result["png"]) as picture:
        described = picture.info["Description"]
    assert described == f"recording sha256 {digest(folder / 'threads' / RECORDING)}"
    markdown = (folder / "timeline.md").read_text()
    assert f"![threads]({result['png']})" in markdown
    assert result["expectations"]  # §3.2's claims, each checked
