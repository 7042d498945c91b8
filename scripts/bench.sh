#!/usr/bin/env bash
# Benchmarks (not part of the tests): release build, then benches/snapshot_vs_duckdb.py.
# Usage: scripts/bench.sh [SCALE ...]   (default: 1 10)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --disable-pip-version-check -r benches/requirements.txt
SALESPULSE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/salespulse" .venv-bench/bin/python benches/snapshot_vs_duckdb.py "$@"
