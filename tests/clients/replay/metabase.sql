-- Metabase PostgreSQL driver: the SQL it sends when connecting, syncing (schema `crm`, table `deals`)
-- and answering simple questions, as rendered by HoneySQL 2 (`:dialect :ansi` => every identifier is
-- double-quoted, dashes in aliases kept; function names upper-cased; strings and numbers become
-- parameters unless `:inline`/`:raw`).
--
-- Sources (the stored index holds one version per file; `fetch github:metabase/metabase` was refused,
-- the snapshot is 2.8 GB > 500 MiB, so no release tag could be checked out and no line numbers are
-- given; each query names the defn/defmethod it comes from):
--   P  = metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
--   DD = metabase/metabase@00f84ab8adde06abf9ac93e22f7d6dbbf5e089de:src/metabase/driver/sql_jdbc/sync/describe_database.clj
--   DT = metabase/metabase@00c37c6669cda403ee73601d8d7c8b2926d3de42:src/metabase/driver/sql_jdbc/sync/describe_table.clj
--   TR = metabase/metabase@05e508f610d57a156e1d347428c54c6fb85e9c9d:src/metabase/driver/common/table_rows_sample.clj
--   CN = src/metabase/driver/sql_jdbc/connection.clj (`can-connect-with-spec?`)
--   PT = test/metabase/driver/postgres_test.clj (expected SQL of the compiler, used to check the rendering)
--
-- Placeholders are written as pgjdbc puts them on the wire ($1, $2 ...; pgjdbc rewrites JDBC `?`),
-- followed by `-- params:` = JSON list of [type, value]; type is the OID pgjdbc binds with:
-- varchar (setString; stringtype=varchar is pgjdbc's default), int8 (Long), timestamptz
-- (setObject OffsetDateTime). pgjdbc sends every statement with the extended protocol.
-- `-- kind: metadata` marks catalog reads: as analyst@acme they must show nothing of tenant `demo`.
-- `-- session:` statements run first on the same connection.
--
-- JDBC DatabaseMetaData calls made on the same path (SQL is pgjdbc's, covered by the pgjdbc helper):
--   * DatabaseMetaData.getSchemas()           - driver/syncable-schemas :sql-jdbc -> filtered-syncable-schemas
--                                                -> DD all-schemas (every sync, before `get-tables`)
--   * Connection.getMetaData().supportsTransactionIsolationLevel + setTransactionIsolation(READ_UNCOMMITTED)
--                                              - sql_jdbc/execute.clj set-best-transaction-level! (every checkout)
--   * setReadOnly(true), setAutoCommit(true), setHoldability(CLOSE_CURSORS_AT_COMMIT) - same place (no SQL with
--     pgjdbc's default readOnlyMode=transaction)
--   * getDatabaseProductName/Version (dbms-version; no SQL: from the startup ParameterStatus server_version)
--   Only for other paths, not used by the postgres driver during a normal sync because it overrides them:
--   getTables (DD db-tables: postgres overrides describe-database*), getColumns (DT jdbc-fields-metadata:
--   postgres has :describe-fields), getPrimaryKeys (DT get-table-pks), getImportedKeys (DT describe-table-fks*:
--   postgres has :describe-fks), getIndexInfo (DT describe-table-indexes), getCatalogs (DT get-catalogs).

-- ---------------------------------------------------------------- connection / session
-- name: mb_can_connect
-- source: CN can-connect-with-spec? (jdbc/query spec ["SELECT 1"]) - "Test connection" / save database
SELECT 1

-- name: mb_set_transaction_isolation
-- source: sql_jdbc/execute.clj set-best-transaction-level! -> pgjdbc setTransactionIsolation(TRANSACTION_READ_UNCOMMITTED); every connection checkout
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED

-- name: mb_show_transaction_isolation
-- source: pgjdbc getTransactionIsolation() (called by clojure.java.jdbc / c3p0 on checkout-check); reads it back
SHOW TRANSACTION ISOLATION LEVEL

-- name: mb_set_session_timezone
-- source: P (defmethod sql-jdbc.execute/set-timezone-sql :postgres) "SET SESSION TIMEZONE TO %s;" with the report timezone quoted; execute.clj set-time-zone-if-supported! (only when a report timezone is set)
SET SESSION TIMEZONE TO 'Europe/Moscow';

-- name: mb_show_timezone
-- source: P (defmethod driver/db-default-timezone :postgres) (.prepareStatement conn "show timezone;")
show timezone;

-- name: mb_set_role_none
-- source: P (defmethod driver.sql/set-role-statement :postgres) + (driver.sql/default-database-role :postgres) "NONE"; connection impersonation only
SET ROLE NONE;

-- name: mb_set_role_user
-- source: P set-role-statement for a role without special characters (impersonation, role = login user)
SET ROLE analyst;

-- ---------------------------------------------------------------- sync: describe-database
-- name: mb_enum_types
-- source: P (defn- enum-types) - before describe-fields (describe-fields-pre-process-xf) and in dynamic-database-types-lookup
-- kind: metadata
SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e)

-- name: mb_table_privileges
-- source: P (defmethod sql-jdbc.sync/current-user-table-privileges :postgres); used by DD have-select-privilege-fn because postgres supports :table-privileges
-- kind: metadata
with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t

-- name: mb_get_tables
-- source: P (defn- get-tables-sql) via describe-syncable-tables / driver/describe-database* :postgres; schemas = syncable schemas (here crm, kpi, system), table-names nil
-- kind: metadata
-- params: [["varchar", "^pg_"], ["varchar", "information_schema"], ["varchar", "crm"], ["varchar", "kpi"], ["varchar", "system"]]
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ $1) AND ("n"."nspname" <> $2) AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ($3, $4, $5)) ORDER BY "type" ASC, "schema" ASC, "name" ASC

