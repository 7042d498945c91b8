"""Every panel's every target of the shipped Grafana dashboards, as Grafana sends it, on both
test servers: examples/grafana/dashboards/sales-department.json over the PostgreSQL
datasource and sales-department-flightsql.json over the Flight SQL plugin (ADBC with the
`x-salespulse-compat: grafana` header, the plugin's metadata). Variables are interpolated and
macros expanded as Grafana's sources do (grafana_expand.py cites them), with the dashboard's
own time range (`now-6M`..`now`, with "now" the demo's as-of time plus Grafana's
milliseconds), first with the variables' defaults (All) and then with one department and
two of its managers, as the variable queries themselves return them.
"""
import json
import os
from datetime import datetime, timezone

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pyarrow as pa
import pytest

import grafana_expand as g
from conftest import ANALYST_PASSWORD, ROOT

DASHBOARDS = os.path.join(ROOT, "examples", "grafana", "dashboards")
NOW = datetime(2026, 6, 15, 12, 0, 0, 250000, tzinfo=timezone.utc)  # the demo's --as-of, plus Grafana's ms
SERVERS = ["demo", "secured"]


def board(name):
    with open(os.path.join(DASHBOARDS, name)) as f:
        return json.load(f)


PG = board("sales-department.json")
FS = board("sales-department-flightsql.json")


def time_range(b):
    return g.relative_range(b["time"]["from"], b["time"]["to"], NOW)


def interval_ms(panel, b):
    """Grafana's interval is max(range / max data points, the panel's min interval). 6 months
    over ~1,000 points is ~4.4 h; every Flight SQL panel sets 1d, which then wins."""
    if "interval" in panel:
        return int(g.parse_interval(panel["interval"]) * 1000)
    frm, to = time_range(b)
    return int((to - frm).total_seconds() * 1000 / 1000)


def targets(b, key):
    for panel in b["panels"]:
        for target in panel.get("targets", []):
            yield pytest.param(panel, target, id=f"{panel['title']}-{target['refId']}")


# --- connections as each datasource makes them -----------------------------------------------------

@pytest.fixture(scope="module")
def pg_conns(request):
    conns = {}

    def get(server_name):
        if server_name not in conns:
            server = request.getfixturevalue(server_name)
            if server_name == "demo":
                conns[server_name] = psycopg.connect(host=server.pg_host, port=server.pg_port, dbname="demo", user="demo", autocommit=True)
            else:
                conns[server_name] = psycopg.connect(host=server.pg_host, port=server.pg_port, dbname="acme", user="analyst",
                                                     password=ANALYST_PASSWORD, sslmode="require", autocommit=True)
        return conns[server_name]
    yield get
    for conn in conns.values():
        conn.close()


@pytest.fixture(scope="module")
def fs_conns(request):
    conns = {}

    def get(server_name):
        if server_name not in conns:
            server = request.getfixturevalue(server_name)
            kwargs = {"adbc.flight.sql.rpc.call_header.x-salespulse-compat": "grafana"}
            if server_name == "secured":
                kwargs.update({"username": "analyst", "password": ANALYST_PASSWORD,
                               "adbc.flight.sql.client_option.tls_skip_verify": "true",
                               "adbc.flight.sql.rpc.call_header.database": "acme"})
            conns[server_name] = flightsql.connect(server.grpc, db_kwargs=kwargs)
        return conns[server_name]
    yield get
    for conn in conns.values():
        conn.close()


def run_pg(conn, sql):
    # Grafana's pgx datasource prepares each query (pgx's statement cache): a named statement.
    with conn.cursor() as cur:
        cur.execute(sql, prepare=True)
        names = [d.name for d in cur.description]
        return names, cur.fetchall()


def run_fs(conn, sql):
    # The plugin sends CommandStatementQuery (client.Execute), as ADBC's execute does.
    with conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    return table


# --- variables ------------------------------------------------------------------------------------------

def variables(b):
    return {v["name"]: v for v in b["templating"]["list"]}


def variable_query(v):
    q = v["query"]
    return q if isinstance(q, str) else q.get("rawSql") or q.get("queryText")


def selections(b, server_name, run_values):
    """[("all", values), ("one-department", values)]: the defaults, then the first department
    that has managers and two of them, read with the variable queries as Grafana does."""
    vs = variables(b)
    frm, to = time_range(b)
    all_values = {name: g.ALL for name in vs}
    departments = run_values(g_expand(b, variable_query(vs["department"]), frm, to, 60000, vs, all_values))
    assert departments, "the department variable query returned nothing"
    for dep in departments:
        chosen = {"department": [dep], "manager": g.ALL}
        managers = run_values(g_expand(b, variable_query(vs["manager"]), frm, to, 60000, vs, chosen))
        if managers:
            return [("all", all_values), ("one-department", {"department": [dep], "manager": managers[:2]})]
    raise AssertionError("no department has managers")


