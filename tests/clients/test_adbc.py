"""ADBC (adbc-driver-flightsql), the driver Python notebooks and many BI tools use."""
import os

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest

from conftest import ROOT


@pytest.fixture()
def conn(server):
    with flightsql.connect(server) as c:
        yield c


def test_get_objects_lists_the_demo_catalog_with_columns(conn):
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    catalogs = {c["catalog_name"]: c for c in objects}
    assert "demo" in catalogs
    schemas = {s["db_schema_name"]: s for s in catalogs["demo"]["catalog_db_schemas"]}
    assert {"crm", "kpi", "system"} <= set(schemas)
    tables = {t["table_name"]: t for t in schemas["crm"]["db_schema_tables"]}
    assert {"calls", "deals", "leads", "managers"} <= set(tables)
    columns = [c["column_name"] for c in tables["calls"]["table_columns"]]
    assert columns[:3] == ["call_id", "manager_id", "direction"]


def test_query_into_pyarrow(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT manager_id, count(*) AS n FROM crm.calls GROUP BY 1 ORDER BY 1")
        table = cur.fetch_arrow_table()
        assert table.schema.field("manager_id").type == pa.string()
        assert table.schema.field("n").type == pa.int64()
        cur.execute("SELECT count(*) AS total FROM crm.calls")
        total = cur.fetch_arrow_table().column("total")[0].as_py()
    assert table.num_rows > 50
    assert sum(table.column("n").to_pylist()) == total


def test_typed_columns(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT started_at, duration_seconds, amount FROM crm.calls CROSS JOIN (SELECT amount FROM crm.deals LIMIT 1) LIMIT 5")
        schema = cur.fetch_arrow_table().schema
    assert schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("duration_seconds").type == pa.int64()
    assert schema.field("amount").type == pa.decimal128(18, 2)


def test_zero_rows_keep_their_columns(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT call_id, started_at FROM crm.calls WHERE duration_seconds < 0")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 0
    assert table.schema.names == ["call_id", "started_at"]
    assert table.schema.field("call_id").type == pa.string()


def test_errors_are_clear_and_the_connection_survives(conn):
    with conn.cursor() as cur:
        with pytest.raises(Exception, match="not found"):
            cur.execute("SELECT * FROM crm.no_such_table")
        with pytest.raises(Exception, match="read-only"):
            cur.execute("DROP TABLE crm.calls")
    with conn.cursor() as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone() == (1,)


ALLOWED_TYPES = (pa.types.is_string, pa.types.is_int64, pa.types.is_int32, pa.types.is_float64, pa.types.is_decimal128,
                 pa.types.is_boolean, pa.types.is_date32, pa.types.is_timestamp)
CRM_TABLES = ["absences", "activities", "calls", "companies", "compensation", "contacts", "deal_items",
              "deal_stage_history", "deals", "departments", "feedback", "leads", "loss_reasons", "managers",
              "pipelines", "sales_plans", "sources", "stages", "tasks"]


@pytest.mark.parametrize("depth", ["catalogs", "db_schemas", "tables", "columns"])
def test_get_objects_at_every_depth(conn, depth):
    objects = conn.adbc_get_objects(depth=depth).read_all().to_pylist()
    demo = next(c for c in objects if c["catalog_name"] == "demo")
    if depth == "catalogs":
        assert not demo["catalog_db_schemas"]
        return
    schemas = {s["db_schema_name"]: s for s in demo["catalog_db_schemas"]}
    assert "crm" in schemas
    if depth == "db_schemas":
        assert not schemas["crm"]["db_schema_tables"]
        return
    tables = {t["table_name"]: t for t in schemas["crm"]["db_schema_tables"]}
    assert set(CRM_TABLES) <= set(tables)
    assert tables["deals"]["table_type"] == "BASE TABLE"
    if depth == "tables":
        assert not tables["deals"]["table_columns"]
    else:
        assert "amount" in [c["column_name"] for c in tables["deals"]["table_columns"]]


def test_parameters_bind_through_prepared_statements(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM crm.deals WHERE status = 'won' AND amount > 100000")
        expected = cur.fetchone()[0]
        cur.execute("SELECT count(*) AS n FROM crm.deals WHERE status = ? AND amount > ?", parameters=("won", 100000))
        assert cur.fetchone()[0] == expected
        cur.execute("SELECT ? AS label, ? AS number", parameters=("a'b", 42))
        assert cur.fetchone() == ("a'b", 42)
    assert expected > 0


def round_trip(conn, schema, name):
    """SELECT * of schema.name matches the schema GetTables advertises, in client-safe types."""
    expected = conn.adbc_get_table_schema(name, db_schema_filter=schema)
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {schema}.{name} LIMIT 20")
        result = cur.fetch_arrow_table()
    assert result.schema.names == expected.names
    for field in result.schema:
        assert field.type == expected.field(field.name).type, f"{name}.{field.name}"
        assert any(check(field.type) for check in ALLOWED_TYPES), f"{name}.{field.name}: {field.type}"
    return result


@pytest.mark.parametrize("table", CRM_TABLES)
def test_every_column_type_of_every_crm_table_round_trips(conn, table):
    round_trip(conn, "crm", table)


def test_tls_and_password_login(secured):
    from conftest import ANALYST_PASSWORD
    kwargs = {"username": "analyst", "password": ANALYST_PASSWORD,
              "adbc.flight.sql.client_option.tls_skip_verify": "true"}
    with flightsql.connect(secured.grpc, db_kwargs=kwargs) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM crm.deals")
        assert cur.fetchone()[0] > 0
    bad = dict(kwargs, password="wrong")
    with pytest.raises(Exception, match="wrong user name or password"):
        with flightsql.connect(secured.grpc, db_kwargs=bad) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    # A plaintext client on the TLS port is refused, and the server goes on serving.
    with pytest.raises(Exception):
        with flightsql.connect(f"grpc://{secured.flight}", db_kwargs={"username": "analyst", "password": ANALYST_PASSWORD,
                                                                       "adbc.flight.sql.rpc.timeout_seconds.fetch": "10"}) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    with flightsql.connect(secured.grpc, db_kwargs=kwargs) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1


KPI_VIEWS = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "src", "catalog", "kpi", "views")) if f.endswith(".sql"))


@pytest.mark.parametrize("view", KPI_VIEWS)
def test_every_column_type_of_every_kpi_view_round_trips(conn, view):
    assert round_trip(conn, "kpi", view).num_rows > 0, view
