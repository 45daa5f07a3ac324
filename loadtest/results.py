# loadtest/results.py
#
#   python -m loadtest.results [--only talk,modern] [--list] [--allow-dirty]
#
# `make results` (docs/design.md §6.11): every report committed under
# docs/results, made again by the current code, one after another on this
# machine, each by the command a reader would type. Each report records
# what made it (its provenance); this run adds docs/results/results.json:
# every step's command, wall time and exit status, and the whole run's.
#
# It refuses a tree whose code differs from its commit (the reports would
# name a commit that did not make them) and stops at the first step that
# fails: `git checkout docs/results` then restores the committed reports.
# Each step starts from an empty folder, and a full run first removes what
# no step makes, so no file outlives the code that wrote it.

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.toolbox import machine, provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import comma_list

RESULTS = Path("docs/results")
SCHEMA = 1  # results.json's shape, in its provenance record
PYTHON = "python"  # replaced by this interpreter when a step runs


@dataclass(frozen=True)
class Step:
    name: str  # the folder under docs/results it writes
    commands: tuple[tuple[str, ...], ...]
    busy_cores: int = 0  # CPU-bound processes kept running beside it (the convoy needs a free core)
    needs: tuple[str, ...] = field(default=())  # set-up commands run first, unmeasured

    @property
    def folder(self) -> Path:
        return RESULTS / self.name


def py(*args: str) -> tuple[str, ...]:
    return (PYTHON, "-m", *args)


PINNED = ("--server-cpus", "1", "--loadgen-cpus", "0")
BUILD_314 = ("docker", "compose", "build", "threads-interppool")  # the interpreter pools' image
BUSY_VARIANTS = "threads,threads-procpool,coro-threadpool"
R = "docs/results/"

# fmt: off
STEPS: tuple[Step, ...] = (
    Step("talk", (py("loadtest.compare", "--variants", "talk", "--out", R + "talk"),)),
    # pinned, then against the quiet unpinned run of the step before
    Step("pinning", (
        py("loadtest.compare", "--variants", "talk", *PINNED, "--out", R + "pinning"),
        py("loadtest.compare.report", R + "pinning/summary.json",
           "--baseline", R + "talk/summary.json"),
    )),
    Step("one-busy-core", (
        py("loadtest.compare", "--variants", BUSY_VARIANTS, "--out", R + "one-busy-core"),
    ), busy_cores=1),
    Step("two-busy-cores", (
        py("loadtest.compare", "--variants", BUSY_VARIANTS, "--out", R + "two-busy-cores"),
    ), busy_cores=2),
    Step("modern", (py("loadtest.compare", "--variants", "modern", "--out", R + "modern"),),
         needs=BUILD_314),
    Step("versions", (py("loadtest.compare.versions", "--out", R + "versions"),)),
    Step("capacity", (py("loadtest.capacity", "--variants", "talk", "--out", R + "capacity"),)),
    Step("capacity-pinned", (
        py("loadtest.capacity", "--variants", "talk", *PINNED, "--out", R + "capacity-pinned"),
        py("loadtest.compare.report", R + "capacity-pinned/summary.json",
           "--baseline", R + "capacity/summary.json"),
    )),
    Step("switch-interval", (py("loadtest.switchinterval", "--out", R + "switch-interval"),)),
    Step("connections", (py("loadtest.connections", "--out", R + "connections"),),
         needs=BUILD_314),
    Step("timeline", (py("loadtest.timeline", "--variants", "six", "--out", R + "timeline"),)),
    Step("reliability", (py("tests.bench.hostile", "--out", R + "reliability"),)),
    Step("gil-probe", (py("tests.bench.gil", "--out", R + "gil-probe"),)),
    Step("prefork-cost", (
        py("tests.bench.server", "--prefork", "--rounds", "6", "--round-requests", "3000",
           "--pairs", "2", "--out", R + "prefork-cost"),
    )),
    # the A/B benchmarks, against the commit before the change each measures
    Step("timeline-cost", (
        py("tests.bench.server", "--timeline", "ae197c3", "--out", R + "timeline-cost"),
    )),
    Step("yield-cost", (
        py("tests.bench.server", "--yield-cost", "360bd02", "--out", R + "yield-cost"),
    )),
    Step("bucketing-cost", (py("tests.bench.bucketing", "--out", R + "bucketing-cost"),)),
)
# fmt: on
NAMES = [step.name for step in STEPS]


