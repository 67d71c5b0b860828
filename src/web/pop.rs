//! The screen pop on the agents' page: `GET /agent/events`, a Server-Sent Events stream of the
//! signed-in account's current call, and the panel both it and the page render. The rule:
//! the stream is told only which call changed (`service::screen_pop`); each event is read and
//! rendered by this request, as its account, so only the agent who answered sees it.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::agent::{appointment_view, AppointmentView};
use super::{also, day, local, phone_for_people, LogCalls, PageError, ReadCalls, Session, Signed};
use crate::auth::Caller;
use crate::domain::patient::Language;
use crate::error::AppError;
use crate::i18n::{texts, Texts};
use crate::pops::{Now, IDLE};
use crate::service::screen_pop::{self, Pop};
use crate::state::AppState;

/// A comment every so often, so that proxies keep the stream open and a closed page is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an open stream checks that its session is still open (sign-out, idle, expiry).
const SESSION_CHECK: Duration = Duration::from_secs(30);
/// The longest `since` / `Last-Event-ID` taken (an id, `:`, a state).
const KEY_MAX: usize = 80;

pub struct PopPatientView {
    pub id: String,
    pub name: String,
    pub born: String,
    pub appointments: Vec<AppointmentView>,
}

/// A pop as the page shows it and the form takes it.
pub struct PopView {
    /// The event id of this state (`{id}:live`, `{id}:ended`).
    pub key: String,
    pub phone_call_id: String,
    pub phone: String,
    /// For the form: the caller's number when it is a telephone number (E.164), else empty.
    pub form_phone: String,
    /// RFC 3339, UTC: when the call came in, for the form.
    pub received_at: String,
    pub received_local: String,
    pub ended: bool,
    /// Once ended: minutes, as the form reads them (`3`, `2,5`); else empty.
    pub duration_minutes: String,
    pub patients: Vec<PopPatientView>,
    pub withheld: bool,
    /// The patient the form takes: the only one matched, else empty.
    pub patient_id: String,
    pub patient_name: String,
}

/// `3`, `2,5`, `1,25`: seconds as minutes, in the form's own notation.
fn minutes_of(seconds: i64) -> String {
    let text = format!("{:.2}", seconds.max(0) as f64 / 60.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.replace('.', ",")
}

pub fn view(t: &'static Texts, pop: Pop) -> PopView {
    let key = pop.ring().key();
    let call = pop.call;
    let duration = call.ended_at.map(|end| {
        let from = call.answered_at.unwrap_or(call.started_at);
        minutes_of((end - from).num_seconds())
    });
    let patients: Vec<PopPatientView> = pop
        .patients
        .into_iter()
        .map(|p| PopPatientView {
            id: p.patient.id,
            name: format!("{}, {}", p.patient.last_name, p.patient.first_name),
            born: day(p.patient.birth_date),
            appointments: p
                .appointments
                .into_iter()
                .map(|a| appointment_view(t, a))
                .collect(),
        })
        .collect();
    let (patient_id, patient_name) = match patients.as_slice() {
        [only] => (only.id.clone(), only.name.clone()),
        _ => (String::new(), String::new()),
    };
    PopView {
        key,
        phone_call_id: call.id,
        form_phone: if call.from_number.starts_with('+') {
            call.from_number.clone()
        } else {
            String::new()
        },
        phone: phone_for_people(&call.from_number),
        received_at: call
            .started_at
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        received_local: local(call.started_at),
        ended: call.ended_at.is_some(),
        duration_minutes: duration.unwrap_or_default(),
        patients,
        withheld: pop.withheld,
        patient_id,
        patient_name,
    }
}

/// The panel's inside, as the page includes it.
#[derive(Template)]
#[template(path = "agent_pop.html", config = "src/web/askama.toml")]
struct Panel<'a> {
    t: &'static Texts,
    pop: Option<&'a PopView>,
}

/// What the page shows of `caller`'s current call, if any (read, disclosed and audited by
/// `screen_pop::pop`; the caller log's permission and reads budget first).
pub async fn current(
    req: &HttpRequest,
    state: &AppState,
    session: &Session,
) -> Result<Option<PopView>, PageError> {
    let (caller, lang) = (&session.caller, session.lang);
    let err = |e| PageError::App(e, lang);
    let Some(account) = caller.id.clone() else {
        return Ok(None);
    };
    let Now::Call(ring) = screen_pop::current(state, account).await.map_err(err)? else {
        return Ok(None);
    };
    also::<ReadCalls>(req, session).await?;
    let pop = screen_pop::pop(state, caller.clone(), ring.phone_call_id)
        .await
        .map_err(err)?;
    Ok(pop.map(|p| view(texts(lang), p)))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
}

