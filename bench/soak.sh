#!/usr/bin/env bash
# The soak run: two gatehouse instances sharing a real redis-server, the
# real OpenID provider (npm oidc-provider), a mixed workload (signed-in
# pages with assertions on both instances, sign-ins through the provider,
# websocket sessions, 8 MiB uploads) while faults are injected in turn:
# upstream killed and restarted, Redis killed and restarted, provider
# stopped and started, configuration replaced by a broken file then a valid
# one. Loopback only; bounded in time.
#
# Prints requests and errors by kind (every error must be explained by the
# fault whose window it falls in: none after recovery), p99 latency, and
# both instances' RSS after warm-up and at the end; exits 1 otherwise.
# Usage: bench/soak.sh [seconds]   (default 240; at least 60)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-240}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "node not found: install Node.js 20 first" >&2; exit 1; }
[ -d tests/e2e/node_modules/oidc-provider ] || ( cd tests/e2e && npm ci --no-audit --no-fund --silent )

# `cargo bench` builds gatehouse and the soak driver with the release profile.
exec cargo bench -q -p gatehouse --bench soak -- --secs "$SECS"
