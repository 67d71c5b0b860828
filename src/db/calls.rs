//! Calls, the call-centre state, and call statistics computed by the database.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::schema::{call_centre, calls};
use super::DbConnection;
use crate::domain::call::{CentreStatus, Outcome, Reason};

/// `treat_none_as_default_value = false` is required: the insert of a call is prepared once
/// per connection (`insert_if_new`), which needs its SQL text to be the same whichever fields
/// are `None` (with diesel's default, SQLite would leave those columns out).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = calls)]
#[diesel(treat_none_as_default_value = false)]
pub struct CallRow {
    pub id: String,
    pub received_at: chrono::NaiveDateTime,
    pub caller_phone: Option<String>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    pub reason: Reason,
    pub outcome: Outcome,
    pub duration_seconds: Option<i32>,
    pub notes: Option<String>,
    pub callback_requested: bool,
    pub agent_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub import_id: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

/// Inserts one call and counts it in `call_hours`. Typed per backend: this runs for every
/// call logged, and the concrete connection caches its prepared statement.
pub fn insert(conn: &mut DbConnection, row: &CallRow) -> QueryResult<()> {
    per_backend!(&mut *conn, |c| diesel::insert_into(calls::table)
        .values(row)
        .execute(c))?;
    count_hours(conn, std::slice::from_ref(row))
}

/// Multi-row inserts, in chunks under SQLite's bound-parameter limit, counted in
/// `call_hours`.
pub fn insert_many(conn: &mut DbConnection, rows: &[CallRow]) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(calls::table)
            .values(chunk)
            .execute(c))?;
    }
    count_hours(conn, rows)
}

/// Inserts a call unless its Idempotency-Key is taken; `false` when it is. One statement
/// (`ON CONFLICT DO NOTHING`), so the transaction stays usable on both backends and the caller
/// can read the call that holds the key. A concurrent transaction inserting the same key makes
/// this one wait for its outcome: committed, the key is taken; rolled back, this call goes in.
pub fn try_insert(conn: &mut DbConnection, row: &CallRow) -> QueryResult<bool> {
    let inserted = insert_if_new(conn, row)?;
    if inserted == 0 {
        return Ok(false);
    }
    count_hours(conn, std::slice::from_ref(row))?;
    Ok(true)
}

/// [`try_insert`] for a call that nothing else in its job refers to: inside a writer's batch
/// it may wait to go in with the calls of the batch's other jobs, in one statement (`batch.rs`).
/// `true` then means "inserted, unless the batch finds its key taken", and the batch runs the
/// job again if it does.
pub fn insert_or_defer(conn: &mut DbConnection, row: &CallRow) -> QueryResult<bool> {
    if !super::batch::defer_call(row) {
        return try_insert(conn, row);
    }
    count_hours(conn, std::slice::from_ref(row))?;
    Ok(true)
}

