//! CSV imports (CONTRACT §4.4): rebuild the lists of postponed care from hospital exports.
//!
//! The rule: all or nothing. The file is read as a stream, every line is checked, and only a
//! file without a single bad line is stored, in one transaction. The answer to a bad file lists
//! every bad line with its field and reason.

use std::collections::HashMap;
use std::io::Read;

use chrono::NaiveDateTime;

use crate::auth::Caller;
use crate::db::{self, appointments::AppointmentRow, Db, DbConnection};
use crate::domain::appointment::{parse_text, Kind, Priority, Status};
use crate::domain::call::{parse_duration, parse_notes, Outcome, Reason};
use crate::domain::patient::{NewPatient, PatientInput};
use crate::domain::time::parse_instant_or_local;
use crate::domain::Invalid;
use crate::domain::{Faults, NationalNumber, PhoneE164};
use crate::error::{AppError, FieldError};

pub const APPOINTMENT_HEADER: [&str; 16] = [
    "national_number",
    "last_name",
    "first_name",
    "birth_date",
    "phone",
    "email",
    "language",
    "email_consent",
    "site",
    "service",
    "kind",
    "label",
    "scheduled_at",
    "priority",
    "urgent",
    "essential",
];

pub const CALL_HEADER: [&str; 7] = [
    "received_at",
    "caller_phone",
    "national_number",
    "reason",
    "outcome",
    "duration_seconds",
    "notes",
];

/// Longest physical line accepted; a longer one is reported, not buffered.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Errors listed in one answer: every bad line of any real file; past this the file is not
/// the expected one at all, and the answer says how many more there were.
pub const MAX_REPORTED_ERRORS: usize = 100_000;

/// What an import stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AppointmentImport {
    pub imported: u64,
    pub patients_created: u64,
}

/// A reader that refuses physical lines longer than [`MAX_LINE_BYTES`], so that a file with a
/// 50 MB line is reported instead of buffered.
pub struct LineLimit<R> {
    inner: R,
    since_newline: usize,
    newlines: u64,
}

impl<R: Read> LineLimit<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            since_newline: 0,
            newlines: 0,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.newlines += 1;
                self.since_newline = 0;
            } else {
                self.since_newline += 1;
                if self.since_newline > MAX_LINE_BYTES {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "line {} is longer than {MAX_LINE_BYTES} bytes",
                            self.newlines + 1
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// `true`/`false` and their usual spellings; empty is `false`.
pub fn parse_flag(raw: &str) -> Result<bool, Invalid> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" | "non" | "nee" | "nein" => Ok(false),
        "true" | "1" | "yes" | "oui" | "ja" => Ok(true),
        _ => Err(Invalid("must be true or false".into())),
    }
}

/// One checked line of an appointment file.
#[derive(Debug, Clone)]
pub struct AppointmentLine {
    pub line: u64,
    pub patient: NewPatient,
    pub site: String,
    pub service: String,
    pub kind: Kind,
    pub label: String,
    pub scheduled_at: NaiveDateTime,
    pub priority: Priority,
    pub urgent: bool,
    pub essential: bool,
}

/// Collects errors up to the cap.
struct Report {
    errors: Vec<FieldError>,
    more: u64,
}

