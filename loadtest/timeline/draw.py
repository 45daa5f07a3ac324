# loadtest/timeline/draw.py
#
# One recording (record.py), three readings of it: the figures the report
# quotes, a Chrome Trace Event file (Perfetto, chrome://tracing) and a PNG
# with a lane per client connection and per server thread. Nothing here
# measures: every bar is an event or a sample of the recording.

from __future__ import annotations

import gzip
import itertools
import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A sampled thread's state, from CPython's own flags (services/sampler.py).
COMPUTES_FIB = "computes fib (holds the GIL)"
RUNS_PYTHON = "runs Python (holds the GIL)"
WAITS_FOR_GIL = "waits for the GIL"
IN_SYSCALL = "in a system call, without the GIL"
WAITS_FOR_NETWORK = "waits for the network"
WAITS_OTHER = "waits (a lock, a queue, a timer)"
STATES = (COMPUTES_FIB, RUNS_PYTHON, WAITS_FOR_GIL, IN_SYSCALL, WAITS_FOR_NETWORK, WAITS_OTHER)
COLOURS = {
    COMPUTES_FIB: "#c0392b",
    RUNS_PYTHON: "#27ae60",
    WAITS_FOR_GIL: "#f39c12",
    IN_SYSCALL: "#8e44ad",
    WAITS_FOR_NETWORK: "#d5dbdb",
    WAITS_OTHER: "#eef0f0",
    "request": "#2e86c1",
    "fib": "#922b21",
    "short": "#2e86c1",
    "long": "#922b21",
}
IDLE = (WAITS_FOR_NETWORK, WAITS_OTHER)
# A leaf function of a thread blocked on a socket (or a selector over sockets).
_NETWORK = re.compile(r"select|poll|recv|accept|send|read|sock|serve_forever", re.IGNORECASE)
SAMPLE_REACH = 3  # a sample stands for at most this many sampling periods
STATE_TRACK = 10_000_000  # a thread's sampled states go on its tid plus this, in the trace


def state_of(status: int, leaf: str, in_fib: bool, flags: dict[str, int]) -> str:
    if status & flags["has_gil"]:
        return COMPUTES_FIB if in_fib else RUNS_PYTHON
    if status & flags["gil_requested"]:
        return WAITS_FOR_GIL
    if status & flags["on_cpu"]:
        return IN_SYSCALL
    return WAITS_FOR_NETWORK if _NETWORK.search(leaf) else WAITS_OTHER


@dataclass
class Lane:
    """One server thread: its name, events and sampled states."""

    pid: int
    thread: int
    name: str = ""
    events: list[tuple[str, float, float, int | None]] = field(default_factory=list)
    samples: list[tuple[float, str]] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.events) or any(state not in IDLE for _t, state in self.samples)

    def spans(self, period: float) -> list[tuple[float, float, str]]:
        """Consecutive samples of one state as (start, end, state). A sample
        stands for the time until the thread's next one, at most a few
        periods: a thread that ended, or a read that failed, leaves a gap."""
        merged: list[tuple[float, float, str]] = []
        for index, (at, state) in enumerate(self.samples):
            following = self.samples[index + 1][0] if index + 1 < len(self.samples) else at
            until = min(following, at + SAMPLE_REACH * period) if following > at else at + period
            if merged and merged[-1][2] == state and merged[-1][1] >= at - 1e-9:
                merged[-1] = (merged[-1][0], until, state)
            else:
                merged.append((at, until, state))
        return merged


