//! Pins the canonical schema (docs/schema.md contract v1): a change shows up as a reviewed diff.

use salespulse::model::Table;

#[test]
fn canonical_schemas_are_pinned() {
    let mut text = String::new();
    for t in Table::ALL {
        text.push_str(&format!("{} (sorted by {})\n", t.name(), t.sort_column()));
        for f in t.schema().fields() {
            let null = if f.is_nullable() { "" } else { " NOT NULL" };
            text.push_str(&format!("  {} {}{null}\n", f.name(), f.data_type()));
        }
    }
    insta::assert_snapshot!("canonical_schemas", text);
}