impl Report {
    fn add(&mut self, line: u64, field: &str, message: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(FieldError::at_line(line, field, message));
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<FieldError> {
        if self.more > 0 {
            self.errors.push(FieldError::new(
                "file",
                format!("{} more errors not listed", self.more),
            ));
        }
        self.errors
    }
}

/// Reads a CSV file with exactly `header`, handing each line's fields (as UTF-8 text) to
/// `check`. Returns every checked line, or every error (bad CSV, bad UTF-8, a wrong field
/// count, what `check` found), each with its line number.
pub fn read_csv<T, const N: usize>(
    input: impl Read,
    header: &[&str; N],
    mut check: impl FnMut(u64, [&str; N]) -> Result<T, Faults>,
) -> Result<Vec<T>, Vec<FieldError>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(LineLimit::new(input));
    let mut report = Report {
        errors: Vec::new(),
        more: 0,
    };
    let mut record = csv::ByteRecord::new();
    let mut lines = Vec::new();
    let mut header_seen = false;
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => match e.kind() {
                csv::ErrorKind::UnequalLengths { pos, len, .. } => {
                    let line = pos.as_ref().map_or(line, |p| p.line());
                    report.add(line, "line", format!("has {len} fields, expected {N}"));
                    continue;
                }
                csv::ErrorKind::Io(io) => {
                    report.add(line, "line", io.to_string());
                    break;
                }
                _ => {
                    report.add(line, "line", "is not valid CSV");
                    break;
                }
            },
        }
        let line = record.position().map_or(line, |p| p.line());
        if !header_seen {
            header_seen = true;
            let fields: Vec<String> = record
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let f = if i == 0 {
                        f.strip_prefix(b"\xef\xbb\xbf").unwrap_or(f)
                    } else {
                        f
                    };
                    String::from_utf8_lossy(f).trim().to_string()
                })
                .collect();
            if fields != header {
                report.add(1, "header", format!("must be exactly {}", header.join(",")));
                return Err(report.finish());
            }
            continue;
        }
        let mut fields = [""; N];
        let mut utf8_ok = true;
        for (i, raw) in record.iter().enumerate().take(N) {
            match std::str::from_utf8(raw) {
                // PostgreSQL cannot store NUL in text and SQLite can: refused on both.
                Ok(s) if s.contains('\0') => {
                    report.add(line, header[i], crate::error::NUL_REFUSED);
                    utf8_ok = false;
                }
                Ok(s) => fields[i] = s,
                Err(_) => {
                    report.add(line, header[i], "is not valid UTF-8");
                    utf8_ok = false;
                }
            }
        }
        if !utf8_ok {
            continue;
        }
        match check(line, fields) {
            Ok(parsed) => lines.push(parsed),
            Err(faults) => {
                for (field, e) in faults {
                    report.add(line, &field, e.0);
                }
            }
        }
    }
    if !header_seen {
        report.add(1, "header", "the file is empty");
    }
    let errors = report.finish();
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Reads and checks a whole appointment file. `service_sites` maps each service code to its
/// site. Returns every line, or every error.
pub fn parse_appointments<R: Read>(
    input: R,
    service_sites: &HashMap<String, String>,
    today: chrono::NaiveDate,
) -> Result<Vec<AppointmentLine>, Vec<FieldError>> {
    read_csv(input, &APPOINTMENT_HEADER, |line, fields| {
        check_line(line, fields, service_sites, today)
    })
}

fn check_line(
    line: u64,
    fields: [&str; 16],
    service_sites: &HashMap<String, String>,
    today: chrono::NaiveDate,
) -> Result<AppointmentLine, Faults> {
    let mut f = Faults::default();
    let [nn, last, first, birth, phone, email, language, consent, site, service, kind, label, at, priority, urgent, essential] =
        fields;
    let email_consent = parse_flag(consent);
    let patient = NewPatient::parse(
        &PatientInput {
            national_number: Some(nn),
            last_name: last,
            first_name: first,
            birth_date: birth,
            phone: Some(phone),
            email: Some(email),
            language: Some(language),
            email_consent: *email_consent.as_ref().unwrap_or(&false),
        },
        today,
    );
    f.check("email_consent", email_consent);
    let patient = f.include(patient);
    let site = site.trim();
    let service = service.trim();
    match service_sites.get(service) {
        None => f.push("service", format!("unknown service {service:?}")),
        Some(s) if s != site => f.push("site", format!("service {service} belongs to site {s}")),
        Some(_) => {}
    }
    let kind = f.check("kind", Kind::parse(kind.trim()));
    let label = f.check("label", parse_text(label, 200));
    let at = f.check("scheduled_at", parse_instant_or_local(at));
    let priority = f.check("priority", Priority::parse(priority));
    let urgent = f.check("urgent", parse_flag(urgent));
    let essential = f.check("essential", parse_flag(essential));
    let checked = match (patient, kind, label, at, priority, urgent, essential) {
        (
            Some(patient),
            Some(kind),
            Some(label),
            Some(scheduled_at),
            Some(priority),
            Some(urgent),
            Some(essential),
        ) => Some(AppointmentLine {
            line,
            patient,
            site: site.to_string(),
            service: service.to_string(),
            kind,
            label,
            scheduled_at,
            priority,
            urgent,
            essential,
        }),
        _ => None,
    };
    f.finish(checked)
}

