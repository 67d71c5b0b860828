//! Callbacks and their attempts (CONTRACT §4.9). At most one open callback per number: the
//! partial unique index `callbacks_open_phone`, named by every insert's `ON CONFLICT`, so two
//! instances recording missed calls of one number at once open one callback.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamp};

use super::schema::{callback_attempts, callbacks, phone_calls};
use super::DbConnection;
use crate::domain::callback::{Next, Outcome, Source, Status, CLAIM_LEASE};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = callbacks)]
#[diesel(treat_none_as_default_value = false)]
pub struct CallbackRow {
    pub id: String,
    /// E.164.
    pub phone: String,
    /// The patient whose phone this is, when exactly one patient has it (or the call's).
    pub patient_id: Option<String>,
    pub source: Source,
    pub due_at: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<chrono::NaiveDateTime>,
    /// Failed attempts.
    pub attempts: i32,
    /// As stored: `open`, `done` or `unreachable` (see [`CallbackRow::status`]).
    pub status: Status,
    pub done_at: Option<chrono::NaiveDateTime>,
    pub reached_at: Option<chrono::NaiveDateTime>,
    /// When the first missed call of a `missed_call` callback began.
    pub missed_at: Option<chrono::NaiveDateTime>,
    /// The call whose agent promised it (`requested`).
    pub call_id: Option<String>,
}

impl CallbackRow {
    /// The status a reader sees at `now` (`claimed` while a claim is live).
    pub fn status(&self, now: chrono::NaiveDateTime) -> Status {
        Status::of(self.status, self.claimed_at, now)
    }

    /// A new open callback.
    pub fn open(
        phone: String,
        patient_id: Option<String>,
        source: Source,
        due_at: chrono::NaiveDateTime,
        now: chrono::NaiveDateTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            phone,
            patient_id,
            source,
            due_at,
            created_at: now,
            claimed_by: None,
            claimed_at: None,
            attempts: 0,
            status: Status::Open,
            done_at: None,
            reached_at: None,
            missed_at: None,
            call_id: None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = callback_attempts)]
#[diesel(treat_none_as_default_value = false)]
pub struct AttemptRow {
    pub id: String,
    pub callback_id: String,
    pub agent: Option<String>,
    pub outcome: Outcome,
    pub note: Option<String>,
    pub at: chrono::NaiveDateTime,
}

/// Inserts an open callback unless one is open for its number, in one statement; answers the
/// id of the number's open callback (`row`'s if it was inserted). The conflicting row is
/// locked (a no-op update), so on PostgreSQL a callback being closed or removed elsewhere at
/// that moment is waited for, and then either joined while still open or replaced by `row`.
pub fn open_or_join(conn: &mut DbConnection, row: &CallbackRow) -> QueryResult<String> {
    per_backend!(conn, |c| OpenOrJoin(row).get_result::<String>(c))
}

/// The statement of [`open_or_join`], written out so that it has a static query id: diesel
/// prepares a `sql_query` (and any `ON CONFLICT … DO UPDATE`) again at every run, and this one
/// runs for every call that asks for a callback and every missed call.
struct OpenOrJoin<'a>(&'a CallbackRow);

prepared_once!(OpenOrJoin);

impl diesel::query_builder::Query for OpenOrJoin<'_> {
    type SqlType = Text;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for OpenOrJoin<'_>
