//! The coordinators' crisis board: every site with its status, programme and backlog, reopening
//! a site, the call centre's switch, and the calls per day as an SVG chart.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    chart, flash, local, render, see_other, Chrome, ManageCallCentre, ManageSites, PageError,
    Signed, Submitted,
};
use crate::db::sites::SiteRow;
use crate::domain::appointment::{Programme, Status};
use crate::domain::call::CentreStatus;
use crate::domain::call::{busiest_days, per_day as calls_per_day, Bucket};
use crate::domain::site::SiteStatus;
use crate::error::AppError;
use crate::i18n::{Texts, PROGRAMMES};
use crate::service::sites;
use crate::service::{callbacks, calls, telephony};
use crate::state::AppState;

/// Days on the chart when the coordinator chose none: a quarter.
const CHART_DAYS: i64 = 92;
/// The longest period a coordinator may chart: a year, one bar a day.
const PERIOD_DAYS_MAX: i64 = 366;

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
    /// The chart's days, for its table: calls logged and the telephone system's figures.
    days: Vec<DayFigures>,
    /// The telephone system's inbound calls over the chart's period.
    phone: Option<telephony::Statistics>,
    /// Callbacks: open now, the oldest one's wait, the median time to reach a patient.
    callbacks: Option<String>,
    /// The chart's period for the form's date fields (`YYYY-MM-DD`).
    chart_from: String,
    chart_to: String,
}

#[derive(Deserialize)]
pub struct BoardQuery {
    done: Option<String>,
    /// The chart's first and last days (`YYYY-MM-DD`), when the coordinator chose them.
    from: Option<String>,
    to: Option<String>,
    /// What a reopening did (codes and counts only).
    site: Option<String>,
    to_contact: Option<i64>,
    queued: Option<i64>,
}

impl BoardQuery {
    /// After a reopening: the site, the appointments to rebook and the emails that left.
    fn summary(&self, t: &'static Texts, sites: &[SiteView]) -> Option<String> {
        if self.done.as_deref() != Some("reopened") {
            return None;
        }
        let (code, n, queued) = (self.site.as_deref()?, self.to_contact?, self.queued?);
        let site = sites
            .iter()
            .find(|s| s.code == code)
            .map_or_else(|| code.to_string(), |s| format!("{} ({code})", s.name));
        let emails = if queued > 0 {
            t.emails_queued.replace("{n}", &queued.to_string())
        } else {
            t.no_email_sent.to_string()
        };
        Some(
            t.reopened_summary
                .replace("{site}", &site)
                .replace("{n}", &n.to_string())
                .replace("{emails}", &emails),
        )
    }

    /// The chart's period, if chosen: both days, in order, a year at most.
    fn period(&self) -> Result<Option<(chrono::NaiveDate, chrono::NaiveDate)>, AppError> {
        let day = |field: &str, raw: &Option<String>| {
            raw.as_deref()
                .filter(|r| !r.trim().is_empty())
                .map(|r| {
                    chrono::NaiveDate::parse_from_str(r.trim(), "%Y-%m-%d")
                        .map_err(|_| AppError::validation(field, "must be a date"))
                })
                .transpose()
        };
        match (day("from", &self.from)?, day("to", &self.to)?) {
            (Some(from), Some(to)) if from <= to && (to - from).num_days() < PERIOD_DAYS_MAX => {
                Ok(Some((from, to)))
            }
            (Some(_), Some(_)) => Err(AppError::validation(
                "to",
                "must be on or after the first day, and within a year of it",
            )),
            (Some(from), None) => Ok(Some((from, from + chrono::Duration::days(CHART_DAYS - 1)))),
            (None, Some(to)) => Ok(Some((to - chrono::Duration::days(CHART_DAYS - 1), to))),
            (None, None) => Ok(None),
        }
    }
}

