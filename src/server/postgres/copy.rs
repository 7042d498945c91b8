//! `COPY (query) TO STDOUT` and `COPY table [(columns)] TO STDOUT`: the read-only export path
//! (ConnectorX and so `polars.read_database_uri`, psql's `\copy … to`, pandas' fast readers).
//!
//! DataFusion's own `COPY` writes files, and its parser takes only a file after `TO`, so the
//! statement is recognised here, on sqlparser's PostgreSQL form, before planning: the query
//! inside is planned and run through the same execution path as every `SELECT` (the slot, the
//! deadline, the read-only check, the row and byte caps of `[limits]`: an export is a query
//! and is capped like one) and its rows go out as `CopyData` in PostgreSQL's text, CSV or
//! binary format. `COPY … FROM`, `COPY … TO 'file'` and `TO PROGRAM` stay refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use datafusion::arrow::array::RecordBatch;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, Query, Statement};
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyTextOptions, FieldInfo};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::copy::CopyData;
use futures::{Stream, StreamExt};

use super::user_error;

/// The format of an export, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CopyFormat {
    Text { delimiter: char, null: String, header: bool },
    Csv { delimiter: char, null: String, header: bool, quote: char, escape: char, force_quote: ForceQuote },
    Binary,
}

/// CSV's `FORCE_QUOTE`: no column, the named ones, or all (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ForceQuote {
    None,
    Columns(Vec<String>),
    All,
}

/// A `COPY … TO STDOUT`: the query whose rows are exported, and how.
#[derive(Debug, Clone)]
pub(super) struct Export {
    pub query: Box<Query>,
    pub format: CopyFormat,
}

/// What a statement is to this module: not a `COPY`, an export, or a refused `COPY`.
pub(super) fn export_of(statement: &Statement) -> Option<PgWireResult<Export>> {
    let Statement::Copy { source, to, target, options, legacy_options, .. } = statement else {
        return None;
    };
    Some(export(source, *to, target, options, legacy_options))
}