/// `GET /agent/events[?since=KEY]`: the signed-in account's current call as Server-Sent
/// Events. `pop` events carry the panel (HTML, escaped) and the form's values as JSON,
/// `clear` says there is no current call any more; `since` (or `Last-Event-ID` on a reconnect)
/// is the state the page already shows, so nothing is sent twice.
pub async fn events(
    signed: Signed<LogCalls>,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    also::<ReadCalls>(&req, &session).await?;
    let Some(account) = session.caller.id.clone() else {
        return Err(PageError::App(
            AppError::Forbidden("no account".into()),
            session.lang,
        ));
    };
    let since = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.since.as_deref())
        .filter(|k| !k.is_empty() && k.len() <= KEY_MAX)
        .unwrap_or(IDLE)
        .to_string();
    let mut rx = screen_pop::subscribe(&state, &account);
    // What this instance knows already is compared with what the page shows, at once.
    rx.mark_changed();
    let start = tokio::time::Instant::now();
    let feed = Feed {
        state: state.clone(),
        caller: session.caller.clone(),
        lang: session.lang,
        session_id: session.id.clone(),
        rx,
        shown: since,
        started: false,
        keep_alive: tokio::time::interval_at(start + KEEP_ALIVE, KEEP_ALIVE),
        session_check: tokio::time::interval_at(start + SESSION_CHECK, SESSION_CHECK),
    };
    let mut res = HttpResponse::Ok()
        .content_type("text/event-stream")
        // A proxy that buffers answers (nginx) would hold the pop back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::stream::unfold(feed, Feed::next));
    super::secure(&mut res);
    Ok(res)
}

/// One open stream.
struct Feed {
    state: web::Data<AppState>,
    caller: Caller,
    lang: Language,
    session_id: String,
    rx: tokio::sync::watch::Receiver<Now>,
    /// The key of what the page shows now.
    shown: String,
    started: bool,
    keep_alive: tokio::time::Interval,
    session_check: tokio::time::Interval,
}

type Chunk = Result<web::Bytes, Infallible>;

impl Feed {
    async fn next(mut self) -> Option<(Chunk, Self)> {
        if !self.started {
            self.started = true;
            // Reconnect a second after a cut; the first bytes also open the stream at once.
            return Some((Ok(web::Bytes::from_static(b"retry: 1000\n\n")), self));
        }
        loop {
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let now = self.rx.borrow_and_update().clone();
                    match now.key() {
                        Some(key) if key != self.shown => {}
                        _ => continue,
                    }
                    if !self.session_open().await {
                        return None;
                    }
                    return match self.event(now).await {
                        Ok((key, event)) => {
                            self.shown = key;
                            Some((Ok(event), self))
                        }
                        Err(e) => {
                            // The database is away: the page reconnects and asks again.
                            e.log();
                            None
                        }
                    };
                }
                _ = self.keep_alive.tick() => {
                    return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), self));
                }
                _ = self.session_check.tick() => {
                    if !self.session_open().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Whether the stream's session is still open (not signed out, idle or expired).
    async fn session_open(&self) -> bool {
        let id = self.session_id.clone();
        let now = crate::domain::now();
        let idle_since = now - self.state.settings.session_idle;
        self.state
            .db
            .read(move |conn| {
                crate::db::sessions::find(conn, &id, now, idle_since)
                    .map_err(crate::db::DbError::from)
            })
            .await
            .is_ok_and(|found| found.is_some())
    }

    /// The event that shows `now`, with its key.
    async fn event(&self, now: Now) -> Result<(String, web::Bytes), AppError> {
        let pop = match now {
            Now::Call(ring) => {
                screen_pop::pop(&self.state, self.caller.clone(), ring.phone_call_id).await?
            }
            Now::Idle | Now::Unknown => None,
        };
        let t = texts(self.lang);
        let Some(pop) = pop.map(|p| view(t, p)) else {
            let data = serde_json::json!({ "patient_label": t.no_patient });
            return Ok((
                IDLE.to_string(),
                web::Bytes::from(format!("event: clear\nid: {IDLE}\ndata: {data}\n\n")),
            ));
        };
        let html = Panel { t, pop: Some(&pop) }
            .render()
            .map_err(|e| AppError::Internal(format!("template: {e}")))?;
        let patient_label = if pop.patient_id.is_empty() {
            t.no_patient.to_string()
        } else {
            format!("{} : {}", t.patient, pop.patient_name)
        };
        let data = serde_json::json!({
            "phone_call_id": pop.phone_call_id,
            "phone": pop.form_phone,
            "received_at": pop.received_at,
            "duration_minutes": pop.duration_minutes,
            "ended": pop.ended,
            "patient_id": pop.patient_id,
            "patient_label": patient_label,
            "html": html,
        });
        // serde_json writes one line: the event's `data` needs no splitting.
        let event = format!("event: pop\nid: {}\ndata: {data}\n\n", pop.key);
        Ok((pop.key, web::Bytes::from(event)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_form_reads_them() {
        assert_eq!(minutes_of(180), "3");
        assert_eq!(minutes_of(150), "2,5");
        assert_eq!(minutes_of(75), "1,25");
        assert_eq!(minutes_of(0), "0");
        assert_eq!(minutes_of(-5), "0");
    }
}