/// The sites in the order they reopen (the crisis plan), then by code, with their figures;
/// and the totals of their backlogs (four priorities, then all).
fn site_views(t: &'static Texts, o: &sites::Overview) -> (Vec<SiteView>, [i64; 5]) {
    let count = |site: &str, status: Status| {
        o.by_status
            .iter()
            .filter(|c| c.site == site && c.status == status)
            .map(|c| c.count)
            .sum::<i64>()
    };
    let mut queues: HashMap<&str, [i64; 4]> = HashMap::new();
    for c in &o.backlog {
        if let Some(slot) = usize::try_from(c.priority - 1).ok().filter(|p| *p < 4) {
            queues.entry(&c.site).or_default()[slot] += c.count;
        }
    }
    let mut totals = [0i64; 5];
    let mut rows: Vec<&SiteRow> = o.sites.iter().collect();
    rows.sort_by_key(|s| (s.reopening_rank.unwrap_or(i32::MAX), s.code.clone()));
    let views = rows
        .into_iter()
        .map(|s| {
            let backlog = queues.get(s.code.as_str()).copied().unwrap_or_default();
            for (i, n) in backlog.iter().enumerate() {
                totals[i] += n;
            }
            totals[4] += backlog.iter().sum::<i64>();
            SiteView {
                open: s.status == SiteStatus::Open,
                status: t.word(s.status.as_str()).to_string(),
                programme: s
                    .programme
                    .map(|p| t.word(p.as_str()).to_string())
                    .unwrap_or_default(),
                rooms_open: match (s.status, s.operating_rooms_open) {
                    (SiteStatus::Open, Some(n)) => format!("{n} / {}", s.operating_rooms),
                    (SiteStatus::Open, None) => format!("{0} / {0}", s.operating_rooms),
                    _ => format!("0 / {}", s.operating_rooms),
                },
                rooms: s.operating_rooms,
                reopened_at: s.reopened_at.map(local).unwrap_or_default(),
                to_contact: backlog.iter().sum(),
                rescheduled: count(&s.code, Status::Rescheduled),
                cancelled: count(&s.code, Status::Cancelled),
                backlog,
                code: s.code.clone(),
                name: s.name.clone(),
            }
        })
        .collect();
    (views, totals)
}

/// A day of the chart: the calls agents logged, and the inbound calls the telephone system
/// reported (received, answered, missed).
struct DayFigures {
    /// `dd/mm/yyyy`.
    day: String,
    calls: i64,
    phone: [i64; 3],
}

