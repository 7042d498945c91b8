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
cargo test --workspace --locked

# psql, for the PostgreSQL endpoint tests (Debian's postgresql-client).
if ! command -v psql >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql-client >/dev/null
fi

# Python clients: a venv with pinned packages (created once, reused after).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
SALESPULSE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/salespulse" .venv/bin/python -m pytest tests/clients -q -p no:cacheprovider

# The fuzz targets (tickets and handles, credentials, the config file), 20 s each.
bash scripts/fuzz.sh 20
