# tests/loadtest/compare/test_plan.py: the long scenario's length (docs/design.md §6.1).

from __future__ import annotations

import pytest

from loadtest.compare.plan import LONG_STAGE_REQUESTS, long_scenario_seconds


def test_a_long_stage_holds_whole_requests_of_three_clients() -> None:
    # fib(34) at 0.471 s: an 8 s run's 2.7 s stages held no whole 3-client request
    seconds = long_scenario_seconds(8.0, 0.471)
    stage = seconds / 3
    assert stage >= LONG_STAGE_REQUESTS * 3 * 0.471
    assert seconds % 3 == 0, "every stage starts on one of the shape's one-second ticks"
    assert seconds == 15.0


@pytest.mark.parametrize(("duration", "alone"), [(8.0, 0.07), (24.0, 0.471), (6.0, None)])
def test_a_short_request_or_a_longer_duration_keeps_duration(
    duration: float, alone: float | None
) -> None:
    assert long_scenario_seconds(duration, alone) == duration
