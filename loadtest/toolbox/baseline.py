# loadtest/toolbox/baseline.py
#
# A run set against a baseline run (docs/design.md §6.5): which verdicts
# changed, and every figure of both side by side with its change and whether
# that change is outside both runs' spread over repeats; as baseline.md and
# baseline.json (the same content as data).
#
# The comparison works on a generic model, so that every kind of summary can
# feed it: a source turns its file into a Side, whose rows map a row key to
# {figure name -> Measured (the values over repeats and the repeats' flags)}
# and whose figures say each figure's unit, direction and format. A figure
# measured while other processes used the machine (‡) or that the load
# generator limited (†) is shown, never judged better or worse.

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from loadtest.toolbox import provenance
from loadtest.toolbox.formats import (
    LOADGEN_MARK,
    NOISY_MARK,
    Format,
    markdown_table,
    marks,
    plural,
    spread_text,
)
from loadtest.toolbox.spread import Spread, spread


class BaselineError(ValueError):
    """Two runs that cannot be compared: summaries of different kinds."""


# --- the generic model -----------------------------------------------------------

# "no direction": a figure that is neither good nor bad when it grows (the
# server's CPU cores: more work done, or more waste); a change is then "changed".
Direction = Literal["higher is better", "lower is better", "no direction"]


@dataclass(frozen=True)
class FigureKind:
    name: str  # as the summary's tables title it: "req/s", "p99 ms", "drop factor"
    unit: str
    direction: Direction
    fmt: Format


@dataclass(frozen=True)
class Measured:
    """One figure of one row: its values over the repeats that had it, and the flags of
    the repeats of the row (any flagged repeat marks the figure, as the tables do)."""

    values: tuple[float, ...]  # never empty
    repeats: int  # repeats of the row, with or without this figure
    noisy_repeats: int = 0  # other processes used the machine (‡)
    loadgen_repeats: int = 0  # the load generator set the figure (†)

    @property
    def spread(self) -> Spread:
        figure = spread(self.values)
        assert figure is not None  # values is never empty
        return figure

    @property
    def marks(self) -> str:
        return marks(loadgen=self.loadgen_repeats > 0, noisy=self.noisy_repeats > 0)


Scalar = str | int | None
# A row's identity as (column, value) pairs: ("variant", "threads"), ("scenario",
# "long"), ("clients", 2). The columns come from the key, so a source is free to
# name its own.
RowKey = tuple[tuple[str, Scalar], ...]
Rows = dict[RowKey, dict[str, Measured]]
VerdictKey = tuple[str, str]  # (rule, variant)


@dataclass(frozen=True)
class VerdictState:
    status: str  # "reproduced", "not reproduced", "noisy — rerun on a quiet machine", ...
    mark: str
    figures: str  # the figures the verdict rests on, in words
    margin: str


@dataclass(frozen=True)
class Side:
    """One run as the comparison reads it, whatever kind of summary it came from."""

    path: Path
    kind: str  # what summary it came from; two kinds are never compared
    facts: dict[str, str]  # the header: date, Python, image, ... in words
    settings: dict[str, object]  # what must match for like-for-like figures
    figures: Mapping[str, FigureKind]  # every figure its rows may hold, in display order
    rows: Rows
    verdicts: dict[VerdictKey, VerdictState]


# --- the comparison ------------------------------------------------------------------
SCHEMA = 1  # baseline.json's shape, in its provenance record (docs/design.md §6.11)


BETTER = "better"
WORSE = "worse"
CHANGED = "changed"  # outside both spreads, on a figure with no direction
WITHIN = "within spread"
NO_SPREAD = "no spread (1 repeat)"
NOT_JUDGED_NOISY = "not judged (noisy)"
NOT_JUDGED_LOADGEN = "not judged (load generator)"
NOT_RECORDED = "not recorded"  # a setting one summary lacks
STATUS_ORDER = (WORSE, BETTER, CHANGED, WITHIN, NO_SPREAD, NOT_JUDGED_NOISY, NOT_JUDGED_LOADGEN)


@dataclass(frozen=True)
class FigureChange:
    row: RowKey
    kind: FigureKind
    old: Measured
    new: Measured
    change_percent: float | None  # None when the baseline is 0 or either median infinite
    outside_both_spreads: bool | None  # None: a side has one repeat, so no spread
    status: str


