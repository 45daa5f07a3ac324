# tests/services/core/test_metrics.py
#
# The metrics of docs/design.md §4 (services/core/metrics.py), read back through
# prometheus_client's own text-format parser: exactly the contract's names,
# types and labels, bounded n labels, the histogram buckets, fib_info, and a
# CPU counter and a resident-memory gauge that include the process's children.

from __future__ import annotations

import math
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.core.cpu import descendants, tree_cpu_seconds
from services.core.memory import parse_resident_bytes, resident_bytes, tree_resident_bytes
from services.core.metrics import (
    DURATION_BUCKETS,
    CpuCollector,
    MemoryCollector,
    Metrics,
    NullMetrics,
    merge_families,
)
from services.core.protocol import ErrorCode

# docs/design.md §4: family name (as the parser names it) -> (type, labels)
CONTRACT = {
    "fib_requests": ("counter", {"variant", "n", "outcome"}),
    "fib_request_duration_seconds": ("histogram", {"variant", "n"}),
    "fib_requests_in_progress": ("gauge", {"variant"}),
    "fib_connections_active": ("gauge", {"variant"}),
    "fib_connections": ("counter", {"variant"}),
    "fib_errors": ("counter", {"variant", "code"}),
    "fib_cpu_seconds": ("counter", {"variant"}),
    "fib_resident_memory_bytes": ("gauge", {"variant"}),
    "fib_info": ("gauge", {"variant", "python", "implementation", "gil"}),
    "fib_gil_wait_seconds": ("counter", {"variant"}),
    "fib_gil_probe_seconds": ("counter", {"variant"}),
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def samples(metrics: Metrics) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition(metrics))
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


@pytest.fixture
def busy_metrics() -> Metrics:
    """Metrics after a known mix of connections, replies and errors."""
    metrics = Metrics("threads", cpu_source="process")
    closed, tally, _idle = (metrics.connection_opened() for _ in range(3))
    metrics.connection_closed(closed)
    for n, error, seconds in [
        (1, None, 30e-6),  # fib(1): tens of microseconds
        (1, None, 50e-6),  # exactly on a bucket bound: le means <=
        (1, None, 70e-6),
        (30, None, 0.3),
        (None, ErrorCode.OUT_OF_RANGE, 20e-6),
        (None, ErrorCode.NOT_AN_INTEGER, 20e-6),
        (5, ErrorCode.SERVER_ERROR, 200.0),  # beyond the last bucket
    ]:
        tally.started += 1
        tally.answered(n, error, seconds)
    tally.started += 1  # one still running
    metrics.count_error(ErrorCode.BUSY)  # answers no line: no duration
    return metrics


def test_exactly_the_contract_families(busy_metrics: Metrics) -> None:
    families = list(text_string_to_metric_families(exposition(busy_metrics)))
    assert {f.name: f.type for f in families} == {
        name: kind for name, (kind, _labels) in CONTRACT.items()
    }
    for family in families:
        _kind, labels = CONTRACT[family.name]
        for s in family.samples:
            extra = {"le"} if s.name.endswith("_bucket") else set()
            assert set(s.labels) == labels | extra, s
            assert s.labels["variant"] == "threads"


def test_sample_names_and_no_created_series(busy_metrics: Metrics) -> None:
    text = exposition(busy_metrics)
    names = {name for name, _labels in samples(busy_metrics)}
    assert names == {
        "fib_requests_total",
        "fib_request_duration_seconds_bucket",
        "fib_request_duration_seconds_count",
        "fib_request_duration_seconds_sum",
        "fib_requests_in_progress",
        "fib_connections_active",
        "fib_connections_total",
        "fib_errors_total",
        "fib_cpu_seconds_total",
        "fib_resident_memory_bytes",
        "fib_info",
        "fib_gil_wait_seconds_total",
        "fib_gil_probe_seconds_total",
    }
    assert "_created" not in text


def test_counts(busy_metrics: Metrics) -> None:
    found = samples(busy_metrics)
    v = {"variant": "threads"}
    assert value(found, "fib_connections_total", **v) == 3
    assert value(found, "fib_connections_active", **v) == 2
    assert value(found, "fib_requests_in_progress", **v) == 1
    assert value(found, "fib_requests_total", **v, n="1", outcome="ok") == 3
    assert value(found, "fib_requests_total", **v, n="30", outcome="ok") == 1
    assert value(found, "fib_requests_total", **v, n="5", outcome="error") == 1
    # Lines that are not a valid n, and busy, all share n="".
    assert value(found, "fib_requests_total", **v, n="", outcome="error") == 3
    assert value(found, "fib_requests_total", **v, n="", outcome="ok") is None
    errors = {
        dict(labels)["code"]: count
        for (name, labels), count in found.items()
        if name == "fib_errors_total"
    }
    assert errors == {
        "not-an-integer": 1,
        "out-of-range": 1,
        "server-error": 1,
        "line-too-long": 0,
        "busy": 1,
        "idle-timeout": 0,
    }


