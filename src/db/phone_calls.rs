//! The telephone system's side (CONTRACT §4.9): the PBXs' tokens and the calls they report,
//! one row per PBX call, which each event of that call fills in.

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamp};

use super::schema::{calls, patients, pbx_tokens, phone_calls, users};
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

/// The PBXs' tokens, revoked ones too, oldest first, after the id `after`.
pub fn list_pbx(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<PbxRow>> {
    let mut q = pbx_tokens::table
        .order(pbx_tokens::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(pbx_tokens::id.gt(after.to_string()));
    }
    q.load(conn)
}

/// Revokes a live PBX token; false if there is none with this id.
pub fn revoke_pbx(
    conn: &mut DbConnection,
    id: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        pbx_tokens::table
            .find(id)
            .filter(pbx_tokens::revoked_at.is_null()),
    )
    .set(pbx_tokens::revoked_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
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
/// `{contains}` is the backend's `instr`/`strpos`: whether this answer's extension already
/// answered the call (a repeated event after a transfer changes nothing).
const RECORD: &str = "INSERT INTO phone_calls (id, pbx_id, pbx_call_id, direction, from_number, \
    to_number, queue, started_at, answered_at, ended_at, cause, answered_by, answering_number, \
    answerers) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
    ON CONFLICT (pbx_id, pbx_call_id) DO UPDATE SET \
    from_number = CASE WHEN phone_calls.from_number = '' THEN excluded.from_number ELSE phone_calls.from_number END, \
    to_number = CASE WHEN phone_calls.to_number = '' THEN excluded.to_number ELSE phone_calls.to_number END, \
    queue = COALESCE(phone_calls.queue, excluded.queue), \
    answered_at = COALESCE(phone_calls.answered_at, excluded.answered_at), \
    ended_at = COALESCE(phone_calls.ended_at, excluded.ended_at), \
    cause = COALESCE(phone_calls.cause, excluded.cause), \
    answered_by = CASE WHEN excluded.answering_number IS NULL OR {seen} THEN phone_calls.answered_by \
        ELSE COALESCE(excluded.answered_by, phone_calls.answered_by) END, \
    answering_number = CASE WHEN excluded.answering_number IS NULL OR {seen} \
        THEN phone_calls.answering_number ELSE excluded.answering_number END, \
    answerers = CASE WHEN excluded.answering_number IS NULL OR {seen} THEN phone_calls.answerers \
        ELSE phone_calls.answerers || excluded.answerers END \
    RETURNING id, direction, from_number, started_at, answered_at, ended_at, callback_id, \
    answered_by, call_id";

/// The statement for each backend: SQLite's numbered parameters are `?N`.
static RECORD_SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    RECORD
        .replace("{seen}", "instr(phone_calls.answerers || $15, $16) > 0")
        .replace('$', "?")
});
static RECORD_PG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    RECORD.replace("{seen}", "strpos(phone_calls.answerers || $15, $16) > 0")
});

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
    #[diesel(sql_type = Nullable<Text>)]
    pub answered_by: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub call_id: Option<String>,
}

impl Recorded {
    /// Who has the call now (the screen pop's view of it).
    pub fn holder(&self) -> Holder {
        Holder {
            id: self.id.clone(),
            answered_by: self.answered_by.clone(),
            ended_at: self.ended_at,
            call_id: self.call_id.clone(),
        }
    }

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
                .bind::<Nullable<Text>, _>(answering.as_deref())
                // The answerers: each a newline and the number, so that `\n201\n` is found
                // in them (with a newline added at the end) only if 201 answered.
                .bind::<Text, _>(
                    answering
                        .as_ref()
                        .map_or(String::new(), |n| format!("\n{n}")),
                )
                .bind::<Text, _>("\n")
                .bind::<Text, _>(
                    answering
                        .as_ref()
                        .map_or(String::new(), |n| format!("\n{n}\n")),
                )
                .get_result::<Recorded>($c)
        };
    }
    let row = match conn {
        DbConnection::Sqlite(c) => run!(c, RECORD_SQLITE.as_str()),
        DbConnection::Pg(c) => run!(c, RECORD_PG.as_str()),
    }?;
    if ended {
        fill_duration(conn, &row)?;
    }
    Ok(row)
}

/// A PBX call whole, as the demo writes its history (the events write theirs with
/// [`record`]).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = phone_calls)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewPhoneCall {
    pub id: String,
    pub pbx_id: String,
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
    pub answering_number: Option<String>,
    pub call_id: Option<String>,
    /// The callback its missed call opened or joined.
    pub callback_id: Option<String>,
}

/// Multi-row inserts, in chunks under SQLite's bound-parameter limit.
pub fn insert_many(conn: &mut DbConnection, rows: &[NewPhoneCall]) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(phone_calls::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
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
    /// Seconds from the answer to the hangup, once both happened.
    pub fn talk_seconds(&self) -> Option<i32> {
        talk_seconds(self.answered_at, self.ended_at)
    }

    /// An inbound call that ended before anyone answered.
    pub fn missed(&self) -> bool {
        self.direction == Direction::In && self.answered_at.is_none() && self.ended_at.is_some()
    }
}

