"""Apache Superset 6.1.0 from PyPI, stock configuration, driven through its REST API, on
both documented URIs (docs/clients.md, examples/superset): Flight SQL
(`datafusion+flightsql://`, through clients/salespulse-superset) and PostgreSQL
(`postgresql://`, psycopg2).

Superset runs from .venv-superset (scripts/clients/install-superset.sh), never imports
anything of ours but what its entry points load, and is started once (superset_server.py). Each
check is its own test, parametrized by URI, so a skipped or failed one shows by name.
"""
import json
import uuid

import pytest

from conftest import ANALYST_PASSWORD
from superset_server import requires_superset, superset  # noqa: F401  (the fixture)

# name -> (server fixture, URI template, tenant). The URIs are the ones the docs give.
URIS = {
    "flightsql-demo": ("demo", "datafusion+flightsql://{flight}?insecure=true", "demo"),
    # TLS with the fixture's self-signed certificate: no `insecure`, verification off.
    "flightsql-secured": (
        "secured",
        "datafusion+flightsql://analyst:{password}@{flight}?database=acme&disable_server_verification=true",
        "acme",
    ),
    "postgresql-demo": ("demo", "postgresql://demo@{postgres}/demo", "demo"),
    "postgresql-secured": ("secured", "postgresql://analyst:{password}@{postgres}/acme?sslmode=require", "acme"),
}

GRAINS = ["P1D", "P1W", "P1M", "P3M", "P1Y"]
CHECKS = (
    ["test_connection", "create_database", "schemas", "tables", "sqllab", "dataset", "bar_chart"]
    + [f"timeseries_{g}" for g in GRAINS]
    + ["time_filter", "date_filter"]
)

pytestmark = requires_superset


def _uri(request, name):
    fixture, template, tenant = URIS[name]
    server = request.getfixturevalue(fixture)
    return template.format(flight=server.flight, postgres=server.postgres, password=ANALYST_PASSWORD), tenant


def _database(superset, request, name):
    """The Superset database of one URI, created once (check `create_database`)."""
    if name not in superset.databases:
        uri, _ = _uri(request, name)
        try:
            body = superset.call("POST", "/api/v1/database/", expect=(201,), json={
                "database_name": f"salespulse {name}",
                "sqlalchemy_uri": uri,
                "expose_in_sqllab": True,
            })
            superset.databases[name] = body["id"]
        except Exception as error:  # noqa: BLE001  every later check of this URI reports it
            superset.databases[name] = error
    value = superset.databases[name]
    if isinstance(value, Exception):
        raise AssertionError(f"creating the database failed (see create_database): {value}")
    return value


def _dataset(superset, request, name, schema, table):
    key = (name, f"{schema}.{table}")
    if key not in superset.datasets:
        database = _database(superset, request, name)
        # Superset on SQLite (its stock metadata database) keeps an unnamed
        # UNIQUE (table_name) on `tables` from an early migration, so two databases cannot
        # both have a `deals` dataset: drop the one another URI made first.
        for other in [k for k, v in superset.datasets.items() if k[1] == key[1] and isinstance(v, int)]:
            superset.call("DELETE", f"/api/v1/dataset/{superset.datasets.pop(other)}")
        try:
            body = superset.call("POST", "/api/v1/dataset/", expect=(201,),
                                 json={"database": database, "schema": schema, "table_name": table})
            superset.datasets[key] = body["id"]
        except Exception as error:  # noqa: BLE001
            superset.datasets[key] = error
    value = superset.datasets[key]
    if isinstance(value, Exception):
        raise AssertionError(f"creating the dataset {schema}.{table} failed (see dataset): {value}")
    return value


def _chart_data(superset, dataset, query):
    body = superset.call("POST", "/api/v1/chart/data", json={
        "datasource": {"id": dataset, "type": "table"},
        "force": True,
        "queries": [dict({"time_range": "No filter", "filters": [], "extras": {}, "row_limit": 10000}, **query)],
        "result_format": "json",
        "result_type": "full",
    })
    result = body["result"][0]
    assert not result.get("error"), f"{result.get('error')}\nSQL: {result.get('query')}"
    return result


def _sqllab(superset, database, sql, schema="crm"):
    body = superset.call("POST", "/api/v1/sqllab/execute/", json={
        "database_id": database, "sql": sql, "schema": schema, "runAsync": False,
        "client_id": uuid.uuid4().hex[:10], "tab": "salespulse", "queryLimit": 1000,
        "select_as_cta": False, "ctas_method": "TABLE",
    })
    assert body["status"] == "success", json.dumps(body)[:4000]
    return body


