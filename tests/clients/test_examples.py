"""The files under examples/ are checked against the demo tenant: every saved query runs
through both protocols and returns rows, the Grafana provisioning file is valid YAML that
points at the documented ports, and the Python examples run."""
import os
import subprocess
import sys

import adbc_driver_flightsql.dbapi as flightsql
import psycopg
import pytest
import yaml

from conftest import ROOT

EXAMPLES = os.path.join(ROOT, "examples")


def saved_queries():
    with open(os.path.join(EXAMPLES, "superset", "saved_queries.yaml")) as f:
        return yaml.safe_load(f)["queries"]


@pytest.mark.parametrize("saved", saved_queries(), ids=lambda q: q["label"])
def test_superset_saved_queries_run_on_both_protocols(demo, saved):
    with flightsql.connect(demo.grpc) as conn, conn.cursor() as cur:
        cur.execute(saved["sql"])
        flight_rows = cur.fetchall()
    with psycopg.connect(host=demo.pg_host, port=demo.pg_port, dbname="demo", user="demo", autocommit=True) as conn:
        pg_rows = conn.execute(saved["sql"]).fetchall()
    assert flight_rows, saved["label"]
    assert len(pg_rows) == len(flight_rows)


def test_grafana_provisioning_is_valid():
    with open(os.path.join(EXAMPLES, "grafana", "provisioning", "datasources", "salespulse.yaml")) as f:
        config = yaml.safe_load(f)
    sources = {d["type"]: d for d in config["datasources"]}
    assert sources["grafana-postgresql-datasource"]["url"].endswith(":5433")
    flight = sources["influxdata-flightsql-datasource"]["jsonData"]
    assert flight["host"].endswith(":50051")
    assert {"key": "x-salespulse-compat", "value": "grafana"} in flight["metadata"]


@pytest.mark.parametrize("script", ["adbc_pandas_polars.py", "psycopg_postgres.py"])
def test_python_examples_run(demo, script):
    path = os.path.join(EXAMPLES, "python", script)
    with open(path) as f:
        source = f.read()
    # The examples talk to the default ports; point them at the test server.
    source = source.replace("127.0.0.1:50051", demo.flight).replace("host=127.0.0.1 port=5433", f"host={demo.pg_host} port={demo.pg_port}")
    result = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def dashboard():
    import json
    with open(os.path.join(EXAMPLES, "grafana", "dashboards", "sales-department.json")) as f:
        return json.load(f)


def expand(sql, department, manager):
    from datetime import datetime, timezone
    import grafana_macros
    sql = sql.replace("$department", department).replace("$manager", manager)
    return grafana_macros.postgres(sql, datetime(2025, 6, 1, tzinfo=timezone.utc), datetime(2026, 6, 15, tzinfo=timezone.utc), 86400)


def test_dashboard_panels_run_on_the_demo_tenant(demo):
    board = dashboard()
    assert board["title"] == "Sales department"
    assert {v["name"] for v in board["templating"]["list"]} == {"department", "manager"}
    with psycopg.connect(host=demo.pg_host, port=demo.pg_port, dbname="demo", user="demo", autocommit=True) as conn:
        departments = [r[1] for r in conn.execute(expand(board["templating"]["list"][0]["query"], "'__all__'", "'__all__'")).fetchall()]
        assert departments
        managers = conn.execute(expand(board["templating"]["list"][1]["query"], f"'{departments[0]}'", "'__all__'")).fetchall()
        assert managers
        titles = set()
        for panel in board["panels"]:
            sql = panel["targets"][0]["rawSql"]
            titles.add(panel["title"])
            rows = conn.execute(expand(sql, "'__all__'", "'__all__'")).fetchall()
            assert rows, f"{panel['title']}: no rows for the whole company"
            # One department and one of its managers: the panel still runs.
            conn.execute(expand(sql, f"'{departments[0]}'", f"'{managers[0][1]}'")).fetchall()
    for wanted in ["Plan, fact and forecast (month)", "Funnel", "Calls per manager", "Discipline", "Loss reasons", "Channels"]:
        assert wanted in titles
