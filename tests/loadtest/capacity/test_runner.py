# `python -m loadtest.capacity` as a user runs it: a real (short) sweep and
# rate curves on threads, the report it writes, and bad input. One variant:
# each one more costs six 2 s points, and the tables and plots of several
# are tested from their figures (test_points.py, test_report.py).

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.capacity.runner import capacity_of, main
from tests.conftest import ROOT


def run_capacity(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.capacity", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def sweep_point(variant: str, connections: int, rps: float, bottleneck: str) -> dict[str, Any]:
    return {
        "kind": "sweep", "variant": variant, "connections": connections, "rps": rps,
        "bottleneck": bottleneck,
    }  # fmt: skip


def test_the_capacity_is_the_best_server_bound_point_at_the_fewest_connections() -> None:
    sweep = [
        sweep_point("threads", 1, 20_000, "server"),
        sweep_point("threads", 4, 24_000, "server"),
        sweep_point("threads", 16, 24_500, "server"),
        sweep_point("threads", 64, 40_000, "loadgen"),  # never the server's capacity
    ]
    assert capacity_of(sweep) == (24_500, 4)  # 24,000 is within 10 % of the best
    assert capacity_of([sweep_point("coro", 1, 9_000, "loadgen")]) is None
    # sync answers one connection of the 16 it was given: its rate curve runs on one
    one_served = sweep_point("sync", 16, 12_000, "server") | {"server_connections": 1}
    assert capacity_of([sweep_point("sync", 1, 10_000, "server"), one_served]) == (12_000, 1)


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["--connections", "1,0"], "--connections '1,0'"),
        (["--connections", "many"], "--connections 'many'"),
        (["--rate-shares", "0.5,x"], "--rate-shares '0.5,x'"),
        (["--rate-shares", "-1"], "--rate-shares '-1'"),
        (["--variants", "threads,nope"], "nope"),
        (["--parts", "sweep,plots"], "plots"),
        (["--parts", "rates"], "--parts rates needs sweep"),
        (["--server-cpus", "99"], "--server-cpus '99': no CPU 99"),
        (["--loadgen-cpus", "1-0"], "--loadgen-cpus '1-0'"),
        (["--seconds", "0"], "--seconds 0"),
        (["--parts", "rates", "--capacity-from", "/nonexistent/summary.json"], "/nonexistent"),
    ],
)
def test_bad_input_exits_2_naming_the_culprit(
    args: list[str], culprit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # in this process: each check comes before anything is started
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert culprit in error
    assert len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "out" / "summary.json").exists()


def test_the_command_exits_2_on_bad_input(tmp_path: Path) -> None:
    result = run_capacity("--connections", "1,0", "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "--connections '1,0'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
def test_a_short_capacity_run_writes_its_tables_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "capacity"
    result = run_capacity(
        "--variants", "threads", "--parts", "sweep,rates",
        "--connections", "1,8", "--rate-shares", "0.25,2", "--seconds", "1.5",
        "--rate-seconds", "1.5", "--warmup", "0.5", "--long-n", "27", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "capacity"
    env = summary["environment"]
    assert env["connections"] == [1, 8]
    assert env["pinning"] is None
    assert env["loadgen_processes"] >= 1
    points = summary["points"]
    for variant in ("threads",):
        sweep = [p for p in points if p["variant"] == variant and p["kind"] == "sweep"]
        assert [p["connections"] for p in sweep] == [1, 8]
        for p in sweep:
            assert p["rps"] > 100, p
            assert p["errors"] == 0, p
            assert p["bottleneck"] in ("server", "loadgen")
            assert p["latency_ms"]["p50"] is not None
        found = capacity_of(sweep)
        if found is None:  # every point generator-bound: no rate curve, and it says so
            assert f"{variant}: no server-bound sweep point" in result.stderr
            continue
        best, connections = found
        for kind in ("rates", "rates-convoy"):
            curve = [p for p in points if p["variant"] == variant and p["kind"] == kind]
            assert [p["rate_share"] for p in curve] == [0.25, 2]
            assert [p["asked_rps"] for p in curve] == [round(best * 0.25, 1), round(best * 2, 1)]
            assert {p["connections"] for p in curve} == {connections}
        low, high = (p for p in points if p["variant"] == variant and p["kind"] == "rates")
        # a quarter of the capacity is served as asked; twice it is not (one
        # 1.5 s sweep point can read low: at 1.5 times an open loop once got 97 %)
        assert low["achieved_rps"] == pytest.approx(low["asked_rps"], rel=0.2), low
        assert high["achieved_rps"] < 0.95 * high["asked_rps"], high
        assert high["latency_ms"]["p99"] > low["latency_ms"]["p99"]
    markdown = (out / "capacity.md").read_text()
    assert "## Concurrency sweep" in markdown
    assert "## Rate curve" in markdown
    assert "| threads | 8 |" in markdown
    for plot in ("capacity-rps.png", "capacity-latency.png", "rate-curve.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG"), plot
        assert f"]({plot})" in markdown

    # the rates again, alone, at the capacities of that run (make capacity-rates)
    again = tmp_path / "rates"
    result = run_capacity(
        "--variants", "threads", "--parts", "rates", "--capacity-from",
        str(out / "summary.json"), "--rate-shares", "0.5", "--rate-seconds", "1",
        "--warmup", "0.5", "--long-n", "27", "--out", str(again),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rerun = json.loads((again / "summary.json").read_text())
    given = rerun["environment"]["capacities_given"]["threads"]
    threads_sweep = [p for p in points if p["variant"] == "threads" and p["kind"] == "sweep"]
    assert tuple(given) == capacity_of(threads_sweep)
    assert {p["kind"] for p in rerun["points"]} == {"rates", "rates-convoy"}
