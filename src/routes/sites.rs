//! `/api/v1/sites` and `/api/v1/services` (admins and coordinators).

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{utc, ApiJson, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::{self, sites::ServiceRow, sites::SiteRow};
use crate::domain::appointment::Programme;
use crate::domain::site::SiteStatus;
use crate::domain::Faults;
use crate::domain::{
    account::parse_name, Email, Invalid, PhoneE164, ServiceCode, SiteCode, SiteKind,
};
use crate::error::{AppError, AppResult, Problem};
use crate::service::sites;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    /// 2–16 of `A-Z 0-9 -`.
    #[schema(example = "ARL")]
    pub code: String,
    #[schema(example = "Clinique Sud Luxembourg (Arlon)")]
    pub name: String,
    /// `hospital` or `nursing_home`.
    #[schema(example = "hospital")]
    pub kind: String,
    #[schema(example = 4)]
    pub operating_rooms: i32,
    /// Order in which sites reopen (1 first).
    pub reopening_rank: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteResponse {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub operating_rooms: i32,
    /// `open` or `closed`.
    pub status: String,
    /// `full`, `moderate`, or null while closed or never reopened.
    pub programme: Option<String>,
    pub reopened_at: Option<chrono::DateTime<chrono::Utc>>,
    pub reopening_rank: Option<i32>,
    /// Operating rooms opened by the last reopening.
    pub operating_rooms_open: Option<i32>,
    /// Postponed appointments at this site that no contact attempt has reached yet.
    pub postponed_to_contact: i64,
}

impl SiteResponse {
    fn new(r: SiteRow, postponed_to_contact: i64) -> Self {
        Self {
            code: r.code,
            name: r.name,
            kind: r.kind.to_string(),
            operating_rooms: r.operating_rooms,
            status: r.status.to_string(),
            programme: r.programme.map(|p| p.to_string()),
            reopened_at: r.reopened_at.map(utc),
            reopening_rank: r.reopening_rank,
            operating_rooms_open: r.operating_rooms_open,
            postponed_to_contact,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List sites by code.
#[utoipa::path(
    operation_id = "sites_list",
    tag = "sites",
    params(ListQuery),
    responses(
        (status = 200, body = Page<SiteResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/sites")]
pub async fn list_sites(
    _caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    query: ApiQuery<ListQuery>,
) -> AppResult<web::Json<Page<SiteResponse>>> {
    let page = {
        let q = query.parse()?;
        PageRequest::parse(q.limit, q.cursor)?
    };
    let (after, fetch) = (page.cursor.clone(), page.fetch());
    let (rows, counts) = state
        .db
        .read(move |conn| {
            let rows = db::sites::list_sites(conn, after.as_deref(), fetch)?;
            let codes: Vec<String> = rows.iter().map(|r| r.code.clone()).collect();
            let counts = db::sites::postponed_counts(conn, &codes)?;
            Ok::<_, AppError>((rows, counts))
        })
        .await?;
    let count_of = |code: &str| {
        counts
            .iter()
            .find(|(c, _)| c == code)
            .map_or(0, |(_, n)| *n)
    };
    Ok(web::Json(page.page(
        rows,
        |r| r.code.clone(),
        |r| {
            let n = count_of(&r.code);
            SiteResponse::new(r, n)
        },
    )))
}

fn parse_rooms(n: i32) -> Result<i32, Invalid> {
    if (0..=200).contains(&n) {
        Ok(n)
    } else {
        Err(Invalid("must be between 0 and 200".into()))
    }
}

fn parse_rank(n: i32) -> Result<i32, Invalid> {
    if (1..=1000).contains(&n) {
        Ok(n)
    } else {
        Err(Invalid("must be between 1 and 1000".into()))
    }
}

/// Create a site (open).
#[utoipa::path(
    operation_id = "sites_create",
    tag = "sites",
    request_body = CreateSite,
    responses(
        (status = 201, body = SiteResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "the code is taken"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/sites")]
pub async fn create_site(
    caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    body: ApiJson<CreateSite>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let mut f = Faults::default();
    let code = f.check("code", SiteCode::parse(&b.code));
    let name = f.check("name", parse_name(&b.name));
    let kind = f.check("kind", SiteKind::parse(&b.kind));
    let rooms = f.check("operating_rooms", parse_rooms(b.operating_rooms));
    let rank = f.check_opt("reopening_rank", b.reopening_rank, parse_rank);
    let row = f.finish((|| {
        Some(SiteRow {
            code: code?.into_string(),
            name: name?,
            kind: kind?,
            operating_rooms: rooms?,
            status: SiteStatus::Open,
            programme: None,
            reopened_at: None,
            reopening_rank: rank?,
            created_at: crate::domain::now(),
            operating_rooms_open: None,
        })
    })())?;
    let row = sites::create_site(&state, caller.caller, row).await?;
    Ok(HttpResponse::Created().json(SiteResponse::new(row, 0)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateService {
    /// 2–32 of `A-Z 0-9 -`.
    #[schema(example = "ARL-CHIR")]
    pub code: String,
    #[schema(example = "Chirurgie")]
    pub name: String,
    /// Code of the site.
    #[schema(example = "ARL")]
    pub site: String,
    pub secretariat_email: Option<String>,
    /// Any Belgian or international format; stored as E.164.
    #[schema(example = "063 23 11 11")]
    pub secretariat_phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceResponse {
    pub code: String,
    pub name: String,
    pub site: String,
    pub secretariat_email: Option<String>,
    pub secretariat_phone: Option<String>,
}

impl From<ServiceRow> for ServiceResponse {
    fn from(r: ServiceRow) -> Self {
        Self {
            code: r.code,
            name: r.name,
            site: r.site_code,
            secretariat_email: r.secretariat_email,
            secretariat_phone: r.secretariat_phone,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServiceListQuery {
    /// Only the services of this site.
    pub site: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// List services by code.
#[utoipa::path(
    operation_id = "services_list",
    tag = "sites",
    params(ServiceListQuery),
    responses(
        (status = 200, body = Page<ServiceResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/services")]
pub async fn list_services(
    _caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    query: ApiQuery<ServiceListQuery>,
) -> AppResult<web::Json<Page<ServiceResponse>>> {
    let q = query.parse()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let (site, after, fetch) = (q.site, page.cursor.clone(), page.fetch());
    let rows = state
        .db
        .read(move |conn| {
            db::sites::list_services(conn, site.as_deref(), after.as_deref(), fetch)
                .map_err(AppError::from)
        })
        .await?;
    Ok(web::Json(page.page(
        rows,
        |r| r.code.clone(),
        ServiceResponse::from,
    )))
}

/// Create a service at a site.
#[utoipa::path(
    operation_id = "services_create",
    tag = "sites",
    request_body = CreateService,
    responses(
        (status = 201, body = ServiceResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "the code is taken"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/services")]
pub async fn create_service(
    caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    body: ApiJson<CreateService>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let mut f = Faults::default();
    let code = f.check("code", ServiceCode::parse(&b.code));
    let name = f.check("name", parse_name(&b.name));
    let site = f.check("site", SiteCode::parse(&b.site));
    let email = f.check_opt(
        "secretariat_email",
        b.secretariat_email.as_deref(),
        Email::parse,
    );
    let phone = f.check_opt(
        "secretariat_phone",
        b.secretariat_phone.as_deref(),
        PhoneE164::parse,
    );
    let row = f.finish((|| {
        Some(ServiceRow {
            code: code?.into_string(),
            name: name?,
            site_code: site?.into_string(),
            secretariat_email: email?.map(|e| e.as_str().to_string()),
            secretariat_phone: phone?.map(|p| p.as_str().to_string()),
            created_at: crate::domain::now(),
        })
    })())?;
    let row = sites::create_service(&state, caller.caller, row).await?;
    Ok(HttpResponse::Created().json(ServiceResponse::from(row)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenSite {
    /// `moderate` or `full`.
    #[schema(example = "moderate")]
    pub programme: String,
    /// Operating rooms opened; default all of them.
    pub operating_rooms_open: Option<i32>,
    /// Email the patients with a postponed appointment here (address and consent needed).
    #[serde(default = "yes")]
    pub notify_patients: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReopenResponse {
    pub site: SiteResponse,
    /// Postponed appointments of the site still to contact: its contact list.
    pub to_contact: i64,
    /// `site_reopened` emails queued: one per patient with postponed care here, an address
    /// and consent.
    pub notifications_queued: i64,
}

/// Reopen a closed site with its programme; its postponed appointments become its contact
/// list. Reopening an open site is a 409.
#[utoipa::path(
    operation_id = "sites_reopen",
    tag = "sites",
    request_body = ReopenSite,
    params(("code" = String, Path, description = "site code")),
    responses(
        (status = 200, body = ReopenResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the site is open"),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/sites/{code}/reopen")]
pub async fn reopen(
    caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: ApiJson<ReopenSite>,
) -> AppResult<web::Json<ReopenResponse>> {
    let b = body.parse().await?;
    let programme =
        Programme::parse(&b.programme).map_err(|e| AppError::validation("programme", e.0))?;
    let done = sites::reopen(
        &state,
        caller.caller,
        code.into_inner(),
        programme,
        b.operating_rooms_open,
        b.notify_patients,
    )
    .await?;
    Ok(web::Json(ReopenResponse {
        site: SiteResponse::new(done.site, done.to_contact),
        to_contact: done.to_contact,
        notifications_queued: done.notifications_queued,
    }))
}
