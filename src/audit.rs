//! Writing the audit log: who did what to which record, and how many rows.
//!
//! The rule: an entry is written with the same connection, inside the same transaction, as
//! the change it records, so a change never commits without its entry nor an entry without its
//! change. Details hold ids, codes and counts, never names, numbers or notes. Refused
//! requests, which change nothing, are the exception: they are aggregated
//! (`denials::Denials`), so that a flood of them costs a few writes a minute.

use crate::auth::Caller;
use crate::db::{self, DbConnection};

/// Appends one entry on `conn` (call it inside the change's transaction).
pub fn record(
    conn: &mut DbConnection,
    caller: &Caller,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
) -> diesel::QueryResult<()> {
    let details = details.to_string();
    let address = caller
        .origin
        .as_ref()
        .and_then(|o| o.address)
        .map(|a| a.to_string());
    db::audit::insert(
        conn,
        &db::audit::NewAuditRow {
            at: crate::domain::now(),
            actor_id: caller.id.as_deref(),
            actor_name: Some(caller.name.as_str()),
            action,
            target,
            details: &details,
            request_id: caller.origin.as_ref().map(|o| o.request_id.as_str()),
            address: address.as_deref(),
            user_agent: caller.origin.as_ref().and_then(|o| o.user_agent.as_deref()),
        },
    )
}
