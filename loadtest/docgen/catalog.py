# loadtest/docgen/catalog.py
#
# Every NAME a region may use: the inline figures and the tables.

from __future__ import annotations

from loadtest.docgen.figures import FIGURES
from loadtest.docgen.registry import Registry
from loadtest.docgen.tables import TABLES

CATALOG: Registry = FIGURES.merge(TABLES)
