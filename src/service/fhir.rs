//! FHIR R4 (CONTRACT §4.10): a patient or an appointment read, appointments searched, and the
//! export of every resource type from one snapshot. Reads are audited as the API's are
//! (`patient.read`, `appointment.read`, `appointment.list`, with `"via": "fhir"`), and count
//! against `REPRISE_PATIENTS_PER_HOUR`; an export is audited as `fhir.export` with its types
//! and counts, as a contact-list export is.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::auth::Caller;
use crate::db::{self, appointments::AppointmentRow, fhir::AppointmentSearch, Db};
use crate::error::{AppError, AppResult};
use crate::fhir::{self, AppointmentExtras, ResourceType};
use crate::state::AppState;

/// The patient `id`, audited and counted against the caller's hourly budget of patients.
pub async fn read_patient(
    state: &AppState,
    caller: Caller,
    id: String,
) -> AppResult<db::patients::PatientRow> {
    let limit = state.settings.patients_per_hour;
    state
        .db
        .write(move |conn| {
            let patient = db::patients::find(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such patient".into()))?;
            super::patients::shown(
                conn,
                &caller,
                limit,
                &id,
                serde_json::json!({ "via": "fhir" }),
            )?;
            Ok::<_, AppError>(patient)
        })
        .await
}

/// An appointment's resource, audited.
pub async fn read_appointment(state: &AppState, caller: Caller, id: String) -> AppResult<Value> {
    state
        .db
        .write(move |conn| {
            let row = super::appointments::shown(conn, &caller, &id, Some("fhir"))?;
            resources(conn, vec![row])?
                .pop()
                .ok_or_else(|| AppError::Internal("an appointment vanished".into()))
        })
        .await
}

/// Rows as resources, with what each needs beyond its row.
fn resources(
    conn: &mut db::DbConnection,
    rows: Vec<AppointmentRow>,
) -> Result<Vec<Value>, db::DbError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let reasons = db::fhir::cancel_reasons(conn, &ids)?;
    let minutes = db::fhir::operation_minutes(conn)?;
    Ok(rows
        .iter()
        .map(|row| fhir::appointment(row, &extras(row, &reasons, &minutes)))
        .collect())
}

fn extras(
    row: &AppointmentRow,
    reasons: &HashMap<String, crate::domain::appointment::CancelReason>,
    minutes: &HashMap<String, i32>,
) -> AppointmentExtras {
    AppointmentExtras {
        cancel_reason: reasons.get(&row.id).copied(),
        operation_minutes: minutes.get(&row.service_code).copied(),
    }
}

/// A page of an Appointment search: the resources, and the key to ask for the next page with
/// (`None` on the last one).
#[derive(Debug)]
pub struct SearchPage {
    pub resources: Vec<Value>,
    pub next: Option<(NaiveDateTime, String)>,
}

/// Appointments matching `search`, `count` of them, oldest change first; audited with how
/// many were shown.
pub async fn search_appointments(
    state: &AppState,
    caller: Caller,
    search: AppointmentSearch,
    count: i64,
) -> AppResult<SearchPage> {
    state
        .db
        .write(move |conn| {
            let mut rows = db::fhir::search_appointments(conn, &search, count + 1)?;
            let more = rows.len() > usize::try_from(count).unwrap_or(usize::MAX);
            rows.truncate(usize::try_from(count).unwrap_or(usize::MAX));
            let next = more
                .then(|| rows.last().map(|r| (r.updated_at, r.id.clone())))
                .flatten();
            let shown = rows.len();
            let resources = resources(conn, rows)?;
            crate::audit::record(
                conn,
                &caller,
                "appointment.list",
                None,
                serde_json::json!({
                    "via": "fhir", "patient": search.patient_id, "rows": shown,
                }),
            )?;
            Ok::<_, AppError>(SearchPage { resources, next })
        })
        .await
}

/// What to export: these types, changed after `since` (everything without it).
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub types: Vec<ResourceType>,
    pub since: Option<NaiveDateTime>,
}

/// An export done: the instant its snapshot shows, and how many resources of each type.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub transaction_time: NaiveDateTime,
    pub counts: Vec<(ResourceType, u64)>,
}

/// Why an export stopped.
#[derive(Debug)]
pub enum ExportError {
    /// The database (or the audit entry) failed.
    Failed(AppError),
    /// The sink refused a resource (a file that cannot be written, a reader gone).
    Sink(std::io::Error),
}