fn export(source: &CopySource, to: bool, target: &CopyTarget, options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<Export> {
    if !to {
        return Err(read_only("COPY … FROM is not allowed (salespulse is read-only)"));
    }
    match target {
        CopyTarget::Stdout => {}
        CopyTarget::File { .. } | CopyTarget::Program { .. } | CopyTarget::Stdin => {
            return Err(read_only(
                "COPY … TO a file or program on the server is not allowed (salespulse is read-only); use COPY (query) TO STDOUT and let the client write the file (psql: \\copy)",
            ));
        }
    }
    let query = match source {
        CopySource::Query(query) => query.clone(),
        CopySource::Table { table_name, columns } => {
            let projection = if columns.is_empty() { "*".to_string() } else { columns.iter().map(Ident::to_string).collect::<Vec<_>>().join(", ") };
            let sql = format!("SELECT {projection} FROM {table_name}");
            match datafusion::sql::sqlparser::parser::Parser::parse_sql(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {}, &sql) {
                Ok(mut statements) if statements.len() == 1 => match statements.remove(0) {
                    Statement::Query(query) => query,
                    _ => return Err(syntax("COPY's table could not be read as a query")),
                },
                _ => return Err(syntax("COPY's table could not be read as a query")),
            }
        }
    };
    Ok(Export { query, format: format_of(options, legacy)? })
}

/// The format from the options of `WITH (…)` (PostgreSQL 9.0+) or the older bare keywords
/// (`WITH BINARY`, `CSV HEADER`), checked as PostgreSQL checks them.
fn format_of(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<CopyFormat> {
    let mut kind = "text".to_string();
    let mut delimiter: Option<char> = None;
    let mut null: Option<String> = None;
    let mut header = false;
    let mut quote: Option<char> = None;
    let mut escape: Option<char> = None;
    let mut force_quote = ForceQuote::None;
    for option in options {
        match option {
            CopyOption::Format(name) => kind = name.value.to_ascii_lowercase(),
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            CopyOption::Null(text) => null = Some(text.clone()),
            CopyOption::Header(on) => header = *on,
            CopyOption::Quote(c) => quote = Some(*c),
            CopyOption::Escape(c) => escape = Some(*c),
            CopyOption::ForceQuote(columns) => force_quote = force_quote_of(columns),
            CopyOption::Encoding(name) => {
                let name = name.to_ascii_uppercase().replace(['-', '_'], "");
                if name != "UTF8" && name != "UNICODE" {
                    return Err(unsupported(format!("COPY exports UTF8 only, not ENCODING {name}")));
                }
            }
            CopyOption::Freeze(_) | CopyOption::ForceNotNull(_) | CopyOption::ForceNull(_) => {
                return Err(unsupported(format!("COPY option {option} applies to COPY … FROM only")));
            }
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => kind = "binary".into(),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Null(text) => null = Some(text.clone()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv) => {
                kind = "csv".into();
                for option in csv {
                    match option {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(*c),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                        CopyLegacyCsvOption::ForceQuote(columns) => force_quote = force_quote_of(columns),
                        CopyLegacyCsvOption::ForceNotNull(_) => return Err(unsupported("COPY option FORCE NOT NULL applies to COPY … FROM only".into())),
                    }
                }
            }
            other => return Err(unsupported(format!("COPY option {other} is not a PostgreSQL COPY … TO option"))),
        }
    }
    if let Some(d) = delimiter
        && (!d.is_ascii() || d == '\n' || d == '\r' || d == '\\')
    {
        return Err(unsupported(format!("COPY delimiter {d:?} is not allowed: use a single one-byte character other than newline, carriage return and backslash")));
    }
    match kind.as_str() {
        "binary" => {
            if delimiter.is_some() || null.is_some() || header || quote.is_some() || escape.is_some() || force_quote != ForceQuote::None {
                return Err(unsupported("COPY in BINARY format takes no DELIMITER, NULL, HEADER, QUOTE, ESCAPE or FORCE_QUOTE".into()));
            }
            Ok(CopyFormat::Binary)
        }
        "text" => {
            if quote.is_some() || escape.is_some() || force_quote != ForceQuote::None {
                return Err(unsupported("COPY's QUOTE, ESCAPE and FORCE_QUOTE are available only in CSV format".into()));
            }
            Ok(CopyFormat::Text { delimiter: delimiter.unwrap_or('\t'), null: null.unwrap_or_else(|| "\\N".into()), header })
        }
        "csv" => {
            let quote = quote.unwrap_or('"');
            if !quote.is_ascii() || escape.is_some_and(|e| !e.is_ascii()) {
                return Err(unsupported("COPY quote and escape must be one-byte characters".into()));
            }
            if delimiter == Some(quote) {
                return Err(unsupported("COPY delimiter and quote must be different".into()));
            }
            Ok(CopyFormat::Csv { delimiter: delimiter.unwrap_or(','), null: null.unwrap_or_default(), header, quote, escape: escape.unwrap_or(quote), force_quote })
        }
        other => Err(unsupported(format!("COPY format \"{other}\" not recognized; use text, csv or binary"))),
    }
}

fn force_quote_of(columns: &[Ident]) -> ForceQuote {
    if columns.len() == 1 && columns[0].value == "*" { ForceQuote::All } else { ForceQuote::Columns(columns.iter().map(|c| c.value.clone()).collect()) }
}

fn read_only(message: &str) -> PgWireError {
    user_error("ERROR", "25006", message.to_string())
}

fn unsupported(message: String) -> PgWireError {
    user_error("ERROR", "0A000", message)
}

fn syntax(message: &str) -> PgWireError {
    user_error("ERROR", "42601", message.to_string())
}

/// The export's query as a statement to plan.
pub(super) fn statement_of(export: &Export) -> Statement {
    Statement::Query(export.query.clone())
}

/// The PGCOPY binary file header: signature, flags, header-extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The `CopyData` rows of a result, in `format`: one message per row (plus the header line
/// of text or CSV with `HEADER`). The binary file header goes before the first row, or alone
/// when there is none; `CopyResponse` appends the binary trailer.
pub(super) fn encode<S>(schema: &datafusion::arrow::datatypes::Schema, batches: S, format: &CopyFormat) -> PgWireResult<(i8, usize, impl Stream<Item = PgWireResult<CopyData>> + Send + use<S>)>
where
    S: Stream<Item = PgWireResult<RecordBatch>> + Send + 'static,
{
    let wire = if *format == CopyFormat::Binary { Format::UnifiedBinary } else { Format::UnifiedText };
    let fields = Arc::new(arrow_schema_to_pg_fields(schema, &wire, None)?);
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let columns = fields.len();
    let (code, mut encoder, header) = match format {
        CopyFormat::Binary => (1, CopyEncoder::new_binary(Arc::clone(&fields)), None),
        CopyFormat::Text { delimiter, null, header } => {
            let options = CopyTextOptions { delimiter: delimiter.to_string().into(), null_string: null.as_str().into() };
            let line = header.then(|| text_header(&names, *delimiter));
            (0, CopyEncoder::new_text(Arc::clone(&fields), options), line)
        }
        CopyFormat::Csv { delimiter, null, header, quote, escape, force_quote } => {
            let force_quote = match force_quote {
                ForceQuote::None => Vec::new(),
                ForceQuote::All => (0..columns).collect(),
                ForceQuote::Columns(wanted) => {
                    let mut indexes = Vec::new();
                    for name in wanted {
                        match names.iter().position(|n| n == name) {
                            Some(i) => indexes.push(i),
                            None => return Err(user_error("ERROR", "42703", format!("FORCE_QUOTE column \"{name}\" is not in the COPY's result"))),
                        }
                    }
                    indexes
                }
            };
            let options = CopyCsvOptions {
                delimiter: delimiter.to_string().into(),
                quote: quote.to_string().into(),
                escape: escape.to_string().into(),
                null_string: null.as_str().into(),
                force_quote,
            };
            let line = header.then(|| csv_header(&names, *delimiter, *quote));
            (0, CopyEncoder::new_csv(Arc::clone(&fields), options), line)
        }
    };
    let binary = code == 1;
    let header = futures::stream::iter(header.map(|line| Ok(CopyData::new(line.into()))));
    let sent = Arc::new(AtomicBool::new(false));
    let any_row = Arc::clone(&sent);
    let rows = batches.flat_map(move |batch| {
        let encoded: Vec<PgWireResult<CopyData>> = match batch {
            Ok(batch) => encode_batch(&mut encoder, &fields, &batch),
            Err(e) => vec![Err(e)],
        };
        if !encoded.is_empty() {
            any_row.store(true, Ordering::Relaxed);
        }
        futures::stream::iter(encoded)
    });
    // A binary export with no rows still starts with the file header (the encoder writes it
    // with the first row).
    let empty_binary = futures::stream::once(async move { (binary && !sent.load(Ordering::Relaxed)).then(|| Ok(CopyData::new(Bytes::from_static(BINARY_HEADER)))) })
        .filter_map(futures::future::ready);
    Ok((code, columns, header.chain(rows).chain(empty_binary)))
}

/// The rows of one batch.
fn encode_batch(encoder: &mut CopyEncoder, fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Vec<PgWireResult<CopyData>> {
    let schema = batch.schema();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (column, array) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_value(encoder, array, row, schema.field(column), &fields[column]) {
                rows.push(Err(e));
                return rows;
            }
        }
        rows.push(Ok(Encoder::take_row(encoder)));
    }
    rows
}

fn text_header(names: &[String], delimiter: char) -> String {
    let mut line = names.join(&delimiter.to_string());
    line.push('\n');
    line
}

fn csv_header(names: &[String], delimiter: char, quote: char) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|name| {
            if name.contains(delimiter) || name.contains(quote) || name.contains('\n') || name.contains('\r') {
                let doubled = name.replace(quote, &format!("{quote}{quote}"));
                format!("{quote}{doubled}{quote}")
            } else {
                name.clone()
            }
        })
        .collect();
    let mut line = quoted.join(&delimiter.to_string());
    line.push('\n');
    line
}

