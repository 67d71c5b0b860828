//! `/api/v1/appointments`: create, list, read with status history.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{utc, ApiJson, ApiQuery, Fields, Page, PageRequest};
use crate::auth::{perm, Caller, Granted};
use crate::db::DbConnection;
use crate::db::{self, appointments::AppointmentFilter, appointments::AppointmentRow};
use crate::domain::answer::{self, Answer, Standing, Then};
use crate::domain::appointment::{
    parse_text, CancelReason, Channel, ContactOutcome, Kind, Priority, Status, Transition,
};
use crate::domain::call::parse_notes;
use crate::domain::time::parse_instant;
use crate::domain::{ServiceCode, SiteCode};
use crate::error::{AppError, AppResult, Problem};
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
            kind: r.kind,
            label: r.label,
            scheduled_at: utc(r.scheduled_at),
            original_scheduled_at: utc(r.original_scheduled_at),
            priority: r.priority,
            urgent: r.urgent,
            essential: r.essential,
            status: r.status,
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
        from: Some(e.from_status),
        status: e.to_status,
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
    let mut f = Fields::new();
    let site = f.check("site", SiteCode::parse(&b.site));
    let service = f.check("service", ServiceCode::parse(&b.service));
    let kind = f.check("kind", Kind::parse(&b.kind));
    let label = f.check("label", parse_text(&b.label, 200));
    let at = f.check("scheduled_at", parse_instant(&b.scheduled_at));
    let priority = f.check("priority", Priority::new(b.priority));
    let now = crate::domain::now();
    let row = f.finish((|| {
        Some(AppointmentRow {
            id: uuid::Uuid::now_v7().to_string(),
            patient_id: b.patient_id.clone(),
            site_code: site?.into_string(),
            service_code: service?.into_string(),
            kind: kind?.as_str().into(),
            label: label?,
            original_scheduled_at: at?,
            scheduled_at: at?,
            priority: priority?.get(),
            urgent: b.urgent,
            essential: b.essential,
            status: Status::Scheduled.as_str().into(),
            incident_id: None,
            postponed_at: None,
            import_id: None,
            created_at: now,
            updated_at: now,
            reached_at: None,
            proposed_at: None,
        })
    })())?;
    let caller = caller.caller;
    let row = state
        .db
        .write(move |conn| {
            let mut f = Fields::new();
            if db::patients::find(conn, &row.patient_id)?.is_none() {
                f.push("patient_id", "no such patient");
            }
            match db::sites::service_site(conn, &row.service_code)? {
                None => f.push("service", "no such service"),
                Some(site) if site != row.site_code => {
                    f.push("service", format!("belongs to site {site}, not {}", row.site_code))
                }
                Some(_) => {}
            }
            f.finish(Some(()))?;
            db::appointments::insert(conn, &row)?;
            crate::audit::record(
                conn,
                &caller,
                "appointment.create",
                Some(&format!("appointment:{}", row.id)),
                serde_json::json!({ "patient": row.patient_id, "site": row.site_code, "service": row.service_code }),
            )?;
            Ok::<_, AppError>(row)
        })
        .await?;
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

/// The filter a caller may use: secretaries only within their services.
fn scoped_filter(
    caller: &Caller,
    q: AppointmentQuery,
    after_id: Option<String>,
) -> AppResult<AppointmentFilter> {
    let mut f = Fields::new();
    let status = f.check_opt("status", q.status.as_deref(), Status::parse);
    let kind = f.check_opt("kind", q.kind.as_deref(), Kind::parse);
    let (status, kind) = f.finish(status.zip(kind))?;
    let services = if caller.role.is_service_scoped() {
        if let Some(service) = &q.service {
            if !caller.may_access_service(service) {
                return Err(AppError::Forbidden(format!(
                    "service {service} is not one of yours"
                )));
            }
        }
        Some(caller.services.clone())
    } else {
        None
    };
    Ok(AppointmentFilter {
        site: q.site,
        service: q.service,
        status: status.map(|s| s.as_str().to_string()),
        kind: kind.map(|k| k.as_str().to_string()),
        patient_id: q.patient_id,
        services,
        after_id,
    })
}

