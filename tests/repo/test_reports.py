# tests/repo/test_reports.py
#
# Every committed report names what made it (docs/design.md §6.11): the
# commit, whether the code differed from it, the command, the wall time,
# the machine and its writer's schema version; they all come from one
# commit; and `make results` makes every one of them again.
#
# The reports made before the provenance record existed are listed by name
# below. A listed report that gains its record fails here, so the list can
# only shrink; `make results` on a quiet machine empties it.

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadtest.capacity.runner import SCHEMA as CAPACITY_SCHEMA
from loadtest.compare.environment import environment
from loadtest.compare.plan import Plan
from loadtest.compare.summary import SCHEMA as COMPARE_SCHEMA
from loadtest.compare.versions import VERSIONS_SCHEMA
from loadtest.connections.report import SCHEMA as CONNECTIONS_SCHEMA
from loadtest.results import NAMES as RESULT_STEPS
from loadtest.results import SCHEMA as RESULTS_SCHEMA
from loadtest.switchinterval.summary import SCHEMA as SWITCH_INTERVAL_SCHEMA
from loadtest.timeline.report import SCHEMA as TIMELINE_SCHEMA
from loadtest.toolbox import provenance
from loadtest.toolbox.baseline import SCHEMA as BASELINE_SCHEMA
from tests.bench import bucketing, gil, hostile, server

ROOT = Path(__file__).resolve().parents[2]
RESULTS = "docs/results/"
REPORT_FILES = {
    "summary.json", "report.json", "timeline.json", "versions.json", "baseline.json",
    "results.json",
}  # fmt: skip

# kind (the record's "kind") -> the schema its writer writes today
WRITERS: dict[str, int] = {
    "compare": COMPARE_SCHEMA,
    "versions": VERSIONS_SCHEMA,
    "baseline": BASELINE_SCHEMA,
    "capacity": CAPACITY_SCHEMA,
    "switch-interval": SWITCH_INTERVAL_SCHEMA,
    "connections": CONNECTIONS_SCHEMA,
    "timeline": TIMELINE_SCHEMA,
    "results": RESULTS_SCHEMA,
    "reliability": hostile.SCHEMA,
    "gil-probe": gil.SCHEMA,
    "prefork-cost": server.SCHEMA,
    "timeline-cost": server.SCHEMA,
    "yield-cost": server.SCHEMA,
    "bucketing-cost": bucketing.SCHEMA,
}

# Made before reports named their makers: every JSON report of the last
# full set (2026-11-30 to 2026-12-06).
MADE_BEFORE_PROVENANCE = {
    "capacity-pinned/baseline.json", "capacity-pinned/summary.json", "capacity/summary.json",
    "connections/report.json", "modern-long-24s/summary.json", "modern-run1/summary.json",
    "modern-tothread-trio/summary.json", "modern/summary.json", "one-busy-core/summary.json",
    "pinning/pinned/baseline.json", "pinning/pinned/summary.json",
    "pinning/unpinned/summary.json", "summary.json", "switch-interval/summary.json",
    "timeline/timeline.json", "two-busy-cores/summary.json", "versions/3.13/summary.json",
    "versions/3.14/summary.json", "versions/host/summary.json",
}  # fmt: skip
# Entries of docs/results no step of `make results` writes: the earlier
# layout (the talk's run at the top, the benchmarks' Markdown pasted by
# hand, earlier runs kept beside the committed one). The next full run
# replaces them (talk/, gil-probe/, ...) and deletes these.
EARLIER_LAYOUT = {
    "bucketing-cost.md", "convoy.png", "cpu.png", "gil-probe.md", "latency.png",
    "modern-earlier-runs.md", "modern-long-24s", "modern-run1", "modern-tothread-trio",
    "prefork-cost.md", "reliability.md", "rps.png", "summary.json", "summary.md",
    "timeline-cost.md", "yield-cost.md",
}  # fmt: skip


def tracked(prefix: str = RESULTS) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", prefix], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name]


def report_paths() -> list[str]:
    return sorted(
        name.removeprefix(RESULTS) for name in tracked() if Path(name).name in REPORT_FILES
    )


def load(relative: str) -> dict[str, Any]:
    data = json.loads((ROOT / RESULTS / relative).read_text("utf-8"))
    assert isinstance(data, dict), f"{RESULTS}{relative}: not a JSON object"
    return data


def with_provenance() -> list[str]:
    return [path for path in report_paths() if path not in MADE_BEFORE_PROVENANCE]


@pytest.mark.parametrize("relative", report_paths())
def test_every_committed_report_names_what_made_it(relative: str) -> None:
    record = load(relative).get("provenance")
    if relative in MADE_BEFORE_PROVENANCE:
        assert provenance.missing(record), (
            f"{RESULTS}{relative} now names what made it: take it off MADE_BEFORE_PROVENANCE"
        )
        return
    absent = provenance.missing(record)
    assert not absent, f"{RESULTS}{relative} lacks {', '.join(absent)}: run `make results`"
    assert isinstance(record, dict)
    kind = record["kind"]
    assert kind in WRITERS, f"{RESULTS}{relative}: no writer of kind {kind!r}"
    assert record["schema"] == WRITERS[kind], (
        f"{RESULTS}{relative} has {kind} schema {record['schema']}, its writer writes "
        f"{WRITERS[kind]}: run `make results`"
    )


def test_the_committed_reports_come_from_one_commit_of_clean_code() -> None:
    records = [load(path)["provenance"] for path in with_provenance()]
    commits = {record["commit"] for record in records}
    assert len(commits) <= 1, f"reports from several commits: {sorted(commits)}"
    dirty = [path for path, r in zip(with_provenance(), records, strict=True) if r["dirty"]]
    assert not dirty, f"made from code that differed from its commit: {dirty}"


def test_make_results_makes_every_committed_report() -> None:
    entries = {name.removeprefix(RESULTS).split("/")[0] for name in tracked()}
    made = set(RESULT_STEPS) | {"results.json"}
    stray = sorted(entries - made - EARLIER_LAYOUT)
    assert not stray, f"no step of `make results` (loadtest/results.py) writes {stray}"
    gone = sorted(EARLIER_LAYOUT - entries)
    assert not gone, f"{gone} are no longer committed: take them off EARLIER_LAYOUT"


def test_a_compare_report_holds_every_environment_field_its_writer_writes() -> None:
    plan = Plan(
        variants=["threads"], scenarios=["short"], duration=8.0, repeat=1, warmup=1.0,
        short_n=1, long_n=30, short_users=1, rate=0.0,
    )  # fmt: skip
    written = set(environment(plan, "local", 0.1))
    for path in with_provenance():
        data = load(path)
        if data["provenance"]["kind"] != "compare":
            continue
        lacking = sorted(written - set(data["environment"]))
        assert not lacking, f"{RESULTS}{path} lacks environment {lacking}: run `make results`"


def test_a_fresh_record_is_complete_and_says_so() -> None:
    record = provenance.begin("compare", COMPARE_SCHEMA).record()
    assert provenance.missing(record) == []
    assert record["command"].startswith("python ")
    assert len(record["commit"]) == 40
    line = provenance.markdown_line(record)
    assert record["commit"][:10] in line
    assert "report schema 1" in line
    assert provenance.missing({"kind": "compare"}) == [
        "schema", "commit", "dirty", "command", "started", "wall_seconds", "machine"
    ]  # fmt: skip
