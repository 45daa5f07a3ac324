# tests/loadtest/compare/conftest.py
#
# A real CPU hog for the noisy-machine tests: a process that spins on one
# core for a bounded time, killed at the end of the test whatever happens.

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"


@pytest.fixture
def cpu_hog() -> Iterator[Callable[[float], subprocess.Popen[bytes]]]:
    """Start a process that keeps one core busy for at most `seconds`."""
    started: list[subprocess.Popen[bytes]] = []

    def start(seconds: float) -> subprocess.Popen[bytes]:
        hog = subprocess.Popen([sys.executable, "-c", HOG.format(seconds=seconds)])
        started.append(hog)
        time.sleep(0.3)  # past the interpreter's start-up
        return hog

    yield start
    for hog in started:
        hog.kill()
        hog.wait(10)
