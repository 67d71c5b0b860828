//! `GET /api/v1/contact-list`: the list secretaries call back, streamed as JSON, CSV, the
//! spreadsheet CSV flavour or an Excel workbook. Access is decided before the first byte; the
//! rows then flow from a database cursor through a small bounded channel, so memory does not
//! grow with the list.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiQuery;
use crate::auth::{perm, Caller, Granted};
use crate::domain::appointment::Kind;
use crate::domain::patient::Language;
use crate::error::{AppResult, Problem};
use crate::export::{checked_filter, export, Format};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactListQuery {
    /// Site code (required).
    pub site: String,
    /// Only this service.
    pub service: Option<String>,
    /// `operation` or `consultation`.
    pub kind: Option<String>,
    /// `json` (default), `csv`, `excel` (the contract's formats) or `xlsx` (an Excel workbook,
    /// its column titles in French).
    pub format: Option<String>,
}

/// The contact list of a site: postponed appointments no attempt has reached, by priority,
/// then longest waiting, then name. Streamed; every export is audited with its row count.
#[utoipa::path(
    tag = "contact lists",
    params(ContactListQuery),
    responses(
        (status = 200, description = "`{items: [...]}` (json), CSV with the header of CONTRACT §4.5 (csv, excel), or an Excel workbook (xlsx: `application/vnd.openxmlformats-officedocument.spreadsheetml.sheet`)"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/contact-list")]
pub async fn contact_list(
    caller: Granted<perm::ContactLists>,
    state: web::Data<AppState>,
    query: ApiQuery<ContactListQuery>,
) -> AppResult<HttpResponse> {
    stream_contact_list(&state, caller.caller, query.parse()?, None).await
}

/// The contact list as a streamed download (the API and the secretaries' page). `page_lang`:
/// the language of the page asking, for a workbook's words (the API has none: French).
pub async fn stream_contact_list(
    state: &AppState,
    caller: Caller,
    q: ContactListQuery,
    page_lang: Option<Language>,
) -> AppResult<HttpResponse> {
    let mut f = super::Fields::new();
    let format = f.check_opt("format", q.format.as_deref(), Format::parse);
    let kind = f.check_opt("kind", q.kind.as_deref(), Kind::parse);
    let (format, kind) = f.finish(format.zip(kind))?;
    let format = format.unwrap_or(Format::Json);
    let format = page_lang.map_or(format, |lang| format.in_language(lang));
    let checking = caller.clone();
    let (site, service) = (q.site, q.service);
    let filter = state
        .db
        .read(move |conn| checked_filter(conn, &checking, site, service, kind))
        .await?;
    let file = format!("contact-list-{}.{}", filter.site, format.file_extension());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    let db = state.db.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let sent = export(&db, &caller, filter, format, |chunk| {
            tx.blocking_send(Ok(web::Bytes::from(chunk))).is_ok()
        });
        if let Err(e) = sent {
            // Headers are gone already: cut the body so the client sees a broken download.
            tracing::error!(error = %e, "contact list export failed");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}
