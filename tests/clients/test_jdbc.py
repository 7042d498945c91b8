"""pgjdbc, the JDBC driver inside DBeaver and Metabase, against the PostgreSQL endpoint.

tests/clients/jdbc/MetadataCheck.java calls every DatabaseMetaData method those tools call,
their session statements, typed prepared statements and ResultSetMetaData, and prints one
JSON line per check. It is compiled once per session into target/clients/jdbc and run
against the `demo` server and the TLS `secured` server as `analyst` (tenant acme only).

Needs a JDK and pgjdbc: scripts/clients/install-jdbc.sh (Debian's libpostgresql-jdbc-java,
42.5.x). `PGJDBC_JAR=/path/to/postgresql-42.7.x.jar` runs the same checks with another
driver version (DBeaver and Metabase bundle 42.7).
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ANALYST_PASSWORD, ROOT

SOURCE = os.path.join(ROOT, "tests", "clients", "jdbc", "MetadataCheck.java")
CLASSES = os.path.join(ROOT, "target", "clients", "jdbc")
JAR = os.environ.get("PGJDBC_JAR", "/usr/share/java/postgresql.jar")

# Every check MetadataCheck.java prints, in its order. Static on purpose: a check that does not
# run (a crash, a renamed check) shows up as a failure instead of silently disappearing.
CHECKS = [
    "connect",
    # DBeaver's session (PostgreDataSource / PostgreExecutionContext) through pgjdbc
    "conn.setClientInfo_ApplicationName",
    "conn.getSchema",
    "conn.getCatalog",
    "dbeaver.current_schema_session_user",
    "dbeaver.show_search_path",
    "conn.setSchema",
    "dbeaver.set_search_path",
    "conn.getTransactionIsolation",
    "conn.setTransactionIsolation",
    "conn.isValid",
    # DatabaseMetaData
    "dmd.getDatabaseProductName",
    "dmd.getDatabaseProductVersion",
    "dmd.getDatabaseMajorVersion",
    "dmd.getDatabaseMinorVersion",
    "dmd.getDriverVersion",
    "dmd.getUserName",
    "dmd.getURL",
    "dmd.getSQLKeywords",
    "dmd.getIdentifierQuoteString",
    "dmd.getSearchStringEscape",
    "dmd.getExtraNameCharacters",
    "dmd.getNumericFunctions",
    "dmd.getStringFunctions",
    "dmd.getSystemFunctions",
    "dmd.getTimeDateFunctions",
    "dmd.getCatalogTerm_SchemaTerm",
    "dmd.getMaxNameLengths",
    "dmd.getDefaultTransactionIsolation",
    "dmd.supports",
    "dmd.getRowIdLifetime",
    "dmd.getCatalogs",
    "dmd.getSchemas",
    "dmd.getSchemas_catalog_pattern",
    "dmd.getSchemas_crm",
    "dmd.getTableTypes",
    "dmd.getTables_all",
    "dmd.getTables_crm_types",
    "dmd.getTables_deals",
    "dmd.getTables_kpi",
    "dmd.getColumns_deals",
    "dmd.getColumns_all",
    "dmd.getPrimaryKeys",
    "dmd.getImportedKeys",
    "dmd.getExportedKeys",
    "dmd.getCrossReference",
    "dmd.getIndexInfo",
    "dmd.getIndexInfo_unique",
    "dmd.getBestRowIdentifier",
    "dmd.getVersionColumns",
    "dmd.getTypeInfo",
    "dmd.getFunctions",
    "dmd.getFunctions_pg_catalog",
    "dmd.getFunctionColumns",
    "dmd.getProcedures",
    "dmd.getProcedureColumns",
    "dmd.getTablePrivileges",
    "dmd.getColumnPrivileges",
    "dmd.getUDTs",
    "dmd.getClientInfoProperties",
    "dmd.getSuperTables",
    "dmd.getSuperTypes",
    "dmd.getAttributes",
    "dmd.getPseudoColumns",
    # statements, ResultSetMetaData, typed parameters
    "query.select_deals",
    "query.select_kpi_view",
    "rsmd.select_deals",
    "rsmd.select_calls",
    "rsmd.expressions",
    "prepared.setString",
    "prepared.setInt",
    "prepared.setLong",
    "prepared.setBigDecimal",
    "prepared.setTimestamp",
    "prepared.setTimestamp_calls",
    "prepared.setDate",
    "prepared.setDate_date_column",
    "prepared.setBoolean",
    "prepared.setBoolean_column",
    "prepared.setNull",
    "prepared.mixed",
    "prepared.reuse_named_statement",
    "prepared.getMetaData_before_execute",
    "prepared.getParameterMetaData",
    "query.fetch_size_in_transaction",
    "query.cancel_statement_timeout",
    # Metabase's connection options, checkout statements and sync calls
    "metabase.connect",
    "metabase.setReadOnly",
    "metabase.setAutoCommit",
    "metabase.setTransactionIsolation",
    "metabase.show_timezone",
    "metabase.set_session_timezone",
    "metabase.select_1",
    "metabase.getTables",
    "metabase.getColumns",
    "metabase.getPrimaryKeys",
    "metabase.getImportedKeys",
    "metabase.query_with_limit",
]

TARGETS = ["demo", "secured"]


@pytest.fixture(scope="session")
def metadata_check():
    """Compiles MetadataCheck.java (once; again only when the source is newer)."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if not (java and javac and os.path.isfile(JAR)):
        pytest.fail(f"needs java, javac and {JAR}: run scripts/clients/install-jdbc.sh")
    compiled = os.path.join(CLASSES, "MetadataCheck.class")
    if not os.path.isfile(compiled) or os.path.getmtime(compiled) < os.path.getmtime(SOURCE):
        os.makedirs(CLASSES, exist_ok=True)
        subprocess.run([javac, "-cp", JAR, "-d", CLASSES, SOURCE], check=True, capture_output=True, text=True)
    return [java, "-cp", os.pathsep.join([JAR, CLASSES]), "MetadataCheck"]