def test_n_label_is_bounded_whatever_clients_send() -> None:
    metrics = Metrics("coro", cpu_source="process")
    tally = metrics.connection_opened()
    for n in range(11):
        tally.answered(n, None, 1e-3)
    for _ in range(50):  # out of range, whatever was asked: the protocol gives no n
        tally.answered(None, ErrorCode.OUT_OF_RANGE, 1e-3)
    found = samples(metrics)
    labels = {dict(lbl)["n"] for name, lbl in found if name == "fib_requests_total"}
    assert labels == {*map(str, range(11)), ""}


def test_a_closed_connection_keeps_its_counts_and_drops_its_unanswered_lines() -> None:
    metrics = Metrics("threads", cpu_source="process")
    tally = metrics.connection_opened()
    tally.started += 3  # three pipelined lines; the client leaves after one reply
    tally.answered(1, None, 40e-6)
    v = {"variant": "threads"}
    before = samples(metrics)
    assert value(before, "fib_requests_in_progress", **v) == 2
    metrics.connection_closed(tally)
    after = samples(metrics)
    assert value(after, "fib_requests_in_progress", **v) == 0
    for name, labels in [
        ("fib_requests_total", {"n": "1", "outcome": "ok"}),
        ("fib_request_duration_seconds_count", {"n": "1"}),
        ("fib_request_duration_seconds_bucket", {"n": "1", "le": "5e-05"}),
    ]:
        assert value(before, name, **v, **labels) == value(after, name, **v, **labels) == 1


def test_scrapes_while_connections_count_see_consistent_growing_figures() -> None:
    """Tallies are written without a lock while another thread scrapes, and
    so folds, them: nothing is lost or counted twice, no counter goes down."""
    metrics = Metrics("threads", cpu_source="process")
    threads_count, scrapes = 4, 30
    v = {"variant": "threads"}
    done = threading.Event()
    readings: list[Samples] = []
    served: list[int] = []

    def serve_one_connection() -> None:
        """Replies until there have been enough scrapes (or 30 s), and at
        least enough to fold on its own a few times."""
        tally = metrics.connection_opened()
        deadline = time.monotonic() + 30
        i = 0
        while i < 5 * tally.FOLD_AT or (len(readings) < scrapes and time.monotonic() < deadline):
            tally.started += 1
            n = i // 100 % 3  # runs of one n, as clients mostly send (and changes)
            tally.answered(n, ErrorCode.SERVER_ERROR if i % 10 == 0 else None, 1e-4)
            if tally.started >= tally.fold_at:  # as Connection.receive does
                tally.fold()
            i += 1
        metrics.connection_closed(tally)
        served.append(i)

    def scrape_until_done() -> None:
        while not done.is_set():
            readings.append(samples(metrics))

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        scraper = threading.Thread(target=scrape_until_done)
        scraper.start()
        workers = [threading.Thread(target=serve_one_connection) for _ in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        done.set()
        scraper.join()
    finally:
        sys.setswitchinterval(switch_interval)
    assert len(readings) >= scrapes
    counters = {
        key
        for found in readings
        for key in found
        if key[0].endswith(("_total", "_count", "_bucket")) and key[0] != "fib_cpu_seconds_total"
    }
    for key in counters:
        series = [found.get(key, 0) for found in readings]
        assert series == sorted(series), f"{key} went down"
    in_progress = [value(found, "fib_requests_in_progress", **v) for found in readings]
    assert all(0 <= (count or 0) <= threads_count for count in in_progress), in_progress
    found = samples(metrics)
    total = sum(served)
    errors = sum((count + 9) // 10 for count in served)  # i % 10 == 0 for i < count

    def summed(name: str) -> float:
        return sum(count for (sample, _labels), count in found.items() if sample == name)

    assert value(found, "fib_requests_in_progress", **v) == 0
    assert value(found, "fib_errors_total", **v, code="server-error") == errors
    assert summed("fib_requests_total") == total
    assert summed("fib_request_duration_seconds_count") == total
    assert summed("fib_request_duration_seconds_sum") == pytest.approx(total * 1e-4)


def test_histogram_buckets(busy_metrics: Metrics) -> None:
    found = samples(busy_metrics)
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in found
        if name == "fib_request_duration_seconds_bucket" and dict(labels)["n"] == "1"
    )
    assert bounds[0] == 50e-6
    assert bounds[-2] == 120.0
    assert math.isinf(bounds[-1])
    assert bounds[:-1] == sorted(DURATION_BUCKETS)
    assert len(bounds) == len(set(bounds))

    def bucket(n: str, le: str) -> float | None:
        return value(found, "fib_request_duration_seconds_bucket", variant="threads", n=n, le=le)

    assert bucket("1", "5e-05") == 2  # 30 µs and exactly 50 µs
    assert bucket("1", "0.0001") == 3
    assert bucket("30", "0.25") == 0
    assert bucket("30", "0.5") == 1
    assert bucket("5", "120.0") == 0  # 200 s: only in +Inf
    assert bucket("5", "+Inf") == 1
    count = value(found, "fib_request_duration_seconds_count", variant="threads", n="1")
    total = value(found, "fib_request_duration_seconds_sum", variant="threads", n="1")
    assert count == 3
    assert total == pytest.approx(150e-6)
    # busy answered no line: the n="" histogram holds the two bad lines only.
    assert value(found, "fib_request_duration_seconds_count", variant="threads", n="") == 2


def test_fib_info() -> None:
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)  # 3.13+
    gil = "enabled" if is_gil_enabled is None or is_gil_enabled() else "disabled"
    found = samples(Metrics("asyncio", cpu_source="process"))
    [(labels, info)] = [(dict(lbl), v) for (name, lbl), v in found.items() if name == "fib_info"]
    assert info == 1
    assert labels == {
        "variant": "asyncio",
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "gil": gil,
    }


