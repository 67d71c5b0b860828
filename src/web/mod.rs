//! The web pages (CONTRACT §5): server-rendered HTML for call-centre agents, medical
//! secretaries and coordinators, in French first (Dutch, German, English on request).
//!
//! One access rule for pages and API: a page states the permission it needs with
//! [`Signed<perm::X>`] (or [`Submitted<perm::X, Form>`] for a form), which finds the account
//! of the session cookie and then asks [`Granted`], the API's own extractor, for the decision.
//! Page handlers call the same `service/` functions as the API handlers (`service::calls::log`…),
//! so the rules, audit entries and emails are those of the API.
//!
//! Sessions: signing in with an account's token creates a row in `web_sessions` keyed by the
//! SHA-256 of a random cookie value (`HttpOnly; SameSite=Strict; Path=/`, `Secure` behind
//! https, ending after [`SESSION_HOURS`], or after `REPRISE_SESSION_IDLE_MINUTES` without a
//! request). Every form carries the session's CSRF secret,
//! checked before the form is read; the sign-in form carries a double-submit cookie.

mod agent;
mod answer;
mod board;
mod callbacks;
mod chart;
mod contacts;
mod pop;
mod signin;

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::auth::{perm, token_hash, Caller, Granted, Permission};
use crate::db;
use crate::denials::Refusal;
use crate::domain::patient::Language;
use crate::domain::Action;
use crate::error::AppError;
pub use crate::i18n::language_name;
use crate::i18n::{texts, Texts};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "reprise_session";
/// The sign-in form's double-submit cookie (no session exists yet to hold its CSRF secret).
pub const SIGN_IN_COOKIE: &str = "reprise_sign_in";
/// How long a session lasts: a shift, with margin.
pub const SESSION_HOURS: i64 = 12;
/// Most bytes a page form may send (the longest is a call with 2,000 characters of notes).
const FORM_LIMIT: usize = 32 * 1024;

/// Every page, under `/`.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(signin::home))
        .route("/sign-in", web::get().to(signin::form))
        .route("/sign-in", web::post().to(signin::sign_in))
        .route("/sign-out", web::post().to(signin::sign_out))
        .route("/language", web::post().to(signin::language))
        .route("/agent", web::get().to(agent::page))
        .route("/agent/search", web::post().to(agent::search))
        .route("/agent/calls", web::post().to(agent::log))
        .route("/agent/events", web::get().to(pop::events))
        .route("/callbacks", web::get().to(callbacks::page))
        .route("/callbacks/claim", web::post().to(callbacks::claim))
        .route("/callbacks/attempt", web::post().to(callbacks::attempt))
        .route("/contacts", web::get().to(contacts::page))
        .route("/contacts/attempt", web::post().to(contacts::attempt))
        .route("/contacts/reschedule", web::post().to(contacts::reschedule))
        .route("/contacts/export", web::get().to(contacts::export))
        .route("/contacts/print", web::get().to(contacts::print))
        .route("/board", web::get().to(board::page))
        .route("/board/reopen", web::get().to(board::confirm_reopen))
        .route("/board/reopen", web::post().to(board::reopen))
        .route(
            "/board/call-centre",
            web::get().to(board::confirm_call_centre),
        )
        .route("/board/call-centre", web::post().to(board::call_centre))
        .route("/answer/{token}", web::get().to(answer::show))
        .route("/answer/{token}", web::post().to(answer::answer))
        .route("/static/{file}", web::get().to(asset));
}

/// A signed-in person: the session of the cookie and its account as a [`Caller`].
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the cookie value (the row's id).
    pub id: String,
    pub csrf: String,
    pub lang: Language,
    pub caller: Caller,
}

