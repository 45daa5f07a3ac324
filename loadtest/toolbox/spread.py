# loadtest/toolbox/spread.py
#
# A figure over repeats: its median and its spread (min–max), which every
# table shows and the baseline comparison judges by.

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    count: int  # repeats that had a figure


def spread(values: Iterable[float | None]) -> Spread | None:
    present = [float(value) for value in values if value is not None]
    if not present:
        return None
    return Spread(statistics.median(present), min(present), max(present), len(present))
