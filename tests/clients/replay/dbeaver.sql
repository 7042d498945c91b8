-- Catalog SQL DBeaver's PostgreSQL plugin sends on connect and while browsing the navigator
-- (database -> schema crm -> table deals: columns, constraints, indexes; data types; roles).
-- Instantiated by hand from dbeaver/dbeaver@2428359b74 (2024-10-24), for a server reporting
-- 16.6 (every isServerVersionAtLeast(...) true), server type PostgreSQL, default settings
-- (no object filters, "show templates/unavailable/all databases" off, "read all data types" off).
-- P = plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model
-- Parameters are bound as DBeaver does: setString (varchar, 1043), setLong (int8, 20).
-- `-- expect_rows: n`: DBeaver needs at least n rows to show the object.
-- `{oid:crm.deals}` / `{nsp:crm}` are replaced with the pg_class / pg_namespace oid at run time.

-- name: current_database
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDataSource.java:197
SELECT current_database()

-- name: database_list
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDataSource.java:225-251 (prepareReadDatabaseListStatement; runs when "show all databases" is on)
-- params: ["{db}"]
-- param_oids: [1043]
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate OR db.datname =?
ORDER BY db.datname

-- name: version
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDataSource.java:441
SELECT version()

-- name: current_schema_session_user
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreExecutionContext.java:170
SELECT current_schema(),session_user

-- name: show_search_path
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreExecutionContext.java:186
SHOW search_path

-- name: database_info
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDatabase.java:187
-- params: ["{db}"]
-- param_oids: [1043]
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname=?

-- name: database_description
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDatabase.java:325-326
-- params: ["{db}"]
-- param_oids: [1043]
select description from pg_shdescription join pg_database on objoid = pg_database.oid where datname = ?

-- name: schemas
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDatabase.java:1331-1357 (SchemaCache, no filter)
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname

-- name: data_types
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDatabase.java:706-720 (+ PostgreDataTypeCache.java:171 getBaseTypeNameClause)
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem 
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C')

-- name: roles
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDatabase.java:1076-1079 (RoleCache, supportsCommentsOnRole)
SELECT a.oid,a.*,pd.description FROM pg_catalog.pg_roles a 
left join pg_catalog.pg_shdescription pd on a.oid = pd.objoid
ORDER BY a.rolname

-- name: tables_of_schema
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:844-853 (TableCache.prepareLookupStatement, all tables)
-- params: ["{nsp:crm}"]
-- param_oids: [20]
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=? AND c.relkind not in ('i','I','c')

-- name: table_by_name
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:844-857 (TableCache.prepareLookupStatement, one table)
-- params: ["{nsp:crm}", "deals"]
-- param_oids: [20, 1043]
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace=? AND c.relkind not in ('i','I','c') AND relname=?

-- name: columns_of_table
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:880-898 (TableCache.prepareChildrenStatement, forTable, supportsSequences)
-- params: ["{oid:crm.deals}"]
-- param_oids: [20]
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid=?
ORDER BY a.attnum

-- name: columns_of_schema
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:880-900 (TableCache.prepareChildrenStatement, whole schema)
-- params: ["{nsp:crm}"]
-- param_oids: [20]
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.relnamespace=?
ORDER BY a.attnum

-- name: constraints_of_table
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:930-950 (ConstraintCache, forParent, supportsPGConstraintExpressionColumn)
-- params: ["{oid:crm.deals}"]
-- param_oids: [20]
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE c.conrelid=?
ORDER BY c.oid

-- name: constraints_of_schema
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:930-950 (ConstraintCache, whole schema)
-- params: ["{nsp:crm}"]
-- param_oids: [20]
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE t.relnamespace=?
ORDER BY c.oid

-- name: indexes_of_table
-- source: dbeaver/dbeaver@2428359b74 P/PostgreSchema.java:1086-1110 (IndexCache, forTable, supportsExprIndex, supportsRelationSizeCalc)
-- params: ["{oid:crm.deals}"]
-- param_oids: [20]
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans
FROM pg_catalog.pg_index i
INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
WHERE  i.indrelid=? ORDER BY c.relname

-- name: view_definition
-- expect_rows: 1
-- source: dbeaver/dbeaver@2428359b74 P/PostgreViewBase.java:163 (opening a view of kpi; oid inlined by DBeaver)
SELECT pg_get_viewdef({oid:kpi.funnel}, true)

-- name: settings
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDataSource.java:782 (server "Settings" view)
select * from pg_catalog.pg_settings

-- name: setting_by_name
-- source: dbeaver/dbeaver@2428359b74 P/PostgreDataSource.java:777
-- params: ["server_version"]
-- param_oids: [1043]
select * from pg_catalog.pg_settings where name=?
