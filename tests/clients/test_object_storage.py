"""`storage.root = "s3://…"` against a local S3-compatible server (moto's server mode): refresh
writes snapshots and swaps CURRENT in the bucket, retention keeps the newest once the grace
period of the replaced ones has passed, and `serve` answers queries from the bucket.
Credentials come from the usual AWS_* variables."""

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import adbc_driver_flightsql.dbapi as flightsql
import boto3
import pytest

from conftest import BINARY, _start, _stop

BUCKET = "salespulse-test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    port = free_port()
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
               AWS_ENDPOINT=endpoint, AWS_ALLOW_HTTP="true")
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield client, env
    moto.terminate()
    moto.wait(timeout=30)


def test_snapshots_in_a_bucket_are_written_swapped_kept_and_served(s3):
    client, env = s3
    folder = tempfile.mkdtemp(prefix="salespulse-s3-")
    config = os.path.join(folder, "salespulse.toml")
    with open(config, "w") as f:
        f.write(textwrap.dedent(f"""
            [storage]
            root = "s3://{BUCKET}/salespulse"
            keep_snapshots = 2
            follow_seconds = 1
            retention_grace_seconds = 4

            [limits]
            query_timeout_seconds = 2

            [server]
            flight_sql = "127.0.0.1:0"
            postgres = "127.0.0.1:0"
            http = "127.0.0.1:0"

            [[tenants]]
            name = "acme"
            timezone = "Europe/Moscow"
            [tenants.source]
            kind = "demo"
            scale = 0.01
            seed = 5
        """))
    for _ in range(3):
        cron_refresh(config, env)
    # Retention deletes a replaced snapshot only once its grace period (4 s) has passed: a
    # server may still be reading it.
    time.sleep(4.5)
    cron_refresh(config, env)

    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="salespulse/acme/")
            for o in page.get("Contents", [])]
    snapshots = sorted({k.split("/")[3] for k in keys if k.startswith("salespulse/acme/snapshots/")})
    assert len(snapshots) == 2, snapshots  # retention: the newest two
    current = client.get_object(Bucket=BUCKET, Key="salespulse/acme/CURRENT")["Body"].read().decode().strip()
    assert current == snapshots[-1]
    assert f"salespulse/acme/snapshots/{current}/manifest.json" in keys
    assert any(k.endswith("calls/part-00000.parquet") for k in keys)

    proc, match = _start([BINARY, "serve", "--config", config], r"Flight SQL on (\S+), PostgreSQL on (\S+), HTTP on (\S+), (?:no )?TLS", env)
    try:
        with flightsql.connect(f"grpc://{match.group(1)}") as conn, conn.cursor() as cur:
            cur.execute("SELECT snapshot_id FROM acme.system.snapshots WHERE is_current")
            assert cur.fetchall() == [(current,)]
            cur.execute("SELECT count(*) > 0, sum(CASE WHEN status = 'won' THEN 1 ELSE 0 END) >= 0 FROM acme.crm.deals")
            assert cur.fetchall() == [(True, True)]
            cur.execute("SELECT count(*) > 0 FROM acme.kpi.sales_by_period")
            assert cur.fetchall() == [(True,)]
            # A cron-style `salespulse refresh` while the server runs: the server follows
            # CURRENT and serves the new snapshot without a restart.
            cron_refresh(config, env)
            newest = client.get_object(Bucket=BUCKET, Key="salespulse/acme/CURRENT")["Body"].read().decode().strip()
            assert newest != current
            assert wait_current(cur, "acme", newest) == newest
            cur.execute("SELECT count(*) > 0 FROM acme.kpi.sales_by_period")
            assert cur.fetchall() == [(True,)]
    finally:
        _stop(proc)


def cron_refresh(config, env=None):
    """`salespulse refresh --config CONFIG`, as cron runs it; it must succeed."""
    done = subprocess.run([BINARY, "refresh", "--config", config], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def wait_current(cur, tenant, snapshot_id, limit_seconds=30):
    """The snapshot `tenant` serves, once it is `snapshot_id` (or after `limit_seconds`)."""
    deadline = time.monotonic() + limit_seconds
    while True:
        cur.execute(f"SELECT snapshot_id FROM {tenant}.system.snapshots WHERE is_current")
        served = cur.fetchall()[0][0]
        if served == snapshot_id or time.monotonic() > deadline:
            return served
        time.sleep(0.2)


def test_a_cron_refresh_into_a_local_folder_is_served_without_a_restart():
    folder = tempfile.mkdtemp(prefix="salespulse-cron-")
    config = os.path.join(folder, "salespulse.toml")
    with open(config, "w") as f:
        f.write(textwrap.dedent("""
            [storage]
            root = "data"
            follow_seconds = 1

            [server]
            flight_sql = "127.0.0.1:0"
            postgres = "127.0.0.1:0"
            http = "127.0.0.1:0"

            [[tenants]]
            name = "acme"
            timezone = "Europe/Moscow"
            refresh_on_start = false
            [tenants.source]
            kind = "demo"
            scale = 0.01
            seed = 5
        """))

    def refresh():
        cron_refresh(config)
        with open(os.path.join(folder, "data", "acme", "CURRENT")) as current:
            return current.read().strip()

    first = refresh()
    proc, match = _start([BINARY, "serve", "--config", config], r"Flight SQL on (\S+), PostgreSQL on (\S+), HTTP on (\S+), (?:no )?TLS")
    try:
        with flightsql.connect(f"grpc://{match.group(1)}") as conn, conn.cursor() as cur:
            assert wait_current(cur, "acme", first, limit_seconds=0) == first
            second = refresh()
            assert second != first
            assert wait_current(cur, "acme", second) == second
            cur.execute("SELECT count(*) > 0 FROM acme.crm.calls")
            assert cur.fetchall() == [(True,)]
            # Both cron runs are in the server's system.refreshes: attempts are stored beside
            # the snapshots, whoever made them.
            cur.execute("SELECT triggered_by, outcome, snapshot_id FROM acme.system.refreshes ORDER BY finished_at")
            assert cur.fetchall() == [("command", "ok", first), ("command", "ok", second)]
    finally:
        _stop(proc)
    # The KPI tables were built by `refresh`, before its commit: the server found them and
    # built none (it logs a build as "kpi tables materialised").
    with open(proc.log_path) as log:
        assert "kpi tables materialised" not in log.read()