def lanes(recording: dict[str, Any]) -> list[Lane]:
    """Every server thread the server recorded or the sampler saw, in order:
    by process, the threads with events first."""
    by_key: dict[tuple[int, int], Lane] = {}

    def lane(pid: int, thread: int) -> Lane:
        return by_key.setdefault((pid, thread), Lane(pid, thread))

    for process in recording["server"]:
        for pid, thread, name in process["threads"]:
            lane(pid, thread).name = name
        for kind, pid, thread, start, end, detail in process["events"]:
            lane(pid, thread).events.append((kind, start, end, detail))
    samples = recording["samples"]
    flags = samples["status_flags"]
    leaves: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)
    for at, sweep in samples["sweeps"]:
        for pid, interpreter, thread, status, leaf, in_fib in sweep:
            lane(pid, thread).samples.append((at, state_of(status, leaf, in_fib, flags)))
            leaves[pid, thread][leaf] += 1
            if status & flags["main_thread"] and not by_key[pid, thread].name:
                by_key[pid, thread].name = "MainThread"
            if interpreter and not by_key[pid, thread].name:
                by_key[pid, thread].name = f"interpreter {interpreter}"
    for key, found in by_key.items():
        if not found.name:  # a thread that handled no request: say where it waits
            found.name = f"thread {key[1]} ({leaves[key].most_common(1)[0][0] or '?'})"
    return sorted(by_key.values(), key=lambda lane: (lane.pid, not lane.events, lane.thread))


def sampling_period(recording: dict[str, Any]) -> float:
    rate = recording["samples"]["rate"]
    return 1.0 / rate if rate else 0.0


def long_request(recording: dict[str, Any]) -> tuple[float, float]:
    for connection in recording["client"]:
        if connection["role"] == "long":
            sent, replied = connection["requests"][0]
            return float(sent), float(replied)
    raise ValueError("the recording has no long request")


def worker_of(recording: dict[str, Any]) -> dict[int, int]:
    """Client port -> the server process that accepted it (prefork's lottery)."""
    return {
        detail: pid
        for process in recording["server"]
        for kind, pid, _thread, _start, _end, detail in process["events"]
        if kind == "connection"
    }


def figures(recording: dict[str, Any]) -> dict[str, Any]:
    """What the report quotes, each counted from the recording. "During" is
    while the server computed the long fib (its own event; the client's
    send → reply when it has none)."""
    sent, replied = long_request(recording)
    first = recording["client_window"][0]
    long_n = recording["recipe"]["long_n"]
    server_lanes = lanes(recording)
    long_fibs = sorted(
        (end - begin, begin, end, f"pid {lane.pid} · {lane.name}")
        for lane in server_lanes
        for kind, begin, end, n in lane.events
        if kind == "fib" and n == long_n
    )
    begins, ends = (long_fibs[-1][1], long_fibs[-1][2]) if long_fibs else (sent, replied)
    shorts = [c for c in recording["client"] if c["role"] == "short"]
    replies = sorted(r for c in shorts for _s, r in c["requests"])
    before = [r for r in replies if r < sent]
    during = [r for r in replies if begins < r < ends]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    turns = _turns(during)
    turn_gaps = [b[0] - a[-1] for a, b in itertools.pairwise(turns)]
    gil_requested = recording["samples"]["status_flags"].get("gil_requested", 0)
    waiting = [  # per sample: how many server threads wait for the GIL
        sum(1 for thread in sweep if thread[3] & gil_requested)
        for at, sweep in recording["samples"]["sweeps"]
        if begins < at < ends
    ]
    owners = worker_of(recording)
    long_port = next(c["port"] for c in recording["client"] if c["role"] == "long")
    samples = recording["samples"]
    return {
        "python": recording["python"],
        "switch_interval": recording["recipe"]["switch_interval"],
        "long_n": long_n,
        "long_round_trip_s": replied - sent,
        "long_fib_s": ends - begins if long_fibs else None,
        "long_fib_lane": long_fibs[-1][3] if long_fibs else None,
        "samples_taken": samples["taken"],
        "samples_failed": samples["failed"],
        "sampler_seconds_reading": samples["seconds_reading"],
        "short_per_s_before": _rate([(r, r) for r in before], first, sent),
        "short_replies_during": len(during),
        "short_per_s_during": len(during) / (ends - begins),
        "median_gap_during_ms": statistics.median(gaps) * 1e3 if gaps else None,
        "short_turns_during": len(turns),
        "largest_turn": max(map(len, turns), default=0),
        "median_turn_gap_ms": statistics.median(turn_gaps) * 1e3 if turn_gaps else None,
        "threads_waiting_for_gil": (  # None: recorded without the sampler
            statistics.fmean(waiting) if waiting else 0.0 if gil_requested else None
        ),
        "sampled_sweeps_during": len(waiting),
        "processes": len({lane.pid for lane in server_lanes}),
        "connections": [
            {
                "role": c["role"],
                "port": c["port"],
                "server_pid": owners.get(c["port"]),
                "same_process_as_long": owners.get(c["port"]) == owners.get(long_port),
                "per_s_before": _rate(c["requests"], first, sent),
                "per_s_during": _rate(c["requests"], begins, ends),
            }
            for c in recording["client"]
        ],
    }