def _count_by_status(superset, request, name):
    database = _database(superset, request, name)
    body = _sqllab(superset, database, "SELECT status, count(*) AS n FROM crm.deals GROUP BY status")
    return {row["status"]: row["n"] for row in body["data"]}


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", list(URIS))
def test_superset(superset, request, name, check):
    uri, tenant = _uri(request, name)
    if check == "test_connection":
        superset.call("POST", "/api/v1/database/test_connection/",
                      json={"database_name": f"test {name}", "sqlalchemy_uri": uri})
    elif check == "create_database":
        database = _database(superset, request, name)
        body = superset.call("GET", f"/api/v1/database/{database}")
        assert body["result"]["backend"] in ("datafusion", "postgresql"), body["result"]
        if name.startswith("flightsql"):
            # Our engine spec, not BaseEngineSpec: it lists the time grains.
            specs = {e["engine"]: e for e in superset.call("GET", "/api/v1/database/available/")["databases"]}
            assert "datafusion" in specs, sorted(specs)
    elif check == "schemas":
        database = _database(superset, request, name)
        body = superset.call("GET", f"/api/v1/database/{database}/schemas/", params={"q": "(force:!t)"})
        assert {"crm", "kpi"} <= set(body["result"]), body["result"]
    elif check == "tables":
        database = _database(superset, request, name)
        body = superset.call("GET", f"/api/v1/database/{database}/tables/",
                             params={"q": "(force:!t,schema_name:crm)"})
        tables = {t["value"] for t in body["result"]}
        assert {"deals", "managers", "calls"} <= tables, sorted(tables)
        body = superset.call("GET", f"/api/v1/database/{database}/tables/",
                             params={"q": "(force:!t,schema_name:kpi)"})
        assert body["count"] > 0, body
    elif check == "sqllab":
        counts = _count_by_status(superset, request, name)
        assert set(counts) <= {"open", "won", "lost"} and sum(counts.values()) > 0, counts
        if name.endswith("secured"):
            # The analyst reads acme only, through Superset as anywhere else.
            database = _database(superset, request, name)
            body = superset.call("POST", "/api/v1/sqllab/execute/", expect=(200, 400, 422, 500), json={
                "database_id": database, "sql": "SELECT count(*) AS n FROM demo.crm.deals", "schema": "crm",
                "runAsync": False, "client_id": uuid.uuid4().hex[:10], "tab": "salespulse"})
            assert body.get("status") != "success", body
    elif check == "dataset":
        dataset = _dataset(superset, request, name, "crm", "deals")
        body = superset.call("GET", f"/api/v1/dataset/{dataset}")
        columns = {c["column_name"]: c for c in body["result"]["columns"]}
        assert {"deal_id", "status", "amount", "created_at", "closed_at"} <= set(columns), sorted(columns)
        assert columns["created_at"]["is_dttm"], columns["created_at"]
        assert columns["status"]["type"] and columns["status"]["type"] != "UNKNOWN", columns["status"]
    elif check == "bar_chart":
        dataset = _dataset(superset, request, name, "crm", "deals")
        result = _chart_data(superset, dataset, {
            "columns": ["status"],
            "metrics": ["count", {"expressionType": "SQL", "sqlExpression": "SUM(amount_base)", "label": "revenue"}],
            "orderby": [["count", False]],
        })
        got = {row["status"]: row["count"] for row in result["data"]}
        assert got == _count_by_status(superset, request, name), (got, result["query"])
    elif check.startswith("timeseries_"):
        grain = check.split("_", 1)[1]
        dataset = _dataset(superset, request, name, "crm", "deals")
        # What Explore sends for a line chart (echarts_timeseries): the x-axis column with
        # its time grain.
        result = _chart_data(superset, dataset, {
            "columns": [{"timeGrain": grain, "columnType": "BASE_AXIS", "sqlExpression": "created_at",
                         "label": "created_at", "expressionType": "SQL"}],
            "metrics": ["count"],
            "orderby": [["count", False]],
            "extras": {"time_grain_sqla": grain},
            "post_processing": [{"operation": "pivot", "options": {
                "index": ["created_at"], "columns": [], "aggregates": {"count": {"operator": "mean"}},
                "drop_missing_columns": False}}, {"operation": "flatten"}],
        })
        assert result["data"] and "created_at" in result["data"][0], (result["data"][:3], result["query"])
        buckets = [row["created_at"] for row in result["data"]]
        assert len(buckets) > 1, result
        total = sum(row["count"] for row in result["data"])
        assert total == sum(_count_by_status(superset, request, name).values()), (total, result["query"])
    elif check == "time_filter":
        dataset = _dataset(superset, request, name, "crm", "deals")
        # A native time filter (and Explore's time range) arrives as TEMPORAL_RANGE.
        result = _chart_data(superset, dataset, {
            "columns": [], "metrics": ["count"], "time_range": "2026-01-01 : 2026-04-01",
            "filters": [{"col": "created_at", "op": "TEMPORAL_RANGE", "val": "2026-01-01 : 2026-04-01"}],
        })
        database = _database(superset, request, name)
        expected = _sqllab(superset, database,
                           "SELECT count(*) AS n FROM crm.deals WHERE created_at >= TIMESTAMP '2026-01-01 00:00:00' "
                           "AND created_at < TIMESTAMP '2026-04-01 00:00:00'")["data"][0]["n"]
        assert result["data"][0]["count"] == expected > 0, (result["data"], expected, result["query"])
        assert "2026-01-01" in result["query"], result["query"]
    elif check == "date_filter":
        # A Date32 column: the DATE literal of the engine spec.
        dataset = _dataset(superset, request, name, "crm", "sales_plans")
        body = superset.call("GET", f"/api/v1/dataset/{dataset}")
        columns = {c["column_name"]: c for c in body["result"]["columns"]}
        assert columns["period_start"]["is_dttm"], columns["period_start"]
        result = _chart_data(superset, dataset, {
            "columns": [{"timeGrain": "P1M", "columnType": "BASE_AXIS", "sqlExpression": "period_start",
                         "label": "period_start", "expressionType": "SQL"}],
            "metrics": ["count"], "time_range": "2026-01-01 : 2026-07-01",
            "filters": [{"col": "period_start", "op": "TEMPORAL_RANGE", "val": "2026-01-01 : 2026-07-01"}],
        })
        assert result["data"] and "WHERE" in result["query"], (result["data"], result["query"])
    else:  # pragma: no cover
        raise AssertionError(check)
