"""Ad-hoc analyst SQL over the raw `crm` tables: scans filtered on time and manager, group-bys
on strings, joins of deals, calls and managers, window functions, top-N, a callback self-join,
count(DISTINCT), date_trunc buckets and an exact median. Each query runs over Flight SQL
(ADBC, results fetched in full as Arrow) against `salespulse serve` on the demo snapshot with
the result cache off (`result_cache = "0"`), and in DuckDB (PyPI, same run, 2 threads,
in-process) over the same Parquet files, the snapshot's tables as `crm.*`.

Every answer is checked against DuckDB's before it is timed into a ratio: the queries order
their output totally, and the two results are compared positionally (timestamps as UTC
microseconds, numbers with a relative tolerance of 1e-9, Decimal against float allowed). A
query whose answers differ, or that fails on either engine, is FAILED: it gets no ratio and
the script exits nonzero. Timing: one warm-up run per engine, then the median of `--runs`
runs, from execute to the whole Arrow table in hand. Both engines work in UTC (the server's
sessions do; DuckDB is set to it), so day and month buckets agree.

Usage: python benches/adhoc.py [SCALE ...] [--runs N] [--only NAME,NAME] [--explain]
                               [--data DIR] [--json PATH]
Default scale 10. `--data DIR` keeps each scale's demo data in DIR/scale-S (generated on the
first run, reused after); `ADHOC_DATA_DIR_<scale>` (a dot in the scale written as `_`, e.g.
ADHOC_DATA_DIR_0_2) names one scale's data folder directly. `--explain` also prints each
query's EXPLAIN ANALYZE from salespulse, for profiling.

Run through `scripts/bench.sh adhoc [SCALE ...]`, which builds the release binary and the venv.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import namedtuple
from decimal import Decimal

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa

from serve import serve_demo

BINARY = os.environ["SALESPULSE_BIN"]
AS_OF = "2026-06-15T12:00:00Z"
TZ = "Europe/Moscow"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# DuckDB 1.5 renamed fetch_arrow_table() to to_arrow_table(); the old name is the same call.
warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated")

Query = namedtuple("Query", "name purpose sql")

# The demo's calls span 2025-04-16 to the snapshot's as-of, 2026-06-15 12:00 UTC. Literals are
# UTC: every `crm` instant is Timestamp(µs, "UTC").
AS_OF_SQL = "TIMESTAMP '2026-06-15 12:00:00'"
MANAGER = "102"


def in_may(column):
    return f"{column} >= TIMESTAMP '2026-05-01 00:00:00' AND {column} < TIMESTAMP '2026-06-01 00:00:00'"


QUERIES = [
    Query("calls_per_manager", "every call grouped by manager: count and mean talk time", """
        SELECT manager_id, count(*), avg(duration_seconds) FROM crm.calls GROUP BY 1 ORDER BY 1"""),
    Query("manager_month_calls", "one manager's calls in May, row by row", f"""
        SELECT call_id, started_at, direction, status, duration_seconds, phone_hash
        FROM crm.calls
        WHERE manager_id = '{MANAGER}' AND {in_may('started_at')}
        ORDER BY started_at, call_id"""),
    Query("calls_by_direction_status", "the last year's calls by direction and status", """
        SELECT direction, status, count(*) AS calls, sum(duration_seconds) AS talk_seconds,
               avg(duration_seconds) AS avg_talk_seconds, max(duration_seconds) AS longest
        FROM crm.calls
        WHERE started_at >= TIMESTAMP '2025-06-15 00:00:00'
        GROUP BY direction, status
        ORDER BY direction, status"""),
    Query("calls_by_department", "calls joined to managers and departments, by department name", """
        SELECT dep.name AS department, count(*) AS calls,
               count(CASE WHEN c.status = 'answered' THEN 1 END) AS answered,
               CAST(sum(c.duration_seconds) AS DOUBLE) / 3600 AS talk_hours
        FROM crm.calls c
        JOIN crm.managers m ON m.manager_id = c.manager_id
        JOIN crm.departments dep ON dep.department_id = m.department_id
        GROUP BY dep.name
        ORDER BY dep.name"""),
    Query("may_calls_by_day_and_manager", "a month of calls by day and manager", f"""
        SELECT CAST(c.started_at AS DATE) AS day, c.manager_id, m.name AS manager, count(*) AS calls,
               count(CASE WHEN c.direction = 'outbound' THEN 1 END) AS outbound,
               count(CASE WHEN c.status = 'answered' THEN 1 END) AS answered,
               sum(c.duration_seconds) AS talk_seconds
        FROM crm.calls c JOIN crm.managers m ON m.manager_id = c.manager_id
        WHERE {in_may('c.started_at')}
        GROUP BY 1, 2, 3
        ORDER BY 1, 2, 3"""),
    Query("inbound_by_weekday_hour", "inbound calls and answer rate by weekday and hour (EXTRACT)", """
        SELECT EXTRACT(dow FROM started_at) AS weekday, EXTRACT(hour FROM started_at) AS hour,
               count(*) AS calls, avg(CASE WHEN status = 'answered' THEN 1.0 ELSE 0.0 END) AS answer_rate
        FROM crm.calls
        WHERE direction = 'inbound'
        GROUP BY 1, 2
        ORDER BY 1, 2"""),
    Query("distinct_per_month", "count(DISTINCT) of phones, managers and contacts per month of calls", """
        SELECT date_trunc('month', started_at) AS month, count(*) AS calls,
               count(DISTINCT phone_hash) AS phones, count(DISTINCT manager_id) AS managers,
               count(DISTINCT contact_id) AS contacts
        FROM crm.calls
        GROUP BY 1
        ORDER BY 1"""),
    Query("missed_call_callbacks", "self-join: missed inbound calls called back within 24 h, by month", """
        WITH missed AS (
            SELECT call_id, phone_hash, started_at FROM crm.calls
            WHERE direction = 'inbound' AND status = 'missed'
        ), callbacks AS (
            SELECT mc.call_id, min(o.started_at) AS callback_at
            FROM missed mc JOIN crm.calls o
              ON o.phone_hash = mc.phone_hash AND o.direction = 'outbound'
             AND o.started_at > mc.started_at AND o.started_at <= mc.started_at + INTERVAL '24 hours'
            GROUP BY mc.call_id
        )
        SELECT date_trunc('month', mc.started_at) AS month, count(*) AS missed,
               count(cb.callback_at) AS called_back,
               avg(EXTRACT(epoch FROM cb.callback_at) - EXTRACT(epoch FROM mc.started_at)) / 60 AS avg_minutes_to_callback
        FROM missed mc LEFT JOIN callbacks cb ON cb.call_id = mc.call_id
        GROUP BY 1
        ORDER BY 1"""),
    Query("top10_managers_by_revenue", "top 10 managers by won revenue over the last year", """
        SELECT d.manager_id, m.name AS manager, count(*) AS won, sum(d.amount_base) AS revenue,
               avg(d.amount_base) AS avg_deal
        FROM crm.deals d JOIN crm.managers m ON m.manager_id = d.manager_id
        WHERE d.status = 'won' AND d.closed_at >= TIMESTAMP '2025-06-15 00:00:00'
        GROUP BY d.manager_id, m.name
        ORDER BY revenue DESC, d.manager_id
        LIMIT 10"""),
    Query("revenue_rank_in_department", "rank() of each manager's 2026 revenue within the department", """
        WITH revenue AS (
            SELECT m.department_id, d.manager_id, sum(d.amount_base) AS revenue
            FROM crm.deals d JOIN crm.managers m ON m.manager_id = d.manager_id
            WHERE d.status = 'won' AND d.closed_at >= TIMESTAMP '2026-01-01 00:00:00'
            GROUP BY m.department_id, d.manager_id
        )
        SELECT department_id, manager_id, revenue,
               rank() OVER (PARTITION BY department_id ORDER BY revenue DESC) AS rank_in_department,
               CAST(revenue AS DOUBLE) / CAST(sum(revenue) OVER (PARTITION BY department_id) AS DOUBLE) AS share
        FROM revenue
        ORDER BY department_id, rank_in_department, manager_id"""),
    Query("monthly_revenue_running_total", "won revenue by month with a running total and lag()", """
        WITH monthly AS (
            SELECT date_trunc('month', closed_at) AS month, count(*) AS won, sum(amount_base) AS revenue
            FROM crm.deals WHERE status = 'won'
            GROUP BY 1
        )
        SELECT month, won, revenue,
               sum(revenue) OVER (ORDER BY month ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_revenue,
               lag(revenue) OVER (ORDER BY month) AS previous_month,
               revenue - lag(revenue) OVER (ORDER BY month) AS change
        FROM monthly
        ORDER BY month"""),
    Query("calls_per_deal_by_outcome", "deals LEFT JOIN calls: calls and talk time per deal, by deal status", """
        WITH per_deal AS (
            SELECT d.deal_id, d.status, count(c.call_id) AS calls,
                   coalesce(sum(c.duration_seconds), 0) AS talk_seconds
            FROM crm.deals d LEFT JOIN crm.calls c ON c.deal_id = d.deal_id
            WHERE d.created_at >= TIMESTAMP '2025-06-15 00:00:00'
            GROUP BY d.deal_id, d.status
        )
        SELECT status, count(*) AS deals, avg(CAST(calls AS DOUBLE)) AS avg_calls,
               avg(CAST(talk_seconds AS DOUBLE)) AS avg_talk_seconds,
               count(CASE WHEN calls = 0 THEN 1 END) AS deals_without_calls
        FROM per_deal
        GROUP BY status
        ORDER BY status"""),
    Query("top10_won_deals_with_calls", "deals joined to calls, managers and departments: the 10 largest 2026 wins", """
        SELECT d.deal_id, m.name AS manager, dep.name AS department, d.amount_base,
               count(c.call_id) AS calls, max(c.started_at) AS last_call
        FROM crm.deals d
        JOIN crm.managers m ON m.manager_id = d.manager_id
        JOIN crm.departments dep ON dep.department_id = m.department_id
        LEFT JOIN crm.calls c ON c.deal_id = d.deal_id
        WHERE d.status = 'won' AND d.closed_at >= TIMESTAMP '2026-01-01 00:00:00'
        GROUP BY d.deal_id, m.name, dep.name, d.amount_base
        ORDER BY d.amount_base DESC, d.deal_id
        LIMIT 10"""),
    Query("q1_won_deals", "every deal won in Q1 2026 with its manager, pipeline and source", """
        SELECT d.deal_id, d.title, d.amount, d.currency, d.created_at, d.closed_at,
               m.name AS manager, p.name AS pipeline, s.name AS source
        FROM crm.deals d
        LEFT JOIN crm.managers m ON m.manager_id = d.manager_id
        LEFT JOIN crm.pipelines p ON p.pipeline_id = d.pipeline_id
        LEFT JOIN crm.sources s ON s.source_id = d.source_id
        WHERE d.status = 'won'
          AND d.closed_at >= TIMESTAMP '2026-01-01 00:00:00' AND d.closed_at < TIMESTAMP '2026-04-01 00:00:00'
        ORDER BY d.closed_at, d.deal_id"""),
    Query("lead_conversion_by_source", "leads by source name and channel: converted, junk, conversion rate", """
        SELECT s.name AS source, s.channel, count(*) AS leads,
               count(CASE WHEN l.status = 'converted' THEN 1 END) AS converted,
               CAST(count(CASE WHEN l.status = 'converted' THEN 1 END) AS DOUBLE) / count(*) AS conversion,
               count(CASE WHEN l.status = 'junk' THEN 1 END) AS junk
        FROM crm.leads l LEFT JOIN crm.sources s ON s.source_id = l.source_id
        GROUP BY s.name, s.channel
        ORDER BY s.name NULLS LAST, s.channel NULLS LAST"""),
    Query("weekly_leads_by_status", "2026 leads by ISO week (date_trunc('week')) and status", """
        SELECT date_trunc('week', created_at) AS week, status, count(*) AS leads
        FROM crm.leads
        WHERE created_at >= TIMESTAMP '2026-01-01 00:00:00'
        GROUP BY 1, 2
        ORDER BY 1, 2"""),
    Query("days_in_stage", "lead() over each deal's stage history: mean days spent per stage", """
        WITH moves AS (
            SELECT stage_id, entered_at,
                   lead(entered_at) OVER (PARTITION BY deal_id ORDER BY entered_at, stage_id) AS left_at
            FROM crm.deal_stage_history
        )
        SELECT st.pipeline_id, st.sort_order, st.name AS stage, count(*) AS entries, count(mv.left_at) AS exits,
               avg(EXTRACT(epoch FROM mv.left_at) - EXTRACT(epoch FROM mv.entered_at)) / 86400 AS avg_days
        FROM moves mv JOIN crm.stages st ON st.stage_id = mv.stage_id
        GROUP BY st.pipeline_id, st.sort_order, st.name
        ORDER BY st.pipeline_id, st.sort_order, st.name"""),
    Query("lost_by_quarter_and_reason", "lost deals by quarter and loss reason (date_trunc('quarter'), COALESCE)", """
        SELECT date_trunc('quarter', d.closed_at) AS quarter, coalesce(r.name, '(none)') AS reason,
               count(*) AS lost, sum(d.amount_base) AS lost_amount
        FROM crm.deals d LEFT JOIN crm.loss_reasons r ON r.loss_reason_id = d.loss_reason_id
        WHERE d.status = 'lost'
        GROUP BY 1, 2
        ORDER BY 1, 2"""),
    Query("top10_overdue_tasks", "the 10 managers with most open tasks past their deadline", f"""
        SELECT t.manager_id, m.name AS manager, count(*) AS overdue, count(DISTINCT t.deal_id) AS deals,
               min(t.deadline) AS oldest_deadline
        FROM crm.tasks t JOIN crm.managers m ON m.manager_id = t.manager_id
        WHERE t.status IN ('new', 'in_progress', 'deferred')
          AND t.deadline < {AS_OF_SQL}
        GROUP BY t.manager_id, m.name
        ORDER BY overdue DESC, t.manager_id
        LIMIT 10"""),
    Query("median_talk_by_department", "exact median and mean talk time of answered calls by department", """
        SELECT m.department_id, count(*) AS answered,
               median(CAST(c.duration_seconds AS DOUBLE)) AS median_talk_seconds,
               avg(c.duration_seconds) AS avg_talk_seconds
        FROM crm.calls c JOIN crm.managers m ON m.manager_id = c.manager_id
        WHERE c.status = 'answered'
        GROUP BY m.department_id
        ORDER BY m.department_id"""),
    Query("gap_between_calls", "lag() per manager over May's outbound calls: mean gap within a day", f"""
        WITH month_calls AS (
            SELECT manager_id, started_at,
                   lag(started_at) OVER (PARTITION BY manager_id ORDER BY started_at, call_id) AS previous_at
            FROM crm.calls
            WHERE direction = 'outbound' AND {in_may('started_at')}
        )
        SELECT manager_id, count(*) AS calls,
               avg(CASE WHEN CAST(started_at AS DATE) = CAST(previous_at AS DATE)
                        THEN EXTRACT(epoch FROM started_at) - EXTRACT(epoch FROM previous_at) END) AS avg_gap_seconds
        FROM month_calls
        GROUP BY manager_id
        ORDER BY manager_id"""),
    Query("top10_products_won", "deal_items joined to won deals: the 10 products with most revenue", """
        SELECT i.product_id, i.name, count(DISTINCT i.deal_id) AS deals, sum(i.quantity) AS units,
               sum(i.quantity * CAST(i.price AS DOUBLE)) AS revenue,
               sum(i.quantity * CAST(i.price - i.cost AS DOUBLE)) AS margin
        FROM crm.deal_items i JOIN crm.deals d ON d.deal_id = i.deal_id
        WHERE d.status = 'won'
        GROUP BY i.product_id, i.name
        ORDER BY revenue DESC, i.product_id, i.name
        LIMIT 10"""),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scales", nargs="*", default=["10"], metavar="SCALE", help="demo scales (default: 10)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per engine and query, after one warm-up (default: 5)")
    parser.add_argument("--only", help="comma-separated query names to run")
    parser.add_argument("--explain", action="store_true", help="print each query's EXPLAIN ANALYZE from salespulse")
    parser.add_argument("--data", help="folder for the demo data, DIR/scale-S per scale, reused when present")
    parser.add_argument("--json", help="write every raw timing to this file")
    args = parser.parse_args()
    if args.only:
        known = {q.name for q in QUERIES}
        unknown = [n for n in args.only.split(",") if n not in known]
        if unknown:
            parser.error(f"unknown queries: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return args


def selected_queries(only):
    if not only:
        return QUERIES
    names = set(only.split(","))
    return [q for q in QUERIES if q.name in names]


def versions():
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {"commit": commit + ("-dirty" if dirty else ""), "duckdb": duckdb.__version__, "nproc": int(nproc),
            "binary": BINARY}


def data_folder(scale, parent):
    """The demo data of `scale`: ADHOC_DATA_DIR_<scale>, else DIR/scale-S under --data, else a
    new temporary folder. Generated there unless it already holds a snapshot."""
    named = os.environ.get(f"ADHOC_DATA_DIR_{scale}") or os.environ.get(f"ADHOC_DATA_DIR_{scale.replace('.', '_')}")
    if named:
        data = named
    elif parent:
        data = os.path.join(parent, f"scale-{scale}")
    else:
        data = tempfile.mkdtemp(prefix=f"salespulse-adhoc-{scale}-")
    if os.path.exists(os.path.join(data, "demo", "CURRENT")):
        print(f"scale {scale}: reusing the demo data in {data}", file=sys.stderr)
    else:
        os.makedirs(data, exist_ok=True)
        print(f"scale {scale}: generating the demo data in {data}", file=sys.stderr)
        subprocess.run([BINARY, "demo", "--scale", scale, "--seed", "42", "--as-of", AS_OF, "--data", data, "--no-serve"],
                       check=True, capture_output=True)
    return data


def current_snapshot(data):
    """The demo tenant's current snapshot folder and its manifest."""
    tenant = os.path.join(data, "demo")
    snapshot = open(os.path.join(tenant, "CURRENT")).read().strip()
    folder = os.path.join(tenant, "snapshots", snapshot)
    with open(os.path.join(folder, "manifest.json")) as f:
        return folder, json.load(f)


def check_is_the_demo(folder, manifest, scale):
    """Refuses a reused snapshot that is not the demo at `scale`, seed 42, as of AS_OF."""
    source = re.fullmatch(r"demo \(seed (\d+), scale ([\d.]+)\)", manifest["source"])
    if not source or source.group(1) != "42" or float(source.group(2)) != float(scale) or manifest["taken_at"] != AS_OF:
        sys.exit(f"{folder} holds {manifest['source']!r} as of {manifest['taken_at']}, "
                 f"not the demo at scale {scale}, seed 42, as of {AS_OF}")


def duckdb_on_crm(folder, manifest):
    """DuckDB in this process, 2 threads, UTC, with every table of the snapshot (all its files)
    as a view `crm.<table>`."""
    duck = duckdb.connect()
    duck.execute("SET threads = 2")
    duck.execute("SET TimeZone = 'UTC'")
    duck.execute("CREATE SCHEMA crm")
    for name, entry in manifest["tables"].items():
        files = ", ".join(f"'{os.path.join(folder, f)}'" for f in entry["files"])
        duck.execute(f"CREATE VIEW crm.{name} AS SELECT * FROM read_parquet([{files}])")
    return duck


def timed_runs(fetch, sql, runs):
    """One warm-up run, whose result is returned for the comparison, then `runs` timed runs.
    Times in ms, execute to the whole Arrow table in hand."""
    started = time.perf_counter()
    result = fetch(sql)
    warmup = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fetch(sql)
        times.append((time.perf_counter() - started) * 1000)
    return result, warmup, times


def comparable_rows(table):
    """The rows of an Arrow table as Python tuples, timestamps as UTC microseconds."""
    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz=column.type.tz)).cast(pa.int64())
        columns.append(column.to_pylist())
    return list(zip(*columns))


