//! `/api/v1/fhir`: FHIR R4 (CONTRACT §4.10). Answers are `application/fhir+json`; every error
//! of these paths, whoever raised it (the token check, a bad parameter, an unknown id), leaves
//! as an `OperationOutcome` (`middleware::problem_fallback` turns the problem into one).

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
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
    let resource = service::read_patient(&state, caller.caller, id.into_inner()).await?;
    Ok(fhir_json(&resource))
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
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir::instant(crate::domain::now()),
        "link": links,
    });
    // FHIR's JSON has no empty arrays: no match, no `entry`.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(fhir_json(&bundle))
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

/// Where this server answers, for the URLs it gives (`REPRISE_PUBLIC_URL`).
fn base(state: &AppState) -> String {
    format!(
        "{}/api/v1/fhir",
        state.settings.public_url.as_str().trim_end_matches('/')
    )
}

/// The parameters of a bulk export's kick-off.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, read as pairs
pub struct ExportParams {
    /// Types, comma-separated: `Patient`, `Appointment`, `Communication`, `Location`,
    /// `HealthcareService` (all of them by default).
    #[param(rename = "_type")]
    types: Option<String>,
    /// Only what changed after this instant (`2022-05-14T00:00:00Z`).
    #[param(rename = "_since")]
    since: Option<String>,
    /// `application/fhir+ndjson` (the only format; `application/ndjson` and `ndjson` too).
    #[param(rename = "_outputFormat")]
    output_format: Option<String>,
}

/// Starts a bulk export (FHIR Bulk Data Access): with `Prefer: respond-async`, 202 and the
/// status URL in `Content-Location`. One running export per account.
#[utoipa::path(
    operation_id = "fhir_exports_start",
    tag = "fhir",
    params(
        ExportParams,
        ("Prefer" = String, Header, description = "`respond-async` (required)")
    ),
    responses(
        (status = 202, body = OperationOutcome, content_type = "application/fhir+json", description = "started: the status URL in `Content-Location`",
            headers(("Content-Location" = String, description = "the status URL"))),
        (status = 400, body = OperationOutcome, content_type = "application/fhir+json", description = "no `Prefer: respond-async`, or a bad parameter"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 429, body = OperationOutcome, content_type = "application/fhir+json", description = "an export of this account is still running")
    ),
    security(("bearer" = []))
)]
#[get("/fhir/$export")]
pub async fn start_export(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let asynchronous = req
        .headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"));
    if !asynchronous {
        return Err(AppError::BadRequest(
            "Prefer: a bulk export answers asynchronously: send `Prefer: respond-async`".into(),
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| AppError::BadRequest("the query string cannot be read".into()))?;
    let bad = |name: &str, why: &str| AppError::BadRequest(format!("{name}: {why}"));
    let (mut types, mut since) = (None, None);
    for (name, value) in &pairs {
        match name.as_str() {
            "_type" => types = Some(value.clone()),
            "_since" => {
                since = Some(fhir::parse_instant(value).ok_or_else(|| {
                    bad(
                        name,
                        "must be an instant with its zone (2022-05-14T00:00:00Z)",
                    )
                })?)
            }
            "_outputFormat"
                if matches!(
                    value.as_str(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) => {}
            "_outputFormat" => return Err(bad(name, "only application/fhir+ndjson is made")),
            _ => return Err(bad(name, "is not a parameter of $export here")),
        }
    }
    let types = fhir::ResourceType::parse_list(types.as_deref())
        .map_err(|t| bad("_type", &format!("{t:?} is not a type this server exports")))?;
    let mut query = vec![(
        "_type",
        types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(","),
    )];
    if let Some(since) = since {
        query.push(("_since", fhir::instant(since)));
    }
    let request = format!(
        "{}/$export?{}",
        base(&state),
        serde_urlencoded::to_string(&query).unwrap_or_default()
    );
    let id = service::start_export(
        &state,
        caller.caller,
        service::ExportRequest { types, since },
        request,
    )
    .await?;
    let accepted = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "information", "code": "informational", "diagnostics": "the export has started" }],
    });
    Ok(HttpResponse::Accepted()
        .insert_header((
            "Content-Location",
            format!("{}/$export-status/{id}", base(&state)),
        ))
        .content_type(FHIR_JSON)
        .body(accepted.to_string()))
}

/// A bulk export's manifest, as the Bulk Data guide gives it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportManifest {
    /// The instant the export's snapshot shows.
    pub transaction_time: String,
    /// The kick-off request.
    pub request: String,
    /// Always true: the files need the token of the account that started the export.
    pub requires_access_token: bool,
    pub output: Vec<ExportOutput>,
    /// Always empty: an export that fails has no manifest.
    pub error: Vec<ExportOutput>,
}

/// One file of an export.
#[derive(Serialize, ToSchema)]
pub struct ExportOutput {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub url: String,
    pub count: i32,
}

