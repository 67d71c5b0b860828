//! CSV imports over HTTP: the body is spooled to a temporary file as it arrives (memory stays
//! flat), then imported on a blocking thread by `crate::service::imports`.

use std::io::{Seek, Write};

use actix_web::http::header;
use actix_web::{post, web, HttpRequest};
use futures_util::StreamExt;

use crate::auth::{perm, Granted};
use crate::error::{AppError, AppResult, Problem};
use crate::service::imports::{AppointmentImport, CallImport};
use crate::state::AppState;

/// Largest CSV upload: about a million lines.
pub const IMPORT_LIMIT: usize = 256 * 1024 * 1024;

fn is_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::TEXT && m.subtype() == mime::CSV)
}

/// Writes a CSV body to a temporary file, refusing more than [`IMPORT_LIMIT`] bytes.
async fn spool(req: &HttpRequest, payload: web::Payload) -> AppResult<std::fs::File> {
    if !is_csv(req) {
        return Err(AppError::UnsupportedMediaType(
            "send the file as text/csv".into(),
        ));
    }
    spool_body(req, payload).await
}

/// Writes the body, whatever its type, to a temporary file, refusing more than
/// [`IMPORT_LIMIT`] bytes (the imports, a FHIR Bundle).
pub(super) async fn spool_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> AppResult<std::fs::File> {
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "the file is over the limit of {IMPORT_LIMIT} bytes"
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > IMPORT_LIMIT) {
        return Err(too_large());
    }
    let mut file =
        tempfile::tempfile().map_err(|e| AppError::Internal(format!("temporary file: {e}")))?;
    let mut written = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| AppError::BadRequest(format!("the body could not be read: {e}")))?;
        written += chunk.len();
        if written > IMPORT_LIMIT {
            return Err(too_large());
        }
        file.write_all(&chunk)
            .map_err(|e| AppError::Internal(format!("temporary file: {e}")))?;
    }
    file.rewind()
        .map_err(|e| AppError::Internal(format!("temporary file: {e}")))?;
    Ok(file)
}

/// Import appointments from CSV (header of CONTRACT §4.4), all or nothing.
#[utoipa::path(
    operation_id = "appointments_import",
    tag = "appointments",
    path = "/appointments/import",
    request_body(content = String, content_type = "text/csv", description = "national_number,last_name,first_name,birth_date,phone,email,language,email_consent,site,service,kind,label,scheduled_at,priority,urgent,essential"),
    responses(
        (status = 200, body = AppointmentImport),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem, description = "every bad line, with its field; nothing stored")
    ),
    security(("bearer" = []))
)]
#[post("/appointments/import")]
pub async fn appointments(
    caller: Granted<perm::Import>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<web::Json<AppointmentImport>> {
    let file = spool(&req, payload).await?;
    let caller = caller.caller;
    let db = state.db.clone();
    let report = web::block(move || {
        crate::service::imports::import_appointments(&db, std::io::BufReader::new(file), &caller)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(web::Json(report))
}

/// Import calls from CSV (header of CONTRACT §4.6), all or nothing; callers are matched to
/// patients by national number.
#[utoipa::path(
    operation_id = "calls_import",
    tag = "calls",
    path = "/calls/import",
    request_body(content = String, content_type = "text/csv", description = "received_at,caller_phone,national_number,reason,outcome,duration_seconds,notes"),
    responses(
        (status = 200, body = CallImport),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem, description = "every bad line, with its field; nothing stored")
    ),
    security(("bearer" = []))
)]
#[post("/calls/import")]
pub async fn calls(
    caller: Granted<perm::Import>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<web::Json<CallImport>> {
    let file = spool(&req, payload).await?;
    let caller = caller.caller;
    let db = state.db.clone();
    let report = web::block(move || {
        crate::service::imports::import_calls(&db, std::io::BufReader::new(file), &caller)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(web::Json(report))
}
