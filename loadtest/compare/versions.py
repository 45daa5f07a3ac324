# loadtest/compare/versions.py
#
#   python -m loadtest.compare.versions [--pythons host,3.13,3.14] [--out DIR] [runner options]
#
# The talk's core variants on several CPythons (docs/design.md §6): the
# comparison runner once per Python (this interpreter, then each version's
# variants image, built from this checkout), each into its own directory,
# then one table of the figures that say whether the convoy changed: short
# req/s, the convoy's short req/s before → during, one long request's time
# and how busy the GIL was during the convoy run (the GIL probe's wait, not a
# server thread's), per variant per Python.

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.compare import cli
from loadtest.compare.summary import (
    GIL_BUSY_NOTE,
    RunGroup,
    check_summary,
    find_group,
    group_runs,
)
from loadtest.toolbox import provenance
from loadtest.toolbox.formats import fmt_rps

VERSIONS_SCHEMA = 1  # versions.json's shape (docs/design.md §6.11)
CORE_VARIANTS = ("threads", "threads-procpool", "coro", "asyncio")
HOST = "host"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.compare.versions",
        description="The talk's core variants on several Pythons: one table "
        "(other options go to python -m loadtest.compare).",
    )
    parser.add_argument(
        "--pythons", default=f"{HOST},3.13,3.14",
        help=f"comma list: {HOST} (this interpreter) or CPython versions such as 3.14",
    )  # fmt: skip
    parser.add_argument("--variants", default=",".join(CORE_VARIANTS), help="comma list")
    parser.add_argument("--out", type=Path, help="default: results/versions-<time>")
    args, passed_on = parser.parse_known_args(argv)
    made = provenance.begin("versions", VERSIONS_SCHEMA)
    pythons = [item.strip() for item in args.pythons.split(",") if item.strip()]
    if not pythons:
        parser.error("--pythons: name at least one")
    out: Path = args.out or Path("results") / datetime.datetime.now().strftime(
        "versions-%Y%m%d-%H%M%S"
    )
    summaries: dict[str, dict[str, Any]] = {}
    for python in pythons:
        where = out / python
        options = ["--variants", args.variants, "--out", str(where), *passed_on]
        if python != HOST:
            options += ["--python", python]
        print(f"=== Python {python}", file=sys.stderr, flush=True)
        if cli.main(options) != 0:
            print(f"loadtest.compare.versions: the run on {python} failed", file=sys.stderr)
            return 2
        summaries[python] = json.loads((where / "summary.json").read_text("utf-8"))
    record = made.record()
    table = versions_table(summaries, record)
    document = {"provenance": record, "pythons": list(summaries)}
    (out / "versions.json").write_text(json.dumps(document, indent=1) + "\n", "utf-8")
    (out / "versions.md").write_text(table, "utf-8")
    print(table)
    print(f"written: {out / 'versions.md'}", file=sys.stderr)
    return 0


def versions_table(
    summaries: dict[str, dict[str, Any]], record: dict[str, Any] | None = None
) -> str:
    """One row per variant per Python, in the order they ran."""
    rows = []
    for python, summary in summaries.items():
        groups = group_runs(check_summary(summary))
        servers = summary["environment"].get("servers", {})
        for variant in dict.fromkeys(run["variant"] for run in summary["runs"]):
            ran_on = servers.get(variant, {}).get("python", "?")
            label = f"{python} ({ran_on})" if python == HOST else ran_on
            rows.append([variant, label, *figures(groups, variant)])
    environment = next(iter(summaries.values()))["environment"]
    lines = [
        f"# The talk's core variants across Pythons, {datetime.date.today().isoformat()}",
        "",
        *([provenance.markdown_line(record), ""] if record else []),
        f"On {environment.get('cores')} cores "
        f"({platform.machine()}), the runner and its load generator on Python "
        f"{environment.get('python')}. Long request fib({environment.get('long_n')}); each "
        "Python's runs and report are in the directory of its name.",
        "",
        "| variant | Python | short req/s | convoy short req/s before → during | drop | "
        "long request s (1 client) | GIL busy (probe, convoy run) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"{GIL_BUSY_NOTE} Here over the whole convoy run.", ""]
    return "\n".join(lines)


def figures(groups: Sequence[RunGroup], variant: str) -> list[str]:
    short = find_group(groups, variant, "short")
    convoy = find_group(groups, variant, "convoy")
    long_one = find_group(groups, variant, "long", 1)
    cells = [fmt_rps(short.median("rps")) if short else "–"]
    if convoy:
        before, during = convoy.median("short_rps_before"), convoy.median("short_rps_during")
        drop = "∞" if during == 0 else f"{before / during:.1f}×"
        gil = convoy.stat("gil_wait_share")
        cells += [
            f"{fmt_rps(before)} → {fmt_rps(during)}",
            drop,
        ]
    else:
        gil = None
        cells += ["–", "–"]
    seconds = long_one.stat("seconds_per_request") if long_one else None
    cells.append(f"{seconds.median:.2f}" if seconds else "–")
    cells.append(f"{gil.median:.0%}" if gil else "–")
    return cells


if __name__ == "__main__":
    sys.exit(main())
