//! Lists as the vendor serves them: the fixture pages verbatim, paging to the phantom 204,
//! PHP-style filters honoured or ignored per the account's flag, the documented orders,
//! `with`, records by id, catalog elements, and the query parser.

use serde_json::{Value, json};

use super::super::filters::Filters;
use super::super::ids::event_id;
use super::super::query::Query;
use super::*;

#[tokio::test]
async fn fixture_pages_come_back_verbatim() {
    let mock = MockAmoCrm::start(unlimited(), MockData::fixtures()).await;
    let api = Api::new(&mock);
    let base = &mock.base_url;

    let page1 = api.ok(&format!("/api/v4/leads?{LEADS_PAGE1_QUERY}")).await;
    assert_eq!(page1, expected_page(LEADS_PAGE1, base));
    // Follow next verbatim: page 2 is the last, with first/prev and no next.
    let page2 = api.ok(page1["_links"]["next"]["href"].as_str().unwrap()).await;
    assert_eq!(page2, expected_page(LEADS_PAGE2_LAST, base));
    let r = api.get(&format!("/api/v4/leads?{}", LEADS_PAGE1_QUERY.replace("page=1", "page=3"))).await;
    assert_eq!((r.status, r.content_type, r.body.as_slice()), (204, None, LEADS_PAGE3_EMPTY.as_bytes()));

    let cases = [
        ("/api/v4/leads?with=only_deleted&page=1&limit=250", LEADS_ONLY_DELETED),
        ("/api/v4/contacts?limit=250&filter%5Bupdated_at%5D%5Bfrom%5D=1756101600&page=1", fixture!("contacts_page1.json")),
        ("/api/v4/companies?limit=250&page=1", fixture!("companies_page1.json")),
        ("/api/v4/tasks?filter[updated_at][from]=1756706400&limit=250&page=1", fixture!("tasks_page1.json")),
        (
            "/api/v4/leads/notes?filter[note_type][0]=call_in&filter[note_type][1]=call_out&filter[updated_at][from]=1756706400&limit=250&page=1",
            fixture!("leads_notes_calls_page1.json"),
        ),
        ("/api/v4/users?with=role%2Cgroup&page=1&limit=250", fixture!("users.json")),
        ("/api/v4/leads/pipelines", fixture!("leads_pipelines.json")),
        ("/api/v4/leads/loss_reasons", fixture!("leads_loss_reasons.json")),
    ];
    for (url, fixture) in cases {
        assert_eq!(api.ok(url).await, expected_page(fixture, base), "{url}");
    }

    // The account: the configured filter flag, links at the mock.
    let account = api.ok("/api/v4/account?with=users_groups,task_types,datetime_settings,is_api_filter_enabled").await;
    let mut expected = fixture_json(fixture!("account_with_groups.json"));
    expected["is_api_filter_enabled"] = json!(true);
    expected["_links"]["self"]["href"] = json!(format!("{base}/api/v4/account"));
    assert_eq!(account, expected);

    // Events: newest first (the fixture pages list them oldest first).
    let events = api.ok("/api/v4/events?filter%5Btype%5D%5B0%5D=lead_deleted&filter%5Btype%5D%5B1%5D=contact_deleted&filter%5Btype%5D%5B2%5D=company_deleted&limit=100&page=1").await;
    let mut expected = fixture_embedded(fixture!("events_deleted.json"), "events");
    expected.reverse();
    assert_eq!(events["_embedded"]["events"], json!(expected));
    let page = api.ok("/api/v4/events?filter[type]=lead_status_changed&filter[created_at][from]=1756706400&limit=4&page=1").await;
    let mut expected = fixture_embedded(fixture!("events_lead_status_changed_page1.json"), "events");
    expected.reverse();
    assert_eq!(page["_embedded"]["events"], json!(expected));
    // Four rows of limit 4: the phantom next.
    assert!(page["_links"]["next"]["href"].as_str().unwrap().ends_with("&limit=4&page=2"));
    assert_eq!(api.get("/api/v4/events?filter[type]=lead_status_changed&limit=4&page=2").await.status, 204);

    assert_eq!(mock.state.path_calls("/api/v4/leads"), 4);
    assert_eq!(mock.state.requests(), 15);
    assert_eq!(mock.state.served_ok(), 15);
}

