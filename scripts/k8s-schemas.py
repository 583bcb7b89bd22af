#!/usr/bin/env python3
"""Turns the Kubernetes OpenAPI document and CRD manifests into the JSON
schemas kubeconform validates against, offline.

    k8s-schemas.py OUT SWAGGER_JSON [CRD_YAML ...]

Both come from Go modules (scripts/deps.sh downloads them through the module
proxy): k8s.io/kubernetes ships api/openapi-spec/swagger.json, and each
operator's module ships its CRDs. Every schema is standalone (references
inlined) and strict: an object with known properties refuses others, so a
misspelt field fails validation. The layout is
OUT/<group>/<kind>_<version>.json ("v1/service_v1.json",
"apps/deployment_v1.json", "keda.sh/scaledobject_v1alpha1.json"), which
kubeconform reads with
-schema-location 'OUT/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'.
"""
import json
import pathlib
import sys

import yaml


def strict(schema):
    """Objects with properties refuse unknown fields; int-or-string and
    quantities take both forms; any field may be null (Kubernetes treats a
    null as unset)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.get("format") == "int-or-string" or out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("format", None)
        out["anyOf"] = [{"type": "string"}, {"type": "integer"}]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def inline(schema, definitions, seen=()):
    """Replaces every $ref by the definition it names (a cycle becomes {})."""
    if isinstance(schema, list):
        return [inline(s, definitions, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return {}
        target = dict(definitions[name])
        if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
            target = {"format": "int-or-string"}
        return inline(target, definitions, seen + (name,))
    return {k: inline(v, definitions, seen) for k, v in schema.items()}


def write(out, group, kind, version, schema):
    path = out / (group or "v1") / f"{kind.lower()}_{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = dict(schema)
    schema["$schema"] = "http://json-schema.org/schema#"
    path.write_text(json.dumps(schema, sort_keys=True))


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out = pathlib.Path(sys.argv[1])
    definitions = json.loads(pathlib.Path(sys.argv[2]).read_text())["definitions"]
    count = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            schema = strict(inline(definition, definitions, (name,)))
            write(out, gvk["group"], gvk["kind"], gvk["version"], schema)
            count += 1
    for crd_path in sys.argv[3:]:
        for crd in yaml.safe_load_all(pathlib.Path(crd_path).read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if schema:
                    write(out, spec["group"], spec["names"]["kind"], version["name"], strict(schema))
                    count += 1
    print(f"{count} schemas in {out}")


if __name__ == "__main__":
    main()
