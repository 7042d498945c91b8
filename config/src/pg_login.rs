//! What the PostgreSQL front end decides before a client has logged in, from what the client
//! sent: whether its startup parameters are acceptable and which tenant its database name
//! chooses. Pure functions over client input, so the fuzz target `pg_login` runs them on
//! whatever pgwire decodes from arbitrary bytes.

/// The prefix of startup parameters the server keeps for itself: a client sending one is
/// refused.
pub const RESERVED_PREFIX: &str = "salespulse";

/// The first startup parameter in the server's own namespace, if any.
pub fn reserved_parameter<'a>(names: impl IntoIterator<Item = &'a String>) -> Option<&'a str> {
    names.into_iter().map(String::as_str).find(|k| k.get(..RESERVED_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX)))
}

/// A client-sent name as it may appear in a message: at most 64 characters.
pub fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Why a database name chooses no tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseRefusal {
    /// The user may read no tenant at all.
    NoTenant,
    /// No tenant of that name that the user may read (other tenants look the same).
    Unknown,
}

/// The tenant a connection's database name selects for `user`, who may read `allowed` (in
/// the server's order): the name itself, or for no name, `postgres` or the user's own name
/// (libpq's default), the first tenant the user may read.
///
/// # Errors
/// See [`DatabaseRefusal`].
pub fn tenant_for(database: Option<&str>, user: &str, allowed: &[String]) -> Result<String, DatabaseRefusal> {
    match database {
        Some(db) if allowed.iter().any(|t| t == db) => Ok(db.to_string()),
        None | Some("" | "postgres") => allowed.first().cloned().ok_or(DatabaseRefusal::NoTenant),
        Some(db) if db == user => allowed.first().cloned().ok_or(DatabaseRefusal::NoTenant),
        Some(_) => Err(DatabaseRefusal::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_parameters_and_tenant_choice() {
        let params = ["user".to_string(), "SalesPulse.Tenant".to_string()];
        assert_eq!(reserved_parameter(&params), Some("SalesPulse.Tenant"));
        assert_eq!(reserved_parameter(&["options".to_string(), "sales".to_string()]), None);
        let allowed = vec!["acme".to_string(), "beta".to_string()];
        assert_eq!(tenant_for(Some("beta"), "anna", &allowed), Ok("beta".into()));
        assert_eq!(tenant_for(Some("anna"), "anna", &allowed), Ok("acme".into()));
        assert_eq!(tenant_for(None, "anna", &[]), Err(DatabaseRefusal::NoTenant));
        assert_eq!(tenant_for(Some("gamma"), "anna", &allowed), Err(DatabaseRefusal::Unknown));
        assert_eq!(clip(&"ж".repeat(100)).chars().count(), 65);
    }
}
