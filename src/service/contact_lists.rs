//! Writing the contact list (CONTRACT §4.5) as JSON, CSV (RFC 4180) or the spreadsheet CSV
//! flavour (`excel`: semicolon, UTF-8 with a BOM), a chunk at a time; or as an Excel workbook
//! (`xlsx`, beyond the contract: [`xlsx`]).
//!
//! [`export`] is the whole export, for the HTTP route and the command line alike: rows read
//! one at a time from a database cursor, written in chunks, and the export audited.
//!
//! The rule: every CSV or JSON cell goes through [`cell`], which shows times in Brussels local
//! time and neutralises anything a spreadsheet could evaluate as a formula, whatever the
//! format; the workbook's cells are typed (text, number, date), never formulas.

pub mod xlsx;

use std::borrow::Cow;

use crate::auth::Caller;
use crate::db::{self, contact_list::ContactFilter, contact_list::ContactRow, Db};
use crate::domain::appointment::Kind;
use crate::domain::patient::Language;
use crate::domain::time::brussels;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

pub const HEADER: [&str; 15] = [
    "appointment_id",
    "priority",
    "kind",
    "service",
    "label",
    "original_scheduled_at",
    "patient_last_name",
    "patient_first_name",
    "birth_date",
    "phone",
    "email",
    "language",
    "attempts",
    "last_outcome",
    "last_attempt_at",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Excel,
    /// An Excel workbook whose column titles and words are in this language.
    Xlsx(Language),
}

impl Format {
    /// `json`, `csv`, `excel` or `xlsx`; a workbook asked for by name is in French (the
    /// service's first language) until [`Format::in_language`] says otherwise.
    pub fn parse(raw: &str) -> Result<Self, crate::domain::Invalid> {
        match raw {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "excel" => Ok(Format::Excel),
            "xlsx" => Ok(Format::Xlsx(Language::Fr)),
            _ => Err(crate::domain::Invalid(
                "must be json, csv, excel or xlsx".into(),
            )),
        }
    }

    /// A workbook in `lang` (a page's language); the other formats have no words to change.
    pub fn in_language(self, lang: Language) -> Self {
        match self {
            Format::Xlsx(_) => Format::Xlsx(lang),
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Excel => "excel",
            Format::Xlsx(_) => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Excel => "text/csv; charset=utf-8",
            Format::Xlsx(_) => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    pub fn file_extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv | Format::Excel => "csv",
            Format::Xlsx(_) => "xlsx",
        }
    }
}

/// A value as a spreadsheet must show it: text that starts like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'`, so `=HYPERLINK(…)` stays text. A phone
/// number in E.164 (`+` and digits only) is data, not a formula, and keeps its `+`.
pub fn cell(value: &str) -> Cow<'_, str> {
    let is_phone =
        value.len() > 1 && value.starts_with('+') && value[1..].bytes().all(|b| b.is_ascii_digit());
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if !is_phone => Cow::Owned(format!("'{value}")),
        // Most cells: borrowed, no copy per row.
        _ => Cow::Borrowed(value),
    }
}

fn local(t: chrono::NaiveDateTime) -> String {
    brussels(t).to_rfc3339()
}

/// The 15 cells of a row, in header order. For spreadsheets (`excel`), phone numbers are
/// written in their spaced international form, which stays text with its `+`, and birth
/// dates with non-breaking hyphens, which stay text (checked in LibreOffice by
/// `tests/api/contact_lists.rs`).
pub fn cells(r: &ContactRow, format: Format) -> [Cow<'_, str>; 15] {
    fn opt(v: &Option<String>) -> Cow<'_, str> {
        v.as_deref().map(cell).unwrap_or_default()
    }
    let phone = match (&r.phone, format) {
        (Some(p), Format::Excel) => crate::domain::PhoneE164::parse(p)
            .map(|p| Cow::Owned(p.international()))
            .unwrap_or_else(|_| cell(p)),
        (p, _) => opt(p),
    };
    [
        cell(&r.appointment_id),
        Cow::Owned(r.priority.to_string()),
        Cow::Borrowed(r.kind.as_str()),
        cell(&r.service),
        cell(&r.label),
        Cow::Owned(local(r.original_scheduled_at)),
        cell(&r.patient_last_name),
        cell(&r.patient_first_name),
        match format {
            // An ISO date would become a date number in a spreadsheet; with non-breaking
            // hyphens (U+2011) it looks the same and stays text.
            Format::Excel => Cow::Owned(r.birth_date.to_string().replace('-', "\u{2011}")),
            Format::Json | Format::Csv | Format::Xlsx(_) => Cow::Owned(r.birth_date.to_string()),
        },
        phone,
        opt(&r.email),
        Cow::Borrowed(r.language.as_str()),
        Cow::Owned(r.attempts.to_string()),
        Cow::Borrowed(r.last_outcome.map_or("", |o| o.as_str())),
        r.last_attempt_at
            .map(local)
            .map(Cow::Owned)
            .unwrap_or_default(),
    ]
}

