//! Calls, the call-centre state, and call statistics computed by the database.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::schema::{call_centre, calls};
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = calls)]
#[diesel(treat_none_as_default_value = false)]
pub struct CallRow {
    pub id: String,
    pub received_at: chrono::NaiveDateTime,
    pub caller_phone: Option<String>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    pub reason: String,
    pub outcome: String,
    pub duration_seconds: Option<i32>,
    pub notes: Option<String>,
    pub callback_requested: bool,
    pub agent_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub import_id: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &CallRow) -> QueryResult<()> {
    diesel::insert_into(calls::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Multi-row inserts, in chunks under SQLite's bound-parameter limit.
pub fn insert_many(conn: &mut DbConnection, rows: &[CallRow]) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(calls::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn find_by_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<CallRow>> {
    per_backend!(conn, |c| calls::table
        .filter(calls::idempotency_key.eq(key))
        .select(CallRow::as_select())
        .first(c)
        .optional())
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    calls::table.count().get_result(conn)
}

#[derive(Debug, Default, Clone)]
pub struct CallFilter {
    pub from: Option<chrono::NaiveDateTime>,
    pub to: Option<chrono::NaiveDateTime>,
    pub reason: Option<String>,
    pub patient_id: Option<String>,
    pub callback_requested: Option<bool>,
    /// Keyset cursor: calls strictly older than this (received_at, id).
    pub before: Option<(chrono::NaiveDateTime, String)>,
}

/// Newest first, by (received_at, id): pages stay stable while calls keep arriving.
pub fn list(conn: &mut DbConnection, f: &CallFilter, limit: i64) -> QueryResult<Vec<CallRow>> {
    let mut q = calls::table
        .select(CallRow::as_select())
        .order((calls::received_at.desc(), calls::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(from) = f.from {
        q = q.filter(calls::received_at.ge(from));
    }
    if let Some(to) = f.to {
        q = q.filter(calls::received_at.lt(to));
    }
    if let Some(reason) = &f.reason {
        q = q.filter(calls::reason.eq(reason.clone()));
    }
    if let Some(patient) = &f.patient_id {
        q = q.filter(calls::patient_id.eq(patient.clone()));
    }
    if let Some(callback) = f.callback_requested {
        q = q.filter(calls::callback_requested.eq(callback));
    }
    if let Some((at, id)) = &f.before {
        q = q.filter(
            calls::received_at
                .lt(*at)
                .or(calls::received_at.eq(*at).and(calls::id.lt(id.clone()))),
        );
    }
    q.load(conn)
}

/// Counts for one (reason, outcome) pair.
#[derive(Debug, Clone, QueryableByName)]
pub struct GroupCount {
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub duration_sum: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub durations: i64,
}

/// Calls in one UTC hour.
#[derive(Debug, Clone, QueryableByName)]
pub struct HourCount {
    #[diesel(sql_type = Timestamp)]
    pub hour: chrono::NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
}

/// Totals by (reason, outcome) for `from <= received_at < to`: a few dozen rows, however many
/// calls, read from the `calls_stats` index.
pub fn group_counts(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<GroupCount>> {
    const SELECT: &str = "SELECT reason, outcome, COUNT(*) AS calls, \
        CAST(SUM(duration_seconds) AS BIGINT) AS duration_sum, COUNT(duration_seconds) AS durations \
        FROM calls WHERE received_at >= {from} AND received_at < {to} GROUP BY reason, outcome";
    match conn {
        DbConnection::Sqlite(c) => {
            diesel::sql_query(SELECT.replace("{from}", "?").replace("{to}", "?"))
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .load(c)
        }
        DbConnection::Pg(c) => {
            diesel::sql_query(SELECT.replace("{from}", "$1").replace("{to}", "$2"))
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .load(c)
        }
    }
}

/// Calls per UTC hour for `from <= received_at < to`. Brussels is a whole number of hours
/// from UTC, so local hours and days are unions of these.
pub fn hour_counts(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<HourCount>> {
    match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT strftime('%Y-%m-%d %H:00:00', received_at) AS hour, COUNT(*) AS calls \
             FROM calls WHERE received_at >= ? AND received_at < ? GROUP BY 1 ORDER BY 1",
        )
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(c),
        DbConnection::Pg(c) => diesel::sql_query(
            "SELECT date_trunc('hour', received_at) AS hour, COUNT(*) AS calls \
             FROM calls WHERE received_at >= $1 AND received_at < $2 GROUP BY 1 ORDER BY 1",
        )
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(c),
    }
}

/// (status, changed_at, changed_by) of the call centre.
pub fn centre(
    conn: &mut DbConnection,
) -> QueryResult<(String, chrono::NaiveDateTime, Option<String>)> {
    call_centre::table
        .find(1)
        .select((
            call_centre::status,
            call_centre::changed_at,
            call_centre::changed_by,
        ))
        .first(conn)
}

pub fn set_centre(
    conn: &mut DbConnection,
    status: &str,
    at: chrono::NaiveDateTime,
    by: Option<&str>,
) -> QueryResult<()> {
    diesel::update(call_centre::table.find(1))
        .set((
            call_centre::status.eq(status),
            call_centre::changed_at.eq(at),
            call_centre::changed_by.eq(by),
        ))
        .execute(conn)
        .map(drop)
}