/// Stores checked lines in the caller's transaction: patients matched on national number
/// (known ones reused, new ones created once per file), then every appointment, in bulk.
pub fn store_appointments(
    conn: &mut DbConnection,
    lines: Vec<AppointmentLine>,
    caller: &Caller,
    now: NaiveDateTime,
) -> diesel::QueryResult<AppointmentImport> {
    let import_id = uuid::Uuid::now_v7().to_string();
    let mut numbers: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            l.patient
                .national_number
                .as_ref()
                .map(|n| n.as_str().to_string())
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut known: HashMap<String, String> = db::patients::ids_by_national_number(conn, &numbers)?
        .into_iter()
        .collect();
    let mut new_patients = Vec::new();
    let mut appointments = Vec::with_capacity(lines.len());
    for l in lines {
        let nn = l
            .patient
            .national_number
            .as_ref()
            .map(|n| n.as_str().to_string());
        let patient_id = match nn.as_ref().and_then(|nn| known.get(nn)) {
            Some(id) => id.clone(),
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                new_patients.push(db::patients::PatientRow::from_new(
                    &l.patient,
                    id.clone(),
                    Some(import_id.clone()),
                    now,
                ));
                if let Some(nn) = nn {
                    known.insert(nn, id.clone());
                }
                id
            }
        };
        appointments.push(AppointmentRow {
            id: uuid::Uuid::now_v7().to_string(),
            patient_id,
            site_code: l.site,
            service_code: l.service,
            kind: l.kind,
            label: l.label,
            original_scheduled_at: l.scheduled_at,
            scheduled_at: l.scheduled_at,
            priority: l.priority.get(),
            urgent: l.urgent,
            essential: l.essential,
            status: Status::Scheduled,
            incident_id: None,
            postponed_at: None,
            import_id: Some(import_id.clone()),
            created_at: now,
            updated_at: now,
            reached_at: None,
            proposed_at: None,
        });
    }
    db::patients::insert_many(conn, &new_patients)?;
    db::appointments::insert_many(conn, &appointments)?;
    let report = AppointmentImport {
        imported: appointments.len() as u64,
        patients_created: new_patients.len() as u64,
    };
    crate::audit::record(
        conn,
        caller,
        "appointment.import",
        Some(&format!("import:{import_id}")),
        serde_json::json!({ "rows": report.imported, "patients_created": report.patients_created }),
    )?;
    Ok(report)
}

/// The whole import, for callers on a blocking thread (the HTTP handler's worker, the CLI).
pub fn import_appointments<R: Read>(
    db: &Db,
    input: R,
    caller: &Caller,
) -> Result<AppointmentImport, AppError> {
    let service_sites: HashMap<String, String> = db
        .read_blocking(|conn| db::sites::all_service_sites(conn).map_err(AppError::from))?
        .into_iter()
        .collect();
    let now = crate::domain::now();
    let lines =
        parse_appointments(input, &service_sites, now.date()).map_err(AppError::Validation)?;
    let caller = caller.clone();
    db.write_blocking(move |conn| {
        store_appointments(conn, lines, &caller, now).map_err(AppError::from)
    })
}

/// What a call import stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallImport {
    pub imported: u64,
    /// Calls whose national number matched a known patient.
    pub matched_patients: u64,
}

/// One checked line of a call file.
#[derive(Debug, Clone)]
pub struct CallLine {
    pub received_at: NaiveDateTime,
    pub caller_phone: Option<String>,
    pub national_number: Option<String>,
    pub reason: Reason,
    pub outcome: Outcome,
    pub duration_seconds: Option<i32>,
    pub notes: Option<String>,
}

