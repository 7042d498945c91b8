#!/usr/bin/env bash
# Installs what tests/clients/test_superset.py runs: .venv-superset, a venv of its own with
# - apache-superset==6.1.0 from PyPI, constrained by tests/clients/superset/constraints-6.1.0.txt
#   (Superset needs SQLAlchemy < 2 and its own Flask stack, so it cannot share .venv);
# - psycopg2-binary, the driver Superset uses for postgresql:// (PostgresEngineSpec's
#   default driver is psycopg2; Superset's images bundle it, PyPI's apache-superset does not);
# - clients/salespulse-superset, the package that makes datafusion+flightsql:// work (the
#   one-line install for users: `pip install ./clients/salespulse-superset`).
# Idempotent: skipped while the stamp holding the hash of these inputs matches.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PYTHON:-python3}"
VENV=.venv-superset
CONSTRAINTS=tests/clients/superset/constraints-6.1.0.txt
PACKAGE=clients/salespulse-superset

want="$( (cat "$CONSTRAINTS" "$0"; find "$PACKAGE" -type f \( -name '*.py' -o -name '*.toml' \) -not -path '*/build/*' | sort | xargs cat) | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/superset" ] && [ "$(cat "$VENV/.installed" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# One resolver run for everything. --no-build-isolation: the local package builds with the
# venv's own setuptools (pinned in the constraints) instead of fetching one.
"$VENV/bin/pip" install --quiet --disable-pip-version-check setuptools -c "$CONSTRAINTS"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation \
  -c "$CONSTRAINTS" apache-superset==6.1.0 psycopg2-binary "./$PACKAGE"
rm -rf "$PACKAGE/build" "$PACKAGE"/src/*.egg-info
echo "$want" > "$VENV/.installed"
