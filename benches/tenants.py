"""How many tenants one query replica holds: N demo tenants at one scale (default 1, about
1 M calls a year each), their snapshots and KPI tables written by `salespulse refresh` (as a
fleet's refresher writes them), then `salespulse serve --role query` on them. For each N:
the time from start to serving, resident memory once serving, and CLIENTS PostgreSQL
dashboard clients (psycopg, spread over the tenants, each on its tenant's database) running
the Grafana dashboard's panel queries in a loop for SECONDS: queries/s, p50/p99 latency,
errors, peak resident memory. Default limits and result cache.

Run through `scripts/bench.sh tenants [N ...]` (default 1 10 30; env TENANTS_CLIENTS=20,
TENANTS_SECONDS=30, TENANTS_SCALE=1).
"""
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import psycopg

from dashboard_loop import panel_queries, percentile

BINARY = os.environ["SALESPULSE_BIN"]
CLIENTS = int(os.environ.get("TENANTS_CLIENTS", "20"))
SECONDS = float(os.environ.get("TENANTS_SECONDS", "30"))
SCALE = float(os.environ.get("TENANTS_SCALE", "1"))
SECRET = "tenants-bench-secret-0123456789"


def config_text(root, tenants):
    parts = [textwrap.dedent(f"""
        [storage]
        root = "{root}"

        [server]
        flight_sql = "127.0.0.1:0"
        postgres = "127.0.0.1:0"
        http = "127.0.0.1:0"
        token_secret_env = "SALESPULSE_TOKEN_SECRET"
    """)]
    for i in range(tenants):
        parts.append(textwrap.dedent(f"""
            [[tenants]]
            name = "t{i:03d}"
            timezone = "Europe/Moscow"
            refresh_on_start = false
            [tenants.source]
            kind = "demo"
            scale = {SCALE}
            seed = {100 + i}
        """))
    return "".join(parts)


def rss_mib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def client(port, tenant, queries, deadline, out):
    latencies, errors = [], []
    try:
        conn = psycopg.connect(host="127.0.0.1", port=port, dbname=tenant, user="grafana", autocommit=True)
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        out.append(([], [f"connect: {e}"]))
        return
    i = 0
    while time.monotonic() < deadline:
        _, sql = queries[i % len(queries)]
        i += 1
        started = time.perf_counter()
        try:
            conn.execute(sql).fetchall()
            latencies.append(time.perf_counter() - started)
        except Exception as e:  # noqa: BLE001
            errors.append(str(e).splitlines()[0][:200])
    conn.close()
    out.append((latencies, errors))


def main():
    counts = [int(a) for a in sys.argv[1:]] or [1, 10, 30]
    env = dict(os.environ, SALESPULSE_TOKEN_SECRET=SECRET, RUST_LOG="info")
    folder = tempfile.mkdtemp(prefix="salespulse-tenants-")
    root = os.path.join(folder, "data")
    config = os.path.join(folder, "salespulse.toml")
    with open(config, "w") as f:
        f.write(config_text(root, max(counts)))
    started = time.monotonic()
    subprocess.run([BINARY, "refresh", "--config", config], env=env, check=True, capture_output=True)
    print(f"{max(counts)} tenants at scale {SCALE:g} refreshed (snapshots and KPI tables) in {time.monotonic() - started:.1f} s")
    queries = panel_queries()
    print(f"| tenants | start to serving | RSS serving | clients | queries/s | p50 | p99 | errors | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        with open(config, "w") as f:
            f.write(config_text(root, n))
        started = time.monotonic()
        proc = subprocess.Popen([BINARY, "serve", "--config", config, "--role", "query", "--replica", "bench"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        for line in proc.stderr:
            match = re.search(r"PostgreSQL on 127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            raise RuntimeError("serve did not start")
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        ready = time.monotonic() - started
        time.sleep(2)
        serving = rss_mib(proc.pid, "VmRSS")
        out, threads = [], []
        deadline = time.monotonic() + SECONDS
        for c in range(CLIENTS):
            threads.append(threading.Thread(target=client, args=(port, f"t{c % n:03d}", queries, deadline, out)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak = rss_mib(proc.pid, "VmHWM")
        proc.terminate()
        proc.wait()
        latencies = [x for ls, _ in out for x in ls]
        errors = [e for _, es in out for e in es]
        print(f"| {n} | {ready:.1f} s | {serving:,.0f} MiB | {CLIENTS} | {len(latencies) / SECONDS:,.1f} | "
              f"{percentile(latencies, 50) * 1000:,.1f} ms | {percentile(latencies, 99) * 1000:,.1f} ms | {len(errors)} | {peak:,.0f} MiB |")
        for e in sorted(set(errors))[:5]:
            print(f"error: {e}")


if __name__ == "__main__":
    main()