def test_null_metrics_accepts_every_call() -> None:
    null = NullMetrics()
    tally = null.connection_opened()
    assert tally is None  # nothing is counted, not even per connection
    null.count_error(ErrorCode.BUSY)
    null.connection_closed(tally)
    assert not hasattr(null, "registry")


def cpu_counter(collector: CpuCollector) -> float:
    [family] = collector.collect()
    [s] = family.samples
    assert s.name == "fib_cpu_seconds_total"
    assert s.labels == {"variant": "coro-procpool"}
    return float(s.value)


BURN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"
# A process that waits on a grandchild that burns: the tree, not just children.
BURN_IN_GRANDCHILD = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"


@pytest.mark.parametrize("program", [BURN, BURN_IN_GRANDCHILD], ids=["child", "grandchild"])
def test_cpu_counts_descendants_while_they_run(program: str) -> None:
    collector = CpuCollector("coro-procpool", "process")
    before = cpu_counter(collector)
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    child = subprocess.Popen([sys.executable, "-c", program], start_new_session=True)
    try:
        readings = [before]
        deadline = time.monotonic() + 20
        while readings[-1] - before < 0.6 and time.monotonic() < deadline:
            time.sleep(0.1)
            readings.append(cpu_counter(collector))
        assert child.poll() is None, "still running: counted live from /proc, not reaped"
        own_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the grandchild too
        child.wait()
    assert readings == sorted(readings), "a counter never goes down"
    own = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    # The growth is the child's CPU, not this process's own.
    assert readings[-1] - before - own >= 0.5
    # Reaped, the child is counted through RUSAGE_CHILDREN: still no decrease.
    assert cpu_counter(collector) >= readings[-1]


def test_auto_source_outside_a_container_is_the_process_tree() -> None:
    # Here (no private cgroup of our own) auto must not report the machine's
    # root cgroup, which counts every process on the host.
    cgroups = Path("/proc/self/cgroup").read_text().splitlines()
    own = [line.split(":", 2) for line in cgroups]
    if any(path != "/" and ("cpuacct" in ctl.split(",") or ctl == "") for _i, ctl, path in own):
        pytest.skip("this process has a cgroup of its own; auto uses it")
    collector = CpuCollector("coro-procpool", "auto")
    assert collector.cgroup_file is None
    assert cpu_counter(collector) <= tree_cpu_seconds() + 0.05


def test_cpu_source_cgroup_reads_the_accounting_file_or_refuses() -> None:
    # FIB_CPU_SOURCE=cgroup (what the image sets) takes the cgroup's file even
    # when /proc/self/cgroup shows "/", and refuses to start without one.
    visible = any(
        Path(name).exists()
        for name in (
            "/sys/fs/cgroup/cpu.stat",
            "/sys/fs/cgroup/cpuacct/cpuacct.usage",
            "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage",
        )
    )
    if not visible:
        with pytest.raises(RuntimeError, match="cgroup"):
            CpuCollector("coro-procpool", "cgroup")
        return
    collector = CpuCollector("coro-procpool", "cgroup")
    assert collector.cgroup_file is not None
    first = cpu_counter(collector)
    assert first > 0
    assert cpu_counter(collector) >= first


