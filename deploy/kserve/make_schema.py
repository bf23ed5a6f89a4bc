"""Write the JSON schema that tests/test_kubernetes.py validates the KServe manifests against.

KServe's CRD (serving.kserve.io_inferenceservices.yaml, 1 MB) cannot be fetched on our
machines, but its Python SDK is on PyPI: the SDK's model classes are generated from KServe's
OpenAPI document, itself generated from the same Go types as the CRD. This script reads them
from the wheel (without installing it: `openapi_types`, `attribute_map`, and the fields whose
setters refuse None) and writes one JSON schema (draft 2020-12) for InferenceService:

- every KServe type is an object with exactly the SDK's fields (no unknown field: strict, as
  `kubectl apply --validate=strict` treats a structural CRD), its required fields required;
- every Kubernetes type (Container, ResourceRequirements, ObjectMeta, ...) is a reference into
  the Kubernetes strict schemas that kubernetes-validate ships (the same ones the other
  manifests are validated against);
- `status` is written by the controller and left open.

    pip download --no-deps kserve==0.21.0 -d /tmp/kserve
    python deploy/kserve/make_schema.py /tmp/kserve/kserve-0.21.0-py3-none-any.whl
"""

import argparse
import ast
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import schema_contents

K8S_VERSION = "1.37.0"  # as tests/test_kubernetes.py
K8S_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
ROOT_TYPE = "V1beta1InferenceService"
LEFT_OPEN = {("V1beta1InferenceService", "status")}
OUT = Path(__file__).parent / "inferenceservice-v1beta1.schema.json"
SCALARS = {"str": {"type": "string"}, "int": {"type": "integer"}, "bool": {"type": "boolean"},
           "float": {"type": "number"}, "object": {}, "datetime": {"type": "string"}}  # fmt: skip
K8S_RENAMED = {"ResourceQuantity": "io.k8s.apimachinery.pkg.api.resource.Quantity"}


def sdk_types(wheel: Path) -> dict[str, dict[str, Any]]:
    """Class name -> {fields: {json name: SDK type}, required: [json names]} for every model
    class in the wheel's kserve/models/."""
    types: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not re.fullmatch(r"kserve/models/v1(alpha1|beta1)_\w+\.py", name):
                continue
            source = archive.read(name).decode()
            for cls in (n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)):
                assigned = {s.targets[0].id: ast.literal_eval(s.value) for s in cls.body
                            if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)
                            and s.targets[0].id in ("openapi_types", "attribute_map")}  # fmt: skip
                if len(assigned) != 2:
                    continue
                json_name = assigned["attribute_map"]
                required = re.findall(r"Invalid value for `(\w+)`, must not be `None`", source)
                types[cls.name] = {
                    "fields": {json_name[k]: v for k, v in assigned["openapi_types"].items()},
                    "required": sorted(json_name[k] for k in set(required)),
                }
    return types


def kubernetes_definition(sdk_name: str, definitions: dict[str, Any]) -> str:
    """The key in the Kubernetes definitions for an SDK type name: V1Container (a core or
    meta v1 type), K8sIoApiAppsV1DeploymentStrategy (group and version spelt out)."""
    if sdk_name in K8S_RENAMED:
        return K8S_RENAMED[sdk_name]
    if match := re.fullmatch(r"K8sIoApi([A-Z][a-z]+)(V\d+(?:(?:alpha|beta)\d+)?)(\w+)", sdk_name):
        group, version, kind = match.groups()
        return f"io.k8s.api.{group.lower()}.{version.lower()}.{kind}"
    kind = sdk_name.removeprefix("V1")
    groups = ("io.k8s.api.", "io.k8s.apimachinery.pkg.apis.meta.")
    candidates = [k for k in definitions if k.endswith(f".v1.{kind}") and k.startswith(groups)]
    core = [k for k in candidates if k.startswith("io.k8s.api.core.")]
    if len(core) == 1 or len(candidates) == 1:
        return (core or candidates)[0]
    raise KeyError(f"no single Kubernetes definition for {sdk_name}: {candidates}")


def build_schema(wheel: Path) -> dict[str, Any]:
    types = sdk_types(wheel)
    definitions = schema_contents(f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json",
                                  K8S_VERSION)["$defs"]  # fmt: skip
    defs: dict[str, Any] = {}
    undefined: set[str] = set()

    def schema_of(sdk_type: str) -> dict[str, Any]:
        if sdk_type in SCALARS:
            return SCALARS[sdk_type]
        if match := re.fullmatch(r"list\[(.+)\]", sdk_type):
            return {"type": "array", "items": schema_of(match.group(1))}
        if match := re.fullmatch(r"dict\(str, (.+)\)", sdk_type):
            return {"type": "object", "additionalProperties": schema_of(match.group(1))}
        if sdk_type in types:
            define(sdk_type)
            return {"$ref": f"#/$defs/{sdk_type}"}
        if re.fullmatch(r"V1(alpha|beta)\d+\w+", sdk_type):  # named by the SDK, not defined in it
            undefined.add(sdk_type)
            return {}
        return {"$ref": f"{K8S_DEFINITIONS}#/$defs/{kubernetes_definition(sdk_type, definitions)}"}

    def define(name: str) -> None:
        if name in defs:
            return
        defs[name] = {}  # placeholder: types refer to each other
        spec = types[name]
        properties = {field: ({"type": "object"} if (name, field) in LEFT_OPEN else schema_of(sdk_type))
                      for field, sdk_type in spec["fields"].items()}  # fmt: skip
        defs[name] = {"type": "object", "properties": properties, "additionalProperties": False}
        if spec["required"]:
            defs[name]["required"] = spec["required"]

    define(ROOT_TYPE)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kserve.github.io/schemas/inferenceservice-v1beta1.json",
        "$comment": f"generated by deploy/kserve/make_schema.py from {wheel.name} "
        f"(sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}), Kubernetes types: "
        f"kubernetes-validate {kubernetes_validate.__version__}, Kubernetes {K8S_VERSION}, strict; "
        f"left open (named but not defined in the SDK): {', '.join(sorted(undefined)) or 'none'}",
        "allOf": [
            {"$ref": f"#/$defs/{ROOT_TYPE}"},
            {
                "properties": {
                    "apiVersion": {"const": "serving.kserve.io/v1beta1"},
                    "kind": {"const": "InferenceService"},
                },
                "required": ["apiVersion", "kind", "metadata", "spec"],
            },
        ],  # fmt: skip
        "$defs": defs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", type=Path, help="the kserve wheel (pip download --no-deps kserve==VERSION)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write the schema (default: {OUT})")
    args = parser.parse_args()
    schema = build_schema(args.wheel)
    args.out.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(schema['$defs'])} KServe types")


if __name__ == "__main__":
    main()
