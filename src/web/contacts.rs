//! The secretaries' page: a site's contact list in the contract's order, one row per
//! appointment with its attempts, an attempt or a new date recorded from the row, downloads,
//! and a print stylesheet for the paper fallback.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::{
    day, flash, local, render, see_other, ChangeAppointments, Chrome, ContactLists, PageError,
    Session, Signed, Submitted,
};
use crate::db::contact_list::ContactRow;
use crate::domain::answer::Answer;
use crate::domain::appointment::{ContactOutcome, Kind, Status};
use crate::domain::time::parse_instant_or_local;
use crate::error::AppError;
use crate::i18n::{Texts, CONTACT_OUTCOMES};
use crate::service::appointments::{self, NewAttempt};
use crate::service::contact_lists::{self, Choices, Format, ListPage};
use crate::state::AppState;

/// Rows per page: a morning's calls for one secretary; the download has them all.
const PAGE_ROWS: i64 = 100;
/// The most rows a printed list has: about 150 sheets. Longer lists are downloaded (or
/// printed a service at a time); the page says so.
const PRINT_ROWS: i64 = 3_000;
/// The last page number asked for that is taken as it is (10 million rows).
const MAX_PAGE: i64 = 100_000;

/// The list shown: `?site=&service=&kind=&page=` (codes only, never personal data).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    site: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    service: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    page: i64,
    /// Only the rows whose patient asked something by email.
    #[serde(default, skip_serializing_if = "is_false")]
    requests: bool,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ListQuery {
    fn to_query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    fn with_page(&self, page: i64) -> String {
        ListQuery {
            page,
            ..self.clone()
        }
        .to_query()
    }

    /// Back to this list after a form, read from the form's `back` field: only these fields
    /// survive the trip.
    fn from_back(back: &str) -> ListQuery {
        serde_urlencoded::from_str(back).unwrap_or_default()
    }
}

pub struct Row {
    pub id: String,
    pub priority: i32,
    pub kind: String,
    pub service: String,
    pub label: String,
    pub original: String,
    pub patient: String,
    pub born: String,
    pub phone: String,
    pub email: String,
    pub language: String,
    pub attempts: i32,
    pub last_outcome: String,
    pub last_attempt: String,
    /// The day a committed plan proposes, to confirm by phone.
    pub proposed: String,
    /// What the patient asked by email (another date, a call), in words, until reached.
    pub request: String,
    /// The date booked now, when it is not the original one (a rescheduled appointment).
    pub booked: String,
    /// The next row's id, for the forms: where to say what was done if this row leaves.
    pub next: String,
    /// What the secretary just did, said just above this row (a row that left the list) or
    /// just below it.
    pub notice_before: Option<String>,
    pub notice_after: Option<String>,
}

fn row(t: &'static Texts, r: ContactRow) -> Row {
    // The answer to an email is recorded as an attempt "declined" (not reached): the row says
    // what the patient asked instead, and when.
    let answered = r.patient_request.is_some() && r.last_outcome == Some(ContactOutcome::Declined);
    let last_attempt = r.last_attempt_at.map(local).unwrap_or_default();
    Row {
        kind: t.word(r.kind.as_str()).to_string(),
        last_outcome: match (answered, r.last_outcome) {
            (true, _) => t.answered_by_email.replace("{date}", &last_attempt),
            (false, outcome) => outcome
                .map(|o| t.word(o.as_str()).to_string())
                .unwrap_or_default(),
        },
        last_attempt: if answered {
            String::new()
        } else {
            last_attempt
        },
        proposed: r.proposed_at.map(day).unwrap_or_default(),
        booked: if r.status == Status::Postponed {
            String::new()
        } else {
            local(r.scheduled_at)
        },
        request: match r.patient_request {
            Some(Answer::CallBack) => t.request_call_back.to_string(),
            Some(Answer::OtherDate) => t.request_other_date.to_string(),
            Some(other) => t.word(other.as_str()).to_string(),
            None => String::new(),
        },
        original: local(r.original_scheduled_at),
        patient: format!("{}, {}", r.patient_last_name, r.patient_first_name),
        born: day(r.birth_date),
        id: r.appointment_id,
        priority: r.priority,
        service: r.service,
        label: r.label,
        phone: r
            .phone
            .as_deref()
            .map(super::phone_for_people)
            .unwrap_or_default(),
        email: r.email.unwrap_or_default(),
        language: super::language_name(r.language).to_string(),
        attempts: r.attempts,
        next: String::new(),
        notice_before: None,
        notice_after: None,
    }
}

