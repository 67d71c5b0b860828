//! Planning the reopening: the capacity of a site and its services, the plan that fills it,
//! and whether the consultations are seen again by a date. The arithmetic is
//! `domain::plan`'s; this reads what it needs, stores what a person commits, and audits it.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use crate::auth::Caller;
use crate::db::{self, planning::CapacityDay, DbConnection};
use crate::domain::appointment::Programme;
use crate::domain::plan::{self, Backlog, Outlook, Plan, ServiceDay, SiteDays, Waiting};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// A service's consultation slots, default operation length and lengths by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCapacity {
    pub code: String,
    pub consultation_slots: i32,
    pub operation_minutes: i32,
    pub durations: BTreeMap<String, i32>,
}

/// A site's capacity: its days, the days of their own from today on (by date), its services.
#[derive(Debug, Clone)]
pub struct SiteCapacity {
    pub site: String,
    pub programme: Option<Programme>,
    pub days: SiteDays,
    pub own_days: Vec<CapacityDay>,
    pub services: Vec<ServiceCapacity>,
}

fn site_days(
    conn: &mut DbConnection,
    code: &str,
    (from, until): (NaiveDate, NaiveDate),
    planning: &plan::Planning,
) -> AppResult<(db::sites::SiteRow, SiteDays, Vec<CapacityDay>)> {
    let site = db::sites::find_site(conn, code)?
        .ok_or_else(|| AppError::NotFound("no such site".into()))?;
    let own = db::planning::capacity_days(conn, code, from, until)?;
    let days = SiteDays::new(
        site.operating_rooms_open.unwrap_or(site.operating_rooms),
        db::planning::session_minutes(conn, code)?,
        site.programme,
        planning,
        own.iter()
            .map(|d| (d.day, (d.rooms_open, d.session_minutes)))
            .collect(),
    );
    Ok((site, days, own))
}

/// The expected lengths of the site's operations, by service and label.
fn durations(conn: &mut DbConnection, site: &str) -> AppResult<HashMap<(String, String), i32>> {
    Ok(db::planning::durations(conn, site)?
        .into_iter()
        .map(|d| ((d.service, d.label), d.minutes))
        .collect())
}

fn site_capacity(
    conn: &mut DbConnection,
    code: &str,
    planning: &plan::Planning,
) -> AppResult<SiteCapacity> {
    // Every day of its own from today on.
    let today = crate::domain::now().date();
    let until = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
    let (site, days, mut own_days) = site_days(conn, code, (today, until), planning)?;
    own_days.sort_by_key(|d| d.day);
    let mut lengths: HashMap<String, BTreeMap<String, i32>> = HashMap::new();
    for ((service, label), minutes) in durations(conn, code)? {
        lengths.entry(service).or_default().insert(label, minutes);
    }
    let services = db::planning::service_capacities(conn, code)?
        .into_iter()
        .map(|s| ServiceCapacity {
            durations: lengths.remove(&s.code).unwrap_or_default(),
            code: s.code,
            consultation_slots: s.consultation_slots,
            operation_minutes: s.operation_minutes,
        })
        .collect();
    Ok(SiteCapacity {
        site: site.code,
        programme: site.programme,
        days,
        own_days,
        services,
    })
}

/// A site's capacity (404 unknown).
pub async fn capacity(state: &AppState, code: String) -> AppResult<SiteCapacity> {
    let planning = state.settings.planning;
    state
        .db
        .read(move |conn| site_capacity(conn, &code, &planning))
        .await
}

/// Sets a site's session length (`None` keeps it) and days of their own, never more rooms
/// than the site has (422); audited as `site.capacity`.
pub async fn set_site_capacity(
    state: &AppState,
    caller: Caller,
    code: String,
    session_minutes: Option<i32>,
    days: Vec<CapacityDay>,
) -> AppResult<SiteCapacity> {
    let planning = state.settings.planning;
    state
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
            if let Some(minutes) = session_minutes {
                db::planning::set_session_minutes(conn, &code, minutes)?;
            }
            db::planning::set_capacity_days(conn, &code, &days)?;
            crate::audit::record(
                conn,
                &caller,
                "site.capacity",
                Some(&format!("site:{code}")),
                serde_json::json!({
                    "session_minutes": session_minutes,
                    "days": days.iter().map(|d| serde_json::json!({
                        "date": d.day, "rooms_open": d.rooms_open, "session_minutes": d.session_minutes,
                    })).collect::<Vec<_>>(),
                }),
            )?;
            site_capacity(conn, &code, &planning)
        })
        .await
}

