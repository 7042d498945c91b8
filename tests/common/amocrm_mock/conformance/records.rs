//! The account's records: the edits tests make show up in lists and events, and generated
//! accounts are consistent and deterministic.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::mutations::lead_status;
use super::*;

/// A-EVENTS-4, A-EVENTS-6, A-EVENTS-9: restores, task deletions and links log their events
/// with the documented values; a restored lead keeps its `updated_at`.
#[tokio::test]
async fn conformance_restore_task_and_link_events() {
    let data = MockData::generated(30);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let s = &mock.state;
    let (lead, task) = (data.leads[3]["id"].as_i64().unwrap(), data.tasks[0]["id"].as_i64().unwrap());
    let t = 1_800_000_000;
    s.delete_lead(lead, t);
    assert_eq!(api.get(&format!("/api/v4/leads/{lead}")).await.status, 204);
    s.restore_lead(lead, t + 10);
    assert_eq!(api.ok(&format!("/api/v4/leads/{lead}")).await["updated_at"], data.leads[3]["updated_at"]);
    s.delete_task(task, t + 20);
    s.link_product(lead, 900_001, Some(2.0), t + 30);
    let events = api.rows(&format!("/api/v4/events?filter[created_at][from]={t}&limit=100"), "events").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for kind in ["lead_deleted", "lead_restored", "task_deleted", "entity_linked"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    for e in &events {
        match e["type"].as_str().unwrap() {
            "lead_deleted" | "lead_restored" | "task_deleted" => assert_eq!((&e["value_before"], &e["value_after"]), (&json!([]), &json!([]))),
            "entity_linked" => assert_eq!(e["value_after"][0]["link"]["entity"], json!({"type": "catalog_elements", "id": 900_001})),
            _ => {}
        }
    }
}

#[tokio::test]
async fn mutations_show_up_in_lists_and_events() {
    let data = MockData::generated(40);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let s = &mock.state;
    let t = GENERATED_END + 3600;
    let lead = |i: usize| data.leads[i]["id"].as_i64().unwrap();
    let since = |at: i64| format!("/api/v4/leads?filter[updated_at][from]={at}&order[updated_at]=asc");
    let events_since = |at: i64| format!("/api/v4/events?filter[created_at][from]={at}&limit=100");
    assert_eq!(api.get(&since(GENERATED_END)).await.status, 204);

    s.edit_lead(lead(0), t, |l| l["price"] = json!(777));
    let open = 1 + data.leads[1..].iter().position(|l| l["closed_at"].is_null()).unwrap();
    let (pipeline, before) = (data.leads[open]["pipeline_id"].as_i64().unwrap(), data.leads[open]["status_id"].as_i64().unwrap());
    s.move_lead(lead(open), pipeline, WON, t + 10, 5_701_102);
    let mut new = data.leads[1].clone();
    new["id"] = json!(39_000_000);
    s.add_lead(new, t + 20);

    let changed = api.rows(&since(t), "leads").await;
    assert_eq!(ids(&changed), [lead(0), lead(open), 39_000_000]);
    assert_eq!((changed[0]["price"].as_i64(), changed[0]["updated_at"].as_i64()), (Some(777), Some(t)));
    assert_eq!(
        (changed[1]["status_id"].as_i64(), changed[1]["closed_at"].as_i64(), changed[1]["updated_by"].as_i64()),
        (Some(WON), Some(t + 10), Some(5_701_102))
    );
    assert_eq!((changed[2]["created_at"].as_i64(), changed[2]["updated_at"].as_i64()), (Some(t + 20), Some(t + 20)));

    let events = api.rows(&events_since(t), "events").await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["lead_added", "lead_status_changed", "sale_field_changed"]);
    assert_eq!(events[1]["value_before"], lead_status(before, pipeline));
    assert_eq!(events[1]["value_after"], lead_status(WON, pipeline));
    assert_eq!((events[1]["created_by"].as_i64(), events[1]["created_at"].as_i64()), (Some(5_701_102), Some(t + 10)));
    assert_eq!(events[2]["value_after"], json!([{"sale_field_value": {"sale": 777}}]));

    // Delete: into the trash, with an event; its notes and tasks go.
    let gone = lead(5);
    assert!(!api.rows(&format!("/api/v4/leads/notes?filter[entity_id][]={gone}"), "notes").await.is_empty());
    s.delete_lead(gone, t + 30);
    assert_eq!(api.get(&format!("/api/v4/leads?filter[id]={gone}")).await.status, 204);
    let trash = api.rows("/api/v4/leads?with=only_deleted", "leads").await;
    assert_eq!(trash.len(), 1);
    assert_eq!((trash[0]["id"].as_i64(), trash[0]["updated_at"].as_i64(), trash[0]["is_deleted"].as_bool()), (Some(gone), Some(t + 30), Some(true)));
    assert_eq!(api.get(&format!("/api/v4/leads/notes?filter[entity_id][]={gone}")).await.status, 204);
    assert_eq!(api.get(&format!("/api/v4/tasks?filter[entity_id]={gone}")).await.status, 204);
    let deleted = api.rows("/api/v4/events?filter[type][]=lead_deleted&filter[type][]=contact_deleted", "events").await;
    assert_eq!((deleted.len(), deleted[0]["entity_id"].as_i64(), deleted[0]["value_after"].clone()), (1, Some(gone), json!([])));

    // Contacts: notes, an edit, a delete.
    let contact = data.contacts[0]["id"].as_i64().unwrap();
    s.add_note("contacts", json!({"id": 88_000_001, "entity_id": contact, "note_type": "common", "params": {"text": "hi"}}), t + 40);
    let notes = api.rows(&format!("/api/v4/contacts/notes?filter[updated_at][from]={}", t + 40), "notes").await;
    assert_eq!((notes.len(), notes[0]["created_at"].as_i64()), (1, Some(t + 40)));
    s.edit_contact(contact, t + 50, |c| c["name"] = json!("Renamed"));
    let c = api.rows(&format!("/api/v4/contacts?filter[updated_at][from]={}", t + 50), "contacts").await;
    assert_eq!((ids(&c), c[0]["name"].as_str()), (vec![contact], Some("Renamed")));
    s.delete_contact(contact, t + 60);
    assert_eq!(api.get(&format!("/api/v4/contacts?filter[id]={contact}")).await.status, 204);
    assert!(api.rows("/api/v4/contacts/notes?limit=250", "notes").await.iter().all(|n| n["entity_id"] != json!(contact)), "the contact's notes went with it");
    let ev = api.rows(&events_since(t + 60), "events").await;
    assert_eq!(
        (ev.len(), ev[0]["type"].as_str(), ev[0]["entity_type"].as_str(), ev[0]["entity_id"].as_i64()),
        (1, Some("contact_deleted"), Some("contact"), Some(contact))
    );
    let linked = s.data.lock().unwrap().leads.iter().filter(|l| l["_embedded"]["contacts"].as_array().unwrap().iter().any(|c| c["id"] == contact)).count();
    assert_eq!(linked, 0);

    // Every event id is unique.
    let all = s.data.lock().unwrap().events.clone();
    let unique: std::collections::HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), all.len());
}

