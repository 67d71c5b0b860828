//! `/api/v1/fhir`: FHIR R4 (CONTRACT §4.10). Answers are `application/fhir+json`; every error
//! of these paths, whoever raised it (the token check, a bad parameter, an unknown id), leaves
//! as an `OperationOutcome` (`middleware::problem_fallback` turns the problem into one).

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{perm, Granted};
use crate::db::fhir::{AppointmentSearch, Cmp};
use crate::error::{AppError, AppResult};
use crate::fhir::{self, FHIR_JSON};
use crate::service::fhir as service;
use crate::state::AppState;

/// A FHIR R4 resource (a CapabilityStatement, Patient, Appointment or Bundle): its
/// `resourceType` says which. HL7's schema describes it (docs/fhir.md).
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct FhirResource(Value);

/// An `OperationOutcome`: `{resourceType: "OperationOutcome", issue: [{severity, code,
/// diagnostics, expression?}]}`.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct OperationOutcome(Value);

/// Answers `resource` as `application/fhir+json`.
fn fhir_json(resource: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .body(resource.to_string())
}

/// What this server does in FHIR: read Patients and Appointments, search Appointments, the
/// bulk export (no token).
#[utoipa::path(
    operation_id = "fhir_metadata_read",
    tag = "fhir",
    responses(
        (status = 200, body = FhirResource, content_type = "application/fhir+json", description = "a CapabilityStatement")
    )
)]
#[get("/fhir/metadata")]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    let base = format!(
        "{}/api/v1/fhir",
        state.settings.public_url.as_str().trim_end_matches('/')
    );
    fhir_json(&fhir::capability_statement(
        env!("CARGO_PKG_VERSION"),
        &base,
        crate::domain::now(),
    ))
}

/// A patient as a FHIR Patient (Belgian core profile, the national number as SSIN identifier).
#[utoipa::path(
    operation_id = "fhir_patient_read",
    tag = "fhir",
    params(("id" = String, Path, description = "patient id")),
    responses(
        (status = 200, body = FhirResource, content_type = "application/fhir+json", description = "a Patient"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 429, body = OperationOutcome, content_type = "application/fhir+json")
    ),
    security(("bearer" = []))
)]
#[get("/fhir/Patient/{id}")]
pub async fn read_patient(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let row = service::read_patient(&state, caller.caller, id.into_inner()).await?;
    Ok(fhir_json(&fhir::patient(&row)))
}

/// An appointment as a FHIR Appointment.
#[utoipa::path(
    operation_id = "fhir_appointment_read",
    tag = "fhir",
    params(("id" = String, Path, description = "appointment id")),
    responses(
        (status = 200, body = FhirResource, content_type = "application/fhir+json", description = "an Appointment"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, body = OperationOutcome, content_type = "application/fhir+json")
    ),
    security(("bearer" = []))
)]
#[get("/fhir/Appointment/{id}")]
pub async fn read_appointment(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let resource = service::read_appointment(&state, caller.caller, id.into_inner()).await?;
    Ok(fhir_json(&resource))
}

/// The parameters of an Appointment search (for the document; the query string is read as
/// pairs, since `_lastUpdated` may come twice).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, read as pairs
pub struct AppointmentSearchParams {
    /// `Patient/{id}` or the id alone.
    patient: Option<String>,
    /// FHIR statuses, comma-separated: `booked` (scheduled or rescheduled), `waitlist`
    /// (postponed), `cancelled`.
    status: Option<String>,
    /// `gt`, `ge`, `lt` or `le` then an instant (`gt2022-05-14T00:00:00Z`); may be given twice.
    #[param(rename = "_lastUpdated")]
    last_updated: Option<String>,
    /// Resources per page: 1 to 1000 (100).
    #[param(rename = "_count")]
    count: Option<i64>,
    /// The page to read: as the `next` link gives it.
    #[param(rename = "_page")]
    page: Option<String>,
}

