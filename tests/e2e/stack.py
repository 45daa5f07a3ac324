# tests/e2e/stack.py
#
# The real compose stack for end-to-end tests: built and started with its own
# project name and with no fixed host ports (an override resets them), so a
# lab the user already runs on 25001.., 9090, 8089 is left alone. Both reach
# `docker compose` and `make` through Compose's own environment variables
# (COMPOSE_PROJECT_NAME, COMPOSE_FILE), so the stack is started by the very
# target users type: `make up-no-grafana` (Grafana's image cannot be had on
# the build machines).

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from services import VARIANTS

from ..conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "fiblab-e2e"
WITHOUT = ("grafana",)
# The Prometheus the stack runs (compose's FIB_PROMETHEUS_VERSION). Compose's
# default is the 3.13 LTS image, which the build machine cannot pull: it has
# Debian's 3.5.3 as prom/prometheus:v3.5.3 (docs/design.md §8), so the tests
# run that one unless FIB_PROMETHEUS_VERSION names another 3.x image.
TESTED_PROMETHEUS_VERSION = "v3.5.3"  # the README and docs/design.md §8 name it
PROMETHEUS_VERSION = os.environ.get("FIB_PROMETHEUS_VERSION") or TESTED_PROMETHEUS_VERSION
PROMETHEUS_IMAGE = f"prom/prometheus:{PROMETHEUS_VERSION}"


def require_docker() -> None:
    """Fail in CI (a skipped e2e hides a broken lab), skip loudly elsewhere."""
    problem = docker_problem()
    if problem is not None:
        unavailable("a working Docker engine with Compose v2", problem)


def docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH (install Docker Engine and the Compose v2 plugin)"
    for command in (["docker", "info"], ["docker", "compose", "version"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[:300]}"
    return None


@dataclass
class Stack:
    override: Path
    # This project's images before the session built it (the earlier build's,
    # untagged now when the sources changed since): ID -> name.
    earlier_images: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        files = os.pathsep.join([str(ROOT / "docker-compose.yml"), str(self.override)])
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "COMPOSE_FILE": files,
            "COMPOSE_PATH_SEPARATOR": os.pathsep,
            "FIB_PROMETHEUS_VERSION": PROMETHEUS_VERSION,
        }

    def run(
        self, command: list[str], timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command, cwd=ROOT, env=self.environment(), capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if check and result.returncode:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", "compose", *args], timeout, check)

    def make(self, target: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        """A Make target that runs `docker compose`, against this stack."""
        return self.run(["make", "--no-print-directory", target], timeout, check=True)

    def services(self) -> list[str]:
        """What `make up-no-grafana` starts: every service of the default profile but Grafana."""
        names = self.compose("config", "--services").stdout.split()
        return [name for name in names if name not in WITHOUT]

    def images(self) -> dict[str, str]:
        """Every image built for this project (compose labels them), ID -> name."""
        listed = subprocess.run(
            ["docker", "images", "--filter", f"label=com.docker.compose.project={PROJECT}",
             "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return dict(line.split(" ", 1) for line in listed.splitlines())

    def built_images(self) -> dict[str, str]:
        """This project's images but an earlier build's that this session's
        untagged (the sources changed since), ID -> name."""
        return {
            image: name
            for image, name in self.images().items()
            if image not in self.earlier_images or name != "<none>:<none>"
        }

    def forget_dangling_images(self) -> None:
        """Remove this project's untagged images, left by earlier builds."""
        subprocess.run(
            ["docker", "image", "prune", "-f", "--filter",
             f"label=com.docker.compose.project={PROJECT}"],
            capture_output=True, check=True,
        )  # fmt: skip

    def listed(self) -> list[dict[str, Any]]:
        """`docker compose ps -a` of every container, in one call (one per
        service would take a third of a second each)."""
        out = self.compose("ps", "-a", "--format", "json").stdout.strip()
        if out.startswith("["):  # Compose before 2.21 wrote one array
            found: list[dict[str, Any]] = json.loads(out)
            return found
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def containers(self) -> dict[str, str]:
        """Each started service's container ID."""
        ids = {c["Service"]: c["ID"] for c in self.listed()}
        return {service: ids[service] for service in self.services()}

    def container(self, service: str) -> str:
        return self.compose("ps", "-a", "-q", service).stdout.split()[0]

    def host_port(self, service: str, port: int) -> int:
        out = self.compose("port", service, str(port)).stdout.strip()
        return int(out.rsplit(":", 1)[1])

    def inspect(self, service: str) -> dict[str, Any]:
        out = subprocess.run(
            ["docker", "inspect", self.container(service)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        found: dict[str, Any] = json.loads(out)[0]
        return found

    def container_state(self, service: str) -> dict[str, Any]:
        state: dict[str, Any] = self.inspect(service)["State"]
        return state

    def wait_healthy(self, services: Sequence[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting and time.monotonic() < deadline:
            health = self.healths()
            waiting = [name for name in waiting if health.get(name) != "healthy"]
            if waiting:
                time.sleep(0.5)
        assert not waiting, f"not healthy after {timeout} s: {waiting}\n" + self.logs(waiting)

    def healths(self) -> dict[str, str]:
        """Every service's health() from one `docker compose ps`."""
        return {
            c["Service"]: c["Health"] or ("healthy" if c["State"] == "running" else c["State"])
            for c in self.listed()
        }

    def health(self, service: str) -> str:
        """The healthcheck's verdict; "healthy" for a running service without one."""
        state = self.container_state(service)
        if "Health" in state:
            return str(state["Health"]["Status"])
        return "healthy" if state["Running"] else str(state["Status"])

    def logs(self, services: Sequence[str]) -> str:
        return self.compose("logs", "--no-color", "--tail", "30", *services, check=False).stdout


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def by_variant(self, expr: str) -> dict[str, float]:
        return {r["metric"].get("variant", ""): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(self, expr: str, expected: set[str], timeout: float = 60) -> dict[str, float]:
        """Wait until `expr` has a sample for every expected variant."""
        deadline = time.monotonic() + timeout
        found: dict[str, float] = {}
        while time.monotonic() < deadline:
            found = self.by_variant(expr)
            if expected <= found.keys():
                return found
            time.sleep(0.25)
        raise AssertionError(f"{expr}: missing {sorted(expected - found.keys())}; got {found}")


OVERRIDE = """\
# Written by tests/e2e/stack.py: no fixed host ports in tests.
services:
{variants}
  prometheus:
    ports: !override ["127.0.0.1::9090"]
  locust-master:
    ports: !override ["127.0.0.1::8089"]
"""


def write_override(directory: Path) -> Path:
    variants = "".join(f"  {name}:\n    ports: !reset []\n" for name in VARIANTS)
    path = directory / "e2e-override.yml"
    path.write_text(OVERRIDE.format(variants=variants))
    return path
