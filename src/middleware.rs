//! Cross-cutting HTTP behaviour, applied to every route in `startup.rs`:
//! request spans and metrics, where a request comes from, refused requests (the anonymous
//! limit and their aggregated audit), and problem+json for every error.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{web, HttpMessage};
use tracing::Instrument;

use crate::auth::{Caller, Origin};
use crate::denials::{Refusal, Refused};
use crate::error::{AppError, Problem, PROBLEM_JSON};
use crate::state::AppState;

/// One span per request: method, route pattern (never the raw URL), status, latency, request
/// id. Also counts the request in the metrics, returns the id in `x-request-id` with the
/// security headers, keeps where the request came from ([`Origin`]), and deals with refused
/// requests: an address over `REPRISE_RATE_ANONYMOUS` is answered 429 here, before any token,
/// session or link is looked up; every refusal (401, 403, a forged link or session, the
/// anonymous and disclosure limits) is audited, aggregated (`audit::Denials`), counted in the
/// metrics, and, when it carried no valid credential, spends its address's budget. (One layer
/// for all of it: each `from_fn` layer costs an allocation per request.)
pub async fn trace_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let client = crate::client::Client::of(
        req.peer_addr().map(|p| p.ip()),
        req.headers(),
        state
            .as_ref()
            .map(|s| &s.settings.trusted_proxies)
            .unwrap_or(&Default::default()),
    );
    req.extensions_mut().insert(Origin {
        request_id: request_id.clone(),
        address: client.address,
        user_agent: client.user_agent,
    });
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        request_id = %request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let kind = PathKind::of(req.path());
    let https = state
        .as_ref()
        .is_some_and(|s| s.settings.public_url.scheme() == "https");
    let address = client.address;
    // A NUL in a path segment (`%00`): refused before any handler, as in bodies and query
    // strings (`extract.rs`), so that both backends answer alike.
    let result = if req.path().to_ascii_lowercase().contains("%00") {
        let error = AppError::validation("path", crate::error::NUL_REFUSED);
        Ok(req.error_response(error).map_into_right_body())
    } else if let Some(refused) =
        over_anonymous_limit(state.as_ref().map(|s| s.get_ref()), address, &req)
    {
        let res = req.into_response(refused);
        if let Some(state) = &state {
            note_refusal(state, res.request(), 429, &route, Refusal::RateLimited).await;
        }
        Ok(res.map_into_right_body())
    } else {
        let result = next
            .call(req)
            .instrument(span.clone())
            .await
            .map(ServiceResponse::map_into_left_body);
        if let (Ok(res), Some(state)) = (&result, &state) {
            if let Some(refusal) = refusal_of(res, &route) {
                if let (true, Some(address)) = (refusal.is_anonymous(), address) {
                    state.anonymous.refused(address);
                }
                let status = res.status().as_u16();
                note_refusal(state, res.request(), status, &route, refusal).await;
            }
        }
        result
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
        secure_headers(res.headers_mut(), kind, https);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            res.headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        res
    })
}

/// What a path serves, for the headers of its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKind {
    /// The interactive API page and its files (`/docs`): framed by nobody, loading only itself.
    Docs,
    /// Files that hold nothing personal and may be cached: the pages' assets, the API document.
    Public,
    /// Everything else may carry personal data: the API, the pages, the answer page.
    Private,
}

impl PathKind {
    fn of(path: &str) -> Self {
        if path == "/docs" || path.starts_with("/docs/") {
            PathKind::Docs
        } else if path.starts_with("/static/") || path == "/api/openapi.json" {
            PathKind::Public
        } else {
            PathKind::Private
        }
    }
}