#[tokio::test]
async fn paging_follows_next_links_to_the_phantom_204() {
    let data = MockData::generated(100);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);

    let mut url = format!("{}/api/v4/leads?limit=25&order%5Bid%5D=asc", mock.base_url);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = api.get(&url).await;
        if r.status == 204 {
            assert!(r.body.is_empty() && r.content_type.is_none());
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        pages += 1;
        assert_eq!(v["_page"], pages);
        assert!(v.get("_total_items").is_none());
        assert_eq!(v["_links"]["self"]["href"], format!("{}/api/v4/leads?limit=25&order%5Bid%5D=asc&page={pages}", mock.base_url));
        let rows = v["_embedded"]["leads"].as_array().unwrap();
        assert_eq!(rows.len(), 25);
        seen.extend(ids(rows));
        url = v["_links"]["next"]["href"].as_str().expect("a full page has next").to_string();
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, ids(&data.leads));
    assert_eq!(mock.state.path_calls("/api/v4/leads"), 5);
    assert_eq!(mock.state.served_ok(), 5);

    // 110 leads: the short last page has no next.
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(110)).await;
    let api = Api::new(&mock);
    let last = api.ok("/api/v4/leads?limit=25&page=5").await;
    assert_eq!(last["_embedded"]["leads"].as_array().unwrap().len(), 10);
    assert!(last["_links"].get("next").is_none());
    assert!(last["_links"]["prev"]["href"].as_str().unwrap().ends_with("limit=25&page=4"));
    // The default limit is 50; 250 is allowed, 251 is not.
    assert_eq!(api.ok("/api/v4/leads").await["_embedded"]["leads"].as_array().unwrap().len(), 50);
    assert_eq!(api.ok("/api/v4/contacts?limit=250").await["_embedded"]["contacts"].as_array().unwrap().len(), 55);
    for path in ["/api/v4/leads", "/api/v4/tasks", "/api/v4/leads/notes", "/api/v4/contacts"] {
        let r = api.get(&format!("{path}?limit=251")).await;
        assert_eq!((r.status, r.content_type.as_deref()), (422, Some(PROBLEM_JSON)), "{path}");
        assert_eq!(r.json(), fixture_json(ERROR_LIMIT));
    }
    assert_eq!(api.ok("/api/v4/events?limit=100").await["_embedded"]["events"].as_array().unwrap().len(), 100);
    let r = api.get("/api/v4/events?limit=101").await;
    assert_eq!((r.status, r.json()["detail"].as_str()), (422, Some("Limit 100 per page")));
    let r = api.get("/api/v4/leads/unknown").await;
    assert_eq!((r.status, r.content_type.as_deref(), r.json()["status"].as_u64()), (404, Some(PROBLEM_JSON), Some(404)));
}