-- name: mb_get_tables_one_table
-- source: P (defn- get-tables-sql) with schemas ["crm"] and table-names ["deals"] (sql.helpers/where appends both IN clauses)
-- kind: metadata
-- params: [["varchar", "^pg_"], ["varchar", "information_schema"], ["varchar", "crm"], ["varchar", "deals"]]
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ $1) AND ("n"."nspname" <> $2) AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ($3)) AND ("c"."relname" IN ($4)) ORDER BY "type" ASC, "schema" ASC, "name" ASC

-- name: mb_select_probe
-- source: DD simple-select-probe-query (docstring: "SELECT TRUE FROM public.my_table WHERE 1 <> 1 LIMIT 0"); postgres uses it only for FOREIGN TABLE (have-select-privilege-fn), other drivers for every table
SELECT TRUE AS "_" FROM "crm"."deals" WHERE 1 <> 1 LIMIT 0

-- ---------------------------------------------------------------- sync: describe-fields / fks / indexes
-- name: mb_describe_fields
-- source: P (defmethod sql-jdbc.sync/describe-fields-sql :postgres) via DT describe-fields; schema-names ["crm"], table-names ["deals"]
-- kind: metadata
-- params: [["varchar", "crm"], ["varchar", "deals"], ["varchar", "crm"], ["varchar", "deals"]]
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ($1)) AND ("c"."table_name" IN ($2)) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ($3)) AND ("pc"."relname" IN ($4)) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC

-- name: mb_describe_fields_schema_only
-- source: as mb_describe_fields with schema-names ["crm"] and no table-names (whole-schema sync batches)
-- kind: metadata
-- params: [["varchar", "crm"], ["varchar", "crm"]]
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ($1)) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ($2)) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC

-- name: mb_describe_fks
-- source: P (defmethod sql-jdbc.sync/describe-fks-sql :postgres) via DT describe-fks; table-names ["deals"], schema-names ["crm"]
-- kind: metadata
-- params: [["varchar", "deals"], ["varchar", "crm"]]
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_table"."relname" IN ($1)) AND ("fk_ns"."nspname" IN ($2)) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC

-- name: mb_describe_indexes
-- source: P (defmethod sql-jdbc.sync/describe-indexes-sql :postgres) via DT describe-indexes; NOTE: P leaves :index-info commented out ("Index sync is turned off across the application"), so a normal sync does not send it
-- kind: metadata
-- params: [["varchar", "crm"], ["varchar", "deals"], ["int8", 1]]
SELECT "tmp"."table-schema", "tmp"."table-name", TRIM(BOTH '"' FROM PG_CATALOG.PG_GET_INDEXDEF("tmp"."ci_oid", "tmp"."pos", FALSE)) AS "field-name" FROM (SELECT "n"."nspname" AS "table-schema", "ct"."relname" AS "table-name", "ci"."oid" AS "ci_oid", (INFORMATION_SCHEMA._PG_EXPANDARRAY("i"."indkey"))."n" AS "pos" FROM "pg_catalog"."pg_class" AS "ct" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "ct"."relnamespace" = "n"."oid" INNER JOIN "pg_catalog"."pg_index" AS "i" ON "ct"."oid" = "i"."indrelid" INNER JOIN "pg_catalog"."pg_class" AS "ci" ON "ci"."oid" = "i"."indexrelid" WHERE (PG_CATALOG.PG_GET_EXPR("i"."indpred", "i"."indrelid") IS NULL) AND n.nspname !~ '^information_schema|catalog_history|pg_' AND ("n"."nspname" IN ($1)) AND ("ct"."relname" IN ($2))) AS "tmp" WHERE "tmp"."pos" = $3

