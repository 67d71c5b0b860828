//! `GET /api/v1/contact-list`: the list secretaries call back, streamed as JSON, CSV, the
//! spreadsheet CSV flavour or an Excel workbook. Access is decided before the first byte; the
//! rows then flow from a database cursor through a small bounded channel, so memory does not
//! grow with the list.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ApiQuery;
use crate::auth::{perm, Granted};
use crate::domain::appointment::Kind;
use crate::domain::Faults;
use crate::error::{AppResult, Problem};
use crate::service::contact_lists::{self, Format};
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

/// The contact list as JSON (`format=json`), for the document only: the answer is streamed
/// row by row by `service::contact_lists`, with these fields (the CSV columns, then more).
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built: the list is streamed
pub struct ContactList {
    pub items: Vec<ContactListItem>,
}

/// One appointment to call back: the columns of the CSV (CONTRACT §4.5), then the day a
/// committed plan proposes, the status, the booked date and the patient's answer by email.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built: the list is streamed
pub struct ContactListItem {
    pub appointment_id: String,
    /// 1 (most pressing) to 4.
    pub priority: i64,
    /// `operation` or `consultation`.
    pub kind: String,
    pub service: String,
    pub label: String,
    /// Brussels local time with its offset.
    pub original_scheduled_at: String,
    pub patient_last_name: String,
    pub patient_first_name: String,
    pub birth_date: String,
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    pub attempts: i64,
    pub last_outcome: Option<String>,
    /// Brussels local time with its offset.
    pub last_attempt_at: Option<String>,
    pub proposed_at: Option<String>,
    pub status: String,
    /// Brussels local time with its offset.
    pub scheduled_at: String,
    pub patient_request: Option<String>,
}

/// The contact list of a site: postponed appointments no attempt has reached, by priority,
/// then longest waiting, then name. Streamed; every export is audited with its row count.
#[utoipa::path(
    operation_id = "contact_list_export",
    tag = "contact lists",
    params(ContactListQuery),
    responses(
        (status = 200, description = "The list, as an attachment: `{items: [...]}` (json), CSV with the header of CONTRACT §4.5 (csv; excel: semicolons and a BOM), or an Excel workbook (xlsx)",
            content(
                (ContactList = "application/json"),
                (String = "text/csv"),
                (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
            )
        ),
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
    let q = query.parse()?;
    let mut f = Faults::default();
    let format = f.check_opt("format", q.format.as_deref(), Format::parse);
    let kind = f.check_opt("kind", q.kind.as_deref(), Kind::parse);
    let (format, kind) = f.finish(format.zip(kind))?;
    let format = format.unwrap_or(Format::Json);
    let d = contact_lists::stream(&state, caller.caller, q.site, q.service, kind, format).await?;
    Ok(crate::http::download(d))
}
