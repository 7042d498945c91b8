#!/usr/bin/env bash
# Installs what tests/clients/test_jdbc.py needs: a JDK (javac) and pgjdbc, the PostgreSQL
# JDBC driver of DBeaver and Metabase, from Debian (libpostgresql-jdbc-java 42.5.x; the jar
# is /usr/share/java/postgresql.jar). Idempotent: does nothing when both are present.
set -euo pipefail

JAR=/usr/share/java/postgresql.jar
packages=()
command -v javac >/dev/null 2>&1 || packages+=(default-jdk-headless)
[ -f "$JAR" ] || packages+=(libpostgresql-jdbc-java)

if [ ${#packages[@]} -eq 0 ]; then
    echo "install-jdbc: javac and $JAR already present"
    exit 0
fi

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
# A package list that is missing or stale makes apt-get install fail: update on failure.
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${packages[@]}"; then
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
fi
javac -version
ls -l "$JAR"
