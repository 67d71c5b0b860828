//! What the FHIR resources read (CONTRACT §4.10): appointments by `_lastUpdated`, each type a
//! page at a time in a stable order for the bulk export, and all of it inside one snapshot.

use std::collections::HashMap;

use diesel::prelude::*;

use super::appointments::{AppointmentRow, AttemptRow};
use super::notifications::NotificationRow;
use super::patients::PatientRow;
use super::schema::{
    appointment_events, appointments, contact_attempts, fhir_export_files, fhir_exports,
    fhir_identifiers, notifications, patients, services, sites,
};
use super::sites::{ServiceRow, SiteRow};
use super::DbConnection;
use crate::domain::appointment::{CancelReason, Status};
use crate::domain::export::ExportStatus;
use crate::domain::notification::NotificationStatus;

/// Rows per page of an export: memory stays flat whatever the database holds.
pub const EXPORT_PAGE: i64 = 1000;

/// Runs `f` in one read-only transaction that sees the database as it was when it began
/// (PostgreSQL: `REPEATABLE READ`; SQLite: a read transaction in WAL mode is a snapshot).
pub fn snapshot<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(|conn| {
        if let DbConnection::Pg(c) = conn {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(c)?;
        }
        f(conn)
    })
}

/// A comparison of `_lastUpdated` (`gt`, `ge`, `lt`, `le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// An Appointment search: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct AppointmentSearch {
    pub patient_id: Option<String>,
    /// Any of these statuses (an empty list matches nothing).
    pub statuses: Option<Vec<Status>>,
    pub updated: Vec<(Cmp, chrono::NaiveDateTime)>,
    /// Keyset cursor: after this (updated_at, id).
    pub after: Option<(chrono::NaiveDateTime, String)>,
}

/// Appointments matching `s`, oldest change first, at most `limit`.
pub fn search_appointments(
    conn: &mut DbConnection,
    s: &AppointmentSearch,
    limit: i64,
) -> QueryResult<Vec<AppointmentRow>> {
    let mut q = appointments::table
        .select(AppointmentRow::as_select())
        .order((appointments::updated_at, appointments::id))
        .limit(limit)
        .into_boxed();
    if let Some(p) = &s.patient_id {
        q = q.filter(appointments::patient_id.eq(p.clone()));
    }
    if let Some(statuses) = &s.statuses {
        q = q.filter(appointments::status.eq_any(statuses.clone()));
    }
    for (cmp, at) in &s.updated {
        q = match cmp {
            Cmp::Gt => q.filter(appointments::updated_at.gt(*at)),
            Cmp::Ge => q.filter(appointments::updated_at.ge(*at)),
            Cmp::Lt => q.filter(appointments::updated_at.lt(*at)),
            Cmp::Le => q.filter(appointments::updated_at.le(*at)),
        };
    }
    if let Some((at, id)) = &s.after {
        q = q.filter(
            appointments::updated_at.gt(*at).or(appointments::updated_at
                .eq(*at)
                .and(appointments::id.gt(id.clone()))),
        );
    }
    q.load(conn)
}

/// Why each of these appointments was cancelled (its last cancellation), for those cancelled.
pub fn cancel_reasons(
    conn: &mut DbConnection,
    ids: &[&str],
) -> QueryResult<HashMap<String, CancelReason>> {
    let rows: Vec<(String, Option<String>)> = appointment_events::table
        .filter(appointment_events::appointment_id.eq_any(ids))
        .filter(appointment_events::to_status.eq(Status::Cancelled))
        .order(appointment_events::id)
        .select((
            appointment_events::appointment_id,
            appointment_events::reason,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, reason)| Some((id, CancelReason::parse(reason.as_deref()?).ok()?)))
        .collect())
}

/// The planned length of each service's operations, in minutes.
pub fn operation_minutes(conn: &mut DbConnection) -> QueryResult<HashMap<String, i32>> {
    Ok(services::table
        .select((services::code, services::operation_minutes))
        .load::<(String, i32)>(conn)?
        .into_iter()
        .collect())
}

