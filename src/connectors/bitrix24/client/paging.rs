//! Reading one list: plain `start` paging for small lists (`list_paged`), keyset chains in
//! `batch` for large ones (`list_all`, `list_rest`); and the ids that keep the keyset order.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::answers::{ErrorKind, error_of, shape};
use super::query::{command_query, percent};
use super::{BATCH, Client, FirstPage, ListSpec, PAGE};
use crate::connectors::bitrix24::Bitrix24Error;

impl Client {
    /// Every row of a small list through plain `start` paging (departments, statuses,
    /// pipelines, currencies).
    pub(in crate::connectors::bitrix24) async fn list_paged(&self, method: &'static str, root: Option<&'static str>, params: Value) -> Result<Vec<Value>, Bitrix24Error> {
        let spec = ListSpec { method, root, id_field: "ID", keyset_key: "", filter_param: "", filter: Map::new(), params: Map::new(), start_after: None };
        let list = list_name(&spec);
        let mut rows = Vec::new();
        let mut start = 0u64;
        loop {
            let mut body = params.clone();
            if let Some(obj) = body.as_object_mut() {
                obj.insert("start".into(), json!(start));
            }
            let page = self.call(method, &body).await?;
            if start == 0 {
                self.progress.list_started(&list, page.total);
            }
            let got = spec.rows(&page.result).ok_or_else(|| shape(method, "the result is not a list"))?;
            rows.extend(got.iter().cloned());
            self.progress.page_read(&list, got.len() as u64);
            match page.next {
                Some(next) if next > start && !got.is_empty() => start = next,
                _ => {
                    self.progress.list_finished(&list);
                    return Ok(rows);
                }
            }
        }
    }

    /// Every row of a large list, by keyset chains in `batch`.
    pub(in crate::connectors::bitrix24) async fn list_all(&self, spec: &ListSpec) -> Result<Vec<Value>, Bitrix24Error> {
        let first = self.call(spec.method, &self.direct_body(spec, spec.start_after.as_deref())).await?;
        let rows = spec.rows(&first.result).ok_or_else(|| shape(spec.method, "the result is not a list"))?.clone();
        self.list_rest(spec, FirstPage { rows, total: first.total }).await
    }

    /// The rest of a list after its first page.
    pub(in crate::connectors::bitrix24) async fn list_rest(&self, spec: &ListSpec, first: FirstPage) -> Result<Vec<Value>, Bitrix24Error> {
        let FirstPage { rows, total } = first;
        let list = list_name(spec);
        self.progress.list_started(&list, total.filter(|_| spec.start_after.is_none()));
        self.progress.page_read(&list, rows.len() as u64);
        let rows = self.read_rest(spec, rows, total, &list).await?;
        self.progress.list_finished(&list);
        Ok(rows)
    }

    async fn read_rest(&self, spec: &ListSpec, mut rows: Vec<Value>, total: Option<u64>, list: &str) -> Result<Vec<Value>, Bitrix24Error> {
        // The count sizes the batches (a pull after a cursor has none: batches then grow
        // while every page is full).
        if rows.len() < PAGE {
            return Ok(rows);
        }
        let mut last = last_id(spec, &rows)?;
        let counted = spec.start_after.is_none() && total.is_some_and(|t| t > 0);
        // Pages still to read by the count; rows added meanwhile are read by later batches.
        let mut pages_left = if counted { (total.unwrap_or(0) as usize).saturating_sub(rows.len()).div_ceil(PAGE).max(1) } else { 2 };
        loop {
            let commands = pages_left.clamp(1, BATCH);
            let (pages, errors) = self.batch(spec, &last, commands).await?;
            let before = rows.len();
            let mut finished = false;
            let mut read = 0;
            for page in pages {
                let Some(page) = page else { break };
                let first_id = page.first().map(|r| id_of(spec, r)).transpose()?;
                // A page must continue the keyset; anything else (an unresolved reference)
                // ends this batch and the next one restarts from the last good id.
                if first_id.is_some_and(|id| compare_ids(&id, &last) != std::cmp::Ordering::Greater) {
                    break;
                }
                read += 1;
                let short = page.len() < PAGE;
                if let Some(row) = page.last() {
                    last = id_of(spec, row)?;
                }
                rows.extend(page);
                if short {
                    finished = true;
                    break;
                }
            }
            self.progress.page_read(list, (rows.len() - before) as u64);
            // The count is reached: rows added since are the next incremental pull's.
            if finished || (counted && rows.len() as u64 >= total.unwrap_or(u64::MAX)) {
                return Ok(rows);
            }
            if read == 0 {
                // The first command failed: say why, or retry after a pause when passing.
                match errors {
                    Some((code, description)) => match self.classify(spec.method, &code, &description, 200) {
                        ErrorKind::Final(message) => return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", spec.method), message }),
                        ErrorKind::OperatingLimit => tokio::time::sleep(self.until_reset(spec.method).unwrap_or(Duration::from_secs(5))).await,
                        ErrorKind::Passing | ErrorKind::Expired => tokio::time::sleep(Duration::from_secs(2)).await,
                    },
                    None => return Err(shape(spec.method, "a batch page did not continue the ID order")),
                }
            }
            pages_left = if counted { pages_left.saturating_sub(read).max(1) } else if read == commands { (commands * 2).min(BATCH) } else { commands };
        }
    }

