#!/usr/bin/env python3
"""Writes deploy/helm/sluice/values.schema.json from values.yaml.

Every key of values.yaml is in the schema with the type of its default, and
objects refuse keys they do not know, so `helm install --set global.imge.tag=x`
fails naming `imge`. Maps meant to be open (settings, annotations, resources,
…) are listed in OPEN; enumerations and ranges in EXTRA. `--check` fails when
the committed schema is stale (make test runs it).

Run with the Python of .deps/venv (it has PyYAML): `make schema`.
"""
import json
import pathlib
import sys

import yaml

CHART = pathlib.Path(__file__).resolve().parent.parent / "deploy/helm/sluice"

# Paths ("*" matches one key) whose objects take any keys.
OPEN = {
    "global.config", "serviceDefaults.config", "serviceDefaults.env",
    "serviceDefaults.resources", "serviceDefaults.nodeSelector", "serviceDefaults.affinity",
    "services.*.config", "services.*.env", "services.*.resources", "services.*.nodeSelector",
    "services.*.affinity",
    "ingress.annotations", "ingress.objectStoreAnnotations", "prometheus.rules.labels",
    "prometheus.podMonitor.labels", "grafana.sidecarLabels",
    "*.resources",
}

# Extra constraints by path.
EXTRA = {
    "global.logFormat": {"enum": ["json", "text"]},
    "global.image.pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "global.nats.streamReplicas": {"minimum": 1, "maximum": 5},
    "global.tracing.sampleRatio": {"minimum": 0, "maximum": 1},
    "nats.syncInterval": {"enum": ["always", "default"]},
    "nats.replicas": {"minimum": 1},
    "scylla.writeIsolation": {
        "enum": ["always_use_lwt", "only_rmw_uses_lwt", "forbid_rmw", "unsafe_rmw"]},
    "serviceDefaults.replicas": {"minimum": 0},
    "serviceDefaults.drainSeconds": {"minimum": 1},
    "serviceDefaults.preStopSeconds": {"minimum": 0},
}

# Lists of objects whose items have a fixed shape; the items of other lists
# of objects are Kubernetes objects (peers, TLS blocks, parent references),
# validated by Kubernetes itself.
STRICT_ITEMS = {"nats.auth.users"}


def matches(pattern, path):
    p, q = pattern.split("."), path.split(".")
    if p[0] == "*" and len(p) == 2:  # "*.x" matches a key x at any depth
        return q[-1] == p[1]
    return len(p) == len(q) and all(a in ("*", b) for a, b in zip(p, q))


def is_open(path):
    return any(matches(p, path) for p in OPEN)


def schema_of(value, path):
    extra = next((v for p, v in EXTRA.items() if matches(p, path)), {})
    if isinstance(value, bool):
        s = {"type": "boolean"}
    elif isinstance(value, int):
        s = {"type": "integer"}
    elif isinstance(value, float):
        s = {"type": "number"}
    elif isinstance(value, str):
        s = {"type": "string"}
    elif isinstance(value, list):
        s = {"type": "array"}
        if value and all(isinstance(v, dict) for v in value):
            if path in STRICT_ITEMS:
                s["items"] = merge_objects([schema_of(v, path + ".[]") for v in value])
            else:
                s["items"] = {"type": "object"}
        elif value:
            s["items"] = schema_of(value[0], path + ".[]")
    elif isinstance(value, dict):
        if is_open(path):
            s = {"type": "object"}
        else:
            s = {
                "type": "object",
                "additionalProperties": False,
                "properties": {k: schema_of(v, f"{path}.{k}" if path else k) for k, v in value.items()},
            }
    elif value is None:
        s = {}
    else:
        raise SystemExit(f"{path}: cannot describe {value!r}")
    s.update(extra)
    return s


def merge_objects(schemas):
    props = {}
    for s in schemas:
        props.update(s.get("properties", {}))
    return {"type": "object", "additionalProperties": False, "properties": props}


def build(values):
    root = schema_of(values, "")
    # Services: every block has serviceDefaults' shape, each key optional,
    # and the six names are the only ones.
    block = schema_of(values["serviceDefaults"], "serviceDefaults")
    block["properties"]["enabled"] = {"type": "boolean"}
    services = root["properties"]["services"]
    for name in services["properties"]:
        services["properties"][name] = block
    # Open maps of the services keep string values: they become environment variables.
    for key in ("config", "env"):
        block["properties"][key]["additionalProperties"] = True
    # A user may take subjects back out of a wildcard on either side.
    users = root["properties"]["nats"]["properties"]["auth"]["properties"]["users"]["items"]
    for key in ("publishDeny", "subscribeDeny"):
        users["properties"][key] = {"type": "array", "items": {"type": "string"}}
    users["required"] = ["name", "publish", "subscribe"]
    root["$schema"] = "https://json-schema.org/draft-07/schema#"
    root["title"] = "sluice chart values"
    return root


def main():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = json.dumps(build(values), indent=2, sort_keys=True) + "\n"
    out = CHART / "values.schema.json"
    if "--check" in sys.argv[1:]:
        if not out.exists() or out.read_text() != text:
            print("values.schema.json is stale: run `make schema`")
            sys.exit(1)
        return
    out.write_text(text)


if __name__ == "__main__":
    main()
