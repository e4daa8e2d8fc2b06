#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine with Rust,
# then runs every check and test: formatting, clippy, unit tests and the
# end-to-end suites (the real gatehouse binary against real peers on
# loopback). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests need, installed only when missing.
# chromium: the browser tests (tests/e2e, driven by playwright-core);
# openssl: test keys made the way users make them;
# python3-venv: PyJWT for the interop tests, in tests/e2e/.venv;
# nginx, caddy: the front proxies of the forward-auth tests;
# pebble: Let's Encrypt's test CA, for autocert (with pebble-challtestsrv);
# openssh-server, openssh-client, redis-tools, postgresql(-client): real
# clients and servers through TCP tunnels.
APT_PACKAGES=(chromium openssl python3-venv nginx libnginx-mod-stream caddy redis-server pebble openssh-server openssh-client redis-tools postgresql postgresql-client)
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
[ ${#APT_PACKAGES[@]} -gt 0 ] && apt_install "${APT_PACKAGES[@]}"

command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >/dev/null 2>&1 || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

log "module cycles (scripts/module-cycles.py: none allowed in any crate)"
python3 scripts/module-cycles.py

command -v node >/dev/null || { echo "node not found: install Node.js 20 first" >&2; exit 1; }
log "npm packages for the end-to-end tests (oidc-provider, playwright-core)"
( cd tests/e2e && npm ci --no-audit --no-fund --silent )

log "Python packages for the interop tests (PyJWT)"
[ -x tests/e2e/.venv/bin/python ] || python3 -m venv tests/e2e/.venv
tests/e2e/.venv/bin/pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt

log "cargo test (unit + end-to-end)"
cargo test --workspace --all-features --locked

log "browser tests (headless Chromium + playwright-core)"
cargo build -q -p gatehouse --locked
( cd tests/e2e && node --test )

log "fuzz targets (cargo fuzz, 20 s each, corpus in fuzz/corpus)"
scripts/fuzz.sh 20
