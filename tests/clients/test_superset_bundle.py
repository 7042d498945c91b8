"""The ready Superset dashboard of examples/superset/sales-department, imported into a stock
Superset 6.1.0 (superset_server.py) the two ways examples/superset/README.md gives:
`superset import-dashboards -p` and `POST /api/v1/dashboard/import/` (overwrite), both from
the ZIP its one-liner makes. The imported database, which points at the README's
127.0.0.1:50051, is repointed at the test's demo server, then every chart's saved query
runs (`GET /api/v1/chart/<id>/data/`). One test per chart of CHARTS, so a missing chart
shows by name.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import pytest
import yaml

from conftest import ROOT
from superset_server import requires_superset, superset  # noqa: F401  (the fixture)

BUNDLE = os.path.join(ROOT, "examples", "superset", "sales-department")
DATABASE = "salespulse demo"
BUNDLE_URI = "datafusion+flightsql://127.0.0.1:50051?insecure=true"
SLUG = "salespulse-sales-department"

# chart name -> columns every row of its data must carry (x axis / dimensions and metric labels).
CHARTS = {
    "Revenue (won deals)": ["Revenue"],
    "Revenue by month": ["period", "New clients", "Repeat clients"],
    "Plan vs fact by month": ["month", "Plan", "Fact"],
    "Deals won by manager": ["manager_name", "Deals won"],
    "Funnel": ["stage_name", "Deals reached"],
    "Loss reasons": ["loss_reason_name", "Deals lost"],
    "Top clients": ["client", "Revenue", "Deals won"],
    "Calls per day": ["day", "Calls", "Successful"],
}

pytestmark = requires_superset


def _bundle_files(kind):
    return sorted(glob.glob(os.path.join(BUNDLE, kind, "**", "*.yaml"), recursive=True))


def test_bundle_files():
    """The directory is what Superset exports: the README's URI, one database, every chart
    placed on the dashboard, every chart's dataset in the bundle."""
    with open(os.path.join(BUNDLE, "metadata.yaml")) as f:
        assert yaml.safe_load(f) == {"version": "1.0.0", "type": "Dashboard", "timestamp": "2026-06-15T12:00:00+00:00"}
    databases = [yaml.safe_load(open(p)) for p in _bundle_files("databases")]
    assert [(d["database_name"], d["sqlalchemy_uri"]) for d in databases] == [(DATABASE, BUNDLE_URI)]
    datasets = {d["uuid"]: d for d in (yaml.safe_load(open(p)) for p in _bundle_files("datasets"))}
    assert all(d["database_uuid"] == databases[0]["uuid"] for d in datasets.values())
    charts = {c["uuid"]: c for c in (yaml.safe_load(open(p)) for p in _bundle_files("charts"))}
    assert sorted(c["slice_name"] for c in charts.values()) == sorted(CHARTS)
    for chart in charts.values():
        assert chart["dataset_uuid"] in datasets, chart["slice_name"]
        json.loads(chart["query_context"])
    (dashboard,) = [yaml.safe_load(open(p)) for p in _bundle_files("dashboards")]
    assert dashboard["dashboard_title"] == "Sales department" and dashboard["slug"] == SLUG
    placed = [n["meta"]["uuid"] for n in dashboard["position"].values() if isinstance(n, dict) and n.get("type") == "CHART"]
    assert sorted(placed) == sorted(charts), "every chart on the dashboard exactly once"


@pytest.fixture(scope="module")
def bundle_zip():
    """The ZIP, made by the README's one-liner."""
    path = os.path.join(tempfile.mkdtemp(prefix="salespulse-superset-bundle-"), "sales-department.zip")
    subprocess.run([sys.executable, "-m", "zipfile", "-c", path, "sales-department/"],
                   cwd=os.path.dirname(BUNDLE), check=True)
    return path


@pytest.fixture(scope="module")
def imported(superset, demo, bundle_zip):  # noqa: F811
    """Imports the bundle both ways, repoints its database at the demo server; returns
    {chart name: chart id} of the dashboard."""
    done = superset.cli("import-dashboards", "-p", bundle_zip, "-u", "admin")
    assert done.returncode == 0 and "There was an error" not in done.stderr + done.stdout, \
        f"superset import-dashboards failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    with open(bundle_zip, "rb") as f:
        superset.call("POST", "/api/v1/dashboard/import/", data={"overwrite": "true"},
                      files={"formData": ("sales-department.zip", f, "application/zip")})
    q = f"(filters:!((col:database_name,opr:eq,value:'{DATABASE}')))"
    found = superset.call("GET", "/api/v1/database/", params={"q": q})["result"]
    assert len(found) == 1, found
    database = found[0]["id"]
    assert superset.call("GET", f"/api/v1/database/{database}/connection")["result"]["sqlalchemy_uri"] == BUNDLE_URI
    superset.call("PUT", f"/api/v1/database/{database}",
                  json={"sqlalchemy_uri": f"datafusion+flightsql://{demo.flight}?insecure=true"})
    dashboard = superset.call("GET", f"/api/v1/dashboard/{SLUG}")["result"]
    assert dashboard["dashboard_title"] == "Sales department", dashboard
    charts = superset.call("GET", f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    names = [c["slice_name"] for c in charts]
    assert len(names) == len(set(names)), f"a second import duplicated charts: {sorted(names)}"
    return {"dashboard": dashboard, "charts": {c["slice_name"]: c["id"] for c in charts}}


def test_dashboard_layout(superset, imported):  # noqa: F811
    """After the import every chart of the dashboard sits in its layout under its new id."""
    position = json.loads(imported["dashboard"]["position_json"])
    placed = sorted(n["meta"]["chartId"] for n in position.values() if isinstance(n, dict) and n.get("type") == "CHART")
    assert placed == sorted(imported["charts"].values()), (placed, imported["charts"])
    assert sorted(imported["charts"]) == sorted(CHARTS)


@pytest.mark.parametrize("name", list(CHARTS))
def test_chart(superset, imported, name):  # noqa: F811
    assert name in imported["charts"], f"chart {name!r} not on the imported dashboard: {sorted(imported['charts'])}"
    chart = imported["charts"][name]
    body = superset.call("GET", f"/api/v1/chart/{chart}/data/", params={"force": "true"})
    assert len(body["result"]) == 1, body
    result = body["result"][0]
    assert not result.get("error"), f"{result.get('error')}\nSQL: {result.get('query')}"
    assert result["status"] == "success", result
    rows = result["data"]
    assert rows, f"no rows\nSQL: {result['query']}"
    for column in CHARTS[name]:
        assert column in rows[0], (column, rows[0], result["query"])
    assert any(isinstance(v, (int, float)) and v for row in rows for v in row.values()), rows[:5]
