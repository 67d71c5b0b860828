//! Sites and their services.

use diesel::prelude::*;

use super::schema::{appointments, services, sites};
use super::DbConnection;
use crate::domain::appointment::{Programme, Status};
use crate::domain::site::{SiteKind, SiteStatus};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sites)]
#[diesel(treat_none_as_default_value = false)]
pub struct SiteRow {
    pub code: String,
    pub name: String,
    pub kind: SiteKind,
    pub operating_rooms: i32,
    pub status: SiteStatus,
    pub programme: Option<Programme>,
    pub reopened_at: Option<chrono::NaiveDateTime>,
    pub reopening_rank: Option<i32>,
    pub created_at: chrono::NaiveDateTime,
    /// Operating rooms opened by the last reopening.
    pub operating_rooms_open: Option<i32>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = services)]
#[diesel(treat_none_as_default_value = false)]
pub struct ServiceRow {
    pub code: String,
    pub name: String,
    pub site_code: String,
    pub secretariat_email: Option<String>,
    pub secretariat_phone: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert_site(conn: &mut DbConnection, row: &SiteRow) -> QueryResult<()> {
    diesel::insert_into(sites::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn site_exists(conn: &mut DbConnection, code: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        sites::table.filter(sites::code.eq(code)),
    ))
    .get_result(conn)
}

/// Sites by code, after the cursor code.
pub fn list_sites(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<SiteRow>> {
    let mut query = sites::table
        .select(SiteRow::as_select())
        .order(sites::code)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(sites::code.gt(after.to_string()));
    }
    query.load(conn)
}

pub fn service_exists(conn: &mut DbConnection, code: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        services::table.filter(services::code.eq(code)),
    ))
    .get_result(conn)
}

/// The site of a service, if the service exists.
pub fn service_site(conn: &mut DbConnection, code: &str) -> QueryResult<Option<String>> {
    services::table
        .find(code)
        .select(services::site_code)
        .first(conn)
        .optional()
}

/// Every service code with its site (a few hundred rows at most), for imports.
pub fn all_service_sites(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    services::table
        .select((services::code, services::site_code))
        .load(conn)
}

pub fn find_site(conn: &mut DbConnection, code: &str) -> QueryResult<Option<SiteRow>> {
    sites::table
        .find(code)
        .select(SiteRow::as_select())
        .first(conn)
        .optional()
}

/// Opens a site with its programme.
pub fn reopen(
    conn: &mut DbConnection,
    code: &str,
    programme: &str,
    rooms_open: i32,
    at: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(sites::table.find(code))
        .set((
            sites::status.eq(SiteStatus::Open),
            sites::programme.eq(Some(programme)),
            sites::operating_rooms_open.eq(Some(rooms_open)),
            sites::reopened_at.eq(Some(at)),
            sites::updated_at.eq(Some(at)),
        ))
        .execute(conn)
        .map(drop)
}

/// The contact lists' size, per site, for these sites: postponed appointments not yet
/// reached, and those whose patient asked by email for a call (`contact_list::TO_CONTACT`).
pub fn postponed_counts(
    conn: &mut DbConnection,
    codes: &[String],
) -> QueryResult<Vec<(String, i64)>> {
    appointments::table
        .filter(appointments::site_code.eq_any(codes))
        .filter(super::contact_list::to_contact())
        .group_by(appointments::site_code)
        .select((appointments::site_code, diesel::dsl::count_star()))
        .load(conn)
}

pub fn insert_service(conn: &mut DbConnection, row: &ServiceRow) -> QueryResult<()> {
    diesel::insert_into(services::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Services by code, optionally of one site, after the cursor code.
pub fn list_services(
    conn: &mut DbConnection,
    site: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ServiceRow>> {
    let mut query = services::table
        .select(ServiceRow::as_select())
        .order(services::code)
        .limit(limit)
        .into_boxed();
    if let Some(site) = site {
        query = query.filter(services::site_code.eq(site.to_string()));
    }
    if let Some(after) = after {
        query = query.filter(services::code.gt(after.to_string()));
    }
    query.load(conn)
}

/// Appointments an incident postponed, per site and present status (the crisis board).
pub fn postponed_by_status(conn: &mut DbConnection) -> QueryResult<Vec<StatusCount>> {
    appointments::table
        .filter(appointments::postponed_at.is_not_null())
        .group_by((appointments::site_code, appointments::status))
        .select((
            appointments::site_code,
            appointments::status,
            diesel::dsl::count_star(),
        ))
        .load(conn)
}

/// How many appointments of a site have a status.
#[derive(Debug, Clone, Queryable)]
pub struct StatusCount {
    pub site: String,
    pub status: Status,
    pub count: i64,
}

/// How many appointments of a site are to contact at a priority.
#[derive(Debug, Clone, Queryable)]
pub struct PriorityCount {
    pub site: String,
    pub priority: i32,
    pub count: i64,
}

/// The contact lists' size per site and priority (the board's backlog).
pub fn backlog_by_priority(conn: &mut DbConnection) -> QueryResult<Vec<PriorityCount>> {
    appointments::table
        .filter(super::contact_list::to_contact())
        .group_by((appointments::site_code, appointments::priority))
        .select((
            appointments::site_code,
            appointments::priority,
            diesel::dsl::count_star(),
        ))
        .load(conn)
}
