"""Query salespulse from Python over Arrow Flight SQL (ADBC) into pandas and polars.

    pip install adbc-driver-flightsql pyarrow pandas polars
    salespulse demo --scale 0.1          # in another terminal
    python examples/python/adbc_pandas_polars.py
"""
import adbc_driver_flightsql.dbapi as flightsql

URI = "grpc://127.0.0.1:50051"
# With [[users]]: db_kwargs={"username": "analyst", "password": "…"}; the tenant is chosen
# with "adbc.flight.sql.rpc.call_header.database": "acme".
with flightsql.connect(URI) as conn, conn.cursor() as cur:
    cur.execute(
        "SELECT manager_id, count(*) AS calls, sum(duration_seconds) / 60.0 AS talk_minutes "
        "FROM crm.calls WHERE started_at >= ? GROUP BY 1 ORDER BY calls DESC",
        parameters=("2026-01-01T00:00:00Z",),
    )
    table = cur.fetch_arrow_table()  # a pyarrow.Table, no copies

print(table.to_pandas().head())
try:
    import polars as pl

    print(pl.from_arrow(table).head())
except ImportError:
    print("(pip install polars to see the same table in polars)")
