"""deploy/kubernetes: valid Kubernetes objects, consistent with the app, the image and gunicorn."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shlex
import tomllib
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import kubernetes_validate
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from kubernetes_validate.utils import all_versions

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
# The schemas of one recent release bundled by the pinned kubernetes-validate; strict schemas
# refuse unknown fields, which the API server would otherwise drop with only a warning.
KUBERNETES_VERSION = "1.35.0"
MANIFEST_FILES = sorted(path for path in MANIFESTS.glob("*.y*ml") if path != KUSTOMIZATION)
# Kubernetes always gives a container a /dev/shm, so gunicorn.conf.py's heartbeat uses it there.
DEV_SHM = "/dev/shm"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    """Every object of the manifests by kind; each kind appears once."""
    found: dict[str, dict[str, Any]] = {}
    for path in MANIFEST_FILES:
        for doc in _documents(path):
            assert doc["kind"] not in found, f"second {doc['kind']} in {path.name}"
            found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def deployment(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objects["Deployment"]


@pytest.fixture(scope="module")
def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return only


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def _dockerfile_final_stage() -> list[str]:
    """The instructions after the last FROM, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    instructions = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
    instructions = [line.strip() for line in instructions if line.strip()]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from + 1:]


def _image_user() -> tuple[int, int | None]:
    users = [line.split()[1] for line in _dockerfile_final_stage() if line.startswith("USER ")]
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid) if gid else None


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile_final_stage():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in shlex.split(line[len("ENV "):]))
    return env


def _gunicorn_settings(env: dict[str, str]) -> ModuleType:
    """gunicorn.conf.py evaluated with the container's environment (and nothing else)."""
    spec = importlib.util.spec_from_file_location("gunicorn_conf_in_pod", ROOT / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, env, clear=True):  # restored afterwards, whatever it sets
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gunicorn_settings(container: dict[str, Any]) -> ModuleType:
    return _gunicorn_settings({**_image_env(), **_env(container)})


def _quantity(value: str | int) -> Decimal:
    """A Kubernetes resource quantity ("500m", "1", "192Mi", "1G") as a plain number."""
    suffixes = {"m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
                "G": Decimal(10**9), "Ki": Decimal(2**10), "Mi": Decimal(2**20),
                "Gi": Decimal(2**30)}
    number, suffix = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return Decimal(number) * suffixes.get(suffix, Decimal(1))


def _security(pod: dict[str, Any], container: dict[str, Any], field: str) -> Any:
    """The effective setting: the container's own, else the pod's."""
    own = container.get("securityContext", {})
    return own[field] if field in own else pod.get("securityContext", {}).get(field)


def _selects(match_labels: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(match_labels) and match_labels.items() <= labels.items()


def _project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["version"]


# --- schemas ------------------------------------------------------------------------------

def test_the_pinned_kubernetes_version_is_bundled():
    assert KUBERNETES_VERSION in all_versions()


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda path: path.name)
def test_manifest_validates_against_the_kubernetes_schemas(path: Path):
    documents = _documents(path)
    assert documents
    for document in documents:
        used = kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert used == "1.35"


def test_strict_validation_refuses_an_unknown_field(deployment: dict[str, Any]):
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_in_the_directory():
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(path.name for path in MANIFEST_FILES)


def test_every_object_carries_the_recommended_labels(objects: dict[str, dict[str, Any]]):
    assert set(objects) == {"Deployment", "Service", "HorizontalPodAutoscaler",
                            "PodDisruptionBudget"}
    for kind, obj in objects.items():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "msk-decision-support", kind
        assert labels["app.kubernetes.io/version"] == _project_version(), kind


# --- the container against the app and the image --------------------------------------------

def test_image_is_the_project_at_its_version(container: dict[str, Any]):
    assert container["image"] == f"msk-decision-support:{_project_version()}"
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_container_port_is_the_port_gunicorn_binds(container: dict[str, Any],
                                                   gunicorn_settings: ModuleType):
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert _env(container)["PORT"] == str(port["containerPort"])
    host, _, bound_port = gunicorn_settings.bind.rpartition(":")
    assert int(bound_port) == port["containerPort"]
    assert host in ("0.0.0.0", "[::]"), "the kubelet and the Service reach the pod IP"


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probe_is_a_route_of_the_app_that_answers_200(probe: str, container: dict[str, Any],
                                                      app: Flask, client: FlaskClient):
    http_get = container[probe]["httpGet"]
    get_routes = {rule.rule for rule in app.url_map.iter_rules() if "GET" in rule.methods}
    assert http_get["path"] in get_routes
    assert client.get(http_get["path"]).status_code == 200
    named = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert http_get["port"] in named or http_get["port"] in named.values()


def test_liveness_and_readiness_use_the_documented_endpoints(container: dict[str, Any]):
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_liveness_gives_gunicorn_time_to_replace_a_stuck_worker_first(
        container: dict[str, Any], gunicorn_settings: ModuleType):
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= gunicorn_settings.timeout


def test_workers_come_from_the_manifest(container: dict[str, Any],
                                       gunicorn_settings: ModuleType):
    env = _env(container)
    assert gunicorn_settings.workers == int(env["WEB_CONCURRENCY"])
    assert gunicorn_settings.worker_class == "service.serving.Worker"
    # Two workers, so a worker recycling (rules reloaded, 1.5-2 s) never leaves the pod idle;
    # no more than the CPU limit, so the CPU-bound workers are not throttled.
    cpu_limit = _quantity(container["resources"]["limits"]["cpu"])
    assert 2 <= gunicorn_settings.workers <= cpu_limit


