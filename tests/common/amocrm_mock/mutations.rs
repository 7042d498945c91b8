//! The edits tests make between syncs (leads edited, moved, added, deleted and restored;
//! tasks, notes, product links, contacts), each logging the event the account would log.

use serde_json::{Value, json};

use super::filters::plural;
use super::{ACCOUNT_ID, FIXTURE_HOST, LOST, MockState, PRODUCTS_CATALOG, WON};

fn find_mut(rows: &mut [Value], id: i64) -> Option<&mut Value> {
    rows.iter_mut().find(|r| r["id"].as_i64() == Some(id))
}

pub(super) fn self_link(path: &str) -> Value {
    json!({"self": {"href": format!("{FIXTURE_HOST}{path}")}})
}

/// `[{"lead_status": {"id", "pipeline_id"}}]`: value_before / value_after of a status change.
pub(super) fn lead_status(status_id: i64, pipeline_id: i64) -> Value {
    json!([{"lead_status": {"id": status_id, "pipeline_id": pipeline_id}}])
}

/// An event as `/api/v4/events` lists it; `entity` is (entity_type, entity_id) and `values`
/// (value_before, value_after).
pub(super) fn event(id: String, kind: &str, entity: (&str, i64), created_by: i64, created_at: i64, values: (Value, Value)) -> Value {
    let (entity_type, entity_id) = entity;
    json!({
        "id": id,
        "type": kind,
        "entity_id": entity_id,
        "entity_type": entity_type,
        "created_by": created_by,
        "created_at": created_at,
        "value_after": values.1,
        "value_before": values.0,
        "account_id": ACCOUNT_ID,
        "_links": self_link(&format!("/api/v4/events/{id}")),
        "_embedded": {"entity": {"id": entity_id, "_links": self_link(&format!("/api/v4/{}/{entity_id}", plural(entity_type)))}},
    })
}

