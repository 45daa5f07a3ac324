# tests/e2e/stack.py
#
# The real compose stack for end-to-end tests: built and started with its own
# project name and with no fixed host ports (an override resets them), so a
# lab the user already runs on 25001.., 9090, 8089 is left alone. Grafana's
# image cannot be had on the build machines: every other service is started.

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from services import VARIANTS

from ..conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "fiblab-e2e"
WITHOUT = ("grafana",)


def require_docker() -> None:
    """Fail in CI (a skipped e2e hides a broken lab), skip loudly elsewhere."""
    problem = docker_problem()
    if problem is not None:
        unavailable("a working Docker engine with Compose v2", problem)


def docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH (run: bash ../shared/sandbox/docker-up.sh)"
    for command in (["docker", "info"], ["docker", "compose", "version"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode:
            return f"`{' '.join(command)}` failed: {result.stderr.strip()[:300]}"
    return None


@dataclass
class Stack:
    override: Path

    def compose(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "-p", PROJECT, "-f", "docker-compose.yml"]
        command += ["-f", str(self.override), *args]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def services(self) -> list[str]:
        names = self.compose("config", "--services").stdout.split()
        return [name for name in names if name not in WITHOUT]

    def host_port(self, service: str, port: int) -> int:
        out = self.compose("port", service, str(port)).stdout.strip()
        return int(out.rsplit(":", 1)[1])

    def container_state(self, service: str) -> dict[str, Any]:
        container = self.compose("ps", "-a", "-q", service).stdout.split()[0]
        out = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True
        ).stdout
        state: dict[str, Any] = json.loads(out)[0]["State"]
        return state

    def wait_healthy(self, services: Sequence[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting and time.monotonic() < deadline:
            waiting = [name for name in waiting if self.health(name) != "healthy"]
            if waiting:
                time.sleep(1)
        assert not waiting, f"not healthy after {timeout} s: {waiting}\n" + self.logs(waiting)

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
            time.sleep(1)
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
