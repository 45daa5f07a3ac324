# loadtest/timeline/cli.py
#
#   python -m loadtest.timeline [--variants threads,coro] [--out DIR] [options]
#   make timeline VARIANT=threads
#
# For each variant: record one convoy (record.py), then draw its trace and
# PNG from the recording (draw.py), and check what it shows against
# docs/design.md §3.2 (report.py). Needs Docker: the servers run on CPython
# 3.15, in the variants image built from this checkout.

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.timeline import draw, report
from loadtest.timeline.record import RECORDING, Recipe, digest, load, record
from loadtest.toolbox import provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.options import check_rules, comma_list
from loadtest.toolbox.servers import python_image
from services import VARIANTS

SAMPLER_PYTHON = "3.15"  # the first CPython whose threads say when they wait for the GIL
SIX = ["threads", "coro", "asyncio", "threads-procpool", "threads-interppool", "prefork"]
# sync serves one connection at a time: the long request would wait for the
# short client to leave, and there is no convoy to draw.
DRAWABLE = [variant for variant in VARIANTS if variant != "sync"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.timeline",
        description="Record the convoy of each variant and draw it: a lane per client "
        "connection and per server thread, with each thread's sampled GIL state.",
    )
    parser.add_argument("--variants", default="threads",
                        help=f"comma list, or six: {','.join(SIX)}")  # fmt: skip
    parser.add_argument("--out", type=Path, help="default: results/timeline-<time>")
    parser.add_argument("--long-n", type=int, default=Recipe.long_n, help="the long request's n")
    parser.add_argument("--before", type=float, default=Recipe.before,
                        help="seconds of short requests before the long one")  # fmt: skip
    parser.add_argument("--after", type=float, default=Recipe.after,
                        help="seconds of short requests after its reply")  # fmt: skip
    parser.add_argument("--short-clients", type=int, default=0,
                        help="short connections (0: one; two per worker on prefork)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=Recipe.rate, help="GIL samples per second")
    parser.add_argument("--switch-interval", type=float, default=0.0,
                        help="the servers' sys.setswitchinterval (0: CPython's 0.005)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="pool and prefork workers")
    parser.add_argument(
        "--redraw", action="store_true",
        help="record nothing: draw, count and check again the recordings in --out",
    )  # fmt: skip
    return parser


def recipe_of(args: argparse.Namespace) -> Recipe:
    rules = (
        ("--long-n", args.long_n, 20 <= args.long_n <= 40, "must be from 20 to 40"),
        ("--before", args.before, 0.05 <= args.before <= 5, "must be from 0.05 to 5 seconds"),
        ("--after", args.after, 0.05 <= args.after <= 5, "must be from 0.05 to 5 seconds"),
        ("--short-clients", args.short_clients, 0 <= args.short_clients <= 64,
         "must be from 0 to 64"),
        ("--rate", args.rate, 10 <= args.rate <= 5000, "must be from 10 to 5000 per second"),
        ("--switch-interval", args.switch_interval, 0 <= args.switch_interval <= 1,
         "must be from 0 to 1 second"),
        ("--workers", args.workers, 1 <= args.workers <= 16, "must be from 1 to 16"),
    )  # fmt: skip
    check_rules(rules)
    return Recipe(
        long_n=args.long_n, before=args.before, after=args.after,
        short_clients=args.short_clients, rate=args.rate, switch_interval=args.switch_interval,
    )  # fmt: skip


def chosen_variants(text: str) -> list[str]:
    variants = comma_list(text, VARIANTS, "variant", {"six": SIX})
    if "sync" in variants:
        raise LabError(
            "--variants sync: sync serves one connection at a time, so the long request "
            "would wait for the short client to leave; there is no convoy to draw"
        )
    return variants


def draw_one(variant: str, folder: Path) -> dict[str, Any]:
    """The trace, the PNG and the checks of folder/<variant>/recording.json.gz."""
    source = folder / variant / RECORDING
    recording = load(source)
    sha = digest(source)
    png = draw.draw(recording, sha, folder / f"{variant}.png")
    trace = draw.write_trace(recording, sha, folder / f"{variant}.trace.json.gz")
    figures = draw.figures(recording)
    return {
        "recording": f"{variant}/{RECORDING}",
        "recording_sha256": sha,
        "png": png.name,
        "trace": trace.name,
        "figures": figures,
        "expectations": [e.__dict__ for e in report.expectations(variant, figures)],
    }


def check_docker() -> None:
    if shutil.which("docker") is None:
        raise LabError(
            "the timeline needs Docker: its servers run on CPython "
            f"{SAMPLER_PYTHON} in the variants image, and no docker client is on PATH"
        )


def run(variants: Sequence[str], folder: Path, recipe: Recipe, workers: int,
        command: str) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Record and draw each variant into `folder`; timeline.md and timeline.json."""
    check_docker()
    made = provenance.begin("timeline", report.SCHEMA)
    image = python_image(SAMPLER_PYTHON)
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        print(f"timeline: recording {variant}", file=sys.stderr, flush=True)
        record(variant, folder / variant, image, recipe, workers)
        results[variant] = draw_one(variant, folder)
        for line in results[variant]["expectations"]:
            print(f"  {report.Expectation(**line).line()}", file=sys.stderr)
    report.write(folder, results, command, made.record())
    return results


def redraw(folder: Path) -> None:
    """Everything but the recordings again, from them (the command that
    recorded them is kept)."""
    try:
        document = json.loads((folder / "timeline.json").read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise LabError(f"--redraw: no timeline.json to redraw in {folder}: {error}") from None
    results = {variant: draw_one(variant, folder) for variant in document["variants"]}
    # a redraw keeps what made the recordings: they hold the measured figures
    report.write(folder, results, document["command"], document.get("provenance"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        variants = chosen_variants(args.variants)
        recipe = recipe_of(args)
        out = args.out or Path("results") / (
            "timeline-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        )
        if args.redraw:
            redraw(out)
        else:
            out.mkdir(parents=True, exist_ok=True)
            command = shlex.join(["python", "-m", "loadtest.timeline", *argv])
            run(variants, out, recipe, args.workers, command)
    except LabError as error:
        print(f"loadtest.timeline: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'timeline.md'}")
    return 0
