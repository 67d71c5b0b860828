//! `/api/v1/calls` and `/api/v1/call-centre`: log calls in a few keystrokes, never twice.

use actix_web::http::header::HeaderName;
use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{parse_instant, utc, ApiJson, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::{calls::CallFilter, calls::CallRow};
use crate::domain::call::{Bucket, CallInput, CentreStatus, IdempotencyKey, NewCall, Reason};
use crate::domain::Faults;
use crate::error::{AppError, AppResult, Problem};
use crate::service::calls::{self, Logged};
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
    /// The PBX call this is (an `id` of `GET /phone-calls`, the one the agent answered): the
    /// time, the caller's number and the duration come from the PBX, not from the body. A
    /// PBX call is logged once (409).
    pub phone_call_id: Option<String>,
    /// With outcome `callback_scheduled` only: when to call back (RFC 3339, at most a year
    /// ahead); default now. Such a call opens a `requested` callback (`/callbacks`) for
    /// `caller_phone`, else the patient's phone; without either, a 422 on `caller_phone`.
    #[schema(example = "2026-12-08T10:00:00+01:00")]
    pub callback_due_at: Option<String>,
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
            reason: r.reason.to_string(),
            outcome: r.outcome.to_string(),
            duration_seconds: r.duration_seconds,
            notes: r.notes,
            callback_requested: r.callback_requested,
            agent_id: r.agent_id,
            created_at: utc(r.created_at),
        }
    }
}

fn idempotency_key(req: &HttpRequest) -> AppResult<Option<IdempotencyKey>> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    IdempotencyKey::parse(value.to_str().unwrap_or(""))
        .map(Some)
        .map_err(|e| AppError::validation("Idempotency-Key", e.0))
}

impl CreateCall {
    /// The call the body describes, every field checked.
    fn parse(&self) -> AppResult<NewCall> {
        let input = CallInput {
            received_at: self.received_at.as_deref(),
            caller_phone: self.caller_phone.as_deref(),
            patient_id: self.patient_id.as_deref(),
            appointment_id: self.appointment_id.as_deref(),
            reason: &self.reason,
            outcome: &self.outcome,
            duration_seconds: self.duration_seconds,
            notes: self.notes.as_deref(),
            callback_requested: self.callback_requested,
            phone_call_id: self.phone_call_id.as_deref(),
            callback_due_at: self.callback_due_at.as_deref(),
        };
        Ok(NewCall::parse(&input, crate::domain::now())?)
    }
}

/// Log a call. With an `Idempotency-Key`, the same request again answers 200 with the same
/// call, even when the two arrive at once; the same key with another body is a 422.
#[utoipa::path(
    operation_id = "calls_create",
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
    let call = body.parse().await?.parse()?;
    let key = idempotency_key(&req)?;
    Ok(match calls::log(&state, caller.caller, call, key).await? {
        Logged::Created(row) => HttpResponse::Created().json(CallResponse::from(row)),
        Logged::Replayed(row) => HttpResponse::Ok().json(CallResponse::from(row)),
    })
}

/// [`create`] without its storage: the same extractors and checks, the answer the call would
/// get, nothing written (the HTTP ceiling of `cargo bench --bench calls`; mounted only by
/// `Application::build_with(_, true)`).
pub async fn create_unstored(
    caller: Granted<perm::LogCalls>,
    req: HttpRequest,
    body: ApiJson<CreateCall>,
) -> AppResult<HttpResponse> {
    let call = body.parse().await?.parse()?;
    let key = idempotency_key(&req)?;
    let row = calls::unstored(&caller.caller, call, key);
    Ok(HttpResponse::Created().json(CallResponse::from(row)))
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
    super::time_cursor(r.received_at, &r.id)
}

/// List calls, newest first.
#[utoipa::path(
    operation_id = "calls_list",
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
    let mut f = Faults::default();
    let from = f.check_opt("from", q.from.as_deref(), parse_instant);
    let to = f.check_opt("to", q.to.as_deref(), parse_instant);
    let reason = f.check_opt("reason", q.reason.as_deref(), Reason::parse);
    let before = f.check_opt("cursor", page.cursor.as_deref(), super::parse_time_cursor);
    let filter = f.finish((|| {
        Some(CallFilter {
            from: from?,
            to: to?,
            reason: reason?,
            patient_id: q.patient_id.clone(),
            callback_requested: q.callback_requested,
            before: before?,
        })
    })())?;
    let rows = calls::list(&state, caller.caller, filter, page.fetch()).await?;
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

impl StatsQuery {
    /// `from`, `to` and the bucket (default `day`), every fault at once.
    pub(super) fn checked(
        &self,
    ) -> AppResult<(
        Option<chrono::NaiveDateTime>,
        Option<chrono::NaiveDateTime>,
        Bucket,
    )> {
        let mut f = Faults::default();
        let from = f.check_opt("from", self.from.as_deref(), parse_instant);
        let to = f.check_opt("to", self.to.as_deref(), parse_instant);
        let bucket = f.check_opt("bucket", self.bucket.as_deref(), Bucket::parse);
        Ok(f.finish((|| Some((from?, to?, bucket?.unwrap_or(Bucket::Day))))())?)
    }
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

/// Call statistics, computed by the database: totals by reason and outcome, mean duration,
/// and calls per Brussels hour or day.
#[utoipa::path(
    operation_id = "calls_stats",
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
    let (from, to, bucket) = query.parse()?.checked()?;
    let stats = calls::stats(&state, from, to, bucket).await?;
    Ok(web::Json(CallStats {
        total: stats.total,
        avg_duration_seconds: stats.avg_duration_seconds,
        by_reason: stats
            .by_reason
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        by_outcome: stats
            .by_outcome
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        series: stats
            .series
            .into_iter()
            .map(|(start, count)| SeriesPoint {
                start: start.to_rfc3339(),
                count,
            })
            .collect(),
    }))
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

impl From<calls::Centre> for CallCentreResponse {
    fn from(c: calls::Centre) -> Self {
        Self {
            status: c.status.as_str().into(),
            changed_at: utc(c.changed_at),
            calls_total: c.calls_total,
        }
    }
}

/// Whether the call centre is taking calls, and how many it has logged.
#[utoipa::path(
    operation_id = "call_centre_read",
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
    Ok(web::Json(calls::centre(&state).await?.into()))
}

/// Activate or deactivate the call centre (audited).
#[utoipa::path(
    operation_id = "call_centre_update",
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
    let status = CentreStatus::parse(&b.status).map_err(|e| AppError::validation("status", e.0))?;
    let now = calls::set_centre(&state, caller.caller, status).await?;
    Ok(web::Json(now.into()))
}
