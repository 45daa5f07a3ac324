# loadtest/connections/report.py
#
# A connection run's report.json made readable (docs/design.md §6.10):
# report.md with memory per connection per variant and §3.3's prediction
# judged, every idle point, admission rates (and the before: --backlog 100),
# the slow clients' p99 and CPU, the fairness figures before and after, what
# else the machine was doing, and the plots (plots.py). A figure measured
# while others used the machine is marked ‡, one the generator set †.
#
#   python -m loadtest.connections.report results/connections-DIR   (redraws md and png)

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.connections import plots
from loadtest.connections.summary import (
    ADMISSION_FROM,
    ADMISSION_PER_S,
    FAIR_AFTER_P99_MS,
    KIB,
    STATUS_MARKS,
    UNFAIR_BEFORE_P99_MS,
    figures,
)
from loadtest.toolbox import provenance
from loadtest.toolbox.formats import (
    LOADGEN_MARK,
    NOISY_MARK,
    fmt_count,
    fmt_ms,
    markdown_table,
    marks,
)

KIND = "connections"
SCHEMA = 1  # report.json's shape, in its provenance record (docs/design.md §6.11)


class ReportError(ValueError):
    """A report.json that is not a connection run's."""


def load(folder_or_file: Path) -> dict[str, Any]:
    path = folder_or_file / "report.json" if folder_or_file.is_dir() else folder_or_file
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise ReportError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ReportError(f'{path}: not a connection run\'s report (no "kind": "{KIND}")')
    for key in ("environment", "variants"):
        if key not in data:
            raise ReportError(f"{path}: no {key!r}")
    return data


def verdict_cell(verdict: dict[str, Any], rule: str = "") -> str:
    status = str(verdict["status"])
    if status not in STATUS_MARKS:  # the control, a side not judged
        return status
    text = f"{STATUS_MARKS.get(status, '')} {status}"
    if verdict.get("margin") is not None and status in ("as predicted", "not as predicted"):
        text += f" ({verdict['margin']:.2f}×)"
    if verdict.get("noisy_points") and status != "noisy":
        text += f", {verdict['noisy_points']} of {verdict['points']} points noisy"
    return text + rule


def kib(value: float | None) -> str:
    return "–" if value is None else f"{value / KIB:,.1f}"


def per_unit(found: dict[str, Any] | None) -> str:
    return "–" if found is None else f"{found['per_connection']:.3f}"


def memory_cell(memory: dict[str, Any] | None) -> str:
    if memory is None:
        return "– (fewer than two counts held)"
    text = kib(memory["per_connection"])
    if memory["stderr"] is not None:
        text += f" ± {kib(memory['stderr'])}"
    return text + f" ({kib(memory['pair_low'])}–{kib(memory['pair_high'])})"


def memory_section(found: dict[str, Any]) -> list[str]:
    rows = []
    for figure in found["memory"]:
        predicted = figure["predicted_kib"]
        rows.append([
            figure["variant"], str(figure["python"] or "–"), fmt_count(figure["held_up_to"]),
            memory_cell(figure["memory"]),
            "–" if predicted is None else f"{predicted[0]:g} to {predicted[1]:g}",
            verdict_cell(figure["verdict"]),
            per_unit(figure["threads"]) + " " + STATUS_MARKS.get(
                figure["threads_verdict"]["status"], ""),
            per_unit(figure["fds"]) + " " + STATUS_MARKS.get(figure["fds_verdict"]["status"], ""),
        ])  # fmt: skip
    return [
        "## Memory per idle connection",
        "",
        "KiB of the server's whole process tree (VmRSS of the server and every descendant, "
        "pool workers included) per connection: the least-squares slope against N over the "
        "counts the server held, ± its standard error, and in brackets the lowest and "
        "highest slope between adjacent counts (the spread). Predicted: docs/design.md §3.3, "
        "written before the first run (a miss is a finding). Threads and descriptors per "
        "connection are slopes too: one per connection where each connection has a thread "
        "(0.9–1.1), else constant (within ±0.01); descriptors one per connection except on "
        "`sync`. The margin is the factor to the nearer bound of the predicted range.",
        "",
        *markdown_table(
            [
                "variant",
                "Python",
                "held up to",
                "KiB per connection",
                "predicted KiB",
                "verdict",
                "threads per conn.",
                "fds per conn.",
            ],
            rows,
        ),
        "",
    ]


def latency_text(point: dict[str, Any]) -> tuple[str, str]:
    latency = point.get("latency_ms") or {}
    return fmt_ms(latency.get("p50")), fmt_ms(latency.get("p99"))


