# tests/loadtest/toolbox/test_servers.py
#
# The variants as the runners see them (loadtest/toolbox/servers.py):
# a real local variant started on free ports and sampled while it works, and
# the interpolation of its CPU between scrapes on known numbers.

from __future__ import annotations

import socket
import time

import pytest

from loadtest.toolbox.errors import LabError
from loadtest.toolbox.servers import (
    CPU_METRIC,
    MEMORY_METRIC,
    MIB,
    Sampler,
    Scrape,
    cpu_at,
    cpu_between,
    local_variant,
    long_seconds_on,
    memory_peak_mib,
    metric_total,
    parse_targets,
    server_info,
    wait_until_answering,
)

LABELS = frozenset({("variant", "threads")})


def scrapes_of(points: list[tuple[float, float]]) -> list[Scrape]:
    """Scrapes at monotonic times with the server's cumulative CPU seconds then."""
    return [Scrape(at, {(CPU_METRIC, LABELS): cpu}) for at, cpu in points]


def test_cpu_is_interpolated_between_scrapes():
    # 1 core until t=102, 2 cores after
    scrapes = scrapes_of([(100.0, 50.0), (101.0, 51.0), (102.0, 52.0), (103.0, 54.0)])
    assert cpu_at(scrapes, 101.0) == 51.0
    assert cpu_at(scrapes, 102.5) == pytest.approx(53.0)
    assert cpu_between(scrapes, 100.5, 102.5) == pytest.approx(2.5)
    assert cpu_at(scrapes, 99.0) is None, "before the first scrape: unknown"
    assert cpu_between(scrapes, 102.0, 104.0) is None, "after the last: unknown"
    assert cpu_at(scrapes_of([]), 100.0) is None
    assert cpu_at([Scrape(100.0, {}), Scrape(101.0, {})], 100.5) is None, "no metrics"


def memory_scrapes(points: list[tuple[float, float | None]]) -> list[Scrape]:
    """Scrapes at monotonic times with the server tree's resident MiB then (None: no metric)."""
    return [
        Scrape(at, {} if mib is None else {(MEMORY_METRIC, LABELS): mib * MIB})
        for at, mib in points
    ]


def test_memory_peak_is_the_most_of_any_scrape_in_the_window():
    scrapes = memory_scrapes([(100.0, 40.0), (101.0, 95.25), (102.0, 60.0), (103.0, 50.0)])
    assert memory_peak_mib(scrapes) == 95.2, "MiB, to a tenth"
    # a stage: only the scrapes taken in it (memory before or after it is not its own)
    assert memory_peak_mib(scrapes, 101.5, 103.0) == 60.0
    assert memory_peak_mib(scrapes, 101.0, 101.0) == 95.2, "a scrape on a bound is in"
    # a window no scrape fell in: the scrapes nearest its two ends
    assert memory_peak_mib(scrapes, 102.2, 102.8) == 60.0
    assert memory_peak_mib(scrapes, 103.5, 104.0) == 50.0, "after the last: the last"
    # missing, not zero: no scrape has the metric (an external target without it)
    assert memory_peak_mib(memory_scrapes([(100.0, None), (101.0, None)])) is None
    assert memory_peak_mib([]) is None
    assert memory_peak_mib(memory_scrapes([(100.0, None), (101.0, 12.0)])) == 12.0


@pytest.mark.slow
def test_a_local_variant_is_sampled_while_it_works():
    with local_variant("threads") as target:
        wait_until_answering(target, timeout=30)
        with Sampler(target, period=0.1) as sampler:
            deadline = time.monotonic() + 1.0  # bounded: about a second of fib(20)
            with socket.create_connection((target.host, target.port), timeout=10) as sock:
                while time.monotonic() < deadline:
                    sock.sendall(b"20\n")
                    assert sock.recv(16) == b"6765\n"
        assert long_seconds_on(target, 25) > 0
    scrapes = sampler.scrapes
    assert len(scrapes) >= 5, "the start, the end and every 0.1 s in between"
    totals = [total for one in scrapes if (total := metric_total(one.samples, CPU_METRIC))]
    assert len(totals) == len(scrapes), "every scrape has the server's CPU"
    assert totals == sorted(totals), "cumulative CPU never goes back"
    used = cpu_between(scrapes, scrapes[0].at, scrapes[-1].at)
    assert used is not None
    assert used > 0.3, "a second of fib(20) back to back is mostly CPU"
    assert server_info(scrapes[0].samples).get("gil") in ("enabled", "disabled")
    peak = memory_peak_mib(scrapes)
    assert peak is not None, "the server exports its tree's resident memory"
    assert 5 < peak < 2048, peak


def test_a_bad_target_names_itself():
    with pytest.raises(LabError, match=r"'nosuch=127\.0\.0\.1:1'"):
        parse_targets(["nosuch=127.0.0.1:1"], 9100)
    with pytest.raises(LabError, match=r"'threads=127\.0\.0\.1:http'"):
        parse_targets(["threads=127.0.0.1:http"], 9100)
    targets = parse_targets(["threads=127.0.0.1:25002"], 9100)
    assert targets["threads"].metrics_url == "http://127.0.0.1:9100/metrics"
