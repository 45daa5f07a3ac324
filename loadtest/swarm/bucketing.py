# loadtest/swarm/bucketing.py
#
# How Locust's own statistics keep response times (docs/design.md §5): its
# web UI's table and charts, `--csv`, `--json` and a distributed master's
# sums all read a histogram per request name, {time in ms: count}, whose keys
# Locust rounds with locust.stats.bucket_response_time. Locust's rule rounds
# everything below 100 ms to a whole millisecond, so fib(1), ~0.03-0.1 ms on
# loopback, lands in bucket 0 and its median reads 0.
#
# bucket_ms keeps two significant digits below 10 ms, on a grid no finer than
# 1 µs, and Locust's own rule from 10 ms up:
#
#   below 0.1 ms   1 µs grid     0.0913 -> 0.091    100 keys (0 .. 0.099)
#   0.1 to 1 ms    10 µs grid    0.372  -> 0.37      90 keys
#   1 to 10 ms     0.1 ms grid   5.37   -> 5.4       90 keys
#   10 ms up       Locust's      150 -> 150, 12345 -> 12000
#
# So a request name holds at most 280 keys below 10 ms (Locust: 10), and
# Locust's own 270 from 10 ms to 10 s, plus its one per whole second beyond.
#
# install() puts it in Locust's place (the hook Locust documents for custom
# bucketing, Locust 2.43.4 and later) and makes the CSV writer keep the
# fractions (Locust's writes int() of each percentile). Every Locust process
# that loads loadtest/locustfile.py runs it at import: standalone, master,
# workers and --processes children (forked after the import). The lab's own
# recording (recording.py) and the exporter's histogram (exporter.py) take
# each request's unrounded time from the request event, so this changes
# neither. Nothing here imports Locust until install() runs: importing Locust
# monkey-patches the process with gevent.

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from locust.stats import StatsCSV, StatsEntry

LOCUST_NEEDED = "2.43.4"  # the first Locust that looks bucket_response_time up at each request

log = logging.getLogger("fiblab")


def bucket_ms(response_time: float) -> float:
    """The histogram key of a response time in ms (see the table above)."""
    if response_time < 0.1:
        return round(response_time, 3)
    if response_time < 1.0:
        return round(response_time, 2)
    if response_time < 10.0:
        return round(response_time, 1)
    # Locust's own rule (locust.stats.bucket_response_time), two significant
    # digits up to 100 s, then whole seconds: the same keys as Locust's.
    if response_time < 100.0:
        return round(response_time)
    if response_time < 1000.0:
        return int(round(response_time, -1))
    if response_time < 10000.0:
        return int(round(response_time, -2))
    return int(round(response_time, -3))


def csv_percentile_fields(
    self: StatsCSV, stats_entry: StatsEntry, use_current: bool = False
) -> Sequence[str] | Sequence[float]:
    """Locust's StatsCSV._percentile_fields without its int(): the percentile
    columns of --csv (and of the web UI's CSV download) keep 0.091."""
    if not stats_entry.num_requests:
        return self.percentiles_na
    if use_current and stats_entry.use_response_times_cache:
        return [
            stats_entry.get_current_response_time_percentile(percentile) or 0
            for percentile in self.percentiles_to_report
        ]
    return [
        stats_entry.get_response_time_percentile(percentile) or 0
        for percentile in self.percentiles_to_report
    ]


def install() -> None:
    """Make this process's Locust statistics use bucket_ms (idempotent)."""
    import locust
    from locust import stats

    # An older Locust rounds inside StatsEntry: replacing nothing would
    # silently keep the zeros. The load itself does not need the buckets, so
    # say so and go on.
    if not hasattr(stats, "bucket_response_time") or not hasattr(
        stats.StatsCSV, "_percentile_fields"
    ):
        log.warning(
            "Locust %s rounds times below 1 ms to 0 in its own table and CSV; "
            "Locust >= %s keeps them (docs/design.md §5)",
            locust.__version__,
            LOCUST_NEEDED,
        )
        return
    # Locust's hint says the key is an int; its stats, JSON and CSV take floats.
    stats.bucket_response_time = bucket_ms  # type: ignore[assignment]
    stats.StatsCSV._percentile_fields = csv_percentile_fields  # type: ignore[assignment,method-assign]
