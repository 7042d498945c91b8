"""Replays the catalog SQL of pgjdbc 42.7 (what DBeaver and Metabase bundle) and of DBeaver's
PostgreSQL plugin, as those clients send it, against the PostgreSQL endpoint.

The queries are in tests/clients/replay/*.sql, each with the repository, commit and
file:line it comes from. They go out through libpq's extended protocol with the parameter
types the JDBC driver binds (varchar for setString, int8 for setLong), one test per query.
"""
import json
import os
import re

import psycopg
import pytest
from psycopg.pq import ExecStatus

from conftest import ANALYST_PASSWORD

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = {"pgjdbc": os.path.join(HERE, "replay", "pgjdbc_42_7.sql"),
         "dbeaver": os.path.join(HERE, "replay", "dbeaver.sql")}


def load(path):
    """[(name, sql, params, param_oids, source)] from a replay file."""
    queries = []
    current = None
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("-- name:"):
            current = {"name": line.split(":", 1)[1].strip(), "sql": [], "params": [], "param_oids": [], "source": "", "expect_rows": 0}
            queries.append(current)
        elif current is None:
            continue
        elif line.startswith("-- params:"):
            current["params"] = json.loads(line.split(":", 1)[1])
        elif line.startswith("-- param_oids:"):
            current["param_oids"] = json.loads(line.split(":", 1)[1])
        elif line.startswith("-- expect_rows:"):
            current["expect_rows"] = int(line.split(":", 1)[1])
        elif line.startswith("-- source:"):
            current["source"] = line.split(":", 1)[1].strip()
        elif line.startswith("-- ") and not current["sql"]:
            continue
        else:
            current["sql"].append(line)
    for q in queries:
        q["sql"] = "\n".join(q["sql"]).strip()
    return queries


QUERIES = [(kind, q) for kind, path in FILES.items() for q in load(path)]


def jdbc_placeholders(sql):
    """`?` -> `$1`, `$2`, … outside quotes, as pgjdbc rewrites them."""
    out, n, quote = [], 0, None
    for ch in sql:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


_connections = {}


@pytest.fixture(scope="session")
def replay_connection(request):
    def get(target):
        if target not in _connections:
            server = request.getfixturevalue(target)
            if target == "demo":
                dbname, user, password = "demo", "demo", None
            else:
                dbname, user, password = "acme", "analyst", ANALYST_PASSWORD
            conn = psycopg.connect(host=server.pg_host, port=server.pg_port, dbname=dbname, user=user,
                                   password=password, sslmode=server.sslmode, connect_timeout=10, autocommit=True,
                                   application_name="PostgreSQL JDBC Driver")
            _connections[target] = (conn, dbname)
        return _connections[target]

    yield get
    for conn, _ in _connections.values():
        conn.close()


def resolve(conn, dbname, text):
    """Fills {db}, {oid:schema.table} and {nsp:schema} with this server's values."""
    def oid(match):
        kind, name = match.group(1), match.group(2)
        if kind == "nsp":
            row = conn.execute("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s", (name,)).fetchone()
        else:
            schema, table = name.split(".")
            row = conn.execute("SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                               "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                               (schema, table)).fetchone()
        assert row is not None, f"{name} is not in pg_catalog"
        return str(row[0])

    text = text.replace("{db}", dbname)
    return re.sub(r"\{(oid|nsp):([\w.]+)\}", oid, text)


@pytest.mark.parametrize("kind,query", QUERIES, ids=[f"{k}.{q['name']}" for k, q in QUERIES])
@pytest.mark.parametrize("target", ["demo", "secured"])
def test_replay(replay_connection, target, kind, query):
    conn, dbname = replay_connection(target)
    sql = resolve(conn, dbname, query["sql"])
    if kind == "dbeaver":
        sql = jdbc_placeholders(sql)
    params = [None if p is None else resolve(conn, dbname, p).encode() for p in query["params"]]
    types = query["param_oids"] or [0] * len(params)
    result = conn.pgconn.exec_params(sql.encode(), params, types)
    if result.status not in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK):
        message = result.error_message.decode(errors="replace").strip()
        pytest.fail(f"{message}\n-- {query['source']}\n{sql}\nparams: {query['params']}", pytrace=False)
    if query["expect_rows"]:
        assert result.ntuples >= query["expect_rows"], (
            f"{result.ntuples} rows; the client needs at least {query['expect_rows']}\n-- {query['source']}\n{sql}")
    if target == "secured" and result.status == ExecStatus.TUPLES_OK:
        # analyst reads acme only: no row may name the other tenant's database
        for row in range(result.ntuples):
            for col in range(result.nfields):
                value = result.get_value(row, col)
                fname = (result.fname(col) or b"").decode()
                if fname in ("datname", "TABLE_CAT", "current_database", "FUNCTION_CAT", "PROCEDURE_CAT", "TYPE_CAT"):
                    assert value != b"demo", f"{fname} lists tenant demo to analyst"
