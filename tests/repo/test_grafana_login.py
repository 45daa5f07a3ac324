# tests/repo/test_grafana_login.py
#
# Grafana's admin password (docs/design.md §7): never admin/admin. Compose
# takes GF_SECURITY_ADMIN_PASSWORD from the environment or .env, else
# grafana/admin-password.sh generates one at the first start and keeps it in
# the data volume; Kubernetes does the same with the Secret grafana-admin;
# the README says how to log in both ways. Grafana's image cannot be had
# here, so the script runs under this machine's sh, in front of a stand-in
# for the image's /run.sh.

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, unavailable

SCRIPT = ROOT / "grafana" / "admin-password.sh"
IN_CONTAINER = "/etc/fiblab/admin-password.sh"
# Where the script keeps a generated password: the image's GF_PATHS_DATA.
KEPT = "/var/lib/grafana/admin-password"
VARIABLE = "GF_SECURITY_ADMIN_PASSWORD"
SECRET = {"name": "grafana-admin", "key": "password", "optional": True}

# Runs the script for a data directory, with environment variables: what
# Grafana would get (the password, its arguments).
Start = Callable[..., tuple[str, str]]


def compose_grafana() -> dict[str, Any]:
    """Grafana's service as written (not resolved: `${...}` as it stands)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service: dict[str, Any] = compose["services"]["grafana"]
    return service


def test_compose_takes_the_password_from_the_environment_or_the_script() -> None:
    grafana = compose_grafana()
    assert grafana["environment"][VARIABLE] == f"${{{VARIABLE}:-}}", "unset must still start"
    assert grafana["entrypoint"] == ["sh", IN_CONTAINER]
    assert f"./grafana/admin-password.sh:{IN_CONTAINER}:ro" in grafana["volumes"]
    assert "GF_SECURITY_ADMIN_USER" not in grafana["environment"]


def kubernetes_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """deploy/k8s/overlays/local rendered by kustomize: (kind, name) -> object."""
    kustomize = shutil.which("kustomize")
    if kustomize is None:
        unavailable("kustomize", "run `make kustomize` as root (Debian's kustomize package)")
    overlay = ROOT / "deploy" / "k8s" / "overlays" / "local"
    rendered = subprocess.run(
        [kustomize, "build", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, f"kustomize build {overlay}: {rendered.stderr}"
    documents = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def test_kubernetes_takes_it_from_an_optional_secret_and_runs_the_same_script() -> None:
    found = kubernetes_objects()
    pod = found["Deployment", "grafana"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == compose_grafana()["entrypoint"]
    (password,) = [item for item in container["env"] if item["name"] == VARIABLE]
    assert password == {"name": VARIABLE, "valueFrom": {"secretKeyRef": SECRET}}
    assert ("Secret", SECRET["name"]) not in found, "no password in the manifests"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    script = volumes[mounts[str(Path(IN_CONTAINER).parent)]]["configMap"]["name"]
    assert found["ConfigMap", script]["data"] == {SCRIPT.name: SCRIPT.read_text()}


def test_the_readme_and_env_example_say_how_to_log_in() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in (
        f"docker compose exec grafana cat {KEPT}",
        f"kubectl -n fiblab exec deploy/grafana -- cat {KEPT}",
        f"kubectl -n fiblab create secret generic {SECRET['name']}"
        f" --from-file={SECRET['key']}=/dev/stdin",
        "cp .env.example .env",
    ):
        assert command in readme, f"README.md does not say `{command}`"
    example = (ROOT / ".env.example").read_text()
    assert re.search(rf"^{VARIABLE}=$", example, re.MULTILINE), f".env.example: {VARIABLE}="
    assert f"docker compose exec grafana cat {KEPT}" in example
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().split(), f"{ignore} leaves .env in"


# -- the script, run ----------------------------------------------------------


@pytest.fixture
def said() -> list[str]:
    """What each start of the script told the log (its stderr), in order."""
    return []


@pytest.fixture
def start(tmp_path: Path, said: list[str]) -> Start:
    """Runs the script as Grafana's image would, in front of a /run.sh that
    prints what Grafana would get; returns (password, arguments)."""
    run = tmp_path / "run.sh"
    run.write_text('#!/bin/sh\nprintf "%s\\n" "$GF_SECURITY_ADMIN_PASSWORD" "$*"\n')
    run.chmod(0o755)
    text = SCRIPT.read_text()
    assert text.count('exec /run.sh "$@"') == 1, "the script hands over to the image's /run.sh"
    script = tmp_path / "admin-password.sh"
    script.write_text(text.replace('exec /run.sh "$@"', f'exec {run} "$@"'))

    def starting(data: Path, **environment: str) -> tuple[str, str]:
        if shutil.which("sh") is None:
            unavailable("sh", "not on PATH")
        data.mkdir(exist_ok=True)
        env = {"PATH": os.environ["PATH"], "GF_PATHS_DATA": str(data), **environment}
        result = subprocess.run(
            ["sh", str(script), "cfg:server.http_port=3000"], env=env, capture_output=True,
            text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        password, arguments = result.stdout.splitlines()
        said.append(result.stderr)
        return password, arguments

    return starting


def test_unset_it_generates_one_keeps_it_and_hands_over(start: Start, tmp_path: Path) -> None:
    password, arguments = start(tmp_path / "data")
    assert arguments == "cfg:server.http_port=3000", "Grafana's arguments pass through"
    assert len(password) >= 24, password  # 144 random bits in base64
    kept = tmp_path / "data" / "admin-password"
    assert kept.read_text().strip() == password
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600, "only Grafana's user reads it"
    assert start(tmp_path / "data") == (password, arguments), "the same after a restart"
    assert start(tmp_path / "other")[0] != password, "another volume, another password"


def test_set_it_is_used_and_nothing_is_kept(start: Start, tmp_path: Path) -> None:
    assert start(tmp_path / "data", **{VARIABLE: "chosen in .env"})[0] == "chosen in .env"
    assert not (tmp_path / "data" / "admin-password").exists()
    assert start(tmp_path / "data", **{VARIABLE: ""})[0] != "", "empty means unset (compose's :-)"


def test_a_volume_whose_grafana_exists_keeps_its_password(
    start: Start, said: list[str], tmp_path: Path
) -> None:
    # Grafana takes the password only when it creates its admin user (a new
    # grafana.db): on an older volume nothing is generated or announced.
    data = tmp_path / "data"
    data.mkdir()
    (data / "grafana.db").write_bytes(b"")
    assert start(data)[0] == "", "no password made up for an admin that exists"
    assert not (data / "admin-password").exists()
    assert "keeps the one it was created with" in said[-1]
    assert start(data, **{VARIABLE: "too late"})[0] == "too late"
    assert "applies to a fresh grafana-data volume" in said[-1]
