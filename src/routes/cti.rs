//! `/api/v1/cti/{pbx_token}`: the telephone system's call events, and `/api/v1/phone-calls`:
//! the caller log they make (CONTRACT §4.9).

use actix_web::{delete, get, post, web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::calls::StatsQuery;
use super::{parse_instant, utc, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::phone_calls::{PbxRow, PhoneCallFilter};
use crate::denials::Refusal;
use crate::domain::cti::{Event, EventInput};
use crate::domain::Faults;
use crate::error::{AppError, AppResult, Problem};
use crate::service::telephony::{self, Listed};
use crate::state::AppState;

/// An event of the generic CTI format, as JSON or as form fields (`user[]` repeated).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CtiEvent {
    /// `newCall`, `answer` or `hangup`.
    #[schema(example = "newCall")]
    pub event: String,
    /// The PBX's id of the call, the same in each of its events.
    #[serde(rename = "callId")]
    #[schema(example = "1652515200.42")]
    pub call_id: String,
    /// `in` (default) or `out`.
    pub direction: Option<String>,
    /// The caller's number (`anonymous` when hidden).
    #[schema(example = "+3261234567")]
    pub from: Option<String>,
    #[schema(example = "+3263553000")]
    pub to: Option<String>,
    /// Who answered (names or extensions), `user[]` in a form.
    #[serde(default, alias = "user[]")]
    pub user: Vec<String>,
    /// The extension that answered.
    #[serde(rename = "answeringNumber")]
    pub answering_number: Option<String>,
    pub queue: Option<String>,
    /// On `hangup`: `normalClearing`, `busy`, `cancel`, `noAnswer`, `congestion`, `notFound`,
    /// `forwarded`.
    pub cause: Option<String>,
}

/// The largest event accepted (a PBX's event is a few hundred bytes).
const EVENT_LIMIT: usize = 16 * 1024;

fn form_event(body: &[u8]) -> CtiEvent {
    let mut e = CtiEvent::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        let value = value.into_owned();
        match key.as_ref() {
            "event" => e.event = value,
            "callId" => e.call_id = value,
            "direction" => e.direction = Some(value),
            "from" => e.from = Some(value),
            "to" => e.to = Some(value),
            "user[]" | "user" => e.user.push(value),
            "answeringNumber" => e.answering_number = Some(value),
            "queue" => e.queue = Some(value),
            "cause" => e.cause = Some(value),
            _ => {}
        }
    }
    e
}

fn parse_event(req: &HttpRequest, body: &[u8]) -> AppResult<Event> {
    if body.len() > EVENT_LIMIT {
        return Err(AppError::PayloadTooLarge(format!(
            "an event is at most {EVENT_LIMIT} bytes"
        )));
    }
    let raw = match req.content_type() {
        "application/x-www-form-urlencoded" => form_event(body),
        "application/json" => serde_json::from_slice(body)
            .map_err(|e| AppError::BadRequest(format!("the body is not a CTI event: {e}")))?,
        _ => {
            return Err(AppError::UnsupportedMediaType(
                "send application/x-www-form-urlencoded or application/json".into(),
            ))
        }
    };
    Ok(Event::parse(&EventInput {
        event: &raw.event,
        call_id: &raw.call_id,
        direction: raw.direction.as_deref(),
        from: raw.from.as_deref(),
        to: raw.to.as_deref(),
        users: &raw.user,
        answering_number: raw.answering_number.as_deref(),
        queue: raw.queue.as_deref(),
        cause: raw.cause.as_deref(),
    })?)
}