    /// The body of one direct list call: the keyset filter after `after` (none for the
    /// first page, which also returns the count).
    pub(super) fn direct_body(&self, spec: &ListSpec, after: Option<&str>) -> Value {
        let mut body = spec.params.clone();
        let mut filter = spec.filter.clone();
        if let Some(after) = after {
            filter.insert(spec.keyset_key.into(), json!(after));
        }
        body.insert(spec.filter_param.into(), Value::Object(filter));
        body.insert("start".into(), json!(if after.is_some() { -1 } else { 0 }));
        Value::Object(body)
    }

    /// One `batch` of `commands` chained keyset pages after `last`. Returns the pages in
    /// order (`None` from the first failed command on) and the first command error.
    async fn batch(&self, spec: &ListSpec, last: &str, commands: usize) -> Result<(Vec<Option<Vec<Value>>>, Option<(String, String)>), Bitrix24Error> {
        let mut cmd = Map::new();
        let names: Vec<String> = (0..commands).map(|i| format!("c{i:02}")).collect();
        for (i, name) in names.iter().enumerate() {
            let after = if i == 0 {
                percent(last)
            } else {
                let root = spec.root.map(|r| format!("[{r}]")).unwrap_or_default();
                format!("$result[{}]{root}[{}][{}]", names[i - 1], PAGE - 1, spec.id_field)
            };
            cmd.insert(name.clone(), Value::String(format!("{}?{}", spec.method, command_query(spec, &after))));
        }
        let answer = self.call("batch", &json!({"halt": 0, "cmd": cmd})).await?;
        self.note_command_times(&answer.result, names.iter().map(|n| (n.as_str(), spec.method)));
        let results = answer.result.get("result");
        let errors = answer.result.get("result_error").and_then(Value::as_object);
        let mut pages = Vec::with_capacity(commands);
        let mut first_error = None;
        let mut failed = false;
        for name in &names {
            if let Some(e) = errors.and_then(|e| e.get(name)) {
                first_error.get_or_insert_with(|| error_of(e));
                failed = true;
            }
            let page = if failed { None } else { results.and_then(|r| r.get(name)).and_then(|r| spec.rows(r)).cloned() };
            failed |= page.is_none();
            pages.push(page);
        }
        Ok((pages, first_error))
    }
}

/// A row's id as text (ids are strings in crm.*.list and numbers elsewhere).
pub(super) fn id_of(spec: &ListSpec, row: &Value) -> Result<String, Bitrix24Error> {
    match row.get(spec.id_field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(shape(spec.method, &format!("a row has no {}", spec.id_field))),
    }
}

pub(super) fn last_id(spec: &ListSpec, rows: &[Value]) -> Result<String, Bitrix24Error> {
    rows.last().map(|r| id_of(spec, r)).transpose()?.ok_or_else(|| shape(spec.method, "an empty page"))
}

/// Numeric ids compare as numbers.
pub(super) fn compare_ids(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

/// What a list holds, for progress: the entity, not the method.
pub(super) fn list_name(spec: &ListSpec) -> String {
    let entity = match spec.method {
        "crm.deal.list" => "deals",
        "crm.lead.list" => "leads",
        "crm.contact.list" => "contacts",
        "crm.company.list" => "companies",
        "crm.activity.list" => "activities",
        "tasks.task.list" => "tasks",
        "crm.stagehistory.list" if spec.params.get("entityTypeId") == Some(&json!(1)) => "lead status history",
        "crm.stagehistory.list" => "deal stage history",
        "voximplant.statistic.get" => "calls",
        "user.get" => "users",
        "crm.item.productrow.list" => "product rows",
        "department.get" => "departments",
        "crm.category.list" => "pipelines",
        "crm.status.list" => "stages and sources",
        "crm.currency.list" => "currencies",
        other => other,
    };
    let ids_only = spec.params.get("select").and_then(Value::as_array).is_some_and(|s| s.len() == 1 && s[0] == "ID");
    if ids_only { format!("{entity} (ids, for deletions)") } else { entity.to_string() }
}

#[cfg(test)]
mod tests {
    use super::super::answers::scope_of;
    use super::*;

    #[test]
    fn ids_compare_as_numbers() {
        assert_eq!(compare_ids("1000", "999"), std::cmp::Ordering::Greater);
        assert_eq!(scope_of("voximplant.statistic.get"), "telephony");
    }
}
