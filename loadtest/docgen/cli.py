# loadtest/docgen/cli.py
#
#   python -m loadtest.docgen [--check] [--list] [PAGE ...]
#
# Rewrites the generated regions of README.md and docs/*.md from the
# committed reports and says which pages and regions changed. --check writes
# nothing and exits 1 naming every stale page and region (`make docs` fixes
# them); --list prints every NAME a region may use and what it reads. A
# malformed region or a missing report or key exits 2 with the file, line,
# NAME, report and key in the message.

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loadtest.docgen.catalog import CATALOG
from loadtest.docgen.pages import generate
from loadtest.docgen.regions import DocgenError
from loadtest.docgen.reports import ROOT

FIX = "make docs"


def regions_text(names: Sequence[str]) -> str:
    return ", ".join(f"fig:{name}" for name in dict.fromkeys(names))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.docgen",
        description="Fill the <!-- fig:NAME --> regions of README.md and docs/*.md from the "
        "committed reports under docs/results.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a page is stale"
    )
    parser.add_argument(
        "--list", action="store_true", help="print every region NAME and what it reads"
    )
    parser.add_argument("pages", nargs="*", help="pages from the repository's root (default: all)")
    args = parser.parse_args(argv)
    if args.list:
        for figure in CATALOG:
            print(f"{figure.name}: {', '.join(figure.reads) or '–'}")
        return 0
    try:
        pages = generate(args.pages or None)
    except (DocgenError, OSError) as error:
        print(f"loadtest.docgen: {error}", file=sys.stderr)
        return 2
    stale = [page for page in pages if page.stale]
    if args.check:
        for page in stale:
            print(f"stale: {page.path}: {regions_text(page.changed)}")
        if stale:
            print(f"{len(stale)} of {len(pages)} pages differ from the reports: run `{FIX}`")
            return 1
        print(f"up to date: {len(pages)} pages")
        return 0
    for page in stale:
        (ROOT / page.path).write_text(page.generated, "utf-8")
        print(f"rewrote {page.path}: {regions_text(page.changed)}")
    if not stale:
        print(f"up to date: {len(pages)} pages")
    return 0