impl Session {
    pub fn t(&self) -> &'static Texts {
        texts(self.lang)
    }

    /// Finds the session of the request's cookie (once per request) and puts its caller where
    /// [`Granted`] looks first.
    async fn of(req: &HttpRequest) -> Result<Session, PageError> {
        if let Some(session) = req.extensions().get::<Session>() {
            return Ok(session.clone());
        }
        let cookie = req.cookie(SESSION_COOKIE).ok_or(PageError::SignIn)?;
        if cookie.value().is_empty() || cookie.value().len() > 128 {
            req.extensions_mut().insert(Refusal::UnknownSession);
            return Err(PageError::SignIn);
        }
        let id = token_hash(cookie.value());
        let state = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| PageError::app(AppError::Internal("state missing".into())))?;
        let key = id.clone();
        let now = crate::domain::now();
        let idle_since = now - state.settings.session_idle;
        let found = state
            .db
            .read(move |conn| {
                db::sessions::find(conn, &key, now, idle_since).map_err(db::DbError::from)
            })
            .await
            .map_err(|e| PageError::app(AppError::from(e)))?;
        let Some(found) = found else {
            // A session that ended, or a cookie that never opened one.
            req.extensions_mut().insert(Refusal::UnknownSession);
            return Err(PageError::SignIn);
        };
        let (row, account) = found;
        if row.last_seen_at <= now - db::sessions::SEEN_EVERY {
            // Awaited: a session that answered this request is live for the next idle period.
            let key = id.clone();
            state
                .db
                .write(move |conn| db::sessions::touch(conn, &key, now).map_err(db::DbError::from))
                .await
                .map_err(|e| PageError::app(AppError::from(e)))?;
        }
        let session = Session {
            id,
            csrf: row.csrf,
            lang: row.language,
            caller: Caller::of(account, crate::auth::origin(req)),
        };
        req.extensions_mut().insert(session.caller.clone());
        req.extensions_mut().insert(session.clone());
        Ok(session)
    }
}

/// A page that needs permission `P`: signed in (else to the sign-in page), and the role
/// allows it (else 403), decided by the API's [`Granted`].
pub struct Signed<P: Permission> {
    pub session: Session,
    _permission: PhantomData<P>,
}

impl<P: Permission> Deref for Signed<P> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl<P: Permission + 'static> Signed<P> {
    async fn check(req: HttpRequest) -> Result<Self, PageError> {
        let session = Session::of(&req).await?;
        Granted::<P>::from_request(&req, &mut Payload::None)
            .await
            .map_err(|e| PageError::App(e, session.lang))?;
        Ok(Signed {
            session,
            _permission: PhantomData,
        })
    }
}

impl<P: Permission + 'static> FromRequest for Signed<P> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(Self::check(req.clone()))
    }
}

/// Asks [`Granted`] for a second permission of a signed-in page (the same decision and the
/// same rate budget as the API route that needs it).
pub async fn also<P: Permission + 'static>(
    req: &HttpRequest,
    session: &Session,
) -> Result<(), PageError> {
    Granted::<P>::from_request(req, &mut Payload::None)
        .await
        .map(drop)
        .map_err(|e| PageError::App(e, session.lang))
}

/// Any signed-in person (sign-out, language, the home page).
pub struct AnySigned(pub Session);

impl FromRequest for AnySigned {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Session::of(&req).await.map(AnySigned) })
    }
}

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form sent by a signed-in person allowed `P`: access is decided first, then the CSRF
/// secret of the session is checked, then the form is read (`application/x-www-form-urlencoded`).
pub struct Submitted<P: Permission, T> {
    pub session: Session,
    pub form: T,
    _permission: PhantomData<P>,
}

impl<P: Permission + 'static, T: DeserializeOwned + 'static> FromRequest for Submitted<P, T> {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let session = Signed::<P>::check(req.clone()).await?.session;
            let form = read_form(&req, body, &session.csrf)
                .await
                .map_err(|e| e.in_language(session.lang))?;
            Ok(Submitted {
                session,
                form,
                _permission: PhantomData,
            })
        })
    }
}