def test_resources_have_requests_and_limits_no_lower(container: dict[str, Any]):
    resources = container["resources"]
    for name in ("cpu", "memory"):
        request = _quantity(resources["requests"][name])
        limit = _quantity(resources["limits"][name])
        assert 0 < request <= limit, name


# --- security -------------------------------------------------------------------------------

def test_runs_as_the_user_the_dockerfile_creates(pod: dict[str, Any], container: dict[str, Any]):
    stage = "\n".join(_dockerfile_final_stage())
    created = re.search(r"useradd\b[^\n]*--uid[ =](\d+)", stage)
    assert created, "the Dockerfile creates its user with useradd --uid"
    uid, gid = _image_user()
    assert uid == int(created.group(1))
    assert _security(pod, container, "runAsUser") == uid
    if gid is not None:
        assert _security(pod, container, "runAsGroup") == gid
    assert _security(pod, container, "runAsNonRoot") is True
    for context in (pod.get("securityContext", {}), container.get("securityContext", {})):
        assert context.get("runAsUser", uid) == uid, "pod and container levels disagree"


def test_container_is_locked_down(pod: dict[str, Any], container: dict[str, Any]):
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert not security["capabilities"].get("add")
    assert not security.get("privileged", False)
    assert _security(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False


def test_every_path_the_app_writes_is_an_empty_dir(pod: dict[str, Any],
                                                   container: dict[str, Any],
                                                   gunicorn_settings: ModuleType):
    writable = {"/tmp", DEV_SHM, _env(container)["PROMETHEUS_MULTIPROC_DIR"]}
    if getattr(gunicorn_settings, "worker_tmp_dir", None):
        writable.add(gunicorn_settings.worker_tmp_dir)
    if not getattr(gunicorn_settings, "control_socket_disable", False):
        writable.add(os.path.dirname(gunicorn_settings.control_socket))
    empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    mounted = {mount["mountPath"].rstrip("/"): mount for mount in container["volumeMounts"]}
    for path in writable:
        mount = next((mounted[m] for m in mounted if path == m or path.startswith(m + "/")), None)
        assert mount is not None, f"{path} is not mounted: the root filesystem is read-only"
        assert mount["name"] in empty_dirs, path
        assert not mount.get("readOnly", False), path


# --- lifecycle and rollout ------------------------------------------------------------------

def test_grace_period_covers_the_pre_stop_sleep_and_gunicorns_graceful_timeout(
        pod: dict[str, Any], container: dict[str, Any], gunicorn_settings: ModuleType):
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert Path(command[0]).name == "sleep"
    pre_stop = int(command[-1])
    assert pre_stop > 0
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > gunicorn_settings.graceful_timeout
    assert grace > pre_stop + gunicorn_settings.graceful_timeout


def test_rolling_update_never_drops_below_the_current_replicas(deployment: dict[str, Any]):
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the count"


def test_replicas_spread_across_nodes(deployment: dict[str, Any], pod: dict[str, Any]):
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    by_node = [spread for spread in pod.get("topologySpreadConstraints", [])
               if spread["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node
    assert all(_selects(spread["labelSelector"]["matchLabels"], labels) for spread in by_node)


# --- the objects around the Deployment ------------------------------------------------------

def test_deployment_selects_its_own_pods(deployment: dict[str, Any]):
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)


def test_service_selects_the_pods_and_targets_a_named_container_port(
        objects: dict[str, dict[str, Any]], deployment: dict[str, Any],
        container: dict[str, Any]):
    service = objects["Service"]["spec"]
    assert service["type"] == "ClusterIP"
    assert _selects(service["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    (port,) = service["ports"]
    assert port["port"] == 80
    assert port["targetPort"] in {p["name"] for p in container["ports"]}


def test_autoscaler_scales_the_deployment_on_cpu(objects: dict[str, dict[str, Any]],
                                                 deployment: dict[str, Any]):
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": deployment["metadata"]["name"]}
    assert spec["minReplicas"] >= 2
    assert spec["maxReplicas"] > spec["minReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_disruption_budget_covers_the_deployments_pods(objects: dict[str, dict[str, Any]],
                                                      deployment: dict[str, Any]):
    budget = objects["PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1"
    spec = budget["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(spec["selector"]["matchLabels"], labels)
    min_replicas = objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"]
    if "maxUnavailable" in spec:
        assert 1 <= spec["maxUnavailable"] < min_replicas
    else:
        assert 1 <= spec["minAvailable"] < min_replicas, "a drain must be able to evict"


def test_replicas_share_one_replay_store_from_a_secret(container: dict[str, Any],
                                                       objects: dict[str, dict[str, Any]]):
    """More than one replica (the autoscaler's minimum is 2): a token id used on one pod must
    be refused on every other, so the pods share Redis; its URL carries a password."""
    (store,) = [item for item in container["env"] if item["name"] == "CDS_HOOKS_REPLAY_STORE"]
    assert "value" not in store
    reference = store["valueFrom"]["secretKeyRef"]
    assert reference["key"] == "url" and not reference.get("optional", False)
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2


def test_the_image_installs_what_the_gevent_worker_imports(gunicorn_settings: ModuleType):
    """The image installs the runtime dependencies only: gunicorn's gevent worker imports
    gevent and packaging, which its `gevent` extra declares (without it the image's workers
    failed to boot while the test venv, with packaging from the test extra, passed)."""
    assert gunicorn_settings.worker_class == "service.serving.Worker"
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"]
    assert any(re.fullmatch(r"gunicorn\[gevent\]==[\d.]+", d) for d in dependencies)
    assert any(d.startswith("gevent==") for d in dependencies)
