//! Planning the reopening: capacities (per site and day, per service), expected durations,
//! the postponed appointments in contract order, and the days a committed plan proposes.

use diesel::prelude::*;

use super::schema::{
    appointments, operation_durations, patients, services, site_capacity_days, sites,
};
use super::DbConnection;
use crate::domain::appointment::{Kind, Status};

/// A postponed appointment as the planner sees it, in contract order.
#[derive(Debug, Clone, Queryable)]
pub struct PlanRow {
    pub id: String,
    pub service_code: String,
    pub kind: Kind,
    pub label: String,
    pub priority: i32,
    pub original_scheduled_at: chrono::NaiveDateTime,
}

/// Every postponed appointment of the site: priority, then longest waiting, then name, id.
pub fn postponed(conn: &mut DbConnection, site: &str) -> QueryResult<Vec<PlanRow>> {
    appointments::table
        .inner_join(patients::table)
        .filter(appointments::site_code.eq(site))
        .filter(appointments::status.eq(Status::Postponed))
        .order(super::contact_list::CONTRACT_ORDER)
        .select((
            appointments::id,
            appointments::service_code,
            appointments::kind,
            appointments::label,
            appointments::priority,
            appointments::original_scheduled_at,
        ))
        .load(conn)
}

pub fn session_minutes(conn: &mut DbConnection, site: &str) -> QueryResult<i32> {
    sites::table
        .find(site)
        .select(sites::session_minutes)
        .first(conn)
}

pub fn set_session_minutes(conn: &mut DbConnection, site: &str, minutes: i32) -> QueryResult<()> {
    diesel::update(sites::table.find(site))
        .set(sites::session_minutes.eq(minutes))
        .execute(conn)
        .map(drop)
}

/// A day whose operating-room capacity differs from the site's usual one.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = site_capacity_days)]
pub struct CapacityDay {
    pub site_code: String,
    pub day: chrono::NaiveDate,
    pub rooms_open: i32,
    pub session_minutes: i32,
}

pub fn capacity_days(
    conn: &mut DbConnection,
    site: &str,
    from: chrono::NaiveDate,
    until: chrono::NaiveDate,
) -> QueryResult<Vec<CapacityDay>> {
    site_capacity_days::table
        .filter(site_capacity_days::site_code.eq(site))
        .filter(site_capacity_days::day.ge(from))
        .filter(site_capacity_days::day.le(until))
        .order(site_capacity_days::day)
        .load(conn)
}

/// Sets days' capacity for a site (replacing what was set for those days): one delete, one
/// multi-row insert.
pub fn set_capacity_days(
    conn: &mut DbConnection,
    site: &str,
    rows: &[CapacityDay],
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let days: Vec<chrono::NaiveDate> = rows.iter().map(|r| r.day).collect();
    diesel::delete(
        site_capacity_days::table
            .filter(site_capacity_days::site_code.eq(site))
            .filter(site_capacity_days::day.eq_any(&days)),
    )
    .execute(conn)?;
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(
            site_capacity_days::table
        )
        .values(chunk)
        .execute(c))?;
    }
    Ok(())
}

/// A service's consultation slots per working day and default operation length.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ServiceCapacity {
    pub code: String,
    pub consultation_slots: i32,
    pub operation_minutes: i32,
}

pub fn service_capacities(
    conn: &mut DbConnection,
    site: &str,
) -> QueryResult<Vec<ServiceCapacity>> {
    services::table
        .filter(services::site_code.eq(site))
        .order(services::code)
        .select((
            services::code,
            services::consultation_slots,
            services::operation_minutes,
        ))
        .load(conn)
}

/// What a service's capacity change sets (a field left `None` keeps its value).
#[derive(AsChangeset)]
#[diesel(table_name = services)]
struct CapacityChange {
    consultation_slots: Option<i32>,
    operation_minutes: Option<i32>,
}

/// Sets a service's capacity. A new operation length changes its operations' end in FHIR:
/// their `updated_at` moves to `now`, so that `_since` and `_lastUpdated` see them.
pub fn set_service_capacity(
    conn: &mut DbConnection,
    service: &str,
    slots: Option<i32>,
    minutes: Option<i32>,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    if slots.is_none() && minutes.is_none() {
        return Ok(());
    }
    if let Some(minutes) = minutes {
        let before: Option<i32> = services::table
            .find(service)
            .select(services::operation_minutes)
            .first(conn)
            .optional()?;
        if before.is_some_and(|b| b != minutes) {
            diesel::update(
                appointments::table
                    .filter(appointments::service_code.eq(service))
                    .filter(appointments::kind.eq(Kind::Operation)),
            )
            .set(appointments::updated_at.eq(now))
            .execute(conn)?;
        }
    }
    diesel::update(services::table.find(service))
        .set(&CapacityChange {
            consultation_slots: slots,
            operation_minutes: minutes,
        })
        .execute(conn)
        .map(drop)
}

