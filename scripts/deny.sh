#!/usr/bin/env bash
# cargo deny: licences, bans (duplicate versions), sources, and security
# advisories. The advisory database lives on GitHub; where it cannot be
# reached (a machine that can only reach package registries) the advisory
# check says so and is skipped; the other checks always run. Advisories can
# still be checked offline: SLUICE_ADVISORY_DB names a cargo-deny database
# folder filled on a connected machine (`cargo deny fetch` with that db-path).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deny="$root/.deps/cargo/bin/cargo-deny"
[ -x "$deny" ] || bash "$root/scripts/deps.sh"
cd "$root"
"$deny" --log-level error check licenses bans sources
if [ -n "${SLUICE_ADVISORY_DB:-}" ]; then
  cfg="$(mktemp)"; trap 'rm -f "$cfg"' EXIT
  sed "s|^\[advisories\]|[advisories]\ndb-path = \"$SLUICE_ADVISORY_DB\"|" deny.toml >"$cfg"
  "$deny" --log-level error check --config "$cfg" --disable-fetch advisories
elif timeout 20 git ls-remote -q https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  "$deny" --log-level error check advisories
else
  echo "deny: advisories NOT checked: github.com/rustsec/advisory-db cannot be reached from this machine" >&2
  echo "deny: (SLUICE_ADVISORY_DB can name a database fetched elsewhere; see scripts/deny.sh)" >&2
fi
