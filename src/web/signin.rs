//! Sign-in with an account's token, sign-out, the language of the pages, and the home page.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use rand::RngCore;
use serde::Deserialize;

use super::{
    landing, language_name, read_form, render, see_other, AnySigned, PageError, Session,
    SESSION_COOKIE, SESSION_HOURS, SIGN_IN_COOKIE,
};
use crate::auth::token_hash;
use crate::db;
use crate::domain::patient::Language;
use crate::error::AppError;
use crate::i18n::{texts, Texts};
use crate::service::sessions;
use crate::state::AppState;

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `Secure` when the service is reached over https (`REPRISE_PUBLIC_URL`).
fn cookie<'a>(state: &AppState, name: &'a str, value: String, path: &'a str) -> Cookie<'a> {
    let mut c = Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    c.set_secure(state.settings.public_url.scheme() == "https");
    c
}

/// `/`: the first page of the person's role, or the sign-in page.
pub async fn home(session: Result<AnySigned, PageError>) -> HttpResponse {
    match session {
        Ok(AnySigned(session)) => see_other(landing(&session.caller)),
        Err(_) => see_other("/sign-in"),
    }
}

#[derive(Template)]
#[template(path = "sign_in.html", config = "src/web/askama.toml")]
struct SignInPage {
    t: &'static Texts,
    csrf: String,
    languages: Vec<(&'static str, &'static str, bool)>,
    message: Option<&'static str>,
    refused: bool,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    lang: Option<String>,
    out: Option<String>,
}

fn sign_in_page(
    state: &AppState,
    lang: Language,
    message: Option<&'static str>,
    refused: bool,
) -> Result<HttpResponse, PageError> {
    let csrf = random_hex();
    let page = SignInPage {
        t: texts(lang),
        csrf: csrf.clone(),
        languages: Language::ALL
            .into_iter()
            .map(|l| (l.as_str(), language_name(l), l == lang))
            .collect(),
        message,
        refused,
    };
    let mut res = render(&page)?;
    let mut c = cookie(state, SIGN_IN_COOKIE, csrf, "/sign-in");
    c.set_max_age(CookieDuration::hours(1));
    res.add_cookie(&c)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    if refused {
        *res.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
    }
    Ok(res)
}

/// `GET /sign-in`: the form, in French unless `?lang=` says otherwise.
pub async fn form(
    state: web::Data<AppState>,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse, PageError> {
    let lang = query
        .lang
        .as_deref()
        .and_then(|l| Language::parse(l).ok())
        .unwrap_or(Language::Fr);
    let message = query.out.is_some().then_some(texts(lang).signed_out);
    sign_in_page(&state, lang, message, false)
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    lang: Option<String>,
}

/// `POST /sign-in`: a known token opens a session of [`SESSION_HOURS`].
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let expected = req
        .cookie(SIGN_IN_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let form: SignInForm = read_form(&req, async { Ok(body) }, &expected).await?;
    let lang = form
        .lang
        .as_deref()
        .and_then(|l| Language::parse(l).ok())
        .unwrap_or(Language::Fr);
    let token = form.token.trim().to_string();
    if token.is_empty() || token.len() > 256 {
        return sign_in_page(&state, lang, Some(texts(lang).bad_token), true);
    }
    let value = random_hex();
    let now = crate::domain::now();
    let row = db::sessions::SessionRow {
        id: token_hash(&value),
        user_id: String::new(),
        csrf: random_hex(),
        language: lang,
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
        last_seen_at: now,
    };
    // A session this browser already had ends with the new one.
    let previous = req.cookie(SESSION_COOKIE).map(|c| token_hash(c.value()));
    let origin = crate::auth::origin(&req);
    let account = sessions::sign_in(&state, token, row, previous, origin).await?;
    let Some(caller) = account else {
        return sign_in_page(&state, lang, Some(texts(lang).bad_token), true);
    };
    let mut res = see_other(landing(&caller));
    let mut session = cookie(&state, SESSION_COOKIE, value, "/");
    session.set_max_age(CookieDuration::hours(SESSION_HOURS));
    let mut used = cookie(&state, SIGN_IN_COOKIE, String::new(), "/sign-in");
    used.make_removal();
    for c in [session, used] {
        res.add_cookie(&c)
            .map_err(|e| AppError::Internal(e.to_string()))?;
    }
    Ok(res)
}

/// `POST /sign-out`: the session ends here and now.
pub async fn sign_out(
    AnySigned(session): AnySigned,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let _: super::CsrfField = read_form(&req, async { Ok(body) }, &session.csrf)
        .await
        .map_err(|e| e.in_language(session.lang))?;
    let Session {
        id, caller, lang, ..
    } = session;
    state
        .db
        .write(move |conn| {
            db::sessions::delete(conn, &id)?;
            crate::audit::record(conn, &caller, "auth.sign_out", None, serde_json::json!({}))
                .map_err(AppError::from)
        })
        .await
        .map_err(|e| PageError::App(e, lang))?;
    let mut res = see_other("/sign-in?out=1");
    let mut gone = cookie(&state, SESSION_COOKIE, String::new(), "/");
    gone.make_removal();
    res.add_cookie(&gone)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(res)
}

#[derive(Deserialize)]
pub struct LanguageForm {
    lang: String,
    back: Option<String>,
}

/// `POST /language`: the pages of this session in another language.
pub async fn language(
    AnySigned(session): AnySigned,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form: LanguageForm = read_form(&req, async { Ok(body) }, &session.csrf)
        .await
        .map_err(|e| e.in_language(session.lang))?;
    let lang = Language::parse(&form.lang)
        .map_err(|e| PageError::App(AppError::validation("lang", e.0), session.lang))?;
    let back = form
        .back
        .as_deref()
        .map_or_else(|| "/".to_string(), page_to_return_to);
    let id = session.id.clone();
    state
        .db
        .write(move |conn| db::sessions::set_language(conn, &id, lang).map_err(AppError::from))
        .await
        .map_err(|e| PageError::App(e, session.lang))?;
    Ok(see_other(&back))
}

/// Where the language switch may send the browser back to: one of the pages (with a query of
/// plain characters), else `/`. Never another site, never a header-breaking character.
fn page_to_return_to(back: &str) -> String {
    let (path, query) = back.split_once('?').unwrap_or((back, ""));
    let plain = query
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"=&%._-+".contains(&b));
    if !(matches!(path, "/agent" | "/contacts" | "/board") && plain && back.len() <= 512) {
        return "/".into();
    }
    // Without the message of a form sent before: it was said once.
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !matches!(name, "done" | "at" | "next" | "queued" | "to_contact")
        })
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::page_to_return_to;

    #[test]
    fn the_language_switch_only_goes_back_to_a_page() {
        for ok in [
            "/agent",
            "/contacts?site=ARL&service=ARL-CHIR&page=2",
            "/board?from=2022-05-01",
        ] {
            assert_eq!(page_to_return_to(ok), ok);
        }
        // The message of a form sent before is not said again in the new language.
        assert_eq!(
            page_to_return_to("/contacts?site=ARL&done=attempt&at=a1&next=b2&page=2"),
            "/contacts?site=ARL&page=2"
        );
        assert_eq!(page_to_return_to("/board?done=centre"), "/board");
        for bad in [
            "//evil.example/",
            "/\tevil",
            "/\t/evil.example",
            "https://evil.example",
            "/agent/search",
            "/contacts?x=\r\nSet-Cookie:a",
            "/agent?patient=<script>",
            "",
        ] {
            assert_eq!(page_to_return_to(bad), "/", "{bad:?}");
        }
    }
}
