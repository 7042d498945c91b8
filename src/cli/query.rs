//! `salespulse query`: run one SQL query over a config's tenants or a storage root's
//! snapshots and print the result as a table, CSV or JSON lines.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::TryStreamExt;

use salespulse::catalog::{Catalog, TenantInfo, plan_query};
use salespulse_udfs::CalendarRegistry;
use salespulse_config::config::{Config, Limits, default_settings, is_valid_tenant_name, resolve_root};
use salespulse::snapshot::Store;

use super::{Format, info_of};

pub(super) async fn query(
    config_path: Option<&Path>,
    data: Option<&Path>,
    tenant: Option<&str>,
    calendars: Option<&Path>,
    format: Format,
    sql: &str,
) -> anyhow::Result<ExitCode> {
    let calendar_registry = match calendars {
        Some(path) => Some(Arc::new(CalendarRegistry::from_file(path)?)),
        None => None,
    };
    let (store, mut infos, limits) = match (config_path, data) {
        (Some(path), _) => {
            let config = Config::load(path)?;
            let infos = config.tenants.iter().map(info_of).collect();
            (Some(Store::open(&config.storage.root)?), infos, config.limits)
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                bail!("--data {}: no such folder; run `salespulse demo` first or point --data at a storage root", dir.display());
            }
            let infos = tenants_in_folder(dir)?;
            (Some(Store::open(&resolve_root(Path::new("."), &dir.to_string_lossy()))?), infos, Limits::default())
        }
        (None, None) => (None, Vec::new(), Limits::default()),
    };
    if let Some(t) = tenant
        && !infos.iter().any(|i| i.name == t)
    {
        let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
        bail!("--tenant {t}: no such tenant; available: {}", if names.is_empty() { "none".into() } else { names.join(", ") });
    }
    let store = match store {
        Some(s) => s,
        None => Store::open(&std::env::temp_dir().join("salespulse-empty").to_string_lossy())?,
    };
    if let Some(path) = calendars {
        for info in &mut infos {
            info.calendars = Some(path.to_path_buf());
        }
    }
    // A one-off query uses stored KPI tables but does not spend time building missing ones.
    let mut catalog = Catalog::new(store, infos.clone()).with_materialise(salespulse::catalog::kpi::Materialise::UseStored);
    if let Some(registry) = calendar_registry {
        catalog = catalog.with_fallback_calendars(registry);
    }
    for info in &infos {
        let state = catalog.load_tenant(&info.name).await?;
        if let Some(p) = &state.problem {
            eprintln!("warning: {p}");
        }
    }
    let ctx = catalog.session(tenant);
    let df = plan_query(&ctx, sql, salespulse::catalog::TextLimits::of(&limits), || catalog.missing_snapshot_hint()).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches: Vec<RecordBatch> = df.execute_stream().await?.try_collect().await?;
    print_result(format, schema, batches)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the result to standard output in `format`; an empty result still shows its
/// columns (the table's note, the CSV header).
fn print_result(format: Format, schema: SchemaRef, batches: Vec<RecordBatch>) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&batches)?;
            writeln!(out, "{table}")?;
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                writeln!(out, "(0 rows; columns: {})", names.join(", "))?;
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema))?;
            }
            for b in &batches {
                writer.write(b)?;
            }
        }
        Format::Json => {
            // Every column in every line, NULL as `null` (arrow leaves NULL keys out by
            // default; jq, pandas and other tools' JSON lines keep them).
            let mut writer = arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow::json::writer::LineDelimited>(&mut out);
            for b in &batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The tenants of a storage root: its sub-folders with a valid tenant name.
fn tenants_in_folder(dir: &Path) -> anyhow::Result<Vec<TenantInfo>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read --data {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && is_valid_tenant_name(&name) {
            out.push(TenantInfo {
                name,
                calendars: None,
                timezone: chrono_tz::UTC,
                settings: default_settings(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
