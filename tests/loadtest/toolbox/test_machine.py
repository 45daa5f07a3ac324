# tests/loadtest/toolbox/test_machine.py
#
# The machine's foreign CPU: /proc/stat text in the kernel's own format
# (SYNTHETIC readings with known answers), the arithmetic that takes the
# lab's own CPU away, the noisy threshold, and the warning printed when the
# machine is busy before a comparison starts; then the real /proc/stat
# while a real CPU hog runs.

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.toolbox import machine
from loadtest.toolbox.machine import (
    NOISY_FOREIGN_CORES,
    Busy,
    CpuTimes,
    ProcStatError,
    Snapshot,
    busy_now,
    foreign_cpu,
    parse_proc_stat,
    read_proc_stat,
)
from services.core.cpu import CLOCK_TICKS

# /proc/stat as a 2-CPU Linux 6.x writes it (proc(5)): user nice system idle
# iowait irq softirq steal guest guest_nice, in USER_HZ ticks.
PROC_STAT = """\
cpu  54769 125 13205 129910 944 0 4104 50 300 0
cpu0 24915 58 6149 68193 283 0 1928 23 150 0
cpu1 29853 67 7056 61717 660 0 2176 27 150 0
intr 9135810 0 9 0 0 0 0 0 0 0 0
ctxt 19771163
btime 1764516912
processes 11026
procs_running 2
procs_blocked 0
softirq 4532093 2 614281 2 2245 0 0 5 1745637 0 2169921
"""


def ticks(value: int) -> float:
    return value / CLOCK_TICKS


def test_proc_stat_line_is_read_in_seconds() -> None:
    times = parse_proc_stat(PROC_STAT)
    # idle + iowait (exact on a NO_HZ kernel), steal, and one cpuN line per CPU
    assert times.idle == pytest.approx(ticks(129910 + 944))
    assert times.steal == pytest.approx(ticks(50))
    assert times.cpus == 2


def test_old_kernels_shorter_cpu_line_is_read() -> None:
    # before Linux 2.6.11 there was no steal column
    times = parse_proc_stat("cpu  100 0 50 1000 5 1 2\ncpu0 100 0 50 1000 5 1 2\n")
    assert times.idle == pytest.approx(ticks(1005))
    assert times.steal == 0.0
    assert times.cpus == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "cpu0 1 2 3 4\n",
        "cpu  a b c d\ncpu0 1 2 3 4\n",
        "cpu  1 2\ncpu0 1 2\n",
        "cpu  1 2 3 4\n",
    ],
)
def test_proc_stat_without_the_cpu_lines_is_a_clear_error(text: str) -> None:
    with pytest.raises(ProcStatError, match="no aggregate 'cpu"):
        parse_proc_stat(text)


def test_proc_stat_is_read_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    path.write_text(PROC_STAT)
    assert read_proc_stat(path) == parse_proc_stat(PROC_STAT)
    assert read_proc_stat(tmp_path / "missing") is None, "no /proc: unknown, not a crash"
    here = read_proc_stat()  # this machine's, in the same format
    assert here is not None
    assert here.cpus >= len(os.sched_getaffinity(0))


def snapshot_at(at: float, idle: float, steal: float = 0.0, own: float = 0.0) -> Snapshot:
    """The 2-CPU machine at monotonic time `at`, idle for `idle` CPU-seconds since boot."""
    return Snapshot(at, CpuTimes(idle=idle, steal=steal, cpus=2), own, 1.5)


def busy_for(seconds: float, busy: float) -> float:
    """The idle CPU-seconds of 2 CPUs over `seconds` when `busy` of them were used."""
    return 2 * seconds - busy


def test_foreign_cpu_is_the_machines_busy_cpu_minus_the_labs() -> None:
    # 10 s: the machine was busy 18 CPU-s of 20 (2 idle); the server used 9,
    # the runner and its engine 6: others used 3 CPU-s, 0.3 core on average,
    # 1 CPU-s of it stolen
    before = snapshot_at(100.0, idle=1000.0, steal=5.0, own=2.0)
    after = snapshot_at(110.0, idle=1002.0, steal=6.0, own=8.0)
    figures = foreign_cpu(before, after, lab_cpu_seconds=9.0)
    assert figures["foreign_cpu_cores"] == pytest.approx(0.3)
    assert figures["steal_cpu_cores"] == pytest.approx(0.1)
    assert figures["load_average"] == {"start": 1.5, "end": 1.5}
    assert figures["noisy"] is (NOISY_FOREIGN_CORES <= 0.3)