/// Reads a url-encoded form whose `csrf` field must be `csrf`.
async fn read_form<T: DeserializeOwned>(
    req: &HttpRequest,
    body: impl Future<Output = Result<web::Bytes, actix_web::Error>>,
    csrf: &str,
) -> Result<T, PageError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(PageError::app(AppError::UnsupportedMediaType(
            "a form is sent as application/x-www-form-urlencoded".into(),
        )));
    }
    if req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .is_none_or(|n| n > FORM_LIMIT)
    }) {
        return Err(PageError::app(AppError::PayloadTooLarge(format!(
            "a form is at most {FORM_LIMIT} bytes"
        ))));
    }
    let bytes = body.await.map_err(|e| {
        let too_large = matches!(
            e.as_error::<actix_web::error::PayloadError>(),
            Some(actix_web::error::PayloadError::Overflow)
        );
        PageError::app(if too_large {
            AppError::PayloadTooLarge(format!("a form is at most {FORM_LIMIT} bytes"))
        } else {
            AppError::BadRequest("the form could not be read".into())
        })
    })?;
    if bytes.len() > FORM_LIMIT {
        return Err(PageError::app(AppError::PayloadTooLarge(format!(
            "a form is at most {FORM_LIMIT} bytes"
        ))));
    }
    let sent: CsrfField =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| PageError::FormExpired(Language::Fr))?;
    if !same_secret(&sent.csrf, csrf) {
        return Err(PageError::FormExpired(Language::Fr));
    }
    if bytes.to_ascii_lowercase().windows(3).any(|w| w == b"%00") || bytes.contains(&0) {
        return Err(PageError::app(AppError::validation(
            "form",
            crate::error::NUL_REFUSED,
        )));
    }
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| PageError::app(AppError::validation("form", e.to_string())))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len()
        && !b.is_empty()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a page could not be served: to the sign-in page, or an HTML page saying why, in the
/// person's language.
#[derive(Debug)]
pub enum PageError {
    SignIn,
    FormExpired(Language),
    App(AppError, Language),
}

impl PageError {
    pub fn app(e: AppError) -> Self {
        PageError::App(e, Language::Fr)
    }

