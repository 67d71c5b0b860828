//! The contact list as an Excel workbook (`format=xlsx`): the sheet a secretary opens, with
//! column titles in her language, real dates in Brussels time, phones as people read them, the
//! patient's language as a word, the header frozen and filterable.
//!
//! The rule: every cell goes through one of `rust_xlsxwriter`'s typed writers (text, number or
//! date); nothing from the data is ever written as a formula. Text cells also carry the Text
//! number format (`@`), so that a cell a secretary edits in her spreadsheet stays text too.
//!
//! Memory: the worksheet is in `rust_xlsxwriter`'s constant-memory mode (the current row in
//! memory, the rows before it in a temporary file), and the finished workbook goes to another
//! temporary file, sent from there in chunks. Memory does not grow with the list; the disk
//! holds about twice the file while it is made. Both files have no name and live in a scratch
//! folder of the export's own (0700, in `TMPDIR`, removed after it: `files::private_scratch_dir`),
//! ours 0600. (A workbook is a zip whose directory comes last: nothing of it is sent before
//! the last row is read, and no database connection is held while it is sent.)

use std::io::{Read, Seek, SeekFrom};

use rust_xlsxwriter::{ExcelDateTime, Format, FormatBorder, Workbook, XlsxError};

use super::{Stop, CHUNK};
use crate::db::{self, contact_list::ContactFilter, contact_list::ContactRow, DbConnection};
use crate::domain::contact::phone_text;
use crate::domain::patient::Language;
use crate::domain::time::brussels;
use crate::i18n::{texts, Texts};

/// Rows in an Excel sheet; a longer list goes on in another sheet under the same header.
const EXCEL_ROWS: u32 = 1_048_576;
/// Excel's longest text in a cell, in UTF-16 units.
const EXCEL_TEXT: usize = 32_767;

/// The columns, in order: the contract's, with the appointment id last (for re-import, out of
/// the way of the people reading the sheet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Priority,
    Kind,
    Service,
    Label,
    Original,
    LastName,
    FirstName,
    BirthDate,
    Phone,
    Email,
    Language,
    Attempts,
    LastOutcome,
    LastAttempt,
    AppointmentId,
}

/// Each column and its width in characters (at least its title's).
const COLUMNS: [(Column, f64); 15] = [
    (Column::Priority, 9.0),
    (Column::Kind, 13.0),
    (Column::Service, 12.0),
    (Column::Label, 32.0),
    (Column::Original, 17.0),
    (Column::LastName, 20.0),
    (Column::FirstName, 16.0),
    (Column::BirthDate, 12.0),
    (Column::Phone, 18.0),
    (Column::Email, 32.0),
    (Column::Language, 12.0),
    (Column::Attempts, 10.0),
    (Column::LastOutcome, 18.0),
    (Column::LastAttempt, 17.0),
    (Column::AppointmentId, 38.0),
];

impl Column {
    fn title(self, t: &Texts) -> &'static str {
        match self {
            Column::Priority => t.priority,
            Column::Kind => t.kind,
            Column::Service => t.service,
            Column::Label => t.label,
            Column::Original => t.original_date,
            Column::LastName => t.last_name,
            Column::FirstName => t.first_name,
            Column::BirthDate => t.birth_date,
            Column::Phone => t.phone,
            Column::Email => t.email,
            Column::Language => t.language,
            Column::Attempts => t.attempts,
            Column::LastOutcome => t.last_outcome,
            Column::LastAttempt => t.last_attempt,
            Column::AppointmentId => t.appointment_ref,
        }
    }
}

/// The column titles of a workbook in this language.
pub fn titles(lang: Language) -> [&'static str; 15] {
    let t = texts(lang);
    COLUMNS.map(|(column, _)| column.title(t))
}

/// One value as the sheet holds it.
enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Date(ExcelDateTime),
    DateTime(ExcelDateTime),
}