TURN_GAP = 0.001  # replies closer than this are one turn of the short thread at the GIL


def _turns(replies: list[float]) -> list[list[float]]:
    """Replies grouped into turns: a thread that wins the GIL may answer
    many requests before it loses it again (each of its syscalls lets the
    waiting thread in only if that thread wakes first)."""
    turns: list[list[float]] = []
    for reply in replies:
        if turns and reply - turns[-1][-1] < TURN_GAP:
            turns[-1].append(reply)
        else:
            turns.append([reply])
    return turns


def _rate(requests: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Replies per second between start and end (None: no time between)."""
    if end <= start:
        return None
    return sum(1 for _sent, replied in requests if start < replied < end) / (end - start)


def trace(recording: dict[str, Any], source_sha256: str) -> dict[str, Any]:
    """The recording as Chrome Trace Events (µs from the window's start)."""
    origin = recording["window"][0]
    events: list[dict[str, Any]] = []

    def name(pid: int, tid: int, kind: str, text: str) -> None:
        events.append({"ph": "M", "pid": pid, "tid": tid, "name": kind, "args": {"name": text}})

    def span(pid: int, tid: int, text: str, category: str, start: float, end: float) -> None:
        begin = round((start - origin) * 1e6, 1)
        events.append({"ph": "X", "pid": pid, "tid": tid, "name": text, "cat": category,
                       "ts": begin, "dur": round((end - origin) * 1e6, 1) - begin})  # fmt: skip

    name(0, 0, "process_name", "client")
    for index, connection in enumerate(recording["client"], start=1):
        name(
            0, index, "thread_name", f"{connection['role']} connection (port {connection['port']})"
        )
        for sent, replied in connection["requests"]:
            span(0, index, f"fib({connection['n']})", connection["role"], sent, replied)
    main_pids = {process["pid"] for process in recording["server"]}
    server = lanes(recording)
    for pid in sorted({lane.pid for lane in server}):
        role = "server" if pid in main_pids else "pool worker"
        name(pid, 0, "process_name", f"{recording['variant']} {role} (pid {pid})")
    period = sampling_period(recording)
    for lane in server:
        name(lane.pid, lane.thread, "thread_name", lane.name)
        name(lane.pid, STATE_TRACK + lane.thread, "thread_name", f"{lane.name}: sampled state")
        for kind, start, finish, detail in lane.events:
            if kind == "connection":  # an instant: which thread accepted which client port
                events.append({"ph": "i", "s": "t", "pid": lane.pid, "tid": lane.thread,
                               "name": f"accepted port {detail}",
                               "ts": round((start - origin) * 1e6, 1)})  # fmt: skip
            else:
                text = f"fib({detail})" if kind == "fib" else f"request fib({detail})"
                span(lane.pid, lane.thread, text, kind, start, finish)
        for start, finish, state in lane.spans(period):
            span(lane.pid, STATE_TRACK + lane.thread, state, "sampled", start, finish)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "variant": recording["variant"],
            "python": recording["python"],
            "recording_sha256": source_sha256,
            "clock": "time.monotonic, µs from the recording's window start",
        },
    }


def write_trace(recording: dict[str, Any], source_sha256: str, path: Path) -> Path:
    """Gzipped JSON: Perfetto (ui.perfetto.dev) and chrome://tracing open it as it is."""
    document = json.dumps(trace(recording, source_sha256))
    path.write_bytes(gzip.compress(document.encode(), mtime=0))
    return path


ZOOM_MS = 40.0  # the lower panel: this much of the long request, where the rhythm shows


