//! `/api/v1/callbacks`: the patients to call back (CONTRACT §4.9), oldest due first; an agent
//! claims one before calling and records each attempt.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{utc, ApiJson, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::callbacks::{AttemptRow, CallbackFilter};
use crate::domain::callback::{Outcome, Status};
use crate::domain::Faults;
use crate::error::{AppResult, Problem};
use crate::service::callbacks::{self, Listed};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// `open` (no live claim), `claimed` (claimed less than 15 minutes ago), `done` or
    /// `unreachable`; all when absent.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackResponse {
    pub id: String,
    /// The number to call, E.164.
    #[schema(example = "+3261234567")]
    pub phone: String,
    /// The patient whose phone it is, when exactly one patient has it (or the call's patient).
    pub patient_id: Option<String>,
    /// `missed_call` or `requested`.
    #[schema(example = "missed_call")]
    pub source: String,
    pub due_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The account holding the claim (live for 15 minutes).
    pub claimed_by: Option<String>,
    pub claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Failed attempts so far.
    pub attempts: i32,
    /// `open`, `claimed`, `done` or `unreachable`.
    #[schema(example = "open")]
    pub status: String,
    pub done_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the patient was reached (`reached`).
    pub reached_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Missed calls from this number that this callback answers.
    pub missed_calls: i64,
    /// The call whose agent promised it (`requested`).
    pub call_id: Option<String>,
}

impl From<Listed> for CallbackResponse {
    fn from(l: Listed) -> Self {
        let c = l.callback;
        Self {
            id: c.id,
            phone: c.phone,
            patient_id: c.patient_id,
            source: c.source.to_string(),
            due_at: utc(c.due_at),
            created_at: utc(c.created_at),
            claimed_by: c.claimed_by,
            claimed_at: c.claimed_at.map(utc),
            attempts: c.attempts,
            status: l.status.to_string(),
            done_at: c.done_at.map(utc),
            reached_at: c.reached_at.map(utc),
            missed_calls: l.missed_calls,
            call_id: c.call_id,
        }
    }
}

fn encode_cursor(l: &Listed) -> String {
    super::time_cursor(l.callback.due_at, &l.callback.id)
}

/// The callbacks, oldest due first (audited: they hold callers' numbers).
#[utoipa::path(
    operation_id = "callbacks_list",
    tag = "callbacks",
    params(CallbackQuery),
    responses(
        (status = 200, body = Page<CallbackResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/callbacks")]
pub async fn list(
    caller: Granted<perm::ReadCalls>,
    state: web::Data<AppState>,
    query: ApiQuery<CallbackQuery>,
) -> AppResult<web::Json<Page<CallbackResponse>>> {
    let q = query.parse()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let mut f = Faults::default();
    let status = f.check_opt("status", q.status.as_deref(), Status::parse);
    let after = f.check_opt("cursor", page.cursor.as_deref(), super::parse_time_cursor);
    let filter = f.finish((|| {
        Some(CallbackFilter {
            status: status?,
            pending: false,
            after: after?,
        })
    })())?;
    let rows = callbacks::list(&state, caller.caller, filter, page.fetch()).await?;
    Ok(web::Json(page.page(
        rows,
        encode_cursor,
        CallbackResponse::from,
    )))
}

/// Claim a callback before calling: 200 with it, claimed by the caller (again, if it was
/// already theirs), for 15 minutes. 409 if another agent holds a live claim or it is closed.
#[utoipa::path(
    operation_id = "callbacks_claim",
    tag = "callbacks",
    params(("id" = String, Path, description = "the callback's id")),
    responses(
        (status = 200, body = CallbackResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "another agent holds it, or it is closed")
    ),
    security(("bearer" = []))
)]
#[post("/callbacks/{id}/claim")]
pub async fn claim(
    caller: Granted<perm::LogCalls>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<web::Json<CallbackResponse>> {
    let listed = callbacks::claim(&state, caller.caller, id.into_inner()).await?;
    Ok(web::Json(listed.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCallbackAttempt {
    /// `reached`, `no_answer`, `voicemail` or `wrong_number`.
    #[schema(example = "no_answer")]
    pub outcome: String,
    /// At most 2,000 characters.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackAttemptResponse {
    pub id: String,
    pub callback_id: String,
    /// The account that called.
    pub agent: Option<String>,
    pub outcome: String,
    pub note: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
    /// The callback after the attempt.
    pub callback: CallbackResponse,
}

fn attempt_response(a: AttemptRow, callback: Listed) -> CallbackAttemptResponse {
    CallbackAttemptResponse {
        id: a.id,
        callback_id: a.callback_id,
        agent: a.agent,
        outcome: a.outcome.to_string(),
        note: a.note,
        at: utc(a.at),
        callback: callback.into(),
    }
}

/// Record an attempt: `reached` and `wrong_number` close the callback (`done`); `no_answer`
/// and `voicemail` release it, due again 30 minutes later, then 2 hours, then the next working
/// day at 8:00 (Brussels), until the configured number of failures makes it `unreachable`.
/// The caller must hold the claim, or takes it now if it is free.
#[utoipa::path(
    operation_id = "callback_attempts_create",
    tag = "callbacks",
    params(("id" = String, Path, description = "the callback's id")),
    request_body = CreateCallbackAttempt,
    responses(
        (status = 201, body = CallbackAttemptResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "another agent holds it, or it is closed"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/callbacks/{id}/attempts")]
pub async fn attempt(
    caller: Granted<perm::LogCalls>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: ApiJson<CreateCallbackAttempt>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let mut f = Faults::default();
    let outcome = f.check("outcome", Outcome::parse(&b.outcome));
    let note = f.check_opt("note", b.note.as_deref(), crate::domain::call::parse_notes);
    let (outcome, note) = f.finish((|| Some((outcome?, note?.flatten())))())?;
    let (row, callback) =
        callbacks::attempt(&state, caller.caller, id.into_inner(), outcome, note).await?;
    Ok(HttpResponse::Created().json(attempt_response(row, callback)))
}
