# tests/bench/server.py
#
# The server benchmark (`make bench-server`, `python -m tests.bench.server`):
# a program that prints figures, not a test. Every variant runs as a real
# subprocess on 127.0.0.1; one raw client connection measures
#
#   - fib(1) requests per second: the talk's perf2 loop (send "1\n", read the
#     reply, repeat) for --duration seconds after a 0.5 s warm-up, and the
#     server's CPU per request (its whole process group, from /proc);
#   - fib(30) seconds per request: the mean of a few, after one warm-up.
#
# Then `threads` with metrics against `threads --no-metrics`: the cost of
# instrumentation (goal >= 0.97 of the uninstrumented rate). A cost of a few
# percent drowns in this VM's swings if the two run one after the other, so
# they run side by side, several servers of each kind, and the client times
# each request while going round all of them in a shuffled order: drift and
# the neighbours' load hit both kinds alike, and each kind is averaged over
# several processes' memory layouts (one layout alone can be a percent or
# two faster or slower). Each kind's rate is its requests over the time they
# took; server CPU per request is read in nanoseconds from schedstat. Output
# is Markdown.
#
# The same side-by-side method makes four committed reports (--prefork,
# --timeline BASE, --yield-cost BASE, and with tests/bench/gil.py the GIL
# probe's): with --out DIR each writes DIR/report.json (every figure, the
# parameters, the base commit and the provenance record) and DIR/report.md,
# rendered from that JSON alone by render(); --render DIR renders it again.

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.talk.perf1 import positive
from loadtest.toolbox import provenance
from loadtest.toolbox.errors import LabError
from loadtest.toolbox.formats import plural
from loadtest.toolbox.options import comma_list
from services import VARIANTS
from services.core.fib import fib
from tests.bench import Report, render_again, spread, write_report
from tests.conftest import ROOT, Server, group_cpu_seconds, group_members, start_server

SCHEMA = 2  # report.json's shape (docs/design.md §6.11); 2: base.commit became base.compared_with
WARM_UP = 0.5
OVERHEAD_GOAL = 0.97
OFF_GOAL = 0.99  # the timeline, off, against the code before it (docs/design.md §6.6)
YIELD_GOAL = 0.99  # yielding between a read's lines, for a client sending one at a time
# Where no control ran: a median ratio within 2 % of 1.000 is this machine's
# round-to-round noise, not a cost (the A/B modes take their control's rounds).
NOISE = 0.02
PREFORK_WORKERS = 2
SCRAPE_SECONDS = 1.0
GIL_PROBE_VARIANTS = ("threads", "coro")
CONVOY_LONG_N = 30
CONVOY_SECONDS = 2.0


