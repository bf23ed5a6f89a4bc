"""deploy/kubernetes/ and deploy/kserve/: every manifest validates offline against the
Kubernetes 1.37 schemas (strict: no unknown field), the KServe InferenceService against the
schema deploy/kserve/make_schema.py made from KServe's SDK types (its Kubernetes parts against
the same strict Kubernetes schemas); and they agree with the image (user, port, health routes,
read-only root and models, API keys from a Secret, one GPU) and with the Triton model
repository that rul-export writes."""

import copy
import functools
import json

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from tests.conftest import MODELS_DIR, ROOT
from training.triton import write_triton_repo

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")) + sorted(
    (ROOT / "deploy" / "kserve").glob("*.yaml")
)
K8S_VERSION = "1.37.0"
KSERVE_SCHEMA = ROOT / "deploy" / "kserve" / "inferenceservice-v1beta1.schema.json"


def _load(name: str, folder: str = "kubernetes") -> dict:
    return yaml.safe_load((ROOT / "deploy" / folder / name).read_text())


@functools.cache
def _kserve_validator() -> jsonschema.Draft202012Validator:
    """The KServe schema, its Kubernetes types resolved into the strict Kubernetes definitions
    (read once: the definitions are 1.8 MB)."""
    schema = json.loads(KSERVE_SCHEMA.read_text())
    definitions = schema_contents(f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json",
                                  K8S_VERSION)  # fmt: skip
    registry = Registry().with_resources(
        [
            (schema["$id"], Resource.from_contents(schema)),
            (definitions["$id"], Resource.from_contents(definitions)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _validate(document: dict) -> None:
    """Kubernetes kinds with kubernetes-validate; an InferenceService with the KServe schema."""
    if document["kind"] == "InferenceService":
        _kserve_validator().validate(document)
    else:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_the_kubernetes_and_kserve_schemas(path):
    for document in yaml.safe_load_all(path.read_text()):
        _validate(document)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(storageURI=m.pop("storageUri")),  # a KServe field misspelt
        lambda m: m.pop("modelFormat"),  # a required KServe field missing
        lambda m: m["resources"].update(limit=m["resources"].pop("limits")),  # a Kubernetes field misspelt
        lambda m: m["securityContext"].update(allowPrivilegeEscalation="no"),  # a Kubernetes type wrong
    ],
    ids=["kserve-field", "kserve-required", "kubernetes-field", "kubernetes-type"],
)
def test_the_kserve_validation_would_catch_a_wrong_manifest(change):
    broken = copy.deepcopy(_load("inferenceservice.yaml", "kserve"))
    change(broken["spec"]["predictor"]["model"])
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_the_inferenceservice_serves_the_triton_repository_that_rul_export_writes(tmp_path):
    service = _load("inferenceservice.yaml", "kserve")["spec"]["predictor"]
    model = service["model"]
    assert (model["runtime"], model["protocolVersion"], model["modelFormat"]["name"]) == (
        "kserve-tritonserver", "v2", "onnx"
    )  # fmt: skip
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    claim, _, path = model["storageUri"].removeprefix("pvc://").partition("/")
    assert claim == _load("triton-models-pvc.yaml", "kserve")["metadata"]["name"]
    # the repository's layout as Triton reads it: <path>/<name>/config.pbtxt and 1/model.onnx
    card = json.loads((MODELS_DIR / "fd001.json").read_text())
    model_dir = write_triton_repo(MODELS_DIR / "fd001.onnx", card, tmp_path / path)
    assert model_dir == tmp_path / path / "fd001"
    assert 'backend: "onnxruntime"' in (model_dir / "config.pbtxt").read_text()
    assert (model_dir / "1" / "model.onnx").read_bytes() == (MODELS_DIR / "fd001.onnx").read_bytes()


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