/// A call event from the telephone system (no bearer token: the PBX's token is the path).
/// Idempotent per call and event; events may come out of order.
#[utoipa::path(
    operation_id = "cti_events_create",
    tag = "telephony",
    params(("pbx_token" = String, Path, description = "the PBX's token (`reprise cti-token create`)")),
    request_body(content(
        (CtiEvent = "application/x-www-form-urlencoded"),
        (CtiEvent = "application/json")
    )),
    responses(
        (status = 200, body = Object, description = "recorded: `{}`"),
        (status = 404, body = Problem, description = "no PBX has this token"),
        (status = 422, body = Problem)
    )
)]
#[post("/cti/{pbx_token}")]
pub async fn event(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let unknown = || {
        // Counted against the address's anonymous budget, as an unknown bearer token is.
        req.extensions_mut().insert(Refusal::UnknownToken);
        AppError::NotFound("no telephone system has this token".into())
    };
    let event = match parse_event(&req, &body) {
        Ok(event) => event,
        // A bad event to an unknown token is still an unknown token.
        Err(e) if telephony::is_pbx_token(&state, &token).await? => return Err(e),
        Err(_) => return Err(unknown()),
    };
    if !telephony::receive(&state, &token, event).await? {
        return Err(unknown());
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhoneCallQuery {
    /// Calls started at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Calls started before this instant (RFC 3339).
    pub to: Option<String>,
    /// Only missed inbound calls (`true`) or only the others (`false`).
    pub missed: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneCallResponse {
    pub id: String,
    pub pbx_call_id: String,
    /// `in` or `out`.
    pub direction: String,
    /// E.164, or as the PBX sent it (`anonymous`).
    pub from: String,
    pub to: String,
    pub queue: Option<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub answered_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
    pub cause: Option<String>,
    /// An inbound call that ended before anyone answered.
    pub missed: bool,
    /// The account whose extension answered.
    pub answered_by: Option<String>,
    /// The patients whose phone is `from`.
    pub patient_ids: Vec<String>,
    /// The call an agent logged for it.
    pub call_id: Option<String>,
    /// The callback its missed call opened or joined (`/callbacks`).
    pub callback_id: Option<String>,
}

impl From<Listed> for PhoneCallResponse {
    fn from(l: Listed) -> Self {
        let c = l.call;
        Self {
            missed: c.missed(),
            id: c.id,
            pbx_call_id: c.pbx_call_id,
            direction: c.direction.to_string(),
            from: c.from_number,
            to: c.to_number,
            queue: c.queue,
            started_at: utc(c.started_at),
            answered_at: c.answered_at.map(utc),
            ended_at: c.ended_at.map(utc),
            cause: c.cause.map(|c| c.to_string()),
            answered_by: c.answered_by,
            patient_ids: l.patient_ids,
            call_id: c.call_id,
            callback_id: c.callback_id,
        }
    }
}

fn encode_cursor(l: &Listed) -> String {
    super::time_cursor(l.call.started_at, &l.call.id)
}

/// The caller log: the calls the telephone system reported, newest first, with the patients
/// whose phone called (audited).
#[utoipa::path(
    operation_id = "phone_calls_list",
    tag = "telephony",
    params(PhoneCallQuery),
    responses(
        (status = 200, body = Page<PhoneCallResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/phone-calls")]
pub async fn list(
    caller: Granted<perm::ReadCalls>,
    state: web::Data<AppState>,
    query: ApiQuery<PhoneCallQuery>,
) -> AppResult<web::Json<Page<PhoneCallResponse>>> {
    let q = query.parse()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let mut f = Faults::default();
    let from = f.check_opt("from", q.from.as_deref(), parse_instant);
    let to = f.check_opt("to", q.to.as_deref(), parse_instant);
    let before = f.check_opt("cursor", page.cursor.as_deref(), super::parse_time_cursor);
    let filter = f.finish((|| {
        Some(PhoneCallFilter {
            from: from?,
            to: to?,
            missed: q.missed,
            before: before?,
        })
    })())?;
    let rows = telephony::list(&state, caller.caller, filter, page.fetch()).await?;
    Ok(web::Json(page.page(
        rows,
        encode_cursor,
        PhoneCallResponse::from,
    )))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneCallStats {
    /// Inbound calls that rang.
    pub received: i64,
    pub answered: i64,
    /// Hung up before anyone answered.
    pub missed: i64,
    /// From the first ring to the answer, over the answered calls; none without any.
    pub median_wait_seconds: Option<f64>,
    pub series: Vec<PhoneCallSeriesPoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneCallSeriesPoint {
    /// The bucket's start, Brussels time with its offset.
    #[schema(example = "2022-05-16T00:00:00+02:00")]
    pub start: String,
    pub received: i64,
    pub answered: i64,
    pub missed: i64,
}

/// The telephone system's inbound calls: received, answered and missed, the median wait, and
/// the same per Brussels hour or day.
#[utoipa::path(
    operation_id = "phone_calls_stats",
    tag = "telephony",
    params(StatsQuery),
    responses(
        (status = 200, body = PhoneCallStats),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/phone-calls/stats")]
pub async fn stats(
    _caller: Granted<perm::ReadCalls>,
    state: web::Data<AppState>,
    query: ApiQuery<StatsQuery>,
) -> AppResult<web::Json<PhoneCallStats>> {
    let (from, to, bucket) = query.parse()?.checked()?;
    let s = telephony::stats(&state, from, to, bucket).await?;
    Ok(web::Json(PhoneCallStats {
        received: s.received,
        answered: s.answered,
        missed: s.missed,
        median_wait_seconds: s.median_wait_seconds,
        series: s
            .series
            .into_iter()
            .map(|p| PhoneCallSeriesPoint {
                start: p.start.to_rfc3339(),
                received: p.received,
                answered: p.answered,
                missed: p.missed,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PbxTokenResponse {
    pub id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it stopped working, if it did.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<PbxRow> for PbxTokenResponse {
    fn from(r: PbxRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: utc(r.created_at),
            revoked_at: r.revoked_at.map(utc),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PbxTokenQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The telephone systems' tokens (`reprise cti-token create`), revoked ones too, oldest
/// first; the tokens themselves are kept only as hashes and never shown again.
#[utoipa::path(
    operation_id = "pbx_tokens_list",
    tag = "telephony",
    params(PbxTokenQuery),
    responses(
        (status = 200, body = Page<PbxTokenResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/pbx-tokens")]
pub async fn list_tokens(
    _caller: Granted<perm::ManageUsers>,
    state: web::Data<AppState>,
    query: ApiQuery<PbxTokenQuery>,
) -> AppResult<web::Json<Page<PbxTokenResponse>>> {
    let q = query.parse()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let rows = telephony::list_pbx_tokens(&state, page.cursor.clone(), page.fetch()).await?;
    Ok(web::Json(page.page(
        rows,
        |r| r.id.clone(),
        PbxTokenResponse::from,
    )))
}

/// Revoke a telephone system's token: its events are refused from now on, as an unknown
/// token's (404).
#[utoipa::path(
    operation_id = "pbx_tokens_delete",
    tag = "telephony",
    params(("id" = String, Path, description = "PBX token id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
#[delete("/pbx-tokens/{id}")]
pub async fn revoke_token(
    caller: Granted<perm::ManageUsers>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    telephony::revoke_pbx_token(&state, caller.caller, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
