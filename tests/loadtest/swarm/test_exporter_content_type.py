# tests/loadtest/swarm/test_exporter_content_type.py
#
# The Locust exporter's /metrics (loadtest/swarm/exporter.py) as Prometheus 3
# scrapes it: a Content-Type it parses, whether it asks as Prometheus 3 does
# or names no format at all (Prometheus 3 fails a scrape without one, and the
# lab sets no fallback_scrape_protocol), and a body in that format.

from __future__ import annotations

import pytest

from loadtest.swarm.exporter import LatencyTable, serve
from tests.repo.prometheus3 import PROMETHEUS_3_ACCEPT, scraped_family_names


@pytest.fixture(scope="module")
def port() -> int:
    """The exporter on a free port of 127.0.0.1 with one request recorded
    (its server is a daemon thread: it ends with the test process)."""
    table = LatencyTable(users=lambda: ("threads", 1))
    table.observe("threads", "fib(1)", 0.00005, ok=True)
    return serve(table, "127.0.0.1", 0)


@pytest.mark.parametrize("accept", [PROMETHEUS_3_ACCEPT, None], ids=["prometheus-3", "none"])
def test_a_scrape_has_a_content_type_prometheus_3_parses(port: int, accept: str | None) -> None:
    names = scraped_family_names(f"http://127.0.0.1:{port}/metrics", accept)
    assert {"locust_requests", "locust_request_duration_seconds", "locust_users"} <= names
