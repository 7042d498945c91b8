//! What the PostgreSQL front end reports about the server, from one table, so every client
//! reads the same answer wherever it looks: the startup parameters, `SHOW`, `current_setting()`,
//! `pg_catalog.pg_settings` and `version()`.
//!
//! The server speaks PostgreSQL 16's protocol and catalog, so it reports a PostgreSQL 16
//! version with salespulse and DataFusion named after it: drivers parse the leading number
//! (SQLAlchemy's PostgreSQL dialect matches `PostgreSQL (\d+)\.(\d+)` in `version()`, libpq and
//! pgjdbc read `server_version`, Grafana `server_version_num`), people read the rest. A
//! version string that is not PostgreSQL's shape (`Apache DataFusion 55.2.0`) fails
//! SQLAlchemy's first connect, and with it Superset and `pandas.read_sql`.
//!
//! The settings here are the server's. Settings a connection may change (`SET TimeZone`,
//! `search_path`, …) are answered per connection by [`super::settings`] for `SHOW`; the
//! functions and the `pg_settings` view, shared by a session's connections, give the server's
//! values.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;

/// The PostgreSQL version whose protocol and catalog the server follows.
const PG_MAJOR: u32 = 16;
const PG_MINOR: u32 = 6;

/// `server_version`: `16.6 (salespulse 0.1.0, Apache DataFusion 55.2.0)`, the shape of a
/// packaged PostgreSQL's (`16.6 (Debian 16.6-1.pgdg120+1)`).
pub(super) static SERVER_VERSION: LazyLock<String> =
    LazyLock::new(|| format!("{PG_MAJOR}.{PG_MINOR} (salespulse {}, Apache DataFusion {})", env!("CARGO_PKG_VERSION"), datafusion::DATAFUSION_VERSION));

/// `version()`: `PostgreSQL 16.6 (salespulse …, Apache DataFusion …) on x86_64-linux, 64-bit`.
pub(super) static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "PostgreSQL {PG_MAJOR}.{PG_MINOR} (salespulse {}, Apache DataFusion {}) on {}-{}, {}-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
        usize::BITS
    )
});

/// One server setting as `pg_settings` describes it.
struct Setting {
    name: &'static str,
    value: String,
    category: &'static str,
    description: &'static str,
    vartype: &'static str,
}

/// The server's settings, by PostgreSQL's name (its case: `DateStyle`, `TimeZone`).
static SETTINGS: LazyLock<Vec<Setting>> = LazyLock::new(|| {
    let s = |name, value: &str, category, description, vartype| Setting { name, value: value.to_string(), category, description, vartype };
    let preset = "Preset Options";
    let locale = "Client Connection Defaults / Locale and Formatting";
    let statement = "Client Connection Defaults / Statement Behavior";
    vec![
        s("server_version", &SERVER_VERSION, preset, "Shows the server version.", "string"),
        s("server_version_num", &(PG_MAJOR * 10_000 + PG_MINOR).to_string(), preset, "Shows the server version as an integer.", "integer"),
        s("server_encoding", "UTF8", preset, "Shows the server (database) character set encoding.", "string"),
        s("client_encoding", "UTF8", locale, "Sets the client's character set encoding.", "string"),
        s("DateStyle", "ISO, MDY", locale, "Sets the display format for date and time values.", "string"),
        s("IntervalStyle", "postgres", locale, "Sets the display format for interval values.", "enum"),
        s("TimeZone", "UTC", locale, "Sets the time zone for displaying and interpreting time stamps.", "string"),
        s("lc_collate", "C", preset, "Shows the collation order locale.", "string"),
        s("lc_ctype", "C", preset, "Shows the character classification and case conversion locale.", "string"),
        s("integer_datetimes", "on", preset, "Shows whether datetimes are integer based.", "bool"),
        s("standard_conforming_strings", "on", "Version and Platform Compatibility", "Causes '...' strings to treat backslashes literally.", "bool"),
        s("max_index_keys", "32", preset, "Shows the maximum number of index keys.", "integer"),
        s("max_identifier_length", "63", preset, "Shows the maximum identifier length.", "integer"),
        s("max_function_args", "100", preset, "Shows the maximum number of function arguments.", "integer"),
        s("block_size", "8192", preset, "Shows the size of a disk block.", "integer"),
        s("default_transaction_read_only", "off", statement, "Sets the default read-only status of new transactions.", "bool"),
        s("transaction_read_only", "off", statement, "Sets the current transaction's read-only status.", "bool"),
        s("default_transaction_isolation", "read committed", statement, "Sets the transaction isolation level of each new transaction.", "enum"),
        s("transaction_isolation", "read committed", statement, "Sets the current transaction's isolation level.", "enum"),
        s("in_hot_standby", "off", preset, "Shows whether hot standby is currently active.", "bool"),
        s("is_superuser", "off", preset, "Shows whether the current user is a superuser.", "bool"),
    ]
});