/// Puts `notice` beside the row the secretary acted on (`at`): below it if it is still on the
/// page, else above the row that took its place (`next`). `false` if neither is on this page.
fn place_notice(rows: &mut [Row], at: &str, next: &str, notice: String) -> bool {
    if let Some(row) = rows.iter_mut().find(|r| r.id == at) {
        row.notice_after = Some(notice);
        return true;
    }
    if let Some(row) = rows.iter_mut().find(|r| !next.is_empty() && r.id == next) {
        row.notice_before = Some(notice);
        return true;
    }
    false
}

/// A site's services for the filter: `(site code, site name, [(code, name, selected)])`.
type SiteServices = (String, String, Vec<(String, String, bool)>);

#[derive(Template)]
#[template(path = "contacts.html", config = "src/web/askama.toml")]
struct ContactsPage {
    chrome: Chrome,
    t: &'static Texts,
    /// `(code, name, selected)`.
    sites: Vec<(String, String, bool)>,
    /// The services by site, so that the page says which services belong to which site even
    /// without its script.
    services: Vec<SiteServices>,
    kinds: Vec<(&'static str, &'static str, bool)>,
    outcomes: Vec<(&'static str, &'static str)>,
    chosen: bool,
    site_name: String,
    total: i64,
    rows: Vec<Row>,
    back: String,
    export_query: String,
    previous: Option<String>,
    next: Option<String>,
    printed_at: String,
    /// Rows whose patient asked something by email, and the links to them or back.
    requests_total: i64,
    requests_only: bool,
    requests_query: String,
    whole_query: String,
}

/// The codes that choose a list, as a query string gives them.
#[derive(Deserialize)]
pub struct Filter {
    #[serde(default)]
    site: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    kind: String,
}

/// `?site=&service=&kind=&page=&done=`, read leniently: a page that is not a number is the
/// first. (Text fields only: serde_urlencoded cannot read a number through `flatten`.)
#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(flatten)]
    filter: Filter,
    page: Option<String>,
    requests: Option<String>,
    done: Option<String>,
    /// The row a form acted on, and the one after it (ids): where to say it was done.
    at: Option<String>,
    next: Option<String>,
}

impl PageQuery {
    fn list(&self) -> ListQuery {
        ListQuery {
            site: self.filter.site.clone(),
            service: self.filter.service.clone(),
            kind: self.filter.kind.clone(),
            page: self
                .page
                .as_deref()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0),
            requests: self
                .requests
                .as_deref()
                .is_some_and(|r| matches!(r, "true" | "1" | "yes")),
        }
    }
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `GET /contacts`: the filter, and the chosen list a page at a time (reading it is audited).
/// A secretary bound to one service gets her list at once.
pub async fn page(
    signed: Signed<ContactLists>,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let lang = session.lang;
    let q = query.into_inner();
    let mut list = q.list();
    let kind = some(&list.kind)
        .map(|k| Kind::parse(&k))
        .transpose()
        .map_err(|e| PageError::App(AppError::validation("kind", e.0), lang))?;
    let caller = session.caller.clone();
    let choices = contact_lists::choices(&state, caller.clone())
        .await
        .map_err(|e| PageError::App(e, lang))?;
    // A secretary of one service sees its list at once.
    if list.site.is_empty() && caller.role.is_service_scoped() {
        if let [only] = choices.services.as_slice() {
            list.site = only.site_code.clone();
            list.service = only.code.clone();
        }
    }
    list.page = list.page.clamp(0, MAX_PAGE);
    let listed = match some(&list.site) {
        None => ListPage {
            total: 0,
            requests: 0,
            rows: Vec::new(),
        },
        Some(site) => contact_lists::page(
            &state,
            caller,
            contact_lists::PageRequest {
                site,
                service: some(&list.service),
                kind,
                requests_only: list.requests,
                page: list.page,
                rows: PAGE_ROWS,
            },
        )
        .await
        .map_err(|e| PageError::App(e, lang))?,
    };
    render(&contacts_page(&session, &q, list, choices, listed))
}

/// The services by site, in the sites' order; only the chosen site's once one is chosen.
fn services_by_site(list: &ListQuery, choices: &Choices) -> Vec<SiteServices> {
    choices
        .sites
        .iter()
        .filter(|site| list.site.is_empty() || site.code == list.site)
        .map(|site| {
            let of_site: Vec<(String, String, bool)> = choices
                .services
                .iter()
                .filter(|s| s.site_code == site.code)
                .map(|s| (s.code.clone(), s.name.clone(), s.code == list.service))
                .collect();
            (site.code.clone(), site.name.clone(), of_site)
        })
        .filter(|(_, _, of_site)| !of_site.is_empty())
        .collect()
}

