# tests/loadtest/compare/test_verdicts.py
#
# The docs/design.md §6 rules against summaries built here from SYNTHETIC test data:
# figures shaped like the lab's measurements on CPython 3.11-3.13 on 2 cores
# (reference/talk-facts-and-checklist.md §2.2), plus variations that break
# each rule, a load generator that limits a figure, and variants left out.
# Nothing here is a measurement. The builders are reused by test_report.py.

from __future__ import annotations

import copy
from typing import Any

import pytest

from loadtest.compare.summary import SummaryError, check_summary, group_runs
from loadtest.compare.verdicts import RULES, Verdict, verdicts

# --- synthetic test data ------------------------------------------------------

CONVOY_LONG_START = 4.0  # s into the run when the long request joins


def environment() -> dict[str, Any]:
    return {
        "cores": 2,
        "python": "3.11.7",
        "python_build": "main, GCC 12.2.0",
        "implementation": "CPython",
        "gil": "enabled",
        "switch_interval": 0.005,
        "image": None,
        "date": "2026-05-09T12:00:00+00:00",
        "short_n": 1,
        "long_n": 34,
        "long_seconds_single": 0.9,
        "duration_s": 10,
        "repeat": 3,
        "target": "local",
    }


def a_run(
    variant: str,
    scenario: str,
    repeat: int,
    rps: float,
    *,
    bottleneck: str = "server",
    cpu_cores: float = 1.0,
    p50: float = 0.045,
    **extra: Any,
) -> dict[str, Any]:
    duration = 10.0
    requests = round(rps * duration)
    return {
        "variant": variant,
        "scenario": scenario,
        "repeat": repeat,
        "duration_s": duration,
        "requests": requests,
        "errors": 0,
        "rps": rps,
        "latency_ms": {
            "p50": p50,
            "p90": p50 * 1.4,
            "p99": p50 * 3,
            "p999": p50 * 9,
            "max": p50 * 40,
        },
        "server_latency_ms": {"p50": p50 * 0.6, "p99": p50 * 2},
        "server_cpu_seconds": cpu_cores * duration,
        "server_cpu_cores": cpu_cores,
        "cpu_seconds_per_request": cpu_cores * duration / requests if requests else None,
        "server_memory_peak_mib": 31.5,
        "loadgen_cpu_percent": 97.0 if bottleneck == "loadgen" else 60.0,
        "asked_rps": None,
        "bottleneck": bottleneck,
        **extra,
    }


def short_run(variant: str, rps: float, repeat: int = 0, **extra: Any) -> dict[str, Any]:
    return a_run(variant, "short", repeat, rps, **extra)


def long_runs(
    variant: str, one_client_s: float, ratios: tuple[float, ...] = (1.0, 2.0, 3.0), repeat: int = 0
) -> list[dict[str, Any]]:
    # one run object per clients stage: 1, 2, 3 concurrent long clients
    runs = []
    for clients, ratio in enumerate(ratios, start=1):
        seconds = one_client_s * ratio
        runs.append(
            a_run(
                variant,
                "long",
                repeat,
                clients / seconds,
                p50=seconds * 1000,
                clients=clients,
                seconds_per_request=seconds,
            )
        )
    return runs


def convoy_run(
    variant: str,
    before: float,
    during: float,
    repeat: int = 0,
    long_seconds: float = 5.0,
    **extra: Any,
) -> dict[str, Any]:
    end = CONVOY_LONG_START + long_seconds
    timeline = [
        {
            "t": float(t),
            "short_rps": during if CONVOY_LONG_START <= t < end else before,
            "long_in_progress": int(CONVOY_LONG_START <= t < end),
        }
        for t in range(12)
    ]
    overall = sum(point["short_rps"] for point in timeline) / len(timeline)
    return a_run(
        variant,
        "convoy",
        repeat,
        overall,
        p99=0.1,
        short_rps_before=before,
        short_rps_during=during,
        long_seconds=long_seconds,
        long_window=[CONVOY_LONG_START, end],
        timeline=timeline,
        **extra,
    )


