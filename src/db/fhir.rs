//! What the FHIR resources read (CONTRACT §4.10): appointments by `_lastUpdated`, each type a
//! page at a time in a stable order for the bulk export, and all of it inside one snapshot.

use std::collections::HashMap;

use diesel::prelude::*;

use super::appointments::{AppointmentRow, AttemptRow};
use super::notifications::NotificationRow;
use super::patients::PatientRow;
use super::schema::{
    appointment_events, appointments, contact_attempts, notifications, patients, services, sites,
};
use super::sites::{ServiceRow, SiteRow};
use super::DbConnection;
use crate::domain::appointment::{CancelReason, Status};
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
