# tests/loadtest/compare/conftest.py
#
# `python -m loadtest.compare` as a user runs it, and real runs that several
# tests read: each such run is made once per session, and only when a test
# asks for it (a quick run still takes about 15 s on 2 cores).

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

# threads alone, short and convoy, the shortest runs, two repeats (a spread
# to judge changes by), no warm-up
QUICK_THREADS = (
    "--variants", "threads", "--scenarios", "short,convoy", "--duration", "3",
    "--repeat", "2", "--warmup", "0", "--long-n", "27",
)  # fmt: skip


def run_compare(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.compare", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@dataclass(frozen=True)
class RealRun:
    result: subprocess.CompletedProcess[str]
    out: Path  # the report's folder

    @property
    def summary_path(self) -> Path:
        return self.out / "summary.json"

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.summary_path.read_text("utf-8"))
        return data


def quick_threads_run(out: Path) -> RealRun:
    result = run_compare(*QUICK_THREADS, "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    return RealRun(result, out)


@pytest.fixture(scope="session")
def quick_threads(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """A quick real run of threads (QUICK_THREADS). Shared: a test may add files to its
    folder, never change what the run wrote."""
    return quick_threads_run(tmp_path_factory.mktemp("quick-threads"))


@pytest.fixture(scope="session")
def quick_threads_again(
    quick_threads: RealRun, tmp_path_factory: pytest.TempPathFactory
) -> RealRun:
    """The same command run a second time, after quick_threads."""
    return quick_threads_run(tmp_path_factory.mktemp("quick-threads-again"))