/// Appointments as a `searchset` Bundle, oldest change first, with a `next` link while more
/// remain.
#[utoipa::path(
    operation_id = "fhir_appointments_search",
    tag = "fhir",
    params(AppointmentSearchParams),
    responses(
        (status = 200, body = FhirResource, content_type = "application/fhir+json", description = "a searchset Bundle"),
        (status = 400, body = OperationOutcome, content_type = "application/fhir+json", description = "a parameter FHIR or this server does not know, or a bad value"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json")
    ),
    security(("bearer" = []))
)]
#[get("/fhir/Appointment")]
pub async fn search_appointments(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| AppError::BadRequest("the query string cannot be read".into()))?;
    let (search, count) = parse_search(&pairs)?;
    let page = service::search_appointments(&state, caller.caller, search, count).await?;
    let base = format!(
        "{}/api/v1/fhir/Appointment",
        state.settings.public_url.as_str().trim_end_matches('/')
    );
    let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "_page").collect();
    let link = |extra: Option<String>| {
        let mut query: Vec<(String, String)> = kept.iter().map(|p| (*p).clone()).collect();
        if let Some(page) = extra {
            query.push(("_page".into(), page));
        }
        let encoded = serde_urlencoded::to_string(&query).unwrap_or_default();
        if encoded.is_empty() {
            base.clone()
        } else {
            format!("{base}?{encoded}")
        }
    };
    let mut links = vec![json!({ "relation": "self", "url": link(None) })];
    if let Some((at, id)) = &page.next {
        links.push(json!({ "relation": "next", "url": link(Some(super::time_cursor(*at, id))) }));
    }
    let root = state.settings.public_url.as_str().trim_end_matches('/');
    let entries: Vec<Value> = page
        .resources
        .into_iter()
        .map(|r| {
            let url = format!(
                "{root}/api/v1/fhir/Appointment/{}",
                r["id"].as_str().unwrap_or_default()
            );
            json!({ "fullUrl": url, "resource": r, "search": { "mode": "match" } })
        })
        .collect();
    Ok(fhir_json(&json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir::instant(crate::domain::now()),
        "link": links,
        "entry": entries,
    })))
}

/// The search a query string asks for, and the page size; 400 naming the first parameter at
/// fault.
fn parse_search(pairs: &[(String, String)]) -> AppResult<(AppointmentSearch, i64)> {
    let bad = |name: &str, why: &str| AppError::BadRequest(format!("{name}: {why}"));
    let mut search = AppointmentSearch::default();
    let mut count = super::DEFAULT_LIMIT;
    for (name, value) in pairs {
        match name.as_str() {
            "patient" => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                if id.is_empty() {
                    return Err(bad(name, "names no patient"));
                }
                search.patient_id = Some(id.to_string());
            }
            "status" => {
                let mut statuses = Vec::new();
                for code in value.split(',') {
                    let Some(some) = fhir::statuses_of(code.trim()) else {
                        return Err(bad(name, "is not an Appointment status of FHIR R4"));
                    };
                    statuses.extend_from_slice(some);
                }
                search.statuses = Some(statuses);
            }
            "_lastUpdated" => {
                let (cmp, at) = match value.get(..2) {
                    Some("gt") => (Cmp::Gt, &value[2..]),
                    Some("ge") => (Cmp::Ge, &value[2..]),
                    Some("lt") => (Cmp::Lt, &value[2..]),
                    Some("le") => (Cmp::Le, &value[2..]),
                    _ => return Err(bad(name, "must start with gt, ge, lt or le")),
                };
                let at = fhir::parse_instant(at).ok_or_else(|| {
                    bad(
                        name,
                        "must be an instant with its zone (2022-05-14T00:00:00Z) or a date",
                    )
                })?;
                search.updated.push((cmp, at));
            }
            "_count" => {
                count = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=super::MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(name, "must be between 1 and 1000"))?;
            }
            "_page" => {
                let after = super::parse_time_cursor(value).map_err(|e| bad(name, &e.0))?;
                search.after = Some(after);
            }
            "_format" if value == "json" || value == FHIR_JSON => {}
            _ => return Err(bad(name, "is not a search parameter of Appointment here")),
        }
    }
    Ok((search, count))
}
