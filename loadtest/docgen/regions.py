# loadtest/docgen/regions.py
#
# The engine: find the marked regions of a Markdown text, check that they
# are well formed, and replace their contents with what each NAME renders.
#
#   inline  <!-- fig:NAME -->text<!-- /fig:NAME -->   opens and closes on one line
#   block   <!-- fig:NAME -->                         each marker alone on its line;
#           lines                                     the lines between are the content
#           <!-- /fig:NAME -->
#
# Markers inside fenced code blocks and inside `code spans` are text, not
# markers, so a page can show the syntax. Every problem is a RegionError
# naming the file, the line and the NAME.

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

MARKER = re.compile(r"<!--\s*(/?)fig:(\S*?)\s*-->")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


class DocgenError(Exception):
    """A page or a report the generator cannot use; the message says where."""


class RegionError(DocgenError):
    """A region that is not well formed, or names no known figure."""


@dataclass(frozen=True)
class Region:
    name: str
    line: int  # 1-based line of the opening marker
    block: bool  # markers on lines of their own; else both on one line
    start: int  # offset of the content's first character
    end: int  # offset just past the content (where the closing marker, or its line, begins)
    indent: str  # a block's opening marker's indentation, given to every line it renders

    def content(self, text: str) -> str:
        return text[self.start : self.end]


@dataclass(frozen=True)
class _Open:
    name: str
    line: int
    block: bool
    start: int
    indent: str


def _masked(line: str) -> str:
    """The line with its code spans blanked (same length): markers there are text."""
    return CODE_SPAN.sub(lambda match: " " * len(match[0]), line)


def find_regions(text: str, where: str) -> list[Region]:
    """Every region of `text` in order; a RegionError for the first malformed one."""
    regions: list[Region] = []
    opened: _Open | None = None
    fence: str | None = None
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        line_start, offset = offset, offset + len(line)
        fenced = FENCE.match(line)
        if fence is not None:
            if fenced and fenced[1] == fence:
                fence = None
            continue
        if fenced:
            if opened is not None and not opened.block:
                raise _error(where, opened.line, opened.name, "is never closed on its line")
            fence = fenced[1]
            continue
        bare = line.rstrip("\r\n")
        for match in MARKER.finditer(_masked(bare)):
            closing, name = match[1] == "/", match[2]
            alone = bare.strip() == match[0]
            if not closing:
                if opened is not None:
                    raise _error(
                        where, number, name,
                        f"opens inside fig:{opened.name} (opened at line {opened.line}): "
                        "regions do not nest",
                    )  # fmt: skip
                if alone:
                    indent = bare[: len(bare) - len(bare.lstrip())]
                    opened = _Open(name, number, True, offset, indent)
                else:
                    opened = _Open(name, number, False, line_start + match.end(), "")
                continue
            if opened is None:
                raise _error(where, number, name, "closes a region that was never opened")
            if name != opened.name:
                raise _error(
                    where, number, name,
                    f"closes fig:{opened.name} (opened at line {opened.line}): "
                    f"expected <!-- /fig:{opened.name} -->",
                )  # fmt: skip
            if opened.block:
                if not alone:
                    raise _error(
                        where, number, name,
                        f"block region (opened alone on line {opened.line}) must close "
                        "on a line of its own",
                    )  # fmt: skip
                end = line_start
            else:
                if number != opened.line:
                    raise _error(where, opened.line, name, "is never closed on its line")
                end = line_start + match.start()
            regions.append(
                Region(opened.name, opened.line, opened.block, opened.start, end, opened.indent)
            )
            opened = None
        if opened is not None and not opened.block:
            raise _error(
                where, opened.line, opened.name,
                "is never closed on its line (an inline region opens and closes on one line; "
                "a block region's markers stand alone on their lines)",
            )  # fmt: skip
    if opened is not None:
        raise _error(where, opened.line, opened.name, "is never closed")
    return regions


def check_names(regions: Collection[Region], known: Collection[str], where: str) -> None:
    """A RegionError for the first region whose NAME is not in `known`."""
    for region in regions:
        if region.name not in known:
            close = difflib.get_close_matches(region.name, list(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            what = "has no name" if not region.name else "is not a known figure"
            raise _error(where, region.line, region.name, f"{what}{hint}")


def render_region(region: Region, rendered: str, where: str) -> str:
    """The content a region gets for `rendered`: one line inline, lines ending in a newline
    as a block (each indented as its opening marker)."""
    if MARKER.search(rendered):
        raise _error(where, region.line, region.name, "renders a region marker itself")
    if not region.block:
        if "\n" in rendered.strip("\n"):
            raise _error(
                where, region.line, region.name,
                "renders several lines: give it a block region (markers on lines of their own)",
            )  # fmt: skip
        return rendered.strip("\n")
    lines = rendered.strip("\n").splitlines()
    return "".join(f"{region.indent}{line}\n" if line else "\n" for line in lines)


def fill(
    text: str, where: str, known: Collection[str], render: Callable[[str], str]
) -> tuple[str, list[str]]:
    """`text` with every region's content replaced by render(NAME), and the names of the
    regions whose content changed, in order."""
    regions = find_regions(text, where)
    check_names(regions, known, where)
    parts: list[str] = []
    changed: list[str] = []
    cursor = 0
    for region in regions:
        content = render_region(region, render(region.name), where)
        if content != region.content(text):
            changed.append(region.name)
        parts += [text[cursor : region.start], content]
        cursor = region.end
    parts.append(text[cursor:])
    return "".join(parts), changed


def outside(text: str, where: str) -> str:
    """`text` with every region's content blanked (its lines kept): what a hand wrote."""
    regions = find_regions(text, where)
    parts: list[str] = []
    cursor = 0
    for region in regions:
        content = region.content(text)
        parts += [text[cursor : region.start], re.sub(r"[^\n]", " ", content)]
        cursor = region.end
    parts.append(text[cursor:])
    return "".join(parts)


def _error(where: str, line: int, name: str, problem: str) -> RegionError:
    return RegionError(f"{where}:{line}: fig:{name} {problem}")