where
    DB: diesel::backend::Backend,
    chrono::NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
    str: diesel::serialize::ToSql<Text, DB>,
    String: diesel::serialize::ToSql<Text, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        let row = self.0;
        out.push_sql(
            "INSERT INTO callbacks (id, phone, patient_id, source, due_at, created_at, \
             attempts, status, missed_at, call_id) VALUES (",
        );
        out.push_bind_param::<Text, _>(row.id.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(row.phone.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.patient_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(row.source.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.due_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.created_at)?;
        out.push_sql(", 0, 'open', ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&row.missed_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.call_id)?;
        out.push_sql(
            ") ON CONFLICT (phone) WHERE status = 'open' DO UPDATE SET phone = excluded.phone \
             RETURNING id",
        );
        Ok(())
    }
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<CallbackRow>> {
    callbacks::table
        .find(id)
        .select(CallbackRow::as_select())
        .first(conn)
        .optional()
}

/// Points a PBX call at the callback its missed call opened or joined.
pub fn link_phone_call(
    conn: &mut DbConnection,
    phone_call_id: &str,
    callback_id: Option<&str>,
) -> QueryResult<()> {
    diesel::update(phone_calls::table.find(phone_call_id))
        .set(phone_calls::callback_id.eq(callback_id))
        .execute(conn)
        .map(drop)
}

/// Removes a callback that a call's hangup opened before its `answer` arrived (events out of
/// order): only while no other missed call, no agent and no attempt has touched it.
pub fn drop_if_untouched(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    // On PostgreSQL, the callback's row first: a missed call joining it at this moment (which
    // locks it too) is either counted below or finds it gone and opens another.
    if let DbConnection::Pg(c) = conn {
        let locked: Option<String> = callbacks::table
            .find(id)
            .select(callbacks::id)
            .for_update()
            .first(c)
            .optional()?;
        if locked.is_none() {
            return Ok(false);
        }
    }
    let others: i64 = phone_calls::table
        .filter(phone_calls::callback_id.eq(id))
        .count()
        .get_result(conn)?;
    if others > 0 {
        return Ok(false);
    }
    let n = diesel::delete(
        callbacks::table
            .filter(callbacks::id.eq(id))
            .filter(callbacks::status.eq(Status::Open))
            .filter(callbacks::source.eq(Source::MissedCall))
            .filter(callbacks::attempts.eq(0))
            .filter(callbacks::claimed_at.is_null())
            .filter(callbacks::call_id.is_null()),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// An agent's promise joins the number's open callback: due when the agent said, and the
/// call that promised it.
pub fn request_on(
    conn: &mut DbConnection,
    id: &str,
    due_at: chrono::NaiveDateTime,
    call_id: &str,
) -> QueryResult<()> {
    let update = RequestOn {
        id,
        due_at,
        call_id,
    };
    per_backend!(conn, |c| update.execute(c)).map(drop)
}

/// The statement of [`request_on`], with a static query id: diesel prepares an `UPDATE` again
/// at every run, and this one runs for every call that asks for a callback on a number that
/// has one open.
struct RequestOn<'a> {
    id: &'a str,
    due_at: chrono::NaiveDateTime,
    call_id: &'a str,
}

prepared_once!(RequestOn);

impl<DB> diesel::query_builder::QueryFragment<DB> for RequestOn<'_>
where
    DB: diesel::backend::Backend,
    chrono::NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
    str: diesel::serialize::ToSql<Text, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql("UPDATE callbacks SET due_at = ");
        out.push_bind_param::<Timestamp, _>(&self.due_at)?;
        out.push_sql(", call_id = ");
        out.push_bind_param::<Text, _>(self.call_id)?;
        out.push_sql(", source = ");
        out.push_bind_param::<Text, _>(Source::Requested.as_str())?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        Ok(())
    }
}

/// Claims an open callback for `agent` at `now`, in one conditional statement: only when no
/// other agent holds a live claim. 1 when claimed (or claimed again by the same agent), 0
/// otherwise (unknown, closed, or held by another agent). On PostgreSQL a concurrent claim
/// waits for the row and then re-reads it, so two agents never both get 1.
pub fn claim(
    conn: &mut DbConnection,
    id: &str,
    agent: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let lapsed = now - CLAIM_LEASE;
    diesel::update(
        callbacks::table
            .filter(callbacks::id.eq(id))
            .filter(callbacks::status.eq(Status::Open))
            .filter(
                callbacks::claimed_at
                    .is_null()
                    .or(callbacks::claimed_at.le(lapsed))
                    .or(callbacks::claimed_by.eq(agent)),
            ),
    )
    .set((
        callbacks::claimed_by.eq(agent),
        callbacks::claimed_at.eq(now),
    ))
    .execute(conn)
}

/// Callbacks whole and their attempts, in chunks (the demo's history).
pub fn insert_many(
    conn: &mut DbConnection,
    rows: &[CallbackRow],
    attempts: &[AttemptRow],
) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(callbacks::table)
            .values(chunk)
            .execute(c))?;
    }
    for chunk in attempts.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(
            callback_attempts::table
        )
        .values(chunk)
        .execute(c))?;
    }
    Ok(())
}

