#!/usr/bin/env bash
# Stops everything `make up` started: SIGTERM, then SIGKILL after 15 s.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
run="$root/.sluice/run"
[ -d "$run" ] || { echo "down: nothing running"; exit 0; }
# Services first (they drain), servers last.
for name in gateway processor dynamodb nats; do
  f="$run/$name.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    echo "down: stopped $name"
  fi
  rm -f "$f"
done
