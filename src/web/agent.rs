//! The agents' page: a patient search beside the call form, the chosen patient's
//! appointments, keyboard first (the search has the focus, Enter sends, the focus comes back).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    also, day, flash, local, phone_for_people, render, see_other, Chrome, LogCalls, PageError,
    ReadPatients, Session, Signed, Submitted,
};
use crate::db::{self, appointments::AppointmentRow, patients::PatientRow};
use crate::domain::appointment::Status;
use crate::domain::call::{CallInput, CentreStatus, IdempotencyKey, NewCall};
use crate::domain::patient::PatientQuery;
use crate::domain::Action;
use crate::error::AppError;
use crate::i18n::{Texts, OUTCOMES, REASONS};
use crate::service::calls;
use crate::service::patients::{self, SEARCH_LIMIT};
use crate::state::AppState;

pub struct PatientView {
    pub id: String,
    pub name: String,
    pub born: String,
    pub phone: String,
}

impl From<PatientRow> for PatientView {
    fn from(p: PatientRow) -> Self {
        PatientView {
            id: p.id,
            name: format!("{}, {}", p.last_name, p.first_name),
            born: day(p.birth_date),
            phone: p.phone.as_deref().map(phone_for_people).unwrap_or_default(),
        }
    }
}

pub struct AppointmentView {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub service: String,
    pub site: String,
    pub original: String,
    pub status_code: String,
    pub status: String,
    /// The date now set, when it differs from the original one.
    pub new_date: String,
}

pub(super) fn appointment_view(t: &'static Texts, a: AppointmentRow) -> AppointmentView {
    AppointmentView {
        kind: t.word(a.kind.as_str()).to_string(),
        status: t.word(a.status.as_str()).to_string(),
        new_date: if a.status == Status::Rescheduled {
            local(a.scheduled_at)
        } else {
            String::new()
        },
        original: local(a.original_scheduled_at),
        id: a.id,
        label: a.label,
        service: a.service_code,
        site: a.site_code,
        status_code: a.status.to_string(),
    }
}

#[derive(Template)]
#[template(path = "agent.html", config = "src/web/askama.toml")]
struct AgentPage {
    chrome: Chrome,
    t: &'static Texts,
    query: String,
    search_error: Option<String>,
    results: Option<Vec<PatientView>>,
    results_heading: String,
    patient: Option<PatientView>,
    appointments: Vec<AppointmentView>,
    /// A fresh key per form shown: the same form sent twice logs one call.
    key: String,
    reasons: Vec<(&'static str, &'static str)>,
    outcomes: Vec<(&'static str, &'static str)>,
    centre_off: bool,
    /// The call the agent has now (the screen pop), also without script.
    pop: Option<super::pop::PopView>,
}

impl AgentPage {
    fn new(session: &Session, done: Option<&str>, centre_off: bool) -> Self {
        let t = session.t();
        AgentPage {
            chrome: Chrome::new(session, t.agent_title, "/agent", flash(t, done)),
            t,
            query: String::new(),
            search_error: None,
            results: None,
            results_heading: String::new(),
            patient: None,
            appointments: Vec::new(),
            key: uuid::Uuid::new_v4().to_string(),
            reasons: REASONS.iter().map(|c| (*c, t.word(c))).collect(),
            outcomes: OUTCOMES.iter().map(|c| (*c, t.word(c))).collect(),
            centre_off,
            pop: None,
        }
    }
}

async fn centre_off(state: &AppState) -> Result<bool, PageError> {
    let centre = state
        .db
        .read(|conn| db::calls::centre(conn).map_err(AppError::from))
        .await?;
    Ok(centre.status != CentreStatus::Active)
}

/// The search form is the agents' page's: it needs `LogCalls` as well as the `ReadPatients`
/// its extractor decided (asked of the same table, `Role::may`, without spending a second
/// budget: the search spends the reads budget, as `POST /patients/search` does).
fn may_log_calls(session: &Session) -> Result<(), PageError> {
    if session.caller.may(Action::LogCalls) {
        Ok(())
    } else {
        Err(PageError::App(
            AppError::Forbidden("the role may not log calls".into()),
            session.lang,
        ))
    }
}

#[derive(Deserialize)]
pub struct AgentQuery {
    patient: Option<String>,
    done: Option<String>,
}