/// The `/docs` page's policy: Swagger UI's own scripts and styles from this server (it sets
/// inline styles, and draws icons as `data:` images), and nothing else.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The headers every answer carries (CONTRACT §7): `nosniff` everywhere; `no-store` on
/// whatever may carry personal data (a page or handler that set its own policy keeps it); a
/// content policy and no framing on `/docs`; HSTS when the service is reached over https.
fn secure_headers(headers: &mut header::HeaderMap, kind: PathKind, https: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    match kind {
        PathKind::Private => {
            if !headers.contains_key(header::CACHE_CONTROL) {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
        }
        PathKind::Docs => {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
        }
        PathKind::Public => {}
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// Paths that need no credential and are never refused by the anonymous limit: probes of
/// load balancers and monitoring, the API document and its page, the pages' assets.
fn is_open_path(path: &str) -> bool {
    matches!(path, "/health" | "/metrics" | "/api/openapi.json")
        || path.starts_with("/docs")
        || path.starts_with("/static/")
}

/// The 429 for an address over its anonymous budget, outside the paths that need no credential.
fn over_anonymous_limit(
    state: Option<&AppState>,
    address: Option<std::net::IpAddr>,
    req: &ServiceRequest,
) -> Option<actix_web::HttpResponse> {
    let wait = state?.anonymous.blocked(address?)?;
    if is_open_path(req.path()) {
        return None;
    }
    let error = AppError::TooManyRequests(wait.as_secs_f64().ceil().max(1.0) as u64);
    Some(if req.path().starts_with("/api/") {
        actix_web::ResponseError::error_response(&error)
    } else {
        actix_web::ResponseError::error_response(&crate::web::PageError::app(error))
    })
}

/// Whether an answer refuses its request, and why: as the handler marked it (`audit::Refusal`
/// in the response's or the request's extensions), else from its status.
fn refusal_of<B>(res: &ServiceResponse<B>, route: &str) -> Option<Refusal> {
    let status = res.status().as_u16();
    if status < 400 && status != 303 {
        return None;
    }
    res.response()
        .extensions()
        .get::<Refusal>()
        .copied()
        .or_else(|| res.request().extensions().get::<Refusal>().copied())
        .or_else(|| (route == "/answer/{token}" && status == 404).then_some(Refusal::UnknownLink))
        .or_else(|| crate::denials::refusal_of_status(status))
}

/// Counts a refusal and, if it is the first of its audit entry, writes the entry before the
/// answer leaves.
async fn note_refusal(
    state: &AppState,
    req: &actix_web::HttpRequest,
    status: u16,
    route: &str,
    refusal: Refusal,
) {
    state
        .metrics
        .refusals
        .with_label_values(&[refusal.reason()])
        .inc();
    let caller = req.extensions().get::<Caller>().cloned();
    let refused = Refused {
        refusal,
        at: crate::domain::now(),
        actor_id: caller.as_ref().and_then(|c| c.id.clone()),
        actor_name: caller.map(|c| c.name),
        route: route.to_string(),
        method: req.method().to_string(),
        status,
        origin: req.extensions().get::<Origin>().cloned(),
    };
    if let Some(first) = state.denials.note(refused) {
        let written = state
            .db
            .write(move |conn| {
                crate::denials::write_denials(conn, &[first]).map_err(crate::db::DbError::from)
            })
            .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "could not audit a refused request");
        }
    }
}

/// Where FHIR answers (CONTRACT §4.10): its errors are OperationOutcomes.
const FHIR_PATHS: &str = "/api/v1/fhir";

/// An error answer under [`FHIR_PATHS`] as an `OperationOutcome` (`application/fhir+json`):
/// the problem's detail and fields become its issues; its headers (`Retry-After`,
/// `WWW-Authenticate`, `Allow`) stay.
async fn operation_outcome<B: MessageBody>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ServiceResponse<EitherBody<B>>> {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let (req, res) = res.into_parts();
    let mut headers = res.headers().clone();
    let problem = if is_problem {
        actix_web::body::to_bytes(res.into_body())
            .await
            .ok()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
    } else {
        None
    };
    let problem = problem.unwrap_or_else(|| {
        let detail = match status.as_u16() {
            404 => "no such resource".to_string(),
            405 => "this method is not allowed here".to_string(),
            _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
        };
        serde_json::json!({ "status": status.as_u16(), "detail": detail })
    });
    let mut response = actix_web::HttpResponse::build(status)
        .content_type(crate::fhir::FHIR_JSON)
        .body(crate::fhir::outcome_of_problem(&problem).to_string());
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}

/// Turns any error response that is not already problem+json (actix's own 404 and 405, a
/// panic-free fallback for anything else) into one.
pub fn problem_fallback<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let media = |prefix: &str| {
        res.headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(prefix.as_bytes()))
    };
    let is_fhir = media(crate::fhir::FHIR_JSON);
    if res.request().path().starts_with(FHIR_PATHS) && !is_fhir {
        return Ok(ErrorHandlerResponse::Future(Box::pin(operation_outcome(
            res,
        ))));
    }
    // problem+json or an OperationOutcome already, or a page's own HTML error page
    // (`web::PageError`).
    let is_answered = is_fhir || media(PROBLEM_JSON) || media("text/html");
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
