"""A Grafana dashboard refreshing: every panel query of examples/grafana/dashboards/
sales-department.json (macros expanded as Grafana does, all departments and managers),
50 rounds, one query at a time over Flight SQL (ADBC). It runs against `salespulse serve`
with the result cache and without it (`result_cache = "0"`). DuckDB runs the same SQL over
the same Parquet files in the same run: the snapshot's tables as `crm.*`, and the stored KPI
tables as `kpi.*`. Reports queries per second and p50/p99 latency.

Run through `scripts/bench.sh dashboard [SCALE] [ROUNDS]` (default scale 10, 50 rounds). It
builds the release binary and the venv.
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import adbc_driver_flightsql.dbapi as flightsql
import duckdb

from serve import current_snapshot, serve_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "clients"))
import grafana_macros  # noqa: E402

BINARY = os.environ["SALESPULSE_BIN"]
AS_OF = "2026-06-15T12:00:00Z"
TZ = "Europe/Moscow"


def panel_queries():
    with open(os.path.join(ROOT, "examples", "grafana", "dashboards", "sales-department.json")) as f:
        board = json.load(f)
    start, end = datetime(2025, 6, 1, tzinfo=timezone.utc), datetime(2026, 6, 15, tzinfo=timezone.utc)
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            sql = target.get("rawSql")
            if sql:
                sql = sql.replace("$department", "'__all__'").replace("$manager", "'__all__'")
                out.append((panel["title"], grafana_macros.postgres(sql, start, end, 86400)))
    return out


def duckdb_on_snapshot(data):
    """DuckDB over the demo tenant's current snapshot under `data`: its tables as `crm.*` and
    its stored KPI tables as `kpi.*`. Returns the connection and the manifest."""
    folder, manifest = current_snapshot(data)
    duck = duckdb.connect()
    duck.execute("CREATE SCHEMA crm; CREATE SCHEMA kpi")
    for name, entry in manifest["tables"].items():
        duck.execute(f"CREATE VIEW crm.{name} AS SELECT * FROM read_parquet('{os.path.join(folder, entry['files'][0])}')")
    builds = [os.path.dirname(m) for m in glob.glob(os.path.join(folder, "kpi", "*", "*", "materialised.json"))]
    for view_dir in glob.glob(os.path.join(builds[0], "*", "")):
        view = os.path.basename(os.path.dirname(view_dir))
        duck.execute(f"CREATE VIEW kpi.{view} AS SELECT * FROM read_parquet('{view_dir}*.parquet')")
    return duck, manifest


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def loop(run, queries, rounds):
    latencies = []
    started = time.perf_counter()
    for _ in range(rounds):
        for _, sql in queries:
            t = time.perf_counter()
            run(sql)
            latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return len(latencies) / total, percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000


def salespulse(data, queries, rounds, cache):
    proc, address = serve_demo(BINARY, data, TZ, result_cache=cache)
    try:
        with flightsql.connect(f"grpc://{address}") as conn:
            def run(sql):
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetch_arrow_table()
            return loop(run, queries, rounds)
    finally:
        proc.terminate()
        proc.wait()


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    data = tempfile.mkdtemp(prefix=f"salespulse-dashboard-{scale}-")
    subprocess.run([BINARY, "demo", "--scale", str(scale), "--seed", "42", "--as-of", AS_OF, "--data", data, "--no-serve"],
                   check=True, capture_output=True)
    queries = panel_queries()
    # The first start stores the KPI tables; both measured runs then start on them.
    without = salespulse(data, queries, rounds, "0")
    cached = salespulse(data, queries, rounds, "256MiB")

    duck, manifest = duckdb_on_snapshot(data)
    runnable, refused = [], []
    for title, sql in queries:
        try:
            duck.execute(sql).fetchall()
            runnable.append((title, sql))
        except duckdb.Error as e:
            refused.append(f"{title}: {str(e).splitlines()[0]}")
    peer = loop(lambda sql: duck.execute(sql).fetch_arrow_table(), runnable, rounds)
    peer_ours = salespulse(data, runnable, rounds, "0")
    threads = duck.execute("SELECT current_setting('threads')").fetchone()[0]

    print(f"scale {scale:g}: {sum(e['rows'] for e in manifest['tables'].values()):,} rows; {len(queries)} panel queries x {rounds} rounds")
    print("| engine | queries/s | p50 | p99 |")
    print("|---|---:|---:|---:|")
    print(f"| salespulse, no cache | {without[0]:,.1f} | {without[1]:,.1f} ms | {without[2]:,.1f} ms |")
    print(f"| salespulse, result cache | {cached[0]:,.1f} | {cached[1]:,.1f} ms | {cached[2]:,.1f} ms |")
    print(f"| same {len(runnable)} queries: salespulse, no cache | {peer_ours[0]:,.1f} | {peer_ours[1]:,.1f} ms | {peer_ours[2]:,.1f} ms |")
    print(f"| same {len(runnable)} queries: DuckDB {duckdb.__version__} in-process ({threads} threads) | {peer[0]:,.1f} | {peer[1]:,.1f} ms | {peer[2]:,.1f} ms |")
    for r in refused:
        print(f"DuckDB could not run: {r}")


if __name__ == "__main__":
    main()
