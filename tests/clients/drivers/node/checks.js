// node-postgres (`pg`) against salespulse's PostgreSQL endpoint: Client and Pool, parameters,
// type parsing, a prepared (named) statement, and a large result read with pg-cursor.
// Usage: node checks.js '<settings JSON>' (see ../_common.py); prints one JSON line per check.
'use strict';
const { Client, Pool } = require('pg');
const Cursor = require('pg-cursor');

const s = JSON.parse(process.argv[2]);

function config(dbname) {
  const cfg = { host: s.host, port: s.port, user: s.user, database: dbname || s.dbname, connectionTimeoutMillis: 20000 };
  if (s.password) cfg.password = s.password;
  // sslmode=require: encrypted, certificate not verified (the test server's is self-signed).
  if (s.sslmode !== 'disable') cfg.ssl = { rejectUnauthorized: false };
  return cfg;
}

function emit(check, ok, error, detail) {
  process.stdout.write(JSON.stringify({ check, ok: !!ok, error: error || '', detail }) + '\n');
}

async function run(name, fn) {
  try {
    const [ok, detail] = await fn();
    emit(name, ok, ok ? '' : `unexpected result: ${JSON.stringify(detail)}`.slice(0, 1500), detail);
  } catch (e) {
    emit(name, false, `${e.name}: ${e.message}${e.code ? ` (SQLSTATE ${e.code})` : ''}`.slice(0, 2000), { stack: String(e.stack).slice(0, 800) });
  }
}

async function main() {
  const p = 'node-pg.';
  const client = new Client(config());
  let connected = false;
  await run(p + 'client.connect', async () => { await client.connect(); connected = true; return [true, 'connected']; });
  if (connected) {
    await run(p + 'client.params', async () => {
      const r = await client.query('SELECT count(*) AS n FROM crm.deals WHERE status = $1 AND created_at >= $2', ['won', new Date('2025-01-01T00:00:00Z')]);
      return [Number(r.rows[0].n) > 0, r.rows[0]];
    });
    await run(p + 'client.numeric_param_as_string', async () => {
      const r = await client.query('SELECT count(*) AS n FROM crm.deals WHERE amount > $1', ['100.00']);
      return [Number(r.rows[0].n) > 0, r.rows[0]];
    });
    await run(p + 'client.numeric_param_as_number', async () => {
      const r = await client.query('SELECT count(*) AS n FROM crm.deals WHERE amount > $1', [100]);
      return [Number(r.rows[0].n) > 0, r.rows[0]];
    });
    await run(p + 'client.limit_param', async () => {
      const r = await client.query('SELECT deal_id FROM crm.deals ORDER BY created_at LIMIT $1', [5]);
      return [r.rows.length === 5, r.rows.length];
    });
    await run(p + 'client.types', async () => {
      const r = await client.query("SELECT CAST(1 AS INT) AS i4, CAST(2 AS BIGINT) AS i8, CAST(1.5 AS DOUBLE PRECISION) AS f8, CAST('12.34' AS NUMERIC(10,2)) AS num, " +
        "true AS b, 'text' AS t, CAST('2026-01-02' AS DATE) AS d, CAST('2026-01-02T03:04:05Z' AS TIMESTAMPTZ) AS tz");
      const row = r.rows[0];
      const got = Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? 'Date' : typeof v]));
      const oids = Object.fromEntries(r.fields.map((f) => [f.name, f.dataTypeID]));
      // pg's defaults: int4 -> number, int8 and numeric -> string, float8 -> number, bool, text, date/timestamptz -> Date
      const want = { i4: 'number', i8: 'string', f8: 'number', num: 'string', b: 'boolean', t: 'string', d: 'Date', tz: 'Date' };
      const ok = JSON.stringify(got) === JSON.stringify(want) && row.num === '12.34' && row.tz.toISOString() === '2026-01-02T03:04:05.000Z';
      return [ok, { types: got, oids, values: row }];
    });
    await run(p + 'client.named_prepared_statement', async () => {
      const q = { name: 'deals-by-status', text: 'SELECT manager_id, count(*) AS n FROM crm.deals WHERE status = $1 GROUP BY manager_id' };
      const won = await client.query({ ...q, values: ['won'] });
      const lost = await client.query({ ...q, values: ['lost'] });
      return [won.rows.length > 0 && lost.rows.length > 0, { won: won.rows.length, lost: lost.rows.length }];
    });
    await run(p + 'client.rowmode_array', async () => {
      const r = await client.query({ text: 'SELECT manager_id, name FROM crm.managers ORDER BY 1', rowMode: 'array' });
      return [r.rows.length > 0 && Array.isArray(r.rows[0]), r.rows.length];
    });
    await run(p + 'client.cursor_large_result', async () => {
      const cursor = client.query(new Cursor('SELECT * FROM crm.calls'));
      let n = 0;
      for (;;) {
        const rows = await cursor.read(1000);
        if (rows.length === 0) break;
        n += rows.length;
      }
      await cursor.close();
      return [n > 1000, n];
    });
    await run(p + 'client.transaction', async () => {
      await client.query('BEGIN');
      const r = await client.query('SELECT count(*) AS n FROM crm.managers');
      await client.query('COMMIT');
      return [Number(r.rows[0].n) > 0, r.rows[0]];
    });
    if (s.other_tenant) {
      await run(p + 'isolation.other_catalog_refused', async () => {
        try { await client.query(`SELECT count(*) FROM ${s.other_tenant}.crm.deals`); } catch (e) { return [true, e.message]; }
        return [false, 'readable'];
      });
      await run(p + 'isolation.other_database_refused', async () => {
        const other = new Client(config(s.other_tenant));
        try { await other.connect(); await other.query('SELECT count(*) FROM crm.deals'); } catch (e) { await other.end().catch(() => {}); return [true, e.message]; }
        await other.end();
        return [false, 'connected and read'];
      });
      await run(p + 'isolation.metadata_hides_other_tenant', async () => {
        const cats = (await client.query('SELECT DISTINCT table_catalog AS c FROM information_schema.tables')).rows.map((r) => r.c);
        const dbs = (await client.query('SELECT datname FROM pg_catalog.pg_database')).rows.map((r) => r.datname);
        return [!cats.includes(s.other_tenant) && !dbs.includes(s.other_tenant), { cats, dbs }];
      });
    }
    await client.end();
  }

  const pool = new Pool({ ...config(), max: 3 });
  await run(p + 'pool.concurrent_queries', async () => {
    const rs = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => pool.query('SELECT count(*) AS n FROM crm.deals WHERE status = $1', [i % 2 ? 'won' : 'lost'])));
    return [rs.every((r) => Number(r.rows[0].n) > 0), rs.map((r) => r.rows[0].n)];
  });
  await run(p + 'pool.checkout_reuse', async () => {
    for (let i = 0; i < 5; i++) {
      const c = await pool.connect();
      try { await c.query('SELECT 1'); } finally { c.release(); }
    }
    return [pool.totalCount <= 3, { total: pool.totalCount, idle: pool.idleCount }];
  });
  await pool.end();
}

main().catch((e) => { emit('node-pg.crashed', false, String(e && e.stack)); process.exitCode = 1; });
