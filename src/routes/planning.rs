//! Planning the reopening: the capacity of each site and service (`/sites/{code}/capacity`,
//! `/services/{code}/capacity`) and the plan that fills it (`POST /sites/{code}/plan`).

use std::collections::{BTreeMap, HashMap};

use actix_web::{get, post, put, web};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, ApiQuery, Fields};
use crate::auth::{perm, Caller, Granted};
use crate::db::{self, planning::CapacityDay, DbConnection};
use crate::domain::appointment::parse_text;
use crate::domain::plan::{first_fit, Day, Need, Planning};
use crate::domain::Invalid;
use crate::error::{AppError, AppResult, Problem};
use crate::state::AppState;

/// The longest window a plan covers.
const MAX_DAYS: i64 = 366;

/// A day of this century's plans: `YYYY-MM-DD`, years 2000 to 2100 (dates far outside are
/// typing mistakes, and PostgreSQL refuses some that SQLite stores).
fn parse_day(raw: &str) -> Result<NaiveDate, Invalid> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (2000..=2100).contains(&d.year()))
        .ok_or_else(|| Invalid("must be a date from 2000 to 2100 such as 2022-06-13".into()))
}

fn in_range(n: i32, min: i32, max: i32) -> Result<i32, Invalid> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(Invalid(format!("must be between {min} and {max}")))
    }
}

/// Operating-room minutes of `rooms` × `minutes` at `fraction`, in whole basis points so that
/// 3 × 60 × 0.35 is 63, not 62.999….
fn share(rooms: i32, minutes: i32, fraction: f64) -> u32 {
    let basis_points = (fraction * 10_000.0).round() as u64;
    let total =
        u64::try_from(rooms.max(0)).unwrap_or(0) * u64::try_from(minutes.max(0)).unwrap_or(0);
    u32::try_from(total * basis_points / 10_000).unwrap_or(u32::MAX)
}

/// The site's usual day: its rooms (those opened, else all), its session length, the share
/// of its programme (`full` 100 %, `moderate` or none yet: the configured fraction).
struct SiteDays {
    rooms: i32,
    session_minutes: i32,
    fraction: f64,
    overrides: HashMap<NaiveDate, (i32, i32)>,
}

impl SiteDays {
    fn load(
        conn: &mut DbConnection,
        code: &str,
        from: NaiveDate,
        until: NaiveDate,
        planning: &Planning,
    ) -> AppResult<(db::sites::SiteRow, Self)> {
        let site = db::sites::find_site(conn, code)?
            .ok_or_else(|| AppError::NotFound("no such site".into()))?;
        let session_minutes = db::planning::session_minutes(conn, code)?;
        let overrides = db::planning::capacity_days(conn, code, from, until)?
            .into_iter()
            .map(|d| (d.day, (d.rooms_open, d.session_minutes)))
            .collect();
        let days = SiteDays {
            rooms: site.operating_rooms_open.unwrap_or(site.operating_rooms),
            session_minutes,
            fraction: match site.programme.as_deref() {
                Some("full") => 1.0,
                _ => planning.moderate_fraction,
            },
            overrides,
        };
        Ok((site, days))
    }

    /// Operating-room minutes of a day: weekdays only, unless the day has its own capacity.
    fn minutes(&self, day: NaiveDate) -> u32 {
        let (rooms, minutes) = match self.overrides.get(&day) {
            Some(&(rooms, minutes)) => (rooms, minutes),
            None if day.weekday().number_from_monday() <= 5 => (self.rooms, self.session_minutes),
            None => (0, 0),
        };
        share(rooms, minutes, self.fraction)
    }
}

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

fn capacity_response(
    conn: &mut DbConnection,
    code: &str,
    planning: &Planning,
) -> AppResult<SiteCapacityResponse> {
    // Every day of its own from today on.
    let today = crate::domain::now().date();
    let until = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
    let (site, days) = SiteDays::load(conn, code, today, until, planning)?;
    let mut durations: HashMap<String, BTreeMap<String, i32>> = HashMap::new();
    for (service, label, minutes) in db::planning::durations(conn, code)? {
        durations.entry(service).or_default().insert(label, minutes);
    }
    let mut overrides: Vec<CapacityDayResponse> = days
        .overrides
        .iter()
        .map(|(date, (rooms, minutes))| CapacityDayResponse {
            date: *date,
            rooms_open: *rooms,
            session_minutes: *minutes,
        })
        .collect();
    overrides.sort_by_key(|d| d.date);
    Ok(SiteCapacityResponse {
        site: site.code,
        programme: site.programme,
        fraction: days.fraction,
        operating_rooms_open: days.rooms,
        session_minutes: days.session_minutes,
        minutes_per_working_day: (f64::from(days.rooms)
            * f64::from(days.session_minutes)
            * days.fraction)
            .floor() as i64,
        days: overrides,
        services: db::planning::service_capacities(conn, code)?
            .into_iter()
            .map(|s| ServiceCapacityResponse {
                durations: durations.remove(&s.code).unwrap_or_default(),
                code: s.code,
                consultation_slots: s.consultation_slots,
                operation_minutes: s.operation_minutes,
            })
            .collect(),
    })
}

