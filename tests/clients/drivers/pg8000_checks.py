"""pg8000 (pure-Python driver) against salespulse's PostgreSQL endpoint: the native API
(named :params, prepared statements) and the DB-API (format %s params), types, TLS.

Usage: python pg8000_checks.py '<settings JSON>' (see _common.settings).
"""
import datetime
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

import pg8000.dbapi  # noqa: E402
import pg8000.native  # noqa: E402


def kwargs(s, dbname=None):
    return c.connect_kwargs(s, dbname, "ssl_context")


def main(s):
    p = "pg8000."
    native = c.run(p + "native.connect", lambda: pg8000.native.Connection(**kwargs(s)))
    if native is not None:
        c.run(p + "native.params", lambda: (lambda r: c.expect(r[0][0] > 0, r))(
            native.run("SELECT count(*) FROM crm.deals WHERE status = :status AND created_at >= :since",
                       status="won", since=datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc))))
        c.run(p + "native.decimal_param", lambda: (lambda r: c.expect(r[0][0] > 0, r))(
            native.run("SELECT count(*) FROM crm.deals WHERE amount > :a", a=Decimal("100.00"))))
        c.run(p + "native.limit_param", lambda: (lambda r: c.expect(len(r) == 5, len(r)))(
            native.run("SELECT deal_id FROM crm.deals ORDER BY created_at LIMIT :n", n=5)))

        def types():
            rows = native.run("SELECT CAST(1 AS INT) AS i4, CAST(2 AS BIGINT) AS i8, CAST(1.5 AS DOUBLE PRECISION) AS f8, CAST('12.34' AS NUMERIC(10,2)) AS num, "
                              "true AS b, 'text' AS t, CAST('2026-01-02' AS DATE) AS d, CAST('2026-01-02T03:04:05Z' AS TIMESTAMPTZ) AS tz")
            got = [type(v).__name__ for v in rows[0]]
            return c.expect(got == ["int", "int", "float", "Decimal", "bool", "str", "date", "datetime"] and rows[0][7].tzinfo is not None,
                            {"types": got, "values": [str(v) for v in rows[0]], "columns": [(col["name"], col["type_oid"]) for col in native.columns]})
        c.run(p + "native.types", types)

        def prepared():
            ps = native.prepare("SELECT manager_id, count(*) AS n FROM crm.deals WHERE status = :status GROUP BY manager_id")
            won, lost = ps.run(status="won"), ps.run(status="lost")
            ps.close()
            return c.expect(won and lost, {"won": len(won), "lost": len(lost)})
        c.run(p + "native.prepared_statement", prepared)

        def large():
            rows = native.run("SELECT * FROM crm.calls")
            return c.expect(len(rows) > 1000, len(rows))
        c.run(p + "native.large_result", large)

        if s.get("other_tenant"):
            other = s["other_tenant"]

            def other_catalog():
                try:
                    native.run(f"SELECT count(*) FROM {other}.crm.deals")
                except pg8000.native.DatabaseError as e:
                    return c.expect(True, c.one_line(e))
                return c.expect(False, "readable")
            c.run(p + "isolation.other_catalog_refused", other_catalog)

            def other_db():
                try:
                    oc = pg8000.native.Connection(**kwargs(s, dbname=other))
                except (pg8000.native.DatabaseError, pg8000.native.InterfaceError) as e:
                    return c.expect(True, c.one_line(e))
                try:
                    oc.run("SELECT count(*) FROM crm.deals")
                except pg8000.native.DatabaseError as e:
                    return c.expect(True, c.one_line(e))
                finally:
                    oc.close()
                return c.expect(False, "connected and read")
            c.run(p + "isolation.other_database_refused", other_db)

            def metadata():
                cats = sorted({r[0] for r in native.run("SELECT DISTINCT table_catalog FROM information_schema.tables")})
                dbs = sorted(r[0] for r in native.run("SELECT datname FROM pg_catalog.pg_database"))
                return c.expect(other not in cats and other not in dbs, {"information_schema": cats, "pg_database": dbs})
            c.run(p + "isolation.metadata_hides_other_tenant", metadata)
        native.close()

    conn = c.run(p + "dbapi.connect", lambda: pg8000.dbapi.connect(**kwargs(s)))
    if conn is not None:
        def dbapi_params():
            cur = conn.cursor()
            cur.execute("SELECT deal_id, amount, created_at FROM crm.deals WHERE status = %s AND amount > %s ORDER BY created_at", ("won", Decimal("10")))
            rows = cur.fetchmany(5)
            desc = [d[0] for d in cur.description]
            cur.close()
            conn.rollback()
            return c.expect(len(rows) == 5 and desc == ["deal_id", "amount", "created_at"], [list(map(str, r)) for r in rows[:2]])
        c.run(p + "dbapi.params_in_transaction", dbapi_params)

        def dbapi_autocommit():
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM crm.managers")
            n = cur.fetchone()[0]
            conn.autocommit = False
            return c.expect(n > 0, n)
        c.run(p + "dbapi.autocommit", dbapi_autocommit)
        conn.close()


if __name__ == "__main__":
    main(c.settings())
