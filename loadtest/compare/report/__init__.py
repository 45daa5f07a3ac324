# loadtest/compare/report: a comparison run's summary.json made readable.
#
# tables.py writes summary.md (the talk's figures beside the lab's, a verdict
# per rule, median and spread over repeats, the environment); plots.py draws
# the PNGs (req/s, latency, the convoy timeline, CPU). A figure the load
# generator limited is marked † in every table and hatched in every plot: it
# is not the server's.
#
#   python -m loadtest.compare.report results/DIR/summary.json [--out DIR]
#
# regenerates the report from a saved summary; with --baseline OLD/summary.json
# it compares the run with that earlier one instead (baseline.py, on
# loadtest.toolbox.baseline's model).

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.compare.report.baseline import write_baseline
from loadtest.compare.report.plots import plot_convoy, plot_cpu, plot_gil, plot_latency, plot_rps
from loadtest.compare.report.tables import render_markdown
from loadtest.compare.summary import (
    Summary,
    SummaryError,
    check_summary,
    group_runs,
    load_summary,
    variants_of,
)
from loadtest.compare.verdicts import Verdict, verdicts
from loadtest.timeline.report import render as render_timeline
from loadtest.toolbox.baseline import BaselineError, one_line


@dataclass(frozen=True)
class Report:
    paths: list[Path]  # the Markdown first, then the plots
    verdicts: list[Verdict]  # as the Markdown gives them

    def announce(self, written_before: Sequence[Path] = ()) -> None:
        """One line per verdict, then every file written."""
        for verdict in self.verdicts:
            print(verdict.line())
        for path in [*written_before, *self.paths]:
            print(f"wrote {path}")


def write_report(summary: Mapping[str, object] | Summary, out_dir: Path) -> Report:
    """Write summary.md and the plots into out_dir."""
    checked = check_summary(summary)
    found = verdicts(checked)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = group_runs(checked)
    variants = variants_of(checked)
    plots: list[Path] = []
    if groups:
        plots.append(plot_rps(groups, variants, out_dir / "rps.png"))
        optional = (
            plot_latency(groups, variants, out_dir / "latency.png"),
            plot_convoy(groups, out_dir / "convoy.png"),
        )
        plots.extend(plot for plot in optional if plot is not None)
        cores = float(checked["environment"]["cores"])
        plots.append(plot_cpu(groups, variants, cores, out_dir / "cpu.png"))
        if (gil := plot_gil(groups, variants, out_dir / "gil.png")) is not None:
            plots.append(gil)
    markdown = out_dir / "summary.md"
    text = render_markdown(checked, groups, found, plots)
    drawn = out_dir / "timeline" / "timeline.json"  # `--timeline` (docs/design.md §6.6)
    if drawn.exists():
        document = json.loads(drawn.read_text("utf-8"))
        text = text.rstrip("\n") + "\n\n" + render_timeline(document, "timeline/", level=2)
    markdown.write_text(text, "utf-8")
    return Report([markdown, *plots], found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.compare.report",
        description="Regenerate a comparison report (summary.md and plots) from summary.json, "
        "or, with --baseline, compare it with an earlier run (baseline.md, baseline.json).",
    )
    parser.add_argument("summary", type=Path, help="a summary.json written by loadtest.compare")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="OLD",
        help="an earlier summary.json: write baseline.md and baseline.json comparing with it",
    )
    parser.add_argument(
        "--out", type=Path, help="where to write the report (default: the summary's folder)"
    )
    args = parser.parse_args(argv)
    out_dir = args.out or args.summary.parent
    if args.baseline is not None:
        try:
            comparison, written = write_baseline(args.baseline, args.summary, out_dir)
        except (SummaryError, BaselineError) as error:
            print(f"loadtest.compare.report: {error}", file=sys.stderr)
            return 2
        print(one_line(comparison))
        for path in written:
            print(f"wrote {path}")
        return 0
    try:
        report = write_report(load_summary(args.summary), out_dir)
    except SummaryError as error:
        print(f"loadtest.compare.report: {error}", file=sys.stderr)
        return 2
    report.announce()
    return 0
