# tests/loadtest/timeline/test_cli.py
#
# `python -m loadtest.timeline`: a bad option ends it with status 2 and a
# message naming the option, before anything starts.

from __future__ import annotations

import pytest

from loadtest.timeline.cli import main


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--variants", "nope"], "unknown variant nope"),
        (["--variants", "sync"], "--variants sync: sync serves one connection at a time"),
        (["--long-n", "50"], "--long-n 50: must be from 20 to 40"),
        (["--before", "0"], "--before 0"),
        (["--after", "nan"], "--after nan: must be a finite number"),
        (["--rate", "9"], "--rate 9"),
        (["--short-clients", "-1"], "--short-clients -1"),
        (["--switch-interval", "2"], "--switch-interval 2"),
        (["--workers", "0"], "--workers 0"),
    ],
)
def test_bad_options_exit_2_naming_them(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("loadtest.timeline: ")
    assert named in error
