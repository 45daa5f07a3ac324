# tests/repo/test_k8s.py
#
# deploy/k8s, checked without a cluster (none can run here: no registry for
# node images). Every kustomization is rendered by Debian's kustomize (`make
# kustomize` installs it as root; without it these tests fail in CI and skip
# loudly elsewhere), every object is validated against the Kubernetes API
# schemas (kubernetes-validate, strict: an unknown field is an error), and
# the render is held to docker-compose.yml: the same variants, commands,
# images, environment, limits, probes, ports and hardening, and ConfigMaps
# whose contents are the very files compose mounts. The expectations here
# are read from compose directly, not from deploy/k8s/variants.py.

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from loadtest.compare.cli import build_parser
from loadtest.swarm.targets import parse_targets
from services import VARIANTS
from tests.conftest import ROOT, load_script, unavailable

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("local", "cluster")
KUSTOMIZATIONS = (*(f"overlays/{name}" for name in OVERLAYS), "compare", "results")
# The oldest Kubernetes these manifests claim, and the newest schemas bundled.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NAMESPACE = "fiblab"
# kubectl's client-side apply keeps a copy of each object in an annotation,
# which the API server caps at 256 KiB.
APPLY_ANNOTATION_LIMIT = 256 * 1024
PART_OF = {"app.kubernetes.io/part-of": "fiblab", "app.kubernetes.io/managed-by": "kustomize"}
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
RECOMMENDED = {*SELECTOR_KEYS, "app.kubernetes.io/component", *PART_OF}
# Compose settings that Kubernetes takes from a Secret (Grafana's admin password).
FROM_SECRETS = {"GF_SECURITY_ADMIN_PASSWORD"}

Object = dict[str, Any]


variants_module = load_script(K8S / "variants.py", "fiblab_k8s_variants")


@pytest.fixture(scope="module")
def kustomize() -> str:
    path = shutil.which("kustomize")
    if path is None:
        unavailable("kustomize", "run `make kustomize` as root (Debian's kustomize package)")
    return path


def build(kustomize: str, directory: Path) -> list[Object]:
    rendered = subprocess.run(
        [kustomize, "build", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, f"kustomize build {directory}: {rendered.stderr}"
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


@pytest.fixture(scope="module")
def renders(kustomize: str) -> dict[str, list[Object]]:
    return {name: build(kustomize, K8S / name) for name in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(variants_module.load_compose())


# -- reading a render ------------------------------------------------------------


def objects(render: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in render if o["kind"] == kind}


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]
    return spec if workload["kind"] == "Pod" else spec["template"]["spec"]


def pod_labels(workload: Object) -> dict[str, str]:
    if workload["kind"] == "Pod":
        return dict(workload["metadata"]["labels"])
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def workloads(render: list[Object]) -> Iterator[Object]:
    yield from (o for o in render if o["kind"] in ("Deployment", "Job", "Pod"))


def only_container(workload: Object) -> Object:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return dict(containers[0])


def env(container: Object) -> dict[str, str]:
    """Plain values only: one from a Secret (Grafana's admin password) is
    held to compose by tests/repo/test_grafana_login.py."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def config_map(render: list[Object], generated_name: str) -> Object:
    """A generated ConfigMap by its name before kustomize's hash suffix."""
    found = [
        o
        for o in render
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].rsplit("-", 1)[0] == generated_name
    ]
    assert len(found) == 1, f"one ConfigMap {generated_name}-<hash>, found {len(found)}"
    return found[0]


def mounted(workload: Object, path: str) -> Object:
    """The volume a workload's container mounts at `path`."""
    container = only_container(workload)
    names = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == path]
    assert names, f"{workload['metadata']['name']} mounts nothing at {path}"
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    return dict(volumes[names[0]])


# -- reading compose, independently of the generator ---------------------------------

