//! The audit log table: insert and filtered, newest-first reads. Nothing updates or deletes
//! it (triggers refuse both on either backend).

use diesel::prelude::*;

use super::schema::audit_log;
use super::DbConnection;

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewAuditRow<'a> {
    pub at: chrono::NaiveDateTime,
    pub actor_id: Option<&'a str>,
    pub actor_name: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub details: &'a str,
    pub request_id: Option<&'a str>,
    pub address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub at: chrono::NaiveDateTime,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: String,
    pub request_id: Option<String>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// How many times it happened: more than one for an aggregated refusal.
    pub occurrences: i32,
}

/// Typed per backend: nearly every request writes here, so its prepared statement is cached.
pub fn insert(conn: &mut DbConnection, row: &NewAuditRow<'_>) -> QueryResult<()> {
    per_backend!(conn, |c| diesel::insert_into(audit_log::table)
        .values(row)
        .execute(c))?;
    Ok(())
}

/// An entry that stands for every occurrence of the same thing in one minute (refusals).
#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct AggregatedRow<'a> {
    #[diesel(embed)]
    pub row: NewAuditRow<'a>,
    pub occurrences: i32,
    /// What makes two occurrences the same entry (`audit::Denials`).
    pub aggregate_key: &'a str,
}

/// Adds `occurrences` to the entry of `aggregate_key`, written if it does not exist yet: one
/// entry per key whichever process saw them (the key is unique).
pub fn add_aggregated(conn: &mut DbConnection, row: &AggregatedRow<'_>) -> QueryResult<()> {
    use diesel::upsert::excluded;
    per_backend!(conn, |c| diesel::insert_into(audit_log::table)
        .values(row)
        .on_conflict(audit_log::aggregate_key)
        .do_update()
        .set(audit_log::occurrences.eq(audit_log::occurrences + excluded(audit_log::occurrences)))
        .execute(c))?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub from: Option<chrono::NaiveDateTime>,
    pub to: Option<chrono::NaiveDateTime>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Keyset cursor: entries with a smaller id than this.
    pub before_id: Option<i64>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_log::table
        .select(AuditRow::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::at.lt(to));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_log::actor_id.eq(actor.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(before) = filter.before_id {
        query = query.filter(audit_log::id.lt(before));
    }
    query.load(conn)
}
