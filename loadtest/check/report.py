# loadtest/check/report.py
#
# A check's results (docs/design.md §6.9): one line per case on the
# terminal (✅, ❌ with what was sent, expected and got, or skipped with
# the reason), and the same in report.md and report.json in the run's
# folder.

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from loadtest.check import behaviours
from loadtest.check.cases import TIMED_N, Limits, Result
from loadtest.toolbox.formats import markdown_table

MARKS = {"pass": "✅", "fail": "❌", "skipped": "skipped"}
LIMIT_NAMES = {
    "max_n": "largest n",
    "max_line": "longest line, bytes with its \\n",
    "idle_timeout": "idle timeout, s",
    "max_connections": "connection cap",
}


def counts(results: Sequence[Result]) -> dict[str, int]:
    return {outcome: sum(r.outcome == outcome for r in results) for outcome in MARKS}


def limit_lines(limits: Limits) -> list[tuple[str, str]]:
    """(name, "value (source)") for each limit."""
    found = asdict(limits)
    return [
        (
            name,
            f"{found[key]['value']:g} ({found[key]['source']})"
            if found[key]["value"] is not None
            else f"unknown: {found[key]['source']}",
        )
        for key, name in LIMIT_NAMES.items()
    ]


def case_lines(result: Result) -> list[str]:
    """The terminal's lines for one case: its mark and name; a failure's details."""
    lines = [
        f"{MARKS[result.outcome]} {result.name}" + (f": {result.reason}" if result.reason else "")
    ]
    if result.outcome == "fail":
        lines += [
            f"      sent     {result.sent}",
            f"      expected {result.expected}",
            f"      got      {result.got or '(nothing)'}",
        ]
    return lines


def tally_line(results: Sequence[Result]) -> str:
    tally = counts(results)
    return f"{tally['pass']} passed, {tally['fail']} failed, {tally['skipped']} skipped"


def write_report(
    out: Path,
    head: Mapping[str, object],
    limits: Limits,
    results: Sequence[Result],
    found: behaviours.Behaviours | None = None,
) -> list[Path]:
    """report.md and report.json in `out` (with --behaviours, their section); their paths."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        **head,
        "limits": asdict(limits),
        "counts": counts(results),
        "cases": [result.as_json() for result in results],
    }
    if found is not None:
        document["behaviours"] = behaviours.as_json(found)
    (out / "report.json").write_text(json.dumps(document, indent=1) + "\n", "utf-8")
    tally = counts(results)
    text = [
        f"# Protocol check of {head['target']}",
        "",
        f"`{head['command']}` at {head['time']}: {tally['pass']} passed, {tally['fail']} failed, "
        f"{tally['skipped']} skipped (docs/design.md §2; the check: §6.9).",
        "",
        "## The server's limits",
        "",
        *markdown_table(["limit", "value"], limit_lines(limits)),
        "",
        f"fib({TIMED_N}), the best of three: {limits.fib_seconds * 1000:.2f} ms (what a larger "
        "n is reckoned to cost).",
        "",
        "## Cases",
        "",
        *markdown_table(
            ["case", "outcome", "sent", "expected", "got", "reason"],
            [[r.name, MARKS[r.outcome], r.sent, r.expected, r.got, r.reason] for r in results],
        ),
        "",
        *(behaviours.markdown_lines(found) if found is not None else []),
    ]
    (out / "report.md").write_text("\n".join(text), "utf-8")
    return [out / "report.md", out / "report.json"]
