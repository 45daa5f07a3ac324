# tests/loadtest/swarm/test_exporter_content_type.py
#
# The Locust exporter's /metrics (loadtest/swarm/exporter.py) as Prometheus 3
# scrapes it: a Content-Type it parses, whether it asks as Prometheus 3 does
# or names no format at all (Prometheus 3 fails a scrape without one, and the
# lab sets no fallback_scrape_protocol), and a body in that format.

from __future__ import annotations

import pytest
import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

from loadtest.swarm.exporter import LatencyTable, serve
from tests.repo.prometheus3 import PROMETHEUS_3_ACCEPT, scrape_content_type_problem


@pytest.fixture(scope="module")
def port() -> int:
    """The exporter on a free port of 127.0.0.1 with one request recorded
    (its server is a daemon thread: it ends with the test process)."""
    table = LatencyTable(users=lambda: ("threads", 1))
    table.observe("threads", "fib(1)", 0.00005, ok=True)
    return serve(table, "127.0.0.1", 0)


@pytest.mark.parametrize("accept", [PROMETHEUS_3_ACCEPT, None], ids=["prometheus-3", "none"])
def test_a_scrape_has_a_content_type_prometheus_3_parses(port: int, accept: str | None) -> None:
    response = requests.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept}, timeout=5
    )
    assert response.status_code == 200
    content_type = response.headers.get("Content-Type")
    assert scrape_content_type_problem(content_type) is None, content_type
    openmetrics = str(content_type).startswith("application/openmetrics-text")
    assert openmetrics == (accept is not None), content_type  # what Prometheus 3 asks first
    parse = openmetrics_families if openmetrics else text_families
    names = {family.name for family in parse(response.text)}
    assert {"locust_requests", "locust_request_duration_seconds", "locust_users"} <= names