impl From<db::DbError> for ExportError {
    fn from(e: db::DbError) -> Self {
        ExportError::Failed(e.into())
    }
}

impl From<diesel::result::Error> for ExportError {
    fn from(e: diesel::result::Error) -> Self {
        ExportError::Failed(db::DbError::from(e).into())
    }
}

/// Hands every resource of `request` to `sink`, type by type in export order, a page at a
/// time from one snapshot of the database: no resource appears twice or is missed across
/// types, and memory does not grow with the export. Audited (`fhir.export`: who, the types,
/// `_since`, the counts) once the last resource is handed over.
pub fn export(
    db: &Db,
    caller: &Caller,
    request: &ExportRequest,
    sink: &mut dyn FnMut(ResourceType, &Value) -> std::io::Result<()>,
) -> Result<ExportSummary, ExportError> {
    let since = request.since;
    let summary = db.read_blocking(|conn| {
        db::fhir::snapshot(conn, |conn| {
            let transaction_time = crate::domain::now();
            let mut counts = Vec::new();
            for &kind in &request.types {
                let n = export_type(conn, kind, since, &mut |v| sink(kind, v))?;
                counts.push((kind, n));
            }
            Ok::<_, ExportError>(ExportSummary {
                transaction_time,
                counts,
            })
        })
    })?;
    let (audit_caller, audited) = (caller.clone(), summary.clone());
    let types: Vec<&str> = request.types.iter().map(|t| t.as_str()).collect();
    let details = serde_json::json!({
        "types": types,
        "since": since.map(fhir::instant),
        "transaction_time": fhir::instant(audited.transaction_time),
        "counts": audited.counts.iter().map(|(t, n)| (t.as_str().to_string(), *n)).collect::<HashMap<_, _>>(),
        "resources": audited.counts.iter().map(|(_, n)| n).sum::<u64>(),
    });
    db.write_blocking(move |conn| {
        crate::audit::record(conn, &audit_caller, "fhir.export", None, details)
            .map_err(AppError::from)
    })
    .map_err(ExportError::Failed)?;
    Ok(summary)
}

/// One type's resources through `each`, a page at a time; how many.
fn export_type(
    conn: &mut db::DbConnection,
    kind: ResourceType,
    since: Option<NaiveDateTime>,
    each: &mut dyn FnMut(&Value) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let mut n = 0u64;
    let mut send = |v: &Value| {
        n += 1;
        each(v).map_err(ExportError::Sink)
    };
    match kind {
        ResourceType::Patient => {
            let mut after: Option<String> = None;
            loop {
                let rows = db::fhir::patients_page(conn, since, after.as_deref())?;
                for row in &rows {
                    send(&fhir::patient(row))?;
                }
                match rows.last() {
                    Some(last) => after = Some(last.id.clone()),
                    None => break,
                }
            }
        }
        ResourceType::Appointment => {
            let minutes = db::fhir::operation_minutes(conn)?;
            let mut after: Option<String> = None;
            loop {
                let rows = db::fhir::appointments_page(conn, since, after.as_deref())?;
                let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                let reasons = db::fhir::cancel_reasons(conn, &ids)?;
                for row in &rows {
                    send(&fhir::appointment(row, &extras(row, &reasons, &minutes)))?;
                }
                match rows.last() {
                    Some(last) => after = Some(last.id.clone()),
                    None => break,
                }
            }
        }
        ResourceType::Communication => {
            let mut after: Option<String> = None;
            loop {
                let rows = db::fhir::attempts_page(conn, since, after.as_deref())?;
                for (row, patient) in &rows {
                    send(&fhir::attempt(row, patient))?;
                }
                match rows.last() {
                    Some((last, _)) => after = Some(last.id.clone()),
                    None => break,
                }
            }
            let mut after: Option<String> = None;
            loop {
                let rows = db::fhir::emails_page(conn, since, after.as_deref())?;
                for row in &rows {
                    if let Some(v) = fhir::email(row) {
                        send(&v)?;
                    }
                }
                match rows.last() {
                    Some(last) => after = Some(last.id.clone()),
                    None => break,
                }
            }
        }
        ResourceType::Location => {
            for (site, updated) in db::fhir::sites_changed(conn, since)? {
                send(&fhir::location(&site, updated))?;
            }
        }
        ResourceType::HealthcareService => {
            for service in db::fhir::services_changed(conn, since)? {
                send(&fhir::healthcare_service(&service))?;
            }
        }
    }
    Ok(n)
}
