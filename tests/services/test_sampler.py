# tests/services/test_sampler.py
#
# The GIL sampler's command line (services/sampler.py). Its samples are
# checked where it runs, on CPython 3.15 in the variants image, by
# tests/loadtest/timeline/test_record.py.

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.sampler import main, parse


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--out", "{tmp}/s.json", "--rate", "0", "threads"], "--rate 0"),
        (["--out", "{tmp}/s.json", "--rate", "50000", "threads"], "--rate 50000"),
        (["--out", "{tmp}/s.json", "--keep", "0", "threads"], "--keep 0"),
        (["--out", "{tmp}/no/such/folder/s.json", "threads"], "is not a folder"),
        (["--out", "{tmp}/s.json"], "name the variant"),
        (["--out", "{tmp}/s.json", "--rate", "many", "threads"], "--rate"),
    ],
)
def test_bad_options_are_refused_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.skipif(sys.version_info >= (3, 15), reason="this Python can sample")
def test_an_older_python_says_which_it_needs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "s.json"), "threads"])
    assert "needs CPython 3.15 or later" in str(exit_info.value.code)
    assert list(tmp_path.iterdir()) == []  # no server was started, nothing written
