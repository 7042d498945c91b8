//! What the server says about itself: the GetSqlInfo set and the GetXdbcTypeInfo table.
//!
//! The SqlInfo set is complete and spec-typed (docs/clients.md § SqlInfo): strings, booleans,
//! int32 bitmasks, int64 for every `SQL_MAX_*`, string lists and the int32 → list map of
//! `SQL_SUPPORTS_CONVERT`. Exactly 17 ids sit below 508, so that rows 17–21 are the keyword
//! and function lists Grafana's editor reads by position (docs/clients.md § SqlInfo). The
//! keyword list is the SQL parser's; the function lists come from the session's own
//! functions, grouped by their documentation section, so they never drift from what the
//! engine runs.

use std::collections::BTreeMap;

use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity, SqlSupportedTransaction, SqlSupportsConvert,
    SupportedSqlGrammar, XdbcDataType, XdbcDatetimeSubcode,
};
use datafusion::prelude::SessionContext;

/// Ids 4, 5, 8, 9 and 100 of the spec that the arrow-rs `SqlInfo` enum names differently.
const SERVER_SQL: u32 = 4;
const SERVER_SUBSTRAIT: u32 = 5;
const SERVER_TRANSACTION: u32 = 8;
const SERVER_CANCEL: u32 = 9;
const SERVER_STATEMENT_TIMEOUT: u32 = 100;

/// The function names of `ctx`, by documentation section: numeric, string, system, datetime.
fn function_lists(ctx: &SessionContext) -> [Vec<String>; 4] {
    let mut lists: [Vec<String>; 4] = Default::default();
    let state = ctx.state();
    for (name, udf) in state.scalar_functions() {
        let section = udf.documentation().map(|d| d.doc_section.label).unwrap_or("Other Functions");
        let slot = match section {
            "Math Functions" => 0,
            "String Functions" | "Binary String Functions" | "Regular Expression Functions" => 1,
            "Time and Date Functions" => 3,
            _ => 2,
        };
        lists[slot].push(name.clone());
    }
    for list in &mut lists {
        list.sort();
        list.dedup();
    }
    lists
}

/// Which types convert to which (`CAST`), as the spec's int32 → list<int32> map.
fn supported_conversions() -> BTreeMap<i32, Vec<i32>> {
    use SqlSupportsConvert as C;
    let numeric = [C::SqlConvertBigint, C::SqlConvertInteger, C::SqlConvertSmallint, C::SqlConvertTinyint, C::SqlConvertDecimal, C::SqlConvertNumeric, C::SqlConvertFloat, C::SqlConvertReal];
    let text = [C::SqlConvertVarchar, C::SqlConvertChar, C::SqlConvertLongvarchar];
    let mut map: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let mut allow = |from: C, to: &[C]| map.entry(from as i32).or_default().extend(to.iter().map(|t| *t as i32));
    for from in numeric {
        allow(from, &numeric);
        allow(from, &text);
        allow(from, &[C::SqlConvertBit]);
    }
    for from in text {
        allow(from, &numeric);
        allow(from, &text);
        allow(from, &[C::SqlConvertDate, C::SqlConvertTimestamp, C::SqlConvertTime, C::SqlConvertBit, C::SqlConvertVarbinary]);
    }
    allow(C::SqlConvertBit, &[C::SqlConvertBit, C::SqlConvertVarchar, C::SqlConvertInteger, C::SqlConvertBigint]);
    allow(C::SqlConvertDate, &[C::SqlConvertDate, C::SqlConvertTimestamp, C::SqlConvertVarchar]);
    allow(C::SqlConvertTimestamp, &[C::SqlConvertTimestamp, C::SqlConvertDate, C::SqlConvertTime, C::SqlConvertVarchar, C::SqlConvertBigint]);
    allow(C::SqlConvertTime, &[C::SqlConvertTime, C::SqlConvertVarchar]);
    allow(C::SqlConvertBinary, &[C::SqlConvertBinary, C::SqlConvertVarbinary]);
    allow(C::SqlConvertVarbinary, &[C::SqlConvertBinary, C::SqlConvertVarbinary]);
    for targets in map.values_mut() {
        targets.sort_unstable();
        targets.dedup();
    }
    map
}

