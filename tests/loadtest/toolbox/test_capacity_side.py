# tests/loadtest/toolbox/test_capacity_side.py
#
# A capacity run against a baseline (loadtest/toolbox/capacity_side.py,
# through `python -m loadtest.compare.report --baseline`): its points side by
# side, never judged (one measurement per point), generator-bound and noisy
# points marked.

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def point(variant: str, connections: int, rps: float, **more: Any) -> dict[str, Any]:
    return {
        "kind": "sweep", "variant": variant, "connections": connections, "rps": rps,
        "achieved_rps": rps, "latency_ms": {"p50": 0.1, "p99": 0.5, "p99.9": 1.0},
        "server_cpu_cores": 0.9, "loadgen_cpu_cores": 0.6, "bottleneck": "server",
        "noisy": False,
    } | more  # fmt: skip


def summary(points: list[dict[str, Any]], pinning: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "kind": "capacity",
        "environment": {
            "date": "2026-11-30T00:00:00+00:00",
            "python": "3.11.7",
            "image": None,
            "variants": ["threads"],
            "parts": ["sweep"],
            "connections": [1, 16],
            "rate_shares": [0.5],
            "seconds": 4.0,
            "rate_seconds": 2.5,
            "warmup_s": 1.0,
            "short_n": 1,
            "long_n": 30,
            "loadgen_processes": 2,
            "cores": 2,
            "pinning": pinning,
        },
        "anchor": [{"connections": 1, "rps": 15000.0}],
        "points": points,
    }


def test_pinned_against_unpinned_side_by_side(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(summary(
        [point("threads", 1, 20_000), point("threads", 16, 10_000, bottleneck="loadgen")], None
    )))  # fmt: skip
    new.write_text(json.dumps(summary(
        [point("threads", 1, 25_000), point("threads", 16, 12_000, noisy=True)],
        {"server_cpus": [1], "loadgen_cpus": [0]},
    )))  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.compare.report", "--baseline", str(old), str(new),
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out" / "baseline.json").read_text())
    rows = {(f["row"]["variant"], f["row"]["connections"], f["figure"]): f for f in data["figures"]}
    one = rows[("threads", 1, "req/s")]
    assert one["change_percent"] == 25.0
    assert one["status"] == "no spread (1 repeat)"  # one measurement: never called better
    assert rows[("threads", 16, "req/s")]["status"] == "not judged (noisy)"
    assert rows[("redis (C)", 1, "req/s")]["change_percent"] == 0.0
    # the settings that differ: pinning
    markdown = (tmp_path / "out" / "baseline.md").read_text()
    assert "pinning" in markdown
    assert "servers [1], Locust [0]" in markdown


def test_a_capacity_run_against_a_compare_run_is_refused_naming_both(tmp_path: Path) -> None:
    capacity = tmp_path / "capacity.json"
    capacity.write_text(json.dumps(summary([point("threads", 1, 20_000)], None)))
    compare = ROOT / "docs" / "results" / "talk" / "summary.json"
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.compare.report", "--baseline", str(compare),
         str(capacity), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(capacity) in result.stderr
    assert str(compare) in result.stderr
