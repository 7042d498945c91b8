//! The products and lead sources of a generated account: a products catalog and a regular
//! one, deals linked to products, and sources and UTM fields on some deals.

use serde_json::{Value, json};

use super::ids::splitmix;
use super::{ACCOUNT_ID, MockData, PRODUCT_COUNT, PRODUCTS_CATALOG, SOURCES};

/// Products (a catalog of [`PRODUCT_COUNT`] elements with a `PRICE` and a second price
/// field, and a regular catalog), links of ~half the deals to 1–2 of them, a source on ~40 %
/// of deals and UTM tracking fields on ~30 % (A-PROD, A-CATEL, A-LEADS-5, A-UTM rows).
pub(super) fn add_products_and_sources(out: &mut MockData) {
    out.catalogs = vec![
        json!({"id": PRODUCTS_CATALOG, "name": "Товары", "type": "products", "sort": 10, "can_add_elements": true, "account_id": ACCOUNT_ID}),
        json!({"id": 7002, "name": "Склады", "type": "regular", "sort": 20, "can_add_elements": true, "account_id": ACCOUNT_ID}),
    ];
    for k in 0..PRODUCT_COUNT {
        let id = 900_000 + k as i64;
        out.catalog_elements.push(json!({
            "id": id, "catalog_id": PRODUCTS_CATALOG, "name": format!("Товар {k}"), "is_deleted": false, "account_id": ACCOUNT_ID,
            "custom_fields_values": [
                {"field_id": 3001, "field_name": "Артикул", "field_code": "SKU", "field_type": "text", "values": [{"value": format!("SKU-{k}")}]},
                {"field_id": 3002, "field_name": "Цена", "field_code": "PRICE", "field_type": "numeric", "values": [{"value": format!("{}", 1000 + 50 * (k % 40))}]},
                {"field_id": 3003, "field_name": "Оптовая цена", "field_code": null, "field_type": "price", "values": [{"value": format!("{}", 800 + 40 * (k % 40))}]},
            ],
        }));
    }
    out.catalog_elements.push(json!({"id": 990_001, "catalog_id": 7002, "name": "Склад 1", "is_deleted": false, "custom_fields_values": null, "account_id": ACCOUNT_ID}));
    for (i, lead) in out.leads.iter_mut().enumerate() {
        let h = splitmix(i as u64 + 17);
        if h.is_multiple_of(2) {
            let n = 1 + (h >> 8) as usize % 2;
            let links: Vec<Value> = (0..n)
                .map(|j| {
                    let element = 900_000 + ((h >> 16) as usize + 37 * j) % PRODUCT_COUNT;
                    let mut metadata = json!({"quantity": 1 + (h >> 24) % 3 + j as u64, "catalog_id": PRODUCTS_CATALOG});
                    if (h >> 32).is_multiple_of(4) {
                        metadata["price_id"] = json!(3003);
                        metadata["quantity"] = json!(2.5);
                    }
                    json!({"id": element, "metadata": metadata})
                })
                .collect();
            lead["_embedded"]["catalog_elements"] = json!(links);
        }
        if (h >> 40) % 5 < 2 {
            let (id, name) = SOURCES[(h >> 44) as usize % SOURCES.len()];
            lead["source_id"] = json!(id);
            lead["_embedded"]["source"] = json!({"id": id, "name": name});
        }
        if (h >> 48) % 10 < 3 {
            let (source, medium) = [("yandex", "cpc"), ("google", "cpc"), ("vk", "social"), ("newsletter", "email")][(h >> 52) as usize % 4];
            let fields = lead["custom_fields_values"].as_array().cloned().unwrap_or_default();
            let mut fields = fields;
            fields.push(json!({"field_id": 2001, "field_name": "utm_source", "field_code": "UTM_SOURCE", "field_type": "tracking_data", "values": [{"value": source}]}));
            fields.push(json!({"field_id": 2002, "field_name": "utm_medium", "field_code": "UTM_MEDIUM", "field_type": "tracking_data", "values": [{"value": medium}]}));
            lead["custom_fields_values"] = json!(fields);
        }
    }
}