/// Where a bulk export stands: 202 while it runs (`X-Progress`, `Retry-After`), 200 with its
/// manifest when done, 500 with an OperationOutcome if it failed. Only for the account that
/// started it; gone an hour after it ends.
#[utoipa::path(
    operation_id = "fhir_exports_read",
    tag = "fhir",
    params(("id" = String, Path, description = "the export's id, from `Content-Location`")),
    responses(
        (status = 200, body = ExportManifest, description = "done: the manifest"),
        (status = 202, description = "still running", headers(("X-Progress" = String), ("Retry-After" = String))),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, body = OperationOutcome, content_type = "application/fhir+json", description = "unknown, another account's, cancelled or expired"),
        (status = 500, body = OperationOutcome, content_type = "application/fhir+json", description = "the export failed")
    ),
    security(("bearer" = []))
)]
#[get("/fhir/$export-status/{id}")]
pub async fn export_status(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    use crate::domain::export::ExportStatus;
    let id = id.into_inner();
    let (row, files) = service::export_status(&state, caller.caller, id.clone()).await?;
    Ok(match row.status {
        ExportStatus::Running => HttpResponse::Accepted()
            .insert_header(("X-Progress", row.progress.clone()))
            .insert_header(("Retry-After", "1"))
            .finish(),
        ExportStatus::Done => {
            let output = files
                .into_iter()
                .map(|f| ExportOutput {
                    url: format!("{}/$export-file/{id}/{}", base(&state), f.seq),
                    resource_type: f.resource_type,
                    count: f.resources,
                })
                .collect();
            let manifest = ExportManifest {
                transaction_time: row.transaction_time.map(fhir::instant).unwrap_or_default(),
                request: row.request,
                requires_access_token: true,
                output,
                error: Vec::new(),
            };
            HttpResponse::Ok()
                .insert_header((
                    "Expires",
                    crate::domain::time::utc(row.expires_at)
                        .format("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                ))
                .json(manifest)
        }
        ExportStatus::Failed | ExportStatus::Cancelled => {
            let outcome = fhir::operation_outcome(&[fhir::Issue {
                code: "exception",
                diagnostics: row.error.unwrap_or_else(|| "the export failed".into()),
                expression: None,
            }]);
            HttpResponse::InternalServerError()
                .content_type(FHIR_JSON)
                .body(outcome.to_string())
        }
    })
}

/// Cancels a running bulk export, or removes a finished one and its files: 202.
#[utoipa::path(
    operation_id = "fhir_exports_delete",
    tag = "fhir",
    params(("id" = String, Path, description = "the export's id")),
    responses(
        (status = 202, description = "cancelled or removed"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, body = OperationOutcome, content_type = "application/fhir+json")
    ),
    security(("bearer" = []))
)]
#[delete("/fhir/$export-status/{id}")]
pub async fn cancel_export(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    service::cancel_export(&state, caller.caller, id.into_inner()).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// One file of a finished bulk export: NDJSON, one resource per line, with the token of the
/// account that started it.
#[utoipa::path(
    operation_id = "fhir_export_files_read",
    tag = "fhir",
    params(
        ("id" = String, Path, description = "the export's id"),
        ("seq" = i32, Path, description = "the file's number, as the manifest's URL gives it")
    ),
    responses(
        (status = 200, body = String, content_type = "application/fhir+ndjson", description = "one resource per line"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, body = OperationOutcome, content_type = "application/fhir+json")
    ),
    security(("bearer" = []))
)]
#[get("/fhir/$export-file/{id}/{seq}")]
pub async fn export_file(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (id, seq) = path.into_inner();
    let seq = seq
        .parse::<i32>()
        .map_err(|_| AppError::NotFound("no such file".into()))?;
    let (_, body) = service::export_file(&state, caller.caller, id, seq).await?;
    Ok(HttpResponse::Ok()
        .content_type(fhir::FHIR_NDJSON)
        .body(body))
}

/// Imports a Bundle (`transaction`, `batch` or `collection`) of Patients and Appointments with
/// the CSV import's checks. A `transaction` or a `collection` with a bad entry stores nothing
/// and answers 422 naming every bad entry (`Bundle.entry[i].resource.…`); a `batch` answers
/// each entry. Appointments need an identifier: the same Bundle again creates nothing more.
#[utoipa::path(
    operation_id = "fhir_bundles_import",
    tag = "fhir",
    request_body(content = FhirResource, content_type = "application/fhir+json", description = "a Bundle"),
    responses(
        (status = 200, body = FhirResource, content_type = "application/fhir+json", description = "a transaction-response or batch-response Bundle"),
        (status = 400, body = OperationOutcome, content_type = "application/fhir+json", description = "not JSON"),
        (status = 401, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 413, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 415, body = OperationOutcome, content_type = "application/fhir+json"),
        (status = 422, body = OperationOutcome, content_type = "application/fhir+json", description = "every bad entry by index and path; nothing stored")
    ),
    security(("bearer" = []))
)]
#[post("/fhir")]
pub async fn import(
    caller: Granted<perm::Fhir>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    if !super::extract::is_json(&req) {
        return Err(AppError::UnsupportedMediaType(
            "send the Bundle as application/fhir+json".into(),
        ));
    }
    let file = super::imports::spool_body(&req, payload).await?;
    let (caller, db) = (caller.caller, state.db.clone());
    let report = web::block(move || {
        let bundle: Value = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
        crate::service::fhir_import::import_bundle(&db, &caller, &bundle)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(fhir_json(&crate::service::fhir_import::response_bundle(
        &report,
    )))
}
