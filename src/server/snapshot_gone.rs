//! A query whose snapshot was deleted under it: planned on a snapshot that retention (or
//! someone) removed before its scan opened a file, it fails on its first batch with the
//! store's "not found". Before any row went to the client, the front ends run it once more
//! on the snapshot `CURRENT` names now ([`execute_following`]): the tenant whose file was
//! gone is reloaded, and the same plan (the session's settings, parameters and all) is
//! executed again with each of its tables read from the tenant's current snapshot. With a
//! valid config this is rare: retention keeps a replaced snapshot longer than a follow round
//! plus the longest query.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use futures::stream::{self, BoxStream};
use futures::StreamExt;

use crate::catalog::Catalog;

/// Executes `df`; if its first batch fails because a snapshot file of one of `tenants` is
/// gone, reloads that tenant and executes the same plan once more on its current snapshot.
///
/// # Errors
/// The plan cannot be executed.
pub async fn execute_following(df: DataFrame, catalog: Arc<Catalog>, tenants: Vec<String>) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    // As `DataFrame::execute_stream`, but keeping the state and plan (no copy) for the retry.
    let (state, plan) = df.into_parts();
    let physical = state.create_physical_plan(&plan).await?;
    let first = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
    let defaults = state.config_options().catalog.clone();
    Ok(retried_if_snapshot_gone(first, tenants, move |tenant| async move {
        catalog.follow_tenant(&tenant).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        let plan = rebind(plan, &catalog, &defaults.default_catalog, &defaults.default_schema).await?;
        DataFrame::new(state, plan).execute_stream().await
    }))
}

/// `plan` with every table it scans (subqueries included) read from what the catalog
/// serves now; tables the catalog does not serve (`pg_catalog`, …) stay as they are.
async fn rebind(plan: LogicalPlan, catalog: &Catalog, default_catalog: &str, default_schema: &str) -> Result<LogicalPlan> {
    let mut names: Vec<TableReference> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            names.push(scan.table_name.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let mut current = HashMap::new();
    for name in names {
        let resolved = name.clone().resolve(default_catalog, default_schema);
        if let Some(table) = catalog.current_table(&resolved.catalog, &resolved.schema, &resolved.table).await {
            current.insert(name, table);
        }
    }
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(mut scan) => match current.get(&scan.table_name) {
            Some(table) => {
                scan.source = provider_as_source(Arc::clone(table));
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
        },
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// The tenant whose snapshot file `e` says is gone, if that is what `e` says.
pub fn gone_snapshot_tenant(e: &DataFusionError, tenants: &[String]) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut not_found = false;
    while let Some(err) = source {
        if let Some(object_store::Error::NotFound { .. }) = err.downcast_ref::<object_store::Error>() {
            not_found = true;
        }
        source = err.source();
    }
    let text = e.to_string();
    if !not_found && !text.contains("not found") {
        return None;
    }
    // `…/<tenant>/snapshots/<id>/<table>/part-00000.parquet`: the segment before `snapshots`.
    let before = &text[..text.find("/snapshots/")?];
    let tenant = before.rsplit(['/', ' ', '\'', '"', '`']).next()?;
    tenants.iter().find(|t| t.as_str() == tenant).cloned()
}

/// `first`'s batches; when its first item is the error of a gone snapshot file of one of
/// `tenants`, the batches of `again(tenant)` instead (run once).
fn retried_if_snapshot_gone<F, Fut>(first: SendableRecordBatchStream, tenants: Vec<String>, again: F) -> BoxStream<'static, Result<RecordBatch>>
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<SendableRecordBatchStream>> + Send + 'static,
{
    stream::once(async move {
        let mut first = first;
        match first.next().await {
            Some(Err(e)) => match gone_snapshot_tenant(&e, &tenants) {
                Some(tenant) => {
                    tracing::warn!(%tenant, "{e}; the query runs again on the current snapshot");
                    match again(tenant).await {
                        Ok(rows) => rows.boxed(),
                        Err(e) => stream::iter([Err(e)]).boxed(),
                    }
                }
                None => stream::iter([Err(e)]).boxed(),
            },
            Some(Ok(batch)) => stream::iter([Ok(batch)]).chain(first).boxed(),
            None => stream::empty().boxed(),
        }
    })
    .flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_its_tenant() {
        let tenants = vec!["acme".to_string(), "beta".to_string()];
        let gone = DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "/data/acme/snapshots/20261207T000000000Z-1a2b/calls/part-00000.parquet".into(),
            source: "No such file or directory".into(),
        }));
        assert_eq!(gone_snapshot_tenant(&gone, &tenants).as_deref(), Some("acme"));
        let other = DataFusionError::Execution("division by zero".into());
        assert_eq!(gone_snapshot_tenant(&other, &tenants), None);
        let unknown = DataFusionError::ObjectStore(Box::new(object_store::Error::NotFound {
            path: "/data/zeta/snapshots/x/calls/part-00000.parquet".into(),
            source: "No such file or directory".into(),
        }));
        assert_eq!(gone_snapshot_tenant(&unknown, &tenants), None);
    }
}