-- ---------------------------------------------------------------- sync: fingerprint / field values (MBQL compiled by the QP)
-- name: mb_fingerprint_sample
-- source: TR table-rows-sample-query (limit max-sample-rows 10000; :type/Text columns wrapped in substring(col, 1, truncation-size 1234) expressions); compiled like PT's expected SQL; query remark prepended by the sql-jdbc executor
-- Metabase
SELECT "crm"."deals"."deal_id" AS "deal_id", SUBSTRING("crm"."deals"."title", 1, 1234) AS "substring1234", "crm"."deals"."amount" AS "amount", "crm"."deals"."created_at" AS "created_at", "crm"."deals"."closed_at" AS "closed_at" FROM "crm"."deals" LIMIT 10000

-- name: mb_field_distinct_values
-- source: warehouse-schema/metadata_queries.clj field-distinct-values: MBQL {:breakout [field] :limit 1000} (sync field values for a category column); breakout implies ORDER BY ... ASC
-- Metabase
SELECT "crm"."deals"."status" AS "status" FROM "crm"."deals" GROUP BY "crm"."deals"."status" ORDER BY "crm"."deals"."status" ASC LIMIT 1000

-- ---------------------------------------------------------------- questions (query processor)
-- name: mb_q_table_preview
-- source: opening the table in the UI: MBQL with no aggregation -> limit middleware adds absolute-max-results 1048575 (PT bad-query-native-schema shows "... LIMIT 1048575")
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT "crm"."deals"."deal_id" AS "deal_id", "crm"."deals"."title" AS "title", "crm"."deals"."status" AS "status", "crm"."deals"."amount" AS "amount", "crm"."deals"."created_at" AS "created_at" FROM "crm"."deals" LIMIT 1048575

