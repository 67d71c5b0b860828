//! Callbacks (CONTRACT §4.9): opened by missed calls (in the PBX's own short write) and by
//! agents' promises (in the call's transaction); the worklist; claims and attempts.
//!
//! The rule that keeps it simple: each change is one conditional statement that the database
//! decides (the partial unique index for "one open callback per number", a conditional
//! `UPDATE` for "one agent per callback"), never a read followed by a write that assumes it.

use crate::auth::Caller;
use crate::db::callbacks::{AttemptRow, CallbackFilter, CallbackRow};
use crate::db::phone_calls::Recorded;
use crate::db::{self, DbConnection};
use crate::domain::callback::{self, Outcome, Source};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The patient whose phone is `phone`, when exactly one patient has it: a number shared by a
/// family opens a callback without a patient, and the agent finds out who answers.
fn sole_patient(conn: &mut DbConnection, phone: &str) -> diesel::QueryResult<Option<String>> {
    let mut found = db::phone_calls::patients_with_phones(conn, &[phone.to_string()])?;
    Ok(if found.len() == 1 {
        found.pop().map(|m| m.patient_id)
    } else {
        None
    })
}

/// Opens `row` unless its number has an open callback; answers the open callback's id and
/// whether it is `row`. One statement, which the partial unique index decides.
fn open_or_join(conn: &mut DbConnection, row: &CallbackRow) -> diesel::QueryResult<(String, bool)> {
    let id = db::callbacks::open_or_join(conn, row)?;
    let opened = id == row.id;
    Ok((id, opened))
}

/// After a PBX event, in its write: a missed inbound call from a telephone number opens a
/// callback for it or joins the open one; a call answered after its hangup was recorded
/// (events out of order) leaves the callback it opened, which goes if nothing else uses it.
/// `anonymous` and extensions open none. Not audited: no person did it.
pub fn after_pbx_event(
    conn: &mut DbConnection,
    call: &Recorded,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    match (&call.callback_id, call.missed()) {
        (None, true) => {
            let Some(phone) = callback::callable(&call.from_number) else {
                return Ok(());
            };
            let patient = sole_patient(conn, phone.as_str())?;
            let mut row = CallbackRow::open(
                phone.as_str().to_string(),
                patient,
                Source::MissedCall,
                now,
                now,
            );
            row.missed_at = Some(call.started_at);
            let (id, _) = open_or_join(conn, &row)?;
            db::callbacks::link_phone_call(conn, &call.id, Some(&id))
        }
        (Some(id), false) => {
            db::callbacks::link_phone_call(conn, &call.id, None)?;
            db::callbacks::drop_if_untouched(conn, id).map(drop)
        }
        _ => Ok(()),
    }
}

/// The call `call` (just logged, outcome `callback_scheduled`) opens a `requested` callback
/// of `phone` due at `due_at`, or moves the number's open callback to that time. Audited as
/// `callback.open`.
pub fn open_requested(
    conn: &mut DbConnection,
    caller: &Caller,
    call: &db::calls::CallRow,
    phone: String,
    due_at: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    let patient = match &call.patient_id {
        Some(p) => Some(p.clone()),
        None => sole_patient(conn, &phone)?,
    };
    let mut row = CallbackRow::open(phone, patient, Source::Requested, due_at, now);
    row.call_id = Some(call.id.clone());
    let (id, opened) = open_or_join(conn, &row)?;
    if !opened {
        db::callbacks::request_on(conn, &id, due_at, &call.id)?;
    }
    crate::audit::record(
        conn,
        caller,
        "callback.open",
        Some(&format!("callback:{id}")),
        serde_json::json!({ "call": call.id, "source": Source::Requested, "joined": !opened }),
    )?;
    Ok(())
}

/// The phone a `callback_scheduled` call is called back on: its caller's, else its patient's.
pub fn phone_of_call(conn: &mut DbConnection, call: &db::calls::CallRow) -> AppResult<String> {
    if let Some(phone) = &call.caller_phone {
        return Ok(phone.clone());
    }
    if let Some(p) = &call.patient_id {
        if let Some(phone) = db::patients::find(conn, p)?.and_then(|p| p.phone) {
            return Ok(phone);
        }
    }
    Err(AppError::validation(
        "caller_phone",
        "a call with outcome callback_scheduled needs the number to call back: give \
         caller_phone, or a patient_id whose patient has a phone",
    ))
}

/// A callback of the worklist with how many missed calls it gathers.
#[derive(Debug, Clone)]
pub struct Listed {
    pub callback: CallbackRow,
    pub missed_calls: i64,
    /// The status a reader sees now.
    pub status: callback::Status,
}

fn listed(
    conn: &mut DbConnection,
    rows: Vec<CallbackRow>,
    now: chrono::NaiveDateTime,
) -> AppResult<Vec<Listed>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let counts = db::callbacks::missed_calls(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|callback| Listed {
            missed_calls: counts
                .iter()
                .find(|(id, _)| *id == callback.id)
                .map_or(0, |(_, n)| *n),
            status: callback.status(now),
            callback,
        })
        .collect())
}

