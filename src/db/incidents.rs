//! Incidents and the set-based postponement they apply.

use diesel::dsl::count_star;
use diesel::prelude::*;

use super::schema::{appointments, incident_sites, incidents, sites};
use super::DbConnection;
use crate::domain::appointment::Status;
use crate::domain::site::SiteStatus;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = incidents)]
#[diesel(treat_none_as_default_value = false)]
pub struct IncidentRow {
    pub id: String,
    pub title: String,
    pub started_at: chrono::NaiveDateTime,
    pub postpone_until: chrono::NaiveDateTime,
    pub created_at: chrono::NaiveDateTime,
    pub created_by: Option<String>,
}

pub fn insert(
    conn: &mut DbConnection,
    row: &IncidentRow,
    site_codes: &[String],
) -> QueryResult<()> {
    diesel::insert_into(incidents::table)
        .values(row)
        .execute(conn)?;
    for code in site_codes {
        diesel::insert_into(incident_sites::table)
            .values((
                incident_sites::incident_id.eq(&row.id),
                incident_sites::site_code.eq(code),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// An incident with the codes of the sites it closed.
#[derive(Debug, Clone)]
pub struct Incident {
    pub row: IncidentRow,
    pub sites: Vec<String>,
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Incident>> {
    let Some(row) = incidents::table
        .find(id)
        .select(IncidentRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let sites = incident_sites::table
        .filter(incident_sites::incident_id.eq(id))
        .select(incident_sites::site_code)
        .order(incident_sites::site_code)
        .load(conn)?;
    Ok(Some(Incident { row, sites }))
}

pub fn set_postpone_until(
    conn: &mut DbConnection,
    id: &str,
    until: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(incidents::table.find(id))
        .set(incidents::postpone_until.eq(until))
        .execute(conn)
        .map(drop)
}

/// What applying an incident did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postponement {
    pub postponed: i64,
    /// `appointment_postponed` emails queued with it.
    pub notifications_queued: i64,
    pub kept_urgent: i64,
    pub kept_essential: i64,
}

/// Postpones, in two statements, every `scheduled` appointment at `sites` with
/// `from <= scheduled_at < until` that is neither urgent nor essential, and closes the sites.
/// Running it again finds nothing left to postpone.
pub fn apply(
    conn: &mut DbConnection,
    incident_id: &str,
    site_codes: &[String],
    from: chrono::NaiveDateTime,
    until: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> QueryResult<Postponement> {
    let scheduled = Status::Scheduled.as_str();
    // Urgent and essential care stays; count it (one indexed range scan).
    let kept: Vec<(bool, i64)> = appointments::table
        .filter(appointments::site_code.eq_any(site_codes))
        .filter(appointments::status.eq(scheduled))
        .filter(appointments::scheduled_at.ge(from))
        .filter(appointments::scheduled_at.lt(until))
        .filter(appointments::urgent.or(appointments::essential))
        .group_by(appointments::urgent)
        .select((appointments::urgent, count_star()))
        .load(conn)?;
    let count_of = |urgent: bool| {
        kept.iter()
            .find(|(u, _)| *u == urgent)
            .map_or(0, |(_, n)| *n)
    };

    let postponed = diesel::update(
        appointments::table
            .filter(appointments::site_code.eq_any(site_codes))
            .filter(appointments::status.eq(scheduled))
            .filter(appointments::scheduled_at.ge(from))
            .filter(appointments::scheduled_at.lt(until))
            .filter(appointments::urgent.eq(false))
            .filter(appointments::essential.eq(false)),
    )
    .set((
        appointments::status.eq(Status::Postponed.as_str()),
        appointments::incident_id.eq(incident_id),
        appointments::postponed_at.eq(now),
        // Newly postponed care must be talked about again, whatever an earlier call said.
        appointments::reached_at.eq(None::<chrono::NaiveDateTime>),
        appointments::updated_at.eq(now),
    ))
    .execute(conn)?;

    // In the same transaction: no postponement without its email, no email without it.
    let queued = super::notifications::queue_postponed(conn, incident_id, now)?;

    diesel::update(sites::table.filter(sites::code.eq_any(site_codes)))
        .set((
            sites::status.eq(SiteStatus::Closed),
            sites::programme.eq(None::<String>),
            sites::updated_at.eq(Some(now)),
        ))
        .execute(conn)?;

    Ok(Postponement {
        postponed: i64::try_from(postponed).unwrap_or(i64::MAX),
        notifications_queued: i64::try_from(queued).unwrap_or(i64::MAX),
        kept_urgent: count_of(true),
        kept_essential: count_of(false),
    })
}