/// Inserts the calls whose keys are free; how many went in. Their hourly counts are the
/// caller's. On PostgreSQL in multi-row statements (one round trip), on SQLite one by one with
/// the statement the connection has prepared (see `audit::insert_many`).
pub(super) fn insert_new(conn: &mut DbConnection, rows: &[CallRow]) -> QueryResult<usize> {
    let mut inserted = 0;
    match conn {
        DbConnection::Sqlite(_) => {
            for row in rows {
                inserted += insert_if_new(conn, row)?;
            }
        }
        DbConnection::Pg(c) => {
            for chunk in rows.chunks(super::BULK_ROWS) {
                inserted += diesel::insert_into(calls::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
        }
    }
    Ok(inserted)
}

/// One call, unless its key is taken: the statement of every call logged, prepared once per
/// connection.
fn insert_if_new(conn: &mut DbConnection, row: &CallRow) -> QueryResult<usize> {
    struct InsertIfNew;
    let insert = super::PreparedOnce::<InsertIfNew, _>::new(
        diesel::insert_into(calls::table)
            .values(row)
            .on_conflict_do_nothing(),
    );
    per_backend!(conn, |c| insert.execute(c))
}

fn hour_of(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    t.date().and_hms_opt(t.hour(), 0, 0).unwrap_or(t)
}

/// Sums of calls by (hour, reason, outcome): the rows of `call_hours` they add to.
pub(super) type Groups =
    std::collections::BTreeMap<(chrono::NaiveDateTime, &'static str, &'static str), Sums>;

/// Calls, the sum of their known durations, and how many durations are known.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sums(i64, i64, i64);

/// Adds `from` to `into`, key by key.
pub(super) fn merge(into: &mut Groups, from: Groups) {
    for (key, Sums(calls, duration_sum, durations)) in from {
        let g = into.entry(key).or_default();
        g.0 += calls;
        g.1 += duration_sum;
        g.2 += durations;
    }
}

/// Adds these calls to the hourly counts: at once, one upsert per (hour, reason, outcome), or,
/// inside a writer's batch, once for the whole batch just before it commits (`db::batch`).
fn count_hours(conn: &mut DbConnection, rows: &[CallRow]) -> QueryResult<()> {
    let mut groups = Groups::new();
    for r in rows {
        let g = groups
            .entry((
                hour_of(r.received_at),
                r.reason.as_str(),
                r.outcome.as_str(),
            ))
            .or_default();
        g.0 += 1;
        g.1 += i64::from(r.duration_seconds.unwrap_or(0));
        g.2 += i64::from(r.duration_seconds.is_some());
    }
    match super::batch::defer_hours(groups) {
        None => Ok(()),
        Some(groups) => add_hours(conn, groups),
    }
}

/// One upsert per row of `call_hours`, in key order: two transactions that add to the same
/// rows lock them in the same order and cannot deadlock.
pub(super) fn add_hours(conn: &mut DbConnection, groups: Groups) -> QueryResult<()> {
    for ((hour, reason, outcome), Sums(calls, duration_sum, durations)) in groups {
        let add = CountHour {
            hour,
            reason,
            outcome,
            calls,
            duration_sum,
            durations,
        };
        per_backend!(&mut *conn, |c| add.execute(c))?;
    }
    Ok(())
}

/// One `call_hours` upsert, written out so that it has a static query id: diesel never caches
/// the statement of its `ON CONFLICT … DO UPDATE` builder, and this one runs for every call
/// logged, so each connection now prepares it once.
struct CountHour<'a> {
    hour: chrono::NaiveDateTime,
    reason: &'a str,
    outcome: &'a str,
    calls: i64,
    duration_sum: i64,
    durations: i64,
}

prepared_once!(CountHour);

impl<DB> diesel::query_builder::QueryFragment<DB> for CountHour<'_>
where
    DB: diesel::backend::Backend,
    chrono::NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
    str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql(
            "INSERT INTO call_hours (hour, reason, outcome, calls, duration_sum, durations) \
             VALUES (",
        );
        out.push_bind_param::<Timestamp, _>(&self.hour)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.reason)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(self.outcome)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.calls)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.duration_sum)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.durations)?;
        out.push_sql(
            ") ON CONFLICT (hour, reason, outcome) DO UPDATE SET \
             calls = call_hours.calls + excluded.calls, \
             duration_sum = call_hours.duration_sum + excluded.duration_sum, \
             durations = call_hours.durations + excluded.durations",
        );
        Ok(())
    }
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
    pub reason: Option<Reason>,
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
        q = q.filter(calls::reason.eq(*reason));
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
    pub reason: Reason,
    #[diesel(sql_type = Text)]
    pub outcome: Outcome,
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

/// The calls of a period counted by (reason, outcome), and by UTC hour.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub groups: Vec<GroupCount>,
    pub hours: Vec<HourCount>,
}

