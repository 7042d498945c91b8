"""SQLAlchemy 2 with psycopg2 and with psycopg 3 against salespulse's PostgreSQL endpoint:
an engine from the URL the README gives (`postgresql+psycopg2://demo@HOST:PORT/demo`), the
Inspector (what Superset and other SQLAlchemy tools call to list schemas, tables, columns and
constraints), a text() query with bound parameters, and pandas.read_sql / read_sql_table.

Usage: python sqlalchemy_checks.py '<settings JSON>' (see _common.settings). Check names are
prefixed with the driver: `psycopg2.` and `psycopg.`.
"""
import os
import sys
from decimal import Decimal
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402


def url(s, driver, dbname=None):
    auth = quote(s["user"]) + (":" + quote(s["password"]) if s.get("password") else "")
    query = f"?sslmode={s['sslmode']}" if s["sslmode"] != "disable" else ""
    return f"postgresql+{driver}://{auth}@{s['host']}:{s['port']}/{dbname or s['dbname']}{query}"


def checks(s, driver):
    p = driver + "."
    engine = sa.create_engine(url(s, driver), pool_pre_ping=False)

    def connect():
        with engine.connect() as conn:
            # First connect ran the dialect's initialize(): version(), current_schema(),
            # show transaction isolation level, show standard_conforming_strings.
            d = engine.dialect
            return c.expect(conn.execute(sa.text("SELECT 1")).scalar() == 1,
                            {"server_version_info": d.server_version_info, "default_schema_name": d.default_schema_name,
                             "isolation": conn.get_isolation_level()})
    if c.run(p + "connect", connect) is None:
        # The remaining checks still say which SQL fails after connecting: they run with
        # workarounds for what failed at connect (version() not parsed: the version a
        # PostgreSQL 16 reports; psycopg 3's hstore probe in a SAVEPOINT: use_native_hstore
        # off), and the check connect_with_workarounds names them.
        used = ["server_version_info patched to (16, 6)"]
        engine.dispose()
        engine = sa.create_engine(url(s, driver))
        engine.dialect._get_server_version_info = lambda conn: (16, 6)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as e:  # noqa: BLE001
            engine.dispose()
            if driver != "psycopg":
                c.emit(p + "connect_with_workarounds", False, c.one_line(e), used)
                return
            used.append(f"use_native_hstore=False after: {c.one_line(e)}")
            engine = sa.create_engine(url(s, driver), use_native_hstore=False)
            engine.dialect._get_server_version_info = lambda conn: (16, 6)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
            except Exception as e2:  # noqa: BLE001
                c.emit(p + "connect_with_workarounds", False, c.one_line(e2), used)
                engine.dispose()
                return
        c.emit(p + "connect_with_workarounds", True, "", used)

    insp = sa.inspect(engine)

    c.run(p + "inspector.schema_names", lambda: (lambda n: c.expect({"crm", "kpi"} <= set(n), n))(insp.get_schema_names()))
    c.run(p + "inspector.table_names", lambda: (lambda n: c.expect({"deals", "calls", "managers"} <= set(n), n))(insp.get_table_names(schema="crm")))
    c.run(p + "inspector.table_names_default_schema",
          lambda: (lambda n: c.expect("deals" in n, {"default_schema": insp.default_schema_name, "tables": n}))(insp.get_table_names()))
    c.run(p + "inspector.view_names", lambda: (lambda n: c.expect(isinstance(n, list), n))(insp.get_view_names(schema="kpi")))

    def columns():
        cols = {col["name"]: col for col in insp.get_columns("deals", schema="crm")}
        types = {k: str(v["type"]) for k, v in cols.items()}
        ok = ("amount" in cols and "created_at" in cols
              and isinstance(cols["amount"]["type"], sa.Numeric)
              and isinstance(cols["created_at"]["type"], sa.DateTime) and cols["created_at"]["type"].timezone
              and cols["deal_id"]["nullable"] is False)
        return c.expect(ok, types)
    c.run(p + "inspector.columns", columns)
    c.run(p + "inspector.pk_constraint", lambda: (lambda r: c.expect(isinstance(r.get("constrained_columns"), list), r))(insp.get_pk_constraint("deals", schema="crm")))
    c.run(p + "inspector.foreign_keys", lambda: (lambda r: c.expect(isinstance(r, list), r))(insp.get_foreign_keys("deals", schema="crm")))
    c.run(p + "inspector.indexes", lambda: (lambda r: c.expect(isinstance(r, list), r))(insp.get_indexes("deals", schema="crm")))
    c.run(p + "inspector.unique_constraints", lambda: (lambda r: c.expect(isinstance(r, list), r))(insp.get_unique_constraints("deals", schema="crm")))
    c.run(p + "inspector.check_constraints", lambda: (lambda r: c.expect(isinstance(r, list), r))(insp.get_check_constraints("deals", schema="crm")))
    c.run(p + "inspector.table_comment", lambda: (lambda r: c.expect(isinstance(r, dict) and "text" in r, r))(insp.get_table_comment("deals", schema="crm")))
    c.run(p + "inspector.has_table", lambda: c.expect(insp.has_table("deals", schema="crm") is True and insp.has_table("no_such_table", schema="crm") is False, "has_table"))

    def reflect_table():
        table = sa.Table("managers", sa.MetaData(), schema="crm", autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).limit(5)).fetchall()
        return c.expect(len(rows) > 0 and "manager_id" in table.c, [col.name for col in table.c])
    c.run(p + "reflect_table", reflect_table)

    def text_params():
        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT count(*) FROM crm.deals WHERE status = :status AND amount > :amount AND created_at >= :since"),
                             {"status": "won", "amount": Decimal("100.00"), "since": pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime()}).scalar()
        return c.expect(n > 0, n)
    c.run(p + "text_params", text_params)

    def text_params_int_vs_numeric():
        # An int bound against a NUMERIC column (docs/clients.md "Known limits").
        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT count(*) FROM crm.deals WHERE amount > :amount"), {"amount": 100}).scalar()
        return c.expect(n > 0, n)
    c.run(p + "text_params_int_vs_numeric", text_params_int_vs_numeric)

    def text_expanding_in():
        stmt = sa.text("SELECT count(*) FROM crm.deals WHERE status IN :statuses").bindparams(sa.bindparam("statuses", expanding=True))
        with engine.connect() as conn:
            n = conn.execute(stmt, {"statuses": ["won", "lost"]}).scalar()
        return c.expect(n > 0, n)
    c.run(p + "text_expanding_in", text_expanding_in)

    def core_select():
        deals = sa.table("deals", sa.column("status"), sa.column("amount"), schema="crm")
        stmt = sa.select(deals.c.status, sa.func.count().label("n"), sa.func.sum(deals.c.amount).label("total")).group_by(deals.c.status).order_by(deals.c.status)
        with engine.connect() as conn:
            rows = conn.execute(stmt).fetchall()
        return c.expect(len(rows) >= 2 and all(isinstance(r.total, Decimal) or r.total is None for r in rows), [tuple(map(str, r)) for r in rows])
    c.run(p + "core_select_group_by", core_select)

    def read_sql():
        with engine.connect() as conn:
            df = pd.read_sql(sa.text("SELECT deal_id, manager_id, amount, created_at, status FROM crm.deals WHERE status = :status AND created_at >= :since ORDER BY created_at LIMIT 500"),
                             conn, params={"status": "won", "since": "2025-01-01T00:00:00Z"},
                             dtype={"deal_id": "string", "status": "string"}, parse_dates=["created_at"])
        ok = len(df) > 0 and str(df["deal_id"].dtype) == "string" and str(df["created_at"].dtype).startswith("datetime64")
        return c.expect(ok, {"rows": len(df), "dtypes": {k: str(v) for k, v in df.dtypes.items()}})
    c.run(p + "pandas.read_sql", read_sql)

    def read_sql_table():
        df = pd.read_sql_table("managers", engine, schema="crm")
        return c.expect(len(df) > 0, {"rows": len(df), "dtypes": {k: str(v) for k, v in df.dtypes.items()}})
    c.run(p + "pandas.read_sql_table", read_sql_table)

    def read_sql_chunks():
        with engine.connect().execution_options(stream_results=True) as conn:
            n = sum(len(chunk) for chunk in pd.read_sql(sa.text("SELECT * FROM crm.calls"), conn, chunksize=1000))
        return c.expect(n > 1000, n)
    c.run(p + "pandas.read_sql_chunks_stream_results", read_sql_chunks)

    if s.get("other_tenant"):
        other = s["other_tenant"]

        def other_db_refused():
            e2 = sa.create_engine(url(s, driver, dbname=other))
            try:
                with e2.connect() as conn:
                    conn.execute(sa.text("SELECT count(*) FROM crm.deals")).scalar()
            except sa.exc.DBAPIError as e:
                return c.expect(True, c.one_line(e))
            finally:
                e2.dispose()
            return c.expect(False, f"connected to database {other}")
        c.run(p + "isolation.other_database_refused", other_db_refused)

        def other_catalog_refused():
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text(f"SELECT count(*) FROM {other}.crm.deals")).scalar()
            except sa.exc.DBAPIError as e:
                return c.expect(True, c.one_line(e))
            return c.expect(False, f"{other}.crm.deals was readable")
        c.run(p + "isolation.other_catalog_refused", other_catalog_refused)

        def catalogs_listed():
            with engine.connect() as conn:
                cats = sorted({r[0] for r in conn.execute(sa.text("SELECT DISTINCT table_catalog FROM information_schema.tables"))})
                dbs = sorted(r[0] for r in conn.execute(sa.text("SELECT datname FROM pg_catalog.pg_database")))
            return c.expect(other not in cats and other not in dbs, {"information_schema": cats, "pg_database": dbs})
        c.run(p + "isolation.metadata_hides_other_tenant", catalogs_listed)

    engine.dispose()


if __name__ == "__main__":
    settings = c.settings()
    for drv in (sys.argv[2].split(",") if len(sys.argv) > 2 else ["psycopg2", "psycopg"]):
        checks(settings, drv)
