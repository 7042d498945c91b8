"""flightsql-dbapi through SQLAlchemy: the path Apache Superset takes
(docs/clients.md § flightsql-dbapi and Superset)."""
import pytest
import flightsql.sqlalchemy  # noqa: F401  registers the datafusion+flightsql dialect
import sqlalchemy
from sqlalchemy import inspect, text

from conftest import ANALYST_API_TOKEN, ANALYST_PASSWORD


def engine_for(url):
    return sqlalchemy.create_engine(url)


def test_inspect_and_query_without_auth(demo):
    # No token configured: the dialect sends `authorization: Bearer None`, which a server
    # without users ignores.
    engine = engine_for(f"datafusion+flightsql://{demo.flight}?insecure=true")
    inspector = inspect(engine)
    assert {"crm", "kpi", "system"} <= set(inspector.get_schema_names())
    assert "deals" in inspector.get_table_names(schema="crm")
    columns = {c["name"]: c for c in inspector.get_columns("deals", schema="crm")}
    assert {"deal_id", "amount", "created_at", "status"} <= set(columns)
    # Strings must be TEXT (groupable in Superset), not BLOB.
    assert "TEXT" in str(columns["status"]["type"]).upper() or "VARCHAR" in str(columns["status"]["type"]).upper()
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) AS n FROM crm.deals GROUP BY status ORDER BY status")).fetchall()
    assert {r[0] for r in rows} <= {"open", "won", "lost"}
    assert sum(r[1] for r in rows) > 0


def test_basic_auth_and_tenant_scope(secured):
    # TLS with a self-signed certificate: verification off, as a test setup does.
    engine = engine_for(f"datafusion+flightsql://analyst:{ANALYST_PASSWORD}@{secured.flight}?disable_server_verification=true")
    with engine.connect() as connection:
        n = connection.execute(text("SELECT count(*) FROM crm.deals")).scalar()
    assert n > 0
    inspector = inspect(engine)
    assert "deals" in inspector.get_table_names(schema="crm")
    with pytest.raises(Exception, match="demo"):
        with engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM demo.crm.deals")).scalar()


def test_wrong_password_is_refused(secured):
    # The dialect logs in (Handshake with padded Basic) as soon as the engine is created.
    with pytest.raises(Exception, match="wrong user name or password"):
        engine = engine_for(f"datafusion+flightsql://analyst:wrong@{secured.flight}?disable_server_verification=true")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar()


def test_a_static_api_token_logs_in_without_a_password(secured):
    # Superset's "token" field: sent as `authorization: Bearer <token>` on every call.
    engine = engine_for(f"datafusion+flightsql://{secured.flight}?token={ANALYST_API_TOKEN}&disable_server_verification=true")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM crm.deals")).scalar() > 0
        # The token's user reads only its own tenants.
        with pytest.raises(Exception, match="demo"):
            connection.execute(text("SELECT count(*) FROM demo.crm.deals")).scalar()
    with pytest.raises(Exception, match="token"):
        wrong = engine_for(f"datafusion+flightsql://{secured.flight}?token={ANALYST_API_TOKEN}x&disable_server_verification=true")
        with wrong.connect() as connection:
            connection.execute(text("SELECT 1")).scalar()
