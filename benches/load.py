"""A load test, bounded in time and on loopback only: CLIENTS concurrent clients (half over
Flight SQL with ADBC, half over PostgreSQL with psycopg) run the Grafana dashboard's panel
queries in a loop for SECONDS against `salespulse serve` on a demo snapshot (default
limits: 16 queries at once, 8 per user, a 10 s queue; result cache on). Reports queries per
second, p50/p99 latency per protocol, errors (the goal is zero), and the server's peak
resident memory. The peer in the same run: DuckDB in-process over the same Parquet, with as
many threads each running the same loop.

Run through `scripts/bench.sh load [CLIENTS] [SECONDS] [SCALE]` (default 100 clients, 60 s,
scale 1). Clients run in 4 worker processes of threads, so Python is not the bottleneck.
"""
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import psycopg

from dashboard_loop import duckdb_on_snapshot, panel_queries, percentile
from serve import serve_demo

BINARY = os.environ["SALESPULSE_BIN"]
AS_OF = "2026-06-15T12:00:00Z"
WORKERS = 4


def client_loop(kind, address, queries, deadline, out):
    latencies, errors = [], []
    try:
        if kind == "flight_sql":
            conn = flightsql.connect(f"grpc://{address}")
        else:
            host, port = address.rsplit(":", 1)
            conn = psycopg.connect(host=host, port=int(port), dbname="demo", user="grafana", autocommit=True)
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        out.append((kind, [], [f"connect: {e}"]))
        return
    i = 0
    while time.monotonic() < deadline:
        _, sql = queries[i % len(queries)]
        i += 1
        t = time.perf_counter()
        try:
            if kind == "flight_sql":
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.fetch_arrow_table()
            else:
                conn.execute(sql).fetchall()
            latencies.append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001
            errors.append(str(e).splitlines()[0][:200])
    conn.close()
    out.append((kind, latencies, errors))


def worker(args):
    kinds, flight, postgres, queries, deadline = args
    out, threads = [], []
    for kind in kinds:
        address = flight if kind == "flight_sql" else postgres
        threads.append(threading.Thread(target=client_loop, args=(kind, address, queries, deadline, out)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def duckdb_load(data, queries, clients, seconds):
    duck, _ = duckdb_on_snapshot(data)
    runnable = []
    for title, sql in queries:
        try:
            duck.execute(sql).fetchall()
            runnable.append((title, sql))
        except duckdb.Error:
            pass
    latencies, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds

    def loop():
        cur = duck.cursor()
        mine, i = [], 0
        while time.monotonic() < deadline:
            t = time.perf_counter()
            cur.execute(runnable[i % len(runnable)][1]).fetch_arrow_table()
            mine.append(time.perf_counter() - t)
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(runnable), latencies


def main():
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    scale = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    data = tempfile.mkdtemp(prefix=f"salespulse-load-{scale}-")
    subprocess.run([BINARY, "demo", "--scale", str(scale), "--seed", "42", "--as-of", AS_OF, "--data", data, "--no-serve"],
                   check=True, capture_output=True)
    queries = panel_queries()
    proc, flight = serve_demo(BINARY, data, "Europe/Moscow")
    postgres = serve_demo.postgres
    try:
        kinds = ["flight_sql" if i % 2 == 0 else "postgres" for i in range(clients)]
        deadline = time.monotonic() + seconds
        jobs = [(kinds[w::WORKERS], flight, postgres, queries, deadline) for w in range(WORKERS)]
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
            results = [r for part in pool.map(worker, jobs) for r in part]
        elapsed = time.monotonic() - started
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()

    runnable, duck_latencies = duckdb_load(data, queries, clients, seconds)

    print(f"scale {scale:g}, {clients} clients ({clients - clients // 2} Flight SQL, {clients // 2} PostgreSQL), {seconds:g} s, "
          f"{len(queries)} panel queries in a loop; server peak RSS {rss:,.0f} MiB")
    print("| protocol | queries | queries/s | p50 | p99 | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    all_errors = []
    for kind in ["flight_sql", "postgres"]:
        lat = [x for k, ls, _ in results if k == kind for x in ls]
        errs = [e for k, _, es in results if k == kind for e in es]
        all_errors += errs
        if lat:
            print(f"| salespulse {kind} | {len(lat):,} | {len(lat) / elapsed:,.1f} | {percentile(lat, 50) * 1000:,.1f} ms | "
                  f"{percentile(lat, 99) * 1000:,.1f} ms | {len(errs)} |")
    if duck_latencies:
        print(f"| DuckDB {duckdb.__version__} in-process, {clients} threads, {runnable} of the queries | {len(duck_latencies):,} | "
              f"{len(duck_latencies) / seconds:,.1f} | {percentile(duck_latencies, 50) * 1000:,.1f} ms | "
              f"{percentile(duck_latencies, 99) * 1000:,.1f} ms | 0 |")
    for e in sorted(set(all_errors))[:10]:
        print(f"error: {e}")
    sys.exit(1 if all_errors else 0)


if __name__ == "__main__":
    main()
