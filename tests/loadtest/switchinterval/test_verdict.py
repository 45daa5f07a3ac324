# tests/loadtest/switchinterval/test_verdict.py
#
# The rule `switch-interval law` (docs/design.md §3.2, §6.7) on synthetic
# sweeps: it holds when the recordings follow the law, fails beyond its
# bounds with the margin that says by how much, is not judged on noisy
# intervals, and never reads the comparison's convoy runs; and the summary's
# checks name a bad field.

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest

from loadtest.compare.summary import SummaryError
from loadtest.switchinterval.summary import check_sweep, points
from loadtest.switchinterval.verdict import verdicts
from tests.loadtest.switchinterval.sweeps import BEFORE, INTERVALS_S, immune, on_law, sweep


def verdict_of(data: dict[str, Any], variant: str) -> Any:
    found = {verdict.variant: verdict for verdict in verdicts(check_sweep(data))}
    return found[variant]


def test_a_sweep_on_the_law_is_as_predicted_with_the_laws_factor_to_spare() -> None:
    data = sweep({"threads": on_law(1), "coro-threadpool": on_law(3), "threads-procpool": immune()})
    found = verdicts(check_sweep(data))
    assert [(v.variant, v.status) for v in found] == [
        ("threads", "as predicted"),
        ("coro-threadpool", "as predicted"),
        ("threads-procpool", "as predicted"),
    ]
    # on the law exactly: the whole factor to spare
    assert found[0].margin == pytest.approx(1.5)
    assert found[1].margin == pytest.approx(2.0)
    # the control: 80 % of before against 50 % (1.6), a span of 40 against 10 (4),
    # a steady long request against ±10 % (1.1): the smallest
    assert found[2].margin == pytest.approx(1.1)
    assert "during × i spans 40.0×" in found[2].figures
    assert found[0].line().startswith("✅ as predicted: threads:")


def test_predicted_and_measured_per_interval() -> None:
    data = sweep({"threads": on_law(1, factor=1.2)})
    (series,) = points(check_sweep(data)).values()
    first = series[0]
    assert first.interval_s == 0.0005
    assert first.predicted == pytest.approx(1 / (0.0005 + 1 / BEFORE))
    assert first.ratio == pytest.approx(1.2)
    assert first.per_interval == pytest.approx(first.during.median * 0.0005)
    assert first.long_cost == pytest.approx(0.53 / 0.5 - 1)


@pytest.mark.parametrize(
    ("variant", "k", "factor", "holds"),
    [
        ("threads", 1, 1.45, True),
        ("threads", 1, 1.55, False),
        ("threads", 1, 1 / 1.55, False),
        ("coro-threadpool", 3, 1.9, True),
        ("coro-threadpool", 3, 2.1, False),
        # coro-threadpool measured on threads' law: 3 intervals a request is not 1
        ("coro-threadpool", 1, 1.0, False),
    ],
)
def test_the_law_holds_within_its_factor_only(
    variant: str, k: int, factor: float, holds: bool
) -> None:
    verdict = verdict_of(sweep({variant: on_law(k, factor)}), variant)
    assert verdict.reproduced is holds
    assert (verdict.margin >= 1) is holds


def test_one_interval_off_the_law_fails_the_sweep_and_is_named() -> None:
    law = on_law(1)

    def off_at_20_ms(i: float) -> tuple[float, float, float]:
        before, during, long_seconds = law(i)
        return before, during * (3.0 if i == 0.02 else 1.0), long_seconds

    verdict = verdict_of(sweep({"threads": off_at_20_ms}), "threads")
    assert verdict.status == "not as predicted"
    assert verdict.margin == pytest.approx(0.5)  # 1.5 / 3
    assert "furthest at 20 ms: 3.00×" in verdict.figures
    assert verdict.margin_text == "2× short"


@pytest.mark.parametrize(
    ("control", "why"),
    [
        (immune(during_share=0.4), "during ≥ 40.0% of before"),
        # a law of its own: during ∝ 1/i leaves during × i flat
        (lambda i: (4_000.0, 2.0 / i, 0.5), "during × i spans 1.0×"),
        (lambda i: (4_000.0, 3_000.0, 0.5 if i < 0.01 else 0.58), "long fib 0.500–0.580 s"),
    ],
)
def test_a_control_that_follows_a_law_or_slows_is_not_as_predicted(control: Any, why: str) -> None:
    verdict = verdict_of(sweep({"threads-procpool": control}), "threads-procpool")
    assert verdict.status == "not as predicted"
    assert why in verdict.figures