# The lab's shape on modern CPython, per variant: short req/s, convoy (before,
# during), seconds per long request with 1 client and the 2- and 3-client ratios.
PLAUSIBLE: dict[str, dict[str, Any]] = {
    "sync": {"short": 18_500, "convoy": (18_000, 0.0), "long": (0.9, (1.0, 2.0, 3.0))},
    "threads": {"short": 17_800, "convoy": (17_600, 195.0), "long": (0.9, (1.0, 2.02, 3.05))},
    "threads-procpool": {
        "short": 5_800,
        "convoy": (5_700, 7_200.0),
        "long": (0.92, (1.0, 1.05, 1.6)),
    },
    "coro": {"short": 17_000, "convoy": (16_900, 1.0), "long": (0.9, (1.0, 1.98, 2.97))},
    "coro-threadpool": {
        "short": 11_500,
        "convoy": (11_400, 65.0),
        "long": (0.91, (1.0, 2.0, 3.0)),
    },
    "coro-procpool": {"short": 5_400, "convoy": (5_300, 7_000.0), "long": (0.92, (1.0, 1.05, 1.6))},
    "coro-asyncsocket": {
        "short": 5_200,
        "convoy": (5_100, 6_800.0),
        "long": (0.92, (1.0, 1.05, 1.6)),
    },
    "asyncio": {"short": 14_000, "convoy": (13_900, 0.0), "long": (0.9, (1.0, 2.0, 3.0))},
    "asyncio-procpool": {
        "short": 4_900,
        "convoy": (4_800, 6_500.0),
        "long": (0.93, (1.0, 1.05, 1.6)),
    },
}
# The variants beyond the talk, as docs/design.md §3.1 predicts them.
PREDICTED: dict[str, dict[str, Any]] = {
    "gevent": {"short": 15_000, "convoy": (14_900, 0.0), "long": (0.9, (1.0, 2.0, 3.0))},
    "asyncio-uvloop": {"short": 20_000, "convoy": (19_900, 0.0), "long": (0.9, (1.0, 2.0, 3.0))},
    "prefork": {"short": 20_000, "convoy": (19_000, 9_000.0), "long": (0.9, (1.0, 1.1, 1.7))},
    "threads-interppool": {
        "short": 9_000,
        "convoy": (8_900, 8_000.0),
        "long": (0.9, (1.0, 1.1, 1.6)),
    },
    "asyncio-interppool": {
        "short": 8_000,
        "convoy": (7_900, 7_000.0),
        "long": (0.9, (1.0, 1.1, 1.6)),
    },
    "asyncio-tothread": {
        "short": 7_000,
        "convoy": (6_900, 60.0),
        "long": (0.91, (1.0, 2.0, 3.0)),
    },
    "trio": {"short": 10_000, "convoy": (9_900, 0.0), "long": (0.9, (1.0, 2.0, 3.0))},
}


def plausible_runs(variants: tuple[str, ...] = tuple(PLAUSIBLE), repeats: int = 3) -> list[Any]:
    runs: list[Any] = []
    for variant in variants:
        shape = PLAUSIBLE.get(variant) or PREDICTED[variant]
        for repeat in range(repeats):
            jitter = 1 + 0.02 * (repeat - 1)  # -2 %, 0, +2 %: a spread over repeats
            runs.append(short_run(variant, shape["short"] * jitter, repeat))
            one_client_s, ratios = shape["long"]
            runs += long_runs(variant, one_client_s * jitter, ratios, repeat)
            before, during = shape["convoy"]
            runs.append(convoy_run(variant, before * jitter, during * jitter, repeat))
    return runs


def a_summary(runs: list[Any]) -> dict[str, Any]:
    return {"environment": environment(), "runs": runs}


def plausible_summary() -> dict[str, Any]:
    return a_summary(plausible_runs())


def verdict_of(summary: dict[str, Any], rule: str, variant: str) -> Verdict:
    found = [v for v in verdicts(check_summary(summary)) if (v.rule, v.variant) == (rule, variant)]
    assert len(found) == 1, f"expected one {rule} verdict for {variant}, got {found}"
    return found[0]


def without(runs: list[Any], variant: str, scenario: str) -> list[Any]:
    return [r for r in runs if not (r["variant"] == variant and r["scenario"] == scenario)]


