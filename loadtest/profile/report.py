# loadtest/profile/report.py
#
# report.md of one profile (docs/design.md §6.8): what ran (the variant, its
# Python, where, the profiler and its rate, the load), each view's file with
# its stacks, and the convoy's figures of every run, so that the profiler's
# cost shows beside a run without it when there is one.

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtest.compare.plan import Plan
from loadtest.profile.recording import Recorded
from loadtest.toolbox.formats import NOISY_MARK, fmt_count, fmt_rps, fmt_seconds, markdown_table

# Their fib runs in a subinterpreter, whose frames py-spy does not read (§6.8).
SUBINTERPRETER_VARIANTS = ("threads-interppool", "asyncio-interppool")


@dataclass(frozen=True)
class Setting:
    """What one profile ran with, beside the runs themselves."""

    plan: Plan
    rate: int
    where: str  # where the server and py-spy ran, in words
    profiler: str  # py-spy's own `--version`
    date: str
    cores: int


def server_text(recorded: list[Recorded]) -> str:
    server = recorded[0].server
    if not server:
        return "unknown (no fib_info)"
    return (
        f"{server.get('implementation', '?')} {server.get('python', '?')}, "
        f"GIL {server.get('gil', '?')}"
    )


HEADER = (
    "view", "file", "stacks", "s sampled", "short req/s before", "short req/s during",
    "long request", "errors", "noisy",
)  # fmt: skip


def run_row(run: Recorded) -> list[str]:
    convoy = run.convoy
    file = f"[{run.view.file}]({run.view.file})" if run.view else "none (no profiler)"
    return [
        run.view.title if run.view else "reference",
        file,
        fmt_count(run.stacks),
        f"{run.seconds:.1f}",
        fmt_rps(convoy.get("short_rps_before")),
        fmt_rps(convoy.get("short_rps_during")),
        fmt_seconds(convoy.get("long_seconds")),
        fmt_count(convoy.get("errors")),
        NOISY_MARK if convoy.get("noisy") else "",
    ]


def report_text(setting: Setting, recorded: list[Recorded]) -> str:
    plan = setting.plan
    [variant] = plan.variants
    stage = plan.duration / 3
    lines = [
        f"# Profile of `{variant}` during the convoy",
        "",
        f"- **Server**: `{variant}` on {server_text(recorded)}; {setting.where}.",
        f"- **Profiler**: {setting.profiler}, {setting.rate} samples/s, every thread "
        "(`--idle`) and every worker process (`--subprocesses`), from the server's start "
        "to its end.",
        f"- **Load**: the comparison's convoy, {plan.duration:g} s: one short user asks "
        f"fib({plan.short_n}) in a closed loop; a long user asking fib({plan.long_n}) back "
        f"to back joins for the middle {stage:g} s.",
        f"- **When**: {setting.date}, {setting.cores} CPUs.",
        "",
        "Each view is its own run of the convoy on a fresh server. A stack is one thread at "
        "one sample. The speedscope file opens in speedscope (its web app or its npm "
        "package; the file stays local).",
        "",
        *markdown_table(HEADER, [run_row(run) for run in recorded]),
        "",
        "What each view shows:",
        "",
        *(f"- {run.view.title}: {run.view.shows}." for run in recorded if run.view),
    ]
    if any(run.convoy.get("noisy") for run in recorded):
        lines += [
            "",
            f"{NOISY_MARK} other processes kept the machine busy (docs/design.md §6.2). py-spy "
            "is one of them here (in a container, its CPU is the server's: the cgroup's), more "
            "so with worker processes to read: set a profiled run against the reference.",
        ]
    if variant in SUBINTERPRETER_VARIANTS:
        lines += [
            "",
            "fib runs in a subinterpreter, whose frames py-spy does not read: its time shows "
            "as the pool thread's `Interpreter._call`.",
        ]
    return "\n".join(lines) + "\n"


def write_report(out: Path, setting: Setting, recorded: list[Recorded]) -> Path:
    path = out / "report.md"
    path.write_text(report_text(setting, recorded), "utf-8")
    return path