@dataclass
class Slot:
    """One timed run of the fib(1) loop."""

    requests: int
    seconds: float
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU microseconds per request."""
        return self.server_cpu / self.requests * 1e6


def read_reply(sock: socket.socket) -> bytes:
    reply = sock.recv(128)
    while not reply.endswith(b"\n"):  # a reply split across segments: rare
        more = sock.recv(128)
        if not more:
            raise ConnectionError(f"server closed the connection after {reply!r}")
        reply += more
    return reply


def ask(variant: str, sock: socket.socket, line: bytes, expected: bytes) -> None:
    """One request line and its reply, checked."""
    sock.sendall(line)
    reply = read_reply(sock)
    if reply != expected:
        raise RuntimeError(f"{variant}: {line!r} answered {reply!r}")


def short_loop(server: Server, sock: socket.socket, seconds: float) -> Slot:
    """The perf2 loop on an open connection for `seconds`."""
    done = 0
    cpu_before = group_cpu_seconds(server.pid)
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        ask(server.variant, sock, b"1\n", b"1\n")
        done += 1
    elapsed = time.perf_counter() - start
    return Slot(done, elapsed, group_cpu_seconds(server.pid) - cpu_before)


def long_seconds(server: Server, n: int, repeat: int) -> float:
    """Mean seconds of one fib(n) request, after one warm-up request."""
    line, expected = b"%d\n" % n, b"%d\n" % fib(n)
    times = []
    with server.connect(timeout=600) as sock:
        for _ in range(repeat + 1):
            start = time.perf_counter()
            ask(server.variant, sock, line, expected)
            times.append(time.perf_counter() - start)
    return statistics.fmean(times[1:])


def shut(server: Server) -> None:
    server.stop()
    server.close()


def bench_variants(variants: Sequence[str], seconds: float, n: int, repeat: int) -> None:
    print(f"| variant | fib(1) req/s | server CPU µs per fib(1) | fib({n}) s/request |")
    print("|---|---:|---:|---:|")
    for variant in variants:
        server = start_server(variant)
        try:
            with server.connect() as sock:
                short_loop(server, sock, WARM_UP)
                slot = short_loop(server, sock, seconds)
            per_request = long_seconds(server, n, repeat)
        finally:
            shut(server)
        print(
            f"| `{variant}` | {slot.rate:,.0f} | {slot.cpu_us:.1f} | {per_request:.4f} |",
            flush=True,
        )


def schedstat_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process, from schedstat (nanoseconds)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def group_schedstat_seconds(pid: int) -> float:
    """CPU of a server's whole process group (a pre-fork server's workers too)."""
    total = 0.0
    for member in group_members(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            total += schedstat_cpu_seconds(member)
    return total


# -- the side-by-side method and what it keeps ----------------------------------

Comparison = dict[str, Any]
COST: dict[str, Any] = {"kind": "cost"}
CONTROL: dict[str, Any] = {"kind": "control"}


def at_least(minimum: float) -> dict[str, Any]:
    return {"kind": "minimum", "minimum": minimum}


def table_head(comparison: Comparison) -> list[str]:
    a, b = comparison["labels"]["a"], comparison["labels"]["b"]
    return [
        f"| round | {a} req/s | {b} req/s | ratio | server CPU µs/request: {a}, {b} |",
        "|---:|---:|---:|---:|---:|",
    ]


def table_row(row: dict[str, Any]) -> str:
    return (
        f"| {row['round']} | {row['rate_a']:,.0f} | {row['rate_b']:,.0f} | {row['ratio']:.3f} "
        f"| {row['cpu_us_a']:.1f}, {row['cpu_us_b']:.1f} |"
    )


def goal_met(comparison: Comparison) -> bool | None:
    goal = comparison["goal"]
    if goal["kind"] != "minimum":
        return None
    return bool(comparison["ratio"]["median"] >= goal["minimum"])


def goal_text(comparison: Comparison) -> str:
    goal = comparison["goal"]
    if goal["kind"] == "control":
        return "a control: should be 1.000"
    if goal["kind"] == "minimum":
        return f"goal >= {goal['minimum']:g}: " + ("met" if goal_met(comparison) else "NOT met")
    return "no goal: a cost"


def summary_lines(comparison: Comparison) -> list[str]:
    a, b = comparison["labels"]["a"], comparison["labels"]["b"]
    ratio, cpu = comparison["ratio"], comparison["cpu_us_per_request"]
    return [
        f"req/s {a} / {b}: median of {plural(comparison['rounds'], 'round')} "
        f"**{ratio['median']:.3f}** "
        f"(range {ratio['min']:.3f} .. {ratio['max']:.3f}; {goal_text(comparison)}).  ",
        f"server CPU per request: {cpu['a']:.2f} µs {a}, {cpu['b']:.2f} µs {b} "
        f"({cpu['difference']:+.2f} µs).",
    ]


def comparison_lines(comparison: Comparison) -> list[str]:
    """The table of rounds and its summary, as printed while it ran."""
    rows = [table_row(row) for row in comparison["by_round"]]
    return [*table_head(comparison), *rows, "", *summary_lines(comparison)]


def bench_side_by_side(
    variant: str | dict[bool, str],
    flags: dict[bool, list[str]],
    label: dict[bool, str],
    rounds: int,
    requests: int,
    pairs: int,
    goal: dict[str, Any],
    started: list[Server] | None = None,
    env: dict[bool, dict[str, str]] | None = None,
) -> Comparison:
    """`pairs` servers of each kind (flags[True], flags[False]; a variant per
    kind, or one for both; `env`: more environment per kind) side by side,
    fib(1) interleaved over all of them. Prints each round as it ends;
    returns every round's figures and the median ratio of kind True's
    ("a") rate to kind False's ("b")."""
    variants = variant if isinstance(variant, dict) else {True: variant, False: variant}
    comparison: Comparison = {
        "variants": {"a": variants[True], "b": variants[False]},
        "flags": {"a": flags[True], "b": flags[False]},
        "labels": {"a": label[True], "b": label[False]},
        "pairs": pairs,
        "rounds": rounds,
        "round_requests": requests,
        "goal": goal,
        "by_round": [],
    }
    shuffle = random.Random(2015).shuffle
    servers: list[tuple[bool, Server]] = []
    cpu = {True: 0.0, False: 0.0}
    try:
        for pair in range(pairs):
            kinds = (True, False) if pair % 2 == 0 else (False, True)  # neither always first
            servers.extend(
                (kind, start_server(variants[kind], *flags[kind], env=(env or {}).get(kind)))
                for kind in kinds
            )
            if started is not None:  # for a scraper running meanwhile
                started.extend(server for _kind, server in servers[-2:])
        with contextlib.ExitStack() as stack:
            order = [
                (instrumented, server, stack.enter_context(server.connect()))
                for instrumented, server in servers
            ]
            for _instrumented, server, sock in order:
                short_loop(server, sock, WARM_UP)
            print("\n".join(table_head(comparison)), flush=True)
            for round_number in range(rounds):
                seconds = {True: 0.0, False: 0.0}
                cpu_before = {
                    server.pid: group_schedstat_seconds(server.pid) for _i, server, _s in order
                }
                for _ in range(requests):
                    shuffle(order)
                    for instrumented, _server, sock in order:
                        start = time.perf_counter()
                        ask(variants[instrumented], sock, b"1\n", b"1\n")
                        seconds[instrumented] += time.perf_counter() - start
                used = {True: 0.0, False: 0.0}
                for instrumented, server, _sock in order:
                    spent = group_schedstat_seconds(server.pid) - cpu_before[server.pid]
                    used[instrumented] += spent
                per_kind = requests * pairs
                cpu[True] += used[True]
                cpu[False] += used[False]
                row = {
                    "round": round_number + 1,
                    "rate_a": per_kind / seconds[True],
                    "rate_b": per_kind / seconds[False],
                    "ratio": seconds[False] / seconds[True],
                    "cpu_us_a": used[True] / per_kind * 1e6,
                    "cpu_us_b": used[False] / per_kind * 1e6,
                }
                comparison["by_round"].append(row)
                print(table_row(row), flush=True)
    finally:
        for _instrumented, server in servers:
            shut(server)
    per_request = {kind: used / (rounds * requests * pairs) * 1e6 for kind, used in cpu.items()}
    comparison["ratio"] = spread([row["ratio"] for row in comparison["by_round"]])
    comparison["cpu_us_per_request"] = {
        "a": per_request[True],
        "b": per_request[False],
        "difference": per_request[True] - per_request[False],
    }
    print("\n" + "\n".join(summary_lines(comparison)), flush=True)
    return comparison