pub fn parse_calls<R: Read>(
    input: R,
    now: NaiveDateTime,
) -> Result<Vec<CallLine>, Vec<FieldError>> {
    read_csv(
        input,
        &CALL_HEADER,
        |_, [at, phone, nn, reason, outcome, duration, notes]| {
            let mut f = Faults::default();
            let received_at = f.check(
                "received_at",
                parse_instant_or_local(at).and_then(|t| {
                    if t > now {
                        Err(Invalid("is in the future".into()))
                    } else {
                        Ok(t)
                    }
                }),
            );
            let phone = match phone.trim() {
                "" => Some(None),
                raw => f
                    .check("caller_phone", PhoneE164::parse(raw))
                    .map(|p| Some(p.as_str().to_string())),
            };
            let nn = match nn.trim() {
                "" => Some(None),
                raw => f
                    .check("national_number", NationalNumber::parse(raw))
                    .map(|n| Some(n.as_str().to_string())),
            };
            let reason = f.check("reason", Reason::parse(reason.trim()));
            let outcome = f.check("outcome", Outcome::parse(outcome.trim()));
            let duration = match duration.trim() {
                "" => Some(None),
                raw => f
                    .check(
                        "duration_seconds",
                        raw.parse::<i64>()
                            .map_err(|_| Invalid("must be a whole number of seconds".into()))
                            .and_then(parse_duration),
                    )
                    .map(Some),
            };
            let notes = f.check("notes", parse_notes(notes));
            match (received_at, phone, nn, reason, outcome, duration, notes) {
                (
                    Some(received_at),
                    Some(caller_phone),
                    Some(national_number),
                    Some(reason),
                    Some(outcome),
                    Some(duration_seconds),
                    Some(notes),
                ) => f.finish(Some(CallLine {
                    received_at,
                    caller_phone,
                    national_number,
                    reason,
                    outcome,
                    duration_seconds,
                    notes,
                })),
                _ => f.finish(None),
            }
        },
    )
}

/// Stores checked call lines in the caller's transaction, matching callers to patients by
/// national number.
pub fn store_calls(
    conn: &mut DbConnection,
    lines: Vec<CallLine>,
    caller: &Caller,
    now: NaiveDateTime,
) -> diesel::QueryResult<CallImport> {
    let import_id = uuid::Uuid::now_v7().to_string();
    let mut numbers: Vec<String> = lines
        .iter()
        .filter_map(|l| l.national_number.clone())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let known: HashMap<String, String> = db::patients::ids_by_national_number(conn, &numbers)?
        .into_iter()
        .collect();
    let mut matched = 0u64;
    let rows: Vec<db::calls::CallRow> = lines
        .into_iter()
        .map(|l| {
            let patient_id = l
                .national_number
                .as_ref()
                .and_then(|nn| known.get(nn))
                .cloned();
            matched += u64::from(patient_id.is_some());
            db::calls::CallRow {
                id: uuid::Uuid::now_v7().to_string(),
                received_at: l.received_at,
                caller_phone: l.caller_phone,
                patient_id,
                appointment_id: None,
                reason: l.reason,
                outcome: l.outcome,
                duration_seconds: l.duration_seconds,
                notes: l.notes,
                callback_requested: l.outcome == Outcome::CallbackScheduled,
                agent_id: None,
                idempotency_key: None,
                request_hash: None,
                import_id: Some(import_id.clone()),
                created_at: now,
            }
        })
        .collect();
    db::calls::insert_many(conn, &rows)?;
    let report = CallImport {
        imported: rows.len() as u64,
        matched_patients: matched,
    };
    crate::audit::record(
        conn,
        caller,
        "call.import",
        Some(&format!("import:{import_id}")),
        serde_json::json!({ "rows": report.imported, "matched_patients": matched }),
    )?;
    Ok(report)
}