/// A site's planning capacity: its operating rooms, session length, programme share, the days
/// that differ, and its services' consultation slots and operation lengths.
#[utoipa::path(
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
    let (code, planning) = (code.into_inner(), state.settings.planning);
    let body = state
        .db
        .read(move |conn| capacity_response(conn, &code, &planning))
        .await?;
    Ok(web::Json(body))
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
    let mut f = Fields::new();
    let session = f.check_opt("session_minutes", b.session_minutes, |m| {
        in_range(m, 0, 1440)
    });
    if b.days.len() > MAX_DAYS as usize {
        f.push("days", format!("at most {MAX_DAYS} days at once"));
    }
    let code = code.into_inner();
    let mut days = Vec::new();
    for (i, d) in b.days.iter().enumerate() {
        let date = f.check(&format!("days[{i}].date"), parse_day(&d.date));
        let rooms = f.check(
            &format!("days[{i}].rooms_open"),
            in_range(d.rooms_open, 0, 1000),
        );
        let minutes = f.check(
            &format!("days[{i}].session_minutes"),
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
    let (caller, planning) = (caller.caller, state.settings.planning);
    let body = state
        .db
        .write(move |conn| {
            let site = db::sites::find_site(conn, &code)?
                .ok_or_else(|| AppError::NotFound("no such site".into()))?;
            if let Some(d) = days.iter().find(|d| d.rooms_open > site.operating_rooms) {
                return Err(AppError::validation(
                    "days",
                    format!(
                        "{}: at most the site's {} rooms",
                        d.day, site.operating_rooms
                    ),
                ));
            }
            if let Some(minutes) = session {
                db::planning::set_session_minutes(conn, &code, minutes)?;
            }
            db::planning::set_capacity_days(conn, &code, &days)?;
            crate::audit::record(
                conn,
                &caller,
                "site.capacity",
                Some(&format!("site:{code}")),
                serde_json::json!({
                    "session_minutes": session,
                    "days": days.iter().map(|d| serde_json::json!({
                        "date": d.day, "rooms_open": d.rooms_open, "session_minutes": d.session_minutes,
                    })).collect::<Vec<_>>(),
                }),
            )?;
            capacity_response(conn, &code, &planning)
        })
        .await?;
    Ok(web::Json(body))
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
    let mut f = Fields::new();
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
    let (slots, minutes) = f.finish(slots.zip(minutes))?;
    let (code, caller) = (code.into_inner(), caller.caller);
    let body = state
        .db
        .write(move |conn| {
            let site = db::sites::service_site(conn, &code)?
                .ok_or_else(|| AppError::NotFound("no such service".into()))?;
            db::planning::set_service_capacity(conn, &code, slots, minutes)?;
            db::planning::set_durations(conn, &code, &durations)?;
            crate::audit::record(
                conn,
                &caller,
                "service.capacity",
                Some(&format!("service:{code}")),
                serde_json::json!({
                    "consultation_slots": slots, "operation_minutes": minutes,
                    "durations": durations.iter().cloned().collect::<BTreeMap<String, i32>>(),
                }),
            )?;
            let mut all = db::planning::durations(conn, &site)?;
            all.retain(|(s, _, _)| *s == code);
            let service = db::planning::service_capacities(conn, &site)?
                .into_iter()
                .find(|s| s.code == code)
                .ok_or_else(|| AppError::NotFound("no such service".into()))?;
            Ok::<_, AppError>(ServiceCapacityResponse {
                code: service.code,
                consultation_slots: service.consultation_slots,
                operation_minutes: service.operation_minutes,
                durations: all.into_iter().map(|(_, l, m)| (l, m)).collect(),
            })
        })
        .await?;
    Ok(web::Json(body))
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
    let mut f = Fields::new();
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
    let plan = make_plan(&state, code.into_inner(), from, until).await?;
    if commit {
        let caller = caller.caller;
        let proposals: Vec<(String, Option<NaiveDate>)> = plan
            .items
            .iter()
            .map(|i| (i.appointment_id.clone(), i.proposed_date))
            .collect();
        let (site, planned, late) = (plan.site.clone(), plan.planned, plan.late);
        state
            .db
            .write(move |conn| {
                store_plan(conn, &caller, &site, &proposals, from, until, planned, late)
            })
            .await?;
    }
    Ok(web::Json(PlanResponse {
        committed: commit,
        ..plan
    }))
}

#[allow(clippy::too_many_arguments)]
fn store_plan(
    conn: &mut DbConnection,
    caller: &Caller,
    site: &str,
    proposals: &[(String, Option<NaiveDate>)],
    from: NaiveDate,
    until: NaiveDate,
    planned: i64,
    late: i64,
) -> AppResult<()> {
    db::planning::set_proposed(conn, site, proposals)?;
    crate::audit::record(
        conn,
        caller,
        "site.plan",
        Some(&format!("site:{site}")),
        serde_json::json!({
            "from": from, "until": until, "rows": proposals.len(), "planned": planned, "late": late,
        }),
    )?;
    Ok(())
}

/// Reads what the plan needs in one read, then plans in memory.
pub async fn make_plan(
    state: &AppState,
    code: String,
    from: NaiveDate,
    until: NaiveDate,
) -> AppResult<PlanResponse> {
    let planning = state.settings.planning;
    let site = code.clone();
    let (site_days, services, durations, rows) = state
        .db
        .read(move |conn| {
            let (_, site_days) = SiteDays::load(conn, &code, from, until, &planning)?;
            Ok::<_, AppError>((
                site_days,
                db::planning::service_capacities(conn, &code)?,
                db::planning::durations(conn, &code)?,
                db::planning::postponed(conn, &code)?,
            ))
        })
        .await?;
    let service_index: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.code.as_str(), i))
        .collect();
    let length: HashMap<(&str, &str), i32> = durations
        .iter()
        .map(|(s, l, m)| ((s.as_str(), l.as_str()), *m))
        .collect();
    let mut days: Vec<Day> = (0..=(until - from).num_days())
        .map(|i| {
            let date = from + chrono::Duration::days(i);
            let working = date.weekday().number_from_monday() <= 5;
            Day {
                date,
                minutes: site_days.minutes(date),
                slots: services
                    .iter()
                    .map(|s| {
                        if working {
                            s.consultation_slots.max(0) as u32
                        } else {
                            0
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let capacity: Vec<(u32, u32)> = days
        .iter()
        .map(|d| (d.minutes, d.slots.iter().sum()))
        .collect();
    let needs: Vec<Need> = rows
        .iter()
        .map(|r| {
            if r.kind == "operation" {
                let default = services
                    .get(
                        service_index
                            .get(r.service_code.as_str())
                            .copied()
                            .unwrap_or(usize::MAX),
                    )
                    .map_or(120, |s| s.operation_minutes);
                let m = length
                    .get(&(r.service_code.as_str(), r.label.as_str()))
                    .copied()
                    .unwrap_or(default);
                Need::Minutes(m.max(1) as u32)
            } else {
                Need::Slot(
                    service_index
                        .get(r.service_code.as_str())
                        .copied()
                        .unwrap_or(usize::MAX),
                )
            }
        })
        .collect();
    let placed = first_fit(&mut days, &needs);
    let mut per_day: Vec<PlanDay> = days
        .iter()
        .zip(&capacity)
        .map(|(d, (minutes, slots))| PlanDay {
            date: d.date,
            operation_minutes: i64::from(*minutes),
            operation_minutes_used: i64::from(*minutes - d.minutes),
            operations: 0,
            consultation_slots: i64::from(*slots),
            consultations: i64::from(*slots - d.slots.iter().sum::<u32>()),
        })
        .collect();
    let (mut planned, mut late) = (0i64, 0i64);
    let items: Vec<PlanItem> = rows
        .into_iter()
        .zip(needs.iter().zip(&placed))
        .map(|(r, (need, day))| {
            let proposed_date = day.map(|d| days[d].date);
            if let Some(d) = day {
                planned += 1;
                if matches!(need, Need::Minutes(_)) {
                    per_day[*d].operations += 1;
                }
            }
            let due = planning.deadlines.due(
                r.priority,
                crate::domain::time::brussels(r.original_scheduled_at).date_naive(),
            );
            let is_late = proposed_date.is_none_or(|p| p > due);
            late += i64::from(is_late);
            PlanItem {
                appointment_id: r.id,
                kind: r.kind,
                service: r.service_code,
                priority: r.priority,
                original_scheduled_at: super::utc(r.original_scheduled_at),
                minutes: match need {
                    Need::Minutes(m) => Some(i64::from(*m)),
                    Need::Slot(_) => None,
                },
                proposed_date,
                due,
                late: is_late,
            }
        })
        .collect();
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    Ok(PlanResponse {
        site,
        from,
        until,
        committed: false,
        appointments: total,
        planned,
        not_placed: total - planned,
        late,
        days: per_day,
        items,
    })
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

/// Working days (Monday to Friday) from `from` to `until`, both included.
fn working_days(from: NaiveDate, until: NaiveDate) -> i64 {
    from.iter_days()
        .take_while(|d| *d <= until)
        .filter(|d| d.weekday().number_from_monday() <= 5)
        .count() as i64
}

/// The day the `n`th working day from `from` falls on (1: the first working day).
fn nth_working_day(from: NaiveDate, n: i64) -> Option<NaiveDate> {
    from.iter_days()
        .filter(|d| d.weekday().number_from_monday() <= 5)
        .nth(usize::try_from(n.max(1) - 1).ok()?)
}

/// The management aim "every consultation resumed by a given date", site by site: what
/// remains, whether the planned consultation capacity reaches the date, and when the last
/// would be rebooked at the capacity and at the pace of the last seven days.
#[utoipa::path(
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
    let mut f = Fields::new();
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
    let week_ago = now - chrono::Duration::days(7);
    let (sites, remaining, slots, pace) = state
        .db
        .read(move |conn| {
            Ok::<_, AppError>((
                db::sites::list_sites(conn, None, 1000)?,
                db::planning::postponed_consultations(conn)?,
                db::planning::daily_slots(conn)?,
                db::planning::consultations_rescheduled_since(conn, week_ago)?,
            ))
        })
        .await?;
    let work = working_days(from, date);
    let sites = sites
        .into_iter()
        .map(|site| {
            // Service by service, as the plan places them: a consultation takes a slot of its
            // own service only. The site reaches the date when every service does.
            let services: Vec<(i64, i64)> = slots
                .iter()
                .filter(|(s, _, _)| *s == site.code)
                .map(|(_, service, per_day)| {
                    let left = remaining
                        .iter()
                        .find(|(s, sv, _)| *s == site.code && sv == service)
                        .map_or(0, |r| r.2);
                    (left, i64::from((*per_day).max(0)))
                })
                .collect();
            let remaining_here: i64 = remaining
                .iter()
                .filter(|(s, _, _)| *s == site.code)
                .map(|r| r.2)
                .sum();
            // Consultations of a service the site no longer has: never placed.
            let orphans = remaining_here - services.iter().map(|s| s.0).sum::<i64>();
            let per_day: i64 = services.iter().map(|s| s.1).sum();
            let usable: i64 = services
                .iter()
                .map(|(left, day)| (*left).min(day * work))
                .sum();
            let done_at_capacity = if remaining_here == 0 {
                Some(from)
            } else if orphans > 0 {
                None
            } else {
                // The latest service's last day; none if a service with some left has no slot.
                services
                    .iter()
                    .filter(|(left, _)| *left > 0)
                    .map(|(left, day)| {
                        (*day > 0)
                            .then(|| nth_working_day(from, (left + day - 1) / day))
                            .flatten()
                    })
                    .collect::<Option<Vec<_>>>()
                    .and_then(|days| days.into_iter().max())
            };
            let pace_per_day = pace
                .iter()
                .find(|(s, _)| *s == site.code)
                .map_or(0, |(_, n)| *n) as f64
                / 7.0;
            SiteDeadline {
                remaining: remaining_here,
                slots_per_working_day: per_day,
                capacity_until_date: per_day * work,
                reaches_date: usable >= remaining_here,
                done_at_capacity,
                pace_per_day,
                done_at_pace: if remaining_here == 0 {
                    Some(now.date())
                } else if pace_per_day > 0.0 {
                    let days = (remaining_here as f64 / pace_per_day).ceil() as i64;
                    now.date().checked_add_signed(chrono::Duration::days(days))
                } else {
                    None
                },
                site: site.code,
            }
        })
        .collect();
    Ok(web::Json(DeadlineResponse { date, from, sites }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn shares_are_whole_minutes_without_float_loss() {
        assert_eq!(share(3, 60, 0.35), 63);
        assert_eq!(share(1, 100, 0.29), 29);
        assert_eq!(share(2, 480, 0.5), 480);
        assert_eq!(share(4, 480, 1.0), 1920);
        assert_eq!(share(-1, 480, 1.0), 0);
    }

    #[test]
    fn working_days_skip_weekends() {
        // Monday 4 to Sunday 10 March 2030: five working days.
        assert_eq!(working_days(d(2030, 3, 4), d(2030, 3, 10)), 5);
        assert_eq!(working_days(d(2030, 3, 9), d(2030, 3, 10)), 0);
        assert_eq!(nth_working_day(d(2030, 3, 4), 1), Some(d(2030, 3, 4)));
        assert_eq!(nth_working_day(d(2030, 3, 4), 6), Some(d(2030, 3, 11)));
        assert_eq!(nth_working_day(d(2030, 3, 9), 1), Some(d(2030, 3, 11)));
    }
}