def bench_metrics_overhead(rounds: int, requests: int, pairs: int, control: bool = False) -> float:
    """Print each round and the summary; returns the median ratio of rates.

    `control`: both kinds run --no-metrics, which shows the method's own
    noise (the ratio should be 1.000).
    """
    comparison = bench_side_by_side(
        "threads",
        {True: ["--no-metrics"] if control else [], False: ["--no-metrics"]},
        {True: "A", False: "B"} if control else {True: "with metrics", False: "without"},
        rounds, requests, pairs, CONTROL if control else at_least(OVERHEAD_GOAL),
    )  # fmt: skip
    return float(comparison["ratio"]["median"])


# -- the modes that keep a report -------------------------------------------------


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def convoy_rates(server: Server, long_n: int, seconds: float) -> tuple[float, float]:
    """Short fib(1) req/s on one connection for `seconds`, then again while
    another connection asks fib(long_n) back to back: the talk's convoy."""
    with server.connect() as short:
        before = short_loop(server, short, seconds).rate
        stop = threading.Event()

        def hog() -> None:
            with server.connect(timeout=60) as long:
                while not stop.is_set():
                    ask(server.variant, long, b"%d\n" % long_n, b"%d\n" % fib(long_n))

        hogger = threading.Thread(target=hog, daemon=True)
        hogger.start()
        time.sleep(0.2)  # the first long request is running
        during = short_loop(server, short, seconds).rate
        stop.set()
        hogger.join(60)
    return before, during


def convoy_row(row: dict[str, Any]) -> str:
    factor = "∞" if row["factor"] is None else f"{row['factor']:.1f}×"
    return (
        f"| {row['round']} | probe {row['probe']} | {row['before']:,.0f} | {row['during']:,.0f} "
        f"| {factor} |"
    )


def factor_spread(rows: list[dict[str, Any]], probe: str) -> dict[str, float | None]:
    """Median and range of the convoy factors with the probe on (or off); a
    round whose short client got nothing through counts as infinite."""
    factors = [math.inf if row["factor"] is None else row["factor"] for row in rows
               if row["probe"] == probe]  # fmt: skip
    return {key: None if math.isinf(value) else value for key, value in spread(factors).items()}


