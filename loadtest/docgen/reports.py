# loadtest/docgen/reports.py
#
# The committed reports as the figures read them: each JSON file read once
# (cached), rooted at docs/results, and every miss a ReportError that names
# the report's path and the key that was wanted. A comparison's summary.json
# also comes checked (loadtest.compare.summary), grouped over repeats and
# judged (loadtest.compare.verdicts), each once.

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.compare.summary import (
    RunGroup,
    Scenario,
    Summary,
    SummaryError,
    check_summary,
    find_group,
    group_runs,
)
from loadtest.compare.verdicts import Verdict, verdicts
from loadtest.docgen.regions import DocgenError

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"

Key = str | int


class ReportError(DocgenError):
    """A report that is missing, unreadable, or lacks a key a figure reads."""


def key_text(keys: tuple[Key, ...]) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in keys).lstrip(".")


@dataclass
class Reports:
    """The reports under `root`, named in messages as `label`/relative path."""

    root: Path = RESULTS
    label: str = "docs/results"
    _json: dict[str, Any] = field(default_factory=dict, repr=False)
    _summaries: dict[str, Summary] = field(default_factory=dict, repr=False)
    _groups: dict[str, list[RunGroup]] = field(default_factory=dict, repr=False)
    _verdicts: dict[str, list[Verdict]] = field(default_factory=dict, repr=False)
    _text: dict[str, str] = field(default_factory=dict, repr=False)

    def name(self, relative: str) -> str:
        """How a message (or a link from the repository's root) names the report."""
        return f"{self.label}/{relative}"

    def json(self, relative: str, *wanted: Key) -> Any:
        """The report's content (read once); `wanted` only names the key in an error."""
        if relative not in self._json:
            path = self.root / relative
            for_key = f" (for {key_text(wanted)})" if wanted else ""
            try:
                text = path.read_text("utf-8")
            except OSError as error:
                raise ReportError(
                    f"{self.name(relative)}: cannot read the report{for_key}: "
                    f"{error.strerror or error}"
                ) from None
            try:
                self._json[relative] = json.loads(text)
            except ValueError as error:
                raise ReportError(f"{self.name(relative)}: not JSON{for_key}: {error}") from None
        return self._json[relative]

    def text(self, relative: str, wanted: str) -> str:
        """A Markdown report's text (read once); `wanted` names what was sought in an error."""
        if relative not in self._text:
            try:
                self._text[relative] = (self.root / relative).read_text("utf-8")
            except OSError as error:
                raise ReportError(
                    f"{self.name(relative)}: cannot read the report (for {wanted}): "
                    f"{error.strerror or error}"
                ) from None
        return self._text[relative]

    def markdown_table(self, relative: str, heading: str) -> list[list[str]]:
        """The first table under `heading` in a Markdown report, as rows of cells, the
        header first (the lab's report writers render them: reading one reuses the
        writer's own figures, for a report whose JSON does not hold them)."""
        text = self.text(relative, f"the table under {heading!r}")
        lines = text.splitlines()
        if heading not in lines:
            raise ReportError(f"{self.name(relative)}: no heading {heading!r}")
        rows: list[list[str]] = []
        for line in lines[lines.index(heading) + 1 :]:
            if line.startswith("#"):
                break
            if re.fullmatch(r"\|(?:\s*:?-+:?\s*\|)+\s*", line):
                continue  # the header's rule
            if line.startswith("|"):
                cells = line.strip().removeprefix("|").removesuffix("|").split(" | ")
                rows.append([cell.strip().replace("\\|", "|") for cell in cells])
            elif rows:
                break
        if not rows:
            raise ReportError(f"{self.name(relative)}: no table under {heading!r}")
        return rows

    def get(self, relative: str, *keys: Key) -> Any:
        """The value at keys (object keys and list indexes) of the report."""
        value = self.json(relative, *keys)
        for depth, key in enumerate(keys):
            found = (isinstance(value, dict) and isinstance(key, str) and key in value) or (
                isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value)
            )
            if not found:
                missing = key_text(keys[: depth + 1])
                raise ReportError(f"{self.name(relative)}: no key {missing}")
            value = value[key]
        return value

    def number(self, relative: str, *keys: Key) -> float:
        value = self.get(relative, *keys)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportError(f"{self.name(relative)}: {key_text(keys)} is {value!r}, not a number")
        return float(value)

    # --- comparison summaries ------------------------------------------------

    def summary(self, relative: str) -> Summary:
        if relative not in self._summaries:
            try:
                self._summaries[relative] = check_summary(self.json(relative))
            except SummaryError as error:
                raise ReportError(f"{self.name(relative)}: {error}") from None
        return self._summaries[relative]

    def groups(self, relative: str) -> list[RunGroup]:
        if relative not in self._groups:
            self._groups[relative] = group_runs(self.summary(relative))
        return self._groups[relative]

    def group(
        self, relative: str, variant: str, scenario: Scenario, clients: int | None = None
    ) -> RunGroup:
        """The repeats of one measurement; a ReportError naming it when the run has none."""
        found = find_group(self.groups(relative), variant, scenario, clients)
        if found is None:
            stage = f" ×{clients}" if clients is not None else ""
            raise ReportError(
                f"{self.name(relative)}: no runs for {variant} {scenario}{stage} "
                f"(key runs[variant={variant}, scenario={scenario}])"
            )
        return found

    def median(
        self,
        relative: str,
        variant: str,
        scenario: Scenario,
        field: str,
        clients: int | None = None,
    ) -> float:
        """The median over repeats of one run figure; a ReportError when no repeat has it."""
        group = self.group(relative, variant, scenario, clients)
        figure = group.stat(field)
        if figure is None:
            stage = f" ×{clients}" if clients is not None else ""
            raise ReportError(
                f"{self.name(relative)}: no key runs[{variant} {scenario}{stage}].{field}"
            )
        return figure.median

    def verdicts(self, relative: str) -> list[Verdict]:
        if relative not in self._verdicts:
            self._verdicts[relative] = verdicts(self.summary(relative))
        return self._verdicts[relative]

    def verdict(self, relative: str, rule: str, variant: str) -> Verdict:
        for found in self.verdicts(relative):
            if (found.rule, found.variant) == (rule, variant):
                return found
        raise ReportError(f"{self.name(relative)}: no verdict {rule} for {variant}")
