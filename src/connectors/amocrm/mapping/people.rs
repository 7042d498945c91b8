//! The people and organisations: managers (the account's users), departments (user groups),
//! companies and contacts.

use serde_json::Value as Json;

use super::fields::{custom_fields, embedded_id, flag, id, join_name, text, ts};
use super::{Raw, append};
use crate::connectors::amocrm::AmoCrmError;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn managers(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Managers);
    for u in &raw.users {
        let rights = u.get("rights").unwrap_or(&Json::Null);
        // A user in no group belongs to the account's default group 0 ("Отдел продаж").
        let department = id(rights, "group_id").or_else(|| Some("0".into()));
        let role = u.get("_embedded").and_then(|e| e.get("roles")).and_then(Json::as_array).and_then(|r| r.first()).and_then(|r| text(r, "name"));
        let row = [id(u, "id").into(), text(u, "name").into(), text(u, "email").into(), department.into(), role.into(), flag(rights, "is_active").into(), Cell::Null];
        append(&mut b, u, &row)?;
    }
    Ok(b)
}

pub(super) fn departments(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Departments);
    let groups = raw.account.get("_embedded").and_then(|e| e.get("users_groups")).and_then(Json::as_array).into_iter().flatten();
    for g in groups {
        let group = g.get("id").and_then(Json::as_i64).map(|i| i.to_string());
        append(&mut b, g, &[group.into(), text(g, "name").into(), Cell::Null, Cell::Null])?;
    }
    Ok(b)
}

pub(super) fn companies(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Companies);
    for c in &raw.companies {
        let row = [id(c, "id").into(), text(c, "name").into(), Cell::Null, id(c, "responsible_user_id").into(), ts(c, "created_at"), ts(c, "updated_at"), custom_fields(c).into()];
        append(&mut b, c, &row)?;
    }
    Ok(b)
}

pub(super) fn contacts(raw: &Raw) -> Result<TableBuilder, AmoCrmError> {
    let mut b = TableBuilder::new(Table::Contacts);
    for c in &raw.contacts {
        let name = text(c, "name").or_else(|| join_name(&[text(c, "first_name"), text(c, "last_name")]));
        let row = [
            id(c, "id").into(),
            name.into(),
            embedded_id(c, "companies").into(),
            id(c, "responsible_user_id").into(),
            Cell::Null,
            ts(c, "created_at"),
            ts(c, "updated_at"),
            custom_fields(c).into(),
        ];
        append(&mut b, c, &row)?;
    }
    Ok(b)
}
