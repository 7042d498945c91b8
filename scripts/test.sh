#!/usr/bin/env bash
# The one test command: builds everything once, runs the Rust tests, then the real-client
# tests in Python against the binary `cargo test` built. Installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

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
