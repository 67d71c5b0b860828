//! The agents' callbacks page: the worklist oldest due first, "Prendre" to claim one, then one
//! button (or one access key) per outcome. Plain forms: it works without JavaScript.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    flash, local, phone_for_people, render, see_other, Chrome, LogCalls, PageError, Signed,
    Submitted,
};
use crate::db::callbacks::CallbackFilter;
use crate::domain::callback::{Outcome, Source, Status};
use crate::error::AppError;
use crate::i18n::Texts;
use crate::service::callbacks::{self, Listed};
use crate::state::AppState;

/// Most callbacks the page shows (the oldest due).
const SHOWN: i64 = 200;

pub struct CallbackView {
    pub id: String,
    pub due: String,
    pub phone: String,
    pub patient_id: String,
    pub source: &'static str,
    pub attempts: i32,
    pub missed_calls: i64,
    pub mine: bool,
    pub taken: bool,
}

fn view(t: &'static Texts, me: Option<&str>, l: Listed) -> CallbackView {
    let c = l.callback;
    let claimed = l.status == Status::Claimed;
    let mine = claimed && c.claimed_by.is_some() && c.claimed_by.as_deref() == me;
    CallbackView {
        due: local(c.due_at),
        phone: phone_for_people(&c.phone),
        patient_id: c.patient_id.unwrap_or_default(),
        source: match c.source {
            Source::MissedCall => t.source_missed_call,
            Source::Requested => t.source_requested,
        },
        attempts: c.attempts,
        missed_calls: l.missed_calls,
        mine,
        taken: claimed && !mine,
        id: c.id,
    }
}

#[derive(Template)]
#[template(path = "callbacks.html", config = "src/web/askama.toml")]
struct CallbacksPage {
    chrome: Chrome,
    t: &'static Texts,
    rows: Vec<CallbackView>,
    /// (code, word, access key) of each outcome button.
    outcomes: Vec<(&'static str, &'static str, char)>,
}

#[derive(Deserialize)]
pub struct PageQuery {
    done: Option<String>,
}

/// `GET /callbacks`: open and claimed callbacks, oldest due first (audited as the API's list).
pub async fn page(
    signed: Signed<LogCalls>,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let session = &signed.session;
    let t = session.t();
    let filter = CallbackFilter {
        status: None,
        pending: true,
        after: None,
    };
    let rows = callbacks::list(&state, session.caller.clone(), filter, SHOWN)
        .await
        .map_err(|e| PageError::App(e, session.lang))?;
    let me = session.caller.id.as_deref();
    render(&CallbacksPage {
        chrome: Chrome::new(
            session,
            t.callbacks_title,
            "/callbacks",
            flash(t, query.done.as_deref()),
        ),
        t,
        rows: rows.into_iter().map(|l| view(t, me, l)).collect(),
        outcomes: [
            (Outcome::Reached, 'j'),
            (Outcome::NoAnswer, 'p'),
            (Outcome::Voicemail, 'm'),
            (Outcome::WrongNumber, 'f'),
        ]
        .into_iter()
        .map(|(o, key)| (o.as_str(), t.word(o.as_str()), key))
        .collect(),
    })
}

#[derive(Deserialize)]
pub struct ClaimForm {
    id: String,
}

/// `POST /callbacks/claim`: takes the callback, back to the list with its outcome buttons.
pub async fn claim(
    sent: Submitted<LogCalls, ClaimForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    callbacks::claim(&state, session.caller, form.id)
        .await
        .map_err(|e| PageError::App(e, session.lang))?;
    Ok(see_other("/callbacks?done=claimed"))
}

#[derive(Deserialize)]
pub struct AttemptForm {
    id: String,
    outcome: String,
    note: Option<String>,
}

/// `POST /callbacks/attempt`: records the outcome chosen (the button pressed).
pub async fn attempt(
    sent: Submitted<LogCalls, AttemptForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let err = |e| PageError::App(e, lang);
    let outcome =
        Outcome::parse(&form.outcome).map_err(|e| err(AppError::validation("outcome", e.0)))?;
    let note = match form.note.as_deref() {
        Some(raw) => crate::domain::call::parse_notes(raw)
            .map_err(|e| err(AppError::validation("note", e.0)))?,
        None => None,
    };
    callbacks::attempt(&state, session.caller, form.id, outcome, note)
        .await
        .map_err(err)?;
    Ok(see_other("/callbacks?done=callback"))
}
