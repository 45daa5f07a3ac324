# loadtest/toolbox/options.py
#
# The options `python -m loadtest.compare` and `python -m loadtest.capacity`
# both take (docs/design.md §6, §6.3, §6.4): the named sets of --variants,
# comma lists checked against what exists, and the pinning options.

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence

from loadtest.toolbox.errors import LabError
from services import MODERN_VARIANTS, TALK_VARIANTS

# Named sets of --variants (docs/design.md §6): the talk's nine, and the seven
# beyond it with the talk's variants their predictions compare them with.
VARIANT_SETS = {
    "talk": list(TALK_VARIANTS),
    "modern": ["threads", "threads-procpool", "asyncio", "asyncio-procpool", *MODERN_VARIANTS],
}


def comma_list(
    text: str, allowed: Sequence[str], what: str, sets: dict[str, list[str]] | None = None
) -> list[str]:
    """The items of a comma list, `all`, or one of `sets` by name; a LabError naming
    any item not in `allowed`."""
    if text == "all":
        return list(allowed)
    if sets and text in sets:
        return list(sets[text])
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise LabError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from: "
            f"{', '.join(allowed)} or {' or '.join([*(sets or {}), 'all'])}"
        )
    return chosen


# (option, its value, whether the value is allowed, the rule to say when not)
Rule = tuple[str, float, bool, str]


def check_rules(rules: Sequence[Rule]) -> None:
    """A LabError naming every numeric option that breaks its rule (NaN and
    infinities break every rule)."""
    broken = [
        f"{option} {value:g}: {rule if math.isfinite(value) else 'must be a finite number'}"
        for option, value, ok, rule in rules
        if not (math.isfinite(value) and ok)
    ]
    if broken:
        raise LabError("; ".join(broken))


def add_pinning_options(parser: argparse.ArgumentParser) -> None:
    """--server-cpus and --loadgen-cpus, defaults from the environment (docs/design.md §6.3)."""
    parser.add_argument(
        "--server-cpus", default=os.environ.get("FIB_SERVER_CPUS", ""), metavar="CPUS",
        help="pin the servers to these CPUs, e.g. 1 or 2-3 (default: $FIB_SERVER_CPUS; none)",
    )  # fmt: skip
    parser.add_argument(
        "--loadgen-cpus", default=os.environ.get("FIB_LOADGEN_CPUS", ""), metavar="CPUS",
        help="pin the load generator to these CPUs (default: $FIB_LOADGEN_CPUS; none)",
    )  # fmt: skip