#[test]
fn generated_data_is_consistent_and_deterministic() {
    let d = MockData::generated(200);
    assert_eq!(d, MockData::generated(200));
    assert_eq!((d.leads.len(), d.contacts.len(), d.companies.len(), d.tasks.len(), d.trash.len()), (200, 100, 40, 200, 0));
    assert!(d.notes.len() >= 200 && d.events.len() > 200);

    let id_set = |rows: &[Value]| -> std::collections::HashSet<i64> {
        let set: std::collections::HashSet<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(set.len(), rows.len(), "unique ids");
        set
    };
    let users = id_set(&d.users);
    let contacts = id_set(&d.contacts);
    let companies = id_set(&d.companies);
    let leads = id_set(&d.leads);
    id_set(&d.tasks);
    let notes: Vec<Value> = d.notes.iter().map(|(_, n)| n.clone()).collect();
    id_set(&notes);
    let event_ids: std::collections::HashSet<&str> = d.events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(event_ids.len(), d.events.len());
    let reasons = id_set(&d.loss_reasons);
    // (pipeline, status) pairs, and each pipeline's first stage.
    let mut stages = std::collections::HashSet::new();
    let mut first_stage = HashMap::new();
    for p in &d.pipelines {
        let pid = p["id"].as_i64().unwrap();
        let statuses = p["_embedded"]["statuses"].as_array().unwrap();
        for s in statuses {
            stages.insert((pid, s["id"].as_i64().unwrap()));
        }
        first_stage.insert(pid, statuses.iter().min_by_key(|s| s["sort"].as_i64()).unwrap()["id"].as_i64().unwrap());
    }

    let mut won = 0;
    let mut lost = 0;
    for l in &d.leads {
        let (id, pid, sid) = (l["id"].as_i64().unwrap(), l["pipeline_id"].as_i64().unwrap(), l["status_id"].as_i64().unwrap());
        assert!(stages.contains(&(pid, sid)), "{l}");
        let (created, updated) = (l["created_at"].as_i64().unwrap(), l["updated_at"].as_i64().unwrap());
        assert!(created >= GENERATED_END - 365 * DAY && created <= updated && updated < GENERATED_END, "{l}");
        assert!(users.contains(&l["responsible_user_id"].as_i64().unwrap()) && users.contains(&l["updated_by"].as_i64().unwrap()));
        let linked = l["_embedded"]["contacts"].as_array().unwrap();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0]["is_main"], true);
        assert!(contacts.contains(&linked[0]["id"].as_i64().unwrap()));
        for c in l["_embedded"]["companies"].as_array().unwrap() {
            assert!(companies.contains(&c["id"].as_i64().unwrap()));
        }
        match sid {
            WON => {
                won += 1;
                assert_eq!(l["closed_at"], l["updated_at"]);
                assert!(l["loss_reason_id"].is_null());
            }
            LOST => {
                lost += 1;
                assert_eq!(l["closed_at"], l["updated_at"]);
                assert!(reasons.contains(&l["loss_reason_id"].as_i64().unwrap()));
                assert_eq!(l["_embedded"]["loss_reason"][0]["id"], l["loss_reason_id"]);
            }
            _ => assert!(l["closed_at"].is_null() && l["loss_reason_id"].is_null() && l["_embedded"].get("loss_reason").is_none()),
        }
        // The stage history runs from the first stage to the current one, in time order.
        let mut chain: Vec<&Value> = d.events.iter().filter(|e| e["entity_id"] == id && e["type"] == "lead_status_changed").collect();
        chain.sort_by_key(|e| e["created_at"].as_i64());
        let mut at = (first_stage[&pid], pid);
        let mut last_time = created;
        for e in &chain {
            let before = &e["value_before"][0]["lead_status"];
            let after = &e["value_after"][0]["lead_status"];
            assert_eq!((before["id"].as_i64().unwrap(), before["pipeline_id"].as_i64().unwrap()), at, "{e}");
            at = (after["id"].as_i64().unwrap(), after["pipeline_id"].as_i64().unwrap());
            let t = e["created_at"].as_i64().unwrap();
            assert!(t > last_time && t <= updated);
            last_time = t;
            assert!(users.contains(&e["created_by"].as_i64().unwrap()));
        }
        assert_eq!(at, (sid, pid), "the chain of {id} ends at its status");
    }
    assert!((30..=70).contains(&won) && (20..=60).contains(&lost), "won {won}, lost {lost}");
    let first = d.leads.iter().filter(|l| l["status_id"].as_i64() == first_stage.get(&l["pipeline_id"].as_i64().unwrap()).copied()).count();
    assert!(first > 5 && first < 40, "{first}");
    assert!(d.leads.iter().any(|l| l["pipeline_id"] != d.leads[0]["pipeline_id"]));
    assert!(d.leads.iter().filter(|l| l["custom_fields_values"].is_array()).count() > 40);
    assert!(d.leads.iter().filter(|l| !l["_embedded"]["companies"].as_array().unwrap().is_empty()).count() > 100);

    for c in &d.contacts {
        for k in c["_embedded"]["companies"].as_array().unwrap() {
            assert!(companies.contains(&k["id"].as_i64().unwrap()));
        }
        assert_eq!(c["custom_fields_values"][0]["field_code"], "PHONE");
    }
    let mut by_status = HashMap::new();
    for (entity, n) in &d.notes {
        let owners = match entity.as_str() {
            "leads" => &leads,
            "contacts" => &contacts,
            _ => &companies,
        };
        assert!(owners.contains(&n["entity_id"].as_i64().unwrap()), "{entity} {n}");
        assert_eq!(n["created_at"], n["updated_at"]);
        if n["note_type"] != "common" {
            *by_status.entry(n["params"]["call_status"].as_i64().unwrap()).or_insert(0) += 1;
        }
    }
    let most = by_status.iter().max_by_key(|(_, c)| **c).map(|(s, _)| *s);
    assert_eq!(most, Some(4));
    assert!(by_status.keys().all(|s| (1..=7).contains(s)) && by_status.len() == 7);
    for t in &d.tasks {
        assert_eq!(t["entity_type"], "leads");
        assert!(leads.contains(&t["entity_id"].as_i64().unwrap()));
        assert!(t["created_at"].as_i64() <= t["updated_at"].as_i64());
    }
}
