# tests/bench: programs that print figures (make bench-*), not tests; what
# they share. A program that keeps its figures writes DIR/report.json (every
# figure, the parameters and the provenance record of
# loadtest/toolbox/provenance.py) and DIR/report.md, rendered from the JSON
# alone, so `--render DIR` can make the Markdown again without measuring.
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.toolbox import provenance
from loadtest.toolbox.spread import spread as spread_of

Report = dict[str, Any]


def write_report(out: Path, report: Report, render: Callable[[Report], str]) -> list[Path]:
    """DIR/report.json, then DIR/report.md rendered from what that file holds."""
    out.mkdir(parents=True, exist_ok=True)
    written = out / "report.json"
    written.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", "utf-8")
    return [written, render_again(out, render)]


def read_report(folder: Path) -> Report:
    try:
        report = json.loads((folder / "report.json").read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"--render: no report.json to render in {folder}: {error}") from None
    if not isinstance(report, dict) or (lacking := provenance.missing(report.get("provenance"))):
        raise SystemExit(f"--render: {folder / 'report.json'}'s provenance lacks {lacking}")
    return report


def render_again(folder: Path, render: Callable[[Report], str]) -> Path:
    """DIR/report.md from DIR/report.json, nothing measured."""
    markdown = folder / "report.md"
    markdown.write_text(render(read_report(folder)), "utf-8")
    return markdown


def spread(values: list[float]) -> dict[str, float]:
    """The median, least and greatest of some rounds' figures, as report.json keeps them."""
    rounds = spread_of(values)
    if rounds is None:
        raise ValueError("no rounds to take the spread of")
    return {"median": rounds.median, "min": rounds.low, "max": rounds.high}