/// The GetSqlInfo answers for a server whose functions are those of `ctx`.
///
/// # Errors
/// Never in practice: the values are constants of the right types.
pub(super) fn sql_info(ctx: &SessionContext) -> Result<SqlInfoData, FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    // Server (ids 0–100). Id 101 (transaction timeout) is left out on purpose: see the
    // module header.
    b.append(SqlInfo::FlightSqlServerName, "salespulse");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SERVER_SQL, true);
    b.append(SERVER_SUBSTRAIT, false);
    b.append(SERVER_TRANSACTION, SqlSupportedTransaction::None as i32);
    b.append(SERVER_CANCEL, false);
    b.append(SERVER_STATEMENT_TIMEOUT, 0i32);
    // SQL dialect (500–507).
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    // Rows 17–21: keywords and functions.
    let keywords: Vec<String> = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS.iter().map(|k| k.to_string()).collect();
    let [numeric, string, system, datetime] = function_lists(ctx);
    b.append(SqlInfo::SqlKeywords, keywords);
    b.append(SqlInfo::SqlNumericFunctions, numeric);
    b.append(SqlInfo::SqlStringFunctions, string);
    b.append(SqlInfo::SqlSystemFunctions, system);
    b.append(SqlInfo::SqlDatetimeFunctions, datetime);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(SqlInfo::SqlSupportsConvert, supported_conversions());
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // Bitmask: GROUP BY unrelated (1) and beyond select (2).
    b.append(SqlInfo::SqlSupportedGroupBy, 3i32);
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(SqlInfo::SqlSupportedGrammar, 1i32 << SupportedSqlGrammar::SqlCoreGrammar as i32);
    // Bitmask: ANSI-92 entry, intermediate and full SQL.
    b.append(SqlInfo::SqlAnsi92SupportedLevel, 0b111i32);
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    // Full outer joins.
    b.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Bitmask: subqueries in comparisons, EXISTS, IN and quantified comparisons.
    b.append(SqlInfo::SqlSupportedSubqueries, 15i32);
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // Bitmask: UNION and UNION ALL.
    b.append(SqlInfo::SqlSupportedUnions, 3i32);
    for id in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        // 0 means "no limit or unknown" in JDBC's DatabaseMetaData.
        b.append(id, 0i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    b.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    // Bitmask: forward-only result sets.
    b.append(SqlInfo::SqlSupportedResultSetTypes, 1i32 << 1);
    b.append(SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified, 0i32);
    b.append(SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly, 1i32 << 1);
    b.append(SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive, 0i32);
    b.append(SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive, 0i32);
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    b.build()
}

fn xdbc(name: &str, data_type: XdbcDataType, size: Option<i32>, literal: Option<(&str, &str)>) -> XdbcTypeInfo {
    let numeric = matches!(
        data_type,
        XdbcDataType::XdbcBigint | XdbcDataType::XdbcInteger | XdbcDataType::XdbcDouble | XdbcDataType::XdbcDecimal | XdbcDataType::XdbcSmallint
    );
    XdbcTypeInfo {
        type_name: name.to_string(),
        data_type,
        column_size: size,
        literal_prefix: literal.map(|l| l.0.to_string()),
        literal_suffix: literal.map(|l| l.1.to_string()),
        create_params: (data_type == XdbcDataType::XdbcDecimal).then(|| vec!["precision".to_string(), "scale".to_string()]),
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: data_type == XdbcDataType::XdbcDecimal,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.to_string()),
        minimum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(0),
        maximum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(38),
        sql_data_type: data_type,
        datetime_subcode: match data_type {
            XdbcDataType::XdbcTimestamp => Some(XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone),
            XdbcDataType::XdbcDate => Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
            _ => None,
        },
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The types a result column can have (docs/design.md § Protocol coverage: the types every
/// client renders).
///
/// # Errors
/// Never in practice: the rows are constants.
pub(super) fn xdbc_type_info() -> Result<XdbcTypeInfoData, FlightError> {
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(xdbc("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None));
    b.append(xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(19), None));
    b.append(xdbc("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), None));
    b.append(xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(15), None));
    b.append(xdbc("VARCHAR", XdbcDataType::XdbcVarchar, Some(i32::MAX), Some(("'", "'"))));
    b.append(xdbc("DATE", XdbcDataType::XdbcDate, Some(10), Some(("DATE '", "'"))));
    b.append(xdbc("TIMESTAMP", XdbcDataType::XdbcTimestamp, Some(32), Some(("TIMESTAMP '", "'"))));
    b.append(xdbc("BYTEA", XdbcDataType::XdbcVarbinary, Some(i32::MAX), None));
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, UnionArray};
    use arrow::datatypes::UInt32Type;
    use arrow_flight::sql::CommandGetSqlInfo;

    #[test]
    fn grafana_reads_lists_at_rows_17_to_21() {
        let ctx = SessionContext::new();
        let data = sql_info(&ctx).unwrap();
        let batch = CommandGetSqlInfo { info: vec![] }.into_builder(&data).build().unwrap();
        let ids = batch.column(0).as_primitive::<UInt32Type>();
        let below: Vec<u32> = ids.values().iter().copied().filter(|id| *id < 508).collect();
        assert_eq!(below.len(), 17, "ids below 508: {below:?}");
        assert_eq!(&ids.values()[17..22], &[508, 509, 510, 511, 512]);
        let values = batch.column(1).as_any().downcast_ref::<UnionArray>().unwrap();
        for row in 17..22 {
            // Type id 4 is the string_list branch of the spec's dense union.
            assert_eq!(values.type_id(row), 4, "row {row}");
        }
        // flightsql-dbapi indexes ids 3 and 504; ADBC reads id 8 from the int32 branch.
        for (id, branch) in [(3u32, 1i8), (504, 0), (8, 3)] {
            let row = ids.values().iter().position(|v| *v == id).unwrap();
            assert_eq!(values.type_id(row), branch, "id {id}");
        }
        assert!(!values.is_empty());
    }

    #[test]
    fn function_lists_hold_engine_functions() {
        let ctx = SessionContext::new();
        let [numeric, string, _system, datetime] = function_lists(&ctx);
        assert!(numeric.iter().any(|f| f == "abs"));
        assert!(string.iter().any(|f| f == "upper"));
        assert!(datetime.iter().any(|f| f == "date_trunc"));
    }

    #[test]
    fn xdbc_builds() {
        assert!(xdbc_type_info().is_ok());
    }
}