def bench_gil_probe(
    variants: Sequence[str], rounds: int, requests: int, pairs: int, convoy_rounds: int
) -> Report:
    """What the GIL probe costs: fib(1) req/s side by side, probe on and off,
    then the convoy on each, alternating, in the same run."""
    flags = {True: [], False: ["--gil-probe", "off"]}
    label = {True: "probe on", False: "probe off"}
    part: Report = {
        "parameters": {
            "variants": list(variants),
            "rounds": rounds,
            "round_requests": requests,
            "pairs": pairs,
            "convoy_rounds": convoy_rounds,
            "convoy_long_n": CONVOY_LONG_N,
            "convoy_seconds": CONVOY_SECONDS,
            "warm_up_seconds": WARM_UP,
        },
        "load_average": {"start": load_average()},
        "variants": [],
    }
    for variant in variants:
        print(f"\n#### `{variant}`: fib(1), {plural(pairs, 'server')} each, side by side\n",
              flush=True)  # fmt: skip
        fib1 = bench_side_by_side(variant, flags, label, rounds, requests, pairs, COST)
        print(f"\n#### `{variant}`: the convoy (fib(1) rate before / during fib({CONVOY_LONG_N}) "
              "back to back), probe on and off alternately\n", flush=True)  # fmt: skip
        print("| round | probe | short req/s before | during | before / during |")
        print("|---:|---|---:|---:|---:|")
        rows: list[dict[str, Any]] = []
        for round_number in range(convoy_rounds):
            for probe in (True, False) if round_number % 2 == 0 else (False, True):
                server = start_server(variant, *flags[probe])
                try:
                    before, during = convoy_rates(server, CONVOY_LONG_N, CONVOY_SECONDS)
                finally:
                    shut(server)
                rows.append({
                    "round": round_number + 1, "probe": "on" if probe else "off",
                    "before": before, "during": during,
                    "factor": before / during if during else None,
                })  # fmt: skip
                print(convoy_row(rows[-1]), flush=True)
        convoy = {"by_round": rows, "on": factor_spread(rows, "on"),
                  "off": factor_spread(rows, "off")}  # fmt: skip
        print(f"\n{convoy_median_line(convoy)}", flush=True)
        part["variants"].append({"variant": variant, "fib1": fib1, "convoy": convoy})
    part["load_average"]["end"] = load_average()
    return part


def times(value: float | None) -> str:
    return "∞" if value is None else f"{value:.1f}×"


def convoy_median_line(convoy: dict[str, Any]) -> str:
    return (
        f"convoy factor, median: probe on {times(convoy['on']['median'])}, "
        f"probe off {times(convoy['off']['median'])}"
    )


def bench_prefork(rounds: int, requests: int, pairs: int) -> Comparison:
    """prefork's requests against threads' (the model each of its workers
    runs): what serving from worker processes and merging their /metrics at
    each scrape costs per request. A scraper reads every server's /metrics
    once a second, as Prometheus does."""
    stop = threading.Event()
    scraped: list[Server] = []

    def scrape_every_second() -> None:
        while not stop.wait(SCRAPE_SECONDS):
            for server in scraped.copy():
                with contextlib.suppress(OSError, ValueError):
                    server.metrics_text()

    scraper = threading.Thread(target=scrape_every_second, daemon=True)
    scraper.start()
    try:
        return bench_side_by_side(
            {True: "prefork", False: "threads"},
            {True: ["--pool-workers", str(PREFORK_WORKERS)], False: []},
            {True: "prefork", False: "threads"},
            rounds, requests, pairs, COST, started=scraped,
        )  # fmt: skip
    finally:
        stop.set()
        scraper.join(5)


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


