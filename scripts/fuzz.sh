#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 20) each, starting from
# the corpus kept in fuzz/corpus/<target> (read only: what a run finds goes
# to a temporary directory), and prints how long each ran and how many
# inputs it tried. A crash fails the run and leaves its input in
# fuzz/artifacts/<target>/. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# No sanitizer: the code is safe Rust (forbid(unsafe_code)), and `none`
# builds on the stable toolchain.
cargo fuzz build -s none
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$work/$target"
  log="$work/$target.log"
  if ! cargo fuzz run -s none "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target FAILED (input in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' || echo "?")
  echo "fuzz: $target ran ${seconds}s without a crash: $runs inputs"
done
