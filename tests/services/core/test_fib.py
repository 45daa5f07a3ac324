# tests/services/core/test_fib.py
#
# The talk's fib (services/core/fib.py): right values, and the naive
# exponential recursion on purpose (its CPU cost is the experiment), so
# never memoised.

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest

from services.core import fib as fib_module
from services.core.fib import fib


def iterative_fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@pytest.mark.parametrize("n", range(26))
def test_values(n: int) -> None:
    assert fib(n) == iterative_fib(n)


def test_the_talks_function_agrees_for_n_at_least_1() -> None:
    def talks_fib(n: int) -> int:  # as typed in the talk
        if n <= 2:
            return 1
        return talks_fib(n - 1) + talks_fib(n - 2)

    assert [fib(n) for n in range(1, 20)] == [talks_fib(n) for n in range(1, 20)]


def test_not_wrapped_in_a_cache() -> None:
    # functools.cache / lru_cache wrappers carry these attributes.
    assert not hasattr(fib, "cache_info")
    assert not hasattr(fib, "__wrapped__")
    assert fib.__module__ == "services.core.fib"


def calls_to_fib(n: int) -> int:
    """How many times the body of fib runs for fib(n), counted by a profiler."""
    code = fib_module.fib.__code__
    calls = 0

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profile)
    try:
        fib(n)
    finally:
        sys.setprofile(None)
    return calls


def test_naive_recursion_call_counts() -> None:
    # The naive recursion with base cases n <= 2 makes 2*fib(n) - 1 calls for
    # n >= 1 (1 for n = 0): it grows like fib itself. A memoised or iterative
    # version would make at most n calls.
    for n in (0, 1, 2, 3, 10, 15):
        expected = 1 if n == 0 else 2 * iterative_fib(n) - 1
        assert calls_to_fib(n) == expected, n
    # And asking twice costs twice: nothing is remembered between calls.
    assert calls_to_fib(15) == calls_to_fib(15) == 2 * iterative_fib(15) - 1