/// Sets a service's consultation slots and default operation length (`None` keeps them) and
/// lengths by label; audited as `service.capacity`. 404 unknown.
pub async fn set_service_capacity(
    state: &AppState,
    caller: Caller,
    code: String,
    (slots, minutes): (Option<i32>, Option<i32>),
    lengths: Vec<(String, i32)>,
) -> AppResult<ServiceCapacity> {
    let planning = state.settings.planning;
    state
        .db
        .write(move |conn| {
            let site = db::sites::service_site(conn, &code)?
                .ok_or_else(|| AppError::NotFound("no such service".into()))?;
            db::planning::set_service_capacity(conn, &code, slots, minutes, crate::domain::now())?;
            db::planning::set_durations(conn, &code, &lengths)?;
            crate::audit::record(
                conn,
                &caller,
                "service.capacity",
                Some(&format!("service:{code}")),
                serde_json::json!({
                    "consultation_slots": slots, "operation_minutes": minutes,
                    "durations": lengths.iter().cloned().collect::<BTreeMap<String, i32>>(),
                }),
            )?;
            site_capacity(conn, &site, &planning)?
                .services
                .into_iter()
                .find(|s| s.code == code)
                .ok_or_else(|| AppError::NotFound("no such service".into()))
        })
        .await
}

/// A site's plan: the waiting appointments (contract order) beside their proposals.
#[derive(Debug, Clone)]
pub struct SitePlan {
    pub site: String,
    pub from: NaiveDate,
    pub until: NaiveDate,
    pub committed: bool,
    pub waiting: Vec<db::planning::PlanRow>,
    pub plan: Plan,
}

/// Plans the site's postponed appointments from `from` to `until` (one read, then in memory);
/// with `commit`, stores the proposed days (`proposed_at`; the status stays `postponed`),
/// audited as `site.plan`. 404 unknown site.
pub async fn plan(
    state: &AppState,
    caller: Caller,
    code: String,
    (from, until): (NaiveDate, NaiveDate),
    commit: bool,
) -> AppResult<SitePlan> {
    let planning = state.settings.planning;
    let site = code.clone();
    let (days, services, lengths, rows) = state
        .db
        .read(move |conn| {
            let (_, days, _) = site_days(conn, &code, (from, until), &planning)?;
            Ok::<_, AppError>((
                days,
                db::planning::service_capacities(conn, &code)?,
                durations(conn, &code)?,
                db::planning::postponed(conn, &code)?,
            ))
        })
        .await?;
    let services: Vec<ServiceDay> = services
        .into_iter()
        .map(|s| ServiceDay {
            code: s.code,
            consultation_slots: s.consultation_slots,
            operation_minutes: s.operation_minutes,
        })
        .collect();
    let waiting: Vec<Waiting> = rows
        .iter()
        .map(|r| Waiting {
            kind: r.kind,
            service: r.service_code.clone(),
            label: r.label.clone(),
            priority: r.priority,
            original_day: crate::domain::time::brussels(r.original_scheduled_at).date_naive(),
        })
        .collect();
    let plan = plan::plan(
        &days,
        &services,
        &lengths,
        &waiting,
        (from, until),
        &planning.deadlines,
    );
    if commit {
        let proposals: Vec<(String, Option<NaiveDate>)> = rows
            .iter()
            .zip(&plan.proposals)
            .map(|(r, p)| (r.id.clone(), p.day))
            .collect();
        let (site, planned, late) = (site.clone(), plan.planned(), plan.late());
        state
            .db
            .write(move |conn| {
                db::planning::set_proposed(conn, &site, &proposals)?;
                crate::audit::record(
                    conn,
                    &caller,
                    "site.plan",
                    Some(&format!("site:{site}")),
                    serde_json::json!({
                        "from": from, "until": until, "rows": proposals.len(),
                        "planned": planned, "late": late,
                    }),
                )?;
                Ok::<_, AppError>(())
            })
            .await?;
    }
    Ok(SitePlan {
        site,
        from,
        until,
        committed: commit,
        waiting: rows,
        plan,
    })
}

/// Whether each site sees its postponed consultations again by `date`, counting capacity
/// from `from`, and at the pace of the last seven days.
pub async fn deadline(
    state: &AppState,
    (from, date): (NaiveDate, NaiveDate),
) -> AppResult<Vec<(String, Outlook)>> {
    let now = crate::domain::now();
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
    Ok(sites
        .into_iter()
        .map(|site| {
            let left = |service: &str| {
                remaining
                    .iter()
                    .find(|r| r.site == site.code && r.service == service)
                    .map_or(0, |r| r.count)
            };
            let services: Vec<(i64, i64)> = slots
                .iter()
                .filter(|s| s.site == site.code)
                .map(|s| (left(&s.service), s.count))
                .collect();
            let here: i64 = remaining
                .iter()
                .filter(|r| r.site == site.code)
                .map(|r| r.count)
                .sum();
            // Consultations of a service the site no longer has: never placed.
            let orphans = here - services.iter().map(|s| s.0).sum::<i64>();
            let last_week = pace
                .iter()
                .find(|p| p.site == site.code)
                .map_or(0, |p| p.count);
            let backlog = Backlog { services, orphans };
            let outlook = plan::outlook(&backlog, (from, date), last_week, now.date());
            (site.code, outlook)
        })
        .collect())
}
