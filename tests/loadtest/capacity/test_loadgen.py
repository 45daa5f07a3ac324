# The capacity run's load generator: a real `locust --processes N` master and
# workers, driven through its web API against a real local variant.

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.capacity.loadgen import LocustSwarm, process_tree_cpu
from loadtest.capacity.points import counter_delta, measure
from loadtest.toolbox.servers import Target, local_variant, scrape
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def allowed_cpus(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split()[1]
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


@pytest.fixture(scope="module")
def threads() -> Iterator[Target]:
    with local_variant("threads") as target:
        yield target


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocustSwarm]:
    log = tmp_path_factory.mktemp("locust") / "locust.log"
    with LocustSwarm(2, log=log) as running:
        yield running


def test_the_master_and_its_workers_are_one_process_tree(swarm: LocustSwarm) -> None:
    assert swarm.process is not None
    tree = process_tree_cpu(swarm.process.pid)
    assert len(tree) == 3, f"master and 2 workers, got {tree}"
    assert swarm.stats()["worker_count"] == 2


def test_a_closed_loop_point_counts_what_the_server_counts(
    swarm: LocustSwarm, threads: Target
) -> None:
    point = measure(swarm, threads, kind="sweep", connections=4, warmup=0.5, seconds=2.0)
    assert point["errors"] == 0
    assert point["rps"] > 500, point
    # the clients' count (from the master's exporter, at most 0.5 s behind
    # the workers) and the server's agree over the same window
    assert point["achieved_rps"] == pytest.approx(point["rps"], rel=0.25)
    latency = point["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"] < 1000
    assert point["loadgen_processes"] == 3
    assert 0 < point["loadgen_busiest_cores"] <= point["loadgen_cpu_cores"] <= 2.0
    assert point["server_cpu_cores"] > 0
    assert point["bottleneck"] in ("server", "loadgen")
    # stopped: every user gone, the server holds no connection
    assert swarm.stats()["user_count"] == 0
    assert counter_delta({}, scrape(threads), "fib_connections_active") == 0


def test_an_open_loop_point_keeps_its_rate_and_a_long_client_delays_it(
    swarm: LocustSwarm, threads: Target
) -> None:
    alone = measure(
        swarm, threads, kind="rates", connections=2, rate=400.0, warmup=0.5, seconds=2.0
    )
    assert alone["asked_rps"] == 400.0
    assert alone["achieved_rps"] == pytest.approx(400.0, rel=0.15), alone
    beside_long = measure(
        swarm, threads, kind="rates-convoy", connections=2, rate=400.0, long_n=27,
        warmup=0.5, seconds=2.0,
    )  # fmt: skip
    assert beside_long["long_replies"] > 0
    # the convoy: requests wait for the GIL behind fib(27), and the open loop
    # counts that wait from each intended send time
    assert beside_long["latency_ms"]["p99"] > 2 * alone["latency_ms"]["p99"], (alone, beside_long)


def test_the_workers_send_their_latencies_every_half_second(
    swarm: LocustSwarm, threads: Target
) -> None:
    swarm.start(threads, 2, rate=200.0)
    try:
        seen = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            seen.append(counter_delta({}, swarm.scrape(), "locust_requests_total"))
            time.sleep(0.1)
    finally:
        swarm.stop()
    # Locust's own reports come every 3 s: alone they would change the count
    # once or twice in 3 s
    changes = sum(1 for before, after in itertools.pairwise(seen) if after != before)
    assert changes >= 4, seen


def test_pinned_workers_run_on_their_cpus_only(threads: Target) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning apart needs 2 CPUs")
    with LocustSwarm(1, cpus={0}) as pinned:
        assert pinned.process is not None
        for pid in process_tree_cpu(pinned.process.pid):
            assert allowed_cpus(pid) == "0"


def cmdline(pid: int) -> bytes:
    """A process's command line; empty once it is gone (other tests' short
    lived processes are descendants of this one too)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_pinned_variant_and_its_pool_workers_run_on_their_cpus_only() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("pinning apart needs 2 CPUs")
    with local_variant("threads-procpool", cpus={1}) as target:
        assert scrape(target), "answers /metrics"
        # the server, started by this process, and its pool workers (its children)
        (server,) = [
            pid for pid in process_tree_cpu(os.getpid())
            if b"services\x00threads-procpool" in cmdline(pid)
        ]  # fmt: skip
        # the pool's workers start after the server answers: wait for them
        wait_for(lambda: len(process_tree_cpu(server)) >= 3, 10, "2 pool workers")
        tree = process_tree_cpu(server)
        assert len(tree) >= 3, f"the server and its 2 pool workers: {tree}"
        for pid in tree:
            assert allowed_cpus(pid) == "1"
