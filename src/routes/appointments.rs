//! `/api/v1/appointments`: create, list, read with status history.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{utc, ApiJson, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::{self, appointments::AppointmentFilter, appointments::AppointmentRow};
use crate::domain::appointment::{
    AppointmentInput, CancelReason, Channel, ContactOutcome, Kind, NewAppointment, Status,
};
use crate::domain::call::parse_notes;
use crate::domain::time::parse_instant;
use crate::domain::Faults;
use crate::error::{AppError, AppResult, Problem};
use crate::service::appointments::{self, NewAttempt};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppointment {
    pub patient_id: String,
    #[schema(example = "ARL")]
    pub site: String,
    #[schema(example = "ARL-CHIR")]
    pub service: String,
    /// `operation` or `consultation`.
    pub kind: String,
    #[schema(example = "Prothèse de hanche")]
    pub label: String,
    /// RFC 3339.
    #[schema(example = "2022-05-16T09:30:00+02:00")]
    pub scheduled_at: String,
    /// 1 (most pressing) to 4.
    pub priority: i64,
    /// Care that no shutdown postpones.
    #[serde(default)]
    pub urgent: bool,
    /// Follow-up kept during a shutdown (pregnancy, chemotherapy, dialysis…).
    #[serde(default)]
    pub essential: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentResponse {
    pub id: String,
    pub patient_id: String,
    pub site: String,
    pub service: String,
    pub kind: String,
    pub label: String,
    /// The current date (the new one after a reschedule).
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
    /// The date first given; never changes.
    pub original_scheduled_at: chrono::DateTime<chrono::Utc>,
    pub priority: i32,
    pub urgent: bool,
    pub essential: bool,
    /// `scheduled`, `postponed`, `rescheduled` or `cancelled`.
    pub status: String,
    /// The incident that postponed it, if any.
    pub incident_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// When a contact attempt first reached the patient; null while still to contact.
    pub reached_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The day a committed plan proposes, for a secretary to confirm by phone; null if none.
    pub proposed_at: Option<chrono::NaiveDate>,
}

impl From<AppointmentRow> for AppointmentResponse {
    fn from(r: AppointmentRow) -> Self {
        Self {
            id: r.id,
            patient_id: r.patient_id,
            site: r.site_code,
            service: r.service_code,
            kind: r.kind.to_string(),
            label: r.label,
            scheduled_at: utc(r.scheduled_at),
            original_scheduled_at: utc(r.original_scheduled_at),
            priority: r.priority,
            urgent: r.urgent,
            essential: r.essential,
            status: r.status.to_string(),
            incident_id: r.incident_id,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
            reached_at: r.reached_at.map(utc),
            proposed_at: r.proposed_at,
        }
    }
}

/// One step of an appointment's life.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChange {
    pub at: chrono::DateTime<chrono::Utc>,
    /// null for the creation.
    pub from: Option<String>,
    pub status: String,
    /// The date set by this step (creation, reschedule).
    pub scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
    pub incident_id: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    /// Account id of who made the move, when a person did.
    pub by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentDetail {
    #[serde(flatten)]
    pub appointment: AppointmentResponse,
    /// From creation to now, oldest first.
    pub history: Vec<StatusChange>,
    /// Attempts to contact the patient, oldest first.
    pub contact_attempts: Vec<ContactAttemptResponse>,
}

/// The status history: creation, the postponement recorded on the row by an incident, then
/// the moves people made.
fn history(a: &AppointmentRow, events: Vec<db::appointments::EventRow>) -> Vec<StatusChange> {
    let mut out = vec![StatusChange {
        at: utc(a.created_at),
        from: None,
        status: Status::Scheduled.as_str().into(),
        scheduled_at: Some(utc(a.original_scheduled_at)),
        incident_id: None,
        reason: None,
        note: None,
        by: None,
    }];
    if let Some(at) = a.postponed_at {
        out.push(StatusChange {
            at: utc(at),
            from: Some(Status::Scheduled.as_str().into()),
            status: Status::Postponed.as_str().into(),
            scheduled_at: None,
            incident_id: a.incident_id.clone(),
            reason: None,
            note: None,
            by: None,
        });
    }
    out.extend(events.into_iter().map(|e| StatusChange {
        at: utc(e.at),
        from: Some(e.from_status.to_string()),
        status: e.to_status.to_string(),
        scheduled_at: e.scheduled_at.map(utc),
        incident_id: None,
        reason: e.reason,
        note: e.note,
        by: e.actor_id,
    }));
    out
}

/// Create an appointment (status `scheduled`).
#[utoipa::path(
    operation_id = "appointments_create",
    tag = "appointments",
    request_body = CreateAppointment,
    responses(
        (status = 201, body = AppointmentResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/appointments")]
pub async fn create(
    caller: Granted<perm::CreateAppointments>,
    state: web::Data<AppState>,
    body: ApiJson<CreateAppointment>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let new = NewAppointment::parse(&AppointmentInput {
        patient_id: &b.patient_id,
        site: &b.site,
        service: &b.service,
        kind: &b.kind,
        label: &b.label,
        scheduled_at: &b.scheduled_at,
        priority: b.priority,
        urgent: b.urgent,
        essential: b.essential,
    })?;
    let row = appointments::create(&state, caller.caller, new).await?;
    Ok(HttpResponse::Created().json(AppointmentResponse::from(row)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentQuery {
    pub site: Option<String>,
    pub service: Option<String>,
    /// `scheduled`, `postponed`, `rescheduled` or `cancelled`.
    pub status: Option<String>,
    /// `operation` or `consultation`.
    pub kind: Option<String>,
    pub patient_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The filter the query asks for (`appointments::scoped` then limits it to the caller).
fn filter_of(q: AppointmentQuery, after_id: Option<String>) -> AppResult<AppointmentFilter> {
    let mut f = Faults::default();
    let status = f.check_opt("status", q.status.as_deref(), Status::parse);
    let kind = f.check_opt("kind", q.kind.as_deref(), Kind::parse);
    let (status, kind) = f.finish(status.zip(kind))?;
    Ok(AppointmentFilter {
        site: q.site,
        service: q.service,
        status,
        kind,
        patient_id: q.patient_id,
        services: None,
        after_id,
    })
}

/// List appointments, oldest created first.
#[utoipa::path(
    operation_id = "appointments_list",
    tag = "appointments",
    params(AppointmentQuery),
    responses(
        (status = 200, body = Page<AppointmentResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/appointments")]
pub async fn list(
    caller: Granted<perm::ReadAppointments>,
    state: web::Data<AppState>,
    query: ApiQuery<AppointmentQuery>,
) -> AppResult<web::Json<Page<AppointmentResponse>>> {
    let mut q = query.parse()?;
    let page = PageRequest::parse(q.limit.take(), q.cursor.take())?;
    let filter = appointments::scoped(&caller, filter_of(q, page.cursor.clone())?)?;
    let rows = appointments::list(&state, caller.caller, filter, page.fetch()).await?;
    Ok(web::Json(page.page(
        rows,
        |r| r.id.clone(),
        AppointmentResponse::from,
    )))
}

/// Read an appointment with its status history.
#[utoipa::path(
    operation_id = "appointments_read",
    tag = "appointments",
    params(("id" = String, Path, description = "appointment id")),
    responses(
        (status = 200, body = AppointmentDetail),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/appointments/{id}")]
pub async fn read(
    caller: Granted<perm::ReadAppointments>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<web::Json<AppointmentDetail>> {
    let record = appointments::read(&state, caller.caller, id.into_inner()).await?;
    let history = history(&record.appointment, record.events);
    Ok(web::Json(AppointmentDetail {
        appointment: record.appointment.into(),
        history,
        contact_attempts: record
            .attempts
            .into_iter()
            .map(ContactAttemptResponse::from)
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    /// RFC 3339: the new date; the original stays as `original_scheduled_at`.
    #[schema(example = "2022-06-13T10:00:00+02:00")]
    pub scheduled_at: String,
}

/// Give an appointment a new date (status `rescheduled`).
#[utoipa::path(
    operation_id = "appointments_reschedule",
    tag = "appointments",
    request_body = Reschedule,
    params(("id" = String, Path, description = "appointment id")),
    responses(
        (status = 200, body = AppointmentResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "a cancelled appointment cannot move"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/appointments/{id}/reschedule")]
pub async fn reschedule(
    caller: Granted<perm::ChangeAppointments>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: ApiJson<Reschedule>,
) -> AppResult<web::Json<AppointmentResponse>> {
    let b = body.parse().await?;
    let at =
        parse_instant(&b.scheduled_at).map_err(|e| AppError::validation("scheduled_at", e.0))?;
    let row = appointments::reschedule(&state, caller.caller, id.into_inner(), at).await?;
    Ok(web::Json(row.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    /// `patient_request`, `clinical_decision`, `duplicate` or `other`.
    pub reason: String,
    pub note: Option<String>,
}

/// Cancel an appointment (final).
#[utoipa::path(
    operation_id = "appointments_cancel",
    tag = "appointments",
    request_body = Cancel,
    params(("id" = String, Path, description = "appointment id")),
    responses(
        (status = 200, body = AppointmentResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "already cancelled"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/appointments/{id}/cancel")]
pub async fn cancel(
    caller: Granted<perm::ChangeAppointments>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: ApiJson<Cancel>,
) -> AppResult<web::Json<AppointmentResponse>> {
    let b = body.parse().await?;
    let mut f = Faults::default();
    let reason = f.check("reason", CancelReason::parse(&b.reason));
    let note = f.check_opt("note", b.note.as_deref(), parse_notes);
    let (reason, note) = f.finish(reason.zip(note))?;
    let row = appointments::cancel(
        &state,
        caller.caller,
        id.into_inner(),
        reason,
        note.flatten(),
    )
    .await?;
    Ok(web::Json(row.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContactAttempt {
    /// `phone`, `email` or `letter`.
    pub channel: String,
    /// `reached`, `no_answer`, `voicemail`, `wrong_number` or `declined`.
    pub outcome: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactAttemptResponse {
    pub id: String,
    pub appointment_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub channel: String,
    pub outcome: String,
    pub note: Option<String>,
    /// Account id of who recorded it; null for the patient's own answer.
    pub by: Option<String>,
    /// The patient's answer through an email's link (`keep`, `other_date`, `call_back`,
    /// `withdraw`); null for an attempt staff recorded.
    pub answer: Option<String>,
}

impl From<db::appointments::AttemptRow> for ContactAttemptResponse {
    fn from(r: db::appointments::AttemptRow) -> Self {
        Self {
            id: r.id,
            appointment_id: r.appointment_id,
            at: utc(r.at),
            channel: r.channel.to_string(),
            outcome: r.outcome.to_string(),
            note: r.note,
            by: r.actor_id,
            answer: r.answer,
        }
    }
}

/// Record an attempt to contact the patient; one that reaches them takes the appointment off
/// the contact list.
#[utoipa::path(
    operation_id = "contact_attempts_create",
    tag = "appointments",
    request_body = CreateContactAttempt,
    params(("id" = String, Path, description = "appointment id")),
    responses(
        (status = 201, body = ContactAttemptResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the appointment is cancelled"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/appointments/{id}/contact-attempts")]
pub async fn add_contact_attempt(
    caller: Granted<perm::ChangeAppointments>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: ApiJson<CreateContactAttempt>,
) -> AppResult<HttpResponse> {
    let attempt = body.parse().await?.parse()?;
    let attempt = appointments::attempt(&state, caller.caller, id.into_inner(), attempt).await?;
    Ok(HttpResponse::Created().json(ContactAttemptResponse::from(attempt)))
}

impl CreateContactAttempt {
    /// The attempt the body describes, every field checked.
    pub fn parse(&self) -> AppResult<NewAttempt> {
        let mut f = Faults::default();
        let channel = f.check("channel", Channel::parse(&self.channel));
        let outcome = f.check("outcome", ContactOutcome::parse(&self.outcome));
        let note = f.check_opt("note", self.note.as_deref(), parse_notes);
        Ok(f.finish((|| {
            Some(NewAttempt {
                channel: channel?,
                outcome: outcome?,
                note: note?.flatten(),
            })
        })())?)
    }
}