fn contacts_page(
    session: &Session,
    q: &PageQuery,
    list: ListQuery,
    choices: Choices,
    listed: ListPage,
) -> ContactsPage {
    let t = session.t();
    let page_no = list.page;
    let site_name = choices
        .sites
        .iter()
        .find(|s| s.code == list.site)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let shown = i64::try_from(listed.rows.len()).unwrap_or(0);
    let mut rows: Vec<Row> = listed.rows.into_iter().map(|r| row(t, r)).collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    for (row, next) in rows.iter_mut().zip(ids.iter().skip(1)) {
        row.next = next.clone();
    }
    // What a form just did: beside its row, else on top of the page.
    let mut top = flash(t, q.done.as_deref());
    if let (Some(notice), Some(at)) = (top.clone(), q.at.as_deref()) {
        if place_notice(&mut rows, at, q.next.as_deref().unwrap_or(""), notice) {
            top = None;
        }
    }
    let query_of = |page: i64, requests: bool| {
        ListQuery {
            page,
            requests,
            ..list.clone()
        }
        .to_query()
    };
    ContactsPage {
        chrome: Chrome::new(session, t.contacts_title, "/contacts", top),
        t,
        services: services_by_site(&list, &choices),
        sites: choices
            .sites
            .into_iter()
            .map(|s| (s.code.clone(), s.name, s.code == list.site))
            .collect(),
        kinds: ["operation", "consultation"]
            .into_iter()
            .map(|k| (k, t.word(k), k == list.kind))
            .collect(),
        outcomes: CONTACT_OUTCOMES.iter().map(|c| (*c, t.word(c))).collect(),
        chosen: !list.site.is_empty(),
        site_name,
        total: listed.total,
        rows,
        back: list.to_query(),
        export_query: query_of(0, false),
        previous: (page_no > 0).then(|| list.with_page(page_no - 1)),
        next: (page_no * PAGE_ROWS + shown < listed.total).then(|| list.with_page(page_no + 1)),
        printed_at: local(crate::domain::now()),
        requests_total: listed.requests,
        requests_only: list.requests,
        requests_query: query_of(0, true),
        whole_query: query_of(0, false),
    }
}

/// Back to the list after a form, saying what was done beside the row it was done to (`at`,
/// or `next` if the row left the list): ids and codes only in the URL.
fn back_to(back: &str, done: &str, at: &str, next: &str) -> HttpResponse {
    let list = ListQuery::from_back(back);
    let query = list.to_query();
    let sep = if query.is_empty() { "" } else { "&" };
    let ids = serde_urlencoded::to_string([("at", at), ("next", next)]).unwrap_or_default();
    see_other(&format!("/contacts?{query}{sep}done={done}&{ids}#done"))
}

#[derive(Deserialize)]
pub struct AttemptForm {
    appointment_id: String,
    outcome: String,
    note: Option<String>,
    #[serde(default)]
    back: String,
    /// The row after this one on the page (where to say it was done if this one leaves).
    #[serde(default)]
    next: String,
}

/// `POST /contacts/attempt`: a phone attempt and its outcome; `reached` takes the row off the
/// list.
pub async fn attempt(
    sent: Submitted<ChangeAppointments, AttemptForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let mut f = crate::domain::Faults::default();
    let outcome = f.check("outcome", ContactOutcome::parse(&form.outcome));
    let note = f.check_opt(
        "note",
        form.note.as_deref().filter(|n| !n.trim().is_empty()),
        crate::domain::call::parse_notes,
    );
    let attempt = f
        .finish((|| {
            Some(NewAttempt {
                channel: crate::domain::appointment::Channel::Phone,
                outcome: outcome?,
                note: note?.flatten(),
            })
        })())
        .map_err(|faults| PageError::App(faults.into(), lang))?;
    let at = form.appointment_id.clone();
    appointments::attempt(&state, session.caller, form.appointment_id, attempt)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    Ok(back_to(&form.back, "attempt", &at, &form.next))
}

#[derive(Deserialize)]
pub struct RescheduleForm {
    appointment_id: String,
    /// `2022-06-13T10:00` from the date-time field: Brussels time.
    scheduled_at: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    next: String,
}

/// `POST /contacts/reschedule`: the new date agreed on the phone (its email is queued).
pub async fn reschedule(
    sent: Submitted<ChangeAppointments, RescheduleForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let Submitted { session, form, .. } = sent;
    let lang = session.lang;
    let at = date_field(&form.scheduled_at)
        .map_err(|e| PageError::App(AppError::validation("scheduled_at", e.0), lang))?;
    let id = form.appointment_id.clone();
    appointments::reschedule(&state, session.caller, form.appointment_id, at)
        .await
        .map_err(|e| PageError::App(e, lang))?;
    Ok(back_to(&form.back, "rescheduled", &id, &form.next))
}