-- name: mb_q_count_by_month
-- source: P (sql.qp/date [:postgres :month]) -> date-trunc: DATE_TRUNC('month', col), no cast for timestamptz (P ->timestamp = cast-unless-type-in "timestamp" #{"timestamp" "timestamptz" ...}); PT do-not-cast-to-timestamp-if-column-if-timestamp-tz-or-date-test
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT DATE_TRUNC('month', "crm"."deals"."created_at") AS "created_at", COUNT(*) AS "count" FROM "crm"."deals" GROUP BY DATE_TRUNC('month', "crm"."deals"."created_at") ORDER BY DATE_TRUNC('month', "crm"."deals"."created_at") ASC

-- name: mb_q_sum_by_month_report_tz
-- source: as mb_q_count_by_month, after SET SESSION TIMEZONE (report timezone) on the same connection (execute.clj set-time-zone-if-supported!)
-- session: SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED
-- session: SET SESSION TIMEZONE TO 'Europe/Moscow';
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT DATE_TRUNC('month', "crm"."deals"."created_at") AS "created_at", SUM("crm"."deals"."amount") AS "sum" FROM "crm"."deals" GROUP BY DATE_TRUNC('month', "crm"."deals"."created_at") ORDER BY DATE_TRUNC('month', "crm"."deals"."created_at") ASC

-- name: mb_q_count_by_month_timestamp_cast
-- source: P date-trunc when the synced database-type is not timestamptz/timestamp/date (e.g. if the server reports another udt_name): ->timestamp adds CAST(... AS timestamp) (PT: DATE_TRUNC('month', CAST("public"."people"."id" AS timestamp)))
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT DATE_TRUNC('month', CAST("crm"."deals"."created_at" AS timestamp)) AS "created_at", COUNT(*) AS "count" FROM "crm"."deals" GROUP BY DATE_TRUNC('month', CAST("crm"."deals"."created_at" AS timestamp)) ORDER BY DATE_TRUNC('month', CAST("crm"."deals"."created_at" AS timestamp)) ASC

-- name: mb_q_count_by_day
-- source: P (sql.qp/date [:postgres :day]) = (h2x/maybe-cast db-type (h2x/->date expr)) -> CAST(col AS date)
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT CAST("crm"."deals"."created_at" AS date) AS "created_at", COUNT(*) AS "count" FROM "crm"."deals" GROUP BY CAST("crm"."deals"."created_at" AS date) ORDER BY CAST("crm"."deals"."created_at" AS date) ASC

-- name: mb_q_count_by_week
-- source: P (sql.qp/date [:postgres :week]) = sql.qp/adjust-start-of-week with db-start-of-week :monday and the default start-of-week setting :sunday -> add-interval-honeysql-form (+ INTERVAL '1 day' / '-1 day')
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT DATE_TRUNC('week', ("crm"."deals"."created_at" + INTERVAL '1 day')) + INTERVAL '-1 day' AS "created_at", COUNT(*) AS "count" FROM "crm"."deals" GROUP BY DATE_TRUNC('week', ("crm"."deals"."created_at" + INTERVAL '1 day')) + INTERVAL '-1 day' ORDER BY DATE_TRUNC('week', ("crm"."deals"."created_at" + INTERVAL '1 day')) + INTERVAL '-1 day' ASC

-- name: mb_q_count_by_quarter
-- source: P (sql.qp/date [:postgres :quarter]) -> DATE_TRUNC('quarter', col)
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT DATE_TRUNC('quarter', "crm"."deals"."created_at") AS "created_at", COUNT(*) AS "count" FROM "crm"."deals" GROUP BY DATE_TRUNC('quarter', "crm"."deals"."created_at") ORDER BY DATE_TRUNC('quarter', "crm"."deals"."created_at") ASC

-- name: mb_q_day_of_week
-- source: P (sql.qp/date [:postgres :day-of-week]) extract-integer :dow + 1, then sql.qp/adjust-day-of-week for start-of-week sunday; extract renders EXTRACT(dow FROM col), ->integer CAST(... AS integer)
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT CAST(EXTRACT(dow FROM "crm"."deals"."created_at") AS integer) + 1 AS "created_at", COUNT(*) AS "count" FROM "crm"."deals" GROUP BY CAST(EXTRACT(dow FROM "crm"."deals"."created_at") AS integer) + 1 ORDER BY CAST(EXTRACT(dow FROM "crm"."deals"."created_at") AS integer) + 1 ASC

-- name: mb_q_filter_date_range_bound
-- source: MBQL [:between !day.created_at "2026-01-01" "2026-03-31"] -> optimize-temporal-filters -> >= start AND < day after end; literals bound as java.time.OffsetDateTime in the report timezone (pgjdbc: timestamptz parameter)
-- params: [["timestamptz", "2026-01-01T00:00:00+03:00"], ["timestamptz", "2026-04-01T00:00:00+03:00"]]
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT SUM("crm"."deals"."amount") AS "sum" FROM "crm"."deals" WHERE ("crm"."deals"."created_at" >= $1) AND ("crm"."deals"."created_at" < $2)

-- name: mb_q_filter_date_range_inlined
-- source: the same question as "View the SQL" / converted to a native question (unprepare: timestamptz literals inlined as `timestamp with time zone '...'`)
SELECT SUM("crm"."deals"."amount") AS "sum" FROM "crm"."deals" WHERE ("crm"."deals"."created_at" >= timestamp with time zone '2026-01-01 00:00:00.000+03:00') AND ("crm"."deals"."created_at" < timestamp with time zone '2026-04-01 00:00:00.000+03:00')

-- name: mb_q_breakout_month_filter_status
-- source: aggregation + breakout by month + string filter (string literal bound as a varchar parameter)
-- params: [["varchar", "won"], ["timestamptz", "2025-07-01T00:00:00+03:00"], ["timestamptz", "2026-07-01T00:00:00+03:00"]]
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT DATE_TRUNC('month', "crm"."deals"."created_at") AS "created_at", COUNT(*) AS "count", SUM("crm"."deals"."amount") AS "sum" FROM "crm"."deals" WHERE ("crm"."deals"."status" = $1) AND ("crm"."deals"."created_at" >= $2) AND ("crm"."deals"."created_at" < $3) GROUP BY DATE_TRUNC('month', "crm"."deals"."created_at") ORDER BY DATE_TRUNC('month', "crm"."deals"."created_at") ASC

-- name: mb_q_relative_filter_last_30_days
-- source: MBQL [:time-interval created_at -30 :day] -> P sql.qp/add-interval-honeysql-form + sql.qp/current-datetime-honeysql-form (NOW(), typed timestamptz so no cast) and sql.qp/date :day (CAST(.. AS date)); rendering reconstructed, not copied from a test
-- Metabase:: userID: 1 queryType: MBQL queryHash: 3f1c0a5e2d
SELECT COUNT(*) AS "count" FROM "crm"."deals" WHERE ("crm"."deals"."created_at" >= CAST((NOW() + INTERVAL '-30 day') AS date)) AND ("crm"."deals"."created_at" < CAST(NOW() AS date))