/// `GET /agent[?patient=ID]`: the page, with the chosen patient and their appointments.
pub async fn page(
    signed: Signed<LogCalls>,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<AgentQuery>,
) -> Result<HttpResponse, PageError> {
    let session = &signed.session;
    let mut page = AgentPage::new(session, query.done.as_deref(), centre_off(&state).await?);
    page.pop = super::pop::current(&req, &state, session).await?;
    if let Some(id) = query.patient.as_deref().filter(|id| !id.is_empty()) {
        // A patient's record: `GET /patients/{id}`'s permission and reads budget.
        also::<ReadPatients>(&req, session).await?;
        let (patient, appointments) =
            patients::read(&state, session.caller.clone(), id.to_string())
                .await
                .map_err(|e| PageError::App(e, session.lang))?;
        page.patient = Some(patient.into());
        page.appointments = appointments
            .into_iter()
            .map(|a| appointment_view(page.t, a))
            .collect();
    }
    render(&page)
}

#[derive(Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
}

/// `POST /agent/search`: the search goes in the body, never in a URL (CONTRACT §4.2).
pub async fn search(
    sent: Submitted<ReadPatients, SearchForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = &sent.session;
    may_log_calls(session)?;
    let mut page = AgentPage::new(session, None, centre_off(&state).await?);
    page.pop = super::pop::current(&req, &state, session).await?;
    page.query = sent.form.q.clone();
    let searched = match PatientQuery::parse(&sent.form.q) {
        Ok(query) => patients::search(&state, session.caller.clone(), query).await,
        Err(e) => Err(AppError::validation("q", e.0)),
    };
    match searched {
        Ok(rows) => {
            // As many as a search shows: there may be more, and the agent is told so.
            page.results_heading = if rows.len() as i64 >= SEARCH_LIMIT {
                page.t.results_first.replace("{n}", &rows.len().to_string())
            } else {
                format!("{} ({})", page.t.results, rows.len())
            };
            page.results = Some(rows.into_iter().map(PatientView::from).collect());
            render(&page)
        }
        // The page again, the reason beside the search field, in the page's language.
        Err(AppError::Validation(faults)) => {
            page.search_error = faults
                .into_iter()
                .next()
                .map(|f| page.t.explain(&f.field, &f.message));
            let mut res = render(&page)?;
            *res.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(res)
        }
        Err(e) => Err(PageError::App(e, session.lang)),
    }
}

#[derive(Deserialize)]
pub struct CallForm {
    key: String,
    patient_id: Option<String>,
    appointment_id: Option<String>,
    reason: String,
    outcome: String,
    duration_minutes: Option<String>,
    caller_phone: Option<String>,
    notes: Option<String>,
    callback: Option<String>,
    /// When the call came in (RFC 3339), filled by the screen pop.
    received_at: Option<String>,
    /// The telephone system's call this form logs (`phone_calls.id`), filled by the screen pop.
    phone_call_id: Option<String>,
}

fn filled(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Minutes as typed (`4`, `2.5`, `2,5`) into whole seconds.
fn minutes(raw: &str) -> Result<i64, AppError> {
    raw.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|m| m.is_finite() && *m >= 0.0 && *m <= 24.0 * 60.0)
        .map(|m| (m * 60.0).round() as i64)
        .ok_or_else(|| AppError::validation("duration_minutes", "must be a number of minutes"))
}

/// `POST /agent/calls`: logs the call (once per form, whatever the clicks) and goes back to
/// an empty page with the focus in the search.
pub async fn log(
    sent: Submitted<LogCalls, CallForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let err = |e| PageError::App(e, lang);
    let key =
        IdempotencyKey::parse(&form.key).map_err(|e| err(AppError::validation("key", e.0)))?;
    let duration_seconds = filled(form.duration_minutes)
        .map(|m| minutes(&m))
        .transpose()
        .map_err(err)?;
    let (phone, patient, appointment, notes, received_at, phone_call) = (
        filled(form.caller_phone),
        filled(form.patient_id),
        filled(form.appointment_id),
        filled(form.notes),
        filled(form.received_at),
        filled(form.phone_call_id),
    );
    let input = CallInput {
        received_at: received_at.as_deref(),
        caller_phone: phone.as_deref(),
        patient_id: patient.as_deref(),
        appointment_id: appointment.as_deref(),
        reason: &form.reason,
        outcome: &form.outcome,
        duration_seconds,
        notes: notes.as_deref(),
        callback_requested: form.callback.is_some(),
        phone_call_id: phone_call.as_deref(),
        callback_due_at: None,
    };
    let call = NewCall::parse(&input, crate::domain::now()).map_err(|f| err(f.into()))?;
    calls::log(&state, session.caller, call, Some(key))
        .await
        .map_err(err)?;
    Ok(see_other("/agent?done=call"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_become_seconds() {
        assert_eq!(minutes("4").ok(), Some(240));
        assert_eq!(minutes("2,5").ok(), Some(150));
        assert!(minutes("-1").is_err());
        assert!(minutes("NaN").is_err());
        assert!(minutes("quatre").is_err());
    }
}