/// One call by its id.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<PhoneCallRow>> {
    phone_calls::table
        .find(id)
        .select(PhoneCallRow::as_select())
        .first(conn)
        .optional()
}

/// Links a PBX call to the call an agent logged for it; false if another call already is.
/// A hangup recorded between the agent's reading of the PBX call and this link (it saw no
/// logged call to give its duration to) is caught here: the duration is filled in now.
pub fn link(conn: &mut DbConnection, id: &str, call_id: &str) -> QueryResult<bool> {
    let linked: Option<(Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>)> =
        diesel::update(
            phone_calls::table
                .find(id)
                .filter(phone_calls::call_id.is_null()),
        )
        .set(phone_calls::call_id.eq(call_id))
        .returning((phone_calls::answered_at, phone_calls::ended_at))
        .get_result(conn)
        .optional()?;
    let Some((answered, ended)) = linked else {
        return Ok(false);
    };
    if let Some(talk) = talk_seconds(answered, ended) {
        give_duration(conn, call_id, talk)?;
    }
    Ok(true)
}

/// Seconds from the answer to the hangup, once both happened.
fn talk_seconds(
    answered: Option<chrono::NaiveDateTime>,
    ended: Option<chrono::NaiveDateTime>,
) -> Option<i32> {
    i32::try_from((ended? - answered?).num_seconds().max(0)).ok()
}

/// A hangup after the agent logged the call gives that call its duration, unless it has one.
fn fill_duration(conn: &mut DbConnection, row: &Recorded) -> QueryResult<()> {
    match (&row.call_id, talk_seconds(row.answered_at, row.ended_at)) {
        (Some(call_id), Some(talk)) => give_duration(conn, call_id, talk),
        _ => Ok(()),
    }
}

/// The logged call `call_id` takes the PBX's talk time, unless it has a duration.
fn give_duration(conn: &mut DbConnection, call_id: &str, talk: i32) -> QueryResult<()> {
    diesel::update(
        calls::table
            .find(call_id)
            .filter(calls::duration_seconds.is_null()),
    )
    .set(calls::duration_seconds.eq(talk))
    .execute(conn)
    .map(drop)
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

/// When an inbound call started, was answered and ended.
pub type InboundTimes = (
    chrono::NaiveDateTime,
    Option<chrono::NaiveDateTime>,
    Option<chrono::NaiveDateTime>,
);

/// The inbound calls that started in `[from, to)`, oldest first: what the statistics count.
pub fn inbound_times(
    conn: &mut DbConnection,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> QueryResult<Vec<InboundTimes>> {
    phone_calls::table
        .filter(phone_calls::direction.eq(Direction::In))
        .filter(phone_calls::started_at.ge(from))
        .filter(phone_calls::started_at.lt(to))
        .order(phone_calls::started_at)
        .select((
            phone_calls::started_at,
            phone_calls::answered_at,
            phone_calls::ended_at,
        ))
        .load(conn)
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
    match numbers {
        [] => Ok(Vec::new()),
        // One number (a callback asked for, a missed call): a statement prepared once per
        // connection; diesel prepares an `IN` list again at every run on SQLite.
        [number] => patients::table
            .filter(patients::phone.eq(number))
            .select((patients::phone, patients::id))
            .order(patients::id)
            .load(conn),
        _ => patients::table
            .filter(patients::phone.eq_any(numbers))
            .select((patients::phone, patients::id))
            .order(patients::id)
            .load(conn),
    }
}

/// Who has a call now, and in what state: the account that answered it last, whether it has
/// ended, and whether an agent logged it already.
#[derive(Debug, Clone, Queryable)]
pub struct Holder {
    pub id: String,
    pub answered_by: Option<String>,
    pub ended_at: Option<chrono::NaiveDateTime>,
    pub call_id: Option<String>,
}

/// The current call of each of `accounts`: the latest answered by it since `answered_since`,
/// not logged yet, and going on or ended after `ended_since`. One query for all of them, by
/// `phone_calls_answered_by`; the accounts without one are absent.
pub fn current_of(
    conn: &mut DbConnection,
    accounts: &[String],
    answered_since: chrono::NaiveDateTime,
    ended_since: chrono::NaiveDateTime,
) -> QueryResult<Vec<Holder>> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Holder> = phone_calls::table
        .filter(phone_calls::answered_by.eq_any(accounts))
        .filter(phone_calls::answered_at.ge(answered_since))
        .filter(phone_calls::call_id.is_null())
        .filter(
            phone_calls::ended_at
                .is_null()
                .or(phone_calls::ended_at.ge(ended_since)),
        )
        .order((
            phone_calls::answered_by,
            phone_calls::answered_at.desc(),
            phone_calls::id.desc(),
        ))
        .select((
            phone_calls::id,
            phone_calls::answered_by,
            phone_calls::ended_at,
            phone_calls::call_id,
        ))
        // A few calls per agent at most, given the windows; a cap all the same.
        .limit(accounts.len() as i64 * 20)
        .load(conn)?;
    let mut latest: Vec<Holder> = Vec::with_capacity(accounts.len());
    for row in rows {
        if latest.last().map(|l| &l.answered_by) != Some(&row.answered_by) {
            latest.push(row);
        }
    }
    Ok(latest)
}