/// The whole call import, for callers on a blocking thread.
pub fn import_calls<R: Read>(db: &Db, input: R, caller: &Caller) -> Result<CallImport, AppError> {
    let now = crate::domain::now();
    let lines =
        parse_calls(input, now + chrono::Duration::minutes(5)).map_err(AppError::Validation)?;
    let caller = caller.clone();
    db.write_blocking(move |conn| store_calls(conn, lines, &caller, now).map_err(AppError::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> HashMap<String, String> {
        HashMap::from([("ARL-CHIR".to_string(), "ARL".to_string())])
    }

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2022, 5, 1).unwrap_or_default()
    }

    const HEADER: &str = "national_number,last_name,first_name,birth_date,phone,email,language,email_consent,site,service,kind,label,scheduled_at,priority,urgent,essential\n";

    #[test]
    fn a_good_file_parses_every_line() {
        let csv = format!(
            "{HEADER}85.07.30-033.28,Dupont,Marie,1985-07-30,061 23 45 67,marie@example.be,fr,true,ARL,ARL-CHIR,operation,Hanche,2022-05-16 09:30,2,false,false\n\
             ,Peeters,Jan,1950-01-02,,,nl,,ARL,ARL-CHIR,consultation,\"Suivi, contrôle\",2022-05-17T10:00:00+02:00,4,0,1\n"
        );
        let lines = parse_appointments(csv.as_bytes(), &services(), today()).expect("valid");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].label, "Suivi, contrôle");
        assert_eq!(lines[0].line, 2);
        assert!(lines[1].essential);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_field() {
        let csv = format!(
            "{HEADER}85073003327,Dupont,Marie,1985-07-30,,,fr,,ARL,ARL-CHIR,operation,x,2022-05-16 09:30,2,,\n\
             ,Peeters,Jan,1950-01-02,,,nl,,MAR,ARL-CHIR,operation,x,2022-05-16 09:30,9,,\n\
             too,few\n"
        );
        let errors = parse_appointments(csv.as_bytes(), &services(), today()).expect_err("bad");
        let found: Vec<(Option<u64>, &str)> =
            errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(2), "national_number"),
                (Some(3), "site"),
                (Some(3), "priority"),
                (Some(4), "line")
            ]
        );
    }

    #[test]
    fn a_wrong_header_is_one_clear_error() {
        let errors =
            parse_appointments("a,b,c\n1,2,3\n".as_bytes(), &services(), today()).expect_err("bad");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "header");
    }

    #[test]
    fn invalid_utf8_and_huge_lines_are_reported() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(
            b",Dup\xffont,Marie,1985-07-30,,,fr,,ARL,ARL-CHIR,operation,x,2022-05-16 09:30,2,,\n",
        );
        let errors = parse_appointments(bytes.as_slice(), &services(), today()).expect_err("bad");
        assert_eq!(errors[0].field, "last_name");

        let mut nul = HEADER.as_bytes().to_vec();
        nul.extend_from_slice(
            b",Dupont,Ma\0rie,1985-07-30,,,fr,,ARL,ARL-CHIR,operation,x,2022-05-16 09:30,2,,\n",
        );
        let errors = parse_appointments(nul.as_slice(), &services(), today()).expect_err("NUL");
        assert_eq!(errors[0].field, "first_name");
        assert!(errors[0].message.contains("NUL"));

        let mut huge = HEADER.as_bytes().to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        let errors = parse_appointments(huge.as_slice(), &services(), today()).expect_err("bad");
        assert!(errors[0].message.contains("longer"));
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        let csv = format!("{HEADER},\"Dupont,Marie,1985-07-30,,,fr,,ARL,ARL-CHIR,operation,x,2022-05-16 09:30,2,,\n");
        assert!(parse_appointments(csv.as_bytes(), &services(), today()).is_err());
    }

    #[test]
    fn flags_accept_the_usual_spellings() {
        assert_eq!(parse_flag("TRUE"), Ok(true));
        assert_eq!(parse_flag("oui"), Ok(true));
        assert_eq!(parse_flag(""), Ok(false));
        assert!(parse_flag("maybe").is_err());
    }
}