def same_value(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (float, Decimal)) or isinstance(b, (float, Decimal)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def first_difference(ours, theirs):
    """None when the two Arrow tables hold the same values (column names ignored), else a
    sentence naming the first difference."""
    if ours.num_columns != theirs.num_columns:
        return f"{ours.num_columns} columns against DuckDB's {theirs.num_columns}"
    if ours.num_rows != theirs.num_rows:
        return f"{ours.num_rows} rows against DuckDB's {theirs.num_rows}"
    for i, (row, peer) in enumerate(zip(comparable_rows(ours), comparable_rows(theirs))):
        for j, (a, b) in enumerate(zip(row, peer)):
            if not same_value(a, b):
                return f"row {i}, column {j} ({theirs.column_names[j]}): {a!r} against DuckDB's {b!r}"
    return None


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def run_query(query, cursor, duck, runs):
    """Runs one query on both engines; returns its record (timings, rows, and `failure` when the
    engines do not agree or one of them fails)."""
    record = {"name": query.name, "purpose": query.purpose, "sql": " ".join(query.sql.split())}

    def ours(sql):
        cursor.execute(sql)
        return cursor.fetch_arrow_table()

    try:
        our_table, record["salespulse_warmup_ms"], record["salespulse_ms"] = timed_runs(ours, query.sql, runs)
    except flightsql.Error as e:
        record["failure"] = f"salespulse: {first_line(e)}"
        return record
    try:
        duck_table, record["duckdb_warmup_ms"], record["duckdb_ms"] = timed_runs(
            lambda sql: duck.execute(sql).fetch_arrow_table(), query.sql, runs)
    except duckdb.Error as e:
        record["failure"] = f"DuckDB: {first_line(e)}"
        return record
    record["rows"] = our_table.num_rows
    difference = first_difference(our_table, duck_table)
    if difference:
        record["failure"] = f"differs from DuckDB: {difference}"
    else:
        record["salespulse_median_ms"] = statistics.median(record["salespulse_ms"])
        record["duckdb_median_ms"] = statistics.median(record["duckdb_ms"])
        record["ratio"] = record["salespulse_median_ms"] / record["duckdb_median_ms"]
    return record


def print_explain(query, cursor):
    print(f"\n-- {query.name}: EXPLAIN ANALYZE (salespulse)")
    try:
        cursor.execute("EXPLAIN ANALYZE " + query.sql)
        for plan_type, plan in cursor.fetchall():
            print(f"{plan_type}:\n{plan}")
    except flightsql.Error as e:
        print(f"failed: {first_line(e)}")


def memory_kib(pid="self"):
    """VmRSS and VmHWM (peak resident) of a process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def run_scale(scale, queries, args):
    data = data_folder(scale, args.data)
    folder, manifest = current_snapshot(data)
    check_is_the_demo(folder, manifest, scale)
    duck = duckdb_on_crm(folder, manifest)
    proc, address = serve_demo(BINARY, data, TZ, result_cache="0")
    try:
        with flightsql.connect(f"grpc://{address}", autocommit=True) as conn, conn.cursor() as cursor:
            records = []
            for query in queries:
                print(f"scale {scale}: {query.name}", file=sys.stderr)
                records.append(run_query(query, cursor, duck, args.runs))
                if args.explain:
                    print_explain(query, cursor)
        server_memory = memory_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    return {"scale": scale, "data": data, "snapshot": manifest["snapshot_id"],
            "rows": sum(e["rows"] for e in manifest["tables"].values()), "runs": args.runs,
            "server_memory_kib": server_memory, "python_memory_kib": memory_kib(),
            "ratios": ratio_summary(records), "queries": records}


def ratio_summary(records):
    """The geometric mean and the largest of the ratios, over the queries that have one."""
    ratios = [(r["ratio"], r["name"]) for r in records if "ratio" in r]
    if not ratios:
        return None
    largest, largest_query = max(ratios)
    return {"queries": len(ratios), "geometric_mean": math.exp(statistics.fmean(math.log(r) for r, _ in ratios)),
            "max": largest, "max_query": largest_query}


def ms(times):
    return f"{statistics.median(times):,.1f} ms"


def print_scale(result, version):
    print(f"\nscale {result['scale']}: {result['rows']:,} rows in the crm tables; {len(result['queries'])} queries, "
          f"median of {result['runs']} runs after one warm-up; DuckDB {version['duckdb']} in-process, 2 threads")
    print("| query | salespulse | DuckDB | ratio | rows | equal |")
    print("|---|---:|---:|---:|---:|---|")
    for q in result["queries"]:
        ours = ms(q["salespulse_ms"]) if "salespulse_ms" in q else "–"
        theirs = ms(q["duckdb_ms"]) if "duckdb_ms" in q else "–"
        ratio = f"{q['ratio']:.2f}" if "ratio" in q else "–"
        rows = f"{q['rows']:,}" if "rows" in q else "–"
        equal = f"FAILED: {q['failure']}".replace("|", "\\|") if "failure" in q else "yes"
        print(f"| {q['name']} | {ours} | {theirs} | {ratio} | {rows} | {equal} |")
    ratios = result["ratios"]
    if ratios:
        print(f"\ngeometric mean of ratios (salespulse / DuckDB): {ratios['geometric_mean']:.2f} over "
              f"{ratios['queries']} queries; max {ratios['max']:.2f} ({ratios['max_query']})")
    server, python = result["server_memory_kib"], result["python_memory_kib"]
    print(f"salespulse serve after the run: RSS {server['VmRSS'] / 1024:,.0f} MiB, peak {server['VmHWM'] / 1024:,.0f} MiB")
    print(f"Python process (DuckDB in-process, plus the ADBC client's results), peak so far: "
          f"{python['VmHWM'] / 1024:,.0f} MiB")


def main():
    args = parse_args()
    queries = selected_queries(args.only)
    version = versions()
    print(f"commit {version['commit']}, DuckDB {version['duckdb']}, nproc {version['nproc']}, binary {BINARY}")
    results = []
    for scale in args.scales:
        results.append(run_scale(scale, queries, args))
        print_scale(results[-1], version)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**version, "scales": results}, f, indent=1, ensure_ascii=False)
    failed = [f"scale {r['scale']}: {q['name']}" for r in results for q in r["queries"] if "failure" in q]
    if failed:
        print(f"\nFAILED ({len(failed)}): {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
