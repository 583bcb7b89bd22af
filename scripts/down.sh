#!/usr/bin/env bash
# Stops everything `make up` started: SIGTERM, then SIGKILL after 10 s.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${SLUICE_STATE_DIR:-$root/.sluice}"
# shellcheck source=scripts/proc.sh
source "$root/scripts/proc.sh"
[ -d "$state/run" ] || { echo "down: nothing running"; exit 0; }
# Services first (they drain), servers last.
for name in gateway file-ingest orchestrator notifier transformer processor prometheus jaeger kafka minio temporal mailbox dynamodb nats; do
  [ -f "$state/run/$name.pid" ] || continue
  if alive "$name"; then
    stop_pid "$name"
    echo "down: stopped $name"
  fi
  rm -f "$state/run/$name.pid" "$state/run/$name.cmd"
done
