# tests/e2e/test_compose.py
#
# The lab as users start it: `make up-no-grafana` builds one image per
# Dockerfile and starts every service of docker-compose.yml but grafana
# (whose image cannot be had here), healthy, scraped by the real Prometheus,
# under real Locust load; a second `up` leaves it alone; stopped cleanly; and
# gone without a trace after `down -v` (tests/e2e/conftest.py).
# Tests run in file order against the session's one stack.

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import VARIANTS

from .conftest import LocustLoad
from .stack import PROJECT, PROMETHEUS_IMAGE, ROOT, Prometheus, Stack, require_docker

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
    # The 3.13 LTS line unless FIB_PROMETHEUS_VERSION says otherwise (docs/design.md §8)
    assert services["prometheus"]["image"] == "prom/prometheus:${FIB_PROMETHEUS_VERSION:-v3.13.0}"
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")


def test_each_dockerfile_is_built_by_one_service() -> None:
    """Compose labels an image with the service that builds it: two services
    building one image make two. The services Dockerfile is built once per
    Python (the interpreter pools need 3.14); the others run an image by
    name and never ask a registry for it."""
    services = compose_file()["services"]
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["build"]["dockerfile"], []).append(name)
    assert builders == {
        "services/Dockerfile": ["sync", "threads-interppool"],
        "loadtest/Dockerfile": ["locust-master"],
    }
    interpreters = services["threads-interppool"]
    assert interpreters["build"]["args"]["PYTHON_VERSION"] == "3.14"
    assert interpreters["image"] != services["sync"]["image"], "one image per Python"
    assert services["asyncio-interppool"]["image"] == interpreters["image"]
    for name, service in services.items():
        if service.get("image", "").startswith("fiblab-"):
            assert service.get("pull_policy") == "never", f"{name} may pull {service['image']}"


