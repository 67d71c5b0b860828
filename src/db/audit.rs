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

/// An entry owned, kept for a multi-row insert at a writer's commit (`db::batch`).
#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct AuditEntry {
    pub at: chrono::NaiveDateTime,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub details: String,
    pub request_id: Option<String>,
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

impl From<&NewAuditRow<'_>> for AuditEntry {
    fn from(r: &NewAuditRow<'_>) -> Self {
        let owned = |v: Option<&str>| v.map(str::to_string);
        Self {
            at: r.at,
            actor_id: owned(r.actor_id),
            actor_name: owned(r.actor_name),
            action: r.action.to_string(),
            target: owned(r.target),
            details: r.details.to_string(),
            request_id: owned(r.request_id),
            address: owned(r.address),
            user_agent: owned(r.user_agent),
        }
    }
}

/// Typed per backend: nearly every request writes here, so its prepared statement is cached.
/// A grouped job's entry is written with its batch's others, just before the commit
/// (`db::batch`).
pub fn insert(conn: &mut DbConnection, row: &NewAuditRow<'_>) -> QueryResult<()> {
    if super::batch::defer_audit(|| AuditEntry::from(row)) {
        return Ok(());
    }
    per_backend!(conn, |c| diesel::insert_into(audit_log::table)
        .values(row)
        .execute(c))?;
    Ok(())
}

/// The entries of a writer's batch: on PostgreSQL in multi-row inserts (one round trip), on
/// SQLite one by one, with the one statement prepared for the connection (SQLite has no round
/// trips to save, and a multi-row insert is prepared again at every run).
pub(super) fn insert_many(conn: &mut DbConnection, rows: &[AuditEntry]) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(audit_log::table)
                    .values(row)
                    .execute(c)?;
            }
        }
        DbConnection::Pg(c) => {
            for chunk in rows.chunks(super::BULK_ROWS) {
                diesel::insert_into(audit_log::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}

/// An entry that stands for every occurrence of the same thing in one minute (refusals).
#[derive(Debug)]
pub struct AggregatedRow<'a> {
    pub row: NewAuditRow<'a>,
    pub occurrences: i32,
    /// What makes two occurrences the same entry (`audit::Denials`).
    pub aggregate_key: &'a str,
}

/// Adds `occurrences` to the entry of `aggregate_key`, written if it does not exist yet: one
/// entry per key whichever process saw them. Written as SQL: the key's unique index is partial
/// (ordinary entries have no key and cost it nothing), and diesel names a partial index's
/// condition in `ON CONFLICT` on PostgreSQL only. Not on a hot path: a few a minute.
pub fn add_aggregated(conn: &mut DbConnection, a: &AggregatedRow<'_>) -> QueryResult<()> {
    use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
    const COLUMNS: &str = "at, actor_id, actor_name, action, target, details, request_id, \
                           address, user_agent, occurrences, aggregate_key";
    const CONFLICT: &str = "ON CONFLICT (aggregate_key) WHERE aggregate_key IS NOT NULL \
                            DO UPDATE SET occurrences = audit_log.occurrences + excluded.occurrences";
    let placeholders = match conn {
        DbConnection::Sqlite(_) => vec!["?".to_string(); 11].join(", "),
        DbConnection::Pg(_) => (1..=11)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let r = &a.row;
    diesel::sql_query(format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ({placeholders}) {CONFLICT}"
    ))
    .bind::<Timestamp, _>(r.at)
    .bind::<Nullable<Text>, _>(r.actor_id)
    .bind::<Nullable<Text>, _>(r.actor_name)
    .bind::<Text, _>(r.action)
    .bind::<Nullable<Text>, _>(r.target)
    .bind::<Text, _>(r.details)
    .bind::<Nullable<Text>, _>(r.request_id)
    .bind::<Nullable<Text>, _>(r.address)
    .bind::<Nullable<Text>, _>(r.user_agent)
    .bind::<Integer, _>(a.occurrences)
    .bind::<Text, _>(a.aggregate_key)
    .execute(conn)
    .map(drop)
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