# --- the plausible lab reproduces every rule ----------------------------------


EXPECTED_RULES = {
    ("long-serialised", "threads"),
    ("long-serialised", "coro"),
    ("convoy-collapse", "threads"),
    ("convoy-stall", "coro"),
    ("convoy-stall", "asyncio"),
    ("threadpool-collapse", "coro-threadpool"),
    *(
        (rule, variant)
        for rule in ("separate-process-immune", "pool-baseline-below-threads")
        for variant in ("threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool")
    ),
}


def test_plausible_lab_reproduces_every_rule() -> None:
    found = verdicts(check_summary(plausible_summary()))
    assert {(v.rule, v.variant) for v in found} == EXPECTED_RULES
    assert [v for v in found if v.reproduced is not True] == []
    assert all(v.status == "reproduced" and v.mark == "✅" for v in found)


def test_verdict_figures_state_the_numbers() -> None:
    summary = plausible_summary()
    convoy = verdict_of(summary, "convoy-collapse", "threads")
    assert "17,600 before" in convoy.figures
    assert "195 during" in convoy.figures
    assert "90× less" in convoy.figures  # 17,600 / 195
    assert "median of 3 repeats" in convoy.figures
    coro = verdict_of(summary, "convoy-stall", "coro")
    assert "1.00 during: 0.0059% of before (16,900× less)" in coro.figures
    stall = verdict_of(summary, "convoy-stall", "asyncio")
    assert "0.00 during" in stall.figures
    assert "∞ less" in stall.figures
    long = verdict_of(summary, "long-serialised", "threads")
    assert "1 client 0.900 s" in long.figures
    assert "(2.02×)" in long.figures
    assert "(3.05×)" in long.figures
    assert long.line().startswith("✅ reproduced: threads: 2 and 3 long clients")


# --- each rule can fail ---------------------------------------------------------


def test_threads_convoy_not_collapsing_is_not_reproduced() -> None:
    # e.g. a free-threaded build: the short rate only halves
    runs = without(plausible_runs(), "threads", "convoy")
    runs.append(convoy_run("threads", 17_600, 8_800))
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.reproduced is False
    assert verdict.status == "not reproduced"
    assert "2.00× less" in verdict.figures


def test_collapse_threshold_is_inclusive_at_ten_times() -> None:
    runs = without(plausible_runs(), "threads", "convoy")
    runs.append(convoy_run("threads", 10_000, 1_000))
    assert verdict_of(a_summary(runs), "convoy-collapse", "threads").reproduced is True
    runs = without(runs, "threads", "convoy")
    runs.append(convoy_run("threads", 10_000, 1_001))
    assert verdict_of(a_summary(runs), "convoy-collapse", "threads").reproduced is False


@pytest.mark.parametrize(
    ("ratios", "reproduced"),
    [
        ((1.0, 2.0, 3.0), True),
        ((1.0, 1.6, 2.4), True),  # the low edges
        ((1.0, 2.5, 3.7), True),  # the high edges
        ((1.0, 1.05, 1.6), False),  # parallel on 2 cores: no GIL serialisation
        ((1.0, 2.0, 4.5), False),  # 3 clients far too slow
        ((1.0, 1.5, 3.0), False),  # 2 clients too fast
    ],
)
def test_long_requests_scale_with_clients(ratios: tuple[float, ...], reproduced: bool) -> None:
    runs = without(plausible_runs(), "threads", "long")
    runs += long_runs("threads", 0.9, ratios)
    assert verdict_of(a_summary(runs), "long-serialised", "threads").reproduced is reproduced


def test_long_with_one_client_only_has_not_enough_data() -> None:
    runs = without(plausible_runs(), "threads", "long")
    runs += long_runs("threads", 0.9, (1.0,))
    verdict = verdict_of(a_summary(runs), "long-serialised", "threads")
    assert verdict.reproduced is None
    assert verdict.status == "not measured"
    assert verdict.mark == "❔"


