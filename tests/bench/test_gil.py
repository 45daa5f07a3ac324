# tests/bench/test_gil.py
#
# The GIL probe's report (python -m tests.bench.gil --out DIR) rendered from
# small synthetic report dicts: the Verdict follows from the figures and the
# stated thresholds (2 % for fib(1), each setting's spread of rounds for the
# convoy, the convoy rule's 10×), and --render makes report.md again from
# report.json alone. Nothing here measures.

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.bench import gil, server, spread
from tests.bench.test_server import comparison, made_by

PROBES = ["gilknocker (GilProbe)", "pure Python, 1 ms sleep"]


def process_part(rounds: int = 3) -> dict[str, Any]:
    loop = {"none": [30.6e6, 33.4e6, 33.1e6], PROBES[0]: [33.4e6, 33.3e6, 33.1e6],
            PROBES[1]: [32.9e6, 31.8e6, 31.1e6]}  # fmt: skip
    none = sum(loop["none"][:rounds]) / rounds
    return {
        "parameters": {"accuracy_seconds": 1.5, "idle_seconds": 5.0, "slot_seconds": 1.5,
                       "rounds": rounds, "switch_interval_ms": 5.0, "poll_micros": 1000,
                       "arch": "x86_64"},
        "load_average": {"start": [0.45, 1.08, 0.88], "end": [0.5, 1.0, 0.9]},
        "probes": PROBES,
        "accuracy": [
            {"load": "idle", "shares": {PROBES[0]: 0.0032, PROBES[1]: 0.0379}},
            {"load": "a subprocess spins", "shares": {PROBES[0]: 0.1392, PROBES[1]: 0.0536}},
        ],
        "idle": [
            {"probe": name, "cpu_per_second": value, "percent_of_one_core": value * 100}
            for name, value in (("none", 0.00001), (PROBES[0], 0.00287), (PROBES[1], 0.03094))
        ],
        "loop": [
            {"probe": name, "rates": rates[:rounds], "mean": sum(rates[:rounds]) / rounds,
             "vs_none": sum(rates[:rounds]) / rounds / none,
             "wait_share": None if name == "none" else 0.722}
            for name, rates in loop.items()
        ],
    }  # fmt: skip


def convoy(on: list[float], off: list[float]) -> dict[str, Any]:
    rows = []
    for number, (first, second) in enumerate(zip(on, off, strict=True), 1):
        for probe, factor in (("on", first), ("off", second)):
            rows.append({"round": number, "probe": probe, "before": factor * 400.0,
                         "during": 400.0, "factor": factor})  # fmt: skip
    return {"by_round": rows, "on": spread(on), "off": spread(off)}


def servers_part(threads_on: list[float], threads_off: list[float]) -> dict[str, Any]:
    return {
        "parameters": {"variants": ["threads", "coro"], "rounds": 6, "round_requests": 4000,
                       "pairs": 4, "convoy_rounds": len(threads_on), "convoy_long_n": 30,
                       "convoy_seconds": 2.0, "warm_up_seconds": 0.5},
        "load_average": {"start": [0.5, 0.9, 0.9], "end": [0.92, 0.9, 0.9]},
        "variants": [
            {"variant": "threads",
             "fib1": comparison(("probe on", "probe off"), [0.998, 1.009, 1.0, 1.026, 1.001, 1.007],
                                (55.51, 55.9), server.COST, ratio=(1.004, 0.998, 1.026)),
             "convoy": convoy(threads_on, threads_off)},
            {"variant": "coro",
             "fib1": comparison(("probe on", "probe off"), [0.987, 0.997, 0.996, 0.997, 0.999],
                                (91.94, 91.25), server.COST, ratio=(0.997, 0.987, 0.999)),
             "convoy": convoy([126.8, 100.8, 126.4], [114.8, 104.4, 116.1])},
        ],
    }  # fmt: skip


def gil_report(**servers: list[float]) -> dict[str, Any]:
    on = servers.get("on", [27.2, 30.3, 21.7])
    off = servers.get("off", [55.4, 29.1, 35.4])
    return {"process": process_part(), "servers": servers_part(on, off),
            "provenance": made_by("gil-probe")}  # fmt: skip


def test_verdict_follows_from_the_figures() -> None:
    verdict = gil.verdict(gil_report())
    assert verdict.startswith(
        "**Verdict:** no cost to throughput measurable against this machine's noise. "
        "fib(1) req/s with the probe are 1.004 (`threads`, median of 6 rounds, range "
        "0.998-1.026) and 0.997 (`coro`, median of 5 rounds, range 0.987-0.999) of those "
        "without it, side by side in one run: within this machine's round-to-round noise"
    )
    assert (
        "The `threads` convoy factor moves more from round to round (21.7-55.4×) than between "
        "probe on and off (medians 27.2× on, 35.4× off: 8.2× apart, less than the range of "
        "either setting's rounds, 8.6× on and 26.3× off)."
    ) in verdict
    assert "round, probe on or off, lies on the same side of the convoy rule's 10×" in verdict
    assert "Idle, gilknocker costs 0.29 % of one core (the pure-Python probe: 3.09 %, none: " in (
        verdict
    )
    assert "With gilknocker on, a CPU-bound Python loop runs at 1.028 of its rate" in verdict
    assert "reads a wait share of 0.139, idle 0.003: what it reads beyond idle" in verdict


def test_a_convoy_difference_and_a_verdict_that_could_change() -> None:
    verdict = gil.verdict(gil_report(on=[9.0, 9.5, 9.8], off=[30.0, 31.0, 40.0]))
    assert verdict.startswith(
        "**Verdict:** the probe shows an effect beyond the noise in 2 of these figures."
    )
    assert "The `threads` convoy factor differs between probe on and off (medians 9.5× on" in (
        verdict
    )
    assert "Rounds of `threads` fall on both sides of the convoy rule's 10×" in verdict


def test_one_round_cannot_be_judged() -> None:
    report = {"process": process_part(rounds=1), "provenance": made_by("gil-probe")}
    verdict = gil.verdict(report)
    assert verdict.startswith("**Verdict:** no cost measured, but 2 of these figures had too few")
    assert "one round, no spread to judge by" in verdict
    report["process"]["accuracy"][1]["shares"][PROBES[0]] = 0.009
    assert "reads a wait share of 0.009, idle 0.003: no more than idle (within 0.01)." in (
        gil.verdict(report)
    )


def test_render_shows_both_parts_tables() -> None:
    markdown = gil.render(gil_report())
    assert markdown.startswith("# What the GIL probe costs\n\nMade by `python -m tests.bench")
    for line in (
        "| idle | 0.0032 | 0.0379 |",
        "| gilknocker (GilProbe) | 0.00287 | 0.29 |",
        "| pure Python, 1 ms sleep | 31.93 M | 32.9 M, 31.8 M, 31.1 M | 0.987 | 0.722 |",
        "### `coro`: fib(1), 4 servers each, side by side",
        "| 1 | probe on | 10,880 | 400 | 27.2× |",
        "convoy factor, median: probe on 27.2×, probe off 35.4×",
    ):
        assert line in markdown
    assert server.render(gil_report()) == markdown  # server.py --gil-probe --render too


def test_render_again_from_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = gil_report()
    (tmp_path / "report.json").write_text(json.dumps(report), "utf-8")
    gil.main(["--render", str(tmp_path)])
    assert (tmp_path / "report.md").read_text("utf-8") == gil.render(report)
    assert capsys.readouterr().out == f"wrote {tmp_path / 'report.md'}\n"
