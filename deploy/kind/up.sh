#!/usr/bin/env bash
# `make kind-up`: a kind cluster with ingress-nginx and KEDA, sluice's images
# loaded, the chart installed with values-dev.yaml; then the addresses.
# Needs docker (or podman), kind, kubectl and helm on PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cluster="${SLUICE_KIND_CLUSTER:-sluice}"
namespace="${SLUICE_NAMESPACE:-sluice}"
release="${SLUICE_RELEASE:-sluice}"
# The chart's object names: the release name, or "<release>-sluice" when it
# does not hold "sluice" (the chart's fullname).
case "$release" in *sluice*) fullname="$release" ;; *) fullname="$release-sluice" ;; esac
# Pinned: what this script was written against.
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.13.3}"
KEDA_VERSION="${KEDA_VERSION:-2.18.1}"
say() { printf 'kind-up: %s\n' "$*"; }

for tool in docker kind kubectl helm cargo; do
  if ! command -v "$tool" >/dev/null; then
    if [ "$tool" = docker ] && command -v podman >/dev/null; then
      export KIND_EXPERIMENTAL_PROVIDER=podman
      continue
    fi
    say "$tool is missing: install it (docker: https://docs.docker.com/get-docker/, kind: go install sigs.k8s.io/kind@v0.30.0, kubectl and helm: their release pages, cargo: https://rustup.rs)"
    exit 1
  fi
done

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  say "cluster $cluster exists"
else
  kind create cluster --name "$cluster" --config "$root/deploy/kind/cluster.yaml" --wait 120s
fi
kubectl config use-context "kind-$cluster" >/dev/null

say "ingress-nginx $INGRESS_NGINX_VERSION"
kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$INGRESS_NGINX_VERSION/deploy/static/provider/kind/deploy.yaml" >/dev/null
say "KEDA $KEDA_VERSION"
kubectl apply --server-side -f "https://github.com/kedacore/keda/releases/download/v$KEDA_VERSION/keda-$KEDA_VERSION.yaml" >/dev/null

say "images"
bash "$root/scripts/images.sh"
for archive in "$root"/.sluice/images/sluice-*.tar; do
  kind load image-archive --name "$cluster" "$archive"
done

kubectl -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=180s
kubectl -n keda rollout status deployment/keda-operator --timeout=180s

say "installing the chart (values-dev.yaml)"
helm upgrade --install "$release" "$root/deploy/helm/sluice" \
  --namespace "$namespace" --create-namespace \
  -f "$root/deploy/helm/sluice/values-dev.yaml" \
  --wait --timeout 10m

key="$(kubectl -n "$namespace" get secret "$fullname-secrets" -o jsonpath='{.data.admin-api-key}' | base64 -d)"
grafana="$(kubectl -n "$namespace" get secret "$fullname-secrets" -o jsonpath='{.data.grafana-admin-password}' | base64 -d)"
cat <<INFO

sluice is up on kind (cluster $cluster, namespace $namespace).
  API         http://sluice.localtest.me          (x-api-key: $key)
  uploads     http://s3.sluice.localtest.me
  Grafana     http://grafana.sluice.localtest.me  (admin / $grafana)
  Jaeger      http://jaeger.sluice.localtest.me
  Temporal UI kubectl -n $namespace port-forward svc/$fullname-temporal 8233
  helm test   helm test $release -n $namespace

  curl -H "x-api-key: $key" -H 'content-type: application/json' \\
    -d '{"source":"com.example.shop","detail-type":"CartAbandoned","detail":{"cart":"c-17"}}' \\
    http://sluice.localtest.me/v1/events
INFO
