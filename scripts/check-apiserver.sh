#!/usr/bin/env bash
# The chart applied for real to a real Kubernetes API server (make test):
# kapi (deploy/deps/kapi: etcd and kube-apiserver in one process, built by
# scripts/deps.sh) starts, takes the CRDs of KEDA, the Gateway API and
# prometheus-operator, and then `helm install` of every values case must be
# stored after the server's own validation (server-side apply, strict field
# validation, admission). An upgrade must keep the generated Secret (lookup),
# and the chart's own objects, each broken in a way the server must notice,
# are refused. No controllers run: nothing is scheduled, only validated and
# stored.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.deps/bin"
chart="$root/deploy/helm/sluice"
work="$(mktemp -d)"
say() { printf 'check-apiserver: %s\n' "$*"; }
stop() {
  if [ -s "$work/pid" ]; then
    kill -TERM "$(cat "$work/pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$work/pid")" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$(cat "$work/pid")" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

"$bin/kapi" serve -dir "$work/kapi" >"$work/log" 2>&1 &
echo $! >"$work/pid"
ready=
for _ in $(seq 1 480); do
  if [ -s "$work/kapi/port" ] && curl -fsk -H "Authorization: Bearer $(cat "$work/kapi/token")" \
    "https://127.0.0.1:$(cat "$work/kapi/port")/readyz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$(cat "$work/pid")" 2>/dev/null || break
  sleep 0.25
done
if [ -z "$ready" ]; then
  tail -n 40 "$work/log"
  say "kube-apiserver did not become ready"
  exit 1
fi
export KUBECONFIG="$work/kapi/kubeconfig"
k() { "$bin/kapi" kubectl "$@"; }
say "kube-apiserver $(k version -o json | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p' | tail -n 1) ready"

# The CRDs, from the same Go modules the kubeconform schemas were made from
# (copied there by scripts/deps.sh).
crds=("$root"/.deps/k8s-schemas/crds/*.yaml)
k apply --server-side "${crds[@]/#/-f}" >/dev/null
k wait --for=condition=Established crd --all --timeout=60s >/dev/null
say "CRDs established: ${#crds[@]}"

# shellcheck source=scripts/chart-cases.sh
source "$root/scripts/chart-cases.sh"
for c in "${cases[@]}"; do
  name="${c%%|*}"
  opts="${c#*|}"
  k create namespace "sluice-$name" >/dev/null
  # shellcheck disable=SC2086 # the options are words
  if ! "$bin/helm" install sluice "$chart" -n "sluice-$name" $opts >"$work/out" 2>&1; then
    cat "$work/out"
    say "the server refused the chart ($name)"
    exit 1
  fi
  say "helm install ($name): $(k get all,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets,ingresses,roles,rolebindings,scaledobjects,httproutes,prometheusrules,podmonitors -n "sluice-$name" --no-headers 2>/dev/null | wc -l) objects stored"
done

# An upgrade reads the generated Secret back (lookup): it must not change.
secret() { k get secret sluice-secrets -n sluice-default -o jsonpath='{.data}' | sha256sum; }
before="$(secret)"
"$bin/helm" upgrade sluice "$chart" -n sluice-default >/dev/null
[ "$before" = "$(secret)" ] || { say "helm upgrade changed the generated Secret"; exit 1; }
say "helm upgrade keeps the generated Secret"

# The chart's own objects, each broken in a way the server must refuse.
"$bin/helm" template sluice "$chart" -n sluice-default >"$work/default.yaml"
"$root/.deps/venv/bin/python" - "$work/default.yaml" "$work" <<'PY'
import copy, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def first(kind, component):
    return next(d for d in docs if d["kind"] == kind
                and d["metadata"]["labels"].get("app.kubernetes.io/component") == component)
def write(name, doc):
    doc["metadata"]["name"] += "-broken"
    yaml.safe_dump(doc, open(f"{sys.argv[2]}/bad-{name}.yaml", "w"))
d = copy.deepcopy(first("Deployment", "gateway"))
c = d["spec"]["template"]["spec"]["containers"][0]
c["resource"] = c.pop("resources")
write("unknown-field", d)
d = copy.deepcopy(first("Deployment", "processor"))
d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] = "someone-else"
write("selector-mismatch", d)
s = copy.deepcopy(first("ScaledObject", "processor"))
s["spec"]["minReplicaCount"] = "one"
write("wrong-type", s)
s = copy.deepcopy(first("ScaledObject", "transformer"))
s["spec"]["triggers"][0]["typo"] = True
write("crd-unknown-field", s)
PY
for f in "$work"/bad-*.yaml; do
  name="$(basename "$f" .yaml)"
  if k apply --server-side --dry-run=server --validate=strict -n sluice-default -f "$f" >"$work/out" 2>&1; then
    say "the server accepted $name"
    exit 1
  fi
  say "refused ${name#bad-}: $(tr '\n' ' ' <"$work/out" | cut -c1-150)"
done
say "ok"