def idle_section(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Every idle point",
        "",
        "Opened: connections opened one after another, nothing sent; the server holds: its "
        "`fib_connections_active` (Redis: `connected_clients`) once they were open. Admitted "
        "per second: connections ÷ the time from the first connect until the server reported "
        "them all. Latency: a fresh client's requests, one after another, while they are held "
        "(ms). RSS above the baseline (nothing held).",
        "",
    ]
    rows = []
    for record in plots.records(report):
        base = record.get("baseline") or {}
        for p in record.get("idle") or []:
            p50, p99 = latency_text(p)
            above = (p["rss_bytes"] - base["rss_bytes"]) / 2**20 if base else None
            rows.append([
                record["variant"], fmt_count(p["connections"]), fmt_count(p["opened"]),
                fmt_count(p["server_connections"]), f"{p['open_s']:.3f}",
                fmt_count(p["admission_per_s"]) + marks(loadgen=False, noisy=p["noisy"]),
                "–" if above is None else f"{above:,.1f}", fmt_count(p["threads"]),
                fmt_count(p["fds"]), p50, p99, "; ".join(p["notes"]) or "",
            ])  # fmt: skip
        rows.extend(
            [record["variant"], *["–"] * 10, f"not measured: {error}"]
            for error in record.get("errors") or []
        )
    return lines + markdown_table(
        ["variant", "N", "opened", "the server holds", "open s", "admitted /s",
         "RSS +MiB", "threads", "fds", "p50 ms", "p99 ms", "notes"], rows,
    ) + [""]  # fmt: skip


def release_cell(release: dict[str, Any] | None) -> str:
    if not release:
        return "–"
    if release["released_s"] is not None:
        return f"{release['released_s']:.1f} s"
    return f"{release['fds_left']:,} still open after 10 s (killed)"


def admission_section(report: dict[str, Any], found: dict[str, Any]) -> list[str]:
    counts = report["environment"]["counts"]
    rows = []
    for figure in found["admission"]:
        cells = [fmt_count(figure["per_count"].get(str(c))) for c in counts]
        rows.append([figure["variant"], *cells, fmt_count(figure["lowest_per_s"]),
                     verdict_cell(figure["verdict"]), release_cell(figure["release"])])  # fmt: skip
    for record in report["variants"]:
        before = record.get("admission_before")
        if before:
            by_count = {p["connections"]: p for p in before["points"]}
            cells = [
                fmt_count(by_count[c]["admission_per_s"]) if c in by_count else "–" for c in counts
            ]
            failed = [p for p in before["points"] if not p["held"]]
            rows.append(
                [
                    f"{record['variant']} {' '.join(before['flags'])} (before)",
                    *cells,
                    "–",
                    "; ".join(n for p in failed for n in p["notes"]) or "shown, not judged",
                ]
            )
    return [
        "## Admission: idle connections admitted per second",
        "",
        f"§3.3 predicts at least {ADMISSION_PER_S:,.0f} a second at every count up to 10,000 once "
        "each server listens with its `FIB_BACKLOG`; judged on the lowest rate over the counts "
        f"the server held from {ADMISSION_FROM:,} on (below, one /metrics scrape is most of the "
        "time). Each count's rate is its new connections, the smaller counts' still held. The "
        "last column: once all were closed at once, how long the server took to let them go "
        "(its descriptors back to the baseline). The rows marked *before* listen with "
        "`--backlog 100`, as asyncio's "
        "`start_server(sock=...)` did: a full backlog drops the SYN and the client retries a "
        "second later.",
        "",
        *markdown_table(
            [
                "variant",
                *[f"{c:,}" for c in counts],
                f"lowest from {ADMISSION_FROM:,}",
                "verdict",
                "all closed: let go in",
            ],
            rows,
        ),
        "",
    ]


