# tests/loadtest/test_profile.py
#
# `python -m loadtest.profile` (docs/design.md §6.8) as a user runs it: a bad
# option is refused in-process with status 2 and its name, before anything
# starts; one real short profile of `threads` here, and one of
# `threads-interppool` in its CPython 3.14 image (Docker), each checked for
# the server's own frames in every file py-spy wrote. No mocks: real
# servers, a real py-spy, the comparison's real convoy.

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.profile.cli import main
from loadtest.profile.recording import VIEWS
from services import VARIANTS
from tests.conftest import ROOT, unavailable

# The suite's Docker users take turns on the one engine.
DOCKER_LOCK = "/tmp/fiblab-docker.lock"


def run_profile(*args: str, docker: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "loadtest.profile", *args]
    return subprocess.run(
        ["flock", DOCKER_LOCK, *command] if docker else command,
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--variant", "thread"], "--variant 'thread'"),
        (["--variant", "threads", "--seconds", "2"], "--seconds 2: must be from 3 to 600"),
        (["--variant", "threads", "--seconds", "601"], "--seconds 601: must be from 3 to 600"),
        (["--variant", "threads", "--seconds", "nan"], "--seconds nan"),
        (["--variant", "threads", "--rate", "0"], "--rate 0: must be from 1 to 1000"),
        (["--variant", "threads", "--rate", "5000"], "--rate 5000"),
    ],
    ids=["variant", "seconds-short", "seconds-long", "seconds-nan", "rate-0", "rate-high"],
)
def test_a_bad_option_exits_2_naming_it_and_writes_nothing(
    args: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "profile"
    assert main([*args, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("loadtest.profile: "), error
    assert named in error
    assert not out.exists()


def test_an_unknown_variant_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--variant", "thread"]) == 2
    error = capsys.readouterr().err
    assert ", ".join(VARIANTS) in error


def test_every_bad_option_is_named_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    assert main(["--variant", "nope", "--seconds", "1", "--rate", "0", "--out", str(file)]) == 2
    error = capsys.readouterr().err
    for option in ("--variant", "--seconds", "--rate", f"--out {file}: is a file"):
        assert option in error


@pytest.mark.parametrize(
    "args", [["--seconds", "3"], ["--variant", "threads", "--rate", "fast"]], ids=["none", "text"]
)
def test_argparse_refuses_a_missing_variant_or_a_word_for_a_number(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert re.search(r"--variant|--rate", capsys.readouterr().err)


def frame_titles(svg: Path) -> str:
    """Every frame's tooltip in a py-spy flame graph, one a line: `name (file:line) (…)`."""
    return "\n".join(re.findall(r"<title>([^<]*)</title>", svg.read_text("utf-8")))


def speedscope_frames(path: Path) -> set[str]:
    """The names of the frames some sample of a speedscope file holds."""
    profile = json.loads(path.read_text("utf-8"))
    frames = profile["shared"]["frames"]
    return {
        frames[index]["name"]
        for thread in profile["profiles"]
        for sample in thread["samples"]
        for index in sample
    }


def check_files_and_report(out: Path, result: subprocess.CompletedProcess[str]) -> str:
    """Every view's file is there, named on stdout and linked from report.md; the report."""
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text("utf-8")
    for view in VIEWS:
        assert (out / view.file).stat().st_size > 0, view.file
        assert f"wrote {out / view.file}" in result.stdout
        assert f"[{view.file}]({view.file})" in report
    assert "py-spy 0.4" in report
    assert "100 samples/s" in report
    return report


@pytest.mark.slow
def test_a_profile_of_threads_shows_its_handler_and_fib_in_every_view(tmp_path: Path) -> None:
    out = tmp_path / "profile"
    result = run_profile("--variant", "threads", "--seconds", "3", "--out", str(out))
    report = check_files_and_report(out, result)
    assert "`threads` on cpython 3." in report
    assert "here, py-spy its parent" in report

    handler = re.compile(r"^fib_handler \(services/sync\.py:\d+\)", re.MULTILINE)
    fib = re.compile(r"^fib \(services/core/fib\.py:\d+\)", re.MULTILINE)
    wall = frame_titles(out / "wall.svg")
    assert handler.search(wall), "the handler threads, the short one waiting too"
    assert fib.search(wall), "the long request's fib"
    assert "Thread._bootstrap" in wall, "every thread, not only the main one"
    # During the long request its thread holds the GIL: fib is in the GIL view.
    assert fib.search(frame_titles(out / "gil.svg"))
    assert {"fib", "fib_handler"} <= speedscope_frames(out / "wall.speedscope.json")


@pytest.mark.docker
@pytest.mark.slow
def test_a_profile_of_an_interpreter_pool_runs_in_its_image(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        unavailable("Docker", "the interpreter pools run in their CPython 3.14 image")
    out = tmp_path / "profile"
    result = run_profile(
        "--variant", "threads-interppool", "--python", "3.14", "--seconds", "3",
        "--out", str(out), docker=True,
    )  # fmt: skip
    report = check_files_and_report(out, result)
    assert "`threads-interppool` on cpython 3.14." in report
    assert "in `fiblab-services:py3.14`" in report
    assert "CAP_SYS_PTRACE added to that container alone" in report

    wall = frame_titles(out / "wall.svg")
    assert re.search(r"^fib_handler \(services/sync\.py:\d+\)", wall, re.MULTILINE)
    # fib runs in a subinterpreter py-spy does not read: the pool thread's call into it
    assert re.search(r"^Interpreter\._call \(", wall, re.MULTILINE)
    assert "subinterpreter, whose frames py-spy does not read" in report
    assert "fib_handler" in speedscope_frames(out / "wall.speedscope.json")
    assert (out / "gil.svg").stat().st_size > 0
