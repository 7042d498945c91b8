"""Panel SQL as Grafana sends it, after its macros are expanded, through both protocols:
the Flight SQL plugin (with the Grafana output profile) and the PostgreSQL data source."""
from datetime import datetime, timezone

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pyarrow as pa
import pytest

import grafana_macros

START = datetime(2025, 6, 1, tzinfo=timezone.utc)
END = datetime(2026, 6, 15, tzinfo=timezone.utc)

PANELS = [
    "SELECT $__dateBin(started_at) AS time, count(*) AS calls FROM crm.calls WHERE $__timeFilter(started_at) GROUP BY 1 ORDER BY 1",
    "SELECT $__dateBinAlias(created_at), sum(amount) AS revenue FROM crm.deals WHERE status = 'won' AND $__timeRangeFrom(created_at) AND $__timeRangeTo(created_at) GROUP BY 1 ORDER BY 1",
    "SELECT $__timeGroupAlias(created_at, month), count(*) AS deals FROM crm.deals WHERE $__timeRange(created_at) GROUP BY 1,2 ORDER BY 1,2",
    "SELECT manager_id, count(*) AS n FROM crm.calls WHERE started_at >= $__timeFrom AND started_at <= $__timeTo GROUP BY 1",
]


@pytest.fixture(scope="module")
def grafana_conn(demo):
    with flightsql.connect(demo.grpc, db_kwargs={"adbc.flight.sql.rpc.call_header.x-salespulse-compat": "grafana"}) as conn:
        yield conn


@pytest.mark.parametrize("panel", PANELS)
def test_flightsql_plugin_panels(grafana_conn, demo, panel):
    sql = grafana_macros.flightsql(panel, START, END, interval_seconds=86400)
    assert "$__" not in sql
    with grafana_conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    assert table.num_rows > 0, sql
    for field in table.schema:
        # What the plugin renders (docs/clients.md § Types the Grafana plugin renders):
        # ns timestamps, numbers, bools, Utf8.
        assert (pa.types.is_timestamp(field.type) and field.type.unit == "ns") or pa.types.is_integer(field.type) \
            or pa.types.is_float64(field.type) or pa.types.is_string(field.type) or pa.types.is_boolean(field.type), field
    # The same expanded SQL over PostgreSQL.
    with psycopg.connect(host=demo.pg_host, port=demo.pg_port, dbname="demo", user="demo", autocommit=True) as conn:
        assert len(conn.execute(sql).fetchall()) == table.num_rows


def test_postgres_datasource_panels(demo):
    panel = "SELECT $__timeGroupAlias(created_at, '1d'), count(*) AS deals FROM crm.deals WHERE $__timeFilter(created_at) GROUP BY 1 ORDER BY 1"
    sql = grafana_macros.postgres(panel, START, END, interval_seconds=86400)
    with psycopg.connect(host=demo.pg_host, port=demo.pg_port, dbname="demo", user="demo", autocommit=True) as conn:
        rows = conn.execute(sql).fetchall()
    assert rows and all(r[1] > 0 for r in rows)