@dataclass(frozen=True)
class VerdictChange:
    rule: str
    variant: str
    old: VerdictState | None  # None: no such verdict in that run
    new: VerdictState | None


@dataclass(frozen=True)
class Comparison:
    old: Side
    new: Side
    settings_differ: list[tuple[str, object, object]]  # (setting, old, new)
    verdicts_changed: list[VerdictChange]
    verdicts_unchanged: int
    figures: list[FigureChange]
    rows_only_old: list[RowKey]
    rows_only_new: list[RowKey]
    # (row, figure, the side that has it) for figures only one run has
    figures_only_one: list[tuple[RowKey, str, Literal["baseline", "new"]]]


def change_percent(old: float, new: float) -> float | None:
    if old == 0 or not (math.isfinite(old) and math.isfinite(new)):
        return None
    return (new - old) / abs(old) * 100


def outside_both_spreads(old: Spread, new: Spread) -> bool:
    """The new median outside the baseline's [min, max] and the baseline's outside the new's."""
    return not (old.low <= new.median <= old.high) and not (new.low <= old.median <= new.high)


def judge(kind: FigureKind, old: Measured, new: Measured) -> tuple[bool | None, str]:
    """(outside both spreads, status) of one figure; flagged figures are never judged."""
    single = old.spread.count < 2 or new.spread.count < 2
    outside = None if single else outside_both_spreads(old.spread, new.spread)
    # noisy first, as the verdicts do: a busy machine starves the load generator too
    if old.noisy_repeats or new.noisy_repeats:
        return outside, NOT_JUDGED_NOISY
    if old.loadgen_repeats or new.loadgen_repeats:
        return outside, NOT_JUDGED_LOADGEN
    if outside is None:
        return None, NO_SPREAD
    if not outside:
        return False, WITHIN
    if kind.direction == "no direction":
        return True, CHANGED
    higher = new.spread.median > old.spread.median
    return True, BETTER if higher == (kind.direction == "higher is better") else WORSE


def compare_sides(old: Side, new: Side) -> Comparison:
    if old.kind != new.kind:
        raise BaselineError(f"{new.path}: a {new.kind}, but {old.path} is a {old.kind}")
    differ = [
        (name, old.settings.get(name, NOT_RECORDED), new.settings.get(name, NOT_RECORDED))
        for name in dict.fromkeys([*old.settings, *new.settings])
        if old.settings.get(name, NOT_RECORDED) != new.settings.get(name, NOT_RECORDED)
    ]

    changed: list[VerdictChange] = []
    unchanged = 0
    for key in dict.fromkeys([*old.verdicts, *new.verdicts]):
        before, after = old.verdicts.get(key), new.verdicts.get(key)
        if before is not None and after is not None and before.status == after.status:
            unchanged += 1
        else:
            changed.append(VerdictChange(*key, before, after))

    kinds = {**old.figures, **new.figures}
    figures: list[FigureChange] = []
    only_one: list[tuple[RowKey, str, Literal["baseline", "new"]]] = []
    for row, new_figures in new.rows.items():
        old_figures = old.rows.get(row)
        if old_figures is None:
            continue
        for name, kind in kinds.items():
            before_figure, after_figure = old_figures.get(name), new_figures.get(name)
            if before_figure is None or after_figure is None:
                if before_figure is not None:
                    only_one.append((row, name, "baseline"))
                elif after_figure is not None:
                    only_one.append((row, name, "new"))
                continue
            outside, status = judge(kind, before_figure, after_figure)
            figures.append(
                FigureChange(
                    row,
                    kind,
                    before_figure,
                    after_figure,
                    change_percent(before_figure.spread.median, after_figure.spread.median),
                    outside,
                    status,
                )
            )
    return Comparison(
        old=old,
        new=new,
        settings_differ=differ,
        verdicts_changed=changed,
        verdicts_unchanged=unchanged,
        figures=figures,
        rows_only_old=[row for row in old.rows if row not in new.rows],
        rows_only_new=[row for row in new.rows if row not in old.rows],
        figures_only_one=only_one,
    )


# --- as text ---------------------------------------------------------------------------