#[tokio::test]
async fn filters_are_honoured_or_ignored_per_the_account_flag() {
    let data = MockData::generated(200);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let mut updated: Vec<i64> = data.leads.iter().map(|l| l["updated_at"].as_i64().unwrap()).collect();
    updated.sort_unstable();
    let (from, to) = (updated[50], updated[120]);
    let expected: Vec<i64> =
        data.leads.iter().filter(|l| (from..=to).contains(&l["updated_at"].as_i64().unwrap())).map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(expected.len() >= 71);

    // Both bounds inclusive, brackets raw or percent-encoded.
    let raw = format!("/api/v4/leads?filter[updated_at][from]={from}&filter[updated_at][to]={to}&limit=250");
    assert_eq!(ids(&api.rows(&raw, "leads").await), expected);
    let encoded = format!("/api/v4/leads?filter%5Bupdated_at%5D%5Bfrom%5D={from}&filter%5Bupdated_at%5D%5Bto%5D={to}&limit=250");
    assert_eq!(ids(&api.rows(&encoded, "leads").await), expected);
    assert_eq!(mock.state.request_log()[1], ("/api/v4/leads".to_string(), format!("filter[updated_at][from]={from}&filter[updated_at][to]={to}&limit=250")));
    let created_from = data.leads[150]["created_at"].as_i64().unwrap();
    assert_eq!(api.rows(&format!("/api/v4/leads?filter[created_at][from]={created_from}&limit=250"), "leads").await.len(), 50);
    // Descending updated_at.
    let desc = api.rows(&format!("{raw}&order[updated_at]=desc"), "leads").await;
    let times: Vec<i64> = desc.iter().map(|l| l["updated_at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]) && times.len() == expected.len());
    // Nothing matches: 204.
    assert_eq!(api.get("/api/v4/leads?filter[updated_at][from]=1900000000").await.status, 204);

    // filter[id] in every spelling, always honoured.
    let (a, b) = (data.leads[3]["id"].as_i64().unwrap(), data.leads[7]["id"].as_i64().unwrap());
    for q in [format!("filter[id][]={a}&filter[id][]={b}"), format!("filter%5Bid%5D%5B0%5D={a}&filter%5Bid%5D%5B1%5D={b}")] {
        assert_eq!(ids(&api.rows(&format!("/api/v4/leads?{q}"), "leads").await), vec![a, b]);
    }
    assert_eq!(ids(&api.rows(&format!("/api/v4/leads?filter[id]={a}"), "leads").await), vec![a]);

    // Without the paid filtering: leads, contacts and companies ignore the date filters...
    mock.state.config.lock().unwrap().api_filter_enabled = false;
    assert_eq!(api.ok("/api/v4/account").await["is_api_filter_enabled"], false);
    assert_eq!(api.rows(&raw, "leads").await.len(), 200);
    assert_eq!(api.rows("/api/v4/contacts?filter[updated_at][from]=1900000000&limit=250", "contacts").await.len(), 100);
    assert_eq!(api.rows("/api/v4/companies?filter[created_at][to]=1", "companies").await.len(), 40);
    assert_eq!(ids(&api.rows(&format!("/api/v4/leads?filter[id]={a}&filter[updated_at][from]=1900000000"), "leads").await), vec![a]);
    // ...but tasks, notes and events do not.
    let task_from = data.tasks[100]["updated_at"].as_i64().unwrap();
    let tasks = api.rows(&format!("/api/v4/tasks?filter[updated_at][from]={task_from}&limit=250"), "tasks").await;
    let expected_tasks = data.tasks.iter().filter(|t| t["updated_at"].as_i64().unwrap() >= task_from).count();
    assert_eq!(tasks.len(), expected_tasks);
    assert!(expected_tasks < 200);
    let open = api.rows("/api/v4/tasks?filter[is_completed]=0&filter[entity_type]=leads&limit=250", "tasks").await;
    assert_eq!(open.len(), data.tasks.iter().filter(|t| t["is_completed"] == false).count());
    assert!(open.iter().all(|t| t["is_completed"] == false));

    let calls = api.rows("/api/v4/leads/notes?filter[note_type][]=call_in&filter[note_type][]=call_out&limit=250&page=1", "notes").await;
    let calls2 = api.rows("/api/v4/leads/notes?filter[note_type][]=call_in&filter[note_type][]=call_out&limit=250&page=2", "notes").await;
    let n_calls = data.notes.iter().filter(|(e, n)| e == "leads" && n["note_type"] != "common").count();
    assert_eq!(calls.len() + calls2.len(), n_calls);
    assert!(calls.iter().chain(&calls2).all(|n| n["note_type"] != "common"));
    let common = api.rows("/api/v4/leads/notes?filter[note_type]=common&limit=250", "notes").await;
    assert_eq!(common.len(), data.notes.iter().filter(|(e, n)| e == "leads" && n["note_type"] == "common").count());
    let of_lead = api.rows(&format!("/api/v4/leads/notes?filter[entity_id][]={a}"), "notes").await;
    assert!(!of_lead.is_empty() && of_lead.iter().all(|n| n["entity_id"] == a));
    assert_eq!(api.rows("/api/v4/contacts/notes?limit=250", "notes").await.len(), data.notes.iter().filter(|(e, _)| e == "contacts").count());

    // Events of one lead, newest first; the created_at range is inclusive.
    let chain = api.rows(&format!("/api/v4/events?filter[type]=lead_status_changed&filter[entity]=lead&filter[entity_id][]={a}&limit=100"), "events").await;
    let expected_chain: Vec<&Value> = data.events.iter().filter(|e| e["entity_id"] == a).collect();
    assert_eq!(chain.len(), expected_chain.len());
    let times: Vec<i64> = chain.iter().map(|e| e["created_at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]));
    if let (Some(first), Some(last)) = (times.last(), times.first()) {
        let q = format!("/api/v4/events?filter[entity]=lead&filter[entity_id]={a}&filter[created_at][from]={first}&filter[created_at][to]={last}");
        assert_eq!(api.rows(&q, "events").await.len(), times.len());
    }
    assert_eq!(api.get("/api/v4/events?filter[entity][]=contact&filter[entity][]=company").await.status, 204);
}

/// A-TASKS-2, A-CONT-1: a sort field the method does not document is refused.
#[tokio::test]
async fn conformance_undocumented_sort_fields_are_refused() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(30)).await;
    let api = Api::new(&mock);
    for (path, field) in [("/api/v4/tasks", "updated_at"), ("/api/v4/contacts", "created_at"), ("/api/v4/companies", "created_at")] {
        let r = api.get(&format!("{path}?order[{field}]=asc")).await;
        assert_eq!((r.status, r.json()["validation-errors"][0]["errors"][0]["path"].as_str()), (400, Some(format!("order.{field}").as_str())), "{path}");
    }
    for (path, field) in [("/api/v4/tasks", "id"), ("/api/v4/tasks", "complete_till"), ("/api/v4/contacts", "updated_at"), ("/api/v4/leads", "created_at"), ("/api/v4/leads/notes", "updated_at")] {
        assert_eq!(api.get(&format!("{path}?order[{field}]=asc")).await.status, 200, "{path} {field}");
    }
}

/// A-EVENTS-1: `filter[entity_id]` needs one `filter[entity]` and at most 10 ids.
#[tokio::test]
async fn conformance_event_entity_ids_need_one_entity_and_at_most_ten() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(30)).await;
    let api = Api::new(&mock);
    let ids: Vec<String> = (0..11).map(|i| format!("filter[entity_id][{i}]={}", LEAD_BASE + i)).collect();
    for query in [format!("filter[entity]=lead&{}", ids.join("&")), ids[..2].join("&"), format!("filter[entity][]=lead&filter[entity][]=contact&{}", ids[..2].join("&"))] {
        let r = api.get(&format!("/api/v4/events?{query}")).await;
        assert_eq!((r.status, r.json()["validation-errors"][0]["errors"][0]["path"].as_str()), (400, Some("filter.entity_id")), "{query}");
    }
    let r = api.get(&format!("/api/v4/events?filter[entity]=lead&filter[type][]=lead_status_changed&{}", ids[..10].join("&"))).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["_embedded"]["events"].as_array().unwrap().iter().all(|e| e["entity_type"] == "lead"));
}