def test_the_variants_image_takes_its_python_as_a_build_argument() -> None:
    """`PYTHON_VERSION=3.14` builds the same image on CPython 3.14 (the
    interpreter pools need it); the variants run on it and say so."""
    require_docker()
    tag = "fiblab-services:python-3.14-test"
    build = subprocess.run(
        ["docker", "build", "-q", "--build-arg", "PYTHON_VERSION=3.14",
         "-f", "services/Dockerfile", "-t", tag, "."],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    ask = (
        "import socket, subprocess, sys, time, urllib.request\n"
        "server = subprocess.Popen([sys.executable, '-m', 'services', 'threads'],"
        " stdout=subprocess.DEVNULL)\n"
        "time.sleep(2)\n"
        "s = socket.create_connection(('127.0.0.1', 25000)); s.sendall(b'10\\n')\n"
        "print(s.recv(64).decode().strip())\n"
        "text = urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().decode()\n"
        "print([line for line in text.splitlines() if line.startswith('fib_info')][0])\n"
        "server.terminate(); server.wait()\n"
    )
    try:
        run = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", ask],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    answer, info = run.stdout.splitlines()[:2]
    assert answer == "55"
    assert 'python="3.14.' in info, info


def test_prometheus_config_passes_promtool() -> None:
    """promtool of the Prometheus the stack runs (a 3.x: tests/e2e/test_prometheus.py)."""
    require_docker()
    config = ROOT / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/bin/promtool",
         "-v", f"{config}:/prometheus.yml:ro", PROMETHEUS_IMAGE,
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
        time.sleep(0.25)
    assert all(up.get(f"{v}:9100") == 1 for v in VARIANTS), up
    info = prometheus.wait_for("fib_info", set(VARIANTS))
    assert set(info) == set(VARIANTS)


def test_one_image_per_dockerfile(stack: Stack) -> None:
    """One image per Dockerfile and Python (the interpreter pools' 3.14), each
    run by every service of its own; a rebuild of unchanged sources makes no
    new one."""
    images = stack.built_images()
    assert sorted(images.values()) == [
        "fiblab-loadtest:latest",
        "fiblab-services-py3.14:latest",
        "fiblab-services:latest",
    ], images
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
    # The exporter counts what Locust counted (it may also hold the requests
    # of an earlier run of this session: never fewer). Summed over the runs,
    # not per run: a worker reports Locust's counts every 3 s and not at a
    # stop (locust/runners.py), so a run's tail lands in the next run's
    # count (once asyncio's: 44,666 against the exporter's 39,404), while
    # the exporter's share of each report, and its flushes between them,
    # keep every request under its own variant.
    locust_counted = sum(locust_load.requests.values())
    exported = sum(client[variant] for variant in VARIANTS)
    assert exported >= locust_counted, (locust_load.requests, client)


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


def container_processes(stack: Stack, service: str) -> list[str]:
    """The command lines of the container's init and all its descendants."""
    found, waiting = [], [stack.inspect(service)["State"]["Pid"]]
    while waiting:
        pid = waiting.pop()
        proc = Path(f"/proc/{pid}")
        found.append(proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode())
        for task in proc.joinpath("task").iterdir():
            waiting += map(int, task.joinpath("children").read_text().split())
    # Descriptor numbers in a pool worker's command line may differ: not what counts.
    return sorted(re.sub(r"\d+", "N", line.strip()) for line in found)


def test_a_variant_whose_server_dies_is_restarted_with_nothing_left_over(stack: Stack) -> None:
    """The server process killed (a crash, the OOM killer): init exits with
    it, Compose's restart policy starts the container again, and it answers
    with its pool whole; no process of the dead server is left."""
    service = "coro-procpool"
    healthy = container_processes(stack, service)  # init, server, workers, tracker
    before = stack.inspect(service)
    init = before["State"]["Pid"]
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    assert len(children) == 1, f"init should have one child, the server: {children}"
    os.kill(int(children[0]), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while stack.inspect(service)["RestartCount"] == before["RestartCount"]:
        assert time.monotonic() < deadline, "not restarted within 60 s"
        time.sleep(0.2)
    stack.wait_healthy([service])
    ask = "import socket; s = socket.create_connection(('127.0.0.1', 25000)); s.sendall(b'25\\n');"
    ask += "print(s.recv(64).decode().strip())"
    reply = ""
    while reply != "75025":  # its health may still read as before the restart
        assert time.monotonic() < deadline, f"no answer within 60 s: {reply!r}"
        time.sleep(0.5)
        answer = stack.compose("exec", "-T", service, "python", "-c", ask, check=False)
        reply = answer.stdout.strip()
    assert container_processes(stack, service) == healthy


# --- least privilege (docs/design.md §7) ----------------------------------------
# Every service runs with no capabilities, no way to gain privileges, a
# read-only root filesystem (a small tmpfs on /tmp) and a memory and a pids
# limit. The compose file says so (Grafana and the compare service, which do
# not run here, included); the running containers have it; and the lab still
# works under it.

NO_NEW_PRIVILEGES = "no-new-privileges:true"


def resolved_services() -> dict[str, dict[str, Any]]:
    """Every service as Compose resolves it (templates merged, variables set)."""
    out = subprocess.run(
        ["docker", "compose", "--profile", "compare", "config", "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    services: dict[str, dict[str, Any]] = json.loads(out)["services"]
    return services


def test_compose_file_drops_every_privilege() -> None:
    require_docker()
    services = resolved_services()
    assert {"grafana", "compare", "prometheus", "locust-master", "locust-worker"} <= set(services)
    for name, service in services.items():
        assert service.get("cap_drop") == ["ALL"], f"{name}: cap_drop {service.get('cap_drop')}"
        assert service.get("read_only") is True, f"{name}: a writable root filesystem"
        assert NO_NEW_PRIVILEGES in service.get("security_opt", []), name
        assert any(str(t).startswith("/tmp:") for t in service.get("tmpfs", [])), name
        assert int(service.get("mem_limit", 0)) > 0, f"{name}: no memory limit"
        assert int(service.get("pids_limit", 0)) > 0, f"{name}: no pids limit"
    variants = [services[v] for v in VARIANTS]
    assert len({(v["mem_limit"], v["pids_limit"]) for v in variants}) == 1, "identical limits"
    for variant in VARIANTS:
        # A thread per connection: every connection holds a file, so the
        # open-file limit must refuse a connection before the pids limit
        # refuses its thread.
        service = services[variant]
        files = int(service["ulimits"]["nofile"]["hard"])
        assert int(service["pids_limit"]) > files, f"{variant}: pids_limit ≤ nofile {files}"


def hardening_problems(info: dict[str, Any]) -> list[str]:
    """What `docker inspect` shows short of least privilege, for one container."""
    host = info["HostConfig"]
    problems = []
    if "ALL" not in [cap.upper() for cap in host.get("CapDrop") or []]:
        problems.append(f"CapDrop {host.get('CapDrop')}")
    if host.get("CapAdd"):
        problems.append(f"CapAdd {host['CapAdd']}")
    if host.get("Privileged"):
        problems.append("privileged")
    if host.get("ReadonlyRootfs") is not True:
        problems.append("a writable root filesystem")
    if NO_NEW_PRIVILEGES not in (host.get("SecurityOpt") or []):
        problems.append(f"SecurityOpt {host.get('SecurityOpt')}")
    if not host.get("Memory", 0) > 0:
        problems.append("no memory limit")
    if not (host.get("PidsLimit") or 0) > 0:
        problems.append("no pids limit")
    if "/tmp" not in (host.get("Tmpfs") or {}):
        problems.append(f"no tmpfs on /tmp: {host.get('Tmpfs')}")
    if info["Config"].get("User", "") in ("", "0", "root"):
        problems.append("runs as root")
    return problems


def test_every_running_container_is_hardened(stack: Stack) -> None:
    problems = {
        service: found
        for service in stack.services()
        if (found := hardening_problems(stack.inspect(service)))
    }
    assert not problems, problems


# Run in a container of ours: every process in it, as the kernel sees it.
PROCESS_REPORT = """
import errno, json, pathlib
processes = {}
for status in pathlib.Path("/proc").glob("[0-9]*/status"):
    try:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
    except OSError:
        continue
    if fields["Name"].strip().startswith("runc:"):
        continue  # the runtime's own init of an exec being set up (the health check's)
    processes[status.parent.name + " " + fields["Name"].strip()] = {
        key: fields[key].strip() for key in ("CapEff", "CapBnd", "NoNewPrivs", "Uid")
    }
try:
    open("/app/written-at-run-time", "w")
    root = "writable"
except OSError as error:
    root = errno.errorcode[error.errno]
pathlib.Path("/tmp/written-at-run-time").write_text("ok")
print(json.dumps({"processes": processes, "root": root}))
"""


@pytest.mark.parametrize(
    "service", ["threads-procpool", "asyncio-procpool", "locust-master", "locust-worker"]
)
def test_processes_have_no_privileges_and_a_read_only_root(stack: Stack, service: str) -> None:
    """What the kernel enforces, seen from inside: the server, its pool
    workers (spawned after start) and Locust hold no capability, cannot gain
    one, and cannot write outside /tmp."""
    result = stack.compose("exec", "-T", service, "python", "-c", PROCESS_REPORT)
    report = json.loads(result.stdout)
    assert report["root"] == "EROFS", report["root"]
    processes = report["processes"]
    assert len(processes) >= (2 if service.startswith("locust") else 3), processes
    for name, status in processes.items():
        assert int(status["CapEff"], 16) == 0, (name, status)
        assert int(status["CapBnd"], 16) == 0, (name, status)
        assert status["NoNewPrivs"] == "1", (name, status)
        assert status["Uid"].split()[0] != "0", (name, status)


def test_pool_variants_compute_under_the_limits(stack: Stack) -> None:
    """fib(25) in every process-pool variant's workers, whose start method
    (spawn) needs /dev/shm for its semaphores: read-only root, no capability."""
    client = (
        "import socket, sys; s = socket.create_connection((sys.argv[1], 25000), timeout=30);"
        "s.sendall(b'25\\n'); print(s.makefile().readline().strip())"
    )
    for variant in ("threads-procpool", "coro-procpool", "coro-asyncsocket", "asyncio-procpool"):
        reply = stack.compose("exec", "-T", variant, "python", "-c", client, "127.0.0.1")
        assert reply.stdout.strip() == "75025", (variant, reply.stdout, reply.stderr)


def test_compare_service_runs_hardened(stack: Stack) -> None:
    """The comparison runner (Locust in a child process, Matplotlib for the
    charts) writes its report under the read-only root's one writable place."""
    name = f"{PROJECT}-compare-hardening"
    try:  # removed however it ends, even when `run` fails after creating it
        stack.compose(
            "--profile", "compare", "run", "-d", "--name", name, "compare",
            "--variants", "coro", "--scenarios", "short", "--duration", "3", "--repeat", "1",
            "--warmup", "0", "--out", "/tmp/report",
        )  # fmt: skip
        inspected = subprocess.run(
            ["docker", "inspect", name], capture_output=True, text=True, check=True
        ).stdout
        problems = hardening_problems(json.loads(inspected)[0])
        assert not problems, problems
        exit_code = subprocess.run(
            ["docker", "wait", name], capture_output=True, text=True, timeout=240, check=True
        ).stdout.strip()
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stdout
        assert exit_code == "0", logs[-2000:]
        assert "wrote /tmp/report/summary.json" in logs, logs[-2000:]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