/// List appointments, oldest created first.
#[utoipa::path(
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
    let filter = scoped_filter(&caller, q, page.cursor.clone())?;
    let fetch = page.fetch();
    let caller = caller.caller;
    let rows = state
        .db
        .write(move |conn| {
            let rows = db::appointments::list(conn, &filter, fetch)?;
            crate::audit::record(
                conn,
                &caller,
                "appointment.list",
                None,
                serde_json::json!({
                    "site": filter.site, "service": filter.service, "status": filter.status,
                    "kind": filter.kind, "patient": filter.patient_id, "rows": rows.len(),
                }),
            )?;
            Ok::<_, AppError>(rows)
        })
        .await?;
    Ok(web::Json(page.page(
        rows,
        |r| r.id.clone(),
        AppointmentResponse::from,
    )))
}

/// Read an appointment with its status history.
#[utoipa::path(
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
    let id = id.into_inner();
    let caller = caller.caller;
    let (row, events, attempts) = state
        .db
        .write(move |conn| {
            let row = db::appointments::find(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such appointment".into()))?;
            if !caller.may_access_service(&row.service_code) {
                // Outside the caller's services: as unknown (no existence oracle).
                return Err(AppError::NotFound("no such appointment".into()));
            }
            let events = db::appointments::events(conn, &id)?;
            let attempts = db::appointments::attempts(conn, &id)?;
            crate::audit::record(
                conn,
                &caller,
                "appointment.read",
                Some(&format!("appointment:{id}")),
                serde_json::json!({ "patient": row.patient_id }),
            )?;
            Ok::<_, AppError>((row, events, attempts))
        })
        .await?;
    let history = history(&row, events);
    Ok(web::Json(AppointmentDetail {
        appointment: row.into(),
        history,
        contact_attempts: attempts
            .into_iter()
            .map(ContactAttemptResponse::from)
            .collect(),
    }))
}

/// Reads an appointment the caller may change: 404 if unknown or outside a secretary's
/// services (the two answer alike: no existence oracle).
fn changeable(conn: &mut DbConnection, caller: &Caller, id: &str) -> AppResult<AppointmentRow> {
    // Held until the change commits: a patient's answer or another person's move in flight
    // is finished first, and what follows is judged on the row as it then is.
    db::appointments::lock(conn, id)?;
    db::appointments::find(conn, id)?
        .filter(|row| caller.may_access_service(&row.service_code))
        .ok_or_else(|| AppError::NotFound("no such appointment".into()))
}

/// A status move a person asks for.
struct Move<'a> {
    transition: Transition,
    scheduled_at: Option<chrono::NaiveDateTime>,
    reason: Option<&'a str>,
    note: Option<&'a str>,
}

/// Applies a move from the domain's status machine to an appointment the caller may change
/// (404, 403, or 409 when the current status forbids it), records it in the history and the
/// audit log, and returns the appointment as it now is.
fn move_appointment(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    m: Move<'_>,
) -> AppResult<AppointmentRow> {
    let row = changeable(conn, caller, id)?;
    let from = Status::parse(&row.status)
        .map_err(|_| AppError::Internal(format!("unknown status {}", row.status)))?;
    let to = from
        .apply(m.transition)
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    let moved = db::appointments::move_status(
        conn,
        &db::appointments::NewEvent {
            appointment_id: id,
            at: crate::domain::now(),
            from_status: from.as_str(),
            to_status: to.as_str(),
            scheduled_at: m.scheduled_at,
            reason: m.reason,
            note: m.note,
            actor_id: caller.id.as_deref(),
        },
    )?;
    if !moved {
        return Err(AppError::Conflict(
            "the appointment changed meanwhile: read it again".into(),
        ));
    }
    let action = match m.transition {
        Transition::Reschedule => "appointment.reschedule",
        Transition::Cancel => "appointment.cancel",
        Transition::Postpone => "appointment.postpone",
    };
    crate::audit::record(
        conn,
        caller,
        action,
        Some(&format!("appointment:{id}")),
        serde_json::json!({
            "from": from.as_str(), "to": to.as_str(),
            "scheduled_at": m.scheduled_at.map(utc), "reason": m.reason,
        }),
    )?;
    db::appointments::find(conn, id)?
        .ok_or_else(|| AppError::NotFound("no such appointment".into()))
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
    let row = reschedule_to(&state, caller.caller, id.into_inner(), at).await?;
    Ok(web::Json(row.into()))
}