def draw(recording: dict[str, Any], source_sha256: str, path: Path) -> Path:
    """The PNG: the whole window above, 40 ms inside the long request below;
    client lanes on top, then each busy server thread (its sampled state
    above, its recorded events below)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sent, replied = long_request(recording)
    start, end = recording["window"]
    server = lanes(recording)
    drawn = [lane for lane in server if lane.busy]
    rows = len(recording["client"]) + len(drawn)
    figure, (whole, zoom) = plt.subplots(
        2, 1, figsize=(14, 2.4 + 0.8 * rows), gridspec_kw={"hspace": 0.35}
    )
    middle = (sent + replied) / 2 * 1e3 - sent * 1e3
    half = min(ZOOM_MS / 2, middle)
    _panel(whole, recording, drawn, (start, end), outlined=False)
    _panel(zoom, recording, drawn, (sent + (middle - half) / 1e3, sent + (middle + half) / 1e3),
           outlined=True)  # fmt: skip
    long_n = recording["recipe"]["long_n"]
    whole.set_xlabel(f"ms from the long request's send (shaded: fib({long_n}) in flight)")
    zoom.set_xlabel(f"the same, {2 * half:.0f} ms in the middle of fib({long_n}): "
                    "each client bar is one request, send → reply")  # fmt: skip
    hidden = len(server) - len(drawn)
    whole.set_title(
        f"{recording['variant']} on CPython {recording['python']}: the convoy, "
        f"sampled at {recording['samples']['rate']:g} Hz"
        + (f" ({hidden} idle threads not drawn)" if hidden else ""),
        fontsize=10,
    )
    legend = [Patch(color=COLOURS[s], label=s) for s in STATES] + [
        Patch(color=COLOURS["request"], label="request: received → answered (server)"),
        Patch(color=COLOURS["fib"], label="fib running (server)"),
    ]
    figure.legend(handles=legend, fontsize=7, ncol=4, loc="lower center", frameon=False)
    figure.text(0.01, 0.005, f"input: recording.json.gz sha256 {source_sha256[:16]}…",
                fontsize=6, color="#777")  # fmt: skip
    figure.subplots_adjust(left=0.2, right=0.98, top=0.95, bottom=0.1)
    figure.savefig(path, dpi=110, metadata={"Description": f"recording sha256 {source_sha256}"})
    plt.close(figure)
    return path


def _panel(
    axes: Any, recording: dict[str, Any], drawn: list[Lane], shown: tuple[float, float],
    *, outlined: bool,
) -> None:  # fmt: skip
    sent, replied = long_request(recording)
    period = sampling_period(recording)
    owners = worker_of(recording)
    edges = {"edgecolor": "white", "linewidth": 0.6} if outlined else {"linewidth": 0}

    def bars(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        return [((a - sent) * 1e3, max((b - a) * 1e3, 0.02)) for a, b in spans
                if b >= shown[0] and a <= shown[1]]  # fmt: skip

    rows = len(recording["client"]) + len(drawn)
    labels = []
    y = rows
    for connection in recording["client"]:
        y -= 1
        axes.broken_barh(bars(connection["requests"]), (y + 0.2, 0.6),
                         color=COLOURS[connection["role"]], **edges)  # fmt: skip
        where = f" → pid {owners[connection['port']]}" if connection["port"] in owners else ""
        labels.append((y, f"client {connection['role']} fib({connection['n']}){where}"))
    for lane in drawn:
        y -= 1
        spans = lane.spans(period)
        for state in STATES:
            axes.broken_barh(bars((a, b) for a, b, s in spans if s == state), (y + 0.5, 0.4),
                             color=COLOURS[state], lw=0)  # fmt: skip
        for kind, height in (("request", (y + 0.08, 0.36)), ("fib", (y + 0.14, 0.24))):
            axes.broken_barh(bars((a, b) for k, a, b, _n in lane.events if k == kind), height,
                             color=COLOURS[kind], lw=0)  # fmt: skip
        labels.append((y, f"pid {lane.pid} · {lane.name}"))
    axes.axvspan(0, (replied - sent) * 1e3, color="#fdebd0", alpha=0.35, zorder=0)
    axes.set_yticks([y + 0.5 for y, _ in labels], [label for _, label in labels], fontsize=8)
    axes.set_xlim((shown[0] - sent) * 1e3, (shown[1] - sent) * 1e3)
    axes.set_ylim(0, rows)
