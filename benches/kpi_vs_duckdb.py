"""Times every kpi view (its full SELECT *, and the typical dashboard query: one month, one
department) through Flight SQL, and compares three of them with DuckDB running equivalent
SQL over the same Parquet files, in the same run.

Run through scripts/bench.sh kpi [SCALE] (default scale 10), which builds the release binary
and the venv. DuckDB has no working-time functions, so the peers are the views that need
none: sales by month, one department's calls for a month, and the funnel.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flightsql
import duckdb

from serve import serve_demo

BINARY = os.environ["SALESPULSE_BIN"]
AS_OF = "2026-06-15T12:00:00Z"
MONTH = ("2026-05-01", "2026-05-31")
TZ = "Europe/Moscow"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIEWS = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "src", "catalog", "kpi", "views")) if f.endswith(".sql"))

# The dashboard query of each view: one month and one department (department '5' and its
# sub-department '6' in the demo) where the view has both.
DEPT = "department_id IN (SELECT department_id FROM kpi.department_tree WHERE ancestor_id = '5')"
TYPICAL = {
    "deal_facts": f"SELECT * FROM kpi.deal_facts WHERE created_at >= TIMESTAMP '{MONTH[0]}T00:00:00+03:00' AND created_at < TIMESTAMP '2026-06-01T00:00:00+03:00' AND {DEPT}",
    "call_facts": f"SELECT * FROM kpi.call_facts WHERE day BETWEEN DATE '{MONTH[0]}' AND DATE '{MONTH[1]}' AND {DEPT}",
    "lead_facts": f"SELECT * FROM kpi.lead_facts WHERE created_at >= TIMESTAMP '{MONTH[0]}T00:00:00+03:00' AND created_at < TIMESTAMP '2026-06-01T00:00:00+03:00' AND {DEPT}",
    "calls_daily": f"SELECT * FROM kpi.calls_daily WHERE day BETWEEN DATE '{MONTH[0]}' AND DATE '{MONTH[1]}' AND {DEPT}",
    "manager_scorecard": f"SELECT * FROM kpi.manager_scorecard WHERE month = DATE '{MONTH[0]}' AND {DEPT}",
    "sales_by_period": "SELECT * FROM kpi.sales_by_period WHERE period_kind = 'month'",
}

PEERS = {
    "sales by month (kpi.sales_by_period)": (
        "SELECT * FROM kpi.sales_by_period WHERE period_kind = 'month'",
        f"""
        WITH sales AS (
            SELECT *, row_number() OVER (PARTITION BY coalesce(company_id, contact_id) ORDER BY closed_at, deal_id) AS n
            FROM deals WHERE status = 'won' AND coalesce(company_id, contact_id) IS NOT NULL AND closed_at IS NOT NULL
        ), closed AS (
            SELECT date_trunc('month', (d.closed_at AT TIME ZONE '{TZ}'))::DATE AS period, d.status, d.amount_base,
                   coalesce(s.n = 1, false) AS is_first_sale, coalesce(d.company_id, d.contact_id) AS client_id
            FROM deals d LEFT JOIN sales s ON s.deal_id = d.deal_id
            WHERE d.status IN ('won', 'lost') AND d.closed_at IS NOT NULL
        )
        SELECT 'month' AS period_kind, period,
               coalesce(sum(CASE WHEN status = 'won' THEN amount_base END), 0) AS revenue,
               count(CASE WHEN status = 'won' THEN 1 END) AS deals_won,
               coalesce(sum(CASE WHEN status = 'won' AND is_first_sale THEN amount_base END), 0) AS new_client_revenue,
               coalesce(sum(CASE WHEN status = 'won' AND client_id IS NOT NULL AND NOT is_first_sale THEN amount_base END), 0) AS repeat_client_revenue,
               count(CASE WHEN status = 'won' AND is_first_sale THEN 1 END) AS new_clients,
               count(CASE WHEN status = 'lost' THEN 1 END) AS deals_lost
        FROM closed GROUP BY period
        """,
    ),
    "one department's calls for a month (kpi.calls_daily)": (
        TYPICAL["calls_daily"],
        f"""
        WITH RECURSIVE tree(department_id) AS (
            SELECT department_id FROM departments WHERE department_id = '5'
            UNION ALL SELECT d.department_id FROM departments d JOIN tree t ON d.parent_id = t.department_id
        ), c AS (
            SELECT c.*, m.department_id, (c.started_at AT TIME ZONE '{TZ}')::DATE AS day
            FROM calls c LEFT JOIN managers m ON m.manager_id = c.manager_id
        ), missed AS (
            SELECT call_id, phone_hash, started_at FROM calls
            WHERE direction = 'inbound' AND status <> 'answered' AND phone_hash IS NOT NULL
        ), callbacks AS (
            SELECT mc.call_id, min(o.started_at) AS callback_at FROM missed mc JOIN calls o
              ON o.phone_hash = mc.phone_hash AND o.direction = 'outbound' AND o.started_at > mc.started_at
             AND o.started_at <= mc.started_at + INTERVAL 24 HOUR
            GROUP BY mc.call_id
        )
        SELECT day, manager_id, department_id, count(*) AS calls_total,
               count(CASE WHEN direction = 'inbound' THEN 1 END) AS inbound,
               count(CASE WHEN direction = 'outbound' THEN 1 END) AS outbound,
               count(CASE WHEN status = 'answered' AND duration_seconds > 60 THEN 1 END) AS successful,
               count(CASE WHEN direction = 'inbound' AND status <> 'answered' THEN 1 END) AS missed,
               count(CASE WHEN direction = 'inbound' AND status <> 'answered' AND cb.callback_at IS NOT NULL THEN 1 END) AS missed_with_callback
        FROM c LEFT JOIN callbacks cb ON cb.call_id = c.call_id
        WHERE day BETWEEN DATE '{MONTH[0]}' AND DATE '{MONTH[1]}' AND department_id IN (SELECT department_id FROM tree)
        GROUP BY day, manager_id, department_id
        """,
    ),
    "funnel (kpi.funnel)": (
        "SELECT * FROM kpi.funnel",
        """
        WITH ordered AS (
            SELECT stage_id, pipeline_id, name, row_number() OVER (PARTITION BY pipeline_id ORDER BY sort_order, stage_id) AS stage_order
            FROM stages WHERE kind <> 'lost'
        ), deepest AS (
            SELECT d.deal_id, d.pipeline_id, d.status, d.amount_base, max(o.stage_order) AS reached
            FROM deals d
            JOIN (SELECT deal_id, stage_id FROM deal_stage_history UNION ALL SELECT deal_id, stage_id FROM deals) v ON v.deal_id = d.deal_id
            JOIN ordered o ON o.stage_id = v.stage_id AND o.pipeline_id = d.pipeline_id
            GROUP BY ALL
        ), tops AS (SELECT pipeline_id, max(stage_order) AS top FROM ordered GROUP BY pipeline_id)
        SELECT o.pipeline_id, o.stage_id, o.stage_order, count(dp.deal_id) AS deals_reached, coalesce(sum(dp.amount_base), 0) AS amount_reached
        FROM ordered o JOIN tops t USING (pipeline_id)
        LEFT JOIN deepest dp ON dp.pipeline_id = o.pipeline_id AND (CASE WHEN dp.status = 'won' THEN t.top ELSE dp.reached END) >= o.stage_order
        GROUP BY ALL
        """,
    ),
}


def best_of(run, n=3):
    times = []
    rows = 0
    for _ in range(n):
        t = time.perf_counter()
        rows = run()
        times.append(time.perf_counter() - t)
    return min(times), rows


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    data = tempfile.mkdtemp(prefix=f"salespulse-kpi-{scale}-")
    subprocess.run([BINARY, "demo", "--scale", str(scale), "--seed", "42", "--as-of", AS_OF, "--data", data, "--no-serve"],
                   check=True, capture_output=True)
    started = time.perf_counter()
    proc, address = serve_demo(BINARY, data, TZ)
    ready = time.perf_counter() - started
    built = [re.search(r"seconds=([0-9.]+)", l) for l in serve_demo.startup_log if "kpi tables materialised" in l]
    built = float(built[0].group(1)) if built and built[0] else float("nan")
    tenant = os.path.join(data, "demo")
    snapshot = open(os.path.join(tenant, "CURRENT")).read().strip()
    folder = os.path.join(tenant, "snapshots", snapshot)
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    duck = duckdb.connect()
    for name, entry in manifest["tables"].items():
        duck.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{os.path.join(folder, entry['files'][0])}')")
    threads = duck.execute("SELECT current_setting('threads')").fetchone()[0]

    with flightsql.connect(f"grpc://{address}") as conn:
        def ours(sql):
            def run():
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetch_arrow_table().num_rows
            return run

        print(f"scale {scale:g}, snapshot {snapshot}, {sum(e['rows'] for e in manifest['tables'].values()):,} rows")
        print(f"first start: KPI tables materialised in {built:.1f} s, serving after {ready:.1f} s")
        print("| view | SELECT * | rows | dashboard query | rows |")
        print("|---|---:|---:|---:|---:|")
        for view in VIEWS:
            full, full_rows = best_of(ours(f"SELECT * FROM kpi.{view}"))
            typical = TYPICAL.get(view)
            if typical:
                t, t_rows = best_of(ours(typical))
                extra = f"{t * 1000:,.0f} ms | {t_rows:,}"
            else:
                extra = "(same) | "
            print(f"| {view} | {full * 1000:,.0f} ms | {full_rows:,} | {extra} |")
        print()
        print(f"| query | salespulse | DuckDB {duckdb.__version__} ({threads} threads) | ratio |")
        print("|---|---:|---:|---:|")
        for label, (sql, duck_sql) in PEERS.items():
            mine, mine_rows = best_of(ours(sql))
            theirs, their_rows = best_of(lambda: len(duck.execute(duck_sql).fetchall()))
            print(f"| {label} | {mine * 1000:,.0f} ms ({mine_rows:,} rows) | {theirs * 1000:,.0f} ms ({their_rows:,} rows) | {mine / theirs:.1f}× |")
    proc.terminate()
    proc.wait()


if __name__ == "__main__":
    main()
