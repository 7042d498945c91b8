-- Grafana's built-in PostgreSQL data source (grafana-postgresql-datasource): the SQL sent by the
-- config page ("Save & test" and the version/TimescaleDB auto-detection), the query editor's
-- table/column lookups, and the schema API, with table `deals` of schema `crm`.
--
-- Sources (stored index, one version per file; `fetch github:grafana/grafana` was refused: the
-- snapshot is 3.2 GB > 500 MiB, so no release tag could be checked out and lines are not given):
--   MQ = grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
--   DS = grafana/grafana@04282cd93150390a7d83089cc520d96546d576a8:public/app/plugins/datasource/grafana-postgresql-datasource/datasource.ts
--   AD = grafana/grafana@3af0110a1a2192523521267b47ee6fede2c8ec57:public/app/plugins/datasource/grafana-postgresql-datasource/configuration/useAutoDetectFeatures.ts
--   HX = grafana/grafana@1b13755cdccfbc5420c9fcb7d6cf2dad7b2888e6:pkg/tsdb/grafana-postgresql-datasource/pgx/handler_checkhealth.go
--   HQ = grafana/grafana@0c059270ae12a6b64819f9b818dff64cd98a5276:pkg/tsdb/grafana-postgresql-datasource/sqleng/handler_checkhealth.go
--   SC = grafana/grafana@043dd88a47944c35205994c4da317e100dc9b12e:pkg/tsdb/grafana-postgresql-datasource/schema.go (schemads API, newest code)
--
-- Frontend lookups go through the backend's QueryData (runSql), which sends the rawSql unchanged
-- through pgx v5 (extended protocol, no parameters) or, in older builds, lib/pq.
-- `-- protocol: simple` marks statements sent as a Simple Query ('Q') message.
-- `-- params:` = JSON list of [type, value]; pgx prepares without parameter types, so type
-- `unknown` (OID 0) lets the server infer it, as pgx does.

-- name: gf_health_ping_pgx
-- source: HX CheckHealth -> e.Ping(ctx) -> pgxpool.Pool.Ping -> pgconn.PgConn.Ping = pgConn.Exec(ctx, "-- ping") (jackc/pgx v5 pgconn/pgconn.go); "Save & test"
-- protocol: simple
-- ping

-- name: gf_health_ping_libpq
-- source: HQ CheckHealth -> e.Ping() -> database/sql DB.Ping -> lib/pq conn.Ping = cn.simpleQuery(";") (older Grafana, lib/pq engine)
-- protocol: simple
;

-- name: gf_version
-- source: MQ getVersion(); DS getVersion() called by AD useAutoDetectFeatures after the config is saved
SELECT current_setting('server_version_num')::int/100 as version

-- name: gf_timescaledb_version
-- source: MQ getTimescaleDBVersion(); DS getTimescaleDBVersion(), AD calls it when version >= 906
-- kind: metadata
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'

-- name: gf_show_schemas
-- source: MQ showSchemas()
-- kind: metadata
SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name

-- name: gf_show_tables
-- source: MQ showTables() without schema; DS fetchTables() (table dropdown of the builder, DB.tables/lookup, SQL completion)
-- kind: metadata
SELECT
    CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1

-- name: gf_show_tables_in_schema
-- source: MQ showTables('crm') (schema branch)
-- kind: metadata
SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'crm'
      ORDER BY 1

-- name: gf_columns_qualified
-- source: MQ getSchema('crm.deals'); DS fetchFields() (column dropdowns / completion once a table is picked; tables outside search_path come back from showTables as schema.table)
-- kind: metadata
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('crm.deals'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('crm.deals'))[1]
          AND quote_ident(table_name) = (parse_ident('crm.deals'))[2]
        ELSE quote_ident(table_name) = 'crm.deals'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END

-- name: gf_columns_unqualified
-- source: MQ getSchema('deals') (a table on the search_path is listed without schema)
-- kind: metadata
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('deals'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('deals'))[1]
          AND quote_ident(table_name) = (parse_ident('deals'))[2]
        ELSE quote_ident(table_name) = 'deals'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END

-- name: gf_builder_preview
-- source: query builder: grafana/grafana@1137a659434e2505dbdaa92c641d08041f2a7a93:public/app/plugins/datasource/grafana-postgresql-datasource/sqlUtil.ts toRawSql (createSelectClause + `FROM ${table} ` + `LIMIT ${limit} `) for table crm.deals, columns created_at, amount, default limit 50
SELECT created_at, amount FROM crm.deals LIMIT 50 

-- name: gf_builder_aggregate
-- source: sqlUtil.ts toRawSql with an aggregation column, WHERE from the filter builder, GROUP BY, ORDER BY + direction, LIMIT (trailing spaces as generated)
SELECT SUM(amount), status FROM crm.deals WHERE status = 'won' GROUP BY status ORDER BY status DESC LIMIT 50 

-- name: gf_schema_api_schemas
-- source: SC querySchemas()
-- kind: metadata
SELECT schema_name FROM information_schema.schemata
		 WHERE schema_name NOT LIKE 'pg_%' AND schema_name != 'information_schema'
		 ORDER BY schema_name

-- name: gf_schema_api_tables
-- source: SC queryTables(ctx, pool, "crm") (pgx, $1 bound)
-- kind: metadata
-- params: [["unknown", "crm"]]
SELECT table_name FROM information_schema.tables
		 WHERE table_schema = $1 AND table_type IN ('BASE TABLE', 'VIEW')
		 ORDER BY table_name

-- name: gf_schema_api_columns
-- source: SC queryColumns(ctx, pool, "crm", "deals")
-- kind: metadata
-- params: [["unknown", "crm"], ["unknown", "deals"]]
SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale
		 FROM information_schema.columns
		 WHERE table_schema = $1 AND table_name = $2
		 ORDER BY ordinal_position

-- name: gf_schema_api_column_values
-- source: SC ColumnValues() for table deals, schema crm, columns status and currency (distinctValuesLimit 100)
SELECT 'status' AS col_name, "status"::text AS val FROM (SELECT DISTINCT "status" FROM "crm"."deals" WHERE "status" IS NOT NULL ORDER BY "status" LIMIT 100) sub_0 UNION ALL SELECT 'currency' AS col_name, "currency"::text AS val FROM (SELECT DISTINCT "currency" FROM "crm"."deals" WHERE "currency" IS NOT NULL ORDER BY "currency" LIMIT 100) sub_1
