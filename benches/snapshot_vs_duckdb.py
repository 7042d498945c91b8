"""Measures `salespulse demo` (generation + snapshot write), peak memory, and the first
query after the server starts; compares the snapshot write rate with DuckDB writing the
same rows to zstd Parquet, sorted the same way, in the same run.

The demo hands its calls to the snapshot writer while it generates them (so it never holds
them all), so generating and writing overlap and the command reports them together ("made
and written together"). That whole time is compared with DuckDB's timed COPYs of the same
rows, which only write: a conservative comparison, since our figure includes generating
every row. (A source that pulls before writing, a CRM, reports `pull` and `write` apart;
both forms are read here.)

Run through scripts/bench.sh, which builds the release binary and the venv.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow.parquet as pq

from serve import serve_demo

BINARY = os.environ["SALESPULSE_BIN"]
AS_OF = "2026-11-01T00:00:00Z"


def run_demo(scale, data):
    cmd = ["/usr/bin/time", "-f", "%e %M", BINARY, "demo", "--scale", str(scale), "--seed", "42",
           "--as-of", AS_OF, "--data", data, "--no-serve"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if "rows from" in l)
    elapsed, max_kb = out.stderr.strip().splitlines()[-1].split()
    together = re.search(r"of (\d+) rows .* in ([\d.]+) s \(made and written together", line)
    if together:
        rows, total = int(together.group(1)), float(together.group(2))
        generate, write = None, total
    else:
        m = re.search(r"of (\d+) rows .* in ([\d.]+) s \(pull ([\d.]+) s, write ([\d.]+) s", line)
        rows, total, generate, write = int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4))
    return {
        "rows": rows, "total_s": total, "generate_s": generate, "write_s": write,
        "wall_s": float(elapsed), "peak_rss_mib": int(max_kb) / 1024,
    }


def duckdb_write(data):
    tenant = os.path.join(data, "demo")
    snapshot = open(os.path.join(tenant, "CURRENT")).read().strip()
    folder = os.path.join(tenant, "snapshots", snapshot)
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    tables = {name: pq.read_table([os.path.join(folder, f) for f in e["files"]]) for name, e in manifest["tables"].items()}
    out = tempfile.mkdtemp(prefix="duckdb-out-")
    con = duckdb.connect()
    con.execute("SET threads = 2")
    rows = 0
    started = time.perf_counter()
    for name, table in tables.items():
        con.register("t", table)
        sort = manifest["tables"][name]["sorted_by"]
        con.execute(f"COPY (SELECT * FROM t ORDER BY {sort} NULLS FIRST) TO '{out}/{name}.parquet' "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 131072)")
        con.unregister("t")
        rows += table.num_rows
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return {"rows": rows, "write_s": seconds, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}


def first_query(data):
    started = time.perf_counter()
    proc, address = serve_demo(BINARY, data)
    ready = time.perf_counter() - started
    sql = "SELECT manager_id, count(*) AS calls, avg(duration_seconds) FROM crm.calls GROUP BY 1"
    timings = []
    with flightsql.connect(f"grpc://{address}") as conn:
        for _ in range(3):
            t = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.fetch_arrow_table()
            timings.append(time.perf_counter() - t)
    proc.terminate()
    proc.wait()
    return {"ready_s": ready, "first_query_s": timings[0], "warm_query_s": min(timings[1:])}


def main():
    scales = [float(s) for s in (sys.argv[1:] or ["1", "10"])]
    for scale in scales:
        data = tempfile.mkdtemp(prefix=f"salespulse-bench-{scale}-")
        ours = run_demo(scale, data)
        duck = duckdb_write(data)
        query = first_query(data)
        print(f"scale {scale:g}: {ours['rows']:,} rows")
        split = ("generated and written together" if ours["generate_s"] is None
                 else f"generate {ours['generate_s']:.1f} s, snapshot write")
        print(f"  salespulse demo: wall {ours['wall_s']:.1f} s, {split} {ours['write_s']:.1f} s "
              f"= {ours['rows'] / ours['write_s']:,.0f} rows/s, peak RSS {ours['peak_rss_mib']:,.0f} MiB")
        print(f"  DuckDB {duckdb.__version__} COPY to zstd Parquet ({duck['threads']} threads): {duck['write_s']:.1f} s "
              f"= {duck['rows'] / duck['write_s']:,.0f} rows/s")
        ratio = (ours['rows'] / ours['write_s']) / (duck['rows'] / duck['write_s'])
        print(f"  snapshot write rate = {ratio:.2f}x DuckDB's")
        print(f"  serve: ready after {query['ready_s']:.2f} s, first query {query['first_query_s'] * 1000:.0f} ms, "
              f"warm {query['warm_query_s'] * 1000:.0f} ms")
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