/// The expected length of a service's operation with this label.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct LabelMinutes {
    pub service: String,
    pub label: String,
    pub minutes: i32,
}

/// The expected lengths of the site's operations by label.
pub fn durations(conn: &mut DbConnection, site: &str) -> QueryResult<Vec<LabelMinutes>> {
    operation_durations::table
        .inner_join(services::table)
        .filter(services::site_code.eq(site))
        .select((
            operation_durations::service_code,
            operation_durations::label,
            operation_durations::minutes,
        ))
        .order((
            operation_durations::service_code,
            operation_durations::label,
        ))
        .load(conn)
}

/// Sets the expected lengths of a service's operations by label (replacing those labels'):
/// one delete, one multi-row insert.
pub fn set_durations(
    conn: &mut DbConnection,
    service: &str,
    durations: &[(String, i32)],
) -> QueryResult<()> {
    if durations.is_empty() {
        return Ok(());
    }
    let labels: Vec<&str> = durations.iter().map(|(l, _)| l.as_str()).collect();
    diesel::delete(
        operation_durations::table
            .filter(operation_durations::service_code.eq(service))
            .filter(operation_durations::label.eq_any(&labels)),
    )
    .execute(conn)?;
    let rows: Vec<_> = durations
        .iter()
        .map(|(label, minutes)| {
            (
                operation_durations::service_code.eq(service),
                operation_durations::label.eq(label.as_str()),
                operation_durations::minutes.eq(*minutes),
            )
        })
        .collect();
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(
            operation_durations::table
        )
        .values(chunk)
        .execute(c))?;
    }
    Ok(())
}

/// Stores a plan: each appointment's proposed day (or none), for postponed appointments only;
/// every other proposal of the site's postponed care is cleared first (a plan replaces the
/// last). One statement per day and chunk of ids.
pub fn set_proposed(
    conn: &mut DbConnection,
    site: &str,
    proposals: &[(String, Option<chrono::NaiveDate>)],
) -> QueryResult<()> {
    diesel::update(
        appointments::table
            .filter(appointments::site_code.eq(site))
            .filter(appointments::status.eq(Status::Postponed))
            .filter(appointments::proposed_at.is_not_null()),
    )
    .set(appointments::proposed_at.eq(None::<chrono::NaiveDate>))
    .execute(conn)?;
    let mut by_day: std::collections::BTreeMap<Option<chrono::NaiveDate>, Vec<&str>> =
        std::collections::BTreeMap::new();
    for (id, day) in proposals {
        by_day.entry(*day).or_default().push(id);
    }
    for (day, ids) in by_day.into_iter().filter(|(day, _)| day.is_some()) {
        for chunk in ids.chunks(500) {
            // By id (the primary key) only: with the site in the filter SQLite scanned the
            // site's index for every chunk (19 s for 50,000 rows instead of well under one).
            diesel::update(
                appointments::table
                    .filter(appointments::id.eq_any(chunk))
                    .filter(appointments::status.eq(Status::Postponed)),
            )
            .set(appointments::proposed_at.eq(day))
            .execute(conn)?;
        }
    }
    Ok(())
}

/// A count for a site's service.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ServiceCount {
    pub site: String,
    pub service: String,
    pub count: i64,
}

/// A count for a site.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct SiteCount {
    pub site: String,
    pub count: i64,
}

/// Postponed consultations per site and service (the deadline view's "remaining").
pub fn postponed_consultations(conn: &mut DbConnection) -> QueryResult<Vec<ServiceCount>> {
    appointments::table
        .filter(appointments::status.eq(Status::Postponed))
        .filter(appointments::kind.eq(Kind::Consultation))
        .group_by((appointments::site_code, appointments::service_code))
        .select((
            appointments::site_code,
            appointments::service_code,
            diesel::dsl::count_star(),
        ))
        .load(conn)
}

/// Consultation slots of a working day, per site and service.
pub fn daily_slots(conn: &mut DbConnection) -> QueryResult<Vec<ServiceCount>> {
    let rows: Vec<(String, String, i32)> = services::table
        .select((
            services::site_code,
            services::code,
            services::consultation_slots,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(site, service, slots)| ServiceCount {
            site,
            service,
            count: i64::from(slots.max(0)),
        })
        .collect())
}

/// Consultations rescheduled since `since`, per site: the pace of the secretaries.
pub fn consultations_rescheduled_since(
    conn: &mut DbConnection,
    since: chrono::NaiveDateTime,
) -> QueryResult<Vec<SiteCount>> {
    use super::schema::appointment_events;
    appointment_events::table
        .inner_join(appointments::table)
        .filter(appointment_events::to_status.eq(Status::Rescheduled))
        .filter(appointment_events::at.ge(since))
        .filter(appointments::kind.eq(Kind::Consultation))
        .group_by(appointments::site_code)
        .select((appointments::site_code, diesel::dsl::count_star()))
        .load(conn)
}