/// Patients created after `since` (a patient is never changed), by id after `after`.
pub fn patients_page(
    conn: &mut DbConnection,
    since: Option<chrono::NaiveDateTime>,
    after: Option<&str>,
) -> QueryResult<Vec<PatientRow>> {
    let mut q = patients::table
        .select(PatientRow::as_select())
        .order(patients::id)
        .limit(EXPORT_PAGE)
        .into_boxed();
    if let Some(since) = since {
        q = q.filter(patients::created_at.gt(since));
    }
    if let Some(after) = after {
        q = q.filter(patients::id.gt(after.to_string()));
    }
    q.load(conn)
}

/// Appointments changed after `since`, by id after `after`.
pub fn appointments_page(
    conn: &mut DbConnection,
    since: Option<chrono::NaiveDateTime>,
    after: Option<&str>,
) -> QueryResult<Vec<AppointmentRow>> {
    let mut q = appointments::table
        .select(AppointmentRow::as_select())
        .order(appointments::id)
        .limit(EXPORT_PAGE)
        .into_boxed();
    if let Some(since) = since {
        q = q.filter(appointments::updated_at.gt(since));
    }
    if let Some(after) = after {
        q = q.filter(appointments::id.gt(after.to_string()));
    }
    q.load(conn)
}

/// Contact attempts made after `since`, with their appointment's patient, by id after `after`.
pub fn attempts_page(
    conn: &mut DbConnection,
    since: Option<chrono::NaiveDateTime>,
    after: Option<&str>,
) -> QueryResult<Vec<(AttemptRow, String)>> {
    let mut q = contact_attempts::table
        .inner_join(appointments::table)
        .select((AttemptRow::as_select(), appointments::patient_id))
        .order(contact_attempts::id)
        .limit(EXPORT_PAGE)
        .into_boxed();
    if let Some(since) = since {
        q = q.filter(contact_attempts::at.gt(since));
    }
    if let Some(after) = after {
        q = q.filter(contact_attempts::id.gt(after.to_string()));
    }
    q.load(conn)
}

/// Emails sent after `since`, by id after `after`.
pub fn emails_page(
    conn: &mut DbConnection,
    since: Option<chrono::NaiveDateTime>,
    after: Option<&str>,
) -> QueryResult<Vec<NotificationRow>> {
    let mut q = notifications::table
        .filter(notifications::status.eq(NotificationStatus::Sent))
        .select(NotificationRow::as_select())
        .order(notifications::id)
        .limit(EXPORT_PAGE)
        .into_boxed();
    if let Some(since) = since {
        q = q.filter(notifications::sent_at.gt(since));
    }
    if let Some(after) = after {
        q = q.filter(notifications::id.gt(after.to_string()));
    }
    q.load(conn)
}

/// Every site, with when it last opened or closed, changed after `since`.
pub fn sites_changed(
    conn: &mut DbConnection,
    since: Option<chrono::NaiveDateTime>,
) -> QueryResult<Vec<(SiteRow, Option<chrono::NaiveDateTime>)>> {
    let rows: Vec<(SiteRow, Option<chrono::NaiveDateTime>)> = sites::table
        .select((SiteRow::as_select(), sites::updated_at))
        .order(sites::code)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(site, updated)| since.is_none_or(|s| updated.unwrap_or(site.created_at) > s))
        .collect())
}

/// Every service created after `since` (a service's resource never changes).
pub fn services_changed(
    conn: &mut DbConnection,
    since: Option<chrono::NaiveDateTime>,
) -> QueryResult<Vec<ServiceRow>> {
    let mut q = services::table
        .select(ServiceRow::as_select())
        .order(services::code)
        .into_boxed();
    if let Some(since) = since {
        q = q.filter(services::created_at.gt(since));
    }
    q.load(conn)
}

/// A bulk export (`$export`): who started it, what it asked, where it stands.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = fhir_exports)]
#[diesel(treat_none_as_default_value = false)]
pub struct ExportRow {
    pub id: String,
    pub owner_id: String,
    /// The types asked for, comma-separated, in export order.
    pub types: String,
    pub since: Option<chrono::NaiveDateTime>,
    /// The kick-off request as the manifest gives it back (`$export?_type=…&_since=…`).
    pub request: String,
    pub status: ExportStatus,
    pub created_at: chrono::NaiveDateTime,
    /// The instance making it writes here at each file; a running export whose heartbeat
    /// stops has lost its instance.
    pub heartbeat_at: chrono::NaiveDateTime,
    /// `Appointment: 12000 resources`, for `X-Progress`.
    pub progress: String,
    pub transaction_time: Option<chrono::NaiveDateTime>,
    pub finished_at: Option<chrono::NaiveDateTime>,
    pub expires_at: chrono::NaiveDateTime,
    pub error: Option<String>,
}

