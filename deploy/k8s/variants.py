# deploy/k8s/variants.py
#
#   python deploy/k8s/variants.py           rewrite deploy/k8s/base/variants.yaml
#   python deploy/k8s/variants.py --check   exit 1 if it is not what compose gives
#
# The variants' Deployments and Services, derived from docker-compose.yml:
# compose is where a variant is declared (its command, image, environment,
# limits, health check, grace period), and these manifests follow it. Every
# variant is the same pod but for its name, command and image, so they are
# written out here rather than by hand fourteen times. `make k8s` runs it;
# tests/repo/test_k8s.py fails when the file is stale.

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
OUTPUT = ROOT / "deploy" / "k8s" / "base" / "variants.yaml"
VARIANT_IMAGE_PREFIX = "fiblab-services"
FIB_PORT, METRICS_PORT = 25000, 9100
USER_ID = 10001  # the `fib` user of services/Dockerfile
# What a variant asks of the scheduler. Small, so that every variant, the
# Locust pods, Prometheus and Grafana fit on one 2-CPU node; the limits are
# compose's. The cluster overlay raises requests to the limits.
REQUESTS = {"cpu": "100m", "memory": "64Mi"}

HEADER = """\
# deploy/k8s/base/variants.yaml: GENERATED from docker-compose.yml by
# `make k8s` (deploy/k8s/variants.py). Do not edit: change compose and rerun.
#
# One Deployment and one Service per variant, named like its compose service
# so that `<variant>:25000` and `<variant>:9100` mean the same in both
# (FIB_TARGETS=kubernetes, prometheus/prometheus.yml). Readiness is the
# compose health check, a real fib(10) request. The Services publish pods
# that are not ready: like compose, whose health only orders start-up, a
# variant busy with a long request (sync serves one client) must stay
# reachable, not vanish from its Service. No liveness probe, for the same
# reason: compose restarts a variant only when it exits.
"""

_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


class ComposeError(ValueError):
    """docker-compose.yml says something these manifests cannot follow."""


def interpolate(value: Any) -> Any:
    """Compose's `${NAME:-default}` with nothing set: the default. Any other
    `$` form would be a value these manifests cannot know, so it is an error."""
    if isinstance(value, str):
        resolved = _DEFAULT.sub(lambda match: match[2], value)
        if "$" in resolved:
            raise ComposeError(f"docker-compose.yml: cannot resolve {value!r} without the shell")
        return resolved
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    return value


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as `docker compose config` would give it with no
    variables set (YAML merge keys resolved, `${X:-d}` as d)."""
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict) or not isinstance(loaded.get("services"), dict):
        raise ComposeError(f"{path}: no services")
    return dict(interpolate(loaded))


def variant_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run a variant (the services image), in order."""
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith(VARIANT_IMAGE_PREFIX)
    }


def seconds(duration: str) -> int:
    """Compose's `5s` / `1m30s` as whole seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(duration))
    if not parts or not any(parts.groups()):
        raise ComposeError(f"docker-compose.yml: duration {duration!r} is not like 5s or 1m30s")
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def quantity(memory: str) -> str:
    """Compose's `1g` / `512m` as a Kubernetes quantity (1Gi / 512Mi)."""
    parts = re.fullmatch(r"(\d+)([kmg])b?", str(memory).lower())
    if not parts:
        raise ComposeError(f"docker-compose.yml: memory {memory!r} is not like 512m or 1g")
    return parts[1] + {"k": "Ki", "m": "Mi", "g": "Gi"}[parts[2]]


def probe(healthcheck: dict[str, Any]) -> dict[str, Any]:
    """The compose health check as a readiness probe: same command, period,
    timeout and retries (start_period has no twin: a failing readiness
    probe during start-up only keeps the pod out of `kubectl wait`)."""
    test = healthcheck["test"]
    if not (isinstance(test, list) and test[:1] == ["CMD"]):
        raise ComposeError(f"docker-compose.yml: health check {test!r} is not [CMD, ...]")
    return {
        "exec": {"command": test[1:]},
        "periodSeconds": seconds(healthcheck["interval"]),
        "timeoutSeconds": seconds(healthcheck["timeout"]),
        "failureThreshold": int(healthcheck["retries"]),
    }


def labels(variant: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "fiblab-variant",
        "app.kubernetes.io/instance": variant,
        "app.kubernetes.io/component": "server",
    }


def selector(variant: str) -> dict[str, str]:
    """What picks a variant's pods: its name and instance labels."""
    return {key: value for key, value in labels(variant).items() if not key.endswith("/component")}


def deployment(variant: str, service: dict[str, Any]) -> dict[str, Any]:
    environment = service.get("environment", {})
    container = {
        "name": "server",
        "image": service["image"],
        "imagePullPolicy": "IfNotPresent",
        "args": list(service["command"]),
        "env": [{"name": key, "value": str(value)} for key, value in environment.items()],
        "ports": [
            {"name": "fib", "containerPort": FIB_PORT},
            {"name": "metrics", "containerPort": METRICS_PORT},
        ],
        "readinessProbe": probe(service["healthcheck"]),
        "resources": {
            "requests": dict(REQUESTS),
            "limits": {"cpu": str(service["cpus"]), "memory": quantity(service["mem_limit"])},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": bool(service.get("read_only")),
            "capabilities": {"drop": list(service.get("cap_drop", []))},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    tmpfs_size = re.search(r"size=(\d+[kmg])", " ".join(service.get("tmpfs", [])))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": variant, "labels": labels(variant)},
        "spec": {
            "replicas": 1,
            # one server per variant at a time: its figures are the variant's
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(variant)},
            "template": {
                "metadata": {"labels": labels(variant)},
                "spec": {
                    # compose's `init: true`: the pod's pause process is PID 1
                    # and reaps the process pools' exited workers
                    "shareProcessNamespace": bool(service.get("init")),
                    "terminationGracePeriodSeconds": seconds(service["stop_grace_period"]),
                    # no *_PORT variables for every Service in the namespace
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": USER_ID,
                        "runAsGroup": USER_ID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "tmp",
                            "emptyDir": {
                                "medium": "Memory",
                                "sizeLimit": quantity(tmpfs_size[1]) if tmpfs_size else "16Mi",
                            },
                        }
                    ],
                },
            },
        },
    }


def service_object(variant: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": variant, "labels": labels(variant)},
        "spec": {
            "selector": selector(variant),
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "fib", "port": FIB_PORT, "targetPort": "fib"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
            ],
        },
    }


def render(compose: dict[str, Any]) -> str:
    documents: list[dict[str, Any]] = []
    for variant, service in variant_services(compose).items():
        documents += [deployment(variant, service), service_object(variant)]
    return HEADER + yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write deploy/k8s/base/variants.yaml.")
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    try:
        text = render(load_compose())
    except (ComposeError, KeyError) as error:
        print(f"variants.py: {error}", file=sys.stderr)
        return 2
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `make k8s`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