/// Text no longer than a cell holds (the list's fields are short; this only keeps an odd
/// value from breaking the download).
fn text(value: &str) -> Cell {
    if value.is_empty() {
        return Cell::Empty;
    }
    if value.len() <= EXCEL_TEXT {
        // UTF-8 is never shorter than UTF-16, counted in units: it fits.
        return Cell::Text(value.to_string());
    }
    let mut units = 0;
    Cell::Text(
        value
            .chars()
            .take_while(|c| {
                units += c.len_utf16();
                units <= EXCEL_TEXT
            })
            .collect(),
    )
}

/// A time as a date cell, in Brussels local time.
fn local(t: chrono::NaiveDateTime) -> Cell {
    use chrono::{Datelike, Timelike};
    let at = brussels(t);
    let cell = u16::try_from(at.year())
        .ok()
        .and_then(|y| ExcelDateTime::from_ymd(y, at.month() as u8, at.day() as u8).ok())
        .and_then(|d| {
            d.and_hms(at.hour() as u16, at.minute() as u8, at.second())
                .ok()
        });
    match cell {
        Some(d) => Cell::DateTime(d),
        None => text(&at.format("%d/%m/%Y %H:%M").to_string()),
    }
}

/// A day as a date cell; before 1900, which spreadsheets cannot count, as text.
fn day(d: chrono::NaiveDate) -> Cell {
    use chrono::Datelike;
    match u16::try_from(d.year())
        .ok()
        .and_then(|y| ExcelDateTime::from_ymd(y, d.month() as u8, d.day() as u8).ok())
    {
        Some(cell) => Cell::Date(cell),
        None => text(&d.format("%d/%m/%Y").to_string()),
    }
}

fn value(column: Column, r: &ContactRow, t: &'static Texts) -> Cell {
    match column {
        Column::Priority => Cell::Number(f64::from(r.priority)),
        Column::Kind => text(t.word(r.kind.as_str())),
        Column::Service => text(&r.service),
        Column::Label => text(&r.label),
        Column::Original => local(r.original_scheduled_at),
        Column::LastName => text(&r.patient_last_name),
        Column::FirstName => text(&r.patient_first_name),
        Column::BirthDate => day(r.birth_date),
        Column::Phone => match r.phone.as_deref() {
            Some(e164) => match phone_text(e164) {
                Some((spoken, _)) => text(&spoken),
                None => text(e164),
            },
            None => Cell::Empty,
        },
        Column::Email => text(r.email.as_deref().unwrap_or_default()),
        Column::Language => text(crate::i18n::language_name(r.language)),
        Column::Attempts => Cell::Number(f64::from(r.attempts)),
        Column::LastOutcome => text(r.last_outcome.map_or("", |o| t.word(o.as_str()))),
        Column::LastAttempt => r.last_attempt_at.map_or(Cell::Empty, local),
        Column::AppointmentId => text(&r.appointment_id),
    }
}

/// A workbook being written, row after row.
pub struct Sheet {
    workbook: Workbook,
    /// Where the workbook's files are, removed with the sheet.
    scratch: tempfile::TempDir,
    t: &'static Texts,
    header: Format,
    text: Format,
    date: Format,
    datetime: Format,
    /// Sheets begun, and the next row of the last one.
    sheets: u16,
    row: u32,
    rows_per_sheet: u32,
}

impl Sheet {
    pub fn new(lang: Language) -> Result<Self, XlsxError> {
        Self::with_rows_per_sheet(lang, EXCEL_ROWS)
    }

    fn with_rows_per_sheet(lang: Language, rows_per_sheet: u32) -> Result<Self, XlsxError> {
        let scratch = crate::files::private_scratch_dir("reprise-xlsx-")?;
        let mut workbook = Workbook::new();
        workbook.set_tempdir(scratch.path())?;
        let text = Format::new().set_num_format("@");
        let mut sheet = Sheet {
            workbook,
            scratch,
            t: texts(lang),
            header: text
                .clone()
                .set_bold()
                .set_border_bottom(FormatBorder::Thin),
            text,
            date: Format::new().set_num_format("dd/mm/yyyy"),
            datetime: Format::new().set_num_format("dd/mm/yyyy hh:mm"),
            sheets: 0,
            row: 0,
            rows_per_sheet: rows_per_sheet.max(2),
        };
        sheet.begin()?;
        Ok(sheet)
    }

