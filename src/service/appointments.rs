//! Appointments: creating one, listing and reading them (audited), and every move a person
//! or a patient makes: a new date, a cancellation, a contact attempt, an answer through an
//! email's link. Each move locks the appointment's row first and applies the domain's status
//! machine to it as it then is.

use crate::auth::Caller;
use crate::db::{
    self, appointments::AppointmentFilter, appointments::AppointmentRow, DbConnection,
};
use crate::domain::answer::{self, Answer, Standing, Then};
use crate::domain::appointment::{
    CancelReason, Channel, ContactOutcome, NewAppointment, Status, Transition,
};
use crate::domain::time::utc;
use crate::domain::Faults;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Stores a new appointment (`scheduled`) after checking what it names: the patient, the
/// service and its site.
pub async fn create(
    state: &AppState,
    caller: Caller,
    new: NewAppointment,
) -> AppResult<AppointmentRow> {
    let now = crate::domain::now();
    let row = AppointmentRow {
        id: uuid::Uuid::now_v7().to_string(),
        patient_id: new.patient_id,
        site_code: new.site.into_string(),
        service_code: new.service.into_string(),
        kind: new.kind,
        label: new.label,
        original_scheduled_at: new.scheduled_at,
        scheduled_at: new.scheduled_at,
        priority: new.priority.get(),
        urgent: new.urgent,
        essential: new.essential,
        status: Status::Scheduled,
        incident_id: None,
        postponed_at: None,
        import_id: None,
        created_at: now,
        updated_at: now,
        reached_at: None,
        proposed_at: None,
    };
    state
        .db
        .write(move |conn| {
            let mut f = Faults::default();
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
        .await
}

/// `filter` as `caller` may use it: a secretary within her services (a filter naming another
/// service is a 403: it names no record).
pub fn scoped(caller: &Caller, mut filter: AppointmentFilter) -> AppResult<AppointmentFilter> {
    if caller.role.is_service_scoped() {
        if let Some(service) = &filter.service {
            if !caller.may_access_service(service) {
                return Err(AppError::Forbidden(format!(
                    "service {service} is not one of yours"
                )));
            }
        }
        filter.services = Some(caller.services.clone());
    }
    Ok(filter)
}

/// Appointments matching `filter` (already [`scoped`]), `fetch` of them; audited.
pub async fn list(
    state: &AppState,
    caller: Caller,
    filter: AppointmentFilter,
    fetch: i64,
) -> AppResult<Vec<AppointmentRow>> {
    state
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
        .await
}

/// An appointment with its status history and contact attempts.
#[derive(Debug)]
pub struct Record {
    pub appointment: AppointmentRow,
    pub events: Vec<db::appointments::EventRow>,
    pub attempts: Vec<db::appointments::AttemptRow>,
}

/// The appointment `id` if the caller may see it (404 otherwise, unknown or not: no
/// existence oracle); audited.
pub async fn read(state: &AppState, caller: Caller, id: String) -> AppResult<Record> {
    state
        .db
        .write(move |conn| {
            let row = shown(conn, &caller, &id, None)?;
            let events = db::appointments::events(conn, &id)?;
            let attempts = db::appointments::attempts(conn, &id)?;
            Ok::<_, AppError>(Record {
                appointment: row,
                events,
                attempts,
            })
        })
        .await
}

/// The appointment `id` about to be shown to `caller` (the API, the pages, FHIR `via`): 404
/// if unknown or outside a secretary's services, audited as `appointment.read` otherwise.
pub(super) fn shown(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    via: Option<&str>,
) -> AppResult<AppointmentRow> {
    let row = db::appointments::find(conn, id)?
        .filter(|row| caller.may_access_service(&row.service_code))
        .ok_or_else(|| AppError::NotFound("no such appointment".into()))?;
    let mut details = serde_json::json!({ "patient": row.patient_id });
    if let Some(via) = via {
        details["via"] = via.into();
    }
    crate::audit::record(
        conn,
        caller,
        "appointment.read",
        Some(&format!("appointment:{id}")),
        details,
    )?;
    Ok(row)
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
    let from = row.status;
    let to = from
        .apply(m.transition)
        .map_err(|e| AppError::Conflict(e.to_string()))?;
    let moved = db::appointments::move_status(
        conn,
        &db::appointments::NewEvent {
            appointment_id: id,
            at: crate::domain::now(),
            from_status: from,
            to_status: to,
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

/// Gives an appointment a new date and queues its email (the API and the secretaries' page).
pub async fn reschedule(
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

/// Cancels an appointment (final), with its reason and note.
pub async fn cancel(
    state: &AppState,
    caller: Caller,
    id: String,
    reason: CancelReason,
    note: Option<String>,
) -> AppResult<AppointmentRow> {
    state
        .db
        .write(move |conn| {
            let m = Move {
                transition: Transition::Cancel,
                scheduled_at: None,
                reason: Some(reason.as_str()),
                note: note.as_deref(),
            };
            move_appointment(conn, &caller, &id, m)
        })
        .await
}

/// A contact attempt a person records.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub channel: Channel,
    pub outcome: ContactOutcome,
    pub note: Option<String>,
}

/// Records a contact attempt (the API and the secretaries' page).
pub async fn attempt(
    state: &AppState,
    caller: Caller,
    id: String,
    new: NewAttempt,
) -> AppResult<db::appointments::AttemptRow> {
    let attempt = db::appointments::AttemptRow {
        id: uuid::Uuid::now_v7().to_string(),
        appointment_id: id.clone(),
        at: crate::domain::now(),
        channel: new.channel,
        outcome: new.outcome,
        note: new.note,
        actor_id: caller.id.clone(),
        answer: None,
    };
    state
        .db
        .write(move |conn| {
            let row = changeable(conn, &caller, &id)?;
            if row.status == Status::Cancelled {
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

/// [`answer_by_link`] in a write transaction of its own: the answer page's use case.
pub async fn answer(
    state: &AppState,
    origin: Option<crate::auth::Origin>,
    token_hash: String,
    chosen: Answer,
    now: chrono::NaiveDateTime,
) -> AppResult<Answered> {
    state
        .db
        .write(move |conn| answer_by_link(conn, origin, &token_hash, chosen, now))
        .await
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
    if !db::answers::use_up(conn, &found.id, answer, now)? {
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
            channel: Channel::Email,
            outcome,
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