def shown(command: Sequence[str]) -> str:
    return " ".join(command)


@contextmanager
def busy(cores: int) -> Iterator[None]:
    """`cores` processes spinning in Python beside the step, like another user's job."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def strays() -> list[Path]:
    """What lies in docs/results that no step makes."""
    made = {*NAMES, "results.json"}
    return sorted(entry for entry in RESULTS.iterdir() if entry.name not in made)


def run_step(step: Step) -> dict[str, object]:
    """Run one step's commands in order, in an emptied folder; its record
    for results.json."""
    started = time.monotonic()
    remove(step.folder)
    if step.needs:
        print(f"results: {step.name}: set-up: {shown(step.needs)}", file=sys.stderr, flush=True)
        subprocess.run(step.needs, check=False)
    status = 0
    with busy(step.busy_cores):
        for command in step.commands:
            print(f"results: {step.name}: {shown(command)}", file=sys.stderr, flush=True)
            real = [sys.executable if word == PYTHON else word for word in command]
            status = subprocess.run(real, check=False).returncode
            if status != 0:
                break
    seconds = round(time.monotonic() - started, 1)
    print(f"results: {step.name}: exit {status} after {seconds:.0f} s", file=sys.stderr, flush=True)
    return {
        "name": step.name,
        "commands": [shown(command) for command in step.commands],
        "busy_cores": step.busy_cores,
        "status": status,
        "seconds": seconds,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.results",
        description="Make every report under docs/results again from this commit (make results).",
    )
    parser.add_argument("--only", help=f"comma list of steps: {','.join(NAMES)}")
    parser.add_argument("--list", action="store_true", help="print the steps and exit")
    parser.add_argument(
        "--allow-dirty", action="store_true",
        help="run although the code differs from its commit (the reports will say so)",
    )  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    made = provenance.begin("results", SCHEMA)
    try:
        names = comma_list(args.only, NAMES, "step") if args.only else NAMES
    except LabError as error:
        print(f"loadtest.results: {error}", file=sys.stderr)
        return 2
    steps = [step for step in STEPS if step.name in names]
    if args.list:
        for step in steps:
            extra = f" (beside {step.busy_cores} busy cores)" if step.busy_cores else ""
            print(f"{step.name}{extra}: " + " && ".join(shown(c) for c in step.commands))
        return 0
    if not RESULTS.is_dir() or not Path("loadtest").is_dir():
        print("loadtest.results: run it from the repository's top folder", file=sys.stderr)
        return 2
    head, dirty = provenance.commit()
    if dirty and not args.allow_dirty:
        print(
            "loadtest.results: the code differs from commit "
            f"{(head or '?')[:10]}: commit it first (or --allow-dirty)",
            file=sys.stderr,
        )
        return 2
    quiet = machine.busy_now()
    if quiet.busy:
        print(quiet.warning(), file=sys.stderr, flush=True)
    if args.only is None:
        for entry in strays():
            print(f"results: removing {entry}: no step makes it", file=sys.stderr, flush=True)
            remove(entry)
    records = []
    for step in steps:
        records.append(run_step(step))
        if records[-1]["status"] != 0:
            break
    document = {
        "provenance": made.record(),
        "busy_cores_at_start": quiet.cores,
        "load_average_at_start": quiet.load,
        "steps": records,
        "all_steps": len(records) == len(STEPS) and all(r["status"] == 0 for r in records),
    }
    if args.only is None:  # a partial run leaves the full run's record alone
        (RESULTS / "results.json").write_text(json.dumps(document, indent=1) + "\n", "utf-8")
    total = sum(float(str(r["seconds"])) for r in records)
    failed = [r["name"] for r in records if r["status"] != 0]
    print(
        f"results: {len(records)} of {len(steps)} steps in {total / 60:.1f} min"
        + (f"; {failed[0]} failed: stopped there" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
