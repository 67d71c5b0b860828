//! The HTTP layer: the whole route table, plus what every handler shares (pagination, field
//! checks). Handlers are thin: extract, authorise (`Granted<perm::X>`), parse into domain types,
//! call `db/` inside one `Db::write` or `Db::read`, respond.

pub mod appointments;
pub mod audit;
pub mod callbacks;
pub mod calls;
pub mod contact_lists;
pub mod cti;
pub mod extract;
pub mod fhir;
pub mod health;
pub mod imports;
pub mod incidents;
pub mod notifications;
pub mod patients;
pub mod planning;
pub mod sites;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

pub use extract::{ApiJson, ApiQuery};

use crate::error::{AppError, AppResult};

/// Routes outside `/api/v1` (no token).
pub fn root(cfg: &mut ServiceConfig) {
    cfg.service(health::health).service(health::metrics);
}

/// Every `/api/v1` route. A route added here appears in `/api/openapi.json` by construction,
/// and the access-control matrix test fails until it has a row.
pub fn api_v1(cfg: &mut ServiceConfig) {
    cfg.service(users::create)
        .service(users::list)
        .service(users::delete)
        .service(audit::list)
        .service(sites::list_sites)
        .service(sites::create_site)
        .service(sites::list_services)
        .service(sites::create_service)
        .service(patients::create)
        .service(patients::search)
        .service(patients::read)
        .service(imports::appointments)
        .service(appointments::create)
        .service(appointments::list)
        .service(appointments::read)
        .service(appointments::reschedule)
        .service(appointments::cancel)
        .service(appointments::add_contact_attempt)
        .service(sites::reopen)
        .service(contact_lists::contact_list)
        .service(notifications::list)
        .service(incidents::create)
        .service(incidents::extend)
        .service(imports::calls)
        .service(calls::create)
        .service(calls::list)
        .service(calls::stats)
        .service(calls::centre)
        .service(calls::set_centre)
        .service(cti::event)
        .service(cti::list)
        .service(cti::stats)
        .service(cti::list_tokens)
        .service(cti::revoke_token)
        .service(callbacks::list)
        .service(callbacks::claim)
        .service(callbacks::attempt)
        .service(planning::site_capacity)
        .service(planning::set_site_capacity)
        .service(planning::set_service_capacity)
        .service(planning::plan)
        .service(planning::deadline)
        .service(fhir::metadata)
        .service(fhir::read_patient)
        .service(fhir::read_appointment)
        .service(fhir::search_appointments)
        .service(fhir::start_export)
        .service(fhir::export_status)
        .service(fhir::cancel_export)
        .service(fhir::export_file)
        .service(fhir::import);
}

/// A page of a list: `{items, next_cursor}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=`, checked.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

impl PageRequest {
    pub fn parse(limit: Option<i64>, cursor: Option<String>) -> AppResult<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(Self {
            limit,
            cursor: cursor.filter(|c| !c.is_empty()),
        })
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the extra row and builds the page; `key` gives the cursor of a row.
    pub fn page<R, T>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> String,
        map: impl FnMut(R) -> T,
    ) -> Page<T> {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

pub use crate::domain::time::utc;

/// The cursor of a list ordered by a time and an id, newest first: `micros~id`.
pub fn time_cursor(at: chrono::NaiveDateTime, id: &str) -> String {
    format!("{}~{id}", at.and_utc().timestamp_micros())
}

pub fn parse_time_cursor(
    raw: &str,
) -> Result<(chrono::NaiveDateTime, String), crate::domain::Invalid> {
    let bad = || crate::domain::Invalid("is not a cursor of this list".into());
    let (micros, id) = raw.split_once('~').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at.naive_utc(), id.to_string()))
}

pub use crate::domain::time::parse_instant;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_the_extra_row_and_point_at_the_last_item() {
        let req = PageRequest::parse(Some(2), None).expect("valid");
        let page = req.page(vec![1, 2, 3], |n| n.to_string(), |n| n * 10);
        assert_eq!(page.items, vec![10, 20]);
        assert_eq!(page.next_cursor.as_deref(), Some("2"));
        let last = req.page(vec![1, 2], |n| n.to_string(), |n| n);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn limits_are_bounded() {
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(1001), None).is_err());
        assert_eq!(
            PageRequest::parse(None, None).map(|p| p.limit).ok(),
            Some(100)
        );
    }
}
