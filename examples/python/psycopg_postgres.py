"""Query salespulse over its PostgreSQL endpoint with psycopg.

    pip install "psycopg[binary]" pandas
    salespulse demo --scale 0.1          # in another terminal
    python examples/python/psycopg_postgres.py
"""
import pandas as pd
import psycopg

# The database name is the tenant; with [[users]] add password=….
with psycopg.connect("host=127.0.0.1 port=5433 dbname=demo user=demo") as conn:
    rows = conn.execute(
        "SELECT status, count(*) AS deals, sum(amount) AS amount FROM crm.deals WHERE created_at >= %s GROUP BY 1",
        ("2026-01-01",),
    ).fetchall()
print(pd.DataFrame(rows, columns=["status", "deals", "amount"]))