def base_commit(base: str) -> str:
    """`base`'s full hash in this repository, or a LabError saying why not
    (not a git checkout, or a shallow clone that lacks it)."""
    found = git("rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    if found.returncode == 0:
        return found.stdout.decode().strip()
    shallow = git("rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
    why = git("rev-parse", "--git-dir").stderr.decode().strip()
    raise LabError(
        f"commit {base!r} is not in the repository at {ROOT}"
        + (": this clone is shallow, `git fetch --unshallow` first" if shallow else "")
        + (f" ({why})" if why else "")
    )


@contextlib.contextmanager
def services_at(commit: str) -> Iterator[str]:
    """A folder holding the services package as it was at `commit`: a server
    started with PYTHONPATH set to it (and PYTHONSAFEPATH, which keeps
    `python -m` from putting the current folder first) runs that code. The
    tree is read from git's objects (`<commit>:./services`, relative to this
    checkout), so any clone that holds the commit will do."""
    archive = git("archive", "--format=tar", "--prefix=services/", f"{commit}:./services")
    if archive.returncode != 0:
        raise LabError(f"git archive {commit}: {archive.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory() as before:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(before, filter="data")
        yield before


def bench_yield(rounds: int, requests: int, pairs: int, base: str) -> Report:
    """What letting the loop run others between one read's lines (FIB_YIELD_EVERY,
    docs/design.md §2 Fairness) costs a client that sends one line at a time:
    the event-loop variants that gained it, against the code of commit `base`."""
    measured: Report = {"variants": []}
    with services_at(base_commit(base)) as before:
        at_base = {"PYTHONSAFEPATH": "1", "PYTHONPATH": before}
        for variant in ("asyncio", "gevent"):
            print(f"\n#### {variant}: this commit against commit {base}\n", flush=True)
            comparison = bench_side_by_side(
                variant, {True: [], False: []},
                {True: "this commit, --yield-every 1", False: f"commit {base}"},
                rounds, requests, pairs, at_least(YIELD_GOAL), env={False: at_base},
            )  # fmt: skip
            measured["variants"].append({"variant": variant, "comparison": comparison})
        print(f"\n#### Control: asyncio at commit {base} against itself (the method's noise)\n",
              flush=True)  # fmt: skip
        measured["control"] = bench_side_by_side(
            "asyncio", {True: [], False: []}, {True: "A", False: "B"},
            rounds, requests, pairs, CONTROL, env={True: at_base, False: at_base},
        )  # fmt: skip
    return measured


def bench_timeline(rounds: int, requests: int, pairs: int, base: str) -> Report:
    """The server's timeline (FIB_TIMELINE, docs/design.md §6.6) on `threads`:
    off against the code of commit `base` (before the timeline existed: its
    hooks cost nothing when off, goal >= 0.99), `base` against itself (the
    method's noise), then on against off (what recording costs)."""
    measured: Report = {}
    with services_at(base_commit(base)) as before, tempfile.TemporaryDirectory() as written:
        at_base = {"PYTHONSAFEPATH": "1", "PYTHONPATH": before}
        print(f"#### Off, against commit {base} (no timeline code)\n", flush=True)
        measured["off"] = bench_side_by_side(
            "threads", {True: [], False: []},
            {True: "this commit, timeline off", False: f"commit {base}"},
            rounds, requests, pairs, at_least(OFF_GOAL), env={False: at_base},
        )  # fmt: skip
        print(f"\n#### Control: commit {base} against itself (the method's own noise)\n",
              flush=True)  # fmt: skip
        measured["control"] = bench_side_by_side(
            "threads", {True: [], False: []}, {True: "A", False: "B"},
            rounds, requests, pairs, CONTROL, env={True: at_base, False: at_base},
        )  # fmt: skip
        print("\n#### On, against off\n", flush=True)
        measured["on"] = bench_side_by_side(
            "threads", {True: ["--timeline", written], False: []},
            {True: "timeline on", False: "timeline off"},
            rounds, requests, pairs, COST,
        )  # fmt: skip
    return measured


# -- the reports: figures to sentences, JSON to Markdown (nothing measured) -----

TITLES = {
    "prefork-cost": "What serving from pre-forked workers costs per request",
    "timeline-cost": "What the server's timeline costs",
    "yield-cost": "What yielding between a read's lines costs",
}


def span(comparison: Comparison) -> str:
    ratio = comparison["ratio"]
    rounds = plural(comparison["rounds"], "round")
    return f"median of {rounds}, range {ratio['min']:.3f}-{ratio['max']:.3f}"


def cpu_phrase(comparison: Comparison) -> str:
    cpu = comparison["cpu_us_per_request"]
    more = "more" if cpu["difference"] >= 0 else "less"
    return (
        f"{abs(cpu['difference']):.2f} µs {more} server CPU per request "
        f"({cpu['a']:.2f} against {cpu['b']:.2f} µs)"
    )


def placement(median: float, band: Sequence[float]) -> str:
    """Where a median ratio lies against a band of noise: below, within, above."""
    return "below" if median < band[0] else "above" if median > band[1] else "within"


MACHINE_BAND = (1 - NOISE, 1 + NOISE)
MACHINE_NOISE = f"this machine's round-to-round noise (here: a median within {NOISE:.0%} of 1.000)"


def control_band(control: Comparison) -> tuple[float, float]:
    return control["ratio"]["min"], control["ratio"]["max"]


def control_sentence(control: Comparison, what: str) -> str:
    low, high = control_band(control)
    return (
        f"The method's noise is its control, {what}: {control['ratio']['median']:.3f} "
        f"({span(control)}); a median inside the range of its rounds, {low:.3f}-{high:.3f}, "
        "is noise."
    )


def load_text(load: dict[str, list[float]]) -> str:
    def three(values: list[float]) -> str:
        return " ".join(f"{value:.2f}" for value in values)

    return (
        f"Load average (1, 5, 15 min) {three(load['start'])} at the start, "
        f"{three(load['end'])} at the end."
    )


def base_text(base: dict[str, str]) -> str:
    return f"commit {base['given']} ({base['compared_with']})"


def possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def prefork_result(report: Report) -> str:
    comparison = report["comparison"]
    a, b = comparison["labels"]["a"], comparison["labels"]["b"]
    judged = {
        "within": f"within {MACHINE_NOISE}",
        "below": f"a cost per request beyond {MACHINE_NOISE}",
        "above": f"faster, beyond {MACHINE_NOISE}",
    }[placement(comparison["ratio"]["median"], MACHINE_BAND)]
    return (
        f"**Result:** {a} answers fib(1) at {comparison['ratio']['median']:.3f} of "
        f"{possessive(b)} rate "
        f"({span(comparison)}) for {cpu_phrase(comparison)}: {judged}."
    )


def against_control(median: float, control: Comparison) -> str:
    """Where a median ratio lies against the control's rounds: below, within,
    above, or unjudged when the control ran one round (no range of noise)."""
    if control["rounds"] < 2:
        return "unjudged"
    return placement(median, control_band(control))


UNJUDGED = "not judged against noise (the control ran one round)"
JUDGED = {
    "within": "within the method's noise",
    "below": "beyond the method's noise",
    "above": "faster, beyond the method's noise",
    "unjudged": UNJUDGED,
}


def timeline_result(report: Report) -> str:
    off, control, on = report["off"], report["control"], report["on"]
    base = report["base"]["given"]
    off_lead = {
        "within": "Off, the timeline costs nothing this method can resolve",
        "below": "Off, the timeline costs more than the method's noise",
        "above": "Off, this commit is faster than the code before the timeline, beyond the "
        "method's noise",
        "unjudged": f"Off, {UNJUDGED}",
    }[against_control(off["ratio"]["median"], control)]
    on_judged = {
        "within": "within the method's noise",
        "below": "a cost beyond the method's noise",
        "above": "faster, beyond the method's noise",
        "unjudged": UNJUDGED,
    }[against_control(on["ratio"]["median"], control)]
    return (
        f"**Result:** {control_sentence(control, f'commit {base} against itself')} "
        f"{off_lead}: `threads` answers fib(1) at {off['ratio']['median']:.3f} of commit "
        f"{base}'s rate ({span(off)}; {goal_text(off)}), {cpu_phrase(off)}. "
        f"On, recording runs at {on['ratio']['median']:.3f} of the rate with it off "
        f"({span(on)}) for {cpu_phrase(on)}: {on_judged}."
    )


def yield_result(report: Report) -> str:
    control, base = report["control"], report["base"]["given"]
    parts, beyond, missed = [], [], []
    for entry in report["variants"]:
        variant, comparison = entry["variant"], entry["comparison"]
        where = against_control(comparison["ratio"]["median"], control)
        if where == "below":
            beyond.append(variant)
        if goal_met(comparison) is False:
            missed.append(variant)
        judged = JUDGED[where]
        parts.append(
            f"{variant} {comparison['ratio']['median']:.3f} of commit {base}'s rate "
            f"({span(comparison)}; {goal_text(comparison)}), {cpu_phrase(comparison)}: {judged}"
        )
    goal = f"{report['goal']:g}"
    if control["rounds"] < 2:
        verdict = "no cost judged (the control ran one round)"
    elif beyond:
        verdict = f"a cost beyond the method's noise for {' and '.join(beyond)}"
    else:
        verdict = "no cost this method can resolve"
    goals = (
        f"{' and '.join(missed)}'s median misses the goal of >= {goal}" if missed
        else f"every median meets the goal of >= {goal}"
    )  # fmt: skip
    return (
        f"**Result:** {verdict}; {goals}. A client sending one line at a time, with "
        f"`--yield-every 1`, gets {'; '.join(parts)}. "
        f"{control_sentence(control, f'asyncio at commit {base} against itself')}"
    )


def render_prefork(report: Report) -> str:
    parameters, comparison = report["parameters"], report["comparison"]
    pairs = parameters["pairs"]
    servers = "server" if pairs == 1 else "servers"
    return "\n".join([
        f"# {TITLES['prefork-cost']}", "",
        provenance.markdown_line(report["provenance"]), "",
        f"{pairs} `prefork` {servers} ({parameters['workers']} workers each) and {pairs} "
        f"`threads` {servers} side by side, one client going round all of them in a shuffled "
        "order, "
        f"{plural(parameters['rounds'], 'round')} of {parameters['round_requests']} fib(1) "
        f"requests per server after {parameters['warm_up_seconds']:g} s of warm-up, every "
        "server's /metrics "
        f"read every {parameters['scrape_seconds']:g} s meanwhile (a prefork scrape asks each "
        "worker for its figures and merges them). Server CPU is each server's whole process "
        f"group, from schedstat. {load_text(report['load_average'])}", "",
        prefork_result(report) + " The request path is the same in both (a worker runs "
        "`threads`); the merge costs only at scrape time.", "",
        f"## prefork ({parameters['workers']} workers) against threads", "",
        *comparison_lines(comparison), "",
    ])  # fmt: skip


def ab_method(parameters: dict[str, Any]) -> str:
    return (
        f"{plural(parameters['pairs'], 'server')} of each kind side by side, the client going "
        "round all "
        f"of them in a shuffled order (drift and neighbours hit both kinds alike), "
        f"{plural(parameters['rounds'], 'round')} of {parameters['round_requests']} fib(1) "
        f"requests per server, one line at a time, after {parameters['warm_up_seconds']:g} s "
        "of warm-up; "
        "the side at the base commit runs that commit's `services` (git archive)."
    )


def render_timeline(report: Report) -> str:
    base = report["base"]
    return "\n".join([
        f"# {TITLES['timeline-cost']}", "",
        provenance.markdown_line(report["provenance"]), "",
        f"`threads` with the timeline off against {base_text(base)}, the code before the "
        "timeline; that commit against itself (the control: the method's own noise); then on "
        f"against off. {ab_method(report['parameters'])} {load_text(report['load_average'])}",
        "", timeline_result(report), "",
        f"## Off, against commit {base['given']} (no timeline code)", "",
        *comparison_lines(report["off"]), "",
        f"## Control: commit {base['given']} against itself (the method's own noise)", "",
        *comparison_lines(report["control"]), "",
        "## On, against off", "",
        *comparison_lines(report["on"]), "",
    ])  # fmt: skip


def render_yield(report: Report) -> str:
    base = report["base"]
    lines = [
        f"# {TITLES['yield-cost']}", "",
        provenance.markdown_line(report["provenance"]), "",
        "What letting the loop run others between one read's lines (`FIB_YIELD_EVERY`, "
        "docs/design.md §2 Fairness) costs a client that sends one line at a time: each "
        f"event-loop variant that gained it against {base_text(base)}, then asyncio at that "
        f"commit against itself (the control). {ab_method(report['parameters'])} "
        f"{load_text(report['load_average'])}", "",
        yield_result(report), "",
    ]  # fmt: skip
    for entry in report["variants"]:
        lines += [f"## {entry['variant']}: this commit against commit {base['given']}", ""]
        lines += [*comparison_lines(entry["comparison"]), ""]
    lines += [f"## Control: asyncio at commit {base['given']} against itself", ""]
    return "\n".join([*lines, *comparison_lines(report["control"]), ""])


def render(report: Report) -> str:
    """report.md of any report this program writes, from its JSON alone."""
    kind = report["provenance"]["kind"]
    if kind == "gil-probe":
        from tests.bench import gil  # it imports this module

        return gil.render(report)
    renderers = {
        "prefork-cost": render_prefork,
        "timeline-cost": render_timeline,
        "yield-cost": render_yield,
    }
    if kind not in renderers:
        raise SystemExit(f"--render: a report of kind {kind!r} is not this program's")
    return renderers[kind](report)


def result(report: Report) -> str:
    """The computed Result paragraph, printed at the end of a run without --out."""
    kind = report["provenance"]["kind"]
    if kind == "gil-probe":
        from tests.bench import gil

        return gil.verdict(report)
    results = {"prefork-cost": prefork_result, "timeline-cost": timeline_result,
               "yield-cost": yield_result}  # fmt: skip
    return results[kind](report)


def finish(report: Report, record: provenance.Provenance, out: Path | None) -> None:
    report["provenance"] = record.record()
    if out is None:
        print(f"\n{result(report)}")
        return
    for path in write_report(out, report, render):
        print(f"wrote {path}")


def variant_list(text: str) -> list[str]:
    try:
        return comma_list(text, VARIANTS, "variant")
    except LabError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.server",
        description="Print fib(1) req/s and fib(30) s/request of every variant, "
        "and the cost of metrics on threads.",
    )
    parser.add_argument(
        "--variants", type=variant_list, default=list(VARIANTS), help="comma-separated, or all"
    )
    parser.add_argument(
        "--duration", type=positive(float), default=3.0, help="seconds per fib(1) measurement [3]"
    )
    parser.add_argument("--long-n", type=int, default=30, help="n of the long request [30]")
    parser.add_argument("--repeat", type=int, default=3, help="long requests averaged [3]")
    parser.add_argument(
        "--rounds", type=int, default=6, help="metrics vs --no-metrics rounds (0: skip) [6]"
    )
    parser.add_argument(
        "--round-requests", type=positive(int), default=4000,
        help="fib(1) requests per server in each round [4000]",
    )  # fmt: skip
    parser.add_argument(
        "--pairs", type=positive(int), default=4,
        help="servers of each kind, side by side [4]",
    )  # fmt: skip
    parser.add_argument(
        "--prefork", action="store_true",
        help="instead: prefork's fib(1) rate against threads', side by side, scraped every second",
    )  # fmt: skip
    parser.add_argument(
        "--gil-probe", action="store_true",
        help="instead: what the GIL probe costs on threads and coro (fib(1) and the convoy); "
        "`python -m tests.bench.gil --out DIR` makes the whole report",
    )  # fmt: skip
    parser.add_argument(
        "--timeline", metavar="BASE",
        help="instead: the timeline's cost on threads, off against commit BASE, then on",
    )  # fmt: skip
    parser.add_argument(
        "--yield-cost", metavar="BASE",
        help="instead: what yielding between a read's lines costs asyncio and gevent, "
        "against commit BASE",
    )  # fmt: skip
    parser.add_argument(
        "--control", action="store_true",
        help="run --no-metrics on both sides: the method's own noise (ratio ~1.000)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help="with --prefork, --timeline, --yield-cost or --gil-probe: write DIR/report.json "
        "and DIR/report.md",
    )  # fmt: skip
    parser.add_argument(
        "--render", type=Path, metavar="DIR",
        help="only render DIR/report.md again from DIR/report.json (nothing measured)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    modes = [args.prefork, args.gil_probe, bool(args.timeline), bool(args.yield_cost)]
    if sum(modes) > 1:
        parser.error("--prefork, --gil-probe, --timeline and --yield-cost: one at a time")
    if args.out is not None and not any(modes):
        parser.error("--out: only with --prefork, --gil-probe, --timeline or --yield-cost")
    if any(modes) and args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1 here")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.render is not None:
        print(f"wrote {render_again(args.render, render)}")
        return
    sides = (
        f"{plural(args.pairs, 'server')} of each kind, {plural(args.rounds, 'round')} of "
        f"{args.round_requests} "
        "interleaved fib(1) requests per server"
    )
    parameters = {"rounds": args.rounds, "round_requests": args.round_requests,
                  "pairs": args.pairs, "warm_up_seconds": WARM_UP}  # fmt: skip
    if args.prefork:
        record = provenance.begin("prefork-cost", SCHEMA)
        start = load_average()
        print(f"### prefork ({PREFORK_WORKERS} workers) against threads: {sides}, every "
              f"/metrics read every {SCRAPE_SECONDS:g} s\n", flush=True)  # fmt: skip
        comparison = bench_prefork(args.rounds, args.round_requests, args.pairs)
        parameters |= {"workers": PREFORK_WORKERS, "scrape_seconds": SCRAPE_SECONDS}
        report = {"parameters": parameters, "comparison": comparison,
                  "load_average": {"start": start, "end": load_average()}}  # fmt: skip
        finish(report, record, args.out)
        return
    if args.timeline or args.yield_cost:
        kind = "timeline-cost" if args.timeline else "yield-cost"
        record = provenance.begin(kind, SCHEMA)
        given = args.timeline or args.yield_cost
        base = {"given": given, "compared_with": base_commit(given)}
        start = load_average()
        print(f"### {TITLES[kind]}, against commit {given}: {sides}\n", flush=True)
        if args.timeline:
            measured = bench_timeline(args.rounds, args.round_requests, args.pairs, given)
        else:
            measured = bench_yield(args.rounds, args.round_requests, args.pairs, given)
            measured["goal"] = YIELD_GOAL
        report = {"parameters": parameters, "base": base, **measured,
                  "load_average": {"start": start, "end": load_average()}}  # fmt: skip
        finish(report, record, args.out)
        return
    if args.gil_probe:
        from tests.bench import gil  # it imports this module

        record = provenance.begin("gil-probe", gil.SCHEMA)
        print(f"### Cost of the GIL probe: `--gil-probe off` against on, {sides}", flush=True)
        servers = bench_gil_probe(GIL_PROBE_VARIANTS, args.rounds, args.round_requests,
                                  args.pairs, args.rounds // 2 or 1)  # fmt: skip
        finish({"servers": servers}, record, args.out)
        return
    cores = len(os.sched_getaffinity(0))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"## fiblab server benchmark\n\n{now}; {platform.python_implementation()} "
        f"{platform.python_version()}; {cores} cores; load average {os.getloadavg()[0]:.2f} "
        f"at start. One client connection on 127.0.0.1 (the client's own per-request cost "
        f"is part of the fib(1) rate); fib(1) over {args.duration:g} s after {WARM_UP:g} s "
        f"of warm-up; fib({args.long_n}): mean of {args.repeat}.\n",
        flush=True,
    )
    bench_variants(args.variants, args.duration, args.long_n, args.repeat)
    if args.rounds > 0:
        sides = (
            f"CONTROL: {args.pairs} servers A and {args.pairs} servers B, all `--no-metrics`"
            if args.control
            else f"{args.pairs} servers with metrics and {args.pairs} with `--no-metrics`"
        )
        print(
            f"\n### Cost of metrics: `threads`, {sides}, {args.rounds} rounds of "
            f"{args.round_requests} interleaved fib(1) requests each\n",
            flush=True,
        )
        bench_metrics_overhead(args.rounds, args.round_requests, args.pairs, args.control)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except LabError as error:
        sys.exit(f"tests.bench.server: {error}")
    except KeyboardInterrupt:
        sys.exit(130)