    /// Starts a sheet: its name, its column widths, the header row, frozen.
    fn begin(&mut self) -> Result<(), XlsxError> {
        self.sheets += 1;
        let name = match self.sheets {
            1 => self.t.contacts_title.to_string(),
            n => format!("{} ({n})", self.t.contacts_title),
        };
        let ws = self.workbook.add_worksheet_with_constant_memory()?;
        ws.set_name(name)?;
        for (col, (column, width)) in (0u16..).zip(COLUMNS) {
            let title = column.title(self.t);
            ws.set_column_width(col, width.max(title.chars().count() as f64 + 2.0))?;
            ws.write_string_with_format(0, col, title, &self.header)?;
        }
        ws.set_freeze_panes(1, 0)?;
        self.row = 1;
        Ok(())
    }

    /// Ends the current sheet: a filter over its header and rows.
    fn close(&mut self) -> Result<(), XlsxError> {
        let last = self.row.saturating_sub(1);
        let ws = self
            .workbook
            .worksheet_from_index(usize::from(self.sheets - 1))?;
        ws.autofilter(0, 0, last, (COLUMNS.len() - 1) as u16)?;
        Ok(())
    }

    pub fn row(&mut self, r: &ContactRow) -> Result<(), XlsxError> {
        if self.row >= self.rows_per_sheet {
            self.close()?;
            self.begin()?;
        }
        let row = self.row;
        let ws = self
            .workbook
            .worksheet_from_index(usize::from(self.sheets - 1))?;
        for (col, (column, _)) in (0u16..).zip(COLUMNS) {
            match value(column, r, self.t) {
                Cell::Empty => {}
                Cell::Text(s) => {
                    ws.write_string_with_format(row, col, s, &self.text)?;
                }
                Cell::Number(n) => {
                    ws.write_number(row, col, n)?;
                }
                Cell::Date(d) => {
                    ws.write_datetime_with_format(row, col, d, &self.date)?;
                }
                Cell::DateTime(d) => {
                    ws.write_datetime_with_format(row, col, d, &self.datetime)?;
                }
            }
        }
        self.row += 1;
        Ok(())
    }

    /// Finishes the workbook in a scratch file of its own, ready to be read from the start.
    pub fn finish(mut self) -> Result<std::fs::File, XlsxError> {
        self.close()?;
        let mut file = crate::files::private_scratch_file_in(self.scratch.path())?;
        self.workbook.save_to_writer(&mut file)?;
        file.seek(SeekFrom::Start(0))?;
        // The folder goes now; the open file stays readable until it is dropped.
        Ok(file)
    }
}

impl From<XlsxError> for Stop {
    fn from(e: XlsxError) -> Self {
        Stop::Sheet(e.to_string())
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Sheet(e.to_string())
    }
}

/// Writes the whole list into a workbook; returns it with its row count.
pub(super) fn fill(
    conn: &mut DbConnection,
    filter: &ContactFilter,
    lang: Language,
) -> Result<(Sheet, u64), Stop> {
    let mut sheet = Sheet::new(lang)?;
    let rows = db::contact_list::for_each(conn, filter, |row| sheet.row(&row).map_err(Stop::from))?;
    Ok((sheet, rows))
}

