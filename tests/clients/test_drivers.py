"""Real PostgreSQL drivers against both test servers: SQLAlchemy 2 (psycopg2 and psycopg 3)
with its Inspector and pandas, asyncpg, pg8000, polars + ConnectorX, and node-postgres.

They cannot share the main venv (it pins SQLAlchemy 1.4 for flightsql-dbapi), so they live in
.venv-drivers and tests/clients/drivers/node, installed by scripts/clients/install-drivers.sh
(run here when missing; it is idempotent and fast once done). Each script under
tests/clients/drivers prints one JSON line per check; it runs once per server and each check
below is one test, so a check that never printed (a crash, a hang) fails too.
"""
import json
import os
import subprocess

import pytest

from conftest import ADMIN_PASSWORD, ANALYST_PASSWORD, ROOT  # noqa: F401

DRIVERS = os.path.join(ROOT, "tests", "clients", "drivers")
VENV_PY = os.path.join(ROOT, ".venv-drivers", "bin", "python")
INSTALL = os.path.join(ROOT, "scripts", "clients", "install-drivers.sh")

ISOLATION = ["isolation.other_database_refused", "isolation.other_catalog_refused", "isolation.metadata_hides_other_tenant"]

SQLALCHEMY = [
    "connect",
    "inspector.schema_names", "inspector.table_names", "inspector.table_names_default_schema", "inspector.view_names",
    "inspector.columns", "inspector.pk_constraint", "inspector.foreign_keys", "inspector.indexes",
    "inspector.unique_constraints", "inspector.check_constraints", "inspector.table_comment", "inspector.has_table",
    "reflect_table", "text_params", "text_params_int_vs_numeric", "text_expanding_in", "core_select_group_by",
    "pandas.read_sql", "pandas.read_sql_table", "pandas.read_sql_chunks_stream_results",
]
ASYNCPG = ["connect", "server_version", "fetch_params", "fetch_limit_param", "fetch_decimal_param", "types", "table_types",
           "prepared_statement", "cursor_in_transaction", "transaction_readonly", "copy_from_query_csv", "pool_with_reset",
           "connection_reset"]
PG8000 = ["native.connect", "native.params", "native.decimal_param", "native.limit_param", "native.types",
          "native.prepared_statement", "native.large_result", "dbapi.connect", "dbapi.params_in_transaction", "dbapi.autocommit"]
POLARS = [f"{p}{suffix}" for p in ["default", "binary", "csv", "cursor", "simple"] for suffix in ["", ".decimal_timestamptz"]] + ["partition_on"]
NODE = ["client.connect", "client.params", "client.numeric_param_as_string", "client.numeric_param_as_number",
        "client.limit_param", "client.types", "client.named_prepared_statement", "client.rowmode_array",
        "client.cursor_large_result", "client.transaction", "pool.concurrent_queries", "pool.checkout_reuse"]

# script id -> (command after the settings, check-name prefix, checks on every server, checks on `secured` only)
SCRIPTS = {
    "sqlalchemy-psycopg2": ([VENV_PY, os.path.join(DRIVERS, "sqlalchemy_checks.py")], ["psycopg2"], "psycopg2.", SQLALCHEMY, ISOLATION),
    "sqlalchemy-psycopg": ([VENV_PY, os.path.join(DRIVERS, "sqlalchemy_checks.py")], ["psycopg"], "psycopg.", SQLALCHEMY, ISOLATION),
    "asyncpg": ([VENV_PY, os.path.join(DRIVERS, "asyncpg_checks.py")], [], "asyncpg.", ASYNCPG, ISOLATION),
    "pg8000": ([VENV_PY, os.path.join(DRIVERS, "pg8000_checks.py")], [], "pg8000.", PG8000,
               ["isolation.other_catalog_refused", "isolation.other_database_refused", "isolation.metadata_hides_other_tenant"]),
    "polars-connectorx": ([VENV_PY, os.path.join(DRIVERS, "polars_checks.py")], [], "polars.connectorx.", POLARS,
                          ["isolation.other_database_refused", "isolation.other_catalog_refused"]),
    "node-pg": (["node", os.path.join(DRIVERS, "node", "checks.js")], [], "node-pg.", NODE, ISOLATION),
}


def cases():
    for server in ["demo", "secured"]:
        for script, (_, _, prefix, common, secured_only) in SCRIPTS.items():
            for check in common + (secured_only if server == "secured" else []):
                yield pytest.param(server, script, prefix + check, id=f"{server}-{script}-{check}")


def settings(server_name, server):
    if server_name == "demo":
        return {"host": server.pg_host, "port": server.pg_port, "user": "demo", "password": "", "dbname": "demo",
                "sslmode": "disable", "other_tenant": None}
    return {"host": server.pg_host, "port": server.pg_port, "user": "analyst", "password": ANALYST_PASSWORD,
            "dbname": "acme", "sslmode": "require", "other_tenant": "demo"}


@pytest.fixture(scope="session")
def drivers_installed():
    subprocess.run(["bash", INSTALL], check=True, timeout=900)


@pytest.fixture(scope="session")
def driver_runs():
    return {}


def run_script(runs, server_name, server, script):
    key = (server_name, script)
    if key not in runs:
        command, extra, _, _, _ = SCRIPTS[script]
        try:
            proc = subprocess.run(command + [json.dumps(settings(server_name, server))] + extra,
                                  capture_output=True, text=True, timeout=600, cwd=ROOT)
            out, err, code = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err, code = "timed out after 600 s", "timeout"
        results = {}
        for line in out.splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and "check" in item:
                results[item["check"]] = item
        runs[key] = (results, code, err[-3000:])
        if os.environ.get("SALESPULSE_DRIVER_RESULTS"):  # keep the raw lines for a report
            os.makedirs(os.environ["SALESPULSE_DRIVER_RESULTS"], exist_ok=True)
            with open(os.path.join(os.environ["SALESPULSE_DRIVER_RESULTS"], f"{server_name}-{script}.jsonl"), "w") as f:
                f.write(out)
                f.write(json.dumps({"exit": code, "stderr_tail": err[-3000:]}) + "\n")
    return runs[key]


@pytest.mark.parametrize("server_name,script,check", list(cases()))
def test_driver_check(request, drivers_installed, driver_runs, server_name, script, check):
    server = request.getfixturevalue(server_name)
    results, code, stderr = run_script(driver_runs, server_name, server, script)
    item = results.get(check)
    assert item is not None, f"{script} printed no result for {check} (exit {code}); stderr tail:\n{stderr}"
    detail = item.get("detail")
    sql = detail.get("sql") if isinstance(detail, dict) else None
    assert item["ok"], item["error"] + (f"\nSQL: {sql}" if sql else "")
