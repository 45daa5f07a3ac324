# tests/e2e/test_compose.py
#
# The lab as users start it: `make up-no-grafana` builds one image per
# Dockerfile and starts every service of docker-compose.yml but grafana
# (whose image cannot be had here), healthy, scraped by the real Prometheus,
# under real Locust load; a second `up` leaves it alone; stopped cleanly; and
# gone without a trace after `down -v` (tests/e2e/conftest.py).
# Tests run in file order against the session's one stack.

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import yaml

from services import VARIANTS

from .conftest import LocustLoad
from .stack import PROJECT, ROOT, Prometheus, Stack, require_docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def compose_file() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return spec


def test_compose_file_follows_the_design() -> None:
    require_docker()
    result = subprocess.run(
        ["docker", "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    spec = compose_file()
    assert "version" not in spec, "Compose v2 files have no version key"
    services = spec["services"]
    for index, variant in enumerate(VARIANTS):
        service = services[variant]
        assert service["command"] == [variant]
        assert service["ports"] == [f"127.0.0.1:{25001 + index}:25000"]  # docs/design.md §7
        for key in ("init", "cpus", "healthcheck", "ulimits", "stop_grace_period", "restart"):
            assert key in service, f"{variant}: {key} missing (from the x-variant template)"
    assert len({str(services[v]["cpus"]) for v in VARIANTS}) == 1, "identical CPU limits"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert services["prometheus"]["image"] == "prom/prometheus:v2.53.3"
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")


def test_each_dockerfile_is_built_by_one_service() -> None:
    """Compose labels an image with the service that builds it: two services
    building one Dockerfile make two images. The others run it by name and
    never ask a registry for it."""
    services = compose_file()["services"]
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["build"]["dockerfile"], []).append(name)
    assert builders == {
        "services/Dockerfile": ["sync"],
        "loadtest/Dockerfile": ["locust-master"],
    }
    for name, service in services.items():
        if service.get("image", "").startswith("fiblab-"):
            assert service.get("pull_policy") == "never", f"{name} may pull {service['image']}"


def test_prometheus_config_passes_promtool() -> None:
    require_docker()
    config = ROOT / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/bin/promtool",
         "-v", f"{config}:/prometheus.yml:ro", "prom/prometheus:v2.53.3",
         "check", "config", "/prometheus.yml"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    targets = {
        target
        for job in yaml.safe_load(config.read_text())["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert {f"{variant}:9100" for variant in VARIANTS} <= targets


def test_every_variant_is_scraped(stack: Stack, prometheus: Prometheus) -> None:
    up: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        up = {r["metric"]["instance"]: float(r["value"][1]) for r in prometheus.query("up")}
        if all(up.get(f"{v}:9100") == 1 for v in VARIANTS):
            break
        time.sleep(1)
    assert all(up.get(f"{v}:9100") == 1 for v in VARIANTS), up
    info = prometheus.wait_for("fib_info", set(VARIANTS))
    assert set(info) == set(VARIANTS)


def test_one_image_per_dockerfile(stack: Stack) -> None:
    """Two images, each run by every service of its Dockerfile; a rebuild of
    unchanged sources makes no new one."""
    images = stack.built_images()
    assert sorted(images.values()) == ["fiblab-loadtest:latest", "fiblab-services:latest"], images
    stack.compose("build", "--quiet", timeout=1200)
    assert stack.built_images() == images, "`docker compose build` made new images"
    image_id = {name: image for image, name in images.items()}
    services = compose_file()["services"]
    expected, running = {}, {}
    for service in stack.services():
        if (name := services[service]["image"]) in image_id:
            expected[service] = image_id[name]
            running[service] = stack.inspect(service)["Image"].removeprefix("sha256:")[:12]
    assert set(VARIANTS) | {"locust-master", "locust-worker"} <= expected.keys()
    assert running == expected


def test_a_second_up_recreates_nothing(stack: Stack) -> None:
    containers = stack.containers()
    again = stack.make("up-no-grafana")
    assert stack.containers() == containers, again.stderr
    assert "Recreate" not in again.stderr + again.stdout
    stack.wait_healthy(stack.services())


def test_cpu_is_counted_per_container(stack: Stack, prometheus: Prometheus) -> None:
    cpu = prometheus.wait_for("fib_cpu_seconds_total", set(VARIANTS))
    assert all(seconds > 0 for seconds in cpu.values()), cpu


def test_locust_load_reaches_every_variant(
    stack: Stack, prometheus: Prometheus, locust_load: LocustLoad
) -> None:
    """Locust's master and worker containers loaded every variant through the web
    UI's API; the servers, their CPU and the Locust exporter all show it."""
    window = f"[{int(time.time() - locust_load.start) + 5}s]"
    for variant, count in locust_load.requests.items():
        assert count > 0, f"Locust counted no request to {variant}"
    served = prometheus.by_variant(f"sum by (variant) (increase(fib_requests_total{window}))")
    assert all(served.get(v, 0) > 0 for v in VARIANTS), served
    cpu = prometheus.by_variant(f"sum by (variant) (increase(fib_cpu_seconds_total{window}))")
    assert all(cpu.get(v, 0) > 0 for v in VARIANTS), cpu
    client = prometheus.by_variant("sum by (variant) (locust_requests_total)")
    assert set(VARIANTS) <= client.keys(), client
    up = prometheus.by_variant('up{job="locust"}')
    assert list(up.values()) == [1.0], up
    # The exporter counts what Locust counted (it may also hold the
    # requests of an earlier run of this session: never fewer).
    for variant in VARIANTS:
        assert client[variant] >= locust_load.requests[variant], (variant, client)


def test_stop_during_a_long_request_exits_cleanly(stack: Stack) -> None:
    """`docker compose stop` reaches the server as SIGTERM through init: it
    answers the request it has read and exits 0 well within the grace period."""
    client = (
        "import socket; s = socket.create_connection(('threads-procpool', 25000));"
        "s.sendall(b'32\\n'); print(s.recv(64).decode().strip())"
    )
    reply = subprocess.Popen(
        ["docker", "run", "--rm", "--network", f"{PROJECT}_default", "--entrypoint", "python",
         "fiblab-services:latest", "-c", client],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # the line is read and fib(32) runs in a pool worker
    started = time.monotonic()
    stack.compose("stop", "-t", "15", "threads-procpool")
    took = time.monotonic() - started
    out, err = reply.communicate(timeout=30)
    state = stack.container_state("threads-procpool")
    assert state["ExitCode"] == 0, state
    assert took < 10, f"stop took {took:.1f} s"
    assert out.strip() == "2178309", (out, err)
    stack.compose("start", "threads-procpool")
    stack.wait_healthy(["threads-procpool"])
