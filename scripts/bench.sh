#!/usr/bin/env bash
# Benchmarks (not part of the tests): release build, then a comparison with DuckDB in the
# same run.
# Usage: scripts/bench.sh [SCALE ...]    snapshot write vs DuckDB (default: 1 10)
#        scripts/bench.sh kpi [SCALE]    kpi views vs DuckDB (default: 10)
#        scripts/bench.sh bitrix24 [DEALS]  initial Bitrix24 sync against the mock portal at
#                                        the vendor's limits (default: 20000 deals)
#        scripts/bench.sh dashboard [SCALE] [ROUNDS]  the Grafana dashboard's queries in a loop,
#                                        with and without the result cache, vs DuckDB
#                                        (default: scale 10, 50 rounds)
#        scripts/bench.sh amocrm [DEALS]    initial amoCRM sync against the mock account at
#                                        the vendor's 7 requests/s (default: 10000 deals)
#        scripts/bench.sh load [CLIENTS] [SECONDS] [SCALE]  concurrent dashboard clients over
#                                        both protocols, vs DuckDB threads (default: 100, 60 s, 1)
#        scripts/bench.sh tenants [N ...]  N demo tenants on one query replica: start time, memory,
#                                        dashboard clients across them (default: 1 10 30)
#        scripts/bench.sh adhoc [SCALE ...] [OPTIONS]  ad-hoc analyst SQL over crm.* without the
#                                        result cache, each answer checked against DuckDB's
#                                        (default: 10; options: benches/adhoc.py --help)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "bitrix24" ]; then
  # Bound by the portal's 2 requests/s, not by the CPU: the test profile is enough.
  BENCH_DEALS="${2:-20000}" cargo test --locked --test integration bitrix24::bench_initial_sync_at_the_vendor_limits -- --ignored --nocapture
  exit 0
fi
if [ "${1:-}" = "amocrm" ]; then
  AMOCRM_BENCH_DEALS="${2:-10000}" cargo test --locked --test integration amocrm::bench_initial_sync_at_the_vendor_limits -- --ignored --nocapture
  exit 0
fi
cargo build --release --locked
if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --disable-pip-version-check -r benches/requirements.txt
export SALESPULSE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/salespulse"
if [ "${1:-}" = "kpi" ]; then
  shift
  .venv-bench/bin/python benches/kpi_vs_duckdb.py "$@"
elif [ "${1:-}" = "dashboard" ]; then
  shift
  .venv-bench/bin/python benches/dashboard_loop.py "$@"
elif [ "${1:-}" = "load" ]; then
  shift
  .venv-bench/bin/python benches/load.py "$@"
elif [ "${1:-}" = "tenants" ]; then
  shift
  .venv-bench/bin/python benches/tenants.py "$@"
elif [ "${1:-}" = "adhoc" ]; then
  shift
  .venv-bench/bin/python benches/adhoc.py "$@"
else
  .venv-bench/bin/python benches/snapshot_vs_duckdb.py "$@"
fi
