"""The PostgreSQL endpoint with real clients: psycopg (what Superset and notebooks use over
PostgreSQL) and psql (the catalog queries behind \\dt and \\d that BI tools also send)."""
import datetime as dt
import decimal
import os
import shutil
import time
import subprocess

import psycopg
import pytest

from conftest import ADMIN_PASSWORD, ANALYST_API_TOKEN, ANALYST_PASSWORD


def connect(server, dbname, user, password=None):
    return psycopg.connect(host=server.pg_host, port=server.pg_port, dbname=dbname, user=user, password=password,
                           sslmode=server.sslmode, connect_timeout=10, autocommit=True)


def test_query_parameters_and_server_side_types(demo):
    with connect(demo, "demo", "demo") as conn:
        rows = conn.execute("SELECT status, count(*) AS n FROM crm.deals GROUP BY status ORDER BY status").fetchall()
        assert {r[0] for r in rows} <= {"open", "won", "lost"}
        total = sum(r[1] for r in rows)
        # Extended protocol with bound parameters. A numeric column takes a Decimal, and an
        # int (psycopg binds it as int8; the client's type is kept).
        n = conn.execute("SELECT count(*) FROM crm.deals WHERE status = %s AND amount > %s",
                         ("won", decimal.Decimal("100000"))).fetchone()[0]
        assert 0 < n < total
        assert conn.execute("SELECT count(*) FROM crm.deals WHERE status = %s AND amount > %s", ("won", 100000)).fetchone()[0] == n
        deal_id, amount, created_at, closed = conn.execute(
            "SELECT deal_id, amount, created_at, closed_at IS NOT NULL FROM crm.deals ORDER BY deal_id LIMIT 1").fetchone()
        assert isinstance(deal_id, str)
        assert isinstance(amount, decimal.Decimal)
        assert isinstance(created_at, dt.datetime) and created_at.tzinfo is not None
        assert isinstance(closed, bool)
        day = conn.execute("SELECT CAST(created_at AS DATE) FROM crm.deals LIMIT 1").fetchone()[0]
        assert isinstance(day, dt.date)
        assert conn.execute("SELECT count(*) FROM crm.deals WHERE false").fetchone()[0] == 0


def test_read_only_and_errors_keep_the_connection(demo):
    with connect(demo, "demo", "demo") as conn:
        for sql in ["DROP TABLE crm.deals", "INSERT INTO crm.departments VALUES ('x','y',NULL,NULL)",
                    "SET datafusion.execution.batch_size = 1"]:
            with pytest.raises(psycopg.Error, match="read-only"):
                conn.execute(sql)
        with pytest.raises(psycopg.Error, match="no_such_table"):
            conn.execute("SELECT * FROM crm.no_such_table")
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_passwords_and_tenant_scope(secured):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(secured, "acme", "analyst", "wrong")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        connect(secured, "demo", "analyst", ANALYST_PASSWORD)
    with connect(secured, "acme", "analyst", ANALYST_PASSWORD) as conn:
        assert conn.execute("SELECT count(*) FROM crm.deals").fetchone()[0] > 0
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT count(*) FROM demo.crm.deals")
        names = {r[0] for r in conn.execute("SELECT DISTINCT table_catalog FROM information_schema.tables").fetchall()}
        assert "demo" not in names
    with connect(secured, "demo", "admin", ADMIN_PASSWORD) as conn:
        assert conn.execute("SELECT count(*) FROM acme.crm.deals").fetchone()[0] > 0
        assert conn.info.pgconn.ssl_in_use, "the secured server speaks TLS"
    # A user's static API token also works as its password, and only as its own.
    with connect(secured, "acme", "analyst", ANALYST_API_TOKEN) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(secured, "demo", "admin", ANALYST_API_TOKEN)


def test_plaintext_is_refused_when_tls_is_configured(secured):
    # The right password over a plaintext connection: refused before the password is asked.
    with pytest.raises(psycopg.OperationalError, match="accepts only TLS connections.*sslmode=require"):
        psycopg.connect(host=secured.pg_host, port=secured.pg_port, dbname="acme", user="analyst",
                        password=ANALYST_PASSWORD, sslmode="disable", connect_timeout=10)
    # libpq's default (prefer) negotiates TLS and gets in.
    with psycopg.connect(host=secured.pg_host, port=secured.pg_port, dbname="acme", user="analyst",
                         password=ANALYST_PASSWORD, sslmode="prefer", connect_timeout=10, autocommit=True) as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone()[0] == 1


PSQL = shutil.which("psql")


def test_psql_lists_describes_queries_and_refuses_a_bad_password(secured):
    assert PSQL, "psql is missing: scripts/test.sh installs Debian's postgresql-client"
    env = dict(os.environ, PGPASSWORD=ANALYST_PASSWORD, PGCONNECT_TIMEOUT="10", PGSSLMODE=secured.sslmode)
    base = [PSQL, "-h", secured.pg_host, "-p", str(secured.pg_port), "-U", "analyst", "-d", "acme", "-X", "-v", "ON_ERROR_STOP=1"]
    run = lambda *args, e=env: subprocess.run(base + list(args), capture_output=True, text=True, env=e, timeout=60)
    listed = run("-c", r"\dt crm.*")
    assert listed.returncode == 0, listed.stderr
    assert "deals" in listed.stdout and "calls" in listed.stdout
    described = run("-c", r"\d crm.deals")
    assert described.returncode == 0, described.stderr
    assert "amount" in described.stdout and "timestamp with time zone" in described.stdout
    queried = run("-A", "-t", "-c", "SELECT count(*) FROM crm.managers")
    assert queried.returncode == 0, queried.stderr
    assert int(queried.stdout.strip()) > 0
    refused = run("-c", "SELECT 1", e=dict(env, PGPASSWORD="wrong"))
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stderr


def test_limits_stop_one_query_and_the_connection_goes_on(secured):
    with connect(secured, "acme", "analyst", ANALYST_PASSWORD) as conn:
        endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
        started = time.monotonic()
        with pytest.raises(psycopg.Error, match=r"limits\.query_timeout_seconds") as err:
            conn.execute(endless).fetchall()
        assert err.value.sqlstate == "57014", err.value.sqlstate
        assert time.monotonic() - started < 30
        conn.rollback()
        with pytest.raises(psycopg.Error, match=r"limits\.max_result_rows"):
            conn.execute("SELECT * FROM generate_series(1, 300000)").fetchall()
        conn.rollback()
        with pytest.raises(psycopg.Error, match="read-only"):
            conn.execute("COPY (SELECT 1) TO '/tmp/salespulse-pg-leak.csv'")
        conn.rollback()
        with pytest.raises(psycopg.Error, match="read-only"):
            conn.execute("SET salespulse_session.name = 'admin'")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM crm.deals").fetchone()[0] > 0
        # The audit: this user's PostgreSQL queries, with how each ended.
        rows = conn.execute(
            "SELECT protocol, outcome, error, sql FROM system.queries WHERE protocol = 'postgres' ORDER BY started_at").fetchall()
        outcomes = {(r[1], "query_timeout" in (r[2] or "")) for r in rows}
        assert ("failed", True) in outcomes, rows
        assert any(r[1] == "ok" and "count(*) FROM crm.deals" in r[3] for r in rows), rows
    # Another user's audit does not show these.
    with connect(secured, "demo", "admin", ADMIN_PASSWORD) as conn:
        sql = [r[0] for r in conn.execute("SELECT sql FROM system.queries").fetchall()]
        assert not any("generate_series(1, 300000)" in q for q in sql), sql