/// A-LEADS-2, A-LEADS-5, A-PROD-1: a lead carries its source, products, contacts and loss
/// reason only when `with` asks; A-LEADS-9: a record fetched by id that is not there is a 204.
#[tokio::test]
async fn conformance_with_gives_only_what_it_asks_and_a_missing_record_is_204() {
    let data = MockData::generated(60);
    let mock = MockAmoCrm::start(unlimited(), data.clone()).await;
    let api = Api::new(&mock);
    let lead = data.leads.iter().find(|l| l["_embedded"]["source"].is_object() && l["_embedded"]["catalog_elements"].is_array()).expect("a lead with a source and products");
    let id = lead["id"].as_i64().unwrap();
    let bare = api.ok(&format!("/api/v4/leads/{id}")).await;
    for key in ["source", "catalog_elements", "contacts", "loss_reason"] {
        assert!(bare["_embedded"].get(key).is_none(), "{key} without with=");
    }
    assert!(bare.get("source_id").is_some(), "source_id comes without with= (as the fixture pages show)");
    let full = api.ok(&format!("/api/v4/leads/{id}?with=contacts,source,catalog_elements")).await;
    assert_eq!(full["_embedded"]["source"], lead["_embedded"]["source"]);
    assert_eq!(full["_embedded"]["catalog_elements"], lead["_embedded"]["catalog_elements"]);
    assert!(full["_embedded"]["contacts"].is_array());
    let listed = api.rows("/api/v4/leads?limit=250&with=catalog_elements", "leads").await;
    assert!(listed.iter().any(|l| l["_embedded"]["catalog_elements"].is_array()) && listed.iter().all(|l| l["_embedded"].get("source").is_none()));
    for path in ["/api/v4/leads/1", "/api/v4/contacts/1", "/api/v4/companies/1"] {
        let r = api.get(path).await;
        assert_eq!((r.status, r.body.len()), (204, 0), "{path}");
    }
}

