# tests/loadtest/compare/test_runner.py
#
# The comparison runner end to end, as `make compare-quick` runs it: real
# variants as local processes, real Locust engines, a real report. Short
# durations: these check the runner's plumbing and its honesty flags, not
# the talk's figures (that is `make compare`'s job).

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.compare.runner import CompareError, bottleneck, choose_long_n, comma_list, main
from loadtest.compare.summary import check_summary
from loadtest.compare.verdicts import verdicts
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_compare(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.compare", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_quick_compare_writes_a_valid_report_with_convoy_verdicts(tmp_path: Path):
    out = tmp_path / "report"
    result = run_compare(
        "--variants", "threads,threads-procpool", "--scenarios", "short,convoy",
        "--duration", "4", "--repeat", "1", "--warmup", "1", "--long-n", "30",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[1/4] threads: short, repeat 1/1" in result.stderr, "progress is shown"

    summary = check_summary(json.loads((out / "summary.json").read_text()))
    environment = summary["environment"]
    assert environment["cores"] >= 1
    assert environment["long_n"] == 30
    assert environment.get("gil") in ("enabled", "disabled")
    servers = environment.get("servers", {})
    assert set(servers) == {"threads", "threads-procpool"}
    assert servers["threads"]["gil"] in ("enabled", "disabled"), "from the server's fib_info"
    runs = summary["runs"]
    assert {(run["variant"], run["scenario"]) for run in runs} == {
        (variant, scenario)
        for variant in ("threads", "threads-procpool")
        for scenario in ("short", "convoy")
    }
    for run in runs:
        assert run["requests"] > 100, run
        assert run["errors"] == 0, run
        assert run["bottleneck"] in ("server", "loadgen")
        assert run["server_cpu_seconds"] is not None, "the server's /metrics were read"
        assert run["server_cpu_seconds"] > 0
        latency = run["latency_ms"]
        assert latency["p50"] is not None
        assert 0 < latency["p50"] < 50, "fib(1) takes microseconds, not whole milliseconds"
        assert latency["p50"] != round(latency["p50"]), "microsecond resolution"
        if run["scenario"] == "convoy":
            assert run["short_rps_before"] > 0
            assert run.get("timeline"), "the convoy timeline is recorded"

    judged = {(v.rule, v.variant) for v in verdicts(summary)}
    assert any(rule.startswith("convoy") and variant == "threads" for rule, variant in judged)
    assert any(variant == "threads-procpool" for _rule, variant in judged)
    assert "reproduced" in result.stdout

    markdown = (out / "summary.md").read_text()
    assert "threads-procpool" in markdown
    assert "| server threads | gil " in markdown
    for plot in ("rps.png", "latency.png", "convoy.png", "cpu.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(PNG_SIGNATURE), plot
        assert len(data) > 5000, f"{plot} is nearly empty"


def test_a_starved_load_generator_is_flagged(tmp_path: Path):
    out = tmp_path / "starved"
    result = run_compare(
        "--variants", "threads", "--scenarios", "short", "--duration", "3",
        "--repeat", "1", "--warmup", "0", "--rate", "1000000", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run,) = json.loads((out / "summary.json").read_text())["runs"]
    assert run["asked_rps"] == 1000000
    assert run["achieved_rps"] < 0.5 * run["asked_rps"]
    assert run["bottleneck"] == "loadgen"
    assert "†" in (out / "summary.md").read_text(), "loadgen-bound figures are marked"


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"asked_rps": 1000.0, "achieved_rps": 995.0, "loadgen_cpu_percent": 30.0}, "server"),
        ({"asked_rps": 1000.0, "achieved_rps": 500.0, "loadgen_cpu_percent": 30.0}, "loadgen"),
        ({"loadgen_cpu_percent": 99.0, "server_cpu_cores": 0.3}, "loadgen"),
        ({"loadgen_cpu_percent": 99.0, "server_cpu_cores": 1.0}, "server"),
        ({"loadgen_cpu_percent": 40.0, "server_cpu_cores": 0.3}, "server"),
        # 100,000 requests in 10 s at 50 % of a core: the client spent 50 µs on each.
        (
            {
                "loadgen_cpu_percent": 50.0,
                "requests": 100_000,
                "duration_s": 10.0,
                "cpu_seconds_per_request": 20e-6,
            },
            "loadgen",
        ),
        (
            {
                "loadgen_cpu_percent": 50.0,
                "requests": 100_000,
                "duration_s": 10.0,
                "cpu_seconds_per_request": 48e-6,
            },
            "server",
        ),
    ],
)
def test_bottleneck_rule(run: dict[str, float], expected: str):
    assert bottleneck(run) == expected


def test_bad_arguments_get_a_clear_error(capsys: pytest.CaptureFixture[str]):
    assert main(["--variants", "threads,nope"]) == 2
    assert "unknown variant nope" in capsys.readouterr().err
    assert main(["--long-n", "many"]) == 2
    assert "--long-n 'many'" in capsys.readouterr().err
    with pytest.raises(CompareError, match="unknown scenario"):
        comma_list("short,medium", ("short", "long", "convoy"), "scenario")


def test_long_n_is_chosen_by_duration_here():
    n, seconds = choose_long_n(0.2)
    assert 20 <= n <= 45
    assert 0.1 <= seconds <= 0.4
