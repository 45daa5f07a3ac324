# loadtest/compare/bottleneck.py
#
# Whose figure is a run's (docs/design.md §6, Bottleneck): `loadgen` when the
# load generator, not the server, set it; such figures are marked † and
# never judged as the server's.

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A run is the load generator's, not the server's, when the generator got
# less than this share of the rate it asked for ...
ACHIEVED_SHARE = 0.9
# ... or when it used a whole core (gevent runs on one) while a server that
# computes under one GIL had CPU to spare.
LOADGEN_SATURATED_PERCENT = 90.0
SERVER_SPARE_CORES = 0.8
# ... or when it spent this many times the server's CPU on each request.
CLIENT_SHARE_FACTOR = 1.5


def bottleneck(run: Mapping[str, Any]) -> str:
    """`loadgen` when the load generator, not the server, set the figure."""
    asked = run.get("asked_rps")
    achieved = run.get("achieved_rps") or 0.0
    if asked and achieved < ACHIEVED_SHARE * asked:
        return "loadgen"
    loadgen = run.get("loadgen_cpu_percent") or 0.0
    server_cores = run.get("server_cpu_cores")
    if loadgen >= LOADGEN_SATURATED_PERCENT and (
        server_cores is None or server_cores < SERVER_SPARE_CORES
    ):
        return "loadgen"
    # A closed loop is a ping-pong: the side that spends more CPU on each
    # round trip is the one that sets the rate.
    requests, duration = run.get("requests") or 0, run.get("duration_s") or 0.0
    server_per_request = run.get("cpu_seconds_per_request")
    if requests and server_per_request:
        client_per_request = loadgen / 100.0 * duration / requests
        if client_per_request > CLIENT_SHARE_FACTOR * server_per_request:
            return "loadgen"
    return "server"