def slow_section(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    counts = env["slow_counts"]
    rows = []
    notes = []
    for record in plots.records(report):
        by_count = {p["asked"]: p for p in record.get("slow") or []}
        cells = []
        for count in counts:
            p = by_count.get(count)
            if p is None:
                cells.append("–")
                continue
            mark = marks(loadgen=p["generator_bound"], noisy=p["noisy"])
            if not p["served_all"]:
                cells.append(f"not held{mark}")
                why = p["failure"] or f"{p['missing']:,} of {p['sent']:,} requests unanswered"
                notes.append(f"{record['variant']} at {count:,}: {why}")
                continue
            cells.append(f"{fmt_ms(p['latency_ms']['p99'])} / {p['server_cpu_cores']:.3f}{mark}")
        rows.append([record["variant"], *cells])
    return [
        "## Many slow clients",
        "",
        f"N connections each sending one request {env['slow_rate']:g} time(s) a second (open "
        f"loop, from one selectors thread) for {env['slow_seconds']:g} s: the p99 from each "
        "intended send time (ms) / the server's CPU (cores, `fib_cpu_seconds_total`'s delta; "
        f"Redis from /proc). {LOADGEN_MARK} generator-bound: fewer than 95 % of the intended "
        f"sends were made. {NOISY_MARK} noisy.",
        "",
        *markdown_table(["variant", *[f"{c:,} clients" for c in counts]], rows),
        "",
        *[f"- {note}" for note in notes],
        "",
    ]


def fairness_section(found: dict[str, Any]) -> list[str]:
    rows = []
    for figure in found["fairness"]:
        for side in ("before", "after"):
            data = figure[side]
            if "p99_ms" not in data:
                rows.append([figure["variant"], side, *["–"] * 6,
                             f"not measured: {data.get('skipped')}"])  # fmt: skip
                continue
            rows.append([
                figure["variant"], side, fmt_ms(data["alone_p99_ms"]), fmt_ms(data["p50_ms"]),
                fmt_ms(data["p99_ms"]) + marks(loadgen=False, noisy=data["noisy"]),
                fmt_ms(data["connect_p50_ms"]), fmt_ms(data["connect_p99_ms"]),
                fmt_count(data["pipeline_rps"]),
                verdict_cell(figure[f"{side}_verdict"])
                + (f"; {data['failure']}" if data["failure"] else ""),
            ])  # fmt: skip
    return [
        "## Fairness: a fresh client beside one that pipelines 64 KiB of `1\\n`",
        "",
        "One client sends 32,768 requests at once, reads every reply, and again; a fresh "
        "client asks fib(1) every 10 ms and, one turn in five, opens a new connection and "
        "times it to its first reply. *Before*: the servers with `--yield-every 0` (a handler "
        "answers every line of a read first); *after*: the defaults. §3.3 predicts a p99 of "
        f"tens to hundreds of ms before (judged: ≥ {UNFAIR_BEFORE_P99_MS:g} ms) and about one "
        f"request's compute after (≤ {FAIR_AFTER_P99_MS:g} ms); `threads` is the control, not "
        "judged. *Before* is judged as a stall only where fib runs inline and a handler's "
        "sends never yield (`asyncio`, `asyncio-uvloop`, `gevent`); `coro` and `trio` yield "
        "at every reply whatever the setting (docs/design.md §2 Fairness), so their *before* "
        "is judged as an *after*; a handler that awaits a pool for each request lets its "
        "loop run others whatever the setting (shown, not judged). ms; the pipeline's "
        "replies per second.",
        "",
        *markdown_table(
            [
                "variant",
                "setting",
                "p99 alone",
                "p50 beside",
                "p99 beside",
                "new connection p50",
                "new connection p99",
                "pipeline replies/s",
                "verdict",
            ],
            rows,
        ),
        "",
    ]


def machine_section(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    all_points = [
        p
        for record in plots.records(report)
        for p in [*(record.get("idle") or []), *(record.get("slow") or [])]
    ]
    noisy = sum(1 for p in all_points if p.get("noisy"))
    foreign = [p["foreign_cpu_cores"] for p in all_points if p.get("foreign_cpu_cores") is not None]
    return [
        "## What else the machine was doing",
        "",
        f"Before the run others used {env['busy_cores_at_start']} cores (load average "
        f"{env['load_average_at_start']}); over its points, other processes used "
        + (f"{min(foreign):.3f}–{max(foreign):.3f} cores" if foreign else "an unknown share")
        + f"; {noisy} of {len(all_points)} idle and slow points were noisy "
        f"(≥ {env['noisy_threshold_cores']} core, {NOISY_MARK}).",
        "",
    ]


def render(report: dict[str, Any], found: dict[str, Any], drawn: Sequence[Path]) -> str:
    env = report["environment"]
    limits = env["open_files"]
    lines = [
        "# What a connection costs",
        "",
        *provenance.lines_of(report),
        f"`{env['command']}`",
        "",
        f"{env['date']}, {env['cores']} CPUs ({env['machine']}), Python {env['python']}; "
        f"took {env['seconds_taken'] / 60:.1f} min. Open files: the runner's soft limit raised "
        f"from {limits['soft_before']:,} to {limits['soft']:,} (hard {limits['hard']:,}), which a "
        f"local server inherits and a container gets as `--ulimit nofile`; every server's "
        f"`--max-connections` {env['max_connections']:,}; `somaxconn` {env['somaxconn']}.",
        "",
    ]
    if report.get("anchor") is None:
        lines += [f"No Redis anchor: {report.get('anchor_error')}", ""]
    lines += memory_section(found)
    lines += admission_section(report, found)
    lines += slow_section(report)
    if found["fairness"]:
        lines += fairness_section(found)
    lines += idle_section(report)
    lines += machine_section(report)
    if drawn:
        lines += ["## Plots", "", *[f"![{path.stem}]({path.name})" for path in drawn], ""]
    lines += ["## Environment", "", "```", json.dumps(env, indent=1), "```"]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> list[Path]:
    """report.md and the plots in `out`, computed from report's points; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    found = figures(report)
    drawn = [
        path
        for path in (
            plots.plot_memory(report, out / "memory.png"),
            plots.plot_p99(report, out / "p99.png"),
            plots.plot_fairness(found, out / "fairness.png"),
        )
        if path is not None
    ]
    markdown = out / "report.md"
    markdown.write_text(render(report, found, drawn), "utf-8")
    return [markdown, *drawn]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.connections.report",
        description="Redraw a connection report (report.md and plots) from its report.json.",
    )
    parser.add_argument("report", type=Path, help="the run's folder or its report.json")
    args = parser.parse_args(argv)
    try:
        report = load(args.report)
    except ReportError as error:
        print(f"loadtest.connections.report: {error}", file=sys.stderr)
        return 2
    folder = args.report if args.report.is_dir() else args.report.parent
    for path in write_report(report, folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
