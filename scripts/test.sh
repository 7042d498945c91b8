#!/usr/bin/env bash
# The one test command: builds everything once, runs the Rust tests, then the real-client
# tests in Python against the binary `cargo test` built. Installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build first, then run. A clean-clone CI run once failed to link the integration-test binary
# (exit status 1) with the linker's own message lost after the linker's command line, which
# is tens of KB on one line: lines are cut to 2,000 characters so the message shows. A failed
# build prints the disk and memory it had and is retried once with one job, since two ~300 MB
# debug binaries linking at once are the build's peak.
# No incremental cache in a one-off build: it only costs disk (about 500 MB).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
if ! cargo test --workspace --locked --no-run 2>&1 | cut -c1-2000; then
  echo "build failed; disk and memory at the time:"
  df -h . "${CARGO_TARGET_DIR:-target}" "${TMPDIR:-/tmp}" || true
  free -m || true
  echo "retrying the build with one job"
  cargo test --workspace --locked --no-run -j 1 2>&1 | cut -c1-2000
fi
# The real client programs install while the Rust tests run (downloads, not CPU): psql, a
# JDK and pgjdbc from Debian; the main venv (ADBC, flightsql-dbapi, psycopg); SQLAlchemy 2,
# asyncpg, pg8000, ConnectorX and node-postgres (scripts/clients/install-drivers.sh); Superset
# 6.1 in a venv of its own (scripts/clients/install-superset.sh). Each step is skipped when
# its stamp matches, so a warm machine spends seconds here.
mkdir -p target
install_log=target/clients-install.log
bash scripts/clients/install-all.sh >"$install_log" 2>&1 &
install_pid=$!

cargo test --workspace --locked

if ! wait "$install_pid"; then
  echo "installing the client programs failed:"
  cat "$install_log"
  exit 1
fi

# The fleet test needs moto_server from the venv just installed: two query replicas and two
# refreshers of the binary on one S3 bucket (tests/fleet.rs). Same flags as above: no rebuild.
SALESPULSE_MOTO_SERVER="$PWD/.venv/bin/moto_server" cargo test --workspace --locked --test integration -- --ignored fleet::

# Every real-client test, against the binary `cargo test` built. SALESPULSE_CLIENTS_REQUIRED
# turns a missing client program into a failure instead of a skip.
SALESPULSE_CLIENTS_REQUIRED=1 SALESPULSE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/salespulse" \
  .venv/bin/python -m pytest tests/clients -q -p no:cacheprovider

# The fuzz targets (tickets and handles, credentials, the config file), 20 s each.
bash scripts/fuzz.sh 20
