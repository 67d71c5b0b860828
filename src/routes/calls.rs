//! `/api/v1/calls` and `/api/v1/call-centre`: log calls in a few keystrokes, never twice.

use actix_web::http::header::HeaderName;
use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{parse_instant, utc, ApiJson, ApiQuery, Fields, Page, PageRequest};
use crate::auth::{perm, Caller, Granted};
use crate::db::{self, calls::CallFilter, calls::CallRow, DbConnection};
use crate::domain::call::{local_series, parse_duration, parse_notes, Bucket, Outcome, Reason};
use crate::domain::{Invalid, PhoneE164};
use crate::error::{AppError, AppResult, Problem};
use crate::state::AppState;

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCall {
    /// RFC 3339; default now.
    pub received_at: Option<String>,
    /// Any Belgian or international format; stored as E.164.
    pub caller_phone: Option<String>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    /// `appointment_status`, `reschedule_request`, `cancellation`, `medical_question`,
    /// `prescription`, `results`, `administrative` or `other`.
    #[schema(example = "appointment_status")]
    pub reason: String,
    /// `informed`, `forwarded_to_service`, `callback_scheduled`, `appointment_cancelled` or
    /// `abandoned`.
    #[schema(example = "informed")]
    pub outcome: String,
    pub duration_seconds: Option<i64>,
    /// At most 2,000 characters.
    pub notes: Option<String>,
    #[serde(default)]
    pub callback_requested: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallResponse {
    pub id: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub caller_phone: Option<String>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    pub reason: String,
    pub outcome: String,
    pub duration_seconds: Option<i32>,
    pub notes: Option<String>,
    pub callback_requested: bool,
    /// Account id of the agent who logged it.
    pub agent_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<CallRow> for CallResponse {
    fn from(r: CallRow) -> Self {
        Self {
            id: r.id,
            received_at: utc(r.received_at),
            caller_phone: r.caller_phone,
            patient_id: r.patient_id,
            appointment_id: r.appointment_id,
            reason: r.reason,
            outcome: r.outcome,
            duration_seconds: r.duration_seconds,
            notes: r.notes,
            callback_requested: r.callback_requested,
            agent_id: r.agent_id,
            created_at: utc(r.created_at),
        }
    }
}

fn idempotency_key(req: &HttpRequest) -> AppResult<Option<String>> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    parse_idempotency_key(value.to_str().unwrap_or("")).map(Some)
}

/// A client's key for one call (the `Idempotency-Key` header, or the call form's hidden field).
pub fn parse_idempotency_key(raw: &str) -> AppResult<String> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::validation(
            "Idempotency-Key",
            "must be 1 to 200 visible ASCII characters",
        ));
    }
    Ok(key.to_string())
}

/// Checks a call's fields into a row (without id, agent or key).
fn call_row(b: &CreateCall, now: chrono::NaiveDateTime) -> AppResult<CallRow> {
    let mut f = Fields::new();
    let received_at = match &b.received_at {
        None => Some(now),
        Some(raw) => f.check(
            "received_at",
            parse_instant(raw).and_then(|t| not_future(t, now)),
        ),
    };
    let phone = f.check_opt(
        "caller_phone",
        b.caller_phone.as_deref().filter(|s| !s.trim().is_empty()),
        PhoneE164::parse,
    );
    let reason = f.check("reason", Reason::parse(&b.reason));
    let outcome = f.check("outcome", Outcome::parse(&b.outcome));
    let duration = f.check_opt("duration_seconds", b.duration_seconds, parse_duration);
    let notes = f.check_opt("notes", b.notes.as_deref(), parse_notes);
    f.finish((|| {
        Some(CallRow {
            id: uuid::Uuid::now_v7().to_string(),
            received_at: received_at?,
            caller_phone: phone?.map(|p| p.as_str().to_string()),
            patient_id: b.patient_id.clone(),
            appointment_id: b.appointment_id.clone(),
            reason: reason?.as_str().into(),
            outcome: outcome?.as_str().into(),
            duration_seconds: duration?,
            notes: notes?.flatten(),
            callback_requested: b.callback_requested,
            agent_id: None,
            idempotency_key: None,
            request_hash: None,
            import_id: None,
            created_at: now,
        })
    })())
}

