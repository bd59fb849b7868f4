"""Validate a RayService manifest against KubeRay's RayService CRD (its v1 openAPIV3Schema): types,
enums, required fields, and no field the schema lacks (Kubernetes would drop it silently).

    kubectl get crd rayservices.ray.io -o yaml > crd.yaml   # or ray-operator/config/crd/bases/ in kuberay
    python deploy/check_rayservice.py crd.yaml deploy/rayservice.yaml

Needs pyyaml and jsonschema. The CRD is KubeRay's file, not ours: it is not in this repository."""
import sys

import jsonschema
import yaml

crd = yaml.safe_load(open(sys.argv[1]))
schema = {v["name"]: v for v in crd["spec"]["versions"]}["v1"]["schema"]["openAPIV3Schema"]


def fix(node):
    """Kubernetes' int-or-string extension, spelled for jsonschema."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        for v in node.values():
            fix(v)
    elif isinstance(node, list):
        for v in node:
            fix(v)


fix(schema)
m = yaml.safe_load(open(sys.argv[2]))
errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(m)]


def unknown(node, sch, path):
    if isinstance(node, dict) and "properties" in sch:
        for k, v in node.items():
            if k not in sch["properties"] and path not in ([], ["metadata"]):
                if not sch.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in sch:
                    errors.append(f"{path + [k]}: not in the schema")
            elif k in sch["properties"]:
                unknown(v, sch["properties"][k], path + [k])
    elif isinstance(node, dict) and isinstance(sch.get("additionalProperties"), dict):
        for k, v in node.items():
            unknown(v, sch["additionalProperties"], path + [k])
    elif isinstance(node, list) and "items" in sch:
        for i, v in enumerate(node):
            unknown(v, sch["items"], path + [i])


unknown(m, schema, [])
print("\n".join(errors) or "valid: no schema errors, no unknown fields")
sys.exit(bool(errors))
