#!/usr/bin/env bash
# Benchmarks (not part of the tests): release build, then a comparison with DuckDB in the
# same run.
# Usage: scripts/bench.sh [SCALE ...]    snapshot write vs DuckDB (default: 1 10)
#        scripts/bench.sh kpi [SCALE]    kpi views vs DuckDB (default: 10)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --disable-pip-version-check -r benches/requirements.txt
export SALESPULSE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/salespulse"
if [ "${1:-}" = "kpi" ]; then
  shift
  .venv-bench/bin/python benches/kpi_vs_duckdb.py "$@"
else
  .venv-bench/bin/python benches/snapshot_vs_duckdb.py "$@"
fi