def row_text(row: RowKey) -> str:
    return " ".join(
        f"×{value}" if column == "clients" else str(value)
        for column, value in row
        if value is not None
    )


def measured_cell(kind: FigureKind, measured: Measured) -> str:
    """Median, (min–max) when the repeats differ, and the marks, as summary.md's cells."""
    return spread_text(measured.spread, kind.fmt) + measured.marks


SIDE_WORDS = {"baseline": "baseline", "new": "new run"}


def fmt_change(percent: float | None) -> str:
    if percent is None:
        return "–"
    if round(percent, 1) == 0:
        return "0.0%"  # not "−0.0%"
    return f"{percent:+.1f}%".replace("-", "−")


def setting_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def verdict_text(state: VerdictState | None) -> str:
    if state is None:
        return "no verdict"
    margin = f" [margin: {state.margin}]" if state.margin != "–" else ""
    return f"{state.mark} {state.status}: {state.figures}{margin}"


def settings_warning(comparison: Comparison) -> str | None:
    if not comparison.settings_differ:
        return None
    differences = "; ".join(
        f"{name} {setting_text(old)} → {setting_text(new)}"
        for name, old, new in comparison.settings_differ
    )
    return (
        f"**Warning: the settings differ** ({differences}): the figures are not comparable "
        "like for like."
    )


def status_counts(comparison: Comparison) -> str:
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for change in comparison.figures:
        counts[change.status] += 1
    return ", ".join(f"{count} {status}" for status, count in counts.items() if count)


def row_columns(rows: Sequence[RowKey]) -> list[str]:
    return list(dict.fromkeys(column for row in rows for column, _ in row))


def figure_table(changes: Sequence[FigureChange]) -> list[str]:
    columns = row_columns([change.row for change in changes])
    rows = []
    for change in changes:
        values = dict(change.row)
        rows.append(
            [
                *("" if values.get(column) is None else str(values[column]) for column in columns),
                change.kind.name,
                measured_cell(change.kind, change.old),
                measured_cell(change.kind, change.new),
                fmt_change(change.change_percent),
                change.status,
            ]
        )
    return markdown_table([*columns, "figure", "baseline", "new", "change", "status"], rows)


def render_markdown(comparison: Comparison) -> str:
    old, new = comparison.old, comparison.new
    facts = list(dict.fromkeys([*old.facts, *new.facts]))
    lines = [
        "# fiblab comparison against a baseline",
        "",
        f"Baseline: `{old.path}`; new: `{new.path}`.",
        "",
        *markdown_table(
            ["", "baseline", "new"],
            [[fact, old.facts.get(fact, "–"), new.facts.get(fact, "–")] for fact in facts],
        ),
        "",
    ]
    if (warning := settings_warning(comparison)) is not None:
        lines += [warning, ""]

    lines += ["## Verdicts that changed", ""]
    if comparison.verdicts_changed:
        lines += markdown_table(
            ["rule", "variant", "baseline", "new"],
            [
                [change.rule, change.variant, verdict_text(change.old), verdict_text(change.new)]
                for change in comparison.verdicts_changed
            ],
        )
    else:
        lines.append("No verdict changed.")
    lines += ["", f"{plural(comparison.verdicts_unchanged, 'verdict')} unchanged.", ""]

    outside = [change for change in comparison.figures if change.status in (WORSE, BETTER, CHANGED)]
    outside.sort(key=lambda change: STATUS_ORDER.index(change.status))
    lines += ["## Changes outside both runs' spread", ""]
    lines += figure_table(outside) if outside else ["None."]
    lines += [
        "",
        "## Every figure side by side",
        "",
        f"{status_counts(comparison) or 'No figure in both runs'}. Median over repeats, "
        "(min–max) when they differ. A change is *better* or *worse* only when it is outside "
        "both runs' spread: the new median outside the baseline's min–max and the baseline's "
        "median outside the new min–max (*changed* for a figure that is neither better nor "
        "worse when it grows, such as the server's CPU cores). With one repeat on either side "
        "there is no spread to judge by. A figure marked ‡ (noisy) or † (load generator) is "
        "shown but not judged.",
        "",
        *figure_table(comparison.figures),
        "",
    ]
    only = [
        *(f"- {row_text(row)}: only in the baseline" for row in comparison.rows_only_old),
        *(f"- {row_text(row)}: only in the new run" for row in comparison.rows_only_new),
        *(
            f"- {row_text(row)}, {name}: only in the {SIDE_WORDS[side]}"
            for row, name, side in comparison.figures_only_one
        ),
    ]
    if only:
        lines += ["## Not compared: in one run only", "", *only, ""]
    if any(
        change.old.loadgen_repeats or change.new.loadgen_repeats for change in comparison.figures
    ):
        lines += [
            f"{LOADGEN_MARK} limited by the load generator in at least one repeat of that run: "
            "the client's figure, not the server's; not judged.",
            "",
        ]
    if any(change.old.noisy_repeats or change.new.noisy_repeats for change in comparison.figures):
        lines += [
            f"{NOISY_MARK} noisy: other processes used the machine during at least one repeat "
            "of that run (see its summary.md); not judged. Rerun on a quiet machine.",
            "",
        ]
    return "\n".join(lines)


