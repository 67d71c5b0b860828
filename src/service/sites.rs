//! Sites: reopening one, after a person has seen what it will do.

use crate::auth::Caller;
use crate::db::{self, sites::ServiceRow, sites::SiteRow};
use crate::domain::appointment::Programme;
use crate::domain::site::SiteStatus;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// What reopening a site would do, for a person to confirm it first: the site, the
/// appointments to contact, and the emails that would go.
#[derive(Debug, Clone)]
pub struct ReopenPreview {
    pub site: db::sites::SiteRow,
    pub to_contact: i64,
    pub emails: i64,
}

/// [`ReopenPreview`] of a closed site: 404 unknown, 409 already open.
pub async fn reopen_preview(state: &AppState, code: String) -> AppResult<ReopenPreview> {
    state
        .db
        .read(move |conn| {
            let site = db::sites::find_site(conn, &code)?
                .ok_or_else(|| AppError::NotFound("no such site".into()))?;
            if site.status == SiteStatus::Open {
                return Err(AppError::Conflict(format!("site {code} is already open")));
            }
            let to_contact = db::sites::postponed_counts(conn, std::slice::from_ref(&code))?
                .first()
                .map_or(0, |(_, n)| *n);
            let emails = db::notifications::count_reopened(conn, &code)?;
            Ok::<_, AppError>(ReopenPreview {
                site,
                to_contact,
                emails,
            })
        })
        .await
}

/// What a reopening did: the site as it now is, its contact list's size, the emails queued.
#[derive(Debug, Clone)]
pub struct Reopened {
    pub site: db::sites::SiteRow,
    pub to_contact: i64,
    pub notifications_queued: i64,
}

/// Reopens a closed site with its programme and the rooms it opens (default all), and with
/// `notify_patients` queues one `site_reopened` email per patient with care to rebook there
/// (address and consent needed): the API and the coordinators' board. 404, 409 if open.
pub async fn reopen(
    state: &AppState,
    caller: Caller,
    code: String,
    programme: Programme,
    operating_rooms_open: Option<i32>,
    notify_patients: bool,
) -> AppResult<Reopened> {
    let now = crate::domain::now();
    let (row, to_contact, queued) = state
        .db
        .write(move |conn| {
            let site = db::sites::find_site(conn, &code)?
                .ok_or_else(|| AppError::NotFound("no such site".into()))?;
            if site.status == SiteStatus::Open {
                return Err(AppError::Conflict(format!("site {code} is already open")));
            }
            let rooms = operating_rooms_open.unwrap_or(site.operating_rooms);
            if !(0..=site.operating_rooms).contains(&rooms) {
                return Err(AppError::validation(
                    "operating_rooms_open",
                    format!(
                        "must be between 0 and the site's {} rooms",
                        site.operating_rooms
                    ),
                ));
            }
            db::sites::reopen(conn, &code, programme.as_str(), rooms, now)?;
            let queued = if notify_patients {
                db::notifications::queue_reopened(conn, &code, now)?
            } else {
                0
            };
            let to_contact = db::sites::postponed_counts(conn, std::slice::from_ref(&code))?
                .first()
                .map_or(0, |(_, n)| *n);
            crate::audit::record(
                conn,
                &caller,
                "site.reopen",
                Some(&format!("site:{code}")),
                serde_json::json!({
                    "programme": programme.as_str(), "operating_rooms_open": rooms,
                    "to_contact": to_contact, "notify_patients": notify_patients,
                    "notifications_queued": queued,
                }),
            )?;
            let row = db::sites::find_site(conn, &code)?
                .ok_or_else(|| AppError::NotFound("no such site".into()))?;
            Ok::<_, AppError>((row, to_contact, queued))
        })
        .await?;
    Ok(Reopened {
        site: row,
        to_contact,
        notifications_queued: i64::try_from(queued).unwrap_or(i64::MAX),
    })
}

/// Creates a site (open); a code already taken is a 409.
pub async fn create_site(state: &AppState, caller: Caller, row: SiteRow) -> AppResult<SiteRow> {
    state
        .db
        .write(move |conn| {
            if db::sites::site_exists(conn, &row.code)? {
                return Err(AppError::Conflict(format!(
                    "site {} already exists",
                    row.code
                )));
            }
            db::sites::insert_site(conn, &row)?;
            crate::audit::record(
                conn,
                &caller,
                "site.create",
                Some(&format!("site:{}", row.code)),
                serde_json::json!({ "kind": row.kind, "operating_rooms": row.operating_rooms }),
            )?;
            Ok(row)
        })
        .await
}

/// Creates a service of an existing site (else a 422); a code already taken is a 409.
pub async fn create_service(
    state: &AppState,
    caller: Caller,
    row: ServiceRow,
) -> AppResult<ServiceRow> {
    state
        .db
        .write(move |conn| {
            if !db::sites::site_exists(conn, &row.site_code)? {
                return Err(AppError::validation(
                    "site",
                    format!("unknown site {}", row.site_code),
                ));
            }
            if db::sites::service_exists(conn, &row.code)? {
                return Err(AppError::Conflict(format!(
                    "service {} already exists",
                    row.code
                )));
            }
            db::sites::insert_service(conn, &row)?;
            crate::audit::record(
                conn,
                &caller,
                "service.create",
                Some(&format!("service:{}", row.code)),
                serde_json::json!({ "site": row.site_code }),
            )?;
            Ok(row)
        })
        .await
}

/// What the coordinators' board shows: every site, its appointments by status and its
/// contact list by priority, the call centre, and the calls of every hour there were calls.
#[derive(Debug, Clone)]
pub struct Overview {
    pub sites: Vec<SiteRow>,
    pub by_status: Vec<db::sites::StatusCount>,
    pub backlog: Vec<db::sites::PriorityCount>,
    pub centre: crate::service::calls::Centre,
    pub hours: Vec<db::calls::HourCount>,
}

/// The board's figures, read in one go.
pub async fn overview(state: &AppState) -> AppResult<Overview> {
    state
        .db
        .read(|conn| {
            let hours = match db::calls::hour_range(conn)? {
                Some(r) => {
                    let end = r.last + chrono::Duration::hours(1);
                    db::calls::stats(conn, r.first, end)?.hours
                }
                None => Vec::new(),
            };
            Ok(Overview {
                sites: db::sites::list_sites(conn, None, 1000)?,
                by_status: db::sites::postponed_by_status(conn)?,
                backlog: db::sites::backlog_by_priority(conn)?,
                centre: crate::service::calls::centre_of(conn)?,
                hours,
            })
        })
        .await
}
