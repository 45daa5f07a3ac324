# loadtest/talk/figures.py
#
# The figures David Beazley states in "Python Concurrency From the Ground Up:
# LIVE!" (PyCon 2015), as data: what was measured, on which of his servers
# (named by the lab variant that re-implements it), the number or words he
# used, and where in the talk (the start time of the video's caption, so a
# reader can find the moment: TALK_VIDEO). The report sets them beside the
# lab's figures. His machine and alpha Python were ~8x slower than today's
# CPython (fib(30) 0.33 s then, ~0.045 s now), so absolute figures are context;
# the verdicts (loadtest/compare/verdicts.py) judge ratios.

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What of the lab's measurements a talk figure corresponds to.
LabMeasure = Literal[
    "long_seconds_1",  # seconds per long request, 1 long client
    "long_seconds_2",  # ... 2 concurrent long clients
    "long_seconds_3",  # ... 3 concurrent long clients
    "short_rps",  # short requests alone, req/s
    "convoy_during_rps",  # short req/s while one long request runs
]

TALK_VIDEO = "https://www.youtube.com/watch?v=MCs5OvhV9S4"
TALK_LONG_N = 30  # perf1's request: fib(30)
TALK_LONG_SECONDS = 0.33  # fib(30) on his laptop
TALK_CONVOY_N = 40  # the request that stalls the short ones: fib(40), ~40 s then
TALK_CONVOY_SECONDS = 40.0  # "about 40 seconds" on his 2015 laptop and alpha Python
TALK_SHORT_N = 1  # perf2's request: fib(1)


@dataclass(frozen=True)
class TalkFigure:
    key: str
    variant: str | None  # the lab variant for his server; None: no lab variant
    measure: LabMeasure | None  # None: the lab does not measure this
    what: str  # the experiment, in a few words
    value: float | None  # None: he gave no number, only words
    unit: str
    said: str  # the figure as the report shows it
    quote: str  # his words (auto-captions)
    at: str  # caption start time in the video, HH:MM:SS


FIGURES: tuple[TalkFigure, ...] = (
    TalkFigure(
        "threads-long-1",
        "threads",
        "long_seconds_1",
        "perf1, fib(30), 1 client: seconds per request",
        0.33,
        "s",
        "~0.33 s",
        "takes about a third of a second",
        "00:08:40",
    ),
    TalkFigure(
        "threads-long-2",
        "threads",
        "long_seconds_2",
        "perf1, 2 clients at once",
        0.66,
        "s",
        "~2× (≈0.66 s)",
        "the time is basically double",
        "00:09:04",
    ),
    TalkFigure(
        "threads-long-3",
        "threads",
        "long_seconds_3",
        "perf1, 3 clients at once",
        0.9,
        "s",
        "~0.9 s (≈2.7×)",
        "now it goes up to like 0.9 seconds",
        "00:09:17",
    ),
    TalkFigure(
        "threads-short",
        "threads",
        "short_rps",
        "perf2, fib(1), alone: req/s",
        25_000,
        "req/s",
        "25,000–26,000 req/s",
        "25,000 requests a second 26,000 requests a second",
        "00:10:57",
    ),
    TalkFigure(
        "threads-dip",
        "threads",
        None,
        "perf2 while one fib(32) (~0.9 s then) runs",
        8_000,
        "req/s",
        "a one-second dip to ~8,000 req/s",
        "it's going to drop down so go 8,000 requests a second",
        "00:11:25",
    ),
    TalkFigure(
        "threads-convoy",
        "threads",
        "convoy_during_rps",
        "perf2 while one fib(40) runs",
        90,
        "req/s",
        "~90 req/s (from 25,000: ~280× less)",
        "it's like 90 requests a sec so down from like 25,000 down to ninety",
        "00:11:42",
    ),
    TalkFigure(
        "threads-separate-process-hog",
        "threads",
        None,
        "perf2 while fib(50) runs in a separate Python process (then two)",
        None,
        "",
        "barely a dent",
        "it barely even makes a dent on that",
        "00:12:35",
    ),
    TalkFigure(
        "threads-procpool-short",
        "threads-procpool",
        "short_rps",
        "perf2 alone, fib in a pool of 4 processes",
        None,
        "req/s",
        "drops significantly (below threads)",
        "you see that results at a drop significantly",
        "00:15:28",
    ),
    TalkFigure(
        "threads-procpool-convoy",
        "threads-procpool",
        "convoy_during_rps",
        "perf2 while one fib(40) runs in the pool",
        None,
        "req/s",
        "not really affected",
        "that request rate is not really affected by that",
        "00:15:43",
    ),
    TalkFigure(
        "coro-long-2",
        "coro",
        "long_seconds_2",
        "perf1, 2 clients at once, generator scheduler",
        None,
        "s",
        "~2× (the time doubles)",
        "you get the same behavior where the time doubles",
        "00:29:27",
    ),
    TalkFigure(
        "coro-short",
        "coro",
        "short_rps",
        "perf2 alone, generator scheduler",
        15_000,
        "req/s",
        "~15,000 req/s",
        "15,000 requests a second it's a little bit less",
        "00:29:47",
    ),
    TalkFigure(
        "coro-convoy",
        "coro",
        "convoy_during_rps",
        "perf2 while one fib(40) runs inline",
        0,
        "req/s",
        "0 req/s (totally dead)",
        "it went from 90 to zero",
        "00:30:15",
    ),
    TalkFigure(
        "coro-threadpool-naive-convoy",
        None,
        None,
        "perf2 while fib(40) runs in a thread pool, task blocking on .result()",
        0,
        "req/s",
        "0 req/s",
        "it's like still back down to zero requests a second",
        "00:31:37",
    ),
    TalkFigure(
        "coro-threadpool-convoy",
        "coro-threadpool",
        "convoy_during_rps",
        "perf2 while fib(40) runs in a thread pool (future wait + socketpair)",
        29,
        "req/s",
        "~29 req/s",
        "it's still like 29 requested",
        "00:35:05",
    ),
    TalkFigure(
        "coro-procpool-short",
        "coro-procpool",
        "short_rps",
        "perf2 alone, generator scheduler + process pool",
        None,
        "req/s",
        "down to the threads + process pool rate",
        "back down to kind of the [process] version with threads",
        "00:36:01",
    ),
    TalkFigure(
        "coro-procpool-convoy",
        "coro-procpool",
        "convoy_during_rps",
        "perf2 while fib(40) runs in the process pool",
        None,
        "req/s",
        "not killed",
        "it didn't kill that",
        "00:36:10",
    ),
)


def figure(key: str) -> TalkFigure:
    for talk_figure in FIGURES:
        if talk_figure.key == key:
            return talk_figure
    raise KeyError(f"no talk figure {key!r}")
