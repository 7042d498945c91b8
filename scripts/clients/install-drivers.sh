#!/usr/bin/env bash
# Installs the PostgreSQL-protocol client drivers that tests/clients/test_drivers.py runs:
# - .venv-drivers: a venv of its own with tests/clients/drivers/requirements.txt (SQLAlchemy 2,
#   psycopg2, psycopg 3, pandas, asyncpg, pg8000, polars + ConnectorX); the main .venv pins
#   SQLAlchemy 1.4 for flightsql-dbapi, so they cannot share one;
# - tests/clients/drivers/node/node_modules: node-postgres (`pg`) from package-lock.json (npm ci).
# Idempotent: each part is skipped while a stamp holding the hash of its inputs matches.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PYTHON:-python3}"
VENV=.venv-drivers
REQ=tests/clients/drivers/requirements.txt
NODE_DIR=tests/clients/drivers/node

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

want="$(hash_of "$REQ")"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$VENV/.installed"
fi

if command -v npm >/dev/null 2>&1; then
  want="$(hash_of "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json")"
  if [ ! -d "$NODE_DIR/node_modules/pg" ] || [ "$(cat "$NODE_DIR/node_modules/.installed" 2>/dev/null)" != "$want" ]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" > "$NODE_DIR/node_modules/.installed"
  fi
else
  echo "install-drivers: npm not found; the node-postgres checks will fail" >&2
fi
