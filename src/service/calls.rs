//! Calls to the call centre: logging one (once per key, whatever the retries), listing them,
//! their statistics, and the call centre's switch.

use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::db::{self, calls::CallFilter, calls::CallRow, DbConnection};
use crate::domain::call::{
    local_series, Bucket, CentreStatus, IdempotencyKey, NewCall, Outcome, Reason,
};
use crate::domain::Faults;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// What logging a call did: created it, or found the same call under its key.
pub enum Logged {
    Created(CallRow),
    Replayed(CallRow),
}

/// The request as the client sent it, by this account: a replay under the same key matches it
/// exactly (a default such as "now" is not part of it).
fn request_hash(caller: &Caller, call: &NewCall) -> String {
    let mut canonical = serde_json::json!([
        caller.id,
        call.received_at.map(crate::domain::time::utc),
        call.caller_phone.as_ref().map(|p| p.as_str()),
        call.patient_id,
        call.appointment_id,
        call.reason.as_str(),
        call.outcome.as_str(),
        call.duration_seconds,
        call.notes,
        call.callback_requested,
    ]);
    // Only when sent: the hashes of keys stored before these fields existed stay the same.
    if let Some(fields) = canonical.as_array_mut() {
        if let Some(due) = call.callback_due_at {
            fields.push(serde_json::json!(crate::domain::time::utc(due)));
        }
        if let Some(phone_call) = &call.phone_call_id {
            fields.push(serde_json::json!({ "phone_call_id": phone_call }));
        }
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn call_row(call: NewCall, now: chrono::NaiveDateTime) -> CallRow {
    CallRow {
        id: uuid::Uuid::now_v7().to_string(),
        received_at: call.received_at.unwrap_or(now),
        caller_phone: call.caller_phone.map(|p| p.as_str().to_string()),
        patient_id: call.patient_id,
        appointment_id: call.appointment_id,
        reason: call.reason,
        outcome: call.outcome,
        duration_seconds: call.duration_seconds,
        notes: call.notes,
        callback_requested: call.callback_requested,
        agent_id: None,
        idempotency_key: None,
        request_hash: None,
        import_id: None,
        created_at: now,
    }
}

/// The call [`log`] would store, made the same way, stored nowhere (the calls benchmark's
/// HTTP ceiling).
pub fn unstored(caller: &Caller, call: NewCall, key: Option<IdempotencyKey>) -> CallRow {
    prepared(caller, call, key, crate::domain::now())
}

/// The row of a call by `caller` under `key`, with the hash a replay must match.
fn prepared(
    caller: &Caller,
    call: NewCall,
    key: Option<IdempotencyKey>,
    now: chrono::NaiveDateTime,
) -> CallRow {
    let hash = key.as_ref().map(|_| request_hash(caller, &call));
    let mut row = call_row(call, now);
    row.request_hash = hash;
    row.idempotency_key = key.map(|k| k.as_str().to_string());
    row.agent_id = caller.id.clone();
    row
}

/// Logs a call by `caller`, once per key: `POST /calls` and the agents' page.
pub async fn log(
    state: &AppState,
    caller: Caller,
    call: NewCall,
    key: Option<IdempotencyKey>,
) -> AppResult<Logged> {
    let now = crate::domain::now();
    let links = Links {
        phone_call: call.phone_call_id.clone(),
        callback: (call.outcome == Outcome::CallbackScheduled)
            .then(|| call.callback_due_at.unwrap_or(now)),
        now,
    };
    let row = prepared(&caller, call, key, now);
    let key = row.idempotency_key.clone();
    let logged = state
        .db
        .write_grouped(key, move |conn| {
            insert_call(conn, &caller, row.clone(), &links)
        })
        .await?;
    if let Logged::Created(_) = logged {
        state.metrics.calls_logged.inc();
    }
    Ok(logged)
}

/// The references a call names must exist, and its appointment must be the patient's.
fn check_references(conn: &mut DbConnection, row: &CallRow) -> AppResult<()> {
    let mut f = Faults::default();
    if let Some(p) = &row.patient_id {
        if db::patients::find(conn, p)?.is_none() {
            f.push("patient_id", "no such patient");
        }
    }
    if let Some(a) = &row.appointment_id {
        match db::appointments::find(conn, a)? {
            None => f.push("appointment_id", "no such appointment"),
            Some(appt)
                if row
                    .patient_id
                    .as_ref()
                    .is_some_and(|p| *p != appt.patient_id) =>
            {
                f.push("appointment_id", "is not an appointment of this patient")
            }
            Some(_) => {}
        }
    }
    Ok(f.finish(Some(()))?)
}

fn check_centre(conn: &mut DbConnection) -> AppResult<()> {
    if db::calls::centre(conn)?.status != CentreStatus::Active {
        return Err(AppError::Conflict(
            "the call centre is deactivated: calls are not being logged".into(),
        ));
    }
    Ok(())
}

/// Checks and inserts the call with its audit entry, in one go on the writer: no read before
/// it, as a new key is the common case. The unique index on the key is what guarantees one
/// call per key, on both backends: a request that loses the race to another with the same key
/// answers with the winner (same body) or a 422 (another body). A `callback_scheduled` call
/// opens its callback in the same transaction, and a call that names its PBX call links it;
/// a replay does neither again.
fn insert_call(
    conn: &mut DbConnection,
    caller: &Caller,
    mut row: CallRow,
    links: &Links,
) -> AppResult<Logged> {
    // In the transaction: no call is stored once the switch is off. A replay of a call logged
    // before it went off still answers with that call.
    let checked = check_centre(conn)
        .and_then(|()| check_references(conn, &row))
        .and_then(|()| from_phone_call(conn, &mut row, links.phone_call.as_deref()))
        .and_then(|()| {
            links
                .callback
                .map(|_| super::callbacks::phone_of_call(conn, &row))
                .transpose()
        });
    let phone = match checked {
        Ok(phone) => phone,
        Err(refused) => {
            // Only a refusal (409, 422) may be a replay; a database error is answered as it is
            // (on PostgreSQL the transaction is aborted and could not read the key anyway).
            if !matches!(refused, AppError::Conflict(_) | AppError::Validation(_)) {
                return Err(refused);
            }
            return match find_key(conn, &row)? {
                Some(existing) => replay(existing, &row),
                None => Err(refused),
            };
        }
    };
    // A call without links may go in with the other calls of its batch, in one statement.
    let inserted = if links.phone_call.is_none() && links.callback.is_none() {
        db::calls::insert_or_defer(conn, &row)?
    } else {
        db::calls::try_insert(conn, &row)?
    };
    if !inserted {
        let existing = find_key(conn, &row)?.ok_or_else(|| {
            AppError::Conflict("this Idempotency-Key is being used right now; retry".into())
        })?;
        return replay(existing, &row);
    }
    if let Some(phone_call) = &links.phone_call {
        // Two agents logging one PBX call at once: the second finds it linked and stores
        // nothing (its call is undone with its transaction).
        if !db::phone_calls::link(conn, phone_call, &row.id)? {
            return Err(already_logged());
        }
    }
    crate::audit::record(
        conn,
        caller,
        "call.create",
        Some(&format!("call:{}", row.id)),
        serde_json::json!({ "patient": row.patient_id, "reason": row.reason, "outcome": row.outcome }),
    )?;
    if let (Some(due_at), Some(phone)) = (links.callback, phone) {
        super::callbacks::open_requested(conn, caller, &row, phone, due_at, links.now)?;
    }
    Ok(Logged::Created(row))
}

/// What a call logged leads to besides itself.
struct Links {
    /// The PBX call it is (`phone_calls.id`).
    phone_call: Option<String>,
    /// When its callback is due, for a `callback_scheduled` call.
    callback: Option<chrono::NaiveDateTime>,
    now: chrono::NaiveDateTime,
}

fn already_logged() -> AppError {
    AppError::Conflict("this phone call is already logged".into())
}

/// A call linked to its PBX call takes the PBX's time, caller's number and duration (talk
/// time, once the call has ended; a hangup after the call is logged fills it in).
fn from_phone_call(
    conn: &mut DbConnection,
    row: &mut CallRow,
    phone_call: Option<&str>,
) -> AppResult<()> {
    let Some(id) = phone_call else { return Ok(()) };
    let Some(pbx) = db::phone_calls::find(conn, id)? else {
        return Err(AppError::validation("phone_call_id", "no such phone call"));
    };
    if pbx.call_id.is_some() {
        return Err(already_logged());
    }
    row.received_at = pbx.started_at;
    // `anonymous`, an extension: no number to keep.
    if let Ok(phone) = crate::domain::contact::PhoneE164::parse(&pbx.from_number) {
        row.caller_phone = Some(phone.as_str().to_string());
    }
    if let Some(talk) = pbx.talk_seconds() {
        row.duration_seconds = Some(talk);
    }
    Ok(())
}

/// The call already logged under this request's key, if it has one.
fn find_key(conn: &mut DbConnection, row: &CallRow) -> AppResult<Option<CallRow>> {
    match &row.idempotency_key {
        Some(key) => Ok(db::calls::find_by_key(conn, key)?),
        None => Ok(None),
    }
}

fn replay(existing: CallRow, request: &CallRow) -> AppResult<Logged> {
    if existing.request_hash == request.request_hash {
        Ok(Logged::Replayed(existing))
    } else {
        Err(AppError::validation(
            "Idempotency-Key",
            "was already used for another call; use a new key for a new call",
        ))
    }
}

/// Calls matching `filter`, newest first (`fetch` of them); the reading is audited (calls
/// carry patients, phone numbers and notes).
pub async fn list(
    state: &AppState,
    caller: Caller,
    filter: CallFilter,
    fetch: i64,
) -> AppResult<Vec<CallRow>> {
    state
        .db
        .write(move |conn| {
            let rows = db::calls::list(conn, &filter, fetch)?;
            crate::audit::record(
                conn,
                &caller,
                "call.list",
                None,
                serde_json::json!({
                    "reason": filter.reason, "patient": filter.patient_id,
                    "callback_requested": filter.callback_requested, "rows": rows.len(),
                }),
            )?;
            Ok::<_, AppError>(rows)
        })
        .await
}

/// The statistics of calls: totals by reason and outcome, the mean duration, and calls per
/// Brussels hour or day.
#[derive(Debug, Clone)]
pub struct Statistics {
    pub total: i64,
    /// Mean over the calls whose duration is known; none when none is.
    pub avg_duration_seconds: Option<f64>,
    pub by_reason: std::collections::BTreeMap<&'static str, i64>,
    pub by_outcome: std::collections::BTreeMap<&'static str, i64>,
    pub series: Vec<(chrono::DateTime<chrono_tz::Tz>, i64)>,
}

/// The end of time for statistics without `to`: on an hour, after any call a clock can log.
fn open_end() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(9999, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(chrono::NaiveDateTime::MAX)
}

/// [`Statistics`] of the calls received from `from` (default: the first) to `to` (default:
/// now), computed by the database.
pub async fn stats(
    state: &AppState,
    from: Option<chrono::NaiveDateTime>,
    to: Option<chrono::NaiveDateTime>,
    bucket: Bucket,
) -> AppResult<Statistics> {
    let open = to.is_none();
    let to = to.unwrap_or_else(|| crate::domain::now() + chrono::Duration::seconds(1));
    // An open end reads whole hours only: both defaults fall on an hour, so the hourly counts
    // answer alone and no partial hour is read from `calls` (that one grew with the calls of
    // the current hour: 60,000 of them in the ten-minute soak made every such query slower).
    let (start, end) = (
        from.unwrap_or(chrono::DateTime::UNIX_EPOCH.naive_utc()),
        if open { open_end() } else { to },
    );
    let db::calls::Counts { groups, hours } = state
        .db
        .read(move |conn| db::calls::stats(conn, start, end).map_err(AppError::from))
        .await?;
    let mut by_reason: std::collections::BTreeMap<&'static str, i64> =
        Reason::ALL.iter().map(|r| (r.as_str(), 0)).collect();
    let mut by_outcome: std::collections::BTreeMap<&'static str, i64> =
        Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect();
    let (mut total, mut duration_sum, mut durations) = (0i64, 0i64, 0i64);
    for g in &groups {
        *by_reason.entry(g.reason.as_str()).or_default() += g.calls;
        *by_outcome.entry(g.outcome.as_str()).or_default() += g.calls;
        total += g.calls;
        duration_sum += g.duration_sum.unwrap_or(0);
        durations += g.durations;
    }
    let hours: Vec<(chrono::NaiveDateTime, i64)> =
        hours.into_iter().map(|h| (h.hour, h.calls)).collect();
    // Without `from` and `to`, the series spans the calls themselves.
    let series_from = from.or_else(|| hours.first().map(|h| h.0)).unwrap_or(to);
    let series_to = if open {
        hours
            .last()
            .map_or(to, |h| h.0 + chrono::Duration::hours(1))
    } else {
        to
    };
    let series = local_series(&hours, bucket, series_from, series_to)
        .map_err(|e| AppError::validation("from", e.0))?;
    Ok(Statistics {
        total,
        avg_duration_seconds: (durations > 0).then(|| duration_sum as f64 / durations as f64),
        by_reason,
        by_outcome,
        series,
    })
}

/// The call centre's switch and how many calls it has logged.
#[derive(Debug, Clone)]
pub struct Centre {
    pub status: CentreStatus,
    pub changed_at: chrono::NaiveDateTime,
    pub calls_total: i64,
}

pub fn centre_of(conn: &mut DbConnection) -> AppResult<Centre> {
    let db::calls::Centre {
        status, changed_at, ..
    } = db::calls::centre(conn)?;
    Ok(Centre {
        status,
        changed_at,
        calls_total: db::calls::count(conn)?,
    })
}

pub async fn centre(state: &AppState) -> AppResult<Centre> {
    state.db.read(centre_of).await
}

/// Switches the call centre on or off (audited when it changes): the API and the board.
pub async fn set_centre(
    state: &AppState,
    caller: Caller,
    status: CentreStatus,
) -> AppResult<Centre> {
    state
        .db
        .write(move |conn| {
            let before = db::calls::centre(conn)?.status;
            if before != status {
                db::calls::set_centre(conn, status, crate::domain::now(), caller.id.as_deref())?;
                crate::audit::record(
                    conn,
                    &caller,
                    "call_centre.update",
                    Some("call_centre"),
                    serde_json::json!({ "from": before, "to": status }),
                )?;
            }
            centre_of(conn)
        })
        .await
}

/// Anonymises the calls received before `before` (their phone, patient and notes), once the
/// call centre is off (else a 409), audited as `call.purge`; returns how many.
pub fn purge(
    conn: &mut DbConnection,
    caller: &Caller,
    before: chrono::NaiveDateTime,
) -> AppResult<usize> {
    if db::calls::centre(conn)?.status != CentreStatus::Deactivated {
        return Err(AppError::Conflict(
            "the call centre is still active: deactivate it first (PUT /api/v1/call-centre)".into(),
        ));
    }
    let n = db::calls::purge_personal(conn, before)?;
    crate::audit::record(
        conn,
        caller,
        "call.purge",
        None,
        serde_json::json!({ "before": crate::domain::time::utc(before), "rows": n }),
    )?;
    Ok(n)
}
