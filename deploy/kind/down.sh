#!/usr/bin/env bash
# `make kind-down`: deletes the kind cluster `make kind-up` made.
set -euo pipefail
cluster="${SLUICE_KIND_CLUSTER:-sluice}"
if ! command -v kind >/dev/null; then
  echo "kind-down: kind is missing: nothing to delete"
  exit 0
fi
kind delete cluster --name "$cluster"
