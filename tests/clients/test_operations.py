"""The HTTP operations endpoint as an operator and Prometheus use it: /health, /metrics
(parsed by Prometheus's own OpenMetrics parser), POST /tenants/{name}/refresh, authentication,
a refresh at start for a tenant without a snapshot, and system.refreshes over Flight SQL."""

import base64
import http.client
import json
import ssl
import time
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import ADMIN_PASSWORD, ANALYST_PASSWORD


def call(server, path, method="GET", user=None, password=None, scheme=None):
    scheme = scheme or ("https" if server.tls else "http")
    request = urllib.request.Request(f"{scheme}://{server.http}{path}", method=method)
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    # The secured server's certificate is self-signed.
    context = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=120, context=context) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def metrics(server, **auth):
    status, content_type, text = call(server, "/metrics", **auth)
    assert status == 200, text
    assert content_type.startswith("application/openmetrics-text"), content_type
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_health_and_metrics_of_the_demo(demo):
    status, _, body = call(demo, "/health")
    assert status == 200, body
    health = json.loads(body)
    assert health["status"] == "ok"
    [tenant] = health["tenants"]
    assert tenant["name"] == "demo" and tenant["snapshot_id"] and tenant["age_seconds"] >= 0
    assert tenant["last_refresh"] is None and tenant["refreshing"] is False

    samples = metrics(demo)
    assert samples[("salespulse_tenant_serving", (("tenant", "demo"),))] == 1
    assert samples[("salespulse_snapshot_rows", (("table", "calls"), ("tenant", "demo")))] > 0
    assert samples[("salespulse_snapshot_age_seconds", (("tenant", "demo"),))] > 0


def wait_until_serving(server, tenant, limit_seconds=180):
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        status, _, body = call(server, "/health")
        if status == 200:
            return json.loads(body)
        time.sleep(0.5)
    raise AssertionError(f"{tenant} did not serve within {limit_seconds} s: {body}")


def test_a_tenant_without_a_snapshot_is_refreshed_at_start_then_on_demand(fresh):
    health = wait_until_serving(fresh, "ops")
    [tenant] = health["tenants"]
    assert tenant["last_refresh"]["outcome"] == "ok" and tenant["last_refresh"]["trigger"] == "start"
    first = tenant["snapshot_id"]

    status, _, body = call(fresh, "/tenants/ops/refresh", method="POST")
    assert status == 200, body
    refreshed = json.loads(body)
    assert refreshed["outcome"] == "ok" and refreshed["snapshot_id"] != first and refreshed["rows"] > 0

    # Queries see the new snapshot, and system.refreshes lists both attempts.
    with flightsql.connect(fresh.grpc) as conn, conn.cursor() as cur:
        cur.execute("SELECT snapshot_id FROM ops.system.snapshots WHERE is_current")
        assert cur.fetchall() == [(refreshed["snapshot_id"],)]
        cur.execute("SELECT outcome, triggered_by, error IS NULL, rows > 0 FROM ops.system.refreshes ORDER BY started_at")
        assert cur.fetchall() == [("ok", "start", True, True), ("ok", "http", True, True)]

    with flightsql.connect(fresh.grpc) as conn, conn.cursor() as cur:
        for _ in range(2):
            cur.execute("SELECT count(*) FROM ops.crm.calls")
            cur.fetchall()

    samples = metrics(fresh)
    assert samples[("salespulse_refreshes_total", (("outcome", "ok"), ("tenant", "ops")))] == 2
    assert samples[("salespulse_result_cache_total", (("result", "hit"),))] >= 1
    assert samples[("salespulse_result_cache_total", (("result", "uncacheable"),))] >= 2  # system.* queries
    assert samples[("salespulse_query_seconds_count", (("cached", "true"), ("protocol", "flight_sql")))] >= 1
    assert samples[("salespulse_query_seconds_count", (("cached", "false"), ("protocol", "flight_sql")))] >= 3
    assert samples[("salespulse_refreshes_total", (("outcome", "failed"), ("tenant", "ops")))] == 0

    status, _, body = call(fresh, "/tenants/nope/refresh", method="POST")
    assert status == 404 and "no tenant 'nope'" in body


def test_operations_need_a_user_and_show_only_their_tenants(secured):
    # With tls_cert set the endpoint speaks HTTPS only; plain HTTP gets nowhere and the
    # server goes on answering.
    try:
        call(secured, "/health", scheme="http")
        assert False, "plain HTTP was answered on the TLS port"
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        pass
    # Without credentials /health is a load balancer's probe: ready or not, no tenant names.
    status, _, body = call(secured, "/health")
    assert status == 200 and json.loads(body)["status"] == "ready", body
    assert "acme" not in body and "demo" not in body and "tenants" not in body, body
    for probe in ("/health/live", "/health/ready"):
        status, _, body = call(secured, probe)
        assert status == 200 and "acme" not in body and "demo" not in body, body
    status, _, body = call(secured, "/metrics")
    assert status == 401 and "authentication required" in body
    status, _, body = call(secured, "/metrics", user="analyst", password="wrong")
    assert status == 401 and "wrong user name or password" in body

    status, _, body = call(secured, "/health", user="analyst", password=ANALYST_PASSWORD)
    assert status == 200, body
    assert [t["name"] for t in json.loads(body)["tenants"]] == ["acme"]
    status, _, body = call(secured, "/health", user="admin", password=ADMIN_PASSWORD)
    assert [t["name"] for t in json.loads(body)["tenants"]] == ["acme", "demo"]

    samples = metrics(secured, user="analyst", password=ANALYST_PASSWORD)
    # Per-tenant series are the user's tenants only (query and cache series are server-wide).
    tenants = {dict(labels)["tenant"] for (_, labels) in samples if "tenant" in dict(labels)}
    assert tenants == {"acme"}, samples

    # Another user's tenant is refused as if it did not exist; nothing is refreshed.
    status, _, body = call(secured, "/tenants/demo/refresh", method="POST", user="analyst", password=ANALYST_PASSWORD)
    assert status == 404, body
    status, _, body = call(secured, "/tenants/acme/refresh", method="POST")
    assert status == 401, body
    # Reading a tenant does not include starting its refreshes (they spend the CRM's quota).
    status, _, body = call(secured, "/tenants/acme/refresh", method="POST", user="analyst", password=ANALYST_PASSWORD)
    assert status == 403, body
    assert "refresh = true" in json.loads(body)["error"], body


def test_sigterm_stops_the_server_cleanly():
    import os
    import signal
    import subprocess
    import tempfile
    import textwrap
    from conftest import BINARY, _start

    folder = tempfile.mkdtemp(prefix="salespulse-stop-")
    config = os.path.join(folder, "salespulse.toml")
    with open(config, "w") as f:
        f.write(textwrap.dedent("""
            [storage]
            root = "data"
            [server]
            flight_sql = "127.0.0.1:0"
            postgres = "127.0.0.1:0"
            http = "127.0.0.1:0"
            [[tenants]]
            name = "idle"
            refresh_on_start = false
            [tenants.source]
            kind = "demo"
            scale = 0.01
        """))
    env = dict(os.environ, RUST_LOG="info")
    proc, _ = _start([BINARY, "serve", "--config", config], r"Flight SQL on (\S+), PostgreSQL on (\S+), HTTP on (\S+), ", env)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    # The server's output after start goes to its log file (conftest._start drains it until
    # the pipe closes).
    proc.drain.join(timeout=30)
    with open(proc.log_path) as log:
        rest = log.read()
    assert proc.returncode == 0, rest
    assert "shutting down" in rest, rest
