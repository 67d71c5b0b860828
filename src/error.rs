//! The one error type of the HTTP API, rendered as `application/problem+json` (RFC 9457).
//!
//! Policy: the client learns what it did wrong (status, a title, a detail it can act on, the
//! fields at fault); it never learns why the server failed. Internal causes are logged here,
//! once, without request data, and the client gets a generic 500 or 503.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field at fault in a 422; imports also give the line of the file (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn at_line(line: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            ..Self::new(field, message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or unknown token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// With the methods the path answers, for the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unavailable(String),
    /// Over the account's (or, without a valid credential, the address's) budget; the client
    /// may retry after this many seconds.
    #[error("too many requests: retry in {0} s")]
    TooManyRequests(u64),
    /// The account was shown `REPRISE_PATIENTS_PER_HOUR` distinct patients this hour; other
    /// patients may be shown again after this many seconds.
    #[error("this account has been shown as many patients as an hour allows (REPRISE_PATIENTS_PER_HOUR); patients it was already shown remain readable; others again in {0} s")]
    TooManyPatients(u64),
    /// A bug or an unexpected state; the string is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

/// The one way a domain's faults become an answer: a 422 naming every field.
impl From<crate::domain::Faults> for AppError {
    fn from(faults: crate::domain::Faults) -> Self {
        AppError::Validation(
            faults
                .0
                .into_iter()
                .map(|(field, e)| FieldError::new(field, e.0))
                .collect(),
        )
    }
}

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    /// Logs a failure of the server (never sent to the client); the client's own mistakes are
    /// not logged. The API's problem+json and the pages' error page both call it.
    pub fn log(&self) {
        match self {
            AppError::Internal(cause) => tracing::error!(cause = %cause, "request failed"),
            AppError::Unavailable(cause) => tracing::warn!(cause = %cause, "database unavailable"),
            _ => {}
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad-request",
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not-found",
            AppError::MethodNotAllowed(_) => "method-not-allowed",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload-too-large",
            AppError::UnsupportedMediaType(_) => "unsupported-media-type",
            AppError::Validation(_) => "validation",
            AppError::Unavailable(_) => "unavailable",
            AppError::TooManyRequests(_) => "too-many-requests",
            AppError::TooManyPatients(_) => "too-many-patients",
            AppError::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            AppError::Validation(errors) => match errors.as_slice() {
                [one] => match one.line {
                    Some(line) => format!("line {line}, {}: {}", one.field, one.message),
                    None => format!("{}: {}", one.field, one.message),
                },
                _ if errors.iter().any(|e| e.line.is_some()) => {
                    let mut lines: Vec<u64> = errors.iter().filter_map(|e| e.line).collect();
                    lines.dedup();
                    format!("{} lines are invalid; nothing was stored", lines.len())
                }
                _ => format!("{} fields are invalid", errors.len()),
            },
            AppError::Unavailable(_) => {
                "the service cannot reach its database right now; try again shortly".into()
            }
            AppError::Internal(_) => "the server could not complete the request".into(),
            other => other.to_string(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:reprise:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
        }
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
            .body(serde_json::to_string(self).unwrap_or_default())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::TooManyRequests(_) | AppError::TooManyPatients(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut problem = Problem::new(self.status_code(), self.slug(), self.detail());
        if let AppError::Validation(errors) = self {
            problem.errors = Some(errors.clone());
        }
        let mut response = problem.response();
        if let AppError::TooManyRequests(seconds) | AppError::TooManyPatients(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(*seconds));
        }
        if let AppError::TooManyPatients(_) = self {
            // Audited and counted by the middleware (`routes::middleware::refusals`).
            response
                .extensions_mut()
                .insert(crate::denials::Refusal::DisclosureLimit);
        }
        // Empty for a path outside the OpenAPI document (`/docs/…`): no header rather than an
        // `Allow` that says "nothing".
        if let AppError::MethodNotAllowed(allow) = self {
            if !allow.is_empty() {
                if let Ok(value) = header::HeaderValue::from_str(allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
            }
        }
        if matches!(self, AppError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            DbError::Unavailable(cause) => AppError::Unavailable(cause),
            DbError::Task(cause) => AppError::Internal(cause),
            DbError::Query(E::NotFound) => AppError::NotFound("no such record".into()),
            DbError::Query(E::DatabaseError(K::UniqueViolation, _)) => {
                AppError::Conflict("a record with this key already exists".into())
            }
            // Handlers check references and ranges first; these are the races that remain.
            DbError::Query(E::DatabaseError(K::ForeignKeyViolation, _)) => {
                AppError::Conflict("a record this refers to does not exist (any more)".into())
            }
            DbError::Query(E::DatabaseError(K::CheckViolation | K::NotNullViolation, _)) => {
                AppError::validation("body", "a value is out of its allowed range")
            }
            DbError::Query(E::DatabaseError(K::ClosedConnection, info)) => {
                AppError::Unavailable(info.message().to_string())
            }
            // PostgreSQL chose this transaction to end a deadlock, or could not serialize it:
            // nothing of it is stored, and the same request again can succeed.
            DbError::Query(E::DatabaseError(K::SerializationFailure, info)) => {
                AppError::Unavailable(info.message().to_string())
            }
            DbError::Query(E::DatabaseError(K::Unknown, info))
                if info.message().starts_with("deadlock detected") =>
            {
                AppError::Unavailable(info.message().to_string())
            }
            DbError::Query(E::DatabaseError(K::Unknown, info))
                if is_unavailable_message(info.message()) =>
            {
                AppError::Unavailable(info.message().to_string())
            }
            // PostgreSQL refuses NUL in text (SQLite would store it). The extractors refuse it
            // in bodies and query strings first; this is for what remains (a path segment).
            DbError::Query(E::DatabaseError(K::Unknown, info))
                if info.message().contains("invalid byte sequence") =>
            {
                AppError::validation("body", NUL_REFUSED)
            }
            DbError::Query(other) => AppError::Internal(other.to_string()),
        }
    }
}

/// What a text with a NUL character gets, on both backends.
pub const NUL_REFUSED: &str = "text must not contain NUL characters";

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::from(DbError::Query(e))
    }
}

/// Messages by which libpq and SQLite say "the server is gone / the file is busy", as opposed
/// to "your query is wrong".
fn is_unavailable_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "server closed the connection",
        "connection refused",
        "could not connect",
        "terminating connection",
        "no connection to the server",
        "database is locked",
        "the database system is",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: AppError) -> serde_json::Value {
        let resp = e.error_response();
        let bytes = resp.into_body().try_into_bytes().unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn internal_causes_are_never_sent() {
        let body = body_of(AppError::Internal("password=hunter2 at db.rs:12".into()));
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn validation_problems_list_their_fields() {
        let body = body_of(AppError::Validation(vec![
            FieldError::new("code", "too short"),
            FieldError::new("name", "required"),
        ]));
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][1]["field"], "name");
    }

    #[test]
    fn unique_violations_become_conflicts() {
        let e = AppError::from(DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new(String::from("duplicate")),
        )));
        assert_eq!(e.status_code(), StatusCode::CONFLICT);
    }
}