def test_an_interval_measured_only_on_a_busy_machine_is_not_judged() -> None:
    data = sweep({"threads": on_law(1)}, noisy_at=0.002)
    verdict = verdict_of(data, "threads")
    assert verdict.status == "noisy — rerun on a quiet machine"
    assert verdict.reproduced is None
    assert "threads recordings at 2 ms" in verdict.figures


def test_the_verdict_reads_the_recordings_never_the_comparisons_convoy() -> None:
    # the convoy stage 3× the law, and noisy at 2 ms: the recordings on the law decide
    data = sweep(
        {"threads": on_law(1)},
        convoys={"threads": on_law(1, factor=3.0)},
        convoys_noisy_at=0.002,
    )
    verdict = verdict_of(data, "threads")
    assert (verdict.status, verdict.margin) == ("as predicted", pytest.approx(1.5))
    (series,) = points(check_sweep(data)).values()
    assert series[0].ratio == pytest.approx(1.0)
    assert series[0].convoy_ratio == pytest.approx(3.0)
    noisy = [point.convoy.noisy for point in series if point.convoy is not None]
    assert noisy == [interval == 0.002 for interval in INTERVALS_S]
    assert not any(point.group.noisy for point in series)


def test_a_sweep_without_convoy_runs_is_judged_on_its_recordings() -> None:
    data = sweep({"threads": on_law(1, factor=1.2)}, convoys={})
    (series,) = points(check_sweep(data)).values()
    assert (series[0].convoy, series[0].convoy_ratio) == (None, None)
    assert verdict_of(data, "threads").status == "as predicted"


def test_no_short_request_before_cannot_be_judged() -> None:
    verdict = verdict_of(sweep({"threads": lambda i: (0.0, 0.0, 0.5)}), "threads")
    assert verdict.status == "not measured"


def test_a_variant_the_law_does_not_name_gets_no_verdict_but_its_figures() -> None:
    data = sweep({"coro": lambda i: (9_000.0, 1.0, 0.5)})
    assert verdicts(check_sweep(data)) == []
    (series,) = points(check_sweep(data)).values()
    assert series[0].predicted is None
    assert math.isclose(series[0].during.median, 1.0)


def broken(change: str) -> dict[str, Any]:
    data = copy.deepcopy(sweep({"threads": on_law(1)}))
    record = data["intervals"][1]
    if change == "kind":
        del data["kind"]
    elif change == "during":
        record["recordings"][0]["short_per_s_during"] = "fast"
    elif change == "fib":
        record["recordings"][1]["long_fib_s"] = 0
    elif change == "gap":
        del record["recordings"][0]["median_gap_during_ms"]
    elif change == "recording noisy":
        record["recordings"][0]["noisy"] = None
    elif change == "recordings":
        del record["recordings"]
    elif change == "convoy during":
        record["runs"][0]["short_rps_during"] = "fast"
    elif change == "scenario":
        record["runs"][0]["scenario"] = "short"
    elif change == "interval":
        record["switch_interval_s"] = 0
    elif change == "order":
        data["environment"]["intervals_s"] = list(reversed(data["environment"]["intervals_s"]))
    elif change == "alone":
        record["long_seconds_server"]["threads"] = None
    return data


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("kind", '"kind": "switch-interval"'),
        ("during", "intervals[1].recordings[0].short_per_s_during"),
        ("fib", "intervals[1].recordings[1].long_fib_s: expected a number above 0"),
        ("gap", "intervals[1].recordings[0].median_gap_during_ms: missing"),
        ("recording noisy", "intervals[1].recordings[0].noisy"),
        ("recordings", "intervals[1].recordings: expected a list"),
        ("convoy during", "intervals[1].runs[0].short_rps_during"),
        ("scenario", "intervals[1].runs[0].scenario"),
        ("interval", "intervals[1].switch_interval_s"),
        ("order", "environment.intervals_s"),
        ("alone", "intervals[1].long_seconds_server.threads"),
    ],
)
def test_a_bad_summary_names_its_field(change: str, named: str) -> None:
    with pytest.raises(SummaryError, match=re.escape(named)):
        check_sweep(broken(change))