/// Writes a list chunk by chunk: `start`, then `row` for each line, then `finish`. (A workbook
/// is written by [`xlsx::Sheet`]: given `xlsx`, this writes nothing.)
pub struct Writer {
    format: Format,
    rows: u64,
    /// One CSV writer for the whole list (quoting by the `csv` crate), writing into `bytes`,
    /// which `row` drains into each chunk.
    csv: csv::Writer<Shared>,
    bytes: Shared,
}

/// A byte buffer the CSV writer appends to and the chunker drains.
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Writer {
    pub fn new(format: Format) -> Self {
        let bytes = Shared::default();
        let csv = csv::WriterBuilder::new()
            .delimiter(if format == Format::Excel { b';' } else { b',' })
            .terminator(csv::Terminator::CRLF)
            .buffer_capacity(4096)
            .from_writer(bytes.clone());
        Self {
            format,
            rows: 0,
            csv,
            bytes,
        }
    }

    pub fn start(&self) -> Vec<u8> {
        match self.format {
            Format::Json => b"{\"items\":[".to_vec(),
            Format::Csv => csv_line(&HEADER, b','),
            Format::Excel => {
                let mut out = "\u{feff}".as_bytes().to_vec();
                out.extend(csv_line(&HEADER, b';'));
                out
            }
            Format::Xlsx(_) => Vec::new(),
        }
    }

    pub fn row(&mut self, r: &ContactRow, out: &mut Vec<u8>) {
        let cells = cells(r, self.format);
        match self.format {
            Format::Json => {
                if self.rows > 0 {
                    out.push(b',');
                }
                let mut item = serde_json::Map::new();
                for (name, value) in HEADER.iter().zip(cells) {
                    let value = match *name {
                        "priority" | "attempts" => {
                            serde_json::Value::from(value.parse::<i64>().unwrap_or(0))
                        }
                        _ if value.is_empty()
                            && matches!(
                                *name,
                                "phone" | "email" | "last_outcome" | "last_attempt_at"
                            ) =>
                        {
                            serde_json::Value::Null
                        }
                        _ => serde_json::Value::from(value),
                    };
                    item.insert((*name).to_string(), value);
                }
                // Beyond the contract's columns: the day a committed plan proposes, and the
                // patient's answer by email when it is the latest attempt.
                item.insert(
                    "proposed_at".into(),
                    r.proposed_at
                        .map_or(serde_json::Value::Null, |d| d.to_string().into()),
                );
                // A rescheduled row (its patient asked for a call) shows its booked date.
                item.insert("status".into(), r.status.as_str().into());
                item.insert("scheduled_at".into(), local(r.scheduled_at).into());
                item.insert(
                    "patient_request".into(),
                    r.patient_request
                        .map_or(serde_json::Value::Null, |a| a.as_str().into()),
                );
                out.extend(serde_json::to_vec(&item).unwrap_or_default());
            }
            Format::Csv | Format::Excel => {
                // Errors only come from the sink, which cannot fail.
                let _ = self.csv.write_record(cells.iter().map(|c| c.as_bytes()));
                let _ = self.csv.flush();
                out.append(&mut self.bytes.0.borrow_mut());
            }
            Format::Xlsx(_) => return,
        }
        self.rows += 1;
    }

    pub fn finish(&self) -> Vec<u8> {
        match self.format {
            Format::Json => b"]}".to_vec(),
            Format::Csv | Format::Excel | Format::Xlsx(_) => Vec::new(),
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// One RFC 4180 record (quoted where needed, CRLF), through the `csv` crate.
fn csv_line<S: AsRef<[u8]>>(fields: &[S], delimiter: u8) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    if w.write_record(fields).is_err() {
        return Vec::new();
    }
    w.into_inner().unwrap_or_default()
}

/// Checks the request against the data and the caller's services; returns the filter.
pub fn checked_filter(
    conn: &mut db::DbConnection,
    caller: &Caller,
    site: String,
    service: Option<String>,
    kind: Option<Kind>,
) -> AppResult<ContactFilter> {
    if db::sites::find_site(conn, &site)?.is_none() {
        return Err(AppError::NotFound(format!("no site {site}")));
    }
    if let Some(service) = &service {
        match db::sites::service_site(conn, service)? {
            None => return Err(AppError::validation("service", "no such service")),
            Some(s) if s != site => {
                return Err(AppError::validation(
                    "service",
                    format!("belongs to site {s}"),
                ))
            }
            Some(_) => {}
        }
        if !caller.may_access_service(service) {
            return Err(AppError::Forbidden(format!(
                "service {service} is not one of yours"
            )));
        }
    }
    Ok(ContactFilter {
        site,
        service,
        kind,
        services: caller
            .role
            .is_service_scoped()
            .then(|| caller.services.clone()),
        requests_only: false,
    })
}

enum Stop {
    /// The reader went away (a closed connection): stop quietly.
    Gone,
    /// Kept whole, so that a pool that cannot give a connection is a 503, not a 500.
    Db(db::DbError),
    /// The workbook could not be written (its scratch files: a full disk).
    Sheet(String),
}

impl Stop {
    /// What the caller is told (a reader gone is no failure, but has nothing to say either).
    fn into_error(self) -> AppError {
        match self {
            Stop::Gone => AppError::Internal("the reader went away".into()),
            Stop::Db(e) => AppError::from(e),
            Stop::Sheet(e) => AppError::Internal(format!("the workbook could not be written: {e}")),
        }
    }
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Stop::Db(db::DbError::Query(e))
    }
}

impl From<db::DbError> for Stop {
    fn from(e: db::DbError) -> Self {
        Stop::Db(e)
    }
}

/// Writes the whole list through `send`, chunk by chunk (`send` returns `false` when the
/// reader has gone); returns the rows written. The export is in the audit log, with its
/// filters and row count, before the first byte leaves.
pub fn export(
    db: &Db,
    caller: &Caller,
    filter: ContactFilter,
    format: Format,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> Result<u64, AppError> {
    let (audit_caller, audited) = (caller.clone(), filter.clone());
    let format_name = format.as_str();
    db.write_blocking(move |conn| {
        let rows = db::contact_list::count(conn, &audited)?;
        crate::audit::record(
            conn,
            &audit_caller,
            "contact_list.export",
            Some(&format!("site:{}", audited.site)),
            serde_json::json!({
                "site": audited.site, "service": audited.service, "kind": audited.kind,
                "format": format_name, "rows": rows,
            }),
        )
        .map_err(AppError::from)
    })?;
    if let Format::Xlsx(lang) = format {
        let (sheet, rows) = db
            .read_blocking(|conn| xlsx::fill(conn, &filter, lang))
            .map_err(Stop::into_error)?;
        return match xlsx::send(sheet, &mut send) {
            Ok(()) | Err(Stop::Gone) => Ok(rows),
            Err(e) => Err(e.into_error()),
        };
    }
    let mut writer = Writer::new(format);
    if !send(writer.start()) {
        return Ok(0);
    }
    let result = db.read_blocking(|conn| {
        let mut buf = Vec::with_capacity(CHUNK * 2);
        db::contact_list::for_each(conn, &filter, |row| {
            writer.row(&row, &mut buf);
            if buf.len() >= CHUNK && !send(std::mem::take(&mut buf)) {
                return Err(Stop::Gone);
            }
            Ok::<_, Stop>(())
        })?;
        buf.extend(writer.finish());
        if send(buf) {
            Ok(())
        } else {
            Err(Stop::Gone)
        }
    });
    match result {
        Ok(()) | Err(Stop::Gone) => Ok(writer.rows()),
        Err(e) => Err(e.into_error()),
    }
}

/// A contact list on its way to a client: what it is and its bytes, as they come.
pub struct Download {
    pub content_type: &'static str,
    /// `contact-list-ARL.csv`: the site's code and the format's extension.
    pub file_name: String,
    /// Chunks of the list, read by a blocking task from one database cursor and handed over
    /// through a 4-chunk channel: memory does not grow with the list. An error after the first
    /// chunk cuts the body, so the client sees a broken download.
    pub body: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
}

/// The contact list of `site` (and `service`, `kind`) as `caller` may see it, in `format`:
/// access is decided before the first byte (404, 403, 422), the export audited when it ends.
pub async fn stream(
    state: &crate::state::AppState,
    caller: Caller,
    site: String,
    service: Option<String>,
    kind: Option<Kind>,
    format: Format,
) -> AppResult<Download> {
    use futures_util::StreamExt;
    let checking = caller.clone();
    let filter = state
        .db
        .read(move |conn| checked_filter(conn, &checking, site, service, kind))
        .await?;
    let file_name = format!("contact-list-{}.{}", filter.site, format.file_extension());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let sent = export(&db, &caller, filter, format, |chunk| {
            tx.blocking_send(Ok(bytes::Bytes::from(chunk))).is_ok()
        });
        if let Err(e) = sent {
            tracing::error!(error = %e, "contact list export failed");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    Ok(Download {
        content_type: format.content_type(),
        file_name,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_phones_kept() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\",\"y\")"),
            "'=HYPERLINK(\"http://x\",\"y\")"
        );
        assert_eq!(cell("+SUM(A1)"), "'+SUM(A1)");
        assert_eq!(cell("-2+3"), "'-2+3");
        assert_eq!(cell("@cmd"), "'@cmd");
        assert_eq!(cell("+3261234567"), "+3261234567");
        assert_eq!(cell("Dupont"), "Dupont");
        assert_eq!(cell("Zoé"), "Zoé");
    }

    #[test]
    fn csv_lines_are_rfc_4180() {
        assert_eq!(
            csv_line(&["a", "b,c", "d\"e"], b','),
            b"a,\"b,c\",\"d\"\"e\"\r\n".to_vec()
        );
        assert_eq!(csv_line(&["a;b", "c"], b';'), b"\"a;b\";c\r\n".to_vec());
    }
}

/// The sites and services a caller may choose a contact list from: all of them, or for a
/// secretary her services and their sites.
#[derive(Debug, Clone)]
pub struct Choices {
    pub sites: Vec<db::sites::SiteRow>,
    pub services: Vec<db::sites::ServiceRow>,
}

pub async fn choices(state: &AppState, caller: Caller) -> AppResult<Choices> {
    state
        .db
        .read(move |conn| {
            let mut sites = db::sites::list_sites(conn, None, 1000)?;
            let mut services = db::sites::list_services(conn, None, None, 1000)?;
            services.retain(|s| caller.may_access_service(&s.code));
            if caller.role.is_service_scoped() {
                sites.retain(|site| services.iter().any(|s| s.site_code == site.code));
            }
            Ok(Choices { sites, services })
        })
        .await
}

/// The list a page shows: which one, and which page of it.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub site: String,
    pub service: Option<String>,
    pub kind: Option<Kind>,
    /// Only the patients who asked something by email.
    pub requests_only: bool,
    /// From 0.
    pub page: i64,
    pub rows: i64,
}

/// One page of a contact list, with the list's length and how many of its patients asked
/// something by email.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub total: i64,
    pub requests: i64,
    pub rows: Vec<ContactRow>,
}

