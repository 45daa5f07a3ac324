# loadtest/timeline/report.py
#
# What each timeline shows, against what docs/design.md §3.2 said it would
# show before the first one was recorded, and timeline.md / timeline.json
# for a folder of them. Each line is counted from the recording (draw.py's
# figures); a line that fails is a finding about the lab's explanation, to
# report, not to fix by hand.

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.toolbox import provenance

# What the talk's explanation predicts each model's picture shows (§3.2).
SCHEMA = 1  # timeline.json's shape, in its provenance record (docs/design.md §6.11)
GIL_CONVOY = {"threads": 1, "coro-threadpool": 3}  # switch intervals per short request
STALL = {"coro", "asyncio", "gevent", "asyncio-uvloop", "trio"}
IMMUNE = {
    "threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool",
    "threads-interppool", "asyncio-interppool",
}  # fmt: skip
DEFAULT_SWITCH_INTERVAL = 0.005


@dataclass(frozen=True)
class Expectation:
    claim: str
    measured: str
    holds: bool

    def line(self) -> str:
        return f"{'✅' if self.holds else '❌'} {self.claim}: {self.measured}"


def _share(during: float | None, before: float | None) -> float:
    return (during or 0.0) / before if before else 0.0


def expectations(variant: str, figures: Mapping[str, Any]) -> list[Expectation]:
    """The §3.2 claims about this variant's picture, each checked."""
    interval = figures["switch_interval"] or DEFAULT_SWITCH_INTERVAL
    before, during = figures["short_per_s_before"], figures["short_per_s_during"]
    waiting = figures["threads_waiting_for_gil"]
    found: list[Expectation] = []
    if variant in GIL_CONVOY:
        expected = GIL_CONVOY[variant] * interval * 1e3
        gap = figures["median_turn_gap_ms"]
        found.append(Expectation(
            f"the short thread gets its turns at the GIL about every {expected:g} ms during "
            f"the long request ({GIL_CONVOY[variant]} switch "
            f"interval{'s' if GIL_CONVOY[variant] > 1 else ''}, within ×2)",
            f"median {gap:.2f} ms between turns ({figures['short_turns_during']} turns, "
            f"{figures['short_replies_during']} replies, at most {figures['largest_turn']} "
            "in one)" if gap is not None else "fewer than two turns",
            gap is not None and expected / 2 <= gap <= expected * 2,
        ))  # fmt: skip
        found.append(Expectation(
            "a server thread waits for the GIL (sampled) while the long fib runs",
            f"{waiting:.2f} threads waiting, on average over the samples", waiting >= 0.5,
        ))  # fmt: skip
    elif variant in STALL:
        replies = figures["short_replies_during"]
        found.append(Expectation(
            "the short lane is empty for the whole long request (at most the one reply in "
            "flight when it arrived)",
            f"{replies} short replies during it", replies <= 1,
        ))  # fmt: skip
        found.append(Expectation(
            "no server thread waits for the GIL: the loop's one thread holds it",
            f"{waiting:.2f} threads waiting, on average", waiting < 0.1,
        ))  # fmt: skip
    elif variant in IMMUNE:
        share = _share(during, before)
        found.append(Expectation(
            "the short lane keeps at least half its rate while a worker computes",
            f"{during:,.0f} short req/s during, {share:.0%} of before", share >= 0.5,
        ))  # fmt: skip
        found.append(Expectation(
            "the long fib runs on a worker lane, not on a handler thread",
            f"fib({figures['long_n']}) on {figures['long_fib_lane'] or 'no lane'}",
            bool(figures["long_fib_lane"]) and "handler" not in figures["long_fib_lane"],
        ))  # fmt: skip
    elif variant == "prefork":
        shorts = [c for c in figures["connections"] if c["role"] == "short"]
        shared = [c for c in shorts if c["same_process_as_long"]]
        apart = [c for c in shorts if not c["same_process_as_long"]]
        found.append(Expectation(
            "each connection lands on one worker process (the kernel's lottery)",
            ", ".join(f"port {c['port']} → pid {c['server_pid']}" for c in figures["connections"]),
            all(c["server_pid"] for c in figures["connections"]),
        ))  # fmt: skip
        for group, claim, test in (
            (shared, "short connections on the long request's process convoy (≤ 10 % of before)",
             lambda share: share <= 0.10),
            (apart, "short connections on the other processes keep ≥ 50 % of their rate",
             lambda share: share >= 0.5),
        ):  # fmt: skip
            if not group:
                found.append(Expectation(claim, "none in this run (the lottery)", True))
                continue
            shares = [_share(c["per_s_during"], c["per_s_before"]) for c in group]
            found.append(Expectation(
                claim, ", ".join(f"{share:.0%}" for share in shares), all(map(test, shares))
            ))  # fmt: skip
    return found


