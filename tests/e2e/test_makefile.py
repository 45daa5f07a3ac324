# tests/e2e/test_makefile.py
#
# The Make targets that drive the lab, as `make -n` prints them (no Docker
# needed): the comparison targets pass ARGS through, and `make help` and the
# README name the ways to start the lab. `make up-no-grafana` itself runs for
# real: the e2e stack is started by it (tests/e2e/conftest.py).

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ..conftest import unavailable
from .stack import ROOT

ARGS = "--variants coro --scenarios convoy"


def make(*args: str) -> str:
    if shutil.which("make") is None:
        unavailable("make", "not on PATH")
    result = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("compare", "-m loadtest.compare"),
        ("compare-quick", "-m loadtest.compare"),
        ("compare-docker", "docker compose --profile compare run"),
        ("capacity", "-m loadtest.capacity"),
        ("capacity-sweep", "-m loadtest.capacity"),
        ("capacity-rates FROM=results/capacity-1", "-m loadtest.capacity"),
        ("profile VARIANT=coro", "-m loadtest.profile --variant coro"),
        ("timeline VARIANT=six", "-m loadtest.timeline --variants six"),
        ("switch-interval", "-m loadtest.switchinterval"),
        ("check TARGET=tcp://127.0.0.1:25000", "-m loadtest.check tcp://127.0.0.1:25000"),
    ],
    ids=["compare", "compare-quick", "compare-docker", "capacity", "capacity-sweep",
         "capacity-rates", "profile", "timeline", "switch-interval", "check"],
)  # fmt: skip
def test_comparison_targets_pass_args_on(target: str, command: str) -> None:
    # A recipe line may be continued with a backslash: join them first.
    recipe = make("-n", *target.split(), f"ARGS={ARGS}").replace("\\\n", " ")
    runs = [line for line in recipe.splitlines() if command in line]
    assert len(runs) == 1, recipe
    assert runs[0].rstrip().endswith(f" {ARGS}"), runs[0]


def test_help_names_the_ways_to_start_the_lab_and_args() -> None:
    help_text = make("help")
    assert re.search(r"^make up-no-grafana +\S", help_text, re.MULTILINE), help_text
    assert "ARGS=" in help_text


def test_readme_names_the_lab_without_grafana_beside_docker_compose_up() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    first = next(block for block in blocks if "docker compose up" in block)
    assert "make up-no-grafana" in first, first
    assert "make compare-docker ARGS=" in readme