def test_long_with_two_clients_only_is_not_measured_on_half_its_evidence() -> None:
    runs = without(plausible_runs(), "threads", "long")
    runs += long_runs("threads", 0.9, (1.0, 2.0))
    verdict = verdict_of(a_summary(runs), "long-serialised", "threads")
    assert verdict.reproduced is None
    assert verdict.status == "not measured"
    assert verdict.figures.startswith("3 clients not measured: ")
    assert "2 clients 1.800 s (2.00×)" in verdict.figures


def test_a_stage_where_no_request_ran_wholly_is_not_measured() -> None:
    # A fresh clone's coro once read ✅ on its 2-client ratio alone while its
    # 3-client stage held no whole request.
    runs = without(plausible_runs(), "coro", "long")
    runs += long_runs("coro", 0.47, (1.0, 2.0, 3.0))
    for run in runs:
        if run["variant"] == "coro" and run.get("clients") == 3:
            run["seconds_per_request"] = None
            run["latency_ms"] = dict.fromkeys(run["latency_ms"])
    verdict = verdict_of(a_summary(runs), "long-serialised", "coro")
    assert verdict.reproduced is None
    assert verdict.mark == "❔"
    assert "3 clients" in verdict.figures


def test_process_pool_collapsing_is_not_reproduced() -> None:
    runs = without(plausible_runs(), "coro-procpool", "convoy")
    runs.append(convoy_run("coro-procpool", 5_300, 2_000))  # 38 % left: below half
    verdict = verdict_of(a_summary(runs), "separate-process-immune", "coro-procpool")
    assert verdict.reproduced is False
    assert "37.7% of before" in verdict.figures


def test_process_pool_faster_than_threads_is_not_reproduced() -> None:
    runs = without(plausible_runs(), "threads-procpool", "short")
    runs.append(short_run("threads-procpool", 17_000))  # 96 % of threads'
    verdict = verdict_of(a_summary(runs), "pool-baseline-below-threads", "threads-procpool")
    assert verdict.reproduced is False
    assert "96% of threads'" in verdict.figures


def test_inline_loop_that_keeps_serving_is_not_reproduced() -> None:
    runs = without(plausible_runs(), "coro", "convoy")
    runs.append(convoy_run("coro", 17_000, 850))  # 5 % left: not "(almost) 0"
    verdict = verdict_of(a_summary(runs), "convoy-stall", "coro")
    assert verdict.reproduced is False
    assert "5.0% of before" in verdict.figures


def test_threadpool_that_does_not_collapse_is_not_reproduced() -> None:
    runs = without(plausible_runs(), "coro-threadpool", "convoy")
    runs.append(convoy_run("coro-threadpool", 11_400, 3_800))
    verdict = verdict_of(a_summary(runs), "threadpool-collapse", "coro-threadpool")
    assert verdict.reproduced is False


def test_median_over_repeats_outvotes_one_outlier() -> None:
    runs = without(plausible_runs(), "threads", "convoy")
    runs += [
        convoy_run("threads", 17_600, 150, repeat=0),
        convoy_run("threads", 17_600, 9_000, repeat=1),  # an outlier repeat
        convoy_run("threads", 17_600, 200, repeat=2),
    ]
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.reproduced is True
    assert "200 during" in verdict.figures


# --- the load generator as bottleneck -------------------------------------------


def test_loadgen_bound_convoy_is_flagged_not_judged() -> None:
    runs = without(plausible_runs(), "threads", "convoy")
    runs += [
        convoy_run("threads", 17_600, 195, repeat=0),
        convoy_run("threads", 17_600, 195, repeat=1, bottleneck="loadgen"),
        convoy_run("threads", 17_600, 195, repeat=2),
    ]
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.reproduced is None
    assert verdict.loadgen_bound
    assert verdict.status == "loadgen-bound"
    assert verdict.mark == "⚠"
    assert "limited by the load generator in threads convoy: 1 of 3 repeats" in verdict.figures
    assert "17,600 before" in verdict.figures  # the figures are still shown, flagged


def test_loadgen_bound_threads_baseline_flags_the_pool_comparison() -> None:
    runs = without(plausible_runs(), "threads", "short")
    runs.append(short_run("threads", 17_800, bottleneck="loadgen"))
    verdict = verdict_of(a_summary(runs), "pool-baseline-below-threads", "coro-procpool")
    assert verdict.loadgen_bound
    assert verdict.reproduced is None
    assert "threads short" in verdict.figures
    # other rules that do not read that figure keep their verdicts
    assert verdict_of(a_summary(runs), "convoy-collapse", "threads").reproduced is True


