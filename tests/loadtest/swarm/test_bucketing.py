# tests/loadtest/swarm/test_bucketing.py
#
# Locust's response-time buckets as the lab sets them: bucket_ms with known
# answers (two significant digits below 10 ms, Locust's own keys from 10 ms
# up) and its worst-case key count, in this process; then, in a process of
# its own (importing Locust monkey-patches it with gevent), install() in a
# real Locust: the keys Locust keeps, two workers' reports through Locust's
# wire format (msgpack) summed on a master, the master's median and CSV
# percentiles, the exporter's and the recorder's unrounded times, and a
# warning where Locust lacks the hook.

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from loadtest.swarm.bucketing import LOCUST_NEEDED, bucket_ms
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("milliseconds", "bucket"),
    [
        (0.0, 0.0),
        (0.0042, 0.004),  # below 10 µs: the 1 µs grid, no finer
        (0.0213, 0.021),
        (0.0913, 0.091),  # fib(1) on loopback: 0 in Locust's own buckets
        (0.0999, 0.1),
        (0.372, 0.37),
        (5.37, 5.4),  # Locust: 5
        (9.96, 10),
        # Locust's own keys (its docstring's examples among them)
        (10.4, 10),
        (147, 150),
        (150, 150),
        (3432, 3400),
        (12345, 12000),
        (58760, 59000),
        (123456, 123000),
    ],
)
def test_known_answers(milliseconds: float, bucket: float) -> None:
    assert bucket_ms(milliseconds) == bucket  # the same double as the literal: "0.091" in CSV


def geometric(start: float, stop: float, ratio: float) -> list[float]:
    """start, start * ratio, ... below stop."""
    count = math.ceil(math.log(stop / start) / math.log(ratio))
    return [start * ratio**i for i in range(count)]


def test_two_significant_digits_from_10_microseconds_to_10_ms() -> None:
    for milliseconds in geometric(0.01, 10.0, 1.0007):
        bucket = bucket_ms(milliseconds)
        # within half a unit of the second digit, and a key of two digits
        assert abs(bucket - milliseconds) <= 0.05 * milliseconds + 1e-12, milliseconds
        assert bucket == float(f"{bucket:.2g}"), (milliseconds, bucket)


def test_worst_case_key_count() -> None:
    """Every key the rule can make up to 10 s (0.1 µs steps below 10 ms, so
    each bucket is hit): 280 below 10 ms, 551 in all; then one per second."""
    below_10ms = {bucket_ms(step / 10_000) for step in range(100_000)}
    assert len({key for key in below_10ms if key < 10}) == 280
    up_to_10s = below_10ms | {bucket_ms(ms) for ms in geometric(10.0, 10_000.0, 1.0001)}
    assert len(up_to_10s) == 551  # and Locust's own rule: 281
    minute = {bucket_ms(ms) for ms in geometric(10_000.0, 60_000.0, 1.00001)}
    assert len(minute) == 51  # 10 s .. 60 s: whole seconds, as Locust has them