/// A-PAGE-7: catalog element pages come without `next`, even when full; A-CAT-2: catalogs
/// have a type.
#[tokio::test]
async fn conformance_catalog_element_pages_have_no_next_link() {
    let mock = MockAmoCrm::start(unlimited(), MockData::generated(30)).await;
    let api = Api::new(&mock);
    let catalogs = api.rows("/api/v4/catalogs", "catalogs").await;
    assert_eq!(catalogs.iter().filter(|c| c["type"] == "products").count(), 1);
    let page = api.ok(&format!("/api/v4/catalogs/{PRODUCTS_CATALOG}/elements?limit=250")).await;
    assert_eq!(page["_embedded"]["elements"].as_array().unwrap().len(), 250);
    assert!(page["_links"].get("next").is_none(), "a full page without next");
    let rest = api.rows(&format!("/api/v4/catalogs/{PRODUCTS_CATALOG}/elements?limit=250&page=2"), "elements").await;
    assert_eq!(rest.len(), PRODUCT_COUNT - 250);
}

#[test]
fn php_queries_parse() {
    let q = Query::parse(
        "filter%5Btype%5D%5B%5D=a&filter[type][]=b&filter[id][0]=1&filter[id][1]=2&filter[x]=9&order%5Bupdated_at%5D=DESC&with=contacts%2Closs_reason&page=3&limit=25",
    );
    assert_eq!(q.list(&["filter", "type"]), ["a", "b"]);
    assert_eq!(q.list(&["filter", "id"]), ["1", "2"]);
    assert_eq!(q.list(&["filter", "x"]), ["9"]);
    assert_eq!(q.get(&["filter", "x"]), Some("9"));
    assert_eq!(q.order(), Some(("updated_at", true)));
    assert_eq!(q.with(), ["contacts", "loss_reason"]);
    assert_eq!(
        q.decoded(),
        "filter[type][]=a&filter[type][]=b&filter[id][0]=1&filter[id][1]=2&filter[x]=9&order[updated_at]=DESC&with=contacts,loss_reason&page=3&limit=25"
    );
    assert_eq!(
        q.with_page(4),
        "filter%5Btype%5D%5B%5D=a&filter%5Btype%5D%5B%5D=b&filter%5Bid%5D%5B0%5D=1&filter%5Bid%5D%5B1%5D=2&filter%5Bx%5D=9&order%5Bupdated_at%5D=DESC&with=contacts%2Closs_reason&page=4&limit=25"
    );
    assert_eq!(Query::parse("").with_page(1), "page=1");
    let mut f = Filters::default();
    f.range(&Query::parse("filter[updated_at][from]=10&filter[updated_at][to]=20"), "updated_at");
    assert!(f.matches(&json!({"updated_at": 10})) && f.matches(&json!({"updated_at": 20})));
    assert!(!f.matches(&json!({"updated_at": 21})) && !f.matches(&json!({})));
    assert_eq!(event_id(0).len(), 26);
    assert_ne!(event_id(0), event_id(1));
}