/// Reads one page of a contact list (checked as an export is), audited as
/// `contact_list.read`.
pub async fn page(state: &AppState, caller: Caller, r: PageRequest) -> AppResult<ListPage> {
    state
        .db
        .write(move |conn| {
            let mut filter = checked_filter(conn, &caller, r.site, r.service, r.kind)?;
            let requests = db::contact_list::count(
                conn,
                &ContactFilter {
                    requests_only: true,
                    ..filter.clone()
                },
            )?;
            filter.requests_only = r.requests_only;
            let total = db::contact_list::count(conn, &filter)?;
            let rows = db::contact_list::page(conn, &filter, r.rows, r.page * r.rows)?;
            crate::audit::record(
                conn,
                &caller,
                "contact_list.read",
                Some(&format!("site:{}", filter.site)),
                serde_json::json!({
                    "site": filter.site, "service": filter.service, "kind": filter.kind,
                    "requests": filter.requests_only, "page": r.page, "rows": rows.len(),
                }),
            )?;
            Ok(ListPage {
                total,
                requests,
                rows,
            })
        })
        .await
}

/// A contact list for paper: its names for the heading, its length, and up to `max` rows.
#[derive(Debug, Clone)]
pub struct Printed {
    pub site_name: String,
    pub service_name: Option<String>,
    pub total: i64,
    pub rows: Vec<ContactRow>,
}

/// Reads a contact list to print (checked and audited as an export, format `print`).
pub async fn printed(
    state: &AppState,
    caller: Caller,
    site: String,
    service: Option<String>,
    kind: Option<Kind>,
    max: i64,
) -> AppResult<Printed> {
    state
        .db
        .write(move |conn| {
            let filter = checked_filter(conn, &caller, site, service, kind)?;
            let site_name = db::sites::find_site(conn, &filter.site)?
                .map(|s| s.name)
                .unwrap_or_default();
            let service_name = match &filter.service {
                Some(code) => db::sites::list_services(conn, Some(&filter.site), None, 1000)?
                    .into_iter()
                    .find(|s| &s.code == code)
                    .map(|s| s.name),
                None => None,
            };
            let total = db::contact_list::count(conn, &filter)?;
            let rows = db::contact_list::page(conn, &filter, max, 0)?;
            crate::audit::record(
                conn,
                &caller,
                "contact_list.export",
                Some(&format!("site:{}", filter.site)),
                serde_json::json!({
                    "site": filter.site, "service": filter.service, "kind": filter.kind,
                    "format": "print", "rows": rows.len(),
                }),
            )?;
            Ok(Printed {
                site_name,
                service_name,
                total,
                rows,
            })
        })
        .await
}
