"""deploy/kubernetes/: every manifest validates offline against the Kubernetes 1.37 schemas
(strict: no unknown field), and agrees with the image (user, port, health routes, read-only
root and models, API keys from a Secret, one GPU)."""

import copy

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
K8S_VERSION = "1.37.0"


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / "deploy" / "kubernetes" / name).read_text())


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_schema(path):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_the_validation_would_catch_a_wrong_field():
    broken = copy.deepcopy(_load("deployment.yaml"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_deployment_agrees_with_the_image_and_the_service():
    pod = _load("deployment.yaml")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert (
        f"USER {pod['securityContext']['runAsUser']}" in dockerfile and pod["securityContext"]["runAsNonRoot"]
    )
    assert container["ports"][0]["containerPort"] == 8000 and "RUL_PORT=8000" in dockerfile
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/app/models"]["readOnly"] is True and "/tmp" in mounts  # /tmp: the only writable place
    env = {e["name"]: e for e in container["env"]}
    assert env["RUL_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "rul-api-keys"
    assert env["RUL_MODELS_DIR"]["value"] == "/app/models" and env["RUL_PROVIDERS"]["value"] == "cuda"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_service_autoscaler_and_disruption_budget_point_at_the_deployment():
    deployment = _load("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _load("service.yaml")["spec"]["selector"] == labels
    assert _load("pdb.yaml")["spec"]["selector"]["matchLabels"] == labels
    target = _load("hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    claim = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "models")
    assert claim["persistentVolumeClaim"]["claimName"] == _load("models-pvc.yaml")["metadata"]["name"]