@pytest.mark.parametrize(
    ("foreign_cpu_seconds", "noisy"),
    [
        (0.0, False),
        (NOISY_FOREIGN_CORES * 10 - 0.01, False),
        (NOISY_FOREIGN_CORES * 10, True),
        (10.0, True),
    ],
)
def test_noisy_from_the_threshold_on(foreign_cpu_seconds: float, noisy: bool) -> None:
    before = snapshot_at(0.0, idle=0.0)
    after = snapshot_at(10.0, idle=busy_for(10.0, 5.0 + foreign_cpu_seconds), own=2.0)
    assert foreign_cpu(before, after, lab_cpu_seconds=3.0)["noisy"] is noisy


def test_a_hair_below_zero_is_zero() -> None:
    # idle counts in ticks, the processes' CPU to the microsecond
    after = snapshot_at(10.0, idle=busy_for(10.0, 4.99), own=2.0)
    figures = foreign_cpu(snapshot_at(0.0, 0.0), after, 3.0)
    assert figures["foreign_cpu_cores"] == 0.0
    assert figures["noisy"] is False


def test_unknown_server_cpu_leaves_foreign_cpu_unknown_not_noisy() -> None:
    figures = foreign_cpu(snapshot_at(0.0, 0.0, steal=1.0), snapshot_at(10.0, 0.0, 2.0), None)
    assert figures["foreign_cpu_cores"] is None
    assert figures["steal_cpu_cores"] == pytest.approx(0.1), "steal needs no lab figure"
    assert figures["noisy"] is False


def test_no_proc_stat_leaves_everything_unknown() -> None:
    before = Snapshot(0.0, None, 0.0, None)
    after = Snapshot(10.0, None, 1.0, None)
    assert foreign_cpu(before, after, 1.0) == {
        "foreign_cpu_cores": None,
        "steal_cpu_cores": None,
        "load_average": {"start": None, "end": None},
        "noisy": False,
    }


def test_busy_warning_names_the_figure_and_the_threshold() -> None:
    busy = Busy(cores=1.04, load=4.2)
    assert busy.busy
    warning = busy.warning()
    assert "other processes used 1.04 CPU cores" in warning
    assert "load average 4.2" in warning
    assert f">= {NOISY_FOREIGN_CORES:g} core" in warning
    assert "noisy (‡)" in warning
    assert not Busy(cores=0.03, load=0.5).busy
    assert not Busy(cores=None, load=None).busy


def test_a_real_cpu_hog_is_seen_as_busy(
    cpu_hog: Callable[[float], subprocess.Popen[bytes]],
) -> None:
    cpu_hog(5.0)
    busy = busy_now(1.0)
    # a whole core spinning; other work on the machine only adds to it
    assert busy.cores is not None
    assert busy.cores >= 0.7
    assert busy.busy


# --- CPU lists for pinning (--server-cpus, --loadgen-cpus, FIB_*_CPUS) ----------------


def test_cpu_lists_read_like_taskset_and_dockers_cpuset() -> None:
    here = os.sched_getaffinity(0)
    first = min(here)
    assert machine.parse_cpus("", "--server-cpus") is None
    assert machine.parse_cpus(f"{first}", "--server-cpus") == {first}
    assert machine.parse_cpus(",".join(map(str, sorted(here))), "--x") == here
    low, high = min(here), max(here)
    assert machine.parse_cpus(f"{low}-{high}", "--x") == set(range(low, high + 1))
    # another container's CPUs are taken as written
    assert machine.parse_cpus("0-3,7", "FIB_SERVER_CPUS", here=False) == {0, 1, 2, 3, 7}
    assert machine.format_cpus({3, 0, 1}) == "0,1,3"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("a", "'a' is not a CPU number or range"),
        ("1-", "'1-' is not a CPU number or range"),
        ("0,,1", "'' is not a CPU number or range"),
        ("3-1", "the range '3-1' runs backwards"),
        ("4096", "no CPU 4096 here"),
    ],
)
def test_a_bad_cpu_list_names_the_option_and_the_part(text: str, complaint: str) -> None:
    with pytest.raises(machine.CpuListError) as raised:
        machine.parse_cpus(text, "--loadgen-cpus")
    assert str(raised.value).startswith(f"--loadgen-cpus {text!r}: ")
    assert complaint in str(raised.value)


def test_pinning_is_recorded_only_when_something_is_pinned() -> None:
    assert machine.pinning_record(None, None) is None
    assert machine.pinning_record({1}, None) == {"server_cpus": [1], "loadgen_cpus": None}
    assert machine.pinning_record({1, 0}, {2}) == {"server_cpus": [0, 1], "loadgen_cpus": [2]}
