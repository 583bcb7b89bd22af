#!/usr/bin/env bash
# Installs the real servers sluice talks to into .deps/ (git-ignored), from
# package registries only. Idempotent: what is already there is kept.
#
#   .deps/bin/nats-server          NATS server with JetStream (Go module proxy)
#   .deps/dynamodb-local/          DynamoDB Local + native SQLite (Maven Central)
#   .deps/cargo/bin/cargo-deny     licence, duplicate and advisory checks (crates.io)
#   .deps/venv/bin/st              schemathesis, the OpenAPI conformance checker (PyPI)
#   .deps/mailbox-venv/            aiosmtpd for scripts/mailbox.py, the SMTP server (PyPI)
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

log "done"