# --- variants and scenarios left out ----------------------------------------------


def test_only_present_variants_get_verdicts() -> None:
    found = verdicts(check_summary(a_summary(plausible_runs(("threads", "threads-procpool")))))
    assert {(v.rule, v.variant) for v in found} == {
        ("long-serialised", "threads"),
        ("convoy-collapse", "threads"),
        ("separate-process-immune", "threads-procpool"),
        ("pool-baseline-below-threads", "threads-procpool"),
    }


def test_pool_without_threads_has_nothing_to_compare_with() -> None:
    verdict = verdict_of(
        a_summary(plausible_runs(("coro-procpool",))),
        "pool-baseline-below-threads",
        "coro-procpool",
    )
    assert verdict.reproduced is None
    assert "threads was not measured" in verdict.figures


def test_baseline_falls_back_to_convoy_before_without_short_scenario() -> None:
    runs = [r for r in plausible_runs(("threads", "threads-procpool")) if r["scenario"] != "short"]
    verdict = verdict_of(a_summary(runs), "pool-baseline-below-threads", "threads-procpool")
    assert verdict.reproduced is True
    assert "(convoy, before the long request)" in verdict.figures


def test_scenario_not_run_gives_no_verdict() -> None:
    runs = [r for r in plausible_runs(("threads", "coro")) if r["scenario"] == "short"]
    assert verdicts(check_summary(a_summary(runs))) == []


def test_no_short_requests_before_the_long_one_cannot_be_judged() -> None:
    runs = without(plausible_runs(("threads",)), "threads", "convoy")
    runs.append(convoy_run("threads", 0.0, 0.0))
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.reproduced is None
    assert "no short requests" in verdict.figures


# --- bad summaries get clear errors -------------------------------------------------