/// A call cannot have been received more than a few minutes in the future (clock skew).
fn not_future(
    t: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> Result<chrono::NaiveDateTime, Invalid> {
    if t > now + chrono::Duration::minutes(5) {
        Err(Invalid("is in the future".into()))
    } else {
        Ok(t)
    }
}

/// What a logged call answers: created, or the same call again for a replayed key.
pub enum Logged {
    Created(CallRow),
    Replayed(CallRow),
}

/// The references a call names must exist, and its appointment must be the patient's.
fn check_references(conn: &mut DbConnection, row: &CallRow) -> AppResult<()> {
    let mut f = Fields::new();
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
    f.finish(Some(()))
}

fn check_centre(conn: &mut DbConnection) -> AppResult<()> {
    let (status, _, _) = db::calls::centre(conn)?;
    if status != "active" {
        return Err(AppError::Conflict(
            "the call centre is deactivated: calls are not being logged".into(),
        ));
    }
    Ok(())
}

/// Checks and inserts the call with its audit entry, in one go on the writer: no read before
/// it, as a new key is the common case. The unique index on the key is what guarantees one
/// call per key, on both backends: a request that loses the race to another with the same key
/// answers with the winner (same body) or a 422 (another body).
fn insert_call(conn: &mut DbConnection, caller: &Caller, row: CallRow) -> AppResult<Logged> {
    // In the transaction: no call is stored once the switch is off. A replay of a call logged
    // before it went off still answers with that call.
    if let Err(refused) = check_centre(conn).and_then(|()| check_references(conn, &row)) {
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
    if !db::calls::try_insert(conn, &row)? {
        let existing = find_key(conn, &row)?.ok_or_else(|| {
            AppError::Conflict("this Idempotency-Key is being used right now; retry".into())
        })?;
        return replay(existing, &row);
    }
    crate::audit::record(
        conn,
        caller,
        "call.create",
        Some(&format!("call:{}", row.id)),
        serde_json::json!({ "patient": row.patient_id, "reason": row.reason, "outcome": row.outcome }),
    )?;
    Ok(Logged::Created(row))
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

/// Log a call. With an `Idempotency-Key`, the same request again answers 200 with the same
/// call, even when the two arrive at once; the same key with another body is a 422.
#[utoipa::path(
    tag = "calls",
    request_body = CreateCall,
    params(("Idempotency-Key" = Option<String>, Header, description = "one call per key")),
    responses(
        (status = 201, body = CallResponse),
        (status = 200, body = CallResponse, description = "a replay of a key already used"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "the call centre is deactivated"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/calls")]
pub async fn create(
    caller: Granted<perm::LogCalls>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<CreateCall>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let key = idempotency_key(&req)?;
    Ok(match log_call(&state, caller.caller, b, key).await? {
        Logged::Created(row) => HttpResponse::Created().json(CallResponse::from(row)),
        Logged::Replayed(row) => HttpResponse::Ok().json(CallResponse::from(row)),
    })
}

/// Logs a call by `caller`, once per key: `POST /calls` and the agents' page.
pub async fn log_call(
    state: &AppState,
    caller: Caller,
    b: CreateCall,
    key: Option<String>,
) -> AppResult<Logged> {
    let mut row = call_row(&b, crate::domain::now())?;
    if let Some(key) = key {
        // The request as sent (before defaults), by this account: a replay matches it exactly.
        let canonical = serde_json::to_string(&(caller.id.as_deref(), &b)).unwrap_or_default();
        row.request_hash = Some(hex::encode(Sha256::digest(canonical.as_bytes())));
        row.idempotency_key = Some(key);
    }
    row.agent_id = caller.id.clone();
    let logged = state
        .db
        .write(move |conn| insert_call(conn, &caller, row))
        .await?;
    if let Logged::Created(_) = logged {
        state.metrics.calls_logged.inc();
    }
    Ok(logged)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallQuery {
    /// Calls received at or after (RFC 3339).
    pub from: Option<String>,
    /// Calls received before (RFC 3339).
    pub to: Option<String>,
    pub reason: Option<String>,
    pub patient_id: Option<String>,
    pub callback_requested: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn encode_cursor(r: &CallRow) -> String {
    format!("{}~{}", r.received_at.and_utc().timestamp_micros(), r.id)
}

fn decode_cursor(raw: &str) -> Result<(chrono::NaiveDateTime, String), Invalid> {
    let bad = || Invalid("is not a cursor of this list".into());
    let (micros, id) = raw.split_once('~').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at.naive_utc(), id.to_string()))
}

/// List calls, newest first.
#[utoipa::path(
    tag = "calls",
    params(CallQuery),
    responses(
        (status = 200, body = Page<CallResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/calls")]
pub async fn list(
    caller: Granted<perm::ReadCalls>,
    state: web::Data<AppState>,
    query: ApiQuery<CallQuery>,
) -> AppResult<web::Json<Page<CallResponse>>> {
    let q = query.parse()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let mut f = Fields::new();
    let from = f.check_opt("from", q.from.as_deref(), parse_instant);
    let to = f.check_opt("to", q.to.as_deref(), parse_instant);
    let reason = f.check_opt("reason", q.reason.as_deref(), Reason::parse);
    let before = f.check_opt("cursor", page.cursor.as_deref(), decode_cursor);
    let filter = f.finish((|| {
        Some(CallFilter {
            from: from?,
            to: to?,
            reason: reason?.map(|r| r.as_str().to_string()),
            patient_id: q.patient_id.clone(),
            callback_requested: q.callback_requested,
            before: before?,
        })
    })())?;
    let fetch = page.fetch();
    let caller = caller.caller;
    let rows = state
        .db
        .write(move |conn| {
            let rows = db::calls::list(conn, &filter, fetch)?;
            // Calls carry patients, phone numbers and notes: reading them is audited.
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
        .await?;
    Ok(web::Json(page.page(
        rows,
        encode_cursor,
        CallResponse::from,
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Calls received at or after (RFC 3339); default: the first call.
    pub from: Option<String>,
    /// Calls received before (RFC 3339); default: now.
    pub to: Option<String>,
    /// `hour` or `day` (default), in Brussels local time.
    pub bucket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the bucket, Brussels local time with its offset.
    pub start: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallStats {
    pub total: i64,
    /// Mean over the calls whose duration is known; null when none is.
    pub avg_duration_seconds: Option<f64>,
    #[schema(value_type = Object)]
    pub by_reason: std::collections::BTreeMap<String, i64>,
    #[schema(value_type = Object)]
    pub by_outcome: std::collections::BTreeMap<String, i64>,
    pub series: Vec<SeriesPoint>,
}

/// The end of time for statistics without `to`: on an hour, after any call a clock can log.
fn open_end() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(9999, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(chrono::NaiveDateTime::MAX)
}

/// Call statistics, computed by the database: totals by reason and outcome, mean duration,
/// and calls per Brussels hour or day.
#[utoipa::path(
    tag = "calls",
    params(StatsQuery),
    responses(
        (status = 200, body = CallStats),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/calls/stats")]
pub async fn stats(
    _caller: Granted<perm::ReadCalls>,
    state: web::Data<AppState>,
    query: ApiQuery<StatsQuery>,
) -> AppResult<web::Json<CallStats>> {
    let q = query.parse()?;
    let mut f = Fields::new();
    let from = f.check_opt("from", q.from.as_deref(), parse_instant);
    let to = f.check_opt("to", q.to.as_deref(), parse_instant);
    let bucket = f.check_opt("bucket", q.bucket.as_deref(), Bucket::parse);
    let (from, to, bucket) = f.finish((|| Some((from?, to?, bucket?.unwrap_or(Bucket::Day))))())?;
    call_stats(&state, from, to, bucket).await.map(web::Json)
}

/// The statistics of `GET /calls/stats` (also the coordinators' chart).
pub async fn call_stats(
    state: &AppState,
    from: Option<chrono::NaiveDateTime>,
    to: Option<chrono::NaiveDateTime>,
    bucket: Bucket,
) -> AppResult<CallStats> {
    let open = to.is_none();
    let to = to.unwrap_or_else(|| crate::domain::now() + chrono::Duration::seconds(1));
    // An open end reads whole hours only: both defaults fall on an hour, so the hourly counts
    // answer alone and no partial hour is read from `calls` (that one grew with the calls of
    // the current hour: 60,000 of them in the ten-minute soak made every such query slower).
    let (start, end) = (
        from.unwrap_or(chrono::DateTime::UNIX_EPOCH.naive_utc()),
        if open { open_end() } else { to },
    );
    let (groups, hours) = state
        .db
        .read(move |conn| db::calls::stats(conn, start, end).map_err(AppError::from))
        .await?;
    let mut by_reason: std::collections::BTreeMap<String, i64> = Reason::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), 0))
        .collect();
    let mut by_outcome: std::collections::BTreeMap<String, i64> = Outcome::ALL
        .iter()
        .map(|o| (o.as_str().to_string(), 0))
        .collect();
    let (mut total, mut duration_sum, mut durations) = (0i64, 0i64, 0i64);
    for g in &groups {
        *by_reason.entry(g.reason.clone()).or_default() += g.calls;
        *by_outcome.entry(g.outcome.clone()).or_default() += g.calls;
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
    Ok(CallStats {
        total,
        avg_duration_seconds: (durations > 0).then(|| duration_sum as f64 / durations as f64),
        by_reason,
        by_outcome,
        series: series
            .into_iter()
            .map(|(start, count)| SeriesPoint {
                start: start.to_rfc3339(),
                count,
            })
            .collect(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallCentreResponse {
    /// `active` or `deactivated`.
    pub status: String,
    pub changed_at: chrono::DateTime<chrono::Utc>,
    pub calls_total: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetCallCentre {
    /// `active` or `deactivated`.
    pub status: String,
}

pub fn centre_response(conn: &mut DbConnection) -> AppResult<CallCentreResponse> {
    let (status, changed_at, _) = db::calls::centre(conn)?;
    Ok(CallCentreResponse {
        status,
        changed_at: utc(changed_at),
        calls_total: db::calls::count(conn)?,
    })
}

/// Whether the call centre is taking calls, and how many it has logged.
#[utoipa::path(
    tag = "calls",
    responses(
        (status = 200, body = CallCentreResponse),
        (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/call-centre")]
pub async fn centre(
    _caller: Granted<perm::ManageCallCentre>,
    state: web::Data<AppState>,
) -> AppResult<web::Json<CallCentreResponse>> {
    let body = state.db.read(centre_response).await?;
    Ok(web::Json(body))
}

/// Activate or deactivate the call centre (audited).
#[utoipa::path(
    tag = "calls",
    request_body = SetCallCentre,
    responses(
        (status = 200, body = CallCentreResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[put("/call-centre")]
pub async fn set_centre(
    caller: Granted<perm::ManageCallCentre>,
    state: web::Data<AppState>,
    body: ApiJson<SetCallCentre>,
) -> AppResult<web::Json<CallCentreResponse>> {
    let b = body.parse().await?;
    set_centre_status(&state, caller.caller, b.status)
        .await
        .map(web::Json)
}

/// Switches the call centre on or off (audited when it changes): the API and the board.
pub async fn set_centre_status(
    state: &AppState,
    caller: Caller,
    status: String,
) -> AppResult<CallCentreResponse> {
    if !matches!(status.as_str(), "active" | "deactivated") {
        return Err(AppError::validation(
            "status",
            "must be active or deactivated",
        ));
    }
    state
        .db
        .write(move |conn| {
            let (before, _, _) = db::calls::centre(conn)?;
            if before != status {
                db::calls::set_centre(conn, &status, crate::domain::now(), caller.id.as_deref())?;
                crate::audit::record(
                    conn,
                    &caller,
                    "call_centre.update",
                    Some("call_centre"),
                    serde_json::json!({ "from": before, "to": status }),
                )?;
            }
            centre_response(conn)
        })
        .await
}