def memory_gauge(collector: MemoryCollector) -> float:
    [family] = collector.collect()
    [s] = family.samples
    assert (s.name, family.type) == ("fib_resident_memory_bytes", "gauge")
    assert s.labels == {"variant": "coro-procpool"}
    return float(s.value)


def test_resident_memory_is_vmrss_in_bytes() -> None:
    status = "Name:\tpython\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n"
    assert parse_resident_bytes(status) == 12345 * 1024
    assert parse_resident_bytes("Name:\tzombie\nState:\tZ (zombie)\n") is None


# A child that holds 64 MiB resident (written, so its pages are its own) until killed.
HOLD_64_MIB = (
    "import sys, time\nheld = bytearray(64 << 20)\nprint('held', flush=True)\ntime.sleep(30)\n"
)
HOLD_IN_GRANDCHILD = (
    f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {HOLD_64_MIB!r}])\n"
)


@pytest.mark.parametrize("program", [HOLD_64_MIB, HOLD_IN_GRANDCHILD], ids=["child", "grandchild"])
def test_memory_counts_each_live_descendant_once(program: str) -> None:
    collector = MemoryCollector("coro-procpool")
    alone = memory_gauge(collector)
    own = resident_bytes(os.getpid())
    assert own is not None
    assert alone >= own, "this process at least"
    with subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "held\n"
            with_child = memory_gauge(collector)
            tree = [os.getpid(), *descendants(os.getpid())]
            measured = sum(resident_bytes(pid) or 0 for pid in tree)
        finally:
            os.killpg(child.pid, signal.SIGKILL)  # the grandchild too
            child.wait()
    assert with_child - alone >= 64 << 20, "the descendant's 64 MiB are in"
    # each process once: the figure is the sum of the tree's VmRSS, not more
    assert with_child == pytest.approx(measured, rel=0.05)
    assert memory_gauge(collector) < with_child - (60 << 20), "gone: no longer counted"


def test_tree_memory_of_a_process_that_is_gone_is_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert tree_resident_bytes(child.pid) is None


# -- several processes, one /metrics (prefork) --------------------------------------


def test_merged_families_sum_each_series_and_keep_their_order() -> None:
    workers = [Metrics("prefork", gil_probe=False, whole_variant=False) for _ in range(2)]
    for index, worker in enumerate(workers):
        tally = worker.connection_opened()
        for n in (10, 20)[: index + 1]:  # the second worker alone has n=20
            tally.answered(n, None, 0.001 * (index + 1))
        worker.connection_closed(tally)
    merged = merge_families([list(worker.registry.collect()) for worker in workers])
    requests = {
        (s.labels["n"], s.labels["outcome"]): s.value for s in merged["fib_requests"].samples
    }
    assert requests == {("10", "ok"): 2, ("20", "ok"): 1}
    durations = merged["fib_request_duration_seconds"].samples
    assert [s.labels["n"] for s in durations if s.name.endswith("_count")] == ["10", "20"]
    [total] = [s.value for s in durations if s.name.endswith("_sum") and s.labels["n"] == "10"]
    assert total == pytest.approx(0.003)
    assert merged["fib_connections"].samples[0].value == 2
    assert "fib_info" not in merged, "a worker leaves what describes the variant to its server"
    assert "fib_resident_memory_bytes" not in merged, "the server's tree holds the workers"


def test_a_registry_speaks_for_its_reporters_in_place_of_its_own_series() -> None:
    server = Metrics("prefork", gil_probe=False)
    worker = Metrics("prefork", gil_probe=False, whole_variant=False)
    tally = worker.connection_opened()
    tally.answered(5, None, 0.001)
    server.registry.reporters.append(lambda: [list(worker.registry.collect())] * 3)
    text = generate_latest(server.registry).decode()
    assert 'fib_requests_total{n="5",outcome="ok",variant="prefork"} 3.0' in text
    assert 'fib_connections_active{variant="prefork"} 3.0' in text
    assert text.count("# TYPE fib_connections_active gauge") == 1, "the server's own is replaced"
    assert 'fib_info{gil="enabled"' in text  # the server's, as no worker reports it
    # the server's own tree memory, once: no worker adds its share to it
    assert text.count("fib_resident_memory_bytes{") == 1
