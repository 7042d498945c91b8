//! The people and organisations: managers (the portal's users), departments, companies and
//! contacts.

use serde_json::Value as Json;

use super::fields::{custom_fields, flag, id, join_name, scalar_id, text, time, ts};
use super::{Mapping, Raw, append};
use crate::connectors::bitrix24::Bitrix24Error;
use crate::connectors::sync::Cell;
use crate::model::{Table, TableBuilder};

pub(super) fn managers(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Managers);
    for u in &raw.users {
        let name = join_name(&[text(u, "NAME"), text(u, "LAST_NAME")]);
        let department = match u.get("UF_DEPARTMENT") {
            Some(Json::Array(ids)) => ids.first().and_then(scalar_id),
            Some(other) => scalar_id(other),
            None => None,
        };
        let row = [
            id(u, "ID").into(),
            name.into(),
            text(u, "EMAIL").into(),
            department.into(),
            text(u, "WORK_POSITION").into(),
            flag(u, "ACTIVE").into(),
            time(u, "DATE_REGISTER", m).map_or(Cell::Null, Cell::T),
        ];
        append(&mut b, u, "ID", &row)?;
    }
    Ok(b)
}

pub(super) fn departments(raw: &Raw) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Departments);
    for d in &raw.departments {
        let row = [id(d, "ID").into(), text(d, "NAME").into(), id(d, "PARENT").into(), id(d, "UF_HEAD").into()];
        append(&mut b, d, "ID", &row)?;
    }
    Ok(b)
}

pub(super) fn companies(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Companies);
    for c in &raw.companies {
        let custom = custom_fields(c);
        let row = [
            id(c, "ID").into(),
            text(c, "TITLE").into(),
            text(c, "INDUSTRY").into(),
            id(c, "ASSIGNED_BY_ID").into(),
            ts(c, "DATE_CREATE", m),
            ts(c, "DATE_MODIFY", m),
            custom.into(),
        ];
        append(&mut b, c, "ID", &row)?;
    }
    Ok(b)
}

pub(super) fn contacts(raw: &Raw, m: &Mapping) -> Result<TableBuilder, Bitrix24Error> {
    let mut b = TableBuilder::new(Table::Contacts);
    for c in &raw.contacts {
        let name = join_name(&[text(c, "NAME"), text(c, "LAST_NAME")]);
        let custom = custom_fields(c);
        let row = [
            id(c, "ID").into(),
            name.into(),
            id(c, "COMPANY_ID").into(),
            id(c, "ASSIGNED_BY_ID").into(),
            id(c, "SOURCE_ID").into(),
            ts(c, "DATE_CREATE", m),
            ts(c, "DATE_MODIFY", m),
            custom.into(),
        ];
        append(&mut b, c, "ID", &row)?;
    }
    Ok(b)
}