# --- as data -----------------------------------------------------------------------------


def finite(value: float) -> float | None:
    # JSON has no infinity: the text beside it says "∞"
    return value if math.isfinite(value) else None


def measured_json(kind: FigureKind, measured: Measured) -> dict[str, object]:
    figure = measured.spread
    return {
        "median": finite(figure.median),
        "min": finite(figure.low),
        "max": finite(figure.high),
        "values": [finite(value) for value in measured.values],
        "repeats": measured.repeats,
        "noisy_repeats": measured.noisy_repeats,
        "loadgen_repeats": measured.loadgen_repeats,
        "text": measured_cell(kind, measured),
    }


def verdict_json(state: VerdictState | None) -> dict[str, str] | None:
    if state is None:
        return None
    return {"status": state.status, "figures": state.figures, "margin": state.margin}


def side_json(side: Side) -> dict[str, object]:
    return {"path": str(side.path), "facts": side.facts, "settings": side.settings}


def comparison_json(comparison: Comparison) -> dict[str, object]:
    return {
        "kind": comparison.new.kind,
        "baseline": side_json(comparison.old),
        "new": side_json(comparison.new),
        "settings_differ": [
            {"setting": name, "baseline": old, "new": new}
            for name, old, new in comparison.settings_differ
        ],
        "verdicts_changed": [
            {
                "rule": change.rule,
                "variant": change.variant,
                "baseline": verdict_json(change.old),
                "new": verdict_json(change.new),
            }
            for change in comparison.verdicts_changed
        ],
        "verdicts_unchanged": comparison.verdicts_unchanged,
        "figures": [
            {
                "row": dict(change.row),
                "figure": change.kind.name,
                "unit": change.kind.unit,
                "direction": change.kind.direction,
                "baseline": measured_json(change.kind, change.old),
                "new": measured_json(change.kind, change.new),
                "change_percent": change.change_percent,
                "outside_both_spreads": change.outside_both_spreads,
                "status": change.status,
            }
            for change in comparison.figures
        ],
        "rows_only_in_baseline": [dict(row) for row in comparison.rows_only_old],
        "rows_only_in_new": [dict(row) for row in comparison.rows_only_new],
        "figures_only_in_one": [
            {"row": dict(row), "figure": name, "in": side}
            for row, name, side in comparison.figures_only_one
        ],
    }


def write_comparison(comparison: Comparison, out_dir: Path) -> list[Path]:
    """baseline.md and baseline.json in out_dir; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "baseline.md"
    markdown.write_text(render_markdown(comparison), "utf-8")
    data = out_dir / "baseline.json"
    # made in no time from two runs that name their own makers
    document = comparison_json(comparison) | {
        "provenance": provenance.begin("baseline", SCHEMA).record()
    }
    data.write_text(
        json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
        "utf-8",
    )
    return [markdown, data]


def one_line(comparison: Comparison) -> str:
    """What changed, for a terminal."""
    counts = status_counts(comparison) or "no figure in both runs"
    warning = "; settings differ" if comparison.settings_differ else ""
    return (
        f"against {comparison.old.path}: "
        f"{plural(len(comparison.verdicts_changed), 'verdict')} changed; figures: {counts}{warning}"
    )