def test_groups_are_in_the_talks_order_with_long_stages() -> None:
    groups = group_runs(check_summary(a_summary(plausible_runs(("coro", "threads")))))
    assert [(g.variant, g.label) for g in groups] == [
        ("threads", "short"),
        ("threads", "long ×1"),
        ("threads", "long ×2"),
        ("threads", "long ×3"),
        ("threads", "convoy"),
        ("coro", "short"),
        ("coro", "long ×1"),
        ("coro", "long ×2"),
        ("coro", "long ×3"),
        ("coro", "convoy"),
    ]
    assert all(len(g.runs) == 3 for g in groups)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda s: s.pop("runs"), "summary.runs: expected a list"),
        (lambda s: s["environment"].pop("cores"), "environment.cores: missing"),
        (lambda s: s["runs"][0].pop("rps"), "runs[0].rps: missing"),
        (lambda s: s["runs"][0].update(rps="fast"), "runs[0].rps: expected a finite number"),
        (lambda s: s["runs"][0].update(errors=True), "runs[0].errors: expected a finite number"),
        (lambda s: s["runs"][0].update(scenario="soak"), "runs[0].scenario: expected one of"),
        (lambda s: s["runs"][0].update(bottleneck="disk"), "runs[0].bottleneck"),
        (lambda s: s["runs"][1].pop("clients"), "runs[1].clients: missing"),
        (lambda s: s["runs"][4].pop("short_rps_during"), "runs[4].short_rps_during: missing"),
        (lambda s: s["runs"][4].update(long_window=[1]), "runs[4].long_window"),
        (lambda s: s["runs"][0]["latency_ms"].pop("p999"), "runs[0].latency_ms.p999: missing"),
        (lambda s: s["runs"][0].update(rps=float("nan")), "runs[0].rps"),
    ],
)
def test_bad_summary_is_a_clear_error(break_it: Any, message: str) -> None:
    summary = copy.deepcopy(a_summary(plausible_runs(("threads",), repeats=1)))
    assert [r["scenario"] for r in summary["runs"]][:5] == [
        "short",
        "long",
        "long",
        "long",
        "convoy",
    ]
    break_it(summary)
    with pytest.raises(SummaryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_summary(summary)


def test_nulls_are_allowed_where_a_run_can_lack_a_figure() -> None:
    summary = a_summary(plausible_runs(("threads",), repeats=1))
    summary["runs"][0]["server_cpu_seconds"] = None
    summary["runs"][0]["latency_ms"]["p999"] = None
    summary["runs"][1]["seconds_per_request"] = None
    assert check_summary(summary) is summary


# --- a noisy machine ------------------------------------------------------------------


def noisy(run: dict[str, Any], foreign: float = 1.02) -> dict[str, Any]:
    """The run as measured while other processes used `foreign` cores."""
    return run | {
        "foreign_cpu_cores": foreign,
        "steal_cpu_cores": 0.0,
        "load_average": {"start": 4.1, "end": 5.3},
        "noisy": True,
    }


def test_verdict_from_noisy_runs_only_is_not_judged() -> None:
    # the issue's figures: threads' convoy at 12x with a busy second core
    runs = without(plausible_runs(), "threads", "convoy")
    runs += [noisy(convoy_run("threads", 17_600, 1_470, repeat=r)) for r in range(3)]
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.reproduced is None
    assert verdict.noisy
    assert verdict.status == "noisy — rerun on a quiet machine"
    assert verdict.mark == "‡"
    assert "every repeat of threads convoy ran while other processes used the machine" in (
        verdict.figures
    )
    assert "12× less" in verdict.figures, "the figures are still shown"
    assert verdict.line().startswith("‡ noisy — rerun on a quiet machine: threads: ")
    # the same collapse measured on a quiet machine is judged
    assert verdict_of(plausible_summary(), "convoy-collapse", "threads").status == "reproduced"


def test_noisy_beats_loadgen_bound() -> None:
    # a busy machine also starves the load generator: the cause is said first
    runs = without(plausible_runs(), "threads", "convoy")
    runs += [
        noisy(convoy_run("threads", 17_600, 195, repeat=r, bottleneck="loadgen")) for r in range(3)
    ]
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.status == "noisy — rerun on a quiet machine"


def test_one_noisy_repeat_of_three_is_judged_and_said() -> None:
    runs = without(plausible_runs(), "threads", "convoy")
    runs += [
        noisy(convoy_run("threads", 17_600, 1_470, repeat=0)),
        convoy_run("threads", 17_600, 195, repeat=1),
        convoy_run("threads", 17_600, 200, repeat=2),
    ]
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.reproduced is True
    assert not verdict.noisy
    assert "(threads convoy: 1 of 3 repeats noisy ‡)" in verdict.figures


def test_a_noisy_reference_makes_the_pool_comparison_noisy() -> None:
    # pool-baseline-below-threads reads threads' short figure too
    runs = without(plausible_runs(), "threads", "short")
    runs += [noisy(short_run("threads", 17_800 * 0.6, repeat=r)) for r in range(3)]
    verdict = verdict_of(a_summary(runs), "pool-baseline-below-threads", "coro-procpool")
    assert verdict.status == "noisy — rerun on a quiet machine"
    assert "threads short" in verdict.figures
    assert verdict_of(a_summary(runs), "convoy-collapse", "threads").reproduced is True


def test_a_long_stage_without_reply_says_so_in_the_verdict() -> None:
    runs = without(plausible_runs(), "threads", "long")
    stages = long_runs("threads", 0.9)
    stages[2] |= {"requests": 0, "rps": 0.0, "seconds_per_request": None}
    stages[2]["latency_ms"] = dict.fromkeys(stages[2]["latency_ms"])
    verdict = verdict_of(a_summary(runs + stages), "long-serialised", "threads")
    assert verdict.status == "not measured", "the rule names both ratios: no verdict on half"
    assert "3 clients: no reply in this stage" in verdict.figures
    stages[1] |= {"requests": 0, "rps": 0.0, "seconds_per_request": None}
    verdict = verdict_of(a_summary(runs + stages), "long-serialised", "threads")
    assert verdict.status == "not measured"
    assert "2 clients: no reply in this stage" in verdict.figures


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda r: r.update(noisy="yes"), "runs[0].noisy: expected true or false"),
        (lambda r: r.update(foreign_cpu_cores="1"), "runs[0].foreign_cpu_cores: expected"),
        (lambda r: r.update(steal_cpu_cores=float("inf")), "runs[0].steal_cpu_cores"),
        (lambda r: r.update(load_average=[1, 2]), "runs[0].load_average: expected an object"),
        (lambda r: r.update(load_average={"start": 1.0}), "runs[0].load_average.end: missing"),
        (lambda r: r.update(stage_window=[0.0]), "runs[0].stage_window: expected [start, end]"),
        (lambda r: r.update(latency_requests=None), "runs[0].latency_requests: expected"),
    ],
)
def test_bad_new_fields_are_clear_errors(break_it: Any, message: str) -> None:
    summary = a_summary([noisy(short_run("threads", 17_800))])
    check_summary(copy.deepcopy(summary))
    break_it(summary["runs"][0])
    with pytest.raises(SummaryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_summary(summary)


def test_summaries_from_before_the_machine_fields_still_load() -> None:
    # no foreign CPU, no noisy, no stage fields: every verdict as before
    summary = check_summary(plausible_summary())
    assert all("noisy" not in run for run in summary["runs"])
    assert all(not verdict.noisy for verdict in verdicts(summary))
    bad = a_summary([short_run("threads", 1.0)])
    bad["environment"]["busy_cores_at_start"] = "busy"
    with pytest.raises(SummaryError, match=r"environment\.busy_cores_at_start"):
        check_summary(bad)


# --- how far each verdict is from flipping ------------------------------------


def test_margin_is_the_factor_between_the_figure_and_the_rules_bound() -> None:
    summary = plausible_summary()
    convoy = verdict_of(summary, "convoy-collapse", "threads")
    assert convoy.margin == pytest.approx(17_600 / 195 / 10)
    assert convoy.margin_text == "9× to spare"
    assert convoy.line().endswith("[margin: 9× to spare]")
    assert verdict_of(summary, "convoy-stall", "asyncio").margin_text == "∞ (stopped dead)"
    immune = verdict_of(summary, "separate-process-immune", "coro-procpool")
    assert immune.margin == pytest.approx((7_000 / 5_300) / 0.5)
    long = verdict_of(summary, "long-serialised", "threads")
    assert long.margin is not None
    assert 1 <= long.margin < 1.3, "the ratio nearest its bound sets the margin"


def test_margin_at_the_bound_is_one_and_below_it_says_short() -> None:
    runs = without(plausible_runs(), "threads", "convoy")
    runs.append(convoy_run("threads", 10_000, 1_000))
    at_bound = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert at_bound.margin == 1.0
    assert at_bound.reproduced is True
    runs = without(plausible_runs(), "threads", "long")
    runs += long_runs("threads", 0.9, (1.0, 2.0, 4.5))  # 3 clients: 4.5× against at most 3.7×
    too_slow = verdict_of(a_summary(runs), "long-serialised", "threads")
    assert too_slow.reproduced is False
    assert too_slow.margin == pytest.approx(3.7 / 4.5)
    assert too_slow.margin_text == "1.2× short"


def test_a_noisy_verdict_still_shows_its_margin() -> None:
    runs = without(plausible_runs(), "threads", "convoy")
    runs += [convoy_run("threads", 12_000, 1_000, repeat, noisy=True) for repeat in range(3)]
    verdict = verdict_of(a_summary(runs), "convoy-collapse", "threads")
    assert verdict.noisy
    assert verdict.margin == pytest.approx(1.2)


# --- beyond the talk: the predictions ------------------------------------------


INTERP_RULES = (
    "interp-pool-immune",
    "interp-pool-above-procpool",
    "interp-pool-below-inline",
    "second-long-in-parallel",
)
INTERP_VARIANTS = ("threads-interppool", "asyncio-interppool")


INTERP_RULES = (
    "interp-pool-immune",
    "interp-pool-above-procpool",
    "interp-pool-below-inline",
    "second-long-in-parallel",
)
INTERP_VARIANTS = ("threads-interppool", "asyncio-interppool")


def test_a_lab_that_behaves_as_predicted_gets_every_beyond_the_talk_rule() -> None:
    summary = a_summary(plausible_runs((*PLAUSIBLE, *PREDICTED)))
    found = [v for v in verdicts(check_summary(summary)) if RULES[v.rule].beyond_talk]
    assert {(v.rule, v.variant) for v in found} == {
        ("inline-loop-stall", "gevent"),
        ("inline-loop-stall", "asyncio-uvloop"),
        ("inline-loop-stall", "trio"),
        ("inline-loop-long-serialised", "gevent"),
        ("inline-loop-long-serialised", "asyncio-uvloop"),
        ("inline-loop-long-serialised", "trio"),
        ("uvloop-above-asyncio", "asyncio-uvloop"),
        ("tothread-convoy", "asyncio-tothread"),
        ("tothread-long-serialised", "asyncio-tothread"),
        ("tothread-below-asyncio", "asyncio-tothread"),
        ("trio-below-asyncio", "trio"),
        *((rule, variant) for rule in INTERP_RULES for variant in INTERP_VARIANTS),
        ("second-long-in-parallel", "prefork"),
        ("prefork-convoy-partial", "prefork"),
    }
    assert all(v.status == "as predicted" and v.mark == "✅" for v in found), found


def test_an_interpreter_pool_slower_than_its_process_pool_is_not_as_predicted() -> None:
    runs = plausible_runs(("threads", "threads-procpool", "threads-interppool"))
    runs = [
        {**run, "rps": 3_000.0} if (run["variant"], run["scenario"]) == (
            "threads-interppool", "short") else run
        for run in runs
    ]  # fmt: skip
    verdict = verdict_of(a_summary(runs), "interp-pool-above-procpool", "threads-interppool")
    assert verdict.status == "not as predicted"
    assert "vs threads-procpool" in verdict.figures


def test_an_interpreter_pool_without_its_counterpart_has_nothing_to_compare_with() -> None:
    summary = a_summary(plausible_runs(("threads-interppool",)))
    verdict = verdict_of(summary, "interp-pool-below-inline", "threads-interppool")
    assert verdict.status == "not measured"
    assert "threads was not measured" in verdict.figures


def test_prefork_whose_short_client_shares_the_long_ones_process_is_not_as_predicted() -> None:
    runs = [
        convoy_run("prefork", 19_000 * (1 + 0.01 * r), 150.0, r) if run["scenario"] == "convoy"
        else run
        for r, run in enumerate(plausible_runs(("prefork",), repeats=1))
    ]  # fmt: skip
    verdict = verdict_of(a_summary(runs), "prefork-convoy-partial", "prefork")
    assert verdict.status == "not as predicted", verdict


def test_to_thread_whose_loop_keeps_serving_during_a_long_request_is_not_as_predicted() -> None:
    runs = [
        convoy_run("asyncio-tothread", 6_900, 1_000.0, 0) if run["scenario"] == "convoy" else run
        for run in plausible_runs(("asyncio", "asyncio-tothread"), repeats=1)
    ]
    verdict = verdict_of(a_summary(runs), "tothread-convoy", "asyncio-tothread")
    assert verdict.status == "not as predicted", verdict


def test_to_thread_as_fast_as_asyncio_is_not_as_predicted() -> None:
    runs = [
        {**run, "rps": 14_000.0}
        if (run["variant"], run["scenario"]) == ("asyncio-tothread", "short")
        else run
        for run in plausible_runs(("asyncio", "asyncio-tothread"))
    ]
    verdict = verdict_of(a_summary(runs), "tothread-below-asyncio", "asyncio-tothread")
    assert verdict.status == "not as predicted"
    assert "vs asyncio" in verdict.figures


def test_trio_faster_than_asyncio_is_not_as_predicted_and_without_asyncio_not_judged() -> None:
    runs = [
        {**run, "rps": 16_000.0} if (run["variant"], run["scenario"]) == ("trio", "short") else run
        for run in plausible_runs(("asyncio", "trio"))
    ]
    assert verdict_of(a_summary(runs), "trio-below-asyncio", "trio").status == "not as predicted"
    alone = verdict_of(a_summary(plausible_runs(("trio",))), "trio-below-asyncio", "trio")
    assert alone.status == "not measured"
    assert "asyncio was not measured" in alone.figures
