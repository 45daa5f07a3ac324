# tests/bench/test_bucketing.py
#
# The buckets' cost report (python -m tests.bench.bucketing --out DIR)
# rendered from a small synthetic report dict: the Result sentences are
# computed from the figures, what the paired req/s rounds can say follows
# from where 1.000 lies among them, and --render makes report.md again from
# report.json alone. Nothing here runs Locust.

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.bench import bucketing, spread
from tests.bench.test_server import made_by

ROUNDS = [(12_809, 13_157), (12_647, 13_238), (11_968, 11_704)]


def bucketing_report(rounds: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {"round": number, "first": "lab" if number % 2 else "own", "lab": lab, "own": own,
         "lab_keys": 130 + number, "own_keys": 5, "ratio": lab / own}
        for number, (lab, own) in enumerate(rounds or ROUNDS, 1)
    ]  # fmt: skip
    return {
        "parameters": {"seconds": 3.0, "rounds": len(rows), "warm_up_seconds": 1.0,
                       "longest_ms": 120_000.0, "chart_copies": 20},
        "locust": "2.47.0",
        "load_average": {"start": [0.82, 1.1, 1.98], "end": [1.0, 1.1, 1.9]},
        "by_round": rows,
        "rate_median": {"lab": 12_647.0, "own": 13_157.0},
        "keys_max": {"lab": max(row["lab_keys"] for row in rows), "own": 5},
        "ratio": spread([row["ratio"] for row in rows]),
        "worst_case": [
            {"rule": "Locust's own", "key": "own", "log_request_ns": 1553.2, "keys": 391,
             "memory_kib": 640.4, "wire_kib": 2.12, "adding_us": 37.1},
            {"rule": "the lab's", "key": "lab", "log_request_ns": 1944.0, "keys": 661,
             "memory_kib": 754.0, "wire_kib": 5.04, "adding_us": 74.4},
        ],
        "provenance": made_by("bucketing-cost"),
    }  # fmt: skip


def test_result_is_computed_from_the_figures() -> None:
    markdown = bucketing.render(bucketing_report())
    assert markdown.startswith("# What Locust's sub-millisecond buckets cost\n\nMade by `python")
    assert (
        "**Result:** one ShortUser's fib(1) req/s against one `threads` server, 3 alternating "
        "pairs of 3 s runs: 12,647 with the lab's buckets and 13,157 with Locust's own "
        "(medians), a median paired ratio of 0.974 (0.955-1.023 by round): the rounds straddle "
        "1.000, so the req/s figures cannot resolve the cost; a worker's CPU per request can. "
        "A worker's `log_request` of fib(1) takes 1.94 µs instead of 1.55 µs (+391 ns a "
        "request). On a master, the worst case of one request name (every key up to 120 s: "
        "661 keys, Locust's 391) holds 754 KiB instead of 640 KiB, with the 20 per-second "
        "copies Locust keeps for the charts; a worker's report of it is 5.0 KiB instead of "
        "2.1 KiB and adds up in 74 µs instead of 37 µs. A 3 s run of one ShortUser fills at "
        "most 133 keys (Locust's: 5)."
    ) in markdown
    for line in (
        "- round 3: the lab's buckets 11,968 req/s, Locust's own 11,704 req/s, ratio 1.023",
        "| the lab's buckets | 12,647 | 133 |",
        "ratio lab / Locust's own: 0.974 (median of paired rounds)",
        "| the lab's | 1,944 ns | 661 | 754 KiB | 5.0 KiB | 74 µs |",
        "load average (1, 5, 15 min) 0.82 1.10 1.98 at the start, 1.00 1.10 1.90 at the end",
    ):
        assert line in markdown


def test_every_round_slower_is_a_cost_the_rates_resolve() -> None:
    result = bucketing.result(bucketing_report([(12_000, 12_500), (11_900, 12_400)]))
    assert "every round ran slower with the lab's buckets: a cost the req/s figures resolve" in (
        result
    )
    one = bucketing.result(bucketing_report([(12_000, 12_500)]))
    assert "(0.960-0.960 by round): one round: no spread to judge by." in one


def test_render_again_from_report_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = bucketing_report()
    (tmp_path / "report.json").write_text(json.dumps(report), "utf-8")
    bucketing.main(["--render", str(tmp_path)])
    assert (tmp_path / "report.md").read_text("utf-8") == bucketing.render(report)
    assert capsys.readouterr().out == f"wrote {tmp_path / 'report.md'}\n"