def run_checks(command, url, user, password):
    """Runs MetadataCheck; returns ({check: record}, stderr)."""
    proc = subprocess.run(command + [url, user, password], capture_output=True, text=True, timeout=600)
    records = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            records[record["check"]] = record
    return records, proc.stderr[-3000:]


_results = {}


@pytest.fixture(scope="session")
def jdbc_results(request, metadata_check):
    """Results per target, run on first use. URLs as docs/clients.md gives them:
    jdbc:postgresql://HOST:PORT/<tenant>, plus sslmode=require on the TLS server."""

    def results(target):
        if target not in _results:
            server = request.getfixturevalue(target)
            if target == "demo":
                url, user, password = f"jdbc:postgresql://{server.postgres}/demo", "demo", ""
            else:
                url, user, password = f"jdbc:postgresql://{server.postgres}/acme?sslmode=require", "analyst", ANALYST_PASSWORD
            _results[target] = run_checks(metadata_check, url, user, password)
        return _results[target]

    return results


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("target", TARGETS)
def test_pgjdbc(jdbc_results, target, check):
    records, stderr = jdbc_results(target)
    record = records.get(check)
    if record is None:
        connect = records.get("connect")
        if connect is not None and not connect["ok"]:
            pytest.fail(f"connect failed: {connect['error']}")
        pytest.fail(f"check {check} did not run; stderr:\n{stderr}")
    assert record["ok"], record["error"]


def test_every_check_is_listed(jdbc_results):
    records, _ = jdbc_results("demo")
    assert set(records) <= set(CHECKS), f"checks missing from CHECKS: {sorted(set(records) - set(CHECKS))}"


def _values(records, check):
    record = records.get(check)
    assert record is not None and record["ok"], f"{check}: {record and record['error']}"
    return record["values"]


def test_demo_metadata_lists_the_tenant(jdbc_results):
    records, _ = jdbc_results("demo")
    assert _values(records, "dmd.getCatalogs") == ["demo"]
    assert {"crm", "kpi", "system"} <= set(_values(records, "dmd.getSchemas"))
    tables = _values(records, "dmd.getTables_crm_types")
    assert {"crm.deals", "crm.calls", "crm.managers"} <= set(tables)
    columns = {v.split(".")[0] for v in _values(records, "dmd.getColumns_deals")}
    assert {"deal_id", "status", "amount", "created_at", "closed_at"} <= columns


def test_secured_metadata_shows_only_the_users_tenant(jdbc_results):
    """analyst may read acme only: the server also holds tenant demo with the same schemas and
    tables, so any listing of it (a catalog, or a schema/table twice) is a leak."""
    records, _ = jdbc_results("secured")
    assert _values(records, "dmd.getCatalogs") == ["acme"]
    assert records["conn.getCatalog"].get("note") == "acme"
    for check in ["dmd.getSchemas", "dmd.getSchemas_catalog_pattern", "dmd.getTables_all", "dmd.getTables_crm_types",
                  "dmd.getColumns_deals"]:
        values = _values(records, check)
        duplicates = sorted({v for v in values if values.count(v) > 1})
        assert not duplicates, f"{check} lists these twice (another tenant's?): {duplicates}"
        assert not any(v.startswith("demo.") or ".demo." in v for v in values), f"{check}: {values}"
    assert len(_values(records, "dmd.getTables_deals")) == 1
    assert _values(records, "dmd.getSchemas_crm") == ["crm"]
