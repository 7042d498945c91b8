import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.ParameterMetaData;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;

/**
 * Drives pgjdbc as DBeaver and Metabase do: every DatabaseMetaData method they call, the
 * session statements they send, typed prepared statements and ResultSetMetaData.
 *
 * Usage: java -cp postgresql.jar:DIR MetadataCheck URL USER PASSWORD
 *
 * Prints one JSON line per check: {"check": name, "ok": bool, "error": msg|null, "rows": n,
 * "values": [...]} ("values" only where a check lists names, e.g. catalogs; "note" when the
 * driver itself does not implement a method, which is not a server failure). A result set
 * is always read to the end so that errors in later rows or type lookups surface.
 */
public class MetadataCheck {
    interface Body {
        Object run() throws Exception;
    }

    /** What a check returns: a row count and optionally the names it saw. */
    static final class Result {
        long rows = -1;
        List<String> values;
        String note;
    }

    static final String SCHEMA = "crm";
    static final String TABLE = "deals";
    static Connection conn;
    static DatabaseMetaData md;

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: MetadataCheck URL USER PASSWORD");
            System.exit(2);
        }
        String url = args[0], user = args[1], password = args[2];

        // DBeaver: user and password as driver properties, then
        // setClientInfo("ApplicationName", ...) (PostgreDataSource).
        Properties dbeaver = new Properties();
        dbeaver.setProperty("user", user);
        if (!password.isEmpty()) dbeaver.setProperty("password", password);
        dbeaver.setProperty("socketTimeout", "120"); // client-side only: a hung server fails a check, not the run
        dbeaver.setProperty("loginTimeout", "60");
        boolean connected = check("connect", () -> {
            conn = DriverManager.getConnection(url, dbeaver);
            md = conn.getMetaData();
            return null;
        });
        if (!connected) {
            System.exit(0);
        }
        dbeaverSession();
        metadata();
        queries();
        conn.close();

        // Metabase's PostgreSQL driver (src/metabase/driver/postgres.clj,
        // connection-details->spec): OpenSourceSubProtocolOverride=true and ApplicationName;
        // sql_jdbc/execute.clj on every checkout: setReadOnly(true), setAutoCommit(true),
        // setTransactionIsolation(READ_UNCOMMITTED); `show timezone;` and, with a report
        // time zone, `SET SESSION TIMEZONE TO '<tz>';`.
        Properties metabase = new Properties();
        metabase.setProperty("user", user);
        if (!password.isEmpty()) metabase.setProperty("password", password);
        metabase.setProperty("OpenSourceSubProtocolOverride", "true");
        metabase.setProperty("ApplicationName", "Metabase v0.56.0 [test]");
        metabase.setProperty("socketTimeout", "120");
        metabase.setProperty("loginTimeout", "60");
        if (check("metabase.connect", () -> {
            conn = DriverManager.getConnection(url, metabase);
            md = conn.getMetaData();
            return null;
        })) {
            metabaseSession();
            conn.close();
        }
    }

    // ---------------------------------------------------------------- sessions

    static void dbeaverSession() {
        check("conn.setClientInfo_ApplicationName", () -> {
            conn.setClientInfo("ApplicationName", "DBeaver 24.2.3 - Main <demo>");
            return null;
        });
        check("conn.getSchema", () -> note(conn.getSchema()));
        check("conn.getCatalog", () -> note(conn.getCatalog()));
        check("dbeaver.current_schema_session_user", () -> query("SELECT current_schema(),session_user"));
        check("dbeaver.show_search_path", () -> query("SHOW search_path"));
        check("conn.setSchema", () -> {
            conn.setSchema(SCHEMA);
            String now = conn.getSchema();
            if (!SCHEMA.equals(now)) throw new AssertionError("getSchema() after setSchema(crm) = " + now);
            return null;
        });
        check("dbeaver.set_search_path", () -> update("SET search_path = \"crm\",public"));
        check("conn.getTransactionIsolation", () -> note(String.valueOf(conn.getTransactionIsolation())));
        check("conn.setTransactionIsolation", () -> {
            conn.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
            return null;
        });
        check("conn.isValid", () -> {
            if (!conn.isValid(10)) throw new AssertionError("isValid(10) = false");
            return null;
        });
    }

    static void metabaseSession() {
        check("metabase.setReadOnly", () -> {
            conn.setReadOnly(true);
            return null;
        });
        check("metabase.setAutoCommit", () -> {
            conn.setAutoCommit(true);
            return null;
        });
        check("metabase.setTransactionIsolation", () -> {
            conn.setTransactionIsolation(Connection.TRANSACTION_READ_UNCOMMITTED);
            return null;
        });
        check("metabase.show_timezone", () -> query("show timezone;"));
        check("metabase.set_session_timezone", () -> update("SET SESSION TIMEZONE TO 'UTC';"));
        check("metabase.select_1", () -> query("SELECT 1"));
        // Sync: tables of each schema with Metabase's table types, then their columns and keys.
        check("metabase.getTables", () -> read(md.getTables(null, SCHEMA, "%",
                new String[] {"TABLE", "PARTITIONED TABLE", "VIEW", "FOREIGN TABLE", "MATERIALIZED VIEW"})));
        check("metabase.getColumns", () -> read(md.getColumns(null, SCHEMA, TABLE, null)));
        check("metabase.getPrimaryKeys", () -> read(md.getPrimaryKeys(null, SCHEMA, TABLE)));
        check("metabase.getImportedKeys", () -> read(md.getImportedKeys(null, SCHEMA, TABLE)));
        check("metabase.query_with_limit", () -> {
            try (Statement st = conn.createStatement()) {
                st.setMaxRows(2000);
                st.setFetchSize(500);
                return read(st.executeQuery("SELECT \"crm\".\"deals\".\"deal_id\" AS \"deal_id\", "
                        + "\"crm\".\"deals\".\"amount\" AS \"amount\" FROM \"crm\".\"deals\" LIMIT 2000"));
            }
        });
    }

    // ---------------------------------------------------------------- DatabaseMetaData

    static void metadata() {
        check("dmd.getDatabaseProductName", () -> note(md.getDatabaseProductName()));
        check("dmd.getDatabaseProductVersion", () -> note(md.getDatabaseProductVersion()));
        check("dmd.getDatabaseMajorVersion", () -> note(String.valueOf(md.getDatabaseMajorVersion())));
        check("dmd.getDatabaseMinorVersion", () -> note(String.valueOf(md.getDatabaseMinorVersion())));
        check("dmd.getDriverVersion", () -> note(md.getDriverVersion()));
        check("dmd.getUserName", () -> note(md.getUserName()));
        check("dmd.getURL", () -> note(md.getURL()));
        check("dmd.getSQLKeywords", () -> note(md.getSQLKeywords()));
        check("dmd.getIdentifierQuoteString", () -> {
            String q = md.getIdentifierQuoteString();
            if (!"\"".equals(q)) throw new AssertionError("quote string " + q);
            return null;
        });
        check("dmd.getSearchStringEscape", () -> note(md.getSearchStringEscape()));
        check("dmd.getExtraNameCharacters", () -> note(md.getExtraNameCharacters()));
        check("dmd.getNumericFunctions", () -> note(md.getNumericFunctions()));
        check("dmd.getStringFunctions", () -> note(md.getStringFunctions()));
        check("dmd.getSystemFunctions", () -> note(md.getSystemFunctions()));
        check("dmd.getTimeDateFunctions", () -> note(md.getTimeDateFunctions()));
        check("dmd.getCatalogTerm_SchemaTerm", () -> note(md.getCatalogTerm() + "/" + md.getSchemaTerm()));
        // The max*Length methods read pg_type's `name` length from the server.
        check("dmd.getMaxNameLengths", () -> note(md.getMaxColumnNameLength() + "," + md.getMaxTableNameLength()
                + "," + md.getMaxSchemaNameLength() + "," + md.getMaxCatalogNameLength()));
        check("dmd.getDefaultTransactionIsolation", () -> note(String.valueOf(md.getDefaultTransactionIsolation())));
        check("dmd.supports", () -> {
            StringBuilder s = new StringBuilder();
            s.append(md.supportsTransactions()).append(md.supportsSchemasInDataManipulation())
                    .append(md.supportsSchemasInTableDefinitions()).append(md.supportsCatalogsInDataManipulation())
                    .append(md.supportsCatalogsInTableDefinitions()).append(md.supportsMixedCaseIdentifiers())
                    .append(md.supportsMixedCaseQuotedIdentifiers()).append(md.storesLowerCaseIdentifiers())
                    .append(md.storesUpperCaseIdentifiers()).append(md.storesMixedCaseIdentifiers())
                    .append(md.supportsStoredProcedures()).append(md.supportsOuterJoins())
                    .append(md.supportsFullOuterJoins()).append(md.supportsLimitedOuterJoins())
                    .append(md.supportsUnion()).append(md.supportsUnionAll()).append(md.supportsSubqueriesInExists())
                    .append(md.supportsGroupBy()).append(md.supportsOrderByUnrelated())
                    .append(md.supportsBatchUpdates()).append(md.supportsSavepoints())
                    .append(md.supportsGetGeneratedKeys()).append(md.supportsResultSetType(ResultSet.TYPE_FORWARD_ONLY))
                    .append(md.supportsResultSetConcurrency(ResultSet.TYPE_FORWARD_ONLY, ResultSet.CONCUR_READ_ONLY))
                    .append(md.supportsTransactionIsolationLevel(Connection.TRANSACTION_READ_COMMITTED))
                    .append(md.supportsMultipleResultSets()).append(md.supportsNamedParameters())
                    .append(md.supportsStatementPooling()).append(md.supportsANSI92EntryLevelSQL())
                    .append(md.nullsAreSortedHigh()).append(md.isReadOnly()).append(md.allTablesAreSelectable())
                    .append(md.supportsAlterTableWithAddColumn()).append(md.supportsDataDefinitionAndDataManipulationTransactions())
                    .append(md.supportsExpressionsInOrderBy()).append(md.supportsColumnAliasing())
                    .append(md.supportsConvert()).append(md.supportsLikeEscapeClause())
                    .append(md.supportsSelectForUpdate()).append(md.supportsMultipleTransactions())
                    .append(md.supportsResultSetHoldability(ResultSet.CLOSE_CURSORS_AT_COMMIT))
                    .append(md.getResultSetHoldability()).append(md.getSQLStateType())
                    .append(md.getMaxStatements()).append(md.getMaxConnections()).append(md.getJDBCMajorVersion())
                    .append(md.usesLocalFiles()).append(md.autoCommitFailureClosesAllResultSets())
                    .append(md.generatedKeyAlwaysReturned()).append(md.supportsRefCursors());
            return note(s.toString());
        });
        check("dmd.getRowIdLifetime", () -> note(String.valueOf(md.getRowIdLifetime())));

        check("dmd.getCatalogs", () -> readValues(md.getCatalogs(), "TABLE_CAT"));
        check("dmd.getSchemas", () -> readValues(md.getSchemas(), "TABLE_SCHEM"));
        check("dmd.getSchemas_catalog_pattern", () -> readValues(md.getSchemas(conn.getCatalog(), "%"), "TABLE_SCHEM"));
        check("dmd.getSchemas_crm", () -> readValues(md.getSchemas(null, SCHEMA), "TABLE_SCHEM"));
        check("dmd.getTableTypes", () -> readValues(md.getTableTypes(), "TABLE_TYPE"));
        // DBeaver's generic path and "all tables": no schema, no types.
        check("dmd.getTables_all", () -> readValues(md.getTables(null, null, "%", null), "TABLE_SCHEM", "TABLE_NAME"));
        check("dmd.getTables_crm_types", () -> readValues(md.getTables(conn.getCatalog(), SCHEMA, "%",
                new String[] {"TABLE", "VIEW"}), "TABLE_SCHEM", "TABLE_NAME"));
        check("dmd.getTables_deals", () -> readValues(md.getTables(null, SCHEMA, TABLE, null), "TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME"));
        // kpi holds the views of docs/metrics.md; DBeaver and Metabase ask for TABLE and VIEW.
        check("dmd.getTables_kpi", () -> {
            Result r = readValues(md.getTables(null, "kpi", "%", new String[] {"TABLE", "VIEW"}), "TABLE_TYPE", "TABLE_NAME");
            if (r.rows == 0) throw new AssertionError("getTables lists nothing in schema kpi");
            return r;
        });
        check("dmd.getColumns_deals", () -> {
            Result r = readValues(md.getColumns(null, SCHEMA, TABLE, "%"), "COLUMN_NAME", "TYPE_NAME", "DATA_TYPE");
            if (r.rows == 0) throw new AssertionError("no columns for crm.deals");
            return r;
        });
        check("dmd.getColumns_all", () -> read(md.getColumns(null, SCHEMA, "%", "%")));
        check("dmd.getPrimaryKeys", () -> read(md.getPrimaryKeys(null, SCHEMA, TABLE)));
        check("dmd.getImportedKeys", () -> read(md.getImportedKeys(null, SCHEMA, TABLE)));
        check("dmd.getExportedKeys", () -> read(md.getExportedKeys(null, SCHEMA, TABLE)));
        check("dmd.getCrossReference", () -> read(md.getCrossReference(null, SCHEMA, TABLE, null, SCHEMA, "calls")));
        check("dmd.getIndexInfo", () -> read(md.getIndexInfo(null, SCHEMA, TABLE, false, true)));
        check("dmd.getIndexInfo_unique", () -> read(md.getIndexInfo(null, SCHEMA, TABLE, true, false)));
        check("dmd.getBestRowIdentifier", () -> read(md.getBestRowIdentifier(null, SCHEMA, TABLE,
                DatabaseMetaData.bestRowSession, true)));
        check("dmd.getVersionColumns", () -> read(md.getVersionColumns(null, SCHEMA, TABLE)));
        check("dmd.getTypeInfo", () -> read(md.getTypeInfo()));
        check("dmd.getFunctions", () -> read(md.getFunctions(null, SCHEMA, "%")));
        check("dmd.getFunctions_pg_catalog", () -> read(md.getFunctions(null, "pg_catalog", "%")));
        check("dmd.getFunctionColumns", () -> read(md.getFunctionColumns(null, SCHEMA, "%", "%")));
        check("dmd.getProcedures", () -> read(md.getProcedures(null, SCHEMA, "%")));
        check("dmd.getProcedureColumns", () -> read(md.getProcedureColumns(null, SCHEMA, "%", "%")));
        check("dmd.getTablePrivileges", () -> read(md.getTablePrivileges(null, SCHEMA, TABLE)));
        check("dmd.getColumnPrivileges", () -> read(md.getColumnPrivileges(null, SCHEMA, TABLE, "%")));
        check("dmd.getUDTs", () -> read(md.getUDTs(null, SCHEMA, "%", null)));
        check("dmd.getClientInfoProperties", () -> read(md.getClientInfoProperties()));
        check("dmd.getSuperTables", () -> read(md.getSuperTables(null, SCHEMA, TABLE)));
        check("dmd.getSuperTypes", () -> read(md.getSuperTypes(null, SCHEMA, "%")));
        check("dmd.getAttributes", () -> read(md.getAttributes(null, SCHEMA, "%", "%")));
        check("dmd.getPseudoColumns", () -> read(md.getPseudoColumns(null, SCHEMA, TABLE, "%")));
    }

    // ---------------------------------------------------------------- statements

    static void queries() {
        check("query.select_deals", () -> query("SELECT * FROM crm.deals LIMIT 20"));
        check("query.select_kpi_view", () -> {
            try (Statement st = conn.createStatement()) {
                // A view of the tenant; the name comes from the metadata (first relation of kpi).
                String view = null;
                try (ResultSet rs = md.getTables(null, "kpi", "%", new String[] {"TABLE", "VIEW"})) {
                    if (rs.next()) view = rs.getString("TABLE_NAME");
                }
                if (view == null) throw new AssertionError("getTables lists nothing in kpi");
                return read(st.executeQuery("SELECT * FROM kpi.\"" + view + "\" LIMIT 5"));
            }
        });
        check("rsmd.select_deals", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT * FROM crm.deals LIMIT 5")) {
                return resultSetMetaData(rs.getMetaData());
            }
        });
        check("rsmd.select_calls", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT * FROM crm.calls LIMIT 5")) {
                return resultSetMetaData(rs.getMetaData());
            }
        });
        check("rsmd.expressions", () -> {
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT status, count(*) AS n, sum(amount) AS total, "
                            + "max(created_at) AS last_created, CAST(max(created_at) AS DATE) AS last_day "
                            + "FROM crm.deals GROUP BY status")) {
                Result r = resultSetMetaData(rs.getMetaData());
                readRows(rs);
                return r;
            }
        });

        check("prepared.setString", () -> prepared("SELECT deal_id, amount FROM crm.deals WHERE status = ?",
                ps -> ps.setString(1, "won"), true));
        check("prepared.setInt", () -> prepared("SELECT call_id FROM crm.calls WHERE duration_seconds > ?",
                ps -> ps.setInt(1, 60), true));
        check("prepared.setLong", () -> prepared("SELECT call_id FROM crm.calls WHERE duration_seconds > ?",
                ps -> ps.setLong(1, 60L), true));
        check("prepared.setBigDecimal", () -> prepared("SELECT deal_id FROM crm.deals WHERE amount > ?",
                ps -> ps.setBigDecimal(1, new BigDecimal("1000.00")), true));
        check("prepared.setTimestamp", () -> prepared("SELECT deal_id FROM crm.deals WHERE created_at >= ?",
                ps -> ps.setTimestamp(1, Timestamp.valueOf("2025-01-01 00:00:00")), true));
        check("prepared.setTimestamp_calls", () -> prepared("SELECT call_id FROM crm.calls WHERE started_at BETWEEN ? AND ?",
                ps -> {
                    ps.setTimestamp(1, Timestamp.valueOf("2025-01-01 00:00:00"));
                    ps.setTimestamp(2, Timestamp.valueOf("2027-01-01 00:00:00"));
                }, true));
        check("prepared.setDate", () -> prepared("SELECT deal_id FROM crm.deals WHERE CAST(created_at AS DATE) >= ?",
                ps -> ps.setDate(1, Date.valueOf("2025-01-01")), true));
        check("prepared.setDate_date_column", () -> prepared("SELECT manager_id FROM crm.sales_plans WHERE period_start >= ?",
                ps -> ps.setDate(1, Date.valueOf("2020-01-01")), false));
        check("prepared.setBoolean", () -> prepared("SELECT deal_id FROM crm.deals WHERE (closed_at IS NOT NULL) = ?",
                ps -> ps.setBoolean(1, true), true));
        check("prepared.setBoolean_column", () -> prepared("SELECT activity_id FROM crm.activities WHERE is_completed = ?",
                ps -> ps.setBoolean(1, true), false));
        check("prepared.setNull", () -> prepared("SELECT deal_id FROM crm.deals WHERE closed_at IS NULL OR closed_at > ?",
                ps -> ps.setNull(1, java.sql.Types.TIMESTAMP), false));
        check("prepared.mixed", () -> prepared("SELECT d.deal_id, c.call_id FROM crm.deals d JOIN crm.calls c ON c.deal_id = d.deal_id "
                + "WHERE d.status = ? AND d.amount > ? AND c.duration_seconds >= ? LIMIT ?",
                ps -> {
                    ps.setString(1, "won");
                    ps.setBigDecimal(2, new BigDecimal("0"));
                    ps.setLong(3, 0L);
                    ps.setInt(4, 100);
                }, false));
        // pgjdbc switches to a named server-side statement from the 5th execution
        // (prepareThreshold=5); run the same statement 7 times.
        check("prepared.reuse_named_statement", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM crm.calls WHERE status = ?")) {
                Result r = new Result();
                r.rows = 0;
                for (int i = 0; i < 7; i++) {
                    ps.setString(1, i % 2 == 0 ? "answered" : "missed");
                    try (ResultSet rs = ps.executeQuery()) {
                        r.rows += readRows(rs);
                    }
                }
                return r;
            }
        });
        check("prepared.getMetaData_before_execute", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT deal_id, amount, created_at FROM crm.deals WHERE status = ?")) {
                ResultSetMetaData m = ps.getMetaData();
                if (m == null || m.getColumnCount() != 3) throw new AssertionError("describe gave " + m);
                return resultSetMetaData(m);
            }
        });
        check("prepared.getParameterMetaData", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT deal_id FROM crm.deals WHERE status = ? AND amount > ?")) {
                ParameterMetaData p = ps.getParameterMetaData();
                List<String> types = new ArrayList<>();
                for (int i = 1; i <= p.getParameterCount(); i++) types.add(p.getParameterTypeName(i));
                Result r = new Result();
                r.values = types;
                return r;
            }
        });
        // Cursor-based fetching (autocommit off + fetch size): Execute with a row limit and
        // PortalSuspended, as DBeaver does when "use fetch size" is on in manual commit.
        check("query.fetch_size_in_transaction", () -> {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(7);
                Result r = read(st.executeQuery("SELECT call_id FROM crm.calls LIMIT 50"));
                conn.commit();
                if (r.rows != 50 && r.rows >= 0) {
                    // fewer rows in a tiny demo are fine; more is not
                    if (r.rows > 50) throw new AssertionError("LIMIT 50 returned " + r.rows);
                }
                return r;
            } finally {
                try {
                    conn.rollback();
                } catch (SQLException ignored) {
                }
                conn.setAutoCommit(true);
            }
        });
        check("query.cancel_statement_timeout", () -> {
            try (Statement st = conn.createStatement()) {
                st.setQueryTimeout(30);
                return read(st.executeQuery("SELECT count(*) FROM crm.calls"));
            }
        });
    }

    interface Binder {
        void bind(PreparedStatement ps) throws SQLException;
    }

    static Result prepared(String sql, Binder binder, boolean mustHaveRows) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            binder.bind(ps);
            try (ResultSet rs = ps.executeQuery()) {
                Result r = new Result();
                r.rows = readRows(rs);
                if (mustHaveRows && r.rows == 0) throw new AssertionError("no rows from: " + sql);
                return r;
            }
        }
    }

    /** Every ResultSetMetaData getter DBeaver's result viewer calls; the base-column ones
     * (isNullable, isAutoIncrement, getTableName, getBaseColumnName) query pg_attribute. */
    static Result resultSetMetaData(ResultSetMetaData m) throws SQLException {
        List<String> cols = new ArrayList<>();
        for (int i = 1; i <= m.getColumnCount(); i++) {
            StringBuilder s = new StringBuilder();
            s.append(m.getColumnLabel(i)).append(':').append(m.getColumnName(i)).append(':')
                    .append(m.getColumnType(i)).append(':').append(m.getColumnTypeName(i)).append(':')
                    .append(m.getPrecision(i)).append(':').append(m.getScale(i)).append(':')
                    .append(m.isNullable(i)).append(':').append(m.isAutoIncrement(i)).append(':')
                    .append(m.getTableName(i)).append(':').append(m.getSchemaName(i)).append(':')
                    .append(m.getCatalogName(i)).append(':').append(m.getColumnClassName(i)).append(':')
                    .append(m.getColumnDisplaySize(i)).append(':').append(m.isSigned(i)).append(':')
                    .append(m.isCaseSensitive(i)).append(':').append(m.isSearchable(i)).append(':')
                    .append(m.isCurrency(i)).append(':').append(m.isReadOnly(i)).append(':')
                    .append(m.isWritable(i));
            if (m.isWrapperFor(org.postgresql.PGResultSetMetaData.class)) {
                org.postgresql.PGResultSetMetaData pg = m.unwrap(org.postgresql.PGResultSetMetaData.class);
                s.append(':').append(pg.getBaseColumnName(i)).append(':').append(pg.getBaseTableName(i))
                        .append(':').append(pg.getBaseSchemaName(i));
            }
            cols.add(s.toString());
        }
        Result r = new Result();
        r.values = cols;
        return r;
    }

    // ---------------------------------------------------------------- helpers

    static Result query(String sql) throws SQLException {
        try (Statement st = conn.createStatement()) {
            if (st.execute(sql)) {
                return read(st.getResultSet());
            }
            Result r = new Result();
            r.rows = 0;
            return r;
        }
    }

    static Result update(String sql) throws SQLException {
        try (Statement st = conn.createStatement()) {
            st.execute(sql);
            Result r = new Result();
            r.rows = 0;
            return r;
        }
    }

    static Result note(String s) {
        Result r = new Result();
        r.note = s;
        return r;
    }

    static long readRows(ResultSet rs) throws SQLException {
        int n = rs.getMetaData().getColumnCount();
        long rows = 0;
        while (rs.next()) {
            for (int i = 1; i <= n; i++) {
                rs.getObject(i); // converts every value, as a client grid does
                rs.getString(i);
            }
            rows++;
        }
        return rows;
    }

    static Result read(ResultSet rs) throws SQLException {
        try (ResultSet r0 = rs) {
            Result r = new Result();
            r.rows = readRows(r0);
            return r;
        }
    }

    /** Reads all rows, collecting the distinct values of the given columns (joined by '.'). */
    static Result readValues(ResultSet rs, String... columns) throws SQLException {
        try (ResultSet r0 = rs) {
            int n = r0.getMetaData().getColumnCount();
            Result r = new Result();
            r.rows = 0;
            List<String> values = new ArrayList<>();
            while (r0.next()) {
                for (int i = 1; i <= n; i++) {
                    r0.getObject(i);
                }
                StringBuilder s = new StringBuilder();
                for (int c = 0; c < columns.length; c++) {
                    if (c > 0) s.append('.');
                    s.append(r0.getString(columns[c]));
                }
                values.add(s.toString());
                r.rows++;
            }
            r.values = values;
            return r;
        }
    }

    static boolean check(String name, Body body) {
        Object out = null;
        String error = null;
        String note = null;
        boolean ok;
        try {
            out = body.run();
            ok = true;
        } catch (SQLFeatureNotSupportedException e) {
            // The driver itself does not implement the method: nothing reaches the server.
            ok = true;
            note = "driver: " + e.getMessage();
        } catch (Throwable e) {
            ok = false;
            error = describe(e);
            // After an error in a transaction, the connection must be usable again.
            try {
                if (conn != null && !conn.isClosed() && !conn.getAutoCommit()) conn.rollback();
            } catch (SQLException ignored) {
            }
        }
        StringBuilder s = new StringBuilder("{\"check\": ").append(json(name)).append(", \"ok\": ").append(ok)
                .append(", \"error\": ").append(json(error));
        if (out instanceof Result) {
            Result r = (Result) out;
            if (r.rows >= 0) s.append(", \"rows\": ").append(r.rows);
            if (r.note != null) note = r.note;
            if (r.values != null) {
                s.append(", \"values\": [");
                for (int i = 0; i < r.values.size(); i++) {
                    if (i > 0) s.append(", ");
                    s.append(json(r.values.get(i)));
                }
                s.append(']');
            }
        }
        if (note != null) s.append(", \"note\": ").append(json(note));
        s.append('}');
        System.out.println(s);
        System.out.flush();
        return ok;
    }

    static String describe(Throwable e) {
        StringBuilder s = new StringBuilder(e.getClass().getSimpleName()).append(": ").append(e.getMessage());
        if (e instanceof SQLException && ((SQLException) e).getSQLState() != null) {
            s.append(" [SQLSTATE ").append(((SQLException) e).getSQLState()).append(']');
        }
        Set<Throwable> seen = new LinkedHashSet<>();
        Throwable c = e.getCause();
        while (c != null && seen.add(c)) {
            s.append(" <- ").append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
            c = c.getCause();
        }
        return s.toString();
    }

    static String json(String v) {
        if (v == null) return "null";
        StringBuilder s = new StringBuilder("\"");
        for (char ch : v.toCharArray()) {
            switch (ch) {
                case '"': s.append("\\\""); break;
                case '\\': s.append("\\\\"); break;
                case '\n': s.append("\\n"); break;
                case '\r': s.append("\\r"); break;
                case '\t': s.append("\\t"); break;
                default:
                    if (ch < 0x20) s.append(String.format("\\u%04x", (int) ch));
                    else s.append(ch);
            }
        }
        return s.append('"').toString();
    }
}