/// The worklist, oldest due first (audited as `callback.list`: it holds callers' numbers).
pub async fn list(
    state: &AppState,
    caller: Caller,
    filter: CallbackFilter,
    fetch: i64,
) -> AppResult<Vec<Listed>> {
    let now = crate::domain::now();
    state
        .db
        .write(move |conn| {
            let rows = db::callbacks::list(conn, &filter, now, fetch)?;
            crate::audit::record(
                conn,
                &caller,
                "callback.list",
                None,
                serde_json::json!({ "status": filter.status, "rows": rows.len() }),
            )?;
            listed(conn, rows, now)
        })
        .await
}

/// Takes the claim of callback `id` for the caller, or says why not: 404 unknown, 409
/// closed or held by another agent.
fn take(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    now: chrono::NaiveDateTime,
) -> AppResult<String> {
    let agent = caller
        .id
        .clone()
        .ok_or_else(|| AppError::Forbidden("only an account can claim a callback".into()))?;
    if db::callbacks::claim(conn, id, &agent, now)? == 1 {
        return Ok(agent);
    }
    match db::callbacks::find(conn, id)? {
        None => Err(AppError::NotFound("no such callback".into())),
        Some(cb) if cb.status.is_closed() => Err(AppError::Conflict(format!(
            "this callback is closed ({})",
            cb.status
        ))),
        Some(_) => Err(AppError::Conflict(
            "another agent holds this callback; it is free again 15 minutes after its claim".into(),
        )),
    }
}

fn read(conn: &mut DbConnection, id: &str, now: chrono::NaiveDateTime) -> AppResult<Listed> {
    let row = db::callbacks::find(conn, id)?
        .ok_or_else(|| AppError::NotFound("no such callback".into()))?;
    listed(conn, vec![row], now)?
        .pop()
        .ok_or_else(|| AppError::NotFound("no such callback".into()))
}

/// Claims callback `id` for the caller (again, if it is already theirs), audited as
/// `callback.claim`.
pub async fn claim(state: &AppState, caller: Caller, id: String) -> AppResult<Listed> {
    let now = crate::domain::now();
    state
        .db
        .write(move |conn| {
            take(conn, &caller, &id, now)?;
            crate::audit::record(
                conn,
                &caller,
                "callback.claim",
                Some(&format!("callback:{id}")),
                serde_json::json!({}),
            )?;
            read(conn, &id, now)
        })
        .await
}

/// Records an attempt on callback `id` by the caller, who holds its claim or takes it now
/// (a free callback needs no separate claim); audited as `callback.attempt`. `reached` and
/// `wrong_number` close it, the others put it back later, unclaimed, until the
/// `max_attempts`-th failure makes it `unreachable`.
pub async fn attempt(
    state: &AppState,
    caller: Caller,
    id: String,
    outcome: Outcome,
    note: Option<String>,
) -> AppResult<(AttemptRow, Listed)> {
    let now = crate::domain::now();
    let max_attempts = state.settings.callback_attempts;
    state
        .db
        .write(move |conn| {
            let agent = take(conn, &caller, &id, now)?;
            // The claim just taken holds the row (PostgreSQL locks it until the commit; SQLite
            // writes one at a time): the count read here is the one updated.
            let before = read(conn, &id, now)?.callback;
            let next = callback::after_attempt(outcome, before.attempts, max_attempts, now);
            let row = AttemptRow {
                id: uuid::Uuid::now_v7().to_string(),
                callback_id: id.clone(),
                agent: Some(agent),
                outcome,
                note,
                at: now,
            };
            db::callbacks::insert_attempt(conn, &row)?;
            db::callbacks::apply(conn, &id, next, outcome == Outcome::Reached, now)?;
            let after = read(conn, &id, now)?;
            crate::audit::record(
                conn,
                &caller,
                "callback.attempt",
                Some(&format!("callback:{id}")),
                serde_json::json!({
                    "attempt": row.id, "outcome": outcome, "status": after.status,
                    "attempts": after.callback.attempts,
                }),
            )?;
            Ok((row, after))
        })
        .await
}

/// The callbacks' figures of `/metrics` and the board.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Open, claimed ones included.
    pub open: i64,
    /// Seconds since the oldest open callback was opened; 0 when none is.
    pub oldest_open_seconds: f64,
    /// Median seconds from the first missed call to the patient reached, over the callbacks
    /// reached since the figures' start (`/metrics`: the last [`MEDIAN_DAYS`] days).
    pub reached_median_seconds: Option<f64>,
}

/// The period the reached median covers.
pub const MEDIAN_DAYS: i64 = 7;

/// The callbacks open at `now`, and the median time to reach a patient over the callbacks
/// reached since `since`.
pub async fn figures(
    state: &AppState,
    now: chrono::NaiveDateTime,
    since: chrono::NaiveDateTime,
) -> AppResult<Figures> {
    state
        .db
        .read(move |conn| figures_on(conn, now, since))
        .await
}

fn figures_on(
    conn: &mut DbConnection,
    now: chrono::NaiveDateTime,
    since: chrono::NaiveDateTime,
) -> AppResult<Figures> {
    let (open, oldest) = db::callbacks::census(conn)?;
    let reached = db::callbacks::reached_since(conn, since)?;
    let seconds = reached
        .into_iter()
        .map(|(missed, reached)| (reached - missed).num_milliseconds().max(0) as f64 / 1000.0)
        .collect();
    Ok(Figures {
        open,
        oldest_open_seconds: oldest
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        reached_median_seconds: crate::domain::median(seconds),
    })
}
