//! Many lists in one `batch`: the first page of each list of a sync (`first_pages`), and every
//! page of many small lists of one method (`list_many`).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::answers::{ErrorKind, error_of, shape};
use super::paging::{compare_ids, last_id, list_name};
use super::query::{command_query, command_query_counted, percent};
use super::{BATCH, Client, FirstPage, ListSpec, PAGE, as_u64};
use crate::connectors::bitrix24::Bitrix24Error;

impl Client {
    /// The first page of each list (with the portal's count, or after its cursor) in one
    /// `batch`, so a sync does not spend a request per list on 50 rows. A list whose
    /// command failed with a passing error gets its first page by a direct call.
    pub(in crate::connectors::bitrix24) async fn first_pages(&self, specs: &[&ListSpec]) -> Result<Vec<FirstPage>, Bitrix24Error> {
        let mut out = Vec::with_capacity(specs.len());
        for group in specs.chunks(BATCH) {
            let names: Vec<String> = (0..group.len()).map(|i| format!("c{i:02}")).collect();
            let mut cmd = Map::new();
            for (name, spec) in names.iter().zip(group) {
                let query = match &spec.start_after {
                    Some(after) => command_query(spec, &percent(after)),
                    None => command_query_counted(spec),
                };
                cmd.insert(name.clone(), Value::String(format!("{}?{query}", spec.method)));
            }
            let answer = self.call("batch", &json!({"halt": 0, "cmd": cmd})).await?;
            self.note_command_times(&answer.result, names.iter().map(String::as_str).zip(group.iter().map(|s| s.method)));
            for (name, spec) in names.iter().zip(group) {
                if let Some(e) = answer.result.get("result_error").and_then(|e| e.get(name)) {
                    let (code, description) = error_of(e);
                    if let ErrorKind::Final(message) = self.classify(spec.method, &code, &description, 200) {
                        return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", spec.method), message });
                    }
                }
                let page = answer.result.pointer(&format!("/result/{name}")).and_then(|r| spec.rows(r)).cloned();
                let total = answer.result.pointer(&format!("/result_total/{name}")).and_then(as_u64);
                match page {
                    Some(rows) => out.push(FirstPage { rows, total }),
                    None => {
                        let first = self.call(spec.method, &self.direct_body(spec, spec.start_after.as_deref())).await?;
                        let rows = spec.rows(&first.result).ok_or_else(|| shape(spec.method, "the result is not a list"))?.clone();
                        out.push(FirstPage { rows, total: first.total });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every row of many small lists of one method (product rows by `=ownerId` arrays of
    /// deal ids): each round packs the next keyset page of up to 50 unfinished lists into
    /// one `batch`, so the request count is ⌈pages / 50⌉ (a list whose page is full gets
    /// another page in the next round). Rows come back in list order, then id order.
    pub(in crate::connectors::bitrix24) async fn list_many(&self, specs: &[ListSpec]) -> Result<Vec<Value>, Bitrix24Error> {
        let Some(first) = specs.first() else { return Ok(Vec::new()) };
        let list = list_name(first);
        self.progress.list_started(&list, None);
        let mut rows: Vec<Vec<Value>> = vec![Vec::new(); specs.len()];
        // (list, last id read): the lists still to read.
        let mut pending: std::collections::VecDeque<(usize, String)> = (0..specs.len()).map(|i| (i, "0".to_string())).collect();
        let mut stalled = 0u32;
        while !pending.is_empty() {
            let round: Vec<(usize, String)> = pending.drain(..pending.len().min(BATCH)).collect();
            let names: Vec<String> = (0..round.len()).map(|i| format!("c{i:02}")).collect();
            let mut cmd = Map::new();
            for (name, (i, after)) in names.iter().zip(&round) {
                let spec = &specs[*i];
                cmd.insert(name.clone(), Value::String(format!("{}?{}", spec.method, command_query(spec, &percent(after)))));
            }
            let answer = self.call("batch", &json!({"halt": 0, "cmd": cmd})).await?;
            self.note_command_times(&answer.result, names.iter().map(|n| (n.as_str(), first.method)));
            let mut served = 0;
            let mut passing: Option<(String, String)> = None;
            let mut operating_spent = false;
            for (name, (i, after)) in names.iter().zip(round) {
                let spec = &specs[i];
                if let Some(e) = answer.result.get("result_error").and_then(|e| e.get(name)) {
                    let (code, description) = error_of(e);
                    match self.classify(spec.method, &code, &description, 200) {
                        ErrorKind::Final(message) => return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", spec.method), message }),
                        kind => {
                            operating_spent |= matches!(kind, ErrorKind::OperatingLimit);
                            passing.get_or_insert((code, description));
                            pending.push_back((i, after));
                            continue;
                        }
                    }
                }
                let Some(page) = answer.result.pointer(&format!("/result/{name}")).and_then(|r| spec.rows(r)) else {
                    return Err(shape(spec.method, "a batch command answered neither a list nor an error"));
                };
                served += 1;
                self.progress.page_read(&list, page.len() as u64);
                if page.len() >= PAGE {
                    let last = last_id(spec, page)?;
                    if compare_ids(&last, &after) != std::cmp::Ordering::Greater {
                        return Err(shape(spec.method, "a page did not continue the id order"));
                    }
                    pending.push_back((i, last));
                }
                rows[i].extend(page.iter().cloned());
            }
            if operating_spent {
                // The method's time budget is spent: wait until the portal frees it (a
                // wait, not a failure; `until_reset` is at most 15 minutes).
                tokio::time::sleep(self.until_reset(first.method).unwrap_or(Duration::from_secs(5))).await;
            } else if served == 0 {
                // Every command failed with a passing error: wait as the portal asks, a
                // bounded number of times (the polite client retries the request itself).
                stalled += 1;
                let (code, description) = passing.unwrap_or_default();
                if stalled > 5 {
                    return Err(Bitrix24Error::Refused { what: format!("Bitrix24 {}", first.method), message: format!("every command failed 5 rounds in a row: {code} {description}") });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            } else {
                stalled = 0;
            }
        }
        self.progress.list_finished(&list);
        Ok(rows.into_iter().flatten().collect())
    }
}
