//! Planning the reopening: the capacity of each site and service (`/sites/{code}/capacity`,
//! `/services/{code}/capacity`) and the plan that fills it (`POST /sites/{code}/plan`).

use std::collections::BTreeMap;

use actix_web::{get, post, put, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiQuery};
use crate::auth::{perm, Granted};
use crate::db::planning::CapacityDay;
use crate::domain::appointment::parse_text;
use crate::domain::plan::{in_range, parse_day};
use crate::domain::Faults;
use crate::error::{AppError, AppResult, Problem};
use crate::service::planning::{self as service, ServiceCapacity, SiteCapacity};
use crate::state::AppState;

/// The longest window a plan covers.
const MAX_DAYS: i64 = 366;

#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityDayResponse {
    pub date: NaiveDate,
    pub rooms_open: i32,
    pub session_minutes: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceCapacityResponse {
    pub code: String,
    /// Consultations the service can see each working day (Monday to Friday).
    pub consultation_slots: i32,
    /// Expected length of an operation whose label has no duration of its own.
    pub operation_minutes: i32,
    /// Expected length by operation label.
    #[schema(value_type = Object)]
    pub durations: BTreeMap<String, i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteCapacityResponse {
    pub site: String,
    /// `full`, `moderate`, or null before the site reopens (planned as `moderate`).
    pub programme: Option<String>,
    /// Share of operating-room time the programme uses.
    pub fraction: f64,
    pub operating_rooms_open: i32,
    pub session_minutes: i32,
    /// Operating-room minutes of a usual working day: rooms × session × fraction.
    pub minutes_per_working_day: i64,
    /// Days with a capacity of their own, from today on.
    pub days: Vec<CapacityDayResponse>,
    pub services: Vec<ServiceCapacityResponse>,
}

impl From<ServiceCapacity> for ServiceCapacityResponse {
    fn from(s: ServiceCapacity) -> Self {
        ServiceCapacityResponse {
            code: s.code,
            consultation_slots: s.consultation_slots,
            operation_minutes: s.operation_minutes,
            durations: s.durations,
        }
    }
}

impl From<SiteCapacity> for SiteCapacityResponse {
    fn from(c: SiteCapacity) -> Self {
        SiteCapacityResponse {
            site: c.site,
            programme: c.programme.map(|p| p.to_string()),
            fraction: c.days.fraction,
            operating_rooms_open: c.days.rooms,
            session_minutes: c.days.session_minutes,
            minutes_per_working_day: c.days.per_working_day(),
            days: c
                .own_days
                .into_iter()
                .map(|d| CapacityDayResponse {
                    date: d.day,
                    rooms_open: d.rooms_open,
                    session_minutes: d.session_minutes,
                })
                .collect(),
            services: c.services.into_iter().map(Into::into).collect(),
        }
    }
}

/// A site's planning capacity: its operating rooms, session length, programme share, the days
/// that differ, and its services' consultation slots and operation lengths.
#[utoipa::path(
    operation_id = "site_capacity_read",
    tag = "planning",
    params(("code" = String, Path, description = "site code")),
    responses(
        (status = 200, body = SiteCapacityResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/sites/{code}/capacity")]
pub async fn site_capacity(
    _caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> AppResult<web::Json<SiteCapacityResponse>> {
    let capacity = service::capacity(&state, code.into_inner()).await?;
    Ok(web::Json(capacity.into()))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityDayInput {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub rooms_open: i32,
    pub session_minutes: i32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSiteCapacity {
    /// Minutes of one operating-room session on a usual working day (0 to 1440).
    pub session_minutes: Option<i32>,
    /// Days with a capacity of their own (at most 366 at once).
    #[serde(default)]
    pub days: Vec<CapacityDayInput>,
}

/// Set a site's session length and days of their own (audited as `site.capacity`).
#[utoipa::path(
    operation_id = "site_capacity_update",
    tag = "planning",
    request_body = SetSiteCapacity,
    params(("code" = String, Path, description = "site code")),
    responses(
        (status = 200, body = SiteCapacityResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[put("/sites/{code}/capacity")]
pub async fn set_site_capacity(
    caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: ApiJson<SetSiteCapacity>,
) -> AppResult<web::Json<SiteCapacityResponse>> {
    let b = body.parse().await?;
    let mut f = Faults::default();
    let session = f.check_opt("session_minutes", b.session_minutes, |m| {
        in_range(m, 0, 1440)
    });
    if b.days.len() > MAX_DAYS as usize {
        f.push("days", format!("at most {MAX_DAYS} days at once"));
    }
    let code = code.into_inner();
    let mut days = Vec::new();
    for (i, d) in b.days.iter().enumerate() {
        let date = f.check(format!("days[{i}].date"), parse_day(&d.date));
        let rooms = f.check(
            format!("days[{i}].rooms_open"),
            in_range(d.rooms_open, 0, 1000),
        );
        let minutes = f.check(
            format!("days[{i}].session_minutes"),
            in_range(d.session_minutes, 0, 1440),
        );
        if let (Some(day), Some(rooms_open), Some(session_minutes)) = (date, rooms, minutes) {
            days.push(CapacityDay {
                site_code: code.clone(),
                day,
                rooms_open,
                session_minutes,
            });
        }
    }
    let session = f.finish(session)?;
    let capacity = service::set_site_capacity(&state, caller.caller, code, session, days).await?;
    Ok(web::Json(capacity.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetServiceCapacity {
    /// Consultations a working day (0 to 10,000).
    pub consultation_slots: Option<i32>,
    /// Expected length of an operation without a duration of its own (1 to 1440 minutes).
    pub operation_minutes: Option<i32>,
    /// Expected length by operation label (1 to 1440 minutes).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub durations: BTreeMap<String, i32>,
}

/// Set a service's consultation slots and operation lengths (audited as `service.capacity`).
#[utoipa::path(
    operation_id = "service_capacity_update",
    tag = "planning",
    request_body = SetServiceCapacity,
    params(("code" = String, Path, description = "service code")),
    responses(
        (status = 200, body = ServiceCapacityResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[put("/services/{code}/capacity")]
pub async fn set_service_capacity(
    caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: ApiJson<SetServiceCapacity>,
) -> AppResult<web::Json<ServiceCapacityResponse>> {
    let b = body.parse().await?;
    let mut f = Faults::default();
    let slots = f.check_opt("consultation_slots", b.consultation_slots, |n| {
        in_range(n, 0, 10_000)
    });
    let minutes = f.check_opt("operation_minutes", b.operation_minutes, |n| {
        in_range(n, 1, 1440)
    });
    if b.durations.len() > 1000 {
        f.push("durations", "at most 1000 labels at once");
    }
    let mut durations: Vec<(String, i32)> = Vec::new();
    for (label, m) in &b.durations {
        let label = f.check("durations", parse_text(label, 200));
        let m = f.check("durations", in_range(*m, 1, 1440));
        if let Some((label, m)) = label.zip(m) {
            if durations.iter().any(|(l, _)| *l == label) {
                f.push("durations", format!("{label} is given twice"));
            }
            durations.push((label, m));
        }
    }
    let capacities = f.finish(slots.zip(minutes))?;
    let service = service::set_service_capacity(
        &state,
        caller.caller,
        code.into_inner(),
        capacities,
        durations,
    )
    .await?;
    Ok(web::Json(service.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// First day of the plan, `YYYY-MM-DD`.
    pub from: String,
    /// Last day of the plan (at most 366 days after `from`).
    pub until: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// Store the proposed days (`proposed_at`); the status stays `postponed`.
    pub commit: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanDay {
    pub date: NaiveDate,
    pub operation_minutes: i64,
    pub operation_minutes_used: i64,
    pub operations: i64,
    pub consultation_slots: i64,
    pub consultations: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanItem {
    pub appointment_id: String,
    pub kind: String,
    pub service: String,
    pub priority: i32,
    pub original_scheduled_at: chrono::DateTime<chrono::Utc>,
    /// Minutes of operating-room time it takes (operations).
    pub minutes: Option<i64>,
    /// Null when nothing in the window has room for it.
    pub proposed_date: Option<NaiveDate>,
    /// The day its priority's deadline falls on.
    pub due: NaiveDate,
    /// Not placed, or placed after `due`.
    pub late: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanResponse {
    pub site: String,
    pub from: NaiveDate,
    pub until: NaiveDate,
    pub committed: bool,
    /// Postponed appointments of the site.
    pub appointments: i64,
    pub planned: i64,
    /// Appointments with no room in the window.
    pub not_placed: i64,
    /// Appointments not placed or placed after their deadline.
    pub late: i64,
    pub days: Vec<PlanDay>,
    /// Every postponed appointment, in contract order, with its proposal.
    pub items: Vec<PlanItem>,
}

/// Proposes a day for every postponed appointment of the site, in contract order (priority,
/// then longest waiting), never beyond a day's capacity: operations take their expected
/// operating-room minutes, consultations one slot of their service. `?commit=true` stores the
/// days as `proposed_at` (the status stays `postponed`), for secretaries to confirm.
#[utoipa::path(
    operation_id = "sites_plan",
    tag = "planning",
    request_body = PlanRequest,
    params(("code" = String, Path, description = "site code"), PlanQuery),
    responses(
        (status = 200, body = PlanResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/sites/{code}/plan")]
pub async fn plan(
    caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    code: web::Path<String>,
    query: ApiQuery<PlanQuery>,
    body: ApiJson<PlanRequest>,
) -> AppResult<web::Json<PlanResponse>> {
    let commit = query.parse()?.commit.unwrap_or(false);
    let b = body.parse().await?;
    let mut f = Faults::default();
    let from = f.check("from", parse_day(&b.from));
    let until = f.check("until", parse_day(&b.until));
    let (from, until) = f.finish(from.zip(until))?;
    if from < crate::domain::now().date() {
        return Err(AppError::validation(
            "from",
            "must be today or later: a plan proposes days to come",
        ));
    }
    if until < from || (until - from).num_days() >= MAX_DAYS {
        return Err(AppError::validation(
            "until",
            format!("must be on or after from, and at most {MAX_DAYS} days of it"),
        ));
    }
    let plan = service::plan(
        &state,
        caller.caller,
        code.into_inner(),
        (from, until),
        commit,
    )
    .await?;
    Ok(web::Json(plan.into()))
}

impl From<service::SitePlan> for PlanResponse {
    fn from(p: service::SitePlan) -> Self {
        let (planned, late) = (p.plan.planned() as i64, p.plan.late() as i64);
        let items: Vec<PlanItem> = p
            .waiting
            .into_iter()
            .zip(&p.plan.proposals)
            .map(|(r, proposal)| PlanItem {
                appointment_id: r.id,
                kind: r.kind.to_string(),
                service: r.service_code,
                priority: r.priority,
                original_scheduled_at: super::utc(r.original_scheduled_at),
                minutes: proposal.minutes.map(i64::from),
                proposed_date: proposal.day,
                due: proposal.due,
                late: proposal.late,
            })
            .collect();
        let total = items.len() as i64;
        PlanResponse {
            site: p.site,
            from: p.from,
            until: p.until,
            committed: p.committed,
            appointments: total,
            planned,
            not_placed: total - planned,
            late,
            days: p
                .plan
                .days
                .iter()
                .map(|d| PlanDay {
                    date: d.date,
                    operation_minutes: i64::from(d.operation_minutes),
                    operation_minutes_used: i64::from(d.operation_minutes_used),
                    operations: i64::from(d.operations),
                    consultation_slots: i64::from(d.consultation_slots),
                    consultations: i64::from(d.consultations),
                })
                .collect(),
            items,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadlineQuery {
    /// The day by which every postponed consultation should be seen again, `YYYY-MM-DD`.
    pub date: String,
    /// Count capacity from this day (default today).
    pub from: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteDeadline {
    pub site: String,
    /// Postponed consultations still without a new date.
    pub remaining: i64,
    /// Consultation slots a working day (its services' sum). Each service sees its own
    /// consultations only: `reaches_date` and `done_at_capacity` are worked out service by
    /// service (the site's are its latest service's).
    pub slots_per_working_day: i64,
    /// Slots from `from` to `date`, working days.
    pub capacity_until_date: i64,
    /// Whether that capacity sees every remaining consultation by the date.
    pub reaches_date: bool,
    /// The day the planned capacity would see the last of them; null without slots.
    pub done_at_capacity: Option<NaiveDate>,
    /// Consultations rescheduled a day over the last 7 days.
    pub pace_per_day: f64,
    /// The day the last would be rebooked at that pace; null at no pace.
    pub done_at_pace: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadlineResponse {
    pub date: NaiveDate,
    pub from: NaiveDate,
    pub sites: Vec<SiteDeadline>,
}

/// The management aim "every consultation resumed by a given date", site by site: what
/// remains, whether the planned consultation capacity reaches the date, and when the last
/// would be rebooked at the capacity and at the pace of the last seven days.
#[utoipa::path(
    operation_id = "planning_deadline",
    tag = "planning",
    params(DeadlineQuery),
    responses(
        (status = 200, body = DeadlineResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/planning/deadline")]
pub async fn deadline(
    _caller: Granted<perm::ManageSites>,
    state: web::Data<AppState>,
    query: ApiQuery<DeadlineQuery>,
) -> AppResult<web::Json<DeadlineResponse>> {
    let q = query.parse()?;
    let now = crate::domain::now();
    let mut f = Faults::default();
    let date = f.check("date", parse_day(&q.date));
    let from = f.check_opt("from", q.from.as_deref(), parse_day);
    let (date, from) = f.finish(date.zip(from))?;
    let from = from.unwrap_or(now.date());
    if date < from || (date - from).num_days() > 3660 {
        return Err(AppError::validation(
            "date",
            "must be on or after from, and at most ten years after it",
        ));
    }
    let sites = service::deadline(&state, (from, date))
        .await?
        .into_iter()
        .map(|(site, o)| SiteDeadline {
            site,
            remaining: o.remaining,
            slots_per_working_day: o.slots_per_working_day,
            capacity_until_date: o.capacity_until_date,
            reaches_date: o.reaches_date,
            done_at_capacity: o.done_at_capacity,
            pace_per_day: o.pace_per_day,
            done_at_pace: o.done_at_pace,
        })
        .collect();
    Ok(web::Json(DeadlineResponse { date, from, sites }))
}
