"""asyncpg against salespulse's PostgreSQL endpoint: connect, fetch with parameters, prepared
statements, type decoding, a cursor, and a Pool whose release runs Connection.reset().

Usage: python asyncpg_checks.py '<settings JSON>' (see _common.settings).
"""
import asyncio
import datetime
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

import asyncpg  # noqa: E402


def kwargs(s, dbname=None):
    return c.connect_kwargs(s, dbname, "ssl", when_disabled=False)


async def main(s):
    p = "asyncpg."
    conn = await c.arun(p + "connect", lambda: asyncpg.connect(**kwargs(s)))
    if conn is None:
        return

    async def version():
        v = conn.get_server_version()
        return c.expect(v.major >= 12, str(v))
    await c.arun(p + "server_version", version)

    async def fetch_params():
        rows = await conn.fetch("SELECT deal_id, amount FROM crm.deals WHERE status = $1 AND created_at >= $2 ORDER BY created_at",
                                "won", datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc))
        return c.expect(len(rows) > 0 and isinstance(rows[0]["amount"], Decimal), [tuple(map(str, r)) for r in rows[:2]])
    await c.arun(p + "fetch_params", fetch_params)

    async def limit_param():
        sql = "SELECT deal_id FROM crm.deals ORDER BY created_at LIMIT $1"
        stmt = await conn.prepare(sql)
        types = [t.name for t in stmt.get_parameters()]
        try:
            rows = await conn.fetch(sql, 10)
        except asyncpg.DataError as e:
            return c.expect(False, {"parameter_types_described": types, "error": str(e)})
        return c.expect(len(rows) == 10, {"parameter_types_described": types})
    await c.arun(p + "fetch_limit_param", limit_param)

    async def fetch_decimal_param():
        n = await conn.fetchval("SELECT count(*) FROM crm.deals WHERE amount > $1", Decimal("100.00"))
        return c.expect(n > 0, n)
    await c.arun(p + "fetch_decimal_param", fetch_decimal_param)

    async def types():
        row = await conn.fetchrow(
            "SELECT CAST(1 AS INT) AS i4, CAST(2 AS BIGINT) AS i8, CAST(1.5 AS DOUBLE PRECISION) AS f8, CAST('12.34' AS NUMERIC(10,2)) AS num, "
            "true AS b, 'text' AS t, CAST('2026-01-02' AS DATE) AS d, CAST('2026-01-02T03:04:05Z' AS TIMESTAMPTZ) AS tz, "
            "CAST('2026-01-02 03:04:05' AS TIMESTAMP) AS ts")
        got = {k: type(v).__name__ for k, v in row.items()}
        want = {"i4": "int", "i8": "int", "f8": "float", "num": "Decimal", "b": "bool", "t": "str", "d": "date", "tz": "datetime", "ts": "datetime"}
        return c.expect(got == want and row["num"] == Decimal("12.34") and row["tz"].tzinfo is not None, {"types": got, "values": {k: str(v) for k, v in row.items()}})
    await c.arun(p + "types", types)

    async def table_types():
        row = await conn.fetchrow("SELECT deal_id, amount, created_at, status FROM crm.deals LIMIT 1")
        return c.expect(isinstance(row["created_at"], datetime.datetime) and isinstance(row["amount"], (Decimal, type(None))), {k: type(v).__name__ for k, v in row.items()})
    await c.arun(p + "table_types", table_types)

    async def prepared():
        stmt = await conn.prepare("SELECT manager_id, count(*) AS n FROM crm.deals WHERE status = $1 GROUP BY manager_id ORDER BY n DESC")
        attrs = [(a.name, a.type.name) for a in stmt.get_attributes()]
        params = [t.name for t in stmt.get_parameters()]
        won = await stmt.fetch("won")
        lost = await stmt.fetch("lost")
        first = await stmt.fetchrow("won")
        return c.expect(won and lost and first is not None, {"attributes": attrs, "parameters": params, "won": len(won), "lost": len(lost)})
    await c.arun(p + "prepared_statement", prepared)

    async def cursor():
        async with conn.transaction():
            n = 0
            async for _ in conn.cursor("SELECT call_id FROM crm.calls", prefetch=500):
                n += 1
        return c.expect(n > 1000, n)
    await c.arun(p + "cursor_in_transaction", cursor)

    async def transaction_readonly():
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            n = await conn.fetchval("SELECT count(*) FROM crm.managers")
        return c.expect(n > 0, n)
    await c.arun(p + "transaction_readonly", transaction_readonly)

    async def copy_out():
        import io
        buf = io.BytesIO()
        await conn.copy_from_query("SELECT manager_id, name FROM crm.managers", output=buf, format="csv")
        return c.expect(buf.getvalue().count(b"\n") > 0, buf.getvalue()[:120])
    await c.arun(p + "copy_from_query_csv", copy_out)

    async def pool():
        pool = await asyncpg.create_pool(min_size=1, max_size=2, **kwargs(s))
        try:
            results = []
            for _ in range(4):
                async with pool.acquire() as pc:  # release runs Connection.reset()
                    results.append(await pc.fetchval("SELECT count(*) FROM crm.managers"))
            got = await asyncio.gather(*[pool.fetchval("SELECT $1::int + 1", i) for i in range(4)])
        finally:
            await asyncio.wait_for(pool.close(), 20)
        return c.expect(all(r > 0 for r in results) and list(got) == [1, 2, 3, 4], {"counts": results, "params": got})
    await c.arun(p + "pool_with_reset", pool)

    async def reset():
        await conn.reset()
        return c.expect(await conn.fetchval("SELECT 1") == 1, "reset then query")
    await c.arun(p + "connection_reset", reset)

    if s.get("other_tenant"):
        other = s["other_tenant"]

        async def other_db():
            try:
                oc = await asyncpg.connect(**kwargs(s, dbname=other))
            except (asyncpg.PostgresError, OSError) as e:
                return c.expect(True, c.one_line(e))
            try:
                await oc.fetchval("SELECT count(*) FROM crm.deals")
            except asyncpg.PostgresError as e:
                return c.expect(True, c.one_line(e))
            finally:
                await oc.close()
            return c.expect(False, f"connected to {other} and read it")
        await c.arun(p + "isolation.other_database_refused", other_db)

        async def other_catalog():
            try:
                await conn.fetchval(f"SELECT count(*) FROM {other}.crm.deals")
            except asyncpg.PostgresError as e:
                return c.expect(True, c.one_line(e))
            return c.expect(False, f"{other}.crm.deals was readable")
        await c.arun(p + "isolation.other_catalog_refused", other_catalog)

        async def metadata():
            cats = sorted({r[0] for r in await conn.fetch("SELECT DISTINCT table_catalog FROM information_schema.tables")})
            dbs = sorted(r[0] for r in await conn.fetch("SELECT datname FROM pg_catalog.pg_database"))
            return c.expect(other not in cats and other not in dbs, {"information_schema": cats, "pg_database": dbs})
        await c.arun(p + "isolation.metadata_hides_other_tenant", metadata)

    await asyncio.wait_for(conn.close(), 20)


if __name__ == "__main__":
    asyncio.run(main(c.settings()))
