//! Appointments and their status history.

use diesel::prelude::*;

use super::schema::{appointment_events, appointments, contact_attempts};
use super::DbConnection;
use crate::domain::answer::Answer;
use crate::domain::appointment::{Channel, ContactOutcome, Kind, Status};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = appointments)]
#[diesel(treat_none_as_default_value = false)]
pub struct AppointmentRow {
    pub id: String,
    pub patient_id: String,
    pub site_code: String,
    pub service_code: String,
    pub kind: Kind,
    pub label: String,
    pub original_scheduled_at: chrono::NaiveDateTime,
    pub scheduled_at: chrono::NaiveDateTime,
    pub priority: i32,
    pub urgent: bool,
    pub essential: bool,
    pub status: Status,
    pub incident_id: Option<String>,
    pub postponed_at: Option<chrono::NaiveDateTime>,
    pub import_id: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    /// When a contact attempt first reached the patient.
    pub reached_at: Option<chrono::NaiveDateTime>,
    /// The day a committed plan proposes (`POST /sites/{code}/plan?commit=true`).
    pub proposed_at: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = appointment_events)]
pub struct EventRow {
    pub id: i64,
    pub at: chrono::NaiveDateTime,
    pub from_status: Status,
    pub to_status: Status,
    pub scheduled_at: Option<chrono::NaiveDateTime>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub actor_id: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &AppointmentRow) -> QueryResult<()> {
    diesel::insert_into(appointments::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Multi-row inserts, in chunks that stay under SQLite's bound-parameter limit.
pub fn insert_many(conn: &mut DbConnection, rows: &[AppointmentRow]) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(appointments::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AppointmentRow>> {
    appointments::table
        .find(id)
        .select(AppointmentRow::as_select())
        .first(conn)
        .optional()
}

pub fn of_patient(conn: &mut DbConnection, patient_id: &str) -> QueryResult<Vec<AppointmentRow>> {
    appointments::table
        .filter(appointments::patient_id.eq(patient_id))
        .select(AppointmentRow::as_select())
        .order((appointments::scheduled_at, appointments::id))
        .load(conn)
}

pub fn events(conn: &mut DbConnection, appointment_id: &str) -> QueryResult<Vec<EventRow>> {
    appointment_events::table
        .filter(appointment_events::appointment_id.eq(appointment_id))
        .select(EventRow::as_select())
        .order(appointment_events::id)
        .load(conn)
}

#[derive(Debug, Default, Clone)]
pub struct AppointmentFilter {
    pub site: Option<String>,
    pub service: Option<String>,
    pub status: Option<Status>,
    pub kind: Option<Kind>,
    pub patient_id: Option<String>,
    /// Only these services (a secretary's).
    pub services: Option<Vec<String>>,
    /// Keyset cursor: ids after this one (ids are UUIDv7, so creation order).
    pub after_id: Option<String>,
}

pub fn list(
    conn: &mut DbConnection,
    f: &AppointmentFilter,
    limit: i64,
) -> QueryResult<Vec<AppointmentRow>> {
    let mut q = appointments::table
        .select(AppointmentRow::as_select())
        .order(appointments::id)
        .limit(limit)
        .into_boxed();
    if let Some(v) = &f.site {
        q = q.filter(appointments::site_code.eq(v.clone()));
    }
    if let Some(v) = &f.service {
        q = q.filter(appointments::service_code.eq(v.clone()));
    }
    if let Some(v) = &f.status {
        q = q.filter(appointments::status.eq(*v));
    }
    if let Some(v) = &f.kind {
        q = q.filter(appointments::kind.eq(*v));
    }
    if let Some(v) = &f.patient_id {
        q = q.filter(appointments::patient_id.eq(v.clone()));
    }
    if let Some(v) = &f.services {
        q = q.filter(appointments::service_code.eq_any(v.clone()));
    }
    if let Some(v) = &f.after_id {
        q = q.filter(appointments::id.gt(v.clone()));
    }
    q.load(conn)
}

/// A status move made by a person (reschedule, cancel).
#[derive(Debug, Insertable)]
#[diesel(table_name = appointment_events)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewEvent<'a> {
    pub appointment_id: &'a str,
    pub at: chrono::NaiveDateTime,
    pub from_status: Status,
    pub to_status: Status,
    pub scheduled_at: Option<chrono::NaiveDateTime>,
    pub reason: Option<&'a str>,
    pub note: Option<&'a str>,
    pub actor_id: Option<&'a str>,
}

/// Records a move without making it: the history of an appointment imported in its status.
pub fn insert_event(conn: &mut DbConnection, event: &NewEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(appointment_events::table)
        .values(event)
        .execute(conn)
        .map(drop)
}

/// Applies the move to the appointment if its status is still `from_status`, and records it;
/// false (nothing written) when the status has changed since it was read. The original date
/// is never touched.
pub fn move_status(conn: &mut DbConnection, event: &NewEvent<'_>) -> QueryResult<bool> {
    let target = appointments::table
        .find(event.appointment_id)
        .filter(appointments::status.eq(event.from_status));
    let changed = match event.scheduled_at {
        Some(at) => diesel::update(target)
            .set((
                appointments::status.eq(event.to_status),
                appointments::scheduled_at.eq(at),
                appointments::updated_at.eq(event.at),
                // A move ends whatever a plan proposed, and answers what the patient asked.
                appointments::proposed_at.eq(None::<chrono::NaiveDate>),
                appointments::patient_request.eq(None::<String>),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                appointments::status.eq(event.to_status),
                appointments::updated_at.eq(event.at),
                appointments::proposed_at.eq(None::<chrono::NaiveDate>),
                appointments::patient_request.eq(None::<String>),
            ))
            .execute(conn)?,
    };
    if changed == 0 {
        return Ok(false);
    }
    diesel::insert_into(appointment_events::table)
        .values(event)
        .execute(conn)?;
    Ok(true)
}

/// Holds the appointment's row until the transaction ends, so that no other transaction
/// changes it meanwhile (PostgreSQL `FOR UPDATE`; on SQLite the one writer already does).
pub fn lock(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    if let DbConnection::Pg(c) = conn {
        appointments::table
            .find(id)
            .select(appointments::id)
            .for_update()
            .first::<String>(c)
            .optional()?;
    }
    Ok(())
}

/// Withdraws the day a plan proposed (the patient asked for another).
pub fn drop_proposal(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::update(appointments::table.find(id))
        .set(appointments::proposed_at.eq(None::<chrono::NaiveDate>))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = contact_attempts)]
#[diesel(treat_none_as_default_value = false)]
pub struct AttemptRow {
    pub id: String,
    pub appointment_id: String,
    pub at: chrono::NaiveDateTime,
    pub channel: Channel,
    pub outcome: ContactOutcome,
    pub note: Option<String>,
    pub actor_id: Option<String>,
    /// The patient's own answer through an email's link (`domain::answer`); null for staff.
    pub answer: Option<String>,
}

/// Records a contact attempt; the first that reached the patient takes the appointment off
/// the contact list. The appointment keeps the latest outcome for the list, and a patient's
/// request by email (another date, a call) until an attempt reaches them.
pub fn add_attempt(conn: &mut DbConnection, row: &AttemptRow) -> QueryResult<()> {
    diesel::insert_into(contact_attempts::table)
        .values(row)
        .execute(conn)?;
    let target = appointments::table.find(&row.appointment_id);
    let counted = (
        appointments::attempts.eq(appointments::attempts + 1),
        appointments::last_outcome.eq(Some(&row.outcome)),
        appointments::last_attempt_at.eq(Some(row.at)),
    );
    let request = row
        .answer
        .as_deref()
        .and_then(|a| Answer::parse(a).ok())
        .filter(|a| a.is_request());
    // One statement: the counters, and what the attempt says of the patient.
    match request {
        Some(request) => diesel::update(target)
            .set((
                counted,
                appointments::patient_request.eq(Some(request.as_str())),
            ))
            .execute(conn)?,
        // Reached: off the list for good (the first time counts), and whatever the patient
        // asked by email is being dealt with.
        None if row.outcome == ContactOutcome::Reached => diesel::update(target)
            .set((
                counted,
                appointments::reached_at.eq(coalesce(appointments::reached_at, Some(row.at))),
                appointments::patient_request.eq(None::<String>),
            ))
            .execute(conn)?,
        None => diesel::update(target).set(counted).execute(conn)?,
    };
    Ok(())
}

diesel::define_sql_function! {
    /// SQL `COALESCE` of two timestamps (the same on both backends).
    fn coalesce(
        first: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
        then: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
}

pub fn attempts(conn: &mut DbConnection, appointment_id: &str) -> QueryResult<Vec<AttemptRow>> {
    contact_attempts::table
        .filter(contact_attempts::appointment_id.eq(appointment_id))
        .select(AttemptRow::as_select())
        .order((contact_attempts::at, contact_attempts::id))
        .load(conn)
}
