# loadtest/docgen/context.py
#
# What a figure is rendered for: the reports, and the page the region is on
# (a figure that links a file links it relative to that page).

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from loadtest.docgen.reports import Reports


@dataclass(frozen=True)
class Context:
    reports: Reports
    page: str  # the page's path from the repository's root, POSIX: "README.md", "docs/talk.md"

    def link(self, target: str) -> str:
        """`target` (a path from the repository's root) as a link from this page."""
        return posixpath.relpath(target, posixpath.dirname(self.page) or ".")

    def report_link(self, relative: str) -> str:
        """A committed report (a path under docs/results) as a link from this page."""
        return self.link(self.reports.name(relative))