/// Gives an appointment a new date and queues its email (the API and the secretaries' page).
pub async fn reschedule_to(
    state: &AppState,
    caller: Caller,
    id: String,
    at: chrono::NaiveDateTime,
) -> AppResult<AppointmentRow> {
    let at = crate::domain::appointment::new_date(at, crate::domain::now())
        .map_err(|e| AppError::validation("scheduled_at", e.0))?;
    state
        .db
        .write(move |conn| {
            let m = Move {
                transition: Transition::Reschedule,
                scheduled_at: Some(at),
                reason: None,
                note: None,
            };
            let row = move_appointment(conn, &caller, &id, m)?;
            db::notifications::queue_rescheduled(conn, &id, crate::domain::now())?;
            Ok::<_, AppError>(row)
        })
        .await
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
    let mut f = Fields::new();
    let reason = f.check("reason", CancelReason::parse(&b.reason));
    let note = f.check_opt("note", b.note.as_deref(), parse_notes);
    let (reason, note) = f.finish(reason.zip(note))?;
    let (id, caller) = (id.into_inner(), caller.caller);
    let row = state
        .db
        .write(move |conn| {
            let note = note.flatten();
            let m = Move {
                transition: Transition::Cancel,
                scheduled_at: None,
                reason: Some(reason.as_str()),
                note: note.as_deref(),
            };
            move_appointment(conn, &caller, &id, m)
        })
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
            channel: r.channel,
            outcome: r.outcome,
            note: r.note,
            by: r.actor_id,
            answer: r.answer,
        }
    }
}

/// Record an attempt to contact the patient; one that reaches them takes the appointment off
/// the contact list.
#[utoipa::path(
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
    let b = body.parse().await?;
    let attempt = record_attempt(&state, caller.caller, id.into_inner(), b).await?;
    Ok(HttpResponse::Created().json(ContactAttemptResponse::from(attempt)))
}

/// Records a contact attempt (the API and the secretaries' page).
pub async fn record_attempt(
    state: &AppState,
    caller: Caller,
    id: String,
    b: CreateContactAttempt,
) -> AppResult<db::appointments::AttemptRow> {
    let mut f = Fields::new();
    let channel = f.check("channel", Channel::parse(&b.channel));
    let outcome = f.check("outcome", ContactOutcome::parse(&b.outcome));
    let note = f.check_opt("note", b.note.as_deref(), parse_notes);
    let attempt = f.finish((|| {
        Some(db::appointments::AttemptRow {
            id: uuid::Uuid::now_v7().to_string(),
            appointment_id: id.clone(),
            at: crate::domain::now(),
            channel: channel?.as_str().into(),
            outcome: outcome?.as_str().into(),
            note: note?.flatten(),
            actor_id: caller.id.clone(),
            answer: None,
        })
    })())?;
    state
        .db
        .write(move |conn| {
            let row = changeable(conn, &caller, &id)?;
            if row.status == Status::Cancelled.as_str() {
                return Err(AppError::Conflict(
                    "the appointment is cancelled: there is no one to contact about it".into(),
                ));
            }
            db::appointments::add_attempt(conn, &attempt)?;
            crate::audit::record(
                conn,
                &caller,
                "appointment.contact_attempt",
                Some(&format!("appointment:{id}")),
                serde_json::json!({ "channel": attempt.channel, "outcome": attempt.outcome }),
            )?;
            Ok::<_, AppError>(attempt)
        })
        .await
}