/// Totals by (reason, outcome) and calls per UTC hour for `from <= received_at < to`: whole
/// hours from `call_hours`, the partial hours at either end from `calls` (index range scans of
/// under an hour each). Brussels is a whole number of hours from UTC, so local hours and days
/// are unions of these hours.
pub fn stats(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Counts> {
    let mut groups = Vec::new();
    let mut hours = Vec::new();
    if to <= from {
        return Ok(Counts { groups, hours });
    }
    let first_full = {
        let h = hour_of(from);
        if h == from {
            h
        } else {
            h + chrono::Duration::hours(1)
        }
    };
    let end_full = hour_of(to);
    if first_full < end_full {
        groups.extend(rollup_groups(conn, first_full, end_full)?);
        hours.extend(rollup_hours(conn, first_full, end_full)?);
        for (a, b) in [(from, first_full), (end_full, to)] {
            if a < b {
                groups.extend(raw_groups(conn, a, b)?);
                hours.extend(raw_hours(conn, a, b)?);
            }
        }
    } else {
        groups.extend(raw_groups(conn, from, to)?);
        hours.extend(raw_hours(conn, from, to)?);
    }
    hours.sort_by_key(|h| h.hour);
    Ok(Counts { groups, hours })
}

fn rollup_groups(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<GroupCount>> {
    const SQL: &str = "SELECT reason, outcome, CAST(SUM(calls) AS BIGINT) AS calls, \
        CAST(SUM(duration_sum) AS BIGINT) AS duration_sum, CAST(SUM(durations) AS BIGINT) AS durations \
        FROM call_hours WHERE hour >= {from} AND hour < {to} GROUP BY reason, outcome";
    bind_range(conn, SQL, from, to)
}

fn rollup_hours(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<HourCount>> {
    const SQL: &str = "SELECT hour, CAST(SUM(calls) AS BIGINT) AS calls FROM call_hours \
        WHERE hour >= {from} AND hour < {to} GROUP BY hour";
    bind_range(conn, SQL, from, to)
}

fn raw_groups(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<GroupCount>> {
    const SQL: &str = "SELECT reason, outcome, COUNT(*) AS calls, \
        CAST(SUM(duration_seconds) AS BIGINT) AS duration_sum, COUNT(duration_seconds) AS durations \
        FROM calls WHERE received_at >= {from} AND received_at < {to} GROUP BY reason, outcome";
    bind_range(conn, SQL, from, to)
}

fn raw_hours(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<HourCount>> {
    // Short ranges (under two hours): one indexed count per UTC hour they touch.
    let mut out = Vec::new();
    let mut hour = hour_of(from);
    while hour < to {
        let next = hour + chrono::Duration::hours(1);
        let n: i64 = calls::table
            .filter(calls::received_at.ge(from.max(hour)))
            .filter(calls::received_at.lt(to.min(next)))
            .count()
            .get_result(conn)?;
        if n > 0 {
            out.push(HourCount { hour, calls: n });
        }
        hour = next;
    }
    Ok(out)
}

/// Runs `sql` with `{from}` and `{to}` bound as timestamps, in each dialect's placeholders.
fn bind_range<T>(
    conn: &mut DbConnection,
    sql: &str,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<T>>
where
    T: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
{
    match conn {
        DbConnection::Sqlite(c) => {
            diesel::sql_query(sql.replace("{from}", "?").replace("{to}", "?"))
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(to)
                .load(c)
        }
        DbConnection::Pg(c) => diesel::sql_query(sql.replace("{from}", "$1").replace("{to}", "$2"))
            .bind::<Timestamp, _>(from)
            .bind::<Timestamp, _>(to)
            .load(c),
    }
}

/// The call centre's switch: taking calls or not, since when, and by whom.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = call_centre)]
pub struct Centre {
    pub status: CentreStatus,
    pub changed_at: chrono::NaiveDateTime,
    pub changed_by: Option<String>,
}

/// Every call logged reads it: once per writer's batch (`db::batch`), typed per backend so
/// that the concrete connection caches the prepared statement. On PostgreSQL the row is read
/// `FOR SHARE`: a transaction changing the switch waits for the transactions that read it (a
/// batch of calls) to end, and those that read it after see the change; SQLite's writer runs
/// one write at a time anyway.
pub fn centre(conn: &mut DbConnection) -> QueryResult<Centre> {
    super::batch::centre(|| match conn {
        DbConnection::Sqlite(c) => call_centre::table
            .find(1)
            .select(Centre::as_select())
            .first(c),
        DbConnection::Pg(c) => call_centre::table
            .find(1)
            .select(Centre::as_select())
            .for_share()
            .first(c),
    })
}

pub fn set_centre(
    conn: &mut DbConnection,
    status: CentreStatus,
    at: chrono::NaiveDateTime,
    by: Option<&str>,
) -> QueryResult<()> {
    super::batch::forget_centre();
    diesel::update(call_centre::table.find(1))
        .set((
            call_centre::status.eq(status),
            call_centre::changed_at.eq(at),
            call_centre::changed_by.eq(by),
        ))
        .execute(conn)
        .map(drop)
}

/// The starts of the first and the last hour with a call (the coordinators' chart).
pub fn hour_range(conn: &mut DbConnection) -> QueryResult<Option<HourRange>> {
    use super::schema::call_hours;
    let (first, last): (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) =
        call_hours::table
            .select((
                diesel::dsl::min(call_hours::hour),
                diesel::dsl::max(call_hours::hour),
            ))
            .first(conn)?;
    Ok(first
        .zip(last)
        .map(|(first, last)| HourRange { first, last }))
}

/// The first and the last hour with a call.
#[derive(Debug, Clone, Copy)]
pub struct HourRange {
    pub first: chrono::NaiveDateTime,
    pub last: chrono::NaiveDateTime,
}

/// Removes the notes and the caller's number of calls received before `before`; the counts,
/// reasons, outcomes, durations and the hourly statistics stay. Returns the calls changed.
pub fn purge_personal(
    conn: &mut DbConnection,
    before: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    use super::schema::calls;
    diesel::update(
        calls::table.filter(calls::received_at.lt(before)).filter(
            calls::notes
                .is_not_null()
                .or(calls::caller_phone.is_not_null()),
        ),
    )
    .set((
        calls::notes.eq(None::<String>),
        calls::caller_phone.eq(None::<String>),
        // The hash of the request held the number and the notes too.
        calls::request_hash.eq(None::<String>),
        calls::idempotency_key.eq(None::<String>),
    ))
    .execute(conn)
}