def g_expand(b, sql, frm, to, ms, vs, values):
    if b is FS:
        return g.flightsql_datasource(sql, frm, to, ms, vs, values)
    return g.postgres_datasource(sql, frm, to, ms, vs, values)


_selection_cache = {}


def pg_selections(pg_conns, server_name):
    key = ("pg", server_name)
    if key not in _selection_cache:
        conn = pg_conns(server_name)

        def values(sql):
            names, rows = run_pg(conn, sql)
            return [str(r[names.index("__value")]) for r in rows]
        _selection_cache[key] = selections(PG, server_name, values)
    return _selection_cache[key]


def fs_selections(fs_conns, server_name):
    key = ("fs", server_name)
    if key not in _selection_cache:
        conn = fs_conns(server_name)

        def values(sql):
            table = run_fs(conn, sql)
            return [str(v) for v in table.column("__value").to_pylist()]
        _selection_cache[key] = selections(FS, server_name, values)
    return _selection_cache[key]


# --- the tests ----------------------------------------------------------------------------------------------

def test_dashboards_match():
    """The Flight SQL dashboard has the PostgreSQL one's panels (and more), its datasource
    everywhere, and a min interval on each panel (see interval_ms)."""
    assert {p["title"] for p in PG["panels"]} <= {p["title"] for p in FS["panels"]}
    assert [v["name"] for v in PG["templating"]["list"]] == [v["name"] for v in FS["templating"]["list"]]
    for p in FS["panels"]:
        assert p["datasource"]["type"] == "influxdata-flightsql-datasource"
        assert "interval" in p
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "salespulse-flightsql" and t["queryText"]
    for v in FS["templating"]["list"]:
        assert v["datasource"]["uid"] == "salespulse-flightsql" and isinstance(v["query"], str)


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.parametrize("panel,target", list(targets(PG, "rawSql")))
def test_postgres_dashboard_target(pg_conns, server_name, panel, target):
    conn = pg_conns(server_name)
    frm, to = time_range(PG)
    failures = []
    for label, values in pg_selections(pg_conns, server_name):
        sql = g.postgres_datasource(target["rawSql"], frm, to, interval_ms(panel, PG), variables(PG), values)
        assert "$" not in sql, sql
        try:
            names, rows = run_pg(conn, sql)
        except psycopg.Error as e:
            failures.append(f"[{label}] {type(e).__name__}: {e}\nSQL: {sql}")
            continue
        if target.get("format") == "time_series":
            assert "time" in names, f"time series without a time column: {names}"
        if label == "all" and not rows:
            failures.append(f"[{label}] no rows\nSQL: {sql}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.parametrize("panel,target", list(targets(FS, "queryText")))
def test_flightsql_dashboard_target(fs_conns, server_name, panel, target):
    conn = fs_conns(server_name)
    frm, to = time_range(FS)
    failures = []
    for label, values in fs_selections(fs_conns, server_name):
        interpolated = g.interpolate_variables(target["queryText"], variables(FS), values)
        sql = g.flightsql_backend(interpolated, frm, to, interval_ms(panel, FS))
        assert sql == g.flightsql_backend(interpolated, frm, to, interval_ms(panel, FS), reverse=True), \
            "expands differently depending on the plugin's (random) macro order"
        assert "$" not in sql, sql
        try:
            table = run_fs(conn, sql)
        except Exception as e:  # noqa: BLE001 - ADBC raises its own error classes
            failures.append(f"[{label}] {type(e).__name__}: {e}\nSQL: {sql}")
            continue
        for field in table.schema:
            # What the plugin renders (docs/clients.md): ns timestamps, numbers, bools, Utf8.
            if not ((pa.types.is_timestamp(field.type) and field.type.unit == "ns") or pa.types.is_integer(field.type)
                    or pa.types.is_floating(field.type) or pa.types.is_string(field.type) or pa.types.is_boolean(field.type)):
                failures.append(f"[{label}] column {field} is a type the plugin drops\nSQL: {sql}")
        if target.get("format") == "time_series" and "time" not in table.schema.names:
            failures.append(f"[{label}] time series without a time column: {table.schema.names}")
        if label == "all" and table.num_rows == 0:
            failures.append(f"[{label}] no rows\nSQL: {sql}")
    assert not failures, "\n\n".join(failures)