def write(
    folder: Path,
    results: Mapping[str, Mapping[str, Any]],
    command: str,
    record: Mapping[str, Any] | None = None,
) -> list[Path]:
    """timeline.json (every variant's figures and files, what made them) and timeline.md."""
    document: dict[str, Any] = {"command": command, "variants": results}
    if record is not None:
        document["provenance"] = record
    data = folder / "timeline.json"
    data.write_text(json.dumps(document, indent=1) + "\n", "utf-8")
    markdown = folder / "timeline.md"
    markdown.write_text(render(document), "utf-8")
    return [markdown, data]


def render(document: Mapping[str, Any], link_prefix: str = "", level: int = 1) -> str:
    """timeline.md; `link_prefix` and `level` place it inside another report
    (its links relative to that report's folder, its headings one down)."""
    results = document["variants"]
    lines = [
        f"{'#' * level} The convoy, drawn: timelines",
        "",
        *provenance.lines_of(document),
        f"Made by `{document['command']}` (docs/design.md §6.6). Each variant ran in the "
        "variants image under the GIL sampler (services/sampler.py: every thread's GIL state, "
        "read by CPython 3.15's remote debugging), with the server's own timeline on "
        "(FIB_TIMELINE). Each trace opens in https://ui.perfetto.dev or chrome://tracing; "
        "each picture is drawn from its recording alone, whose sha256 it names.",
        "",
        "| variant | Python | fib(n) s | short req/s before | during | turns: median gap ms | "
        "server threads waiting for the GIL (sampled) | samples, failed reads | "
        "sampler µs/sample | files |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, result in results.items():
        f = result["figures"]
        gap = f["median_turn_gap_ms"]
        files = " · ".join(
            f"[{kind}]({link_prefix}{result[kind]})" for kind in ("png", "trace", "recording")
        )
        lines.append(
            f"| {variant} | {f['python']} | {f['long_fib_s'] or f['long_round_trip_s']:.3f} | "
            f"{f['short_per_s_before'] or 0:,.0f} | {f['short_per_s_during']:,.0f} | "
            f"{'—' if gap is None else f'{gap:.2f}'} | {f['threads_waiting_for_gil']:.2f} | "
            f"{f['samples_taken']:,}, {f['samples_failed']:,} | "
            f"{f['sampler_seconds_reading'] / max(f['samples_taken'], 1) * 1e6:.0f} | {files} |"
        )
    lines += [
        "",
        "*Turns*: short replies less than 1 ms apart count as one turn of the short thread at "
        "the GIL; the gap is from one turn's last reply to the next turn's first. "
        "*Server threads waiting for the GIL*: during the long request, the mean number of "
        "the server's threads that CPython marks as having asked for the GIL, over the "
        "sampler's samples; unlike the GIL probe's busy-GIL share (§4), it is 0 when a single "
        "thread holds the GIL and nobody else wants it.",
        "",
    ]
    for variant, result in results.items():
        heading = "#" * (level + 1)
        lines += [f"{heading} {variant}", "", f"![{variant}]({link_prefix}{result['png']})", ""]
        lines += [f"- {Expectation(**e).line()}" for e in result["expectations"]]
        lines.append("")
    return "\n".join(lines)