impl MockState {
    /// Applies `f` to lead `id`, sets `updated_at = at`, and logs a `sale_field_changed`
    /// event (value_before/value_after `[{"sale_field_value": {"sale": price}}]`, by the
    /// lead's `updated_by`). Panics when there is no such lead.
    pub fn edit_lead(&self, id: i64, at: i64, f: impl FnOnce(&mut Value)) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let lead = find_mut(&mut data.leads, id).unwrap_or_else(|| panic!("edit_lead: no lead {id}"));
        let before = lead["price"].clone();
        f(lead);
        lead["updated_at"] = json!(at);
        let after = lead["price"].clone();
        let by = lead["updated_by"].as_i64().unwrap_or(0);
        let values = (json!([{"sale_field_value": {"sale": before}}]), json!([{"sale_field_value": {"sale": after}}]));
        data.events.push(event(event_id, "sale_field_changed", ("lead", id), by, at, values));
    }

    /// Moves lead `id` to (pipeline_id, status_id): `updated_at = at`, `updated_by = by`,
    /// `closed_at = at` for 142/143 (null otherwise); logs a `lead_status_changed` event.
    pub fn move_lead(&self, id: i64, pipeline_id: i64, status_id: i64, at: i64, by: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let lead = find_mut(&mut data.leads, id).unwrap_or_else(|| panic!("move_lead: no lead {id}"));
        let before = lead_status(lead["status_id"].as_i64().unwrap_or(0), lead["pipeline_id"].as_i64().unwrap_or(0));
        lead["status_id"] = json!(status_id);
        lead["pipeline_id"] = json!(pipeline_id);
        lead["updated_at"] = json!(at);
        lead["updated_by"] = json!(by);
        lead["closed_at"] = if status_id == WON || status_id == LOST { json!(at) } else { Value::Null };
        let after = lead_status(status_id, pipeline_id);
        data.events.push(event(event_id, "lead_status_changed", ("lead", id), by, at, (before, after)));
    }

    /// Adds `lead` with `created_at = updated_at = at`; logs a `lead_added` event (by its
    /// `created_by`; value_before `[]`, value_after its `lead_status`).
    pub fn add_lead(&self, mut lead: Value, at: i64) {
        let event_id = self.next_event_id();
        lead["created_at"] = json!(at);
        lead["updated_at"] = json!(at);
        let id = lead["id"].as_i64().expect("add_lead: the lead needs an id");
        let by = lead["created_by"].as_i64().unwrap_or(0);
        let after = match (lead["status_id"].as_i64(), lead["pipeline_id"].as_i64()) {
            (Some(s), Some(p)) => lead_status(s, p),
            _ => json!([]),
        };
        let mut data = self.data.lock().unwrap();
        assert!(!data.leads.iter().any(|l| l["id"].as_i64() == Some(id)), "add_lead: lead {id} exists");
        data.leads.push(lead);
        data.events.push(event(event_id, "lead_added", ("lead", id), by, at, (json!([]), after)));
    }

    /// Moves lead `id` to the trash (id, `updated_at = at`, its `updated_by`, is_deleted),
    /// logs a `lead_deleted` event and drops its notes and its tasks.
    pub fn delete_lead(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.leads.iter().position(|l| l["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("delete_lead: no lead {id}"));
        let lead = data.leads.remove(i);
        let by = lead["updated_by"].as_i64().unwrap_or(0);
        data.trash.push(json!({
            "id": id,
            "updated_at": at,
            "updated_by": by,
            "is_deleted": true,
            "account_id": ACCOUNT_ID,
            "_links": self_link(&format!("/api/v4/leads/{id}")),
        }));
        let notes: Vec<Value> = data.notes.iter().filter(|(e, n)| e == "leads" && n["entity_id"].as_i64() == Some(id)).map(|(e, n)| json!([e, n])).collect();
        let tasks: Vec<Value> = data.tasks.iter().filter(|t| t["entity_type"] == "leads" && t["entity_id"].as_i64() == Some(id)).cloned().collect();
        data.trashed.push(json!({"lead": lead, "notes": notes, "tasks": tasks}));
        data.notes.retain(|(e, n)| !(e == "leads" && n["entity_id"].as_i64() == Some(id)));
        data.tasks.retain(|t| !(t["entity_type"] == "leads" && t["entity_id"].as_i64() == Some(id)));
        data.events.push(event(event_id, "lead_deleted", ("lead", id), by, at, (json!([]), json!([]))));
    }

    /// Restores lead `id` from the trash with its notes and tasks, as they were (its
    /// `updated_at` unchanged: nothing in it changed), and logs a `lead_restored` event.
    pub fn restore_lead(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.trashed.iter().position(|t| t["lead"]["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("restore_lead: lead {id} is not in the trash"));
        let trashed = data.trashed.remove(i);
        data.trash.retain(|t| t["id"].as_i64() != Some(id));
        let by = trashed["lead"]["updated_by"].as_i64().unwrap_or(0);
        data.leads.push(trashed["lead"].clone());
        data.leads.sort_by_key(|l| l["id"].as_i64());
        for n in trashed["notes"].as_array().unwrap() {
            data.notes.push((n[0].as_str().unwrap().to_string(), n[1].clone()));
        }
        data.tasks.extend(trashed["tasks"].as_array().unwrap().iter().cloned());
        data.events.push(event(event_id, "lead_restored", ("lead", id), by, at, (json!([]), json!([]))));
    }

    /// Adds `task` with `created_at = updated_at = at` and logs `task_added`.
    pub fn add_task(&self, mut task: Value, at: i64) {
        let event_id = self.next_event_id();
        task["created_at"] = json!(at);
        task["updated_at"] = json!(at);
        let id = task["id"].as_i64().expect("add_task: the task needs an id");
        let by = task["created_by"].as_i64().unwrap_or(0);
        let mut data = self.data.lock().unwrap();
        data.tasks.push(task);
        data.events.push(event(event_id, "task_added", ("task", id), by, at, (json!([]), json!([]))));
    }

    /// Applies `f` to task `id` and sets `updated_at = at` (a completion also logs
    /// `task_completed`).
    pub fn edit_task(&self, id: i64, at: i64, f: impl FnOnce(&mut Value)) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let task = find_mut(&mut data.tasks, id).unwrap_or_else(|| panic!("edit_task: no task {id}"));
        let was_done = task["is_completed"] == json!(true);
        f(task);
        task["updated_at"] = json!(at);
        let (done, by) = (task["is_completed"] == json!(true), task["updated_by"].as_i64().unwrap_or(0));
        if done && !was_done {
            data.events.push(event(event_id, "task_completed", ("task", id), by, at, (json!([]), json!([]))));
        }
    }

    /// Links catalog element `element` to lead `id` with `quantity` (or unlinks it when
    /// `quantity` is `None`), logging `entity_linked`/`entity_unlinked` on the lead; the
    /// lead's `updated_at` stays (A-EVENTS-9).
    pub fn link_product(&self, id: i64, element: i64, quantity: Option<f64>, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let lead = find_mut(&mut data.leads, id).unwrap_or_else(|| panic!("link_product: no lead {id}"));
        let by = lead["updated_by"].as_i64().unwrap_or(0);
        let mut links = lead["_embedded"]["catalog_elements"].as_array().cloned().unwrap_or_default();
        links.retain(|l| l["id"].as_i64() != Some(element));
        if let Some(q) = quantity {
            links.push(json!({"id": element, "metadata": {"quantity": q, "catalog_id": PRODUCTS_CATALOG}}));
        }
        lead["_embedded"]["catalog_elements"] = json!(links);
        let link = json!([{"link": {"entity": {"type": "catalog_elements", "id": element}}}]);
        let (kind, values) = if quantity.is_some() { ("entity_linked", (json!([]), link)) } else { ("entity_unlinked", (link, json!([]))) };
        data.events.push(event(event_id, kind, ("lead", id), by, at, values));
    }

    /// Deletes task `id` (tasks have no trash) and logs `task_deleted`.
    pub fn delete_task(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.tasks.iter().position(|t| t["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("delete_task: no task {id}"));
        let task = data.tasks.remove(i);
        let by = task["updated_by"].as_i64().unwrap_or(0);
        data.events.push(event(event_id, "task_deleted", ("task", id), by, at, (json!([]), json!([]))));
    }

    /// Adds `note` to the notes of `entity` ("leads" | "contacts" | "companies") with
    /// `created_at = updated_at = at`.
    pub fn add_note(&self, entity: &str, mut note: Value, at: i64) {
        assert!(["leads", "contacts", "companies"].contains(&entity), "add_note: entity {entity}");
        note["created_at"] = json!(at);
        note["updated_at"] = json!(at);
        self.data.lock().unwrap().notes.push((entity.to_string(), note));
    }

    /// Applies `f` to contact `id` and sets `updated_at = at` (no event).
    pub fn edit_contact(&self, id: i64, at: i64, f: impl FnOnce(&mut Value)) {
        let mut data = self.data.lock().unwrap();
        let contact = find_mut(&mut data.contacts, id).unwrap_or_else(|| panic!("edit_contact: no contact {id}"));
        f(contact);
        contact["updated_at"] = json!(at);
    }

    /// Deletes contact `id`: logs a `contact_deleted` event (by its `updated_by`), drops its
    /// notes and tasks, and unlinks it from the leads' `_embedded.contacts` (their
    /// `updated_at` unchanged).
    pub fn delete_contact(&self, id: i64, at: i64) {
        let event_id = self.next_event_id();
        let mut data = self.data.lock().unwrap();
        let i = data.contacts.iter().position(|c| c["id"].as_i64() == Some(id)).unwrap_or_else(|| panic!("delete_contact: no contact {id}"));
        let contact = data.contacts.remove(i);
        let by = contact["updated_by"].as_i64().unwrap_or(0);
        data.notes.retain(|(e, n)| !(e == "contacts" && n["entity_id"].as_i64() == Some(id)));
        data.tasks.retain(|t| !(t["entity_type"] == "contacts" && t["entity_id"].as_i64() == Some(id)));
        for lead in &mut data.leads {
            if let Some(Value::Array(links)) = lead.pointer_mut("/_embedded/contacts") {
                links.retain(|c| c["id"].as_i64() != Some(id));
            }
        }
        data.events.push(event(event_id, "contact_deleted", ("contact", id), by, at, (json!([]), json!([]))));
    }
}