# Run apart: importing Locust monkey-patches the process (gevent).
IN_LOCUST = """
import csv, io, json, logging, types
from locust import stats
from locust.env import Environment
from locust.event import Events
from locust.rpc.protocol import Message
from loadtest.swarm import bucketing
from loadtest.swarm.exporter import LatencyTable
from loadtest.swarm.recording import Recorder

locusts_own = stats.bucket_response_time
bucketing.install()
bucketing.install()  # idempotent
sweep = [10.0 * 1.0003 ** i for i in range(40_000)]  # 10 ms .. 1,600 s
figures = {
    "installed": stats.bucket_response_time is bucketing.bucket_ms,
    "locusts_own_fib1": locusts_own(0.0913),
    "differ_from_10ms": sum(locusts_own(t) != bucketing.bucket_ms(t) for t in sweep),
}

def worker_report(times):
    '''One worker's stats report, as the bytes it sends the master.'''
    events, worker_stats = Events(), stats.RequestStats(use_response_times_cache=False)
    stats.setup_distributed_stats_event_listeners(events, worker_stats)
    for t in times:
        worker_stats.log_request("fib", "fib(1)", t, 1)
    data = {}
    events.report_to_master.fire(client_id="worker", data=data)
    return Message("stats", data, "worker").serialize()

events, master_stats = Events(), stats.RequestStats()
stats.setup_distributed_stats_event_listeners(events, master_stats)
reports = [worker_report([0.0913, 0.0911, 0.0421, 5.37, 150.2]), worker_report([0.0908, 12345.0])]
for wire in reports:
    message = Message.unserialize(wire)
    events.worker_report.fire(client_id=message.node_id, data=message.data)
entry = master_stats.get("fib(1)", "fib")
figures["master_keys"] = sorted(
    [key, type(key).__name__, count] for key, count in entry.response_times.items()
)
figures["master_total_keys"] = sorted(master_stats.total.response_times.items())
figures["median"] = entry.median_response_time
table = io.StringIO()
writer = stats.StatsCSV(types.SimpleNamespace(stats=master_stats), stats.PERCENTILES_TO_REPORT)
writer.requests_csv(csv.writer(table))
figures["csv"] = table.getvalue()

# One request event in a real Environment: Locust keeps the bucket, the
# exporter and the recorder the time itself.
environment = Environment(events=Events())
environment.create_local_runner()
exported, recorder = LatencyTable(), Recorder(environment, long_user="LongUser")
environment.events.request.add_listener(exported.on_request)
environment.events.request.add_listener(recorder.on_request)
environment.events.request.fire(
    request_type="fib", name="fib(1)", response_time=0.0913, response_length=1,
    exception=None, context={"variant": "threads", "role": "short"},
)
figures["locust_keys"] = list(environment.stats.get("fib(1)", "fib").response_times)
figures["exported_seconds"] = exported.series[("threads", "fib(1)")].seconds_sum
figures["recorded_seconds"] = list(recorder.streams["short"].latencies)

# A Locust without the hook: a warning, and Locust's own rounding left alone.
class Warnings(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

warnings = Warnings()
logging.getLogger("fiblab").addHandler(warnings)
del stats.bucket_response_time
bucketing.install()
figures["older_locust"] = [warnings.messages, hasattr(stats, "bucket_response_time")]
print(json.dumps(figures))
"""


@pytest.fixture(scope="module")
def in_locust() -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", IN_LOCUST],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    figures: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return figures


def test_install_replaces_locusts_rounding_and_keeps_its_keys_from_10ms(
    in_locust: dict[str, Any],
) -> None:
    assert in_locust["installed"]
    assert in_locust["locusts_own_fib1"] == 0  # the issue: fib(1) in bucket 0
    assert in_locust["differ_from_10ms"] == 0


def test_workers_keys_survive_the_wire_and_the_masters_sum(in_locust: dict[str, Any]) -> None:
    # 0.0913, 0.0911 (worker 1) and 0.0908 (worker 2) share one key on the master
    expected = [[0.042, "float", 1], [0.091, "float", 3], [5.4, "float", 1], [150, "int", 1],
                [12000, "int", 1]]  # fmt: skip
    assert in_locust["master_keys"] == expected
    assert in_locust["master_total_keys"] == [[key, count] for key, _type, count in expected]
    assert in_locust["median"] == 0.091


def test_csv_percentiles_keep_the_fractions(in_locust: dict[str, Any]) -> None:
    row = next(r for r in csv.DictReader(io.StringIO(in_locust["csv"])) if r["Name"] == "fib(1)")
    assert row["Median Response Time"] == "0.091"
    # 7 requests: 3 at 0.091 and one at 0.042, then 5.4, 150, 12000
    assert [row[p] for p in ("50%", "66%", "75%", "90%", "100%")] == [
        "0.091", "5.4", "150", "12000", "12000",
    ]  # fmt: skip


def test_an_older_locust_gets_a_warning_naming_the_version_needed(
    in_locust: dict[str, Any],
) -> None:
    messages, replaced = in_locust["older_locust"]
    assert not replaced
    assert len(messages) == 1
    assert f"Locust >= {LOCUST_NEEDED} keeps them" in messages[0]


def test_the_exporter_and_the_recorder_keep_the_unrounded_time(
    in_locust: dict[str, Any],
) -> None:
    assert in_locust["locust_keys"] == [0.091]
    assert in_locust["exported_seconds"] == 0.0913 / 1000.0
    assert in_locust["recorded_seconds"] == [0.0913 / 1000.0]
