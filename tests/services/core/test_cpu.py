# tests/services/core/test_cpu.py
#
# CPU accounting (services/core/cpu.py): /proc/PID/stat as the kernel writes
# it (a SYNTHETIC line with a name that holds spaces and parentheses, and the
# real line of this process), the cgroup accounting files, and the process
# tree's CPU while this process burns some.

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from services.core.cpu import (
    CLOCK_TICKS,
    cgroup_cpu_seconds,
    parse_process_stat,
    process_stat,
    tree_cpu_seconds,
)

# proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
# majflt cmajflt utime stime cutime cstime ...
STAT = "4242 (a (b) c) S 17 4240 4240 0 -1 4194560 900 0 0 0 250 50 30 20 20 0 3 0 1234 0 0"


def test_a_stat_line_is_read_after_the_last_parenthesis() -> None:
    stat = parse_process_stat(STAT)
    assert stat.name == "a (b) c"
    assert (stat.state, stat.parent, stat.group) == ("S", 17, 4240)
    assert stat.cpu_seconds == pytest.approx((250 + 50) / CLOCK_TICKS)
    assert stat.reaped_cpu_seconds == pytest.approx((30 + 20) / CLOCK_TICKS)


def test_this_process_is_read_and_a_gone_one_is_none() -> None:
    own = process_stat(os.getpid())
    assert own is not None
    assert own.parent == os.getppid()
    assert own.group == os.getpgrp()
    assert process_stat(2**22 + 1) is None, "above pid_max: no such process"


def test_tree_cpu_seconds_counts_this_process() -> None:
    start = tree_cpu_seconds()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert tree_cpu_seconds() - start >= 0.15


def test_cgroup_v2_cpu_stat(tmp_path: Path) -> None:
    stat = tmp_path / "cpu.stat"
    stat.write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert cgroup_cpu_seconds(stat) == 2.5


def test_cgroup_v1_cpuacct_usage(tmp_path: Path) -> None:
    usage = tmp_path / "cpuacct.usage"
    usage.write_text("1500000000\n")
    assert cgroup_cpu_seconds(usage) == 1.5
