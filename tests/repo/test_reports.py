# tests/repo/test_reports.py
#
# Every committed report names what made it (docs/design.md §6.11): the
# commit, whether the code differed from it, the command, the wall time,
# the machine and its writer's schema version; they all come from one
# commit; and `make results` makes every one of them again.
#
# `make results` on a quiet machine makes them all (loadtest/results.py).

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

# The code that makes reports: a report names the commit it was made from,
# and that commit's code must be the code of this checkout (docs, the
# documentation generator and the tests may have changed since).
REPORT_CODE = ("services", "loadtest", "tests/bench", ":(exclude)loadtest/docgen")


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


@pytest.mark.parametrize("relative", report_paths())
def test_every_committed_report_names_what_made_it(relative: str) -> None:
    record = load(relative).get("provenance")
    absent = provenance.missing(record)
    assert not absent, f"{RESULTS}{relative} lacks {', '.join(absent)}: run `make results`"
    assert isinstance(record, dict)
    kind = record["kind"]
    assert kind in WRITERS, f"{RESULTS}{relative}: no writer of kind {kind!r}"
    assert record["schema"] == WRITERS[kind], (
        f"{RESULTS}{relative} has {kind} schema {record['schema']}, its writer writes "
        f"{WRITERS[kind]}: run `make results`"
    )


def test_the_committed_reports_come_from_one_commit_of_this_code() -> None:
    paths = report_paths()
    records = [load(path)["provenance"] for path in paths]
    commits = {record["commit"] for record in records}
    assert len(commits) == 1, f"reports from several commits: {sorted(commits)}"
    dirty = [path for path, r in zip(paths, records, strict=True) if r["dirty"]]
    assert not dirty, f"made from code that differed from its commit: {dirty}"
    [made_by] = commits
    changed = subprocess.run(
        ["git", "diff", "--stat", made_by, "HEAD", "--", *REPORT_CODE],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert changed.returncode == 0, f"commit {made_by} is not in this clone: {changed.stderr}"
    assert not changed.stdout, (
        f"the code that makes reports changed since {made_by[:10]} made them: run `make results`"
        f"\n{changed.stdout}"
    )


def test_make_results_makes_every_committed_report_and_nothing_else() -> None:
    entries = {name.removeprefix(RESULTS).split("/")[0] for name in tracked()}
    made = set(RESULT_STEPS) | {"results.json"}
    assert entries == made, (
        f"not made by `make results` (loadtest/results.py): {sorted(entries - made)}; "
        f"made but not committed: {sorted(made - entries)}"
    )
    run = load("results.json")
    assert run["all_steps"], "the committed results.json is of a partial or failed run"
    assert [step["name"] for step in run["steps"]] == list(RESULT_STEPS)


def test_a_compare_report_holds_every_environment_field_its_writer_writes() -> None:
    plan = Plan(
        variants=["threads"], scenarios=["short"], duration=8.0, repeat=1, warmup=1.0,
        short_n=1, long_n=30, short_users=1, rate=0.0,
    )  # fmt: skip
    written = set(environment(plan, "local", 0.1))
    for path in report_paths():
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
