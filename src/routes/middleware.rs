//! Cross-cutting HTTP behaviour, applied to every route in `startup.rs`:
//! request spans and metrics, auditing of refused requests, and problem+json for every error.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{web, HttpMessage};
use tracing::Instrument;

use crate::auth::{Caller, RequestId};
use crate::error::{Problem, PROBLEM_JSON};
use crate::startup::AppState;

/// One span per request: method, route pattern (never the raw URL), status, latency, request
/// id. Also counts the request in the metrics and returns the id in `x-request-id`.
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    // A NUL in a path segment (`%00`): refused before any handler, as in bodies and query
    // strings (`extract.rs`), so that both backends answer alike.
    let result = if req.path().to_ascii_lowercase().contains("%00") {
        Err(crate::error::AppError::validation("path", crate::error::NUL_REFUSED).into())
    } else {
        next.call(req).instrument(span.clone()).await
    };
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let elapsed = started.elapsed();
    span.record("status", status);
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request served"));
    if let Some(state) = state {
        state
            .metrics
            .observe_request(&route, &method, status, elapsed.as_secs_f64());
    }
    result.map(|mut res| {
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            res.headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        res
    })
}

/// Writes an `auth.denied` audit entry for every 401 and 403, with the route pattern and the
/// account when one was recognised (never the token).
pub async fn audit_denials(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    if status == 401 || status == 403 {
        let state = res.request().app_data::<web::Data<AppState>>().cloned();
        let caller = res.request().extensions().get::<Caller>().cloned();
        let request_id = res
            .request()
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone());
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let method = res.request().method().to_string();
        if let Some(state) = state {
            let written = state
                .db
                .write(move |conn| {
                    crate::db::audit::insert(
                        conn,
                        &crate::db::audit::NewAuditRow {
                            at: crate::domain::now(),
                            actor_id: caller.as_ref().and_then(|c| c.id.as_deref()),
                            actor_name: caller.as_ref().map(|c| c.name.as_str()),
                            action: "auth.denied",
                            target: Some(&route),
                            details: &serde_json::json!({ "method": method, "status": status })
                                .to_string(),
                            request_id: request_id.as_deref(),
                        },
                    )
                    .map_err(crate::db::DbError::from)
                })
                .await;
            if let Err(e) = written {
                tracing::error!(error = %e, "could not audit a refused request");
            }
        }
    }
    Ok(res)
}

/// Turns any error response that is not already problem+json (actix's own 404 and 405, a
/// panic-free fallback for anything else) into one.
pub fn problem_fallback<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // problem+json already, or a page's own HTML error page (`web::PageError`).
    let is_answered = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()) || v.as_bytes().starts_with(b"text/html")
    });
    if is_answered {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = match status.as_u16() {
        404 => "no such resource".to_string(),
        405 => "this method is not allowed here".to_string(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let slug = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "-");
    let (req, _) = res.into_parts();
    let response = Problem::new(status, &slug, detail).response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body::<B>(),
    ))
}
