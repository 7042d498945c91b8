#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets: ticket, credentials, config) for a bounded
# time each, with AddressSanitizer. scripts/test.sh runs it for 20 s per target; run longer
# by hand: scripts/fuzz.sh [SECONDS per target]   (default 60)
# cargo-fuzz needs nightly compiler flags; the stable toolchain is told to allow them
# (RUSTC_BOOTSTRAP), as CI has no other toolchain. The targets build the config crate only
# (no DataFusion), so the instrumented build takes a couple of minutes.
# Each run starts from the committed seeds (fuzz/corpus); new finds stay in a temporary
# folder. A crash stops the script with the input saved under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"
for target in ticket credentials config pg_login; do
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$target/." "$work/"
  echo "fuzzing $target for ${SECONDS_PER_TARGET}s"
  if ! cargo fuzz run --fuzz-dir fuzz "$target" "$work" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -print_final_stats=1 > "$work.log" 2>&1; then
    tail -n 60 "$work.log"
    echo "fuzz target $target failed: the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^Done" "$work.log" || tail -n 3 "$work.log"
  rm -rf "$work" "$work.log"
done