UNITS = {"k": 2**10, "m": 2**20, "g": 2**30, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def size_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)(k|m|g|Ki|Mi|Gi)b?", str(text))
    assert match, f"not a size: {text!r}"
    return int(match[1]) * UNITS[match[2]]


def duration_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)s", str(text))
    assert match, f"not a duration in seconds: {text!r}"
    return int(match[1])


def compose_variants(compose: dict[str, Any]) -> dict[str, Any]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("fiblab-services")
    }


def container_port(published: str) -> int:
    """`127.0.0.1:25001:25000` -> 25000."""
    return int(str(published).rsplit(":", 1)[1])


def probe_of(healthcheck: dict[str, Any]) -> dict[str, Any]:
    assert healthcheck["test"][0] == "CMD"
    return {
        "exec": {"command": healthcheck["test"][1:]},
        "periodSeconds": duration_seconds(healthcheck["interval"]),
        "timeoutSeconds": duration_seconds(healthcheck["timeout"]),
        "failureThreshold": healthcheck["retries"],
    }


# -- rendering and validating -----------------------------------------------------------


def test_the_variants_manifest_is_what_compose_gives() -> None:
    assert variants_module.main(["--check"]) == 0, "deploy/k8s/base/variants.yaml: run make k8s"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_is_valid_kubernetes(
    renders: dict[str, list[Object]], name: str, version: str
) -> None:
    problems = []
    for document in renders[name]:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = f"{document['kind']}/{document['metadata']['name']}"
            problems.append(f"{where}: {error.message} at {'.'.join(map(str, error.path))}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_everything_is_in_the_lab_namespace_with_the_recommended_labels(
    renders: dict[str, list[Object]], name: str
) -> None:
    for document in renders[name]:
        where = f"{name}: {document['kind']}/{document['metadata']['name']}"
        labels = document["metadata"].get("labels", {})
        assert labels.keys() >= RECOMMENDED - {"app.kubernetes.io/component"}, where
        assert PART_OF.items() <= labels.items(), where
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == NAMESPACE, where
    for workload in workloads(renders[name]):
        labels = pod_labels(workload)
        assert labels.keys() >= RECOMMENDED, workload["metadata"]["name"]
        if workload["kind"] == "Deployment":
            selector = workload["spec"]["selector"]["matchLabels"]
            # name and instance only: a label added later cannot orphan pods
            assert set(selector) == SELECTOR_KEYS, workload["metadata"]["name"]
            assert selector.items() <= labels.items(), workload["metadata"]["name"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_pod_is_hardened_like_compose(renders: dict[str, list[Object]], name: str) -> None:
    for workload in workloads(renders[name]):
        where = f"{name}: {workload['metadata']['name']}"
        spec = pod_spec(workload)
        # Service links would give Locust LOCUST_MASTER_PORT=tcp://… as an option
        assert spec["enableServiceLinks"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, where
            assert "memory" in container["resources"]["limits"], where


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_config_maps_fit_a_client_side_apply(renders: dict[str, list[Object]], name: str) -> None:
    for config in objects(renders[name], "ConfigMap").values():
        size = sum(len(value.encode()) for value in config["data"].values())
        assert size < APPLY_ANNOTATION_LIMIT, (config["metadata"]["name"], size)


# -- the same lab as compose --------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_variants_are_compose_s(
    renders: dict[str, list[Object]], compose: dict[str, Any], overlay: str
) -> None:
    render = renders[f"overlays/{overlay}"]
    deployments, services = objects(render, "Deployment"), objects(render, "Service")
    declared = compose_variants(compose)
    assert list(declared) == list(VARIANTS)
    servers = {
        name
        for name, deployment in deployments.items()
        if pod_labels(deployment)["app.kubernetes.io/component"] == "server"
    }
    assert servers == set(VARIANTS)
    for variant, service in declared.items():
        deployment = deployments[variant]
        spec, container = pod_spec(deployment), only_container(deployment)
        assert container["image"] == service["image"], variant
        assert container["args"] == service["command"], variant
        assert env(container) == {k: str(v) for k, v in service["environment"].items()}, variant
        limits = container["resources"]["limits"]
        assert float(limits["cpu"]) == float(service["cpus"]), variant
        assert size_bytes(limits["memory"]) == size_bytes(service["mem_limit"]), variant
        assert container["readinessProbe"] == probe_of(service["healthcheck"]), variant
        assert "livenessProbe" not in container, "compose restarts a variant only when it exits"
        grace = duration_seconds(service["stop_grace_period"])
        assert spec["terminationGracePeriodSeconds"] == grace, variant
        assert spec["shareProcessNamespace"] is service["init"], "compose's init: true"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["fib"] == container_port(service["ports"][0]), variant
        tmp = mounted(deployment, "/tmp")["emptyDir"]
        compose_tmp = re.search(r"size=(\w+)", service["tmpfs"][0])
        assert compose_tmp is not None
        assert size_bytes(tmp["sizeLimit"]) == size_bytes(compose_tmp[1]), variant
        assert services[variant]["spec"]["publishNotReadyAddresses"] is True, variant
        assert deployment["spec"]["replicas"] == 1, variant


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_locust_prometheus_and_grafana_are_compose_s(
    renders: dict[str, list[Object]], compose: dict[str, Any], overlay: str
) -> None:
    render = renders[f"overlays/{overlay}"]
    deployments = objects(render, "Deployment")
    for name in ("locust-master", "locust-worker", "prometheus", "grafana"):
        service, container = compose["services"][name], only_container(deployments[name])
        assert container["image"] == service["image"], name
        limits = container["resources"]["limits"]
        assert size_bytes(limits["memory"]) == size_bytes(service["mem_limit"]), name
        assert ("cpu" in limits) == ("cpus" in service), name
        if "healthcheck" in service:
            probe = {**probe_of(service["healthcheck"])}
            assert container["readinessProbe"] == probe, name
        compose_env = {
            k: str(v) for k, v in service.get("environment", {}).items() if k not in FROM_SECRETS
        }
        assert compose_env.items() <= env(container).items(), name
    for name in ("locust-master", "locust-worker", "prometheus"):
        assert only_container(deployments[name])["args"] == compose["services"][name]["command"]
    for name in ("locust-master", "locust-worker"):
        # the variants by Service name, as FIB_TARGETS=compose finds them in compose
        assert env(only_container(deployments[name]))["FIB_TARGETS"] == "kubernetes"
    assert env(only_container(deployments["grafana"])) == {
        k: str(v) for k, v in compose["services"]["grafana"]["environment"].items()
        if k not in FROM_SECRETS
    }  # fmt: skip


def test_kubernetes_targets_are_the_variants_services(renders: dict[str, list[Object]]) -> None:
    services = objects(renders["overlays/local"], "Service")
    for variant, (host, port) in parse_targets("kubernetes").items():
        assert host == variant
        assert port in [p["port"] for p in services[host]["spec"]["ports"]], variant


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_maps_hold_the_files_compose_mounts(
    renders: dict[str, list[Object]], compose: dict[str, Any], overlay: str
) -> None:
    """Every file compose mounts into Prometheus and Grafana is at the same
    path in the pod, from a ConfigMap generated from that very file, and
    each such ConfigMap holds nothing else."""
    render = renders[f"overlays/{overlay}"]
    deployments = objects(render, "Deployment")
    configs = {o["metadata"]["name"]: o for o in render if o["kind"] == "ConfigMap"}
    expected: dict[str, set[str]] = {}
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source, target = volume.split(":")[:2]
            if not source.startswith("./"):
                continue  # a named volume: data, not configuration
            path = ROOT / source
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                in_pod = Path(target) if file == path else Path(target) / file.relative_to(path)
                config_name = mounted(deployments[name], str(in_pod.parent))["configMap"]["name"]
                data = configs[config_name]["data"]
                assert data.get(in_pod.name) == file.read_text(), f"{name}: {in_pod}"
                expected.setdefault(config_name, set()).add(in_pod.name)
    assert sum(map(len, expected.values())) >= 5  # prometheus.yml, 2 provisioning, 2 dashboards
    for config_name, keys in expected.items():
        assert set(configs[config_name]["data"]) == keys, config_name


# -- what points at what ----------------------------------------------------------------


def service_named(render: list[Object], host: str, port: int) -> Object:
    services = objects(render, "Service")
    assert host in services, f"no Service named {host!r}"
    ports = [p["port"] for p in services[host]["spec"]["ports"]]
    assert port in ports, f"Service {host} has ports {ports}, not {port}"
    return services[host]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_scrape_target_is_a_service_of_the_render(
    renders: dict[str, list[Object]], overlay: str
) -> None:
    render = renders[f"overlays/{overlay}"]
    config = yaml.safe_load(config_map(render, "prometheus-config")["data"]["prometheus.yml"])
    prometheus = only_container(objects(render, "Deployment")["prometheus"])
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert len(targets) == len(VARIANTS) + 2  # the variants, Locust, itself
    for target in targets:
        host, port = target.rsplit(":", 1)
        if host == "localhost":  # Prometheus itself, in its own pod
            assert int(port) in [p["containerPort"] for p in prometheus["ports"]]
        else:
            service_named(render, host, int(port))
    datasources = config_map(render, "grafana-datasources")["data"]["prometheus.yaml"]
    url = yaml.safe_load(datasources)["datasources"][0]["url"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", url).groups()  # type: ignore[union-attr]
    service_named(render, host, int(port))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_reaches_a_named_container_port(
    renders: dict[str, list[Object]], overlay: str
) -> None:
    render = renders[f"overlays/{overlay}"]
    deployments = objects(render, "Deployment")
    for name, service in objects(render, "Service").items():
        selector = service["spec"]["selector"]
        chosen = [d for d in deployments.values() if selector.items() <= pod_labels(d).items()]
        assert len(chosen) == 1, f"Service {name} selects {len(chosen)} Deployments"
        ports = {p["name"]: p["containerPort"] for p in only_container(chosen[0])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)
            assert ports[port["targetPort"]] == port["port"], (name, port)
    worker = only_container(deployments["locust-worker"])
    master = re.search(r"--master-host=([\w-]+)", " ".join(worker["args"]))
    assert master is not None
    service_named(render, master[1], 5557)  # Locust's default --master-port


# -- the overlays' own promises -----------------------------------------------------------


def quantity_cores(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_local_fits_one_small_node(renders: dict[str, list[Object]]) -> None:
    """All 20 pods on a 2-CPU node beside the cluster's own (about 1 CPU of
    requests on kind); the README's "On Kubernetes" states these totals."""
    requests = [
        c["resources"]["requests"]
        for d in workloads(renders["overlays/local"])
        for c in pod_spec(d)["containers"]
    ]
    assert len(requests) == 20
    assert sum(quantity_cores(r["cpu"]) for r in requests) == pytest.approx(0.40)
    assert sum(size_bytes(r["memory"]) for r in requests) == 640 * 2**20


def test_cluster_gives_variants_guaranteed_cores_and_keeps_workers_away(
    renders: dict[str, list[Object]],
) -> None:
    render = renders["overlays/cluster"]
    deployments = objects(render, "Deployment")
    for variant in VARIANTS:
        resources = only_container(deployments[variant])["resources"]
        assert resources["requests"] == resources["limits"], f"{variant}: not Guaranteed QoS"
        assert float(resources["limits"]["cpu"]).is_integer(), "whole cores: static CPU manager"
    worker = pod_spec(deployments["locust-worker"])
    terms = worker["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert len(terms) == 1
    assert terms[0]["topologyKey"] == "kubernetes.io/hostname"
    avoided = terms[0]["labelSelector"]["matchLabels"]
    for name, deployment in deployments.items():
        avoids = avoided.items() <= pod_labels(deployment).items()
        assert avoids == (name in VARIANTS), name
    # the rule holds both ways, so the workers gather rather than block many nodes
    (gather,) = worker["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    together = gather["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert together.items() <= pod_labels(deployments["locust-worker"]).items()
    assert deployments["locust-worker"]["spec"]["replicas"] > 1


def test_images_can_be_pointed_at_a_registry(kustomize: str, tmp_path: Path) -> None:
    """What the README says to type: `kustomize edit set image` in an overlay."""
    for part in ("deploy", "prometheus", "grafana"):
        shutil.copytree(ROOT / part, tmp_path / part)
    overlay = tmp_path / "deploy" / "k8s" / "overlays" / "cluster"
    names = ("fiblab-services", "fiblab-services-py3.14", "fiblab-loadtest")
    edit = [f"{name}=registry.example.com/lab/{name}:1.0" for name in names]
    subprocess.run([kustomize, "edit", "set", "image", *edit], cwd=overlay, check=True, timeout=60)
    images = {
        c["image"]
        for d in workloads(build(kustomize, overlay))
        for c in pod_spec(d)["containers"]
        if "fiblab" in c["image"]
    }
    assert images == {f"registry.example.com/lab/{name}:1.0" for name in names}


def test_the_compare_job_runs_the_runner_against_the_services(
    renders: dict[str, list[Object]], compose: dict[str, Any]
) -> None:
    job = objects(renders["compare"], "Job")["fiblab-compare"]
    container = only_container(job)
    command = container["command"]
    assert command[:3] == ["python", "-m", "loadtest.compare"]
    options = build_parser().parse_args(command[3:] + container["args"])
    assert options.target_from_kubernetes
    assert options.out is None  # results/<time>, on the claim:
    assert mounted(job, "/app/results")["persistentVolumeClaim"]["claimName"] == "fiblab-results"
    reader = objects(renders["results"], "Pod")["fiblab-results"]
    assert mounted(reader, "/app/results")["persistentVolumeClaim"] == {
        "claimName": "fiblab-results",
        "readOnly": True,
    }
    service = compose["services"]["compare"]
    assert container["image"] == service["image"]
    limit = container["resources"]["limits"]["memory"]
    assert size_bytes(limit) == size_bytes(service["mem_limit"])


# -- the generator's errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "culprit"),
    [("${FIB_CPUS}", "${FIB_CPUS}"), ("$HOME/x", "$HOME/x"), ("${A:-${B}}", "${A:-${B}}")],
)
def test_compose_values_without_a_default_are_named(value: str, culprit: str) -> None:
    with pytest.raises(variants_module.ComposeError, match=re.escape(culprit)):
        variants_module.interpolate({"cpus": value})


def test_defaults_are_what_compose_uses_with_nothing_set() -> None:
    assert variants_module.interpolate(["${FIB_CPUS:-2}", "${X:-}", 3]) == ["2", "", 3]


@pytest.mark.parametrize(
    ("function", "value"),
    [("seconds", "15"), ("seconds", "1h"), ("quantity", "1.5g"), ("quantity", "1t")],
)
def test_durations_and_sizes_it_cannot_read_are_named(function: str, value: str) -> None:
    with pytest.raises(variants_module.ComposeError, match=re.escape(repr(value))):
        getattr(variants_module, function)(value)


def test_a_stale_manifest_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "variants.yaml"
    stale.write_text(variants_module.OUTPUT.read_text().replace("'10000'", "'9999'"))
    monkeypatch.setattr(variants_module, "OUTPUT", stale)
    monkeypatch.setattr(variants_module, "ROOT", tmp_path)
    assert variants_module.main(["--check"]) == 1