/// Each day of the period with its calls.
fn chart_days(
    period: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    per_day: &std::collections::BTreeMap<chrono::NaiveDate, i64>,
    phone: Option<&telephony::Statistics>,
) -> Vec<DayFigures> {
    let phone_on = |d: chrono::NaiveDate| {
        phone
            .and_then(|s| s.series.iter().find(|p| p.start.date_naive() == d))
            .map_or([0; 3], |p| [p.received, p.answered, p.missed])
    };
    period
        .map(|(from, to)| {
            from.iter_days()
                .take_while(|d| *d <= to)
                .map(|d| DayFigures {
                    day: d.format("%d/%m/%Y").to_string(),
                    calls: *per_day.get(&d).unwrap_or(&0),
                    phone: phone_on(d),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// "12 rappels ouverts, le plus ancien depuis 3 h 05 ; patients joints en 2 h 10 (médiane)":
/// the callbacks open now, and the median from the missed call to the patient reached over
/// the callbacks reached since the chart's first day. None without any callback.
async fn callback_summary(
    state: &AppState,
    t: &'static Texts,
    period: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
) -> Result<Option<String>, AppError> {
    let now = crate::domain::now();
    let since = period.map_or(now - chrono::Duration::days(callbacks::MEDIAN_DAYS), |p| {
        crate::domain::time::brussels_midnight(p.0)
    });
    let f = callbacks::figures(state, now, since).await?;
    if f.open == 0 && f.reached_median_seconds.is_none() {
        return Ok(None);
    }
    let span = |seconds: f64| {
        let minutes = (seconds / 60.0).round() as i64;
        match minutes / 60 {
            hours if hours >= 48 => format!("{} {}", hours / 24, t.days_short),
            hours => format!("{hours} h {:02}", minutes % 60),
        }
    };
    let mut text = t
        .callbacks_open
        .replace("{n}", &f.open.to_string())
        .replace("{oldest}", &span(f.oldest_open_seconds));
    match f.reached_median_seconds {
        Some(median) => text.push_str(&t.callbacks_reached.replace("{median}", &span(median))),
        None => text.push('.'),
    }
    Ok(Some(text))
}

/// The telephone system's figures for the chart's days (Brussels midnight to midnight).
async fn phone_figures(
    state: &AppState,
    period: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
) -> Result<Option<telephony::Statistics>, AppError> {
    let Some((from, to)) = period else {
        return Ok(None);
    };
    let midnight = |d: chrono::NaiveDate| crate::domain::time::brussels_midnight(d);
    let stats = telephony::stats(
        state,
        Some(midnight(from)),
        Some(midnight(to + chrono::Duration::days(1))),
        Bucket::Day,
    )
    .await?;
    Ok((stats.received > 0).then_some(stats))
}

/// `GET /board`.
pub async fn page(
    signed: Signed<ManageSites>,
    state: web::Data<AppState>,
    query: web::Query<BoardQuery>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let (lang, t) = (session.lang, session.t());
    let o = sites::overview(&state)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    let hours: Vec<_> = o.hours.iter().map(|h| (h.hour, h.calls)).collect();
    let per_day = calls_per_day(&hours);
    // The days the coordinator chose, else the busiest stretch of the calls.
    let period = query
        .period()
        .map_err(|e| PageError::App(e, lang))?
        .or_else(|| busiest_days(&per_day, CHART_DAYS));
    let (sites, totals) = site_views(t, &o);
    let phone = phone_figures(&state, period)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    let days = chart_days(period, &per_day, phone.as_ref());
    let callbacks = callback_summary(&state, t, period)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    let short: Vec<(String, i64)> = days
        .iter()
        .map(|d| (d.day.get(..5).unwrap_or(&d.day).to_string(), d.calls))
        .collect();
    let summary = query.summary(t, &sites);
    let page = BoardPage {
        chrome: Chrome::new(
            &session,
            t.board_title,
            "/board",
            summary.or_else(|| flash(t, query.done.as_deref())),
        ),
        t,
        sites,
        totals,
        programmes: PROGRAMMES.iter().map(|p| (*p, t.word(p))).collect(),
        centre_active: o.centre.status == CentreStatus::Active,
        centre_status: t.word(o.centre.status.as_str()).to_string(),
        centre_since: local(o.centre.changed_at),
        calls_total: o.centre.calls_total,
        chart: chart::bars(t.calls_per_day, &short),
        days,
        phone,
        callbacks,
        chart_from: period.map(|p| p.0.to_string()).unwrap_or_default(),
        chart_to: period.map(|p| p.1.to_string()).unwrap_or_default(),
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct ReopenForm {
    site: String,
    programme: String,
    operating_rooms_open: Option<String>,
    notify: Option<String>,
    /// `yes` once the person has seen what the reopening does.
    confirm: Option<String>,
}

impl ReopenForm {
    fn rooms(&self) -> Result<Option<i32>, AppError> {
        self.operating_rooms_open
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                r.trim().parse::<i32>().map_err(|_| {
                    AppError::validation("operating_rooms_open", "must be a whole number")
                })
            })
            .transpose()
    }
}

/// What a confirmation page asks.
enum Ask {
    Reopen {
        question: String,
        site: String,
        programme: &'static str,
        programme_word: &'static str,
        rooms: i32,
        rooms_total: i32,
        to_contact: i64,
        emails: i64,
        send_emails: String,
    },
    CentreOff {
        what: String,
    },
}

#[derive(Template)]
#[template(path = "board_confirm.html", config = "src/web/askama.toml")]
struct ConfirmPage {
    chrome: Chrome,
    t: &'static Texts,
    ask: Ask,
}

/// `GET /board/reopen?site=&programme=&operating_rooms_open=`: what reopening the site would
/// do (the appointments to rebook, the emails that could go, the programme and rooms), to
/// confirm; emailing the patients is a choice made here, unticked. Nothing changes.
pub async fn confirm_reopen(
    signed: Signed<ManageSites>,
    state: web::Data<AppState>,
    form: web::Query<ReopenForm>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let (lang, t) = (session.lang, session.t());
    let err = |e| PageError::App(e, lang);
    let form = form.into_inner();
    let programme = Programme::parse(&form.programme)
        .map_err(|e| err(AppError::validation("programme", e.0)))?;
    let rooms = form.rooms().map_err(err)?;
    let preview = sites::reopen_preview(&state, form.site.clone())
        .await
        .map_err(err)?;
    let rooms_total = preview.site.operating_rooms;
    let rooms = rooms.unwrap_or(rooms_total);
    if !(0..=rooms_total).contains(&rooms) {
        return Err(err(AppError::validation(
            "operating_rooms_open",
            format!("must be between 0 and the site's {rooms_total} rooms"),
        )));
    }
    let name = format!("{} ({})", preview.site.name, preview.site.code);
    let page = ConfirmPage {
        chrome: Chrome::new(&session, t.board_title, "/board", None),
        t,
        ask: Ask::Reopen {
            question: t.reopen_question.replace("{site}", &name),
            site: preview.site.code,
            programme: programme.as_str(),
            programme_word: t.word(programme.as_str()),
            rooms,
            rooms_total,
            to_contact: preview.to_contact,
            emails: preview.emails,
            send_emails: t.send_emails.replace("{n}", &preview.emails.to_string()),
        },
    };
    render(&page)
}

/// `POST /board/reopen` (`confirm=yes`, from the confirmation page): the API's reopening,
/// then the board says what it did.
pub async fn reopen(
    sent: Submitted<ManageSites, ReopenForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let rooms = form.rooms().map_err(|e| PageError::App(e, lang))?;
    if form.confirm.as_deref() != Some("yes") {
        return Err(PageError::App(
            AppError::validation("confirm", session.t().not_confirmed),
            lang,
        ));
    }
    let programme = Programme::parse(&form.programme)
        .map_err(|e| PageError::App(AppError::validation("programme", e.0), lang))?;
    let notify = form.notify.is_some();
    let done = sites::reopen(&state, session.caller, form.site, programme, rooms, notify)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    Ok(see_other(&format!(
        "/board?done=reopened&site={}&to_contact={}&queued={}#site-{}",
        done.site.code, done.to_contact, done.notifications_queued, done.site.code
    )))
}

#[derive(Deserialize)]
pub struct CentreForm {
    status: String,
    /// `yes` once the person has seen what switching off does.
    confirm: Option<String>,
}

/// `GET /board/call-centre?status=deactivated`: what switching the call centre off does, to
/// confirm. Nothing changes.
pub async fn confirm_call_centre(
    signed: Signed<ManageCallCentre>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let (lang, t) = (session.lang, session.t());
    let centre = calls::centre(&state)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    let page = ConfirmPage {
        chrome: Chrome::new(&session, t.board_title, "/board", None),
        t,
        ask: Ask::CentreOff {
            what: t
                .centre_off_what
                .replace("{n}", &centre.calls_total.to_string()),
        },
    };
    render(&page)
}

/// `POST /board/call-centre`: on, or off once confirmed.
pub async fn call_centre(
    sent: Submitted<ManageCallCentre, CentreForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let status = CentreStatus::parse(&form.status)
        .map_err(|e| PageError::App(AppError::validation("status", e.0), lang))?;
    if status == CentreStatus::Deactivated && form.confirm.as_deref() != Some("yes") {
        return Err(PageError::App(
            AppError::validation("confirm", session.t().not_confirmed),
            lang,
        ));
    }
    calls::set_centre(&state, session.caller, status)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    Ok(see_other("/board?done=centre#call-centre"))
}