/// Finishes the workbook in a private scratch file, then sends the file through `send`, chunk
/// by chunk (no database connection is held meanwhile).
pub(super) fn send(sheet: Sheet, send: &mut impl FnMut(Vec<u8>) -> bool) -> Result<(), Stop> {
    let mut file = sheet.finish()?;
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        if file.by_ref().take(CHUNK as u64).read_to_end(&mut chunk)? == 0 {
            return Ok(());
        }
        if !send(chunk) {
            return Err(Stop::Gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::appointment::{Kind, Status};

    fn row(last_name: &str) -> ContactRow {
        let at = chrono::NaiveDate::from_ymd_opt(2022, 5, 16)
            .and_then(|d| d.and_hms_opt(7, 30, 0))
            .unwrap_or_default();
        ContactRow {
            appointment_id: "0196c3a0-0000-7000-8000-000000000001".into(),
            priority: 2,
            kind: Kind::Operation,
            service: "ARL-ORTHO".into(),
            label: "Prothèse de hanche".into(),
            original_scheduled_at: at,
            patient_last_name: last_name.into(),
            patient_first_name: "Anne".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1950, 2, 3).unwrap_or_default(),
            phone: Some("+3261234567".into()),
            email: None,
            language: Language::Nl,
            attempts: 0,
            last_outcome: None,
            last_attempt_at: None,
            proposed_at: None,
            patient_request: None,
            status: Status::Postponed,
            scheduled_at: at,
        }
    }

    #[test]
    fn the_columns_are_titled_in_each_language_with_the_id_last() {
        assert_eq!(titles(Language::Fr)[0], "Priorité");
        assert_eq!(titles(Language::Nl)[6], "Voornaam");
        assert_eq!(titles(Language::De)[7], "Geburtsdatum");
        assert_eq!(titles(Language::En)[14], "Appointment id");
        for lang in Language::ALL {
            let t = titles(lang);
            let distinct: std::collections::HashSet<_> = t.iter().collect();
            assert_eq!(distinct.len(), t.len(), "{lang:?}");
        }
    }

    #[test]
    fn cells_are_text_numbers_or_dates() {
        let t = texts(Language::Fr);
        let r = row("=HYPERLINK(\"http://evil\",\"x\")");
        assert!(matches!(value(Column::Priority, &r, t), Cell::Number(n) if n == 2.0));
        assert!(
            matches!(value(Column::LastName, &r, t), Cell::Text(s) if s.starts_with("=HYPERLINK"))
        );
        assert!(matches!(value(Column::Phone, &r, t), Cell::Text(s) if s == "+32 61 23 45 67"));
        assert!(matches!(value(Column::Language, &r, t), Cell::Text(s) if s == "Nederlands"));
        assert!(matches!(value(Column::Kind, &r, t), Cell::Text(s) if s == "Opération"));
        assert!(matches!(value(Column::Original, &r, t), Cell::DateTime(_)));
        assert!(matches!(value(Column::BirthDate, &r, t), Cell::Date(_)));
        assert!(matches!(value(Column::Email, &r, t), Cell::Empty));
        let old = ContactRow {
            birth_date: chrono::NaiveDate::from_ymd_opt(1895, 7, 1).unwrap_or_default(),
            ..row("Ancienne")
        };
        assert!(matches!(value(Column::BirthDate, &old, t), Cell::Text(s) if s == "01/07/1895"));
    }

    #[test]
    fn overlong_text_is_cut_to_what_a_cell_holds() {
        let Cell::Text(s) = text(&"é".repeat(40_000)) else {
            panic!("text")
        };
        assert_eq!(s.encode_utf16().count(), EXCEL_TEXT);
    }

    #[test]
    fn a_list_longer_than_a_sheet_goes_on_in_another_one() {
        let mut sheet = Sheet::with_rows_per_sheet(Language::Fr, 3).expect("sheet");
        for i in 0..5 {
            sheet.row(&row(&format!("Patient{i}"))).expect("row");
        }
        assert_eq!(sheet.sheets, 3, "two rows under each header");
        let scratch = sheet.scratch.path().to_path_buf();
        let file = sheet.finish().expect("saved");
        assert!(file.metadata().expect("metadata").len() > 0);
        assert!(!scratch.exists(), "the scratch folder is gone");
    }
}
