//! The telephone system's side (CONTRACT §4.9): the PBXs' tokens and the calls they report,
//! one row per PBX call, which each event of that call fills in.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamp};

use super::schema::{patients, pbx_tokens, phone_calls, users};
use super::DbConnection;
use crate::domain::cti::{Cause, Direction, Event, EventKind};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pbx_tokens)]
#[diesel(treat_none_as_default_value = false)]
pub struct PbxRow {
    pub id: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: chrono::NaiveDateTime,
    pub revoked_at: Option<chrono::NaiveDateTime>,
}

pub fn insert_pbx(conn: &mut DbConnection, row: &PbxRow) -> QueryResult<()> {
    diesel::insert_into(pbx_tokens::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The id of the PBX whose live token has this hash.
pub fn pbx_by_token_hash(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<String>> {
    pbx_tokens::table
        .filter(pbx_tokens::token_hash.eq(hash))
        .filter(pbx_tokens::revoked_at.is_null())
        .select(pbx_tokens::id)
        .first(conn)
        .optional()
}

/// The live account whose extension is the first of `names` that is one.
pub fn account_of_extension(
    conn: &mut DbConnection,
    names: &[String],
) -> QueryResult<Option<String>> {
    if names.is_empty() {
        return Ok(None);
    }
    let found: Vec<(String, Option<String>)> = users::table
        .filter(users::extension.eq_any(names))
        .filter(users::deleted_at.is_null())
        .select((users::id, users::extension))
        .load(conn)?;
    Ok(names.iter().find_map(|name| {
        found
            .iter()
            .find(|(_, ext)| ext.as_deref() == Some(name.as_str()))
            .map(|(id, _)| id.clone())
    }))
}

/// One statement per event: the call's row is created by whichever event comes first, and
/// each event fills in only what it knows and what is still empty, so an event repeated or
/// arriving out of order changes nothing more. A later `answer` (a transfer) names the agent
/// who has the call now.
const RECORD: &str = "INSERT INTO phone_calls (id, pbx_id, pbx_call_id, direction, from_number, \
    to_number, queue, started_at, answered_at, ended_at, cause, answered_by, answering_number) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
    ON CONFLICT (pbx_id, pbx_call_id) DO UPDATE SET \
    from_number = CASE WHEN phone_calls.from_number = '' THEN excluded.from_number ELSE phone_calls.from_number END, \
    to_number = CASE WHEN phone_calls.to_number = '' THEN excluded.to_number ELSE phone_calls.to_number END, \
    queue = COALESCE(phone_calls.queue, excluded.queue), \
    answered_at = COALESCE(phone_calls.answered_at, excluded.answered_at), \
    ended_at = COALESCE(phone_calls.ended_at, excluded.ended_at), \
    cause = COALESCE(phone_calls.cause, excluded.cause), \
    answered_by = COALESCE(excluded.answered_by, phone_calls.answered_by), \
    answering_number = COALESCE(excluded.answering_number, phone_calls.answering_number) \
    RETURNING id, direction, from_number, started_at, answered_at, ended_at, callback_id";

/// The PBX call's row as an event left it: what its callback depends on.
#[derive(Debug, Clone, QueryableByName)]
pub struct Recorded {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub direction: Direction,
    #[diesel(sql_type = Text)]
    pub from_number: String,
    #[diesel(sql_type = Timestamp)]
    pub started_at: chrono::NaiveDateTime,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub answered_at: Option<chrono::NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub ended_at: Option<chrono::NaiveDateTime>,
    /// The callback its missed call opened or joined.
    #[diesel(sql_type = Nullable<Text>)]
    pub callback_id: Option<String>,
}

impl Recorded {
    /// An inbound call that ended before anyone answered.
    pub fn missed(&self) -> bool {
        self.direction == Direction::In && self.answered_at.is_none() && self.ended_at.is_some()
    }
}

/// Records an event of the PBX `pbx_id`, received at `now`; answers the call's row as it is
/// now (the same statement: `RETURNING`).
pub fn record(
    conn: &mut DbConnection,
    pbx_id: &str,
    event: &Event,
    answered_by: Option<String>,
    now: chrono::NaiveDateTime,
) -> QueryResult<Recorded> {
    let answered = event.kind == EventKind::Answer;
    let ended = event.kind == EventKind::Hangup;
    let answering = answered
        .then(|| event.answered_by.first().cloned())
        .flatten();
    macro_rules! run {
        ($c:expr, $sql:expr) => {
            diesel::sql_query($sql)
                .bind::<Text, _>(uuid::Uuid::now_v7().to_string())
                .bind::<Text, _>(pbx_id)
                .bind::<Text, _>(&event.call_id)
                .bind::<Text, _>(event.direction.as_str())
                .bind::<Text, _>(&event.from)
                .bind::<Text, _>(&event.to)
                .bind::<Nullable<Text>, _>(event.queue.as_deref())
                .bind::<Timestamp, _>(now)
                .bind::<Nullable<Timestamp>, _>(answered.then_some(now))
                .bind::<Nullable<Timestamp>, _>(ended.then_some(now))
                .bind::<Nullable<Text>, _>(event.cause.filter(|_| ended).map(Cause::as_str))
                .bind::<Nullable<Text>, _>(answered_by.filter(|_| answered))
                .bind::<Nullable<Text>, _>(answering)
                .get_result::<Recorded>($c)
        };
    }
    match conn {
        DbConnection::Sqlite(c) => run!(c, RECORD.replace('$', "?")),
        DbConnection::Pg(c) => run!(c, RECORD),
    }
}

/// A call as the PBX reported it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = phone_calls)]
pub struct PhoneCallRow {
    pub id: String,
    pub pbx_call_id: String,
    pub direction: Direction,
    pub from_number: String,
    pub to_number: String,
    pub queue: Option<String>,
    pub started_at: chrono::NaiveDateTime,
    pub answered_at: Option<chrono::NaiveDateTime>,
    pub ended_at: Option<chrono::NaiveDateTime>,
    pub cause: Option<Cause>,
    pub answered_by: Option<String>,
    pub call_id: Option<String>,
    /// The callback its missed call opened or joined.
    pub callback_id: Option<String>,
}

impl PhoneCallRow {
    /// An inbound call that ended before anyone answered.
    pub fn missed(&self) -> bool {
        self.direction == Direction::In && self.answered_at.is_none() && self.ended_at.is_some()
    }
}

#[derive(Debug, Default, Clone)]
pub struct PhoneCallFilter {
    pub from: Option<chrono::NaiveDateTime>,
    pub to: Option<chrono::NaiveDateTime>,
    pub missed: Option<bool>,
    /// Keyset cursor: calls strictly older than this (started_at, id).
    pub before: Option<(chrono::NaiveDateTime, String)>,
}

/// Newest first, by (started_at, id).
pub fn list(
    conn: &mut DbConnection,
    f: &PhoneCallFilter,
    limit: i64,
) -> QueryResult<Vec<PhoneCallRow>> {
    let mut q = phone_calls::table
        .select(PhoneCallRow::as_select())
        .order((phone_calls::started_at.desc(), phone_calls::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(from) = f.from {
        q = q.filter(phone_calls::started_at.ge(from));
    }
    if let Some(to) = f.to {
        q = q.filter(phone_calls::started_at.lt(to));
    }
    let missed = phone_calls::direction
        .eq(Direction::In)
        .and(phone_calls::answered_at.is_null())
        .and(phone_calls::ended_at.is_not_null());
    match f.missed {
        Some(true) => q = q.filter(missed),
        Some(false) => q = q.filter(diesel::dsl::not(missed)),
        None => {}
    }
    if let Some((at, id)) = &f.before {
        q = q.filter(
            phone_calls::started_at.lt(*at).or(phone_calls::started_at
                .eq(*at)
                .and(phone_calls::id.lt(id.clone()))),
        );
    }
    q.load(conn)
}

/// A patient whose phone is a number.
#[derive(Debug, Clone, Queryable)]
pub struct PhoneMatch {
    pub phone: Option<String>,
    pub patient_id: String,
}

/// The patients whose phone is one of `numbers` (E.164), by the phone index.
pub fn patients_with_phones(
    conn: &mut DbConnection,
    numbers: &[String],
) -> QueryResult<Vec<PhoneMatch>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    patients::table
        .filter(patients::phone.eq_any(numbers))
        .select((patients::phone, patients::id))
        .order(patients::id)
        .load(conn)
}
