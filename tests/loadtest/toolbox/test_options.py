# tests/loadtest/toolbox/test_options.py
#
# The options both runners take (loadtest/toolbox/options.py): a comma list
# checked against what exists, `all` and the named variant sets.

from __future__ import annotations

import pytest

from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import VARIANT_SETS, comma_list
from services import TALK_VARIANTS, VARIANTS

SCENARIOS = ("short", "long", "convoy")


def test_an_unknown_item_is_named_with_the_choices() -> None:
    with pytest.raises(LabError, match="unknown scenario medium; choose from: short, long, "):
        comma_list("short,medium", SCENARIOS, "scenario")
    with pytest.raises(LabError, match=r"unknown scenario \(none given\)"):
        comma_list(" , ", SCENARIOS, "scenario")


def test_all_and_the_named_sets() -> None:
    assert comma_list("all", SCENARIOS, "scenario") == list(SCENARIOS)
    assert comma_list(" long, short ", SCENARIOS, "scenario") == ["long", "short"]
    assert comma_list("talk", VARIANTS, "variant", VARIANT_SETS) == list(TALK_VARIANTS)
    assert set(VARIANT_SETS["modern"]) <= set(VARIANTS)
