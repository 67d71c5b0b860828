//! `/api/v1/patients`: create, search (in the body, never the URL), read with appointments.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::appointments::AppointmentResponse;
use super::{utc, ApiJson};
use crate::auth::{perm, Caller, Granted};
use crate::db::{self, patients::PatientRow};
use crate::domain::patient::{NewPatient, PatientInput, PatientQuery};
use crate::error::{AppError, AppResult, FieldError, Problem};
use crate::state::AppState;

/// Most results a search returns: enough to pick from, never a dump.
pub(crate) const SEARCH_LIMIT: i64 = 50;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePatient {
    /// Belgian national register number; punctuation allowed.
    #[schema(example = "85.07.30-033.28")]
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
            language: r.language,
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

fn faults_to_problem(faults: Vec<(&'static str, crate::domain::Invalid)>) -> AppError {
    AppError::Validation(
        faults
            .into_iter()
            .map(|(f, e)| FieldError::new(f, e.0))
            .collect(),
    )
}

/// Create a patient.
#[utoipa::path(
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
    let now = crate::domain::now();
    let new = NewPatient::parse(&input, now.date()).map_err(faults_to_problem)?;
    let row = PatientRow::from_new(&new, uuid::Uuid::now_v7().to_string(), None, now);
    let caller = caller.caller;
    let row = state
        .db
        .write(move |conn| {
            if let Some(nn) = &row.national_number {
                if db::patients::national_number_taken(conn, nn)? {
                    return Err(AppError::Conflict(
                        "a patient with this national number already exists".into(),
                    ));
                }
            }
            db::patients::insert(conn, &row)?;
            crate::audit::record(
                conn,
                &caller,
                "patient.create",
                Some(&format!("patient:{}", row.id)),
                serde_json::json!({}),
            )?;
            Ok::<_, AppError>(row)
        })
        .await?;
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

/// The services a caller is limited to, if any (secretaries).
fn scope(caller: &Caller) -> Option<Vec<String>> {
    caller
        .role
        .is_service_scoped()
        .then(|| caller.services.clone())
}

/// Counts the patients about to be shown to the caller against `REPRISE_PATIENTS_PER_HOUR`
/// (`limit`), in the transaction that shows them: over it, a 429 and nothing shown (the
/// transaction rolls back). Patients the account was already shown this hour are free; the
/// command line has no account and no limit.
fn disclose(
    conn: &mut db::DbConnection,
    caller: &Caller,
    limit: Option<u32>,
    patients: &[String],
    now: chrono::NaiveDateTime,
) -> AppResult<()> {
    let (Some(limit), Some(account)) = (limit, caller.id.as_deref()) else {
        return Ok(());
    };
    let hour = db::disclosures::hour_of(now);
    match db::disclosures::count(conn, account, hour, patients)? {
        Some(shown) if shown > i64::from(limit) => {
            let next = hour + chrono::Duration::hours(1);
            let wait = (next - now).num_seconds().max(1);
            Err(AppError::TooManyPatients(wait.unsigned_abs()))
        }
        _ => Ok(()),
    }
}

/// Search patients by name prefix, phone or national number (at most 50 results).
#[utoipa::path(
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
    let rows = search_patients(&state, caller.caller, &b.q).await?;
    Ok(web::Json(PatientList {
        items: rows.into_iter().map(PatientResponse::from).collect(),
    }))
}

/// Patients matching `q` that the caller may see, the search audited (the API and the agents'
/// page).
pub async fn search_patients(
    state: &AppState,
    caller: Caller,
    q: &str,
) -> AppResult<Vec<db::patients::PatientRow>> {
    let query = PatientQuery::parse(q).map_err(|e| AppError::validation("q", e.0))?;
    let limit = state.settings.patients_per_hour;
    state
        .db
        .write(move |conn| {
            let services = scope(&caller);
            let rows = db::patients::search(conn, &query, services.as_deref(), SEARCH_LIMIT)?;
            let shown: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            disclose(conn, &caller, limit, &shown, crate::domain::now())?;
            // The query itself may be a national number: only its kind is recorded.
            let kind = match query {
                PatientQuery::NationalNumber(_) => "national_number",
                PatientQuery::Phone(_) => "phone",
                PatientQuery::Name(_) => "name",
            };
            crate::audit::record(
                conn,
                &caller,
                "patient.search",
                None,
                serde_json::json!({ "by": kind, "rows": rows.len(), "patients": rows.iter().map(|r| &r.id).collect::<Vec<_>>() }),
            )?;
            Ok::<_, AppError>(rows)
        })
        .await
}

/// Read a patient with their appointments.
#[utoipa::path(
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
    let (patient, appointments) = read_patient(&state, caller.caller, id.into_inner()).await?;
    Ok(web::Json(PatientDetail {
        patient: patient.into(),
        appointments: appointments
            .into_iter()
            .map(AppointmentResponse::from)
            .collect(),
    }))
}

/// A patient with the appointments the caller may see, the read audited (the API and the
/// agents' page).
pub async fn read_patient(
    state: &AppState,
    caller: Caller,
    id: String,
) -> AppResult<(
    db::patients::PatientRow,
    Vec<db::appointments::AppointmentRow>,
)> {
    let limit = state.settings.patients_per_hour;
    state
        .db
        .write(move |conn| {
            let patient = db::patients::find(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such patient".into()))?;
            let mut appointments = db::appointments::of_patient(conn, &id)?;
            if let Some(services) = scope(&caller) {
                appointments.retain(|a| services.contains(&a.service_code));
                if appointments.is_empty() {
                    // Outside the caller's services: as unknown (no existence oracle).
                    return Err(AppError::NotFound("no such patient".into()));
                }
            }
            disclose(
                conn,
                &caller,
                limit,
                std::slice::from_ref(&id),
                crate::domain::now(),
            )?;
            crate::audit::record(
                conn,
                &caller,
                "patient.read",
                Some(&format!("patient:{id}")),
                serde_json::json!({ "appointments": appointments.len() }),
            )?;
            Ok::<_, AppError>((patient, appointments))
        })
        .await
}