    fn in_language(self, lang: Language) -> Self {
        match self {
            PageError::SignIn => PageError::SignIn,
            PageError::FormExpired(_) => PageError::FormExpired(lang),
            PageError::App(e, _) => PageError::App(e, lang),
        }
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError::app(e)
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::SignIn => f.write_str("not signed in"),
            PageError::FormExpired(_) => f.write_str("form expired"),
            PageError::App(e, _) => e.fmt(f),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html", config = "src/web/askama.toml")]
struct ErrorPage {
    t: &'static Texts,
    title: &'static str,
    headline: &'static str,
    details: Vec<String>,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn | PageError::App(AppError::Unauthorized, _) => StatusCode::SEE_OTHER,
            PageError::FormExpired(_) => StatusCode::FORBIDDEN,
            PageError::App(e, _) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (lang, e) = match self {
            PageError::SignIn | PageError::App(AppError::Unauthorized, _) => {
                return see_other("/sign-in");
            }
            PageError::FormExpired(lang) => (*lang, None),
            PageError::App(e, lang) => (*lang, Some(e)),
        };
        let t = texts(lang);
        // Every word in the page's language: the API's English details stay out of it.
        let (title, headline, details) = match e {
            None => (t.title_expired, t.form_expired, vec![]),
            Some(AppError::Forbidden(_)) => (t.title_forbidden, t.forbidden, vec![]),
            Some(AppError::NotFound(_)) => (t.title_not_found, t.not_found, vec![]),
            Some(AppError::Conflict(why)) => (
                t.title_conflict,
                t.conflict,
                vec![t.explain_conflict(why).to_string()],
            ),
            Some(AppError::Validation(fields)) => (
                t.title_invalid,
                t.invalid,
                fields
                    .iter()
                    .map(|f| t.explain(&f.field, &f.message))
                    .collect(),
            ),
            Some(AppError::TooManyRequests(_)) => (t.title_too_many, t.too_many, vec![]),
            Some(AppError::TooManyPatients(_)) => (t.title_too_many, t.too_many_patients, vec![]),
            Some(e @ (AppError::Unavailable(_) | AppError::Internal(_))) => {
                e.log();
                (t.title_unavailable, t.unavailable, vec![])
            }
            Some(_) => (t.title_invalid, t.invalid, vec![]),
        };
        let body = ErrorPage {
            t,
            title,
            headline,
            details,
        }
        .render()
        .unwrap_or_else(|_| headline.to_string());
        let mut res = html(body);
        *res.status_mut() = self.status_code();
        if let Some(AppError::TooManyRequests(wait) | AppError::TooManyPatients(wait)) = e {
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(AppError::TooManyPatients(_)) = e {
            res.extensions_mut().insert(Refusal::DisclosureLimit);
        }
        res
    }
}

/// What every page answer carries: no caching (pages hold personal data), nothing loaded from
/// elsewhere, no framing, no referrer.
fn secure(res: &mut HttpResponse) {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
}

pub fn html(body: String) -> HttpResponse {
    let mut res = HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body);
    secure(&mut res);
    res
}

pub fn render(page: &impl Template) -> Result<HttpResponse, PageError> {
    page.render()
        .map(html)
        .map_err(|e| PageError::app(AppError::Internal(format!("template: {e}"))))
}

/// After a form: back to a page (Post/Redirect/Get), so that a reload sends nothing twice.
pub fn see_other(location: &str) -> HttpResponse {
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish();
    secure(&mut res);
    res
}

/// One entry of the navigation bar.
pub struct Nav {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the layout shows around every page of a signed-in person.
pub struct Chrome {
    pub t: &'static Texts,
    pub title: &'static str,
    pub user: String,
    pub role: &'static str,
    pub nav: Vec<Nav>,
    pub csrf: String,
    pub flash: Option<String>,
    /// `(code, name, selected)` for the language switch.
    pub languages: Vec<(&'static str, &'static str, bool)>,
}

/// The page each role works on all day, where signing in lands: the crisis board for those who
/// run the crisis, the contact lists for secretaries, the call page for agents.
fn landing(caller: &Caller) -> &'static str {
    use crate::domain::Role;
    let wanted = match caller.role {
        Role::Admin | Role::Coordinator => "/board",
        Role::Secretary => "/contacts",
        Role::Agent => "/agent",
    };
    let pages = home_pages(caller);
    pages
        .iter()
        .find(|(href, _)| *href == wanted)
        .or(pages.first())
        .map_or("/sign-in", |(href, _)| href)
}

/// The pages a role may open, in the order of the navigation bar.
fn home_pages(caller: &Caller) -> Vec<(&'static str, Action)> {
    [
        ("/agent", Action::LogCalls),
        ("/callbacks", Action::LogCalls),
        ("/contacts", Action::ContactLists),
        ("/board", Action::ManageSites),
    ]
    .into_iter()
    .filter(|(_, action)| caller.may(*action))
    .collect()
}

impl Chrome {
    pub fn new(session: &Session, title: &'static str, here: &str, flash: Option<String>) -> Self {
        let t = session.t();
        let nav = home_pages(&session.caller)
            .into_iter()
            .map(|(href, _)| Nav {
                href,
                label: match href {
                    "/agent" => t.nav_agent,
                    "/callbacks" => t.nav_callbacks,
                    "/contacts" => t.nav_contacts,
                    _ => t.nav_board,
                },
                current: href == here,
            })
            .collect();
        Chrome {
            t,
            title,
            user: session.caller.name.clone(),
            role: t.word(session.caller.role.as_str()),
            nav,
            csrf: session.csrf.clone(),
            flash,
            languages: Language::ALL
                .into_iter()
                .map(|l| (l.as_str(), language_name(l), l == session.lang))
                .collect(),
        }
    }
}

/// `dd/mm/yyyy HH:MM`, Brussels time.
pub fn local(t: chrono::NaiveDateTime) -> String {
    crate::domain::time::brussels(t)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

/// A phone number as people read it (`+32 470 12 34 56`), from its E.164 form.
pub fn phone_for_people(e164: &str) -> String {
    crate::domain::PhoneE164::parse(e164)
        .map(|p| p.international())
        .unwrap_or_else(|_| e164.to_string())
}

/// `dd/mm/yyyy`.
pub fn day(d: chrono::NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// Page flashes, by the key in `?done=` after a form (never personal data).
pub fn flash(t: &'static Texts, done: Option<&str>) -> Option<String> {
    let text = match done? {
        "call" => t.call_logged,
        "attempt" => t.attempt_recorded,
        "rescheduled" => t.rescheduled,
        "reopened" => t.site_reopened,
        "centre" => t.centre_changed,
        "claimed" => t.callback_claimed,
        "callback" => t.callback_recorded,
        _ => return None,
    };
    Some(text.to_string())
}

const APP_CSS: &str = include_str!("static/app.css");
const APP_JS: &str = include_str!("static/app.js");

/// The stylesheet and the few lines of script, from the binary (no CDN, nothing fetched).
async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

// The marker types pages name, re-exported for the page modules.
pub(crate) use perm::{
    ChangeAppointments, ContactLists, LogCalls, ManageCallCentre, ManageSites, ReadCalls,
    ReadPatients,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""), "an empty secret never matches");
    }
}
