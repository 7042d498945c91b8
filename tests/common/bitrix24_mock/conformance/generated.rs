//! Generated portals: deterministic, with the promised counts, unique ids and every
//! reference valid.

use serde_json::Value;

use crate::common::bitrix24_mock::MockData;
use crate::common::bitrix24_mock::data::str_of;
use crate::common::bitrix24_mock::values::{as_f64, text};

#[test]
fn generated_data_is_consistent_and_deterministic() {
    let d = MockData::generated(120);
    assert_eq!(d, MockData::generated(120));
    let counts = [
        ("deals", d.deals.len()),
        ("leads", d.leads.len()),
        ("contacts", d.contacts.len()),
        ("companies", d.companies.len()),
        ("activities", d.activities.len()),
        ("deal_stage_history", d.deal_stage_history.len()),
        ("lead_stage_history", d.lead_stage_history.len()),
        ("calls", d.calls.len()),
        ("tasks", d.tasks.len()),
        ("product_rows", d.product_rows.len()),
    ];
    assert_eq!(counts.map(|(_, c)| c)[..9], [120, 240, 120, 60, 360, 360, counts[6].1, 480, 120]);
    assert_eq!(d.product_rows.len(), 180);
    for (name, c) in counts {
        assert!(c > 50, "{name}: {c}");
    }

    let id_set = |rows: &[Value], key: &str| -> std::collections::HashSet<String> {
        let set: std::collections::HashSet<String> = rows.iter().map(|r| text(&r[key]).unwrap()).collect();
        assert_eq!(set.len(), rows.len(), "unique {key}");
        set
    };
    let users = id_set(&d.users, "ID");
    let deals = id_set(&d.deals, "ID");
    let leads = id_set(&d.leads, "ID");
    let contacts = id_set(&d.contacts, "ID");
    let companies = id_set(&d.companies, "ID");
    let activities = id_set(&d.activities, "ID");
    id_set(&d.calls, "ID");
    id_set(&d.tasks, "id");
    id_set(&d.product_rows, "id");
    let mut history = d.deal_stage_history.clone();
    history.extend(d.lead_stage_history.clone());
    id_set(&history, "ID");
    let stages: std::collections::HashSet<(String, String)> =
        d.statuses.iter().map(|s| (str_of(s, "ENTITY_ID").to_string(), str_of(s, "STATUS_ID").to_string())).collect();
    let has = |set: &std::collections::HashSet<String>, v: &Value| v.is_null() || set.contains(&text(v).unwrap());

    for deal in &d.deals {
        let category = str_of(deal, "CATEGORY_ID");
        let entity = if category == "0" { "DEAL_STAGE".to_string() } else { format!("DEAL_STAGE_{category}") };
        assert!(stages.contains(&(entity, str_of(deal, "STAGE_ID").to_string())), "{deal}");
        assert!(stages.contains(&("SOURCE".to_string(), str_of(deal, "SOURCE_ID").to_string())));
        assert!(str_of(deal, "COMPANY_ID") == "0" || has(&companies, &deal["COMPANY_ID"]));
        assert!(has(&contacts, &deal["CONTACT_ID"]) && has(&leads, &deal["LEAD_ID"]));
        for f in ["ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "MOVED_BY_ID", "LAST_ACTIVITY_BY"] {
            assert!(has(&users, &deal[f]), "{f} of {deal}");
        }
        assert!(str_of(deal, "DATE_CREATE").ends_with("+03:00"));
    }
    for c in &d.contacts {
        assert!(has(&companies, &c["COMPANY_ID"]) && has(&leads, &c["LEAD_ID"]) && has(&users, &c["ASSIGNED_BY_ID"]));
    }
    for l in &d.leads {
        assert!(has(&contacts, &l["CONTACT_ID"]) && has(&users, &l["ASSIGNED_BY_ID"]));
        assert!(stages.contains(&("STATUS".to_string(), str_of(l, "STATUS_ID").to_string())));
    }
    for a in &d.activities {
        let owners = if str_of(a, "OWNER_TYPE_ID") == "2" { &deals } else { &contacts };
        assert!(has(owners, &a["OWNER_ID"]) && has(&users, &a["RESPONSIBLE_ID"]));
    }
    for call in &d.calls {
        assert!(has(&activities, &call["CRM_ACTIVITY_ID"]));
        let act = d.activities.iter().find(|a| a["ID"] == call["CRM_ACTIVITY_ID"]).unwrap();
        assert_eq!((str_of(act, "TYPE_ID"), str_of(act, "OWNER_TYPE_ID")), ("2", "2"));
        let entities = match str_of(call, "CRM_ENTITY_TYPE") {
            "LEAD" => &leads,
            "COMPANY" => &companies,
            _ => &contacts,
        };
        assert!(has(entities, &call["CRM_ENTITY_ID"]) && has(&users, &call["PORTAL_USER_ID"]), "{call}");
    }
    for h in &d.deal_stage_history {
        assert!(deals.contains(&h["OWNER_ID"].to_string()));
    }
    for h in &d.lead_stage_history {
        assert!(leads.contains(&h["OWNER_ID"].to_string()));
    }
    for t in &d.tasks {
        let binding = t["ufCrmTask"][0].as_str().unwrap();
        let owners = if binding.starts_with("L_") { &leads } else { &deals };
        assert!(owners.contains(&binding[2..]) && has(&users, &t["responsibleId"]), "{t}");
    }
    for deal in &d.deals {
        let sum: f64 = d.product_rows.iter().filter(|r| r["ownerId"] == as_f64(&deal["ID"]).unwrap() as u64).map(|r| as_f64(&r["price"]).unwrap() * as_f64(&r["quantity"]).unwrap()).sum();
        assert!((sum - as_f64(&deal["OPPORTUNITY"]).unwrap()).abs() < 0.005, "{deal}");
    }
    let semantic = |s: &str| d.deals.iter().filter(|x| str_of(x, "STAGE_SEMANTIC_ID") == s).count();
    assert!(semantic("S") > 10 && semantic("F") > 10 && semantic("P") > 10);
    let currencies: std::collections::HashSet<&str> = d.deals.iter().map(|x| str_of(x, "CURRENCY_ID")).collect();
    assert_eq!(currencies.len(), 3);
}
