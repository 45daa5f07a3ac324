# loadtest/docgen/pages.py
#
# Which pages have generated regions, and each page as the generator writes
# it: README.md and every docs/*.md (docs/results/ holds the reports
# themselves; a page without regions, such as docs/design.md, comes out as
# it went in).

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtest.docgen.catalog import CATALOG
from loadtest.docgen.context import Context
from loadtest.docgen.regions import fill
from loadtest.docgen.registry import Registry
from loadtest.docgen.reports import ROOT, Reports


@dataclass(frozen=True)
class Page:
    path: str  # from the repository's root, POSIX
    text: str  # as it is on disk
    generated: str  # as the generator writes it
    changed: tuple[str, ...]  # the regions whose content differs, in order

    @property
    def stale(self) -> bool:
        return self.generated != self.text


def page_paths(root: Path = ROOT) -> list[str]:
    """README.md and docs/*.md, from the repository's root."""
    found = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return [path.relative_to(root).as_posix() for path in found if path.is_file()]


def generate_page(
    path: str,
    text: str,
    reports: Reports,
    catalog: Registry = CATALOG,
) -> Page:
    context = Context(reports, path)

    def render(name: str) -> str:
        return catalog.render(name, context)

    generated, changed = fill(text, path, catalog.figures, render)
    return Page(path, text, generated, tuple(changed))


def generate(
    paths: list[str] | None = None,
    reports: Reports | None = None,
    root: Path = ROOT,
    catalog: Registry = CATALOG,
) -> list[Page]:
    """Every page as the generator writes it (nothing written here)."""
    reports = reports or Reports()
    return [
        generate_page(path, (root / path).read_text("utf-8"), reports, catalog)
        for path in (paths if paths is not None else page_paths(root))
    ]