/// What a patient's answer through a link came to.
#[derive(Debug)]
pub enum Answered {
    /// Recorded: the link, with its appointment as it now is.
    Done(Box<db::answers::Found>),
    /// Nothing recorded: the link was used, has expired, or no longer applies.
    Refused(Standing, Box<db::answers::Found>),
}

/// A patient's answer through an email's link (the public page `/answer/{token}`), in the
/// caller's transaction: uses the link up, records a contact attempt (channel `email`, the
/// answer beside its outcome), applies what the answer does (`domain::answer::effect`: a
/// reschedule to the kept day with its email, a withdrawn proposal, a cancellation) and
/// audits it as `appointment.answer`, by [`Caller::answer_link`]. An answer the page does not
/// offer (any more) is a 422.
pub fn answer_by_link(
    conn: &mut DbConnection,
    origin: Option<crate::auth::Origin>,
    token_hash: &str,
    answer: Answer,
    now: chrono::NaiveDateTime,
) -> AppResult<Answered> {
    let found = db::answers::find(conn, token_hash)?
        .ok_or_else(|| AppError::NotFound("no such link".into()))?;
    // A secretary may be moving the appointment at this moment: take its row first, then
    // judge it as it is once hers has committed (PostgreSQL; SQLite's one writer already runs
    // this transaction alone).
    db::appointments::lock(conn, &found.appointment.id)?;
    let found = db::answers::find(conn, token_hash)?
        .ok_or_else(|| AppError::NotFound("no such link".into()))?;
    let caller = &Caller::answer_link(origin, &found.appointment.service_code);
    let Some(situation) = found.situation() else {
        return Ok(Answered::Refused(Standing::Stale, Box::new(found)));
    };
    match situation.standing(now) {
        Standing::Open { choices, .. } if choices.contains(&answer) => {}
        Standing::Open { .. } => {
            return Err(AppError::validation(
                "answer",
                "this answer is not offered for this appointment",
            ))
        }
        refused => return Ok(Answered::Refused(refused, Box::new(found))),
    }
    if !db::answers::use_up(conn, &found.id, answer.as_str(), now)? {
        // It expired this very moment (two answers at once wait for each other on the lock).
        return Ok(Answered::Refused(Standing::Expired, Box::new(found)));
    }
    let (outcome, then) = answer::effect(&situation, answer);
    let id = found.appointment.id.clone();
    db::appointments::add_attempt(
        conn,
        &db::appointments::AttemptRow {
            id: uuid::Uuid::now_v7().to_string(),
            appointment_id: id.clone(),
            at: now,
            channel: Channel::Email.as_str().into(),
            outcome: outcome.as_str().into(),
            note: None,
            actor_id: None,
            answer: Some(answer.as_str().into()),
        },
    )?;
    match then {
        Then::Nothing => {}
        Then::DropProposal => db::appointments::drop_proposal(conn, &id)?,
        Then::RescheduleTo(at) => {
            let m = Move {
                transition: Transition::Reschedule,
                scheduled_at: Some(at),
                reason: None,
                note: None,
            };
            move_appointment(conn, caller, &id, m)?;
            db::notifications::queue_rescheduled(conn, &id, now)?;
        }
        Then::Cancel => {
            let m = Move {
                transition: Transition::Cancel,
                scheduled_at: None,
                reason: Some(CancelReason::PatientRequest.as_str()),
                note: Some("withdrawn by the patient through an email's answer link"),
            };
            move_appointment(conn, caller, &id, m)?;
        }
    }
    crate::audit::record(
        conn,
        caller,
        "appointment.answer",
        Some(&format!("appointment:{id}")),
        serde_json::json!({ "answer": answer.as_str(), "outcome": outcome.as_str(), "link": found.id }),
    )?;
    let mut found = found;
    found.appointment = db::appointments::find(conn, &id)?
        .ok_or_else(|| AppError::NotFound("no such appointment".into()))?;
    Ok(Answered::Done(Box::new(found)))
}
