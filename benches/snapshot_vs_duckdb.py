"""Measures `salespulse demo` (generation + snapshot write), peak memory, and the first
query after the server starts; compares the snapshot write rate with DuckDB writing the
same rows to zstd Parquet, sorted the same way, in the same run.

Then the writer alone: the same rows exported to CSV (DuckDB, untimed) and imported by
`salespulse refresh` from a `files` tenant, which reads every table before it writes, so it
reports the write apart (`pull X s, write Y s`); DuckDB then writes the rows of that
snapshot, and the two write rates are compared.

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

from serve import current_snapshot, serve_demo

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


def duckdb_write(data, tenant_name="demo"):
    folder, manifest = current_snapshot(data, tenant_name)
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
                    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3, ROW_GROUP_SIZE 131072)")
        con.unregister("t")
        rows += table.num_rows
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return {"rows": rows, "write_s": seconds, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}


# The tables `salespulse refresh` reads from a tenant's `inputs` folder, not its source.
INPUT_TABLES = {"sales_plans", "compensation", "absences", "feedback"}


def export_csv(data, folder):
    """Every table of the demo snapshot as CSV: the CRM tables into `folder/crm`, the input
    tables into `folder/inputs`; timestamps in RFC 3339 UTC, as the files connector reads them."""
    snapshot_folder, manifest = current_snapshot(data)
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    for sub in ("crm", "inputs"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for name, entry in manifest["tables"].items():
        files = [os.path.join(snapshot_folder, f) for f in entry["files"]]
        columns = con.execute(f"DESCRIBE SELECT * FROM read_parquet({files!r})").fetchall()
        select = ", ".join(
            f"strftime({c[0]}, '%Y-%m-%dT%H:%M:%S.%fZ') AS {c[0]}" if c[1].startswith("TIMESTAMP") else c[0]
            for c in columns)
        sub = "inputs" if name in INPUT_TABLES else "crm"
        con.execute(f"COPY (SELECT {select} FROM read_parquet({files!r})) TO '{folder}/{sub}/{name}.csv' (HEADER)")


def refresh_from_files(folder):
    """`salespulse refresh` of a files tenant over `folder` (from `export_csv`): the pull and
    the write timed apart by the command itself."""
    data = os.path.join(folder, "data")
    config = os.path.join(folder, "files.toml")
    with open(config, "w") as f:
        f.write(f'[storage]\nroot = "{data}"\n'
                f'[[tenants]]\nname = "files"\ntimezone = "UTC"\ninputs = "{folder}/inputs"\n'
                f'[tenants.source]\nkind = "files"\npath = "{folder}/crm"\nexported_at = "{AS_OF}"\n')
    cmd = ["/usr/bin/time", "-f", "%e %M", BINARY, "refresh", "--config", config]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if "rows from" in l)
    m = re.search(r"of (\d+) rows .* in ([\d.]+) s \(pull ([\d.]+) s, write ([\d.]+) s", line)
    elapsed, max_kb = out.stderr.strip().splitlines()[-1].split()
    return data, {"rows": int(m.group(1)), "pull_s": float(m.group(3)), "write_s": float(m.group(4)),
                  "wall_s": float(elapsed), "peak_rss_mib": int(max_kb) / 1024}


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
        exports = tempfile.mkdtemp(prefix=f"salespulse-bench-files-{scale}-")
        export_csv(data, exports)
        shutil.rmtree(data)
        files_data, files = refresh_from_files(exports)
        duck_files = duckdb_write(files_data, "files")
        print(f"  the writer alone (`refresh` of a files tenant, same rows from CSV): pull {files['pull_s']:.1f} s, "
              f"write {files['write_s']:.1f} s = {files['rows'] / files['write_s']:,.0f} rows/s, "
              f"peak RSS {files['peak_rss_mib']:,.0f} MiB")
        print(f"  DuckDB COPY of that snapshot's rows: {duck_files['write_s']:.1f} s "
              f"= {duck_files['rows'] / duck_files['write_s']:,.0f} rows/s")
        ratio = (files['rows'] / files['write_s']) / (duck_files['rows'] / duck_files['write_s'])
        print(f"  writer rate = {ratio:.2f}x DuckDB's")
        shutil.rmtree(exports)


if __name__ == "__main__":
    main()