pub fn insert_attempt(conn: &mut DbConnection, row: &AttemptRow) -> QueryResult<()> {
    diesel::insert_into(callback_attempts::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Applies an attempt's consequence: closed (claim kept, as who closed it), or back on the
/// worklist unclaimed.
pub fn apply(
    conn: &mut DbConnection,
    id: &str,
    next: Next,
    reached: bool,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    let target = callbacks::table.find(id);
    match next {
        Next::Done => diesel::update(target)
            .set((
                callbacks::status.eq(Status::Done),
                callbacks::done_at.eq(now),
                callbacks::reached_at.eq(reached.then_some(now)),
            ))
            .execute(conn),
        Next::Unreachable { attempts } => diesel::update(target)
            .set((
                callbacks::status.eq(Status::Unreachable),
                callbacks::attempts.eq(attempts),
                callbacks::done_at.eq(now),
            ))
            .execute(conn),
        Next::Retry { attempts, due_at } => diesel::update(target)
            .set((
                callbacks::attempts.eq(attempts),
                callbacks::due_at.eq(due_at),
                callbacks::claimed_by.eq(None::<String>),
                callbacks::claimed_at.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(conn),
    }
    .map(drop)
}

#[derive(Debug, Clone)]
pub struct CallbackFilter {
    pub status: Option<Status>,
    /// Only those still to do: open and claimed (the agents' page).
    pub pending: bool,
    /// Keyset cursor: callbacks due strictly after this (due_at, id).
    pub after: Option<(chrono::NaiveDateTime, String)>,
}

/// Oldest due first, by (due_at, id); `claimed` and `open` are told apart by the claim's age.
pub fn list(
    conn: &mut DbConnection,
    f: &CallbackFilter,
    now: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<CallbackRow>> {
    let lapsed = now - CLAIM_LEASE;
    let mut q = callbacks::table
        .select(CallbackRow::as_select())
        .order((callbacks::due_at.asc(), callbacks::id.asc()))
        .limit(limit)
        .into_boxed();
    if f.pending {
        q = q.filter(callbacks::status.eq(Status::Open));
    }
    match f.status {
        None => {}
        Some(Status::Open) => {
            q = q.filter(callbacks::status.eq(Status::Open)).filter(
                callbacks::claimed_at
                    .is_null()
                    .or(callbacks::claimed_at.le(lapsed)),
            )
        }
        Some(Status::Claimed) => {
            q = q
                .filter(callbacks::status.eq(Status::Open))
                .filter(callbacks::claimed_at.gt(lapsed))
        }
        Some(closed) => q = q.filter(callbacks::status.eq(closed)),
    }
    if let Some((at, id)) = &f.after {
        q = q.filter(
            callbacks::due_at
                .gt(*at)
                .or(callbacks::due_at.eq(*at).and(callbacks::id.gt(id.clone()))),
        );
    }
    q.load(conn)
}

/// Missed calls per callback, for these callbacks.
pub fn missed_calls(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<(String, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Option<String>, i64)> = phone_calls::table
        .filter(phone_calls::callback_id.eq_any(ids))
        .group_by(phone_calls::callback_id)
        .select((phone_calls::callback_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id, n)))
        .collect())
}

/// Open callbacks (claimed ones included) and when the oldest of them was opened.
pub fn census(conn: &mut DbConnection) -> QueryResult<(i64, Option<chrono::NaiveDateTime>)> {
    let open = callbacks::table.filter(callbacks::status.eq(Status::Open));
    let count: i64 = open.count().get_result(conn)?;
    let oldest: Option<chrono::NaiveDateTime> = open
        .select(diesel::dsl::min(callbacks::created_at))
        .first(conn)?;
    Ok((count, oldest))
}

/// Most reached callbacks the median of `/metrics` reads.
pub const MEDIAN_SAMPLE: i64 = 10_000;

/// (first missed call, reached) of the missed-call callbacks reached since `since`, the most
/// recent [`MEDIAN_SAMPLE`].
pub fn reached_since(
    conn: &mut DbConnection,
    since: chrono::NaiveDateTime,
) -> QueryResult<Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime)>> {
    let rows: Vec<(Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>)> =
        callbacks::table
            .filter(callbacks::reached_at.ge(since))
            .filter(callbacks::missed_at.is_not_null())
            .order(callbacks::reached_at.desc())
            .limit(MEDIAN_SAMPLE)
            .select((callbacks::missed_at, callbacks::reached_at))
            .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, r)| Some((m?, r?)))
        .collect())
}
