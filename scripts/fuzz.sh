#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets: ticket, config) for a bounded time each.
# Usage: scripts/fuzz.sh [SECONDS per target]   (default 30)
# cargo-fuzz needs nightly features; the stable toolchain is told to allow them
# (RUSTC_BOOTSTRAP), as this machine has no other toolchain. The corpus grows under
# fuzz/corpus (committed seeds; new finds stay local) and crashes land in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
for target in ticket config; do
  mkdir -p "fuzz/corpus/$target"
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$target/." "$work/"
  cargo fuzz run --fuzz-dir fuzz "$target" "$work" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 5
  rm -rf "$work"
done
