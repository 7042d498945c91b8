#!/usr/bin/env bash
# Installs every client program the tests in tests/clients run. Called by scripts/test.sh
# (in the background, while the Rust tests run); each part is idempotent and fast when done.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Debian: psql (postgresql-client), a JDK and pgjdbc (libpostgresql-jdbc-java), in one apt run.
packages=()
command -v psql >/dev/null 2>&1 || packages+=(postgresql-client)
command -v javac >/dev/null 2>&1 || packages+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || packages+=(libpostgresql-jdbc-java)
if [ ${#packages[@]} -gt 0 ]; then
  SUDO=()
  [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"; then
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}"
  fi
fi
bash scripts/clients/install-jdbc.sh

# The main venv: the Flight SQL clients, psycopg, the test runner.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt

# The drivers venv and node-postgres, and Superset, side by side.
bash scripts/clients/install-drivers.sh &
drivers=$!
bash scripts/clients/install-superset.sh
wait "$drivers"
echo "client programs installed"
