"""Replays the SQL that Metabase's PostgreSQL driver and Grafana's PostgreSQL data source send
(tests/clients/replay/metabase.sql, tests/clients/replay/grafana_postgres.sql; each query names
the source it was taken from) against the demo server and against the secured server as
analyst@acme. One test per query name and server.

Statements go out as those clients send them: pgjdbc and pgx use the extended protocol with an
unnamed statement (libpq PQexecParams here), parameters typed as the client types them
(`-- params:`); `-- protocol: simple` statements (pings) go out as one Simple Query message.
Catalog reads (`-- kind: metadata`) must show the analyst nothing of the other tenant `demo`.
"""
import json
import os
import re
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg import pq

from conftest import ANALYST_PASSWORD

REPLAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay")
FILES = ["metabase.sql", "grafana_postgres.sql"]

OIDS = {"unknown": 0, "text": 25, "varchar": 1043, "int8": 20, "int4": 23, "timestamptz": 1184, "date": 1082}


@dataclass
class Replay:
    file: str
    name: str
    source: str = ""
    kind: str = ""
    protocol: str = "extended"
    params: list = field(default_factory=list)
    session: list = field(default_factory=list)
    sql: str = ""


def load(filename):
    """`-- name: x` starts a query; the `-- key: value` lines right after it are its header
    (source, kind, protocol, params, session); everything else up to the next name is the SQL,
    comment lines included (Metabase's remark `-- Metabase:: ...` is part of what it sends)."""
    queries, current, in_header = [], None, False
    with open(os.path.join(REPLAY, filename)) as f:
        for line in f:
            m = re.match(r"^-- name: (\S+)\s*$", line)
            if m:
                current = Replay(file=filename, name=m.group(1))
                queries.append(current)
                in_header = True
                continue
            if current is None:
                continue
            h = re.match(r"^-- (source|kind|protocol|params|session): (.*)$", line.rstrip("\n"))
            if in_header and h:
                key, value = h.groups()
                if key == "params":
                    current.params = json.loads(value)
                elif key == "session":
                    current.session.append(value)
                else:
                    setattr(current, key, value)
                continue
            if in_header and line.startswith("-- ---"):
                continue
            in_header = False
            if line.startswith("-- ---"):
                continue
            current.sql += line
    for q in queries:
        q.sql = q.sql.strip("\n")
        # the simple-protocol ping statements are comment-only or ';' and must keep their text
        assert q.sql, q.name
    return queries


QUERIES = [q for f in FILES for q in load(f)]
assert len({q.name for q in QUERIES}) == len(QUERIES), "duplicate query names"


def _connect(server, target):
    if target == "secured":
        return psycopg.connect(host=server.pg_host, port=server.pg_port, dbname="acme", user="analyst",
                               password=ANALYST_PASSWORD, sslmode="require", connect_timeout=10, autocommit=True)
    return psycopg.connect(host=server.pg_host, port=server.pg_port, dbname="demo", user="demo",
                           sslmode="disable", connect_timeout=10, autocommit=True)


class ServerError(Exception):
    pass


def _run(pgconn, sql, params=(), protocol="extended"):
    """Returns (column names, rows as lists of str/None) or raises ServerError with the server's message."""
    if protocol == "simple":
        res = pgconn.exec_(sql.encode())
    else:
        values = [None if v is None else str(v).encode() for _, v in params]
        types = [OIDS[t] for t, _ in params]
        res = pgconn.exec_params(sql.encode(), values, param_types=types or None, result_format=pq.Format.TEXT)
    if res.status in (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.NONFATAL_ERROR, pq.ExecStatus.BAD_RESPONSE):
        state = res.error_field(pq.DiagnosticField.SQLSTATE)
        raise ServerError(f"[{(state or b'').decode()}] {res.error_message.decode(errors='replace').strip()}")
    if res.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY):
        raise ServerError(f"unexpected result status {res.status.name}")
    cols = [res.fname(i).decode() for i in range(res.nfields)]
    rows = [[None if res.get_value(r, c) is None else res.get_value(r, c).decode(errors="replace")
             for c in range(res.nfields)] for r in range(res.ntuples)]
    return cols, rows


def _col(cols, rows, name):
    i = cols.index(name)
    return [r[i] for r in rows]


