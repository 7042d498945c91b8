"""polars.read_database_uri with the ConnectorX engine against salespulse's PostgreSQL
endpoint, once per ConnectorX PostgreSQL protocol. What each sends (connectorx
src/sources/postgres/mod.rs): every protocol first prepares the query (Parse/Describe, for
the schema) and, per partition, runs `SELECT COUNT(*) FROM (<q>) AS CXTMPTAB_COUNT`; then
- binary (the default): `COPY (<q>) TO STDOUT WITH BINARY`
- csv: `COPY (<q>) TO STDOUT WITH CSV`
- cursor: the query itself over the extended protocol (tokio-postgres query_raw)
- simple: the query itself as a simple query (text results).
With partition_on it first runs `SELECT min(col), max(col) FROM (<q>) AS CXTMPTAB_RANGE` and
then one range query per partition.

Usage: python polars_checks.py '<settings JSON>' (see _common.settings).
"""
import os
import sys
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

import polars as pl  # noqa: E402

QUERY = "SELECT call_id, manager_id, status, started_at, duration_seconds FROM crm.calls WHERE direction = 'inbound'"
DECIMALS = "SELECT deal_id, amount, created_at, status FROM crm.deals"


def uri(s, dbname=None):
    auth = quote(s["user"]) + (":" + quote(s["password"]) if s.get("password") else "")
    query = f"?sslmode={s['sslmode']}" if s["sslmode"] != "disable" else ""
    return f"postgresql://{auth}@{s['host']}:{s['port']}/{dbname or s['dbname']}{query}"


def main(s):
    p = "polars.connectorx."
    for protocol in [None, "binary", "csv", "cursor", "simple"]:
        name = protocol or "default"

        def read(protocol=protocol):
            df = pl.read_database_uri(QUERY, uri(s), engine="connectorx", protocol=protocol)
            schema = {k: str(v) for k, v in df.schema.items()}
            ok = df.height > 100 and schema["duration_seconds"] == "Int64" and schema["started_at"].startswith("Datetime")
            return c.expect(ok, {"rows": df.height, "schema": schema})
        c.run(p + name, read)

        def read_decimals(protocol=protocol):
            df = pl.read_database_uri(DECIMALS, uri(s), engine="connectorx", protocol=protocol)
            return c.expect(df.height > 10, {"rows": df.height, "schema": {k: str(v) for k, v in df.schema.items()}})
        c.run(p + name + ".decimal_timestamptz", read_decimals)

    def partitioned():
        df = pl.read_database_uri(QUERY, uri(s), engine="connectorx", partition_on="duration_seconds", partition_num=3)
        return c.expect(df.height > 100, {"rows": df.height})
    c.run(p + "partition_on", partitioned)

    if s.get("other_tenant"):
        other = s["other_tenant"]

        def other_db():
            try:
                pl.read_database_uri("SELECT count(*) AS n FROM crm.deals", uri(s, dbname=other), engine="connectorx", protocol="cursor")
            except Exception as e:  # noqa: BLE001 - ConnectorX raises RuntimeError
                return c.expect(True, c.one_line(e))
            return c.expect(False, f"read database {other}")
        c.run(p + "isolation.other_database_refused", other_db)

        def other_catalog():
            try:
                pl.read_database_uri(f"SELECT count(*) AS n FROM {other}.crm.deals", uri(s), engine="connectorx", protocol="cursor")
            except Exception as e:  # noqa: BLE001
                return c.expect(True, c.one_line(e))
            return c.expect(False, f"{other}.crm.deals was readable")
        c.run(p + "isolation.other_catalog_refused", other_catalog)


if __name__ == "__main__":
    main(c.settings())
