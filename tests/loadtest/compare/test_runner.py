# tests/loadtest/compare/test_runner.py
#
# The comparison runner end to end, as `make compare-quick` runs it: real
# variants as local processes, real Locust engines, a real report. Short
# durations: these check the runner's plumbing and its honesty flags, not
# the talk's figures (that is `make compare`'s job).

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.compare.bottleneck import bottleneck
from loadtest.compare.cli import main
from loadtest.compare.plan import MIN_DURATION, choose_long_n
from loadtest.compare.runner import stage_runs
from loadtest.compare.summary import check_summary
from loadtest.compare.verdicts import verdicts
from loadtest.toolbox.machine import NOISY_FOREIGN_CORES
from loadtest.toolbox.servers import MEMORY_METRIC, MIB, Scrape
from tests.loadtest.compare.conftest import RealRun, run_compare
from tests.loadtest.toolbox.test_servers import LABELS, scrapes_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_compare_writes_a_valid_report_with_convoy_verdicts(tmp_path: Path):
    out = tmp_path / "report"
    result = run_compare(
        "--variants", "threads,threads-procpool", "--scenarios", "short,convoy",
        "--duration", "3", "--repeat", "1", "--warmup", "1", "--long-n", "30",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "[1/4] threads: short, repeat 1/1" in result.stderr, "progress is shown"
    assert "3 s x 1 repeat; " in result.stderr, "1 repeat, not 1 repeats"
    assert "long fib(30): " in result.stderr
    assert " s in this process" in result.stderr

    summary = check_summary(json.loads((out / "summary.json").read_text()))
    environment = summary["environment"]
    assert environment["cores"] >= 1
    assert environment["long_n"] == 30
    assert environment.get("gil") in ("enabled", "disabled")
    assert environment.get("busy_cores_at_start") is not None, "the machine was sampled"
    assert environment.get("noisy_threshold_cores") == NOISY_FOREIGN_CORES
    assert set(environment.get("long_seconds_server", {})) == {"threads", "threads-procpool"}
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
        peak = run.get("server_memory_peak_mib")
        assert peak is not None, "the server tree's resident memory was scraped"
        assert 5 < peak < 2048, peak
        latency = run["latency_ms"]
        assert latency["p50"] is not None
        assert 0 < latency["p50"] < 50, "fib(1) takes microseconds, not whole milliseconds"
        assert latency["p50"] != round(latency["p50"]), "microsecond resolution"
        if run["scenario"] == "convoy":
            assert run["short_rps_before"] > 0
            timeline = run.get("timeline")
            assert timeline, "the convoy timeline is recorded"
            assert timeline[-1]["t"] + 1 <= run["duration_s"], "no partial last second"
        assert run.get("foreign_cpu_cores") is not None
        assert run.get("steal_cpu_cores") is not None
        assert isinstance(run.get("noisy"), bool)

    found = verdicts(summary)
    judged = {(v.rule, v.variant) for v in found}
    assert any(rule.startswith("convoy") and variant == "threads" for rule, variant in judged)
    assert any(variant == "threads-procpool" for _rule, variant in judged)
    for verdict in found:
        assert verdict.line() in result.stdout, "the runner prints the summary's verdicts"
        if verdict.noisy:  # a busy machine is physics, not a failure: it must show, though
            assert any(run["noisy"] for run in runs if run["variant"] == verdict.variant)
        else:
            assert verdict.reproduced is not None or verdict.loadgen_bound, verdict.line()

    markdown = (out / "summary.md").read_text()
    assert "threads-procpool" in markdown
    assert "| server threads | gil " in markdown
    assert "1 repeat," in markdown
    assert "1 repeats" not in markdown
    assert "| other processes' CPU during the runs | median " in markdown
    for plot in ("rps.png", "latency.png", "convoy.png", "cpu.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(PNG_SIGNATURE), plot
        assert len(data) > 5000, f"{plot} is nearly empty"


@pytest.mark.slow
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


@pytest.mark.slow
def test_each_long_stage_of_a_real_run_has_its_own_figures(tmp_path: Path):
    # threads, fib(30) (~0.07 s): three stages of 2 s with 1, 2, 3 clients
    out = tmp_path / "long"
    result = run_compare(
        "--variants", "threads", "--scenarios", "long", "--duration", "6",
        "--repeat", "1", "--warmup", "0", "--long-n", "30", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = check_summary(json.loads((out / "summary.json").read_text()))
    one, two, three = summary["runs"]
    stages = (one, two, three)
    assert [run.get("clients") for run in stages] == [1, 2, 3]

    # each stage its own time: about 2 s each, one after the other, not the whole run's 6 s
    windows = [run.get("stage_window") or [] for run in stages]
    for run in stages:
        assert 1.5 <= run["duration_s"] <= 2.6, run["duration_s"]
    assert windows[0][1] == windows[1][0]
    assert windows[1][1] == windows[2][0]

    for run in stages:
        assert run["requests"] >= 5, run
        assert run["rps"] == pytest.approx(run["requests"] / run["duration_s"], rel=0.01)
        assert run["server_cpu_seconds"] is not None, "scraped during the run"
        # one core under the GIL, whatever the clients; with others' work on
        # the machine, somewhat less
        assert 0.5 <= (run.get("server_cpu_cores") or 0.0) <= 1.3, run
        peak = run.get("server_memory_peak_mib")
        assert peak is not None, "the stage's own scrapes have the tree's memory"
        assert 5 < peak < 2048, peak
    # seconds per request: ~1x, 2x, 3x; the latency percentiles are each stage's own
    seconds = [run.get("seconds_per_request") or 0.0 for run in stages]
    assert 1.4 <= seconds[1] / seconds[0] <= 2.6
    assert 2.0 <= seconds[2] / seconds[0] <= 3.7
    p50 = [run["latency_ms"]["p50"] or 0.0 for run in stages]
    for stage_p50, stage_seconds in zip(p50, seconds, strict=True):
        assert stage_p50 / 1000 == pytest.approx(stage_seconds, rel=0.35)

    # item 6: the 1-client row says what fib(30) alone takes on that server
    alone = summary["environment"].get("long_seconds_server", {}).get("threads")
    assert alone is not None
    assert (p50[0] / 1000) == pytest.approx(alone, rel=0.35)
    # The stage's CPU comes from the scrapes nearest its ends (0.2 s apart) over
    # ~18 requests of ~0.1 s: a sampler thread late by a few tenths of a second
    # on a busy 2-core machine moves it by 20-40 % (0.067 vs 0.113 s seen once).
    # This checks that the split is the stage's and not the whole run's (3x).
    assert (one.get("cpu_seconds_per_request") or 0.0) == pytest.approx(alone, rel=0.5)
    assert "fib(30) alone takes" in result.stderr

    markdown = (out / "summary.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| threads | long ×")]
    assert len({row.split(" | ")[3] for row in rows}) == 3, "each stage has its own p50"


@pytest.mark.slow
def test_a_cpu_hog_during_a_run_marks_it_noisy(
    tmp_path: Path,
    cpu_hog: Callable[[float], subprocess.Popen[bytes]],
    quick_threads: RealRun,
):
    # the quiet side: a convoy on threads from the session's shared quick run
    runs = check_summary(quick_threads.summary())["runs"]
    quiet = next(run for run in runs if run["scenario"] == "convoy")
    hog = cpu_hog(40.0)  # longer than the run; killed as soon as it is done
    result = run_compare(
        "--variants", "threads", "--scenarios", "convoy", "--duration", "3",
        "--repeat", "1", "--warmup", "0", "--long-n", "28", "--out", str(tmp_path / "noisy"),
    )  # fmt: skip
    hog.kill()
    assert result.returncode == 0, result.stderr
    (noisy,) = check_summary(json.loads((tmp_path / "noisy" / "summary.json").read_text()))["runs"]

    # a whole core spinning, seen as other processes' CPU; the quiet run may
    # have neighbours too on a shared machine, but not a whole core more
    quiet_foreign = quiet.get("foreign_cpu_cores")
    noisy_foreign = noisy.get("foreign_cpu_cores")
    assert quiet_foreign is not None
    assert noisy_foreign is not None
    assert noisy_foreign >= quiet_foreign + 0.4, (quiet_foreign, noisy_foreign)
    assert noisy.get("noisy") is True
    assert quiet.get("noisy") is (quiet_foreign >= NOISY_FOREIGN_CORES)
    load = noisy.get("load_average")
    assert load is not None
    assert load["start"] is not None

    assert "warning: this machine is already busy" in result.stderr, "warned at start"
    # the convoy's only verdict rests on this noisy run alone: not judged
    assert "‡ noisy — rerun on a quiet machine: threads: one long request" in result.stdout
    markdown = (tmp_path / "noisy" / "summary.md").read_text()
    assert "| ‡ noisy — rerun on a quiet machine | threads |" in markdown
    assert " noisy ‡ (1/1) |" in markdown
    assert "‡ noisy: other processes used at least" in markdown


def test_bad_arguments_get_a_clear_error(capsys: pytest.CaptureFixture[str]):
    assert main(["--variants", "threads,nope"]) == 2
    assert "unknown variant nope" in capsys.readouterr().err
    assert main(["--long-n", "many"]) == 2
    assert "--long-n 'many'" in capsys.readouterr().err


def test_long_n_is_chosen_by_duration_here():
    n, seconds = choose_long_n(0.2)
    assert 20 <= n <= 45
    # a timing of fib(n) itself (about 0.2 s; a neighbour's load can slow it)
    assert 0.07 <= seconds <= 0.5
    assert choose_long_n(0.2)[0] in (n - 1, n, n + 1), "extrapolated from a call long enough"


# --- each long stage's server CPU, from scrapes taken during the run ---------------


def long_figures() -> dict[str, object]:
    """The engine's output for a long run: 1 client [0, 2), 2 clients [2, 3), 3 [3, 4)."""

    def stage(clients: int, window: list[float], requests: int, seconds: float | None):
        latency = None if seconds is None else round(seconds * 1000, 3)
        return {
            "clients": clients,
            "window": window,
            "duration_s": window[1] - window[0],
            "requests": requests,
            "errors": 0,
            "rps": requests / (window[1] - window[0]),
            "latency_requests": requests,
            "latency_ms": dict.fromkeys(("p50", "p90", "p99", "p999", "max"), latency),
            "seconds_per_request": seconds,
        }

    return {
        "monotonic_start": 1000.0,
        "stages": [
            stage(1, [0.0, 2.0], 4, 0.5),
            stage(2, [2.0, 3.0], 2, 1.0),
            stage(3, [3.0, 4.0], 0, None),
        ],
    }


def whole_run() -> dict[str, object]:
    # what runs_of builds for the whole run before splitting it into stages
    return {
        "variant": "threads-procpool",
        "scenario": "long",
        "repeat": 0,
        "duration_s": 4.0,
        "requests": 6,
        "errors": 0,
        "rps": 1.5,
        "latency_ms": dict.fromkeys(("p50", "p90", "p99", "p999", "max"), 700.0),
        "server_cpu_seconds": 6.0,
        "server_cpu_cores": 1.5,
        "cpu_seconds_per_request": 1.0,
        "loadgen_cpu_percent": 5.0,
        "asked_rps": None,
        "achieved_rps": 0.0,
        "foreign_cpu_cores": 0.02,
        "steal_cpu_cores": 0.0,
        "load_average": {"start": 0.5, "end": 0.6},
        "noisy": False,
        "timeline": [{"t": 0.0, "short_rps": 0.0, "long_in_progress": 1.0}],
        "bottleneck": "server",
    }


def test_each_stage_gets_its_own_server_cpu_from_the_scrapes():
    # the server: 1 core with 1 client (until 1002), 2 cores after (a process pool)
    scrapes = scrapes_of(
        [(999.9, 10.0), *((1000.0 + k / 2, 10.1 + min(k / 2, 2.0) + max(0, k / 2 - 2) * 2)
                          for k in range(9))]
    )  # fmt: skip
    one, two, three = stage_runs(whole_run(), long_figures(), scrapes, 34)

    assert [run["clients"] for run in (one, two, three)] == [1, 2, 3]
    assert [run["duration_s"] for run in (one, two, three)] == [2.0, 1.0, 1.0]
    assert [run["requests"] for run in (one, two, three)] == [4, 2, 0]
    assert [run["rps"] for run in (one, two, three)] == [2.0, 2.0, 0.0]
    assert one["latency_ms"]["p50"] == 500.0
    assert two["latency_ms"]["p50"] == 1000.0
    assert three["latency_ms"]["p50"] is None
    assert [run["seconds_per_request"] for run in (one, two, three)] == [0.5, 1.0, None]

    assert one["server_cpu_seconds"] == pytest.approx(2.0)
    assert two["server_cpu_seconds"] == pytest.approx(2.0)
    assert three["server_cpu_seconds"] == pytest.approx(2.0)
    assert [run["server_cpu_cores"] for run in (one, two, three)] == [1.0, 2.0, 2.0]
    assert one["cpu_seconds_per_request"] == pytest.approx(0.5)
    assert two["cpu_seconds_per_request"] == pytest.approx(1.0)
    assert three["cpu_seconds_per_request"] is None, "no reply: no CPU per reply"
    assert [run["stage_window"] for run in (one, two, three)] == [
        [0.0, 2.0],
        [2.0, 3.0],
        [3.0, 4.0],
    ]
    for run in (one, two, three):
        assert "timeline" not in run, "the whole run's timeline is not a stage's"
        assert run["noisy"] is False, "the machine's figures are the run's"
        assert run["bottleneck"] == "server"
    check_summary({"environment": {"cores": 2, "python": "3.11", "date": "x"},
                   "runs": [one, two, three]})  # fmt: skip


def test_each_stage_gets_its_own_memory_peak_from_the_scrapes():
    # stages [1000, 1002), [1002, 1003), [1003, 1004]: the tree grows in the second
    mib = {999.9: 40.0, 1000.5: 41.0, 1001.5: 42.0, 1002.5: 120.0, 1003.5: 80.0, 1004.2: 70.0}
    scrapes = [
        Scrape(at, {(MEMORY_METRIC, LABELS): value * MIB, **cpu.samples})
        for (at, value), cpu in zip(mib.items(), scrapes_of([(at, at) for at in mib]), strict=True)
    ]
    one, two, three = stage_runs(whole_run(), long_figures(), scrapes, 34)
    assert [run["server_memory_peak_mib"] for run in (one, two, three)] == [42.0, 120.0, 80.0]


def test_stages_without_scrapes_have_no_server_cpu():
    one, *_ = stage_runs(whole_run(), long_figures(), [], 34)
    assert one["server_cpu_seconds"] is None
    assert one["server_memory_peak_mib"] is None, "missing, not zero"
    assert one["cpu_seconds_per_request"] is None
    assert one["duration_s"] == 2.0, "the stage's own figures are still there"


# --- options ----------------------------------------------------------------------------


def test_duration_zero_names_duration_and_its_minimum(capsys: pytest.CaptureFixture[str]):
    assert main(["--duration", "0"]) == 2
    error = capsys.readouterr().err
    assert f"--duration 0: must be at least {MIN_DURATION:g} seconds" in error
    assert "--repeat" not in error, "only the broken option"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "2.5"], "--duration 2.5: must be at least 3 seconds"),
        (["--duration", "nan"], "--duration nan: must be a finite number"),
        (["--duration", "inf"], "--duration inf: must be a finite number"),
        (["--repeat", "0"], "--repeat 0: must be at least 1"),
        (["--warmup", "-1"], "--warmup -1: must be at least 0 seconds"),
        (["--short-n", "-1"], "--short-n -1: must be from 0 to 45"),
        (["--short-n", "46"], "--short-n 46: must be from 0 to 45"),
        (["--long-n", "46"], "--long-n '46': expected auto or an integer from 0 to 45"),
        (["--long-seconds", "0"], "--long-seconds 0: must be more than 0 seconds"),
        (["--short-users", "0"], "--short-users 0: must be at least 1"),
        (["--rate", "-5"], "--rate -5: must be at least 0"),
        (["--metrics-port", "70000"], "--metrics-port 70000: must be a TCP port"),
        (
            ["--repeat", "0", "--short-users", "0"],
            "--repeat 0: must be at least 1; --short-users 0: must be at least 1",
        ),
    ],
)
def test_each_numeric_option_is_checked_by_name(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
):
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("must be") == message.count("must be"), error
