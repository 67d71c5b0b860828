//! The coordinators' crisis board: every site with its status, programme and backlog, reopening
//! a site, the call centre's switch, and the calls per day as an SVG chart.

use std::collections::HashMap;

use chrono::TimeZone;
use chrono_tz::Europe::Brussels;

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::i18n::{Texts, PROGRAMMES};
use super::{
    chart, flash, local, render, see_other, Chrome, ManageCallCentre, ManageSites, PageError,
    Signed, Submitted,
};
use crate::db;
use crate::domain::call::Bucket;
use crate::error::AppError;
use crate::routes::calls::{call_stats, centre_response, set_centre_status};
use crate::routes::sites::{reopen_site, ReopenSite};
use crate::startup::AppState;

/// At most this many days on the chart (the most recent).
const CHART_DAYS: usize = 92;

pub struct SiteView {
    pub code: String,
    pub name: String,
    pub open: bool,
    pub status: String,
    pub programme: String,
    pub rooms_open: String,
    pub rooms: i32,
    pub reopened_at: String,
    pub to_contact: i64,
    pub rescheduled: i64,
    pub cancelled: i64,
    /// To contact per priority 1 to 4.
    pub backlog: [i64; 4],
}

#[derive(Template)]
#[template(path = "board.html", config = "src/web/askama.toml")]
struct BoardPage {
    chrome: Chrome,
    t: &'static Texts,
    sites: Vec<SiteView>,
    totals: [i64; 5],
    programmes: Vec<(&'static str, &'static str)>,
    centre_active: bool,
    centre_status: String,
    centre_since: String,
    calls_total: i64,
    chart: String,
    /// `(day, calls)` of the chart, for its table.
    days: Vec<(String, i64)>,
}

#[derive(Deserialize)]
pub struct BoardQuery {
    done: Option<String>,
}

/// `GET /board`.
pub async fn page(
    signed: Signed<ManageSites>,
    state: web::Data<AppState>,
    query: web::Query<BoardQuery>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let (lang, t) = (session.lang, session.t());
    let err = |e| PageError::App(e, lang);
    let (sites, by_status, backlog, centre, (first_call, last_call)) = state
        .db
        .read(|conn| {
            Ok::<_, AppError>((
                db::sites::list_sites(conn, None, 1000)?,
                db::sites::postponed_by_status(conn)?,
                db::sites::backlog_by_priority(conn)?,
                centre_response(conn)?,
                db::calls::hour_range(conn)?,
            ))
        })
        .await
        .map_err(err)?;
    // The chart's days: from the first call's Brussels day, but CHART_DAYS at most, ending
    // with the last call's (a call logged with a wrong year must not break the board).
    let days_from = first_call.zip(last_call).and_then(|(first, last)| {
        let day = |t| crate::domain::time::brussels(t).date_naive();
        let first_day = day(first).max(day(last) - chrono::Duration::days(CHART_DAYS as i64 - 1));
        Brussels
            .from_local_datetime(&first_day.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|t| t.naive_utc())
    });
    let stats = call_stats(&state, days_from, None, Bucket::Day)
        .await
        .map_err(err)?;
    let mut counts: HashMap<(String, String), i64> = HashMap::new();
    for (site, status, n) in by_status {
        counts.insert((site, status), n);
    }
    let mut queues: HashMap<String, [i64; 4]> = HashMap::new();
    for (site, priority, n) in backlog {
        if let Some(slot) = usize::try_from(priority - 1).ok().filter(|p| *p < 4) {
            queues.entry(site).or_default()[slot] += n;
        }
    }
    let count = |site: &str, status: &str| {
        counts
            .get(&(site.to_string(), status.to_string()))
            .copied()
            .unwrap_or(0)
    };
    let mut totals = [0i64; 5];
    // In the order the sites reopen (the crisis plan), then by code.
    let mut sites = sites;
    sites.sort_by_key(|s| (s.reopening_rank.unwrap_or(i32::MAX), s.code.clone()));
    let sites: Vec<SiteView> = sites
        .into_iter()
        .map(|s| {
            let backlog = queues.get(&s.code).copied().unwrap_or_default();
            for (i, n) in backlog.iter().enumerate() {
                totals[i] += n;
            }
            totals[4] += backlog.iter().sum::<i64>();
            SiteView {
                open: s.status == "open",
                status: t.word(&s.status).to_string(),
                programme: s
                    .programme
                    .as_deref()
                    .map(|p| t.word(p).to_string())
                    .unwrap_or_default(),
                rooms_open: match (s.status.as_str(), s.operating_rooms_open) {
                    ("open", Some(n)) => format!("{n} / {}", s.operating_rooms),
                    ("open", None) => format!("{0} / {0}", s.operating_rooms),
                    _ => format!("0 / {}", s.operating_rooms),
                },
                rooms: s.operating_rooms,
                reopened_at: s.reopened_at.map(local).unwrap_or_default(),
                to_contact: backlog.iter().sum(),
                rescheduled: count(&s.code, "rescheduled"),
                cancelled: count(&s.code, "cancelled"),
                backlog,
                code: s.code,
                name: s.name,
            }
        })
        .collect();
    let mut days: Vec<(String, i64)> = stats
        .series
        .iter()
        .map(|p| {
            let label = chrono::DateTime::parse_from_rfc3339(&p.start)
                .map(|d| d.format("%d/%m/%Y").to_string())
                .unwrap_or_else(|_| p.start.clone());
            (label, p.count)
        })
        .collect();
    if days.len() > CHART_DAYS {
        days.drain(..days.len() - CHART_DAYS);
    }
    let short: Vec<(String, i64)> = days
        .iter()
        .map(|(d, n)| (d.get(..5).unwrap_or(d).to_string(), *n))
        .collect();
    let page = BoardPage {
        chrome: Chrome::new(
            &session,
            t.board_title,
            "/board",
            flash(t, query.done.as_deref()),
        ),
        t,
        sites,
        totals,
        programmes: PROGRAMMES.iter().map(|p| (*p, t.word(p))).collect(),
        centre_active: centre.status == "active",
        centre_status: t.word(&centre.status).to_string(),
        centre_since: local(centre.changed_at.naive_utc()),
        calls_total: centre.calls_total,
        chart: chart::bars(t.calls_per_day, &short),
        days,
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct ReopenForm {
    site: String,
    programme: String,
    operating_rooms_open: Option<String>,
    notify: Option<String>,
}

/// `POST /board/reopen`: the API's reopening, from the site's row.
pub async fn reopen(
    sent: Submitted<ManageSites, ReopenForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let rooms = form
        .operating_rooms_open
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            r.trim().parse::<i32>().map_err(|_| {
                PageError::App(
                    AppError::validation("operating_rooms_open", "must be a whole number"),
                    lang,
                )
            })
        })
        .transpose()?;
    let body = ReopenSite {
        programme: form.programme,
        operating_rooms_open: rooms,
        notify_patients: form.notify.is_some(),
    };
    reopen_site(&state, session.caller, form.site, body)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    Ok(see_other("/board?done=reopened"))
}

#[derive(Deserialize)]
pub struct CentreForm {
    status: String,
}

/// `POST /board/call-centre`: on or off.
pub async fn call_centre(
    sent: Submitted<ManageCallCentre, CentreForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    set_centre_status(&state, session.caller, form.status)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    Ok(see_other("/board?done=centre"))
}