/// A date-time field's value (`2022-06-13T10:00`, what browsers send), in Brussels time,
/// in the years 2000 to 2999: `parse_instant_or_local` alone would take `+262142-12-31T23:59`
/// (and email the patient that date).
fn date_field(raw: &str) -> Result<chrono::NaiveDateTime, crate::domain::Invalid> {
    let raw = raw.trim();
    let shaped = raw.len() == 16
        && raw.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && matches!(raw.as_bytes()[0], b'2')
        && raw.as_bytes()[10] == b'T';
    if !shaped {
        return Err(crate::domain::Invalid(
            "must be a date and time such as 2022-06-13T10:00".into(),
        ));
    }
    parse_instant_or_local(raw)
}

#[derive(Template)]
#[template(path = "contacts_print.html", config = "src/web/askama.toml")]
struct PrintPage {
    chrome: Chrome,
    t: &'static Texts,
    heading: String,
    rows: Vec<Row>,
    printed_at: String,
    too_long: Option<String>,
    back: String,
}

/// `GET /contacts/print?site=&service=&kind=`: the whole list (up to [`PRINT_ROWS`]) compact
/// enough for a desk, with page numbers, for the day the computers fail. Audited as an export.
pub async fn print(
    signed: Signed<ContactLists>,
    state: web::Data<AppState>,
    query: web::Query<Filter>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let (lang, t) = (session.lang, session.t());
    let err = |e| PageError::App(e, lang);
    let q = query.into_inner();
    let kind = some(&q.kind)
        .map(|k| Kind::parse(&k))
        .transpose()
        .map_err(|e| err(AppError::validation("kind", e.0)))?;
    let caller = session.caller.clone();
    let p = contact_lists::printed(
        &state,
        caller,
        q.site.clone(),
        some(&q.service),
        kind,
        PRINT_ROWS,
    )
    .await
    .map_err(err)?;
    let (site_name, total) = (p.site_name, p.total);
    let heading = match p.service_name {
        Some(service) => format!("{site_name} · {service} · {} : {total}", t.to_contact),
        None => format!("{site_name} · {} : {total}", t.to_contact),
    };
    let page = PrintPage {
        chrome: Chrome::new(&session, t.print_title, "/contacts", None),
        t,
        heading,
        rows: p.rows.into_iter().map(|r| row(t, r)).collect(),
        printed_at: local(crate::domain::now()),
        too_long: (total > PRINT_ROWS).then(|| {
            t.too_long_to_print
                .replace("{n}", &total.to_string())
                .replace("{max}", &PRINT_ROWS.to_string())
        }),
        back: ListQuery {
            site: q.site,
            service: q.service,
            kind: q.kind,
            ..Default::default()
        }
        .to_query(),
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(flatten)]
    filter: Filter,
    format: Option<String>,
}

/// `GET /contacts/export?…&format=csv|excel|xlsx`: the API's export, with the session's rights
/// (a workbook in the page's language).
pub async fn export(
    signed: Signed<ContactLists>,
    state: web::Data<AppState>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, PageError> {
    let session = signed.session;
    let lang = session.lang;
    let q = query.into_inner();
    let mut f = crate::domain::Faults::default();
    let format = f.check(
        "format",
        Format::parse(q.format.as_deref().unwrap_or("csv")),
    );
    let kind = f.check_opt("kind", some(&q.filter.kind).as_deref(), Kind::parse);
    let (format, kind) = f
        .finish(format.zip(kind))
        .map_err(|faults| PageError::App(faults.into(), lang))?;
    // The workbook speaks the page's language.
    let format = format.in_language(lang);
    let service = some(&q.filter.service);
    contact_lists::stream(&state, session.caller, q.filter.site, service, kind, format)
        .await
        .map(crate::http::download)
        .map_err(|e| PageError::App(e, lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_fields_are_brussels_minutes_with_a_four_digit_year() {
        let summer = date_field("2030-06-13T10:00").expect("valid");
        assert_eq!(summer.to_string(), "2030-06-13 08:00:00");
        for bad in [
            "+262142-12-31T23:59",
            "0000-01-01T00:00",
            "1922-06-13T10:00",
            "2030-06-13 10:00",
            "demain",
            "",
        ] {
            assert!(date_field(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_are_read_leniently() {
        let q = |page: Option<&str>| PageQuery {
            filter: Filter {
                site: "ARL".into(),
                service: String::new(),
                kind: String::new(),
            },
            page: page.map(str::to_string),
            requests: None,
            done: None,
            at: None,
            next: None,
        };
        assert_eq!(q(Some("2")).list().page, 2);
        assert_eq!(q(Some("deux")).list().page, 0);
        assert_eq!(q(None).list().to_query(), "site=ARL");
        assert_eq!(ListQuery::from_back("site=ARL&page=3&evil=1").page, 3);
    }
}
