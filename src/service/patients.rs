//! Patients: creating one, searching (short searches refused, the shown patients counted
//! against `REPRISE_PATIENTS_PER_HOUR`), and reading one with the appointments the caller may
//! see. Every search and read is audited.

use crate::auth::Caller;
use crate::db::{self, patients::PatientRow};
use crate::domain::patient::{NewPatient, PatientQuery};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Most results a search returns: enough to pick from, never a dump.
pub const SEARCH_LIMIT: i64 = 50;

/// Stores a new patient (409 for a national number already known), audited.
pub async fn create(state: &AppState, caller: Caller, new: NewPatient) -> AppResult<PatientRow> {
    let now = crate::domain::now();
    let row = PatientRow::from_new(&new, uuid::Uuid::now_v7().to_string(), None, now);
    state
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
        .await
}

/// The services a caller is limited to, if any (secretaries).
pub(super) fn scope(caller: &Caller) -> Option<Vec<String>> {
    caller
        .role
        .is_service_scoped()
        .then(|| caller.services.clone())
}

/// Counts the patients about to be shown to the caller against `REPRISE_PATIENTS_PER_HOUR`
/// (`limit`), in the transaction that shows them: over it, a 429 and nothing shown (the
/// transaction rolls back). Patients the account was already shown this hour are free; the
/// command line has no account and no limit.
pub(super) fn disclose(
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

/// Patients matching `q` that the caller may see, the search audited (the API and the agents'
/// page).
pub async fn search(
    state: &AppState,
    caller: Caller,
    query: PatientQuery,
) -> AppResult<Vec<PatientRow>> {
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

/// A patient with the appointments the caller may see, the read audited (the API and the
/// agents' page).
pub async fn read(
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
            shown(
                conn,
                &caller,
                limit,
                &id,
                serde_json::json!({ "appointments": appointments.len() }),
            )?;
            Ok::<_, AppError>((patient, appointments))
        })
        .await
}

/// A patient's record about to be shown to `caller` (the API, the pages, FHIR): counted
/// against the hourly budget ([`disclose`]) and audited as `patient.read` with `details`.
pub(super) fn shown(
    conn: &mut db::DbConnection,
    caller: &Caller,
    limit: Option<u32>,
    id: &str,
    details: serde_json::Value,
) -> AppResult<()> {
    disclose(conn, caller, limit, &[id.to_string()], crate::domain::now())?;
    crate::audit::record(
        conn,
        caller,
        "patient.read",
        Some(&format!("patient:{id}")),
        details,
    )?;
    Ok(())
}
