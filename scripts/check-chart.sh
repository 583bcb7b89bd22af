#!/usr/bin/env bash
# The Helm chart's checks, offline (make test runs this; the tools and schemas
# come from scripts/deps.sh):
#   - the dashboards, values.schema.json and VALUES.md are what their
#     generators make, and every key of values.yaml is documented;
#   - helm lint --strict and helm template for every values file and options;
#   - every rendered manifest validated by kubeconform in strict mode against
#     Kubernetes' own schemas and KEDA's, the Gateway API's and
#     prometheus-operator's CRDs;
#   - kube-score's policy checks on the rendered manifests;
#   - promtool check rules, and promtool test rules (a unit test per alert);
#   - every PromQL query of the dashboards parsed by promtool;
#   - shellcheck on every script.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.deps/bin"
chart="$root/deploy/helm/sluice"
schemas="$root/.deps/k8s-schemas"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { printf 'check-chart: %s\n' "$*"; }

say "generated files are current; every value documented"
python3 "$root/scripts/dashboards.py" --check
python3 "$root/scripts/values-reference.py" --check
"$root/.deps/venv/bin/python" "$root/scripts/values-schema.py" --check

# shellcheck source=scripts/chart-cases.sh
source "$root/scripts/chart-cases.sh"

# kube-score checks left out, each for a reason:
#   container-cpu-limit (in container-resources' output): CPU limits are left
#     unset on purpose: they throttle latency-sensitive services without
#     protecting anything requests do not already;
#   container-image-pull-policy: images are pinned tags, IfNotPresent is right
#     (and what kind's loaded images need);
#   container-ephemeral-storage-request-and-limit: nothing writes to the node's
#     disk but the size-limited /tmp emptyDir;
#   pod-probes-identical: Jaeger's and Grafana's health endpoints are the
#     only ones they have;
#   deployment-has-host-podantiaffinity, statefulset-has-host-podantiaffinity,
#     pod-topology-spread-constraints: spreading is set per environment
#     (values-prod.yaml), not forced on a one-node kind cluster.
# One workload opts out of two checks itself (kube-score/ignore annotation):
# ScyllaDB, whose upstream image must start as root with a writable root FS.
ignored=(
  container-image-pull-policy
  container-ephemeral-storage-request-and-limit
  pod-probes-identical
  deployment-has-host-podantiaffinity
  statefulset-has-host-podantiaffinity
  pod-topology-spread-constraints
)
ignore_flags=()
for t in "${ignored[@]}"; do ignore_flags+=(--ignore-test "$t"); done

for c in "${cases[@]}"; do
  name="${c%%|*}"; opts="${c#*|}"
  say "helm lint --strict ($name)"
  # shellcheck disable=SC2086 # the options are words
  "$bin/helm" lint --strict "$chart" $opts >"$work/lint.txt" || { cat "$work/lint.txt"; exit 1; }
  # shellcheck disable=SC2086
  "$bin/helm" template sluice "$chart" --namespace sluice $opts >"$work/$name.yaml"
  say "kubeconform -strict ($name): $("$bin/kubeconform" -strict -summary \
    -schema-location "$schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$work/$name.yaml" | tail -n 1)"
  # The bundled NATS's config as rendered, parsed by the real server (-t),
  # with every variable it names set (the passwords, the pod's name).
  mkdir -p "$work/nats-$name"
  "$root/.deps/venv/bin/python" - "$work/$name.yaml" "$work/nats-$name" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and "nats.conf" in doc.get("data", {}):
        for key, text in doc["data"].items():
            open(f"{sys.argv[2]}/{key}", "w").write(text)
PY
  if [ -f "$work/nats-$name/nats.conf" ]; then
    vars=(POD_NAME=sluice-nats-0)
    while read -r v; do vars+=("$v=x"); done < <(grep -o 'SLUICE_NATS_PASSWORD_[A-Z_]*' "$work/nats-$name/auth.conf" 2>/dev/null | sort -u)
    env "${vars[@]}" "$bin/nats-server" -t -c "$work/nats-$name/nats.conf" >/dev/null
    say "nats-server -t ($name): the bundled NATS config is valid"
  fi
  say "kube-score ($name)"
  if ! "$bin/kube-score" score "${ignore_flags[@]}" --output-format ci "$work/$name.yaml" >"$work/score.txt"; then
    # The CPU limit is the one part of container-resources left out (above).
    grep -E '^\[CRITICAL\]' "$work/score.txt" | grep -v 'CPU limit is not set' >"$work/critical.txt" || true
    if [ -s "$work/critical.txt" ]; then cat "$work/critical.txt"; exit 1; fi
  fi
done

say "promtool check rules, test rules"
# The rules as the default values render them, from the Prometheus ConfigMap.
"$bin/helm" template sluice "$chart" --show-only templates/prometheus.yaml |
  "$root/.deps/venv/bin/python" -c '
import sys, yaml
for doc in yaml.safe_load_all(sys.stdin):
    if doc and doc.get("kind") == "ConfigMap" and "alerts.yaml" in doc.get("data", {}):
        sys.stdout.write(doc["data"]["alerts.yaml"])
' >"$work/alerts.yaml"
"$bin/promtool" check rules --lint-fatal "$work/alerts.yaml"
cp "$root/deploy/prometheus/alerts-test.yaml" "$work/"
"$bin/promtool" test rules "$work/alerts-test.yaml"

say "dashboard queries parse"
python3 - "$chart/files/dashboards" >"$work/queries.yaml" <<'EOF'
import json, pathlib, sys
rules = []
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    for panel in json.loads(path.read_text())["panels"]:
        for t in panel["targets"]:
            # Grafana's $__rate_interval is not PromQL; give it a value.
            rules.append({"record": f"sluice:dashboard:query{len(rules)}",
                          "expr": t["expr"].replace("$__rate_interval", "5m")})
print(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
EOF
"$bin/promtool" check rules --lint-fatal "$work/queries.yaml" >/dev/null

say "shellcheck"
shellcheck "$root"/scripts/*.sh "$root"/deploy/kind/*.sh
say "ok"