/// The value of a server setting, by name in any case.
pub(super) fn setting(name: &str) -> Option<&'static str> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name)).map(|s| s.value.as_str())
}

/// The parameters sent at login (`ParameterStatus`): the same values as [`setting`].
pub(super) fn startup_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = SERVER_VERSION.clone();
    parameters.is_superuser = false;
    parameters.search_path = super::search_path::DEFAULT_SCHEMA.to_string();
    parameters.default_transaction_read_only = false;
    parameters
}

/// Installs `version()` and `current_setting()` on a session.
pub(super) fn install(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Version::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new()));
}

/// `pg_catalog.pg_settings` from [`SETTINGS`], with PostgreSQL's columns.
pub(super) fn pg_settings_table() -> Result<Arc<dyn TableProvider>> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Arc::new(Schema::new(vec![
        text("name"),
        text("setting"),
        text("unit"),
        text("category"),
        text("short_desc"),
        text("extra_desc"),
        text("context"),
        text("vartype"),
        text("source"),
        text("min_val"),
        text("max_val"),
        text("enumvals"),
        text("boot_val"),
        text("reset_val"),
        text("sourcefile"),
        Field::new("sourceline", DataType::Int32, true),
        Field::new("pending_restart", DataType::Boolean, true),
    ]));
    let n = SETTINGS.len();
    let column = |f: &dyn Fn(&Setting) -> Option<String>| -> ArrayRef { Arc::new(SETTINGS.iter().map(f).collect::<StringArray>()) };
    let nulls = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; n])) };
    let columns: Vec<ArrayRef> = vec![
        column(&|s| Some(s.name.to_string())),
        column(&|s| Some(s.value.clone())),
        nulls(),
        column(&|s| Some(s.category.to_string())),
        column(&|s| Some(s.description.to_string())),
        nulls(),
        column(&|s| Some(if s.category == "Preset Options" { "internal" } else { "user" }.to_string())),
        column(&|s| Some(s.vartype.to_string())),
        column(&|_| Some("default".to_string())),
        nulls(),
        nulls(),
        nulls(),
        column(&|s| Some(s.value.clone())),
        column(&|s| Some(s.value.clone())),
        nulls(),
        Arc::new(datafusion::arrow::array::Int32Array::from(vec![None::<i32>; n])),
        Arc::new(BooleanArray::from(vec![Some(false); n])),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `version()`: [`VERSION`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
}

impl Version {
    fn new() -> Version {
        Version { signature: Signature::exact(vec![], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(VERSION.clone()))))
    }
}

/// `current_setting(name [, missing_ok])`: a server setting; an unknown name is an error, or
/// NULL with `missing_ok`, as in PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    fn new() -> CurrentSetting {
        let signature = Signature::one_of(
            vec![TypeSignature::Exact(vec![DataType::Utf8]), TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean])],
            Volatility::Stable,
        );
        CurrentSetting { signature }
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = datafusion::arrow::array::cast::as_string_array(&arrays[0]);
        let missing_ok = arrays.get(1).map(|a| datafusion::arrow::array::cast::as_boolean_array(a).clone());
        let mut out = Vec::with_capacity(rows.max(names.len()));
        for i in 0..names.len() {
            if names.is_null(i) {
                out.push(None);
                continue;
            }
            let name = names.value(i);
            match setting(name) {
                Some(value) => out.push(Some(value)),
                None if missing_ok.as_ref().is_some_and(|m| !m.is_null(i) && m.value(i)) => out.push(None),
                None => return exec_err!("unrecognized configuration parameter \"{name}\""),
            }
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        super::pg_functions::scalar_or_array(&args.args, array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_version_everywhere() {
        assert!(SERVER_VERSION.starts_with("16.6 (salespulse "));
        assert_eq!(setting("server_version"), Some(SERVER_VERSION.as_str()));
        assert_eq!(setting("SERVER_VERSION_NUM"), Some("160006"));
        assert!(VERSION.starts_with(&format!("PostgreSQL 16.6 (salespulse {}", env!("CARGO_PKG_VERSION"))));
        assert_eq!(startup_parameters().server_version, *SERVER_VERSION);
    }
}
