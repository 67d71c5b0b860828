//! `/api/v1/patients`: create, search (in the body, never the URL), read with appointments.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::appointments::AppointmentResponse;
use super::{utc, ApiJson};
use crate::auth::{perm, Granted};
use crate::db::patients::PatientRow;
use crate::domain::patient::{NewPatient, PatientInput, PatientQuery};
use crate::error::{AppError, AppResult, Problem};
use crate::service::patients;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePatient {
    /// Belgian national register number; punctuation allowed.
    pub national_number: Option<String>,
    pub last_name: String,
    pub first_name: String,
    #[schema(example = "1985-07-30")]
    pub birth_date: String,
    /// Belgian or international; stored as E.164.
    #[schema(example = "061 23 45 67")]
    pub phone: Option<String>,
    pub email: Option<String>,
    /// `fr` (default), `nl`, `de` or `en`.
    pub language: Option<String>,
    #[serde(default)]
    pub email_consent: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientResponse {
    pub id: String,
    pub national_number: Option<String>,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: chrono::NaiveDate,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    pub email_consent: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<PatientRow> for PatientResponse {
    fn from(r: PatientRow) -> Self {
        Self {
            id: r.id,
            national_number: r.national_number,
            last_name: r.last_name,
            first_name: r.first_name,
            birth_date: r.birth_date,
            phone: r.phone,
            email: r.email,
            language: r.language.to_string(),
            email_consent: r.email_consent,
            created_at: utc(r.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientDetail {
    #[serde(flatten)]
    pub patient: PatientResponse,
    /// The patient's appointments (a secretary sees her services' only), by date.
    pub appointments: Vec<AppointmentResponse>,
}

/// Create a patient.
#[utoipa::path(
    operation_id = "patients_create",
    tag = "patients",
    request_body = CreatePatient,
    responses(
        (status = 201, body = PatientResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "the national number is already known"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/patients")]
pub async fn create(
    caller: Granted<perm::CreatePatients>,
    state: web::Data<AppState>,
    body: ApiJson<CreatePatient>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let input = PatientInput {
        national_number: b.national_number.as_deref(),
        last_name: &b.last_name,
        first_name: &b.first_name,
        birth_date: &b.birth_date,
        phone: b.phone.as_deref(),
        email: b.email.as_deref(),
        language: b.language.as_deref(),
        email_consent: b.email_consent,
    };
    let new = NewPatient::parse(&input, crate::domain::now().date())?;
    let row = patients::create(&state, caller.caller, new).await?;
    Ok(HttpResponse::Created().json(PatientResponse::from(row)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPatients {
    /// A name prefix (case and accents ignored), a phone number, or a national number.
    #[schema(example = "dupont marie")]
    pub q: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientList {
    pub items: Vec<PatientResponse>,
}

/// Search patients by name prefix, phone or national number (at most 50 results).
#[utoipa::path(
    operation_id = "patients_search",
    tag = "patients",
    request_body = SearchPatients,
    responses(
        (status = 200, body = PatientList),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/patients/search")]
pub async fn search(
    caller: Granted<perm::ReadPatients>,
    state: web::Data<AppState>,
    body: ApiJson<SearchPatients>,
) -> AppResult<web::Json<PatientList>> {
    let b = body.parse().await?;
    let query = PatientQuery::parse(&b.q).map_err(|e| AppError::validation("q", e.0))?;
    let rows = patients::search(&state, caller.caller, query).await?;
    Ok(web::Json(PatientList {
        items: rows.into_iter().map(PatientResponse::from).collect(),
    }))
}

/// Read a patient with their appointments.
#[utoipa::path(
    operation_id = "patients_read",
    tag = "patients",
    params(("id" = String, Path, description = "patient id")),
    responses(
        (status = 200, body = PatientDetail),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/patients/{id}")]
pub async fn read(
    caller: Granted<perm::ReadPatients>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> AppResult<web::Json<PatientDetail>> {
    let (patient, appointments) = patients::read(&state, caller.caller, id.into_inner()).await?;
    Ok(web::Json(PatientDetail {
        patient: patient.into(),
        appointments: appointments
            .into_iter()
            .map(AppointmentResponse::from)
            .collect(),
    }))
}