/// One file of an export, without its body.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fhir_export_files)]
pub struct ExportFile {
    pub seq: i32,
    pub resource_type: String,
    pub resources: i32,
}

pub fn insert_export(conn: &mut DbConnection, row: &ExportRow) -> QueryResult<()> {
    diesel::insert_into(fhir_exports::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The account's exports still running.
pub fn running_of(conn: &mut DbConnection, owner: &str) -> QueryResult<i64> {
    fhir_exports::table
        .filter(fhir_exports::owner_id.eq(owner))
        .filter(fhir_exports::status.eq(ExportStatus::Running))
        .count()
        .get_result(conn)
}

pub fn find_export(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ExportRow>> {
    fhir_exports::table
        .find(id)
        .select(ExportRow::as_select())
        .first(conn)
        .optional()
}

/// Notes that the export is alive, with its progress; false if it is no longer running
/// (cancelled, failed): its maker stops.
pub fn beat(
    conn: &mut DbConnection,
    id: &str,
    progress: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        fhir_exports::table
            .find(id)
            .filter(fhir_exports::status.eq(ExportStatus::Running)),
    )
    .set((
        fhir_exports::heartbeat_at.eq(now),
        fhir_exports::progress.eq(progress),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Stores one file of an export.
pub fn insert_file(
    conn: &mut DbConnection,
    id: &str,
    seq: i32,
    resource_type: &str,
    resources: i32,
    body_lz4: &[u8],
) -> QueryResult<()> {
    diesel::insert_into(fhir_export_files::table)
        .values((
            fhir_export_files::export_id.eq(id),
            fhir_export_files::seq.eq(seq),
            fhir_export_files::resource_type.eq(resource_type),
            fhir_export_files::resources.eq(resources),
            fhir_export_files::body_lz4.eq(body_lz4),
        ))
        .execute(conn)
        .map(drop)
}

/// Ends a running export: `done` at `transaction_time`, or `failed` with `error`; kept until
/// `expires_at`. False if it was no longer running.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    outcome: Result<chrono::NaiveDateTime, &str>,
    now: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let target = fhir_exports::table
        .find(id)
        .filter(fhir_exports::status.eq(ExportStatus::Running));
    let (status, at, error) = match outcome {
        Ok(at) => (ExportStatus::Done, Some(at), None),
        Err(e) => (ExportStatus::Failed, None, Some(e)),
    };
    diesel::update(target)
        .set((
            fhir_exports::status.eq(status),
            fhir_exports::transaction_time.eq(at),
            fhir_exports::error.eq(error),
            fhir_exports::finished_at.eq(Some(now)),
            fhir_exports::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// The files of an export, in order, without their bodies.
pub fn files_of(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<ExportFile>> {
    fhir_export_files::table
        .filter(fhir_export_files::export_id.eq(id))
        .select(ExportFile::as_select())
        .order(fhir_export_files::seq)
        .load(conn)
}

/// One file's type and NDJSON body.
pub fn file_body(
    conn: &mut DbConnection,
    id: &str,
    seq: i32,
) -> QueryResult<Option<(String, Vec<u8>)>> {
    fhir_export_files::table
        .find((id, seq))
        .select((
            fhir_export_files::resource_type,
            fhir_export_files::body_lz4,
        ))
        .first(conn)
        .optional()
}

/// Removes an export and its files (cancelled, or expired).
pub fn delete_export(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(fhir_export_files::table.filter(fhir_export_files::export_id.eq(id)))
        .execute(conn)?;
    diesel::delete(fhir_exports::table.find(id)).execute(conn)?;
    Ok(())
}

/// Housekeeping: running exports whose heartbeat stopped before `stale` become `failed`
/// (their instance stopped); exports past their expiry go with their files. How many of each.
pub fn expire_exports(
    conn: &mut DbConnection,
    now: chrono::NaiveDateTime,
    stale: chrono::NaiveDateTime,
    kept_until: chrono::NaiveDateTime,
) -> QueryResult<(usize, usize)> {
    let failed = diesel::update(
        fhir_exports::table
            .filter(fhir_exports::status.eq(ExportStatus::Running))
            .filter(fhir_exports::heartbeat_at.lt(stale)),
    )
    .set((
        fhir_exports::status.eq(ExportStatus::Failed),
        fhir_exports::error.eq(Some(
            "the instance making the export stopped; start another",
        )),
        fhir_exports::finished_at.eq(Some(now)),
        fhir_exports::expires_at.eq(kept_until),
    ))
    .execute(conn)?;
    let expired: Vec<String> = fhir_exports::table
        .filter(fhir_exports::expires_at.le(now))
        .filter(fhir_exports::status.ne(ExportStatus::Running))
        .select(fhir_exports::id)
        .load(conn)?;
    for id in &expired {
        delete_export(conn, id)?;
    }
    Ok((failed, expired.len()))
}

/// An identifier an import brought, and the record it names.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fhir_identifiers)]
pub struct Identifier {
    /// `Patient` or `Appointment`.
    pub resource_type: String,
    pub system: String,
    pub value: String,
    pub resource_id: String,
}

/// The records these identifiers of `resource_type` name, by `(system, value)`.
pub fn identified(
    conn: &mut DbConnection,
    resource_type: &str,
    keys: &[(String, String)],
) -> QueryResult<HashMap<(String, String), String>> {
    let mut found = HashMap::new();
    // One query per value list: (system, value) pairs are few systems, many values.
    let mut by_system: HashMap<&str, Vec<&str>> = HashMap::new();
    for (system, value) in keys {
        by_system.entry(system).or_default().push(value);
    }
    for (system, values) in by_system {
        for chunk in values.chunks(super::BULK_ROWS) {
            let rows: Vec<Identifier> = fhir_identifiers::table
                .filter(fhir_identifiers::resource_type.eq(resource_type))
                .filter(fhir_identifiers::system.eq(system))
                .filter(fhir_identifiers::value.eq_any(chunk))
                .select(Identifier::as_select())
                .load(conn)?;
            for r in rows {
                found.insert((r.system, r.value), r.resource_id);
            }
        }
    }
    Ok(found)
}

pub fn insert_identifiers(conn: &mut DbConnection, rows: &[Identifier]) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(fhir_identifiers::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// Whether any import brought identifiers (else the exports need not look them up).
pub fn any_identifiers(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        fhir_identifiers::table.select(fhir_identifiers::resource_id),
    ))
    .get_result(conn)
}

/// The identifiers imports brought for these records, by record.
pub fn identifiers_of(
    conn: &mut DbConnection,
    ids: &[&str],
) -> QueryResult<HashMap<String, Vec<(String, String)>>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for chunk in ids.chunks(super::BULK_ROWS) {
        let rows: Vec<Identifier> = fhir_identifiers::table
            .filter(fhir_identifiers::resource_id.eq_any(chunk))
            .select(Identifier::as_select())
            .order((fhir_identifiers::system, fhir_identifiers::value))
            .load(conn)?;
        for r in rows {
            out.entry(r.resource_id)
                .or_default()
                .push((r.system, r.value));
        }
    }
    Ok(out)
}

/// Which of these ids are patients here.
pub fn existing_patients(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<std::collections::HashSet<String>> {
    let mut found = std::collections::HashSet::new();
    for chunk in ids.chunks(super::BULK_ROWS) {
        found.extend(
            patients::table
                .filter(patients::id.eq_any(chunk))
                .select(patients::id)
                .load::<String>(conn)?,
        );
    }
    Ok(found)
}

/// The patient of each of these appointments that exists here.
pub fn appointment_patients(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<HashMap<String, String>> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(super::BULK_ROWS) {
        found.extend(
            appointments::table
                .filter(appointments::id.eq_any(chunk))
                .select((appointments::id, appointments::patient_id))
                .load::<(String, String)>(conn)?,
        );
    }
    Ok(found)
}