# What the client does with the answer: the checks below are what it needs from it.
def _check(name, cols, rows):
    if name == "mb_can_connect":
        assert rows == [["1"]]
    elif name in ("mb_get_tables", "mb_get_tables_one_table"):
        pairs = set(zip(_col(cols, rows, "schema"), _col(cols, rows, "name")))
        assert ("crm", "deals") in pairs, pairs
        assert set(_col(cols, rows, "type")) <= {"TABLE", "VIEW", "PARTITIONED TABLE", "FOREIGN TABLE", "MATERIALIZED VIEW"}
    elif name == "mb_table_privileges":
        sel = {(r[cols.index("schema")], r[cols.index("table")]) for r in rows if r[cols.index("select")] in ("t", "true")}
        assert ("crm", "deals") in sel, rows[:5]
        # postgres.clj describe-syncable-tables sets :is_writable from these; the server is read-only
        writable = [r for r in rows if "t" in (r[cols.index("update")], r[cols.index("insert")], r[cols.index("delete")])]
        assert not writable, f"read-only server reports write privileges: {writable[:3]}"
    elif name in ("mb_describe_fields", "mb_describe_fields_schema_only"):
        deals = [r for r in rows if r[cols.index("table-name")] == "deals"]
        names = [r[cols.index("name")] for r in deals]
        assert {"deal_id", "amount", "created_at"} <= set(names), names
        types = {r[cols.index("name")]: r[cols.index("database-type")] for r in deals}
        # Metabase maps these names (postgres.clj default-base-types); unknown ones become :type/*
        assert types["created_at"] in ("timestamptz", "timestamp with time zone"), types
        assert types["amount"] in ("numeric", "decimal"), types
        positions = [int(r[cols.index("database-position")]) for r in deals]
        assert positions == sorted(positions) and positions[0] == 0, positions
    elif name == "mb_show_timezone":
        assert len(rows) == 1 and rows[0][0]
    elif name == "mb_q_sum_by_month_report_tz":
        # after SET SESSION TIMEZONE TO 'Europe/Moscow' PostgreSQL truncates and renders in that zone
        assert rows and all(r[0].endswith("+03") for r in rows), rows[:3]
    elif name == "mb_show_transaction_isolation":
        assert rows and rows[0][0]
    elif name.startswith("mb_q_count_by") or name == "mb_q_day_of_week":
        assert rows and all(int(r[1]) > 0 for r in rows), rows[:3]
    elif name == "gf_version":
        assert cols == ["version"] and int(rows[0][0]) >= 906, rows
    elif name == "gf_show_tables":
        tables = [r[0] for r in rows]
        assert "deals" in tables or "crm.deals" in tables, tables[:20]
    elif name == "gf_show_tables_in_schema":
        assert "deals" in [r[0] for r in rows]
    elif name == "gf_columns_qualified":
        assert {"deal_id", "amount", "created_at"} <= {r[0] for r in rows}, rows
        types = dict((r[0], r[1]) for r in rows)
        assert types["created_at"] == "timestamp with time zone", types  # sqlUtil.ts getFieldConfig -> datetime
    elif name == "gf_schema_api_tables":
        assert "deals" in [r[0] for r in rows]
    elif name == "gf_schema_api_columns":
        udt = dict((r[0], r[2]) for r in rows)
        assert udt.get("created_at") in ("timestamptz", "timestamp"), udt
    elif name == "gf_schema_api_column_values":
        assert {"status", "currency"} <= {r[0] for r in rows}


@pytest.fixture(params=["demo", "secured"])
def target(request):
    return request.param, request.getfixturevalue(request.param)


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_replay(query, target):
    which, server = target
    with _connect(server, which) as conn:
        for stmt in query.session:
            _run(conn.pgconn, stmt)
        try:
            cols, rows = _run(conn.pgconn, query.sql, query.params, query.protocol)
        except ServerError as e:
            pytest.fail(f"{query.file} {query.name}: {e}", pytrace=False)
        _check(query.name, cols, rows)
        if which == "secured" and query.kind == "metadata":
            leaked = [r for r in rows if any(c is not None and c.lower() == "demo" for c in r)]
            assert not leaked, f"analyst@acme sees tenant demo: {leaked[:5]}"
            dupes = {tuple(r) for r in rows if rows.count(r) > 1}
            assert not dupes, f"duplicate catalog rows (another tenant's objects?): {sorted(dupes)[:5]}"
        # the connection is still usable afterwards
        assert _run(conn.pgconn, "SELECT 1")[1] == [["1"]]
