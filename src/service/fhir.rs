//! FHIR R4 (CONTRACT §4.10): a patient or an appointment read, appointments searched, and the
//! export of every resource type from one snapshot. Reads are audited as the API's are
//! (`patient.read`, `appointment.read`, `appointment.list`, with `"via": "fhir"`), and count
//! against `REPRISE_PATIENTS_PER_HOUR`; an export is audited as `fhir.export` with its types
//! and counts, as a contact-list export is.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::Value;

use crate::auth::Caller;
use crate::db::{self, appointments::AppointmentRow, fhir::AppointmentSearch, Db};
use crate::error::{AppError, AppResult};
use crate::fhir::{self, AppointmentExtras, ResourceType};
use crate::state::AppState;

/// The patient `id`, audited and counted against the caller's hourly budget of patients.
pub async fn read_patient(state: &AppState, caller: Caller, id: String) -> AppResult<Value> {
    let limit = state.settings.patients_per_hour;
    state
        .db
        .write(move |conn| {
            let patient = db::patients::find(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such patient".into()))?;
            super::patients::shown(
                conn,
                &caller,
                limit,
                &id,
                serde_json::json!({ "via": "fhir" }),
            )?;
            Ok::<_, AppError>(patient_resource(conn, &patient)?)
        })
        .await
}

/// An appointment's resource, audited.
pub async fn read_appointment(state: &AppState, caller: Caller, id: String) -> AppResult<Value> {
    state
        .db
        .write(move |conn| {
            let row = super::appointments::shown(conn, &caller, &id, Some("fhir"))?;
            resources(conn, vec![row])?
                .pop()
                .ok_or_else(|| AppError::Internal("an appointment vanished".into()))
        })
        .await
}

/// Rows as resources, with what each needs beyond its row (read for the rows at once).
fn resources(
    conn: &mut db::DbConnection,
    rows: Vec<AppointmentRow>,
) -> Result<Vec<Value>, db::DbError> {
    let minutes = db::fhir::operation_minutes(conn)?;
    let extras = page_extras(conn, &rows, &minutes, true)?;
    Ok(rows
        .iter()
        .zip(&extras)
        .map(|(row, extras)| fhir::appointment(row, extras))
        .collect())
}

/// What each appointment of a page needs beyond its row, read for the page at once: the
/// reasons of the cancelled ones, the identifiers imports brought (if any import did).
fn page_extras(
    conn: &mut db::DbConnection,
    rows: &[AppointmentRow],
    minutes: &HashMap<String, i32>,
    any_imported: bool,
) -> Result<Vec<AppointmentExtras>, db::DbError> {
    let cancelled: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == crate::domain::appointment::Status::Cancelled)
        .map(|r| r.id.as_str())
        .collect();
    let reasons = db::fhir::cancel_reasons(conn, &cancelled)?;
    let mut imported = if any_imported {
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        db::fhir::identifiers_of(conn, &ids)?
    } else {
        HashMap::new()
    };
    Ok(rows
        .iter()
        .map(|row| AppointmentExtras {
            cancel_reason: reasons.get(&row.id).copied(),
            operation_minutes: minutes.get(&row.service_code).copied(),
            identifiers: imported.remove(&row.id).unwrap_or_default(),
        })
        .collect())
}

/// A patient as a resource, with the identifiers an import brought.
pub fn patient_resource(
    conn: &mut db::DbConnection,
    row: &db::patients::PatientRow,
) -> Result<Value, db::DbError> {
    let imported = db::fhir::identifiers_of(conn, &[row.id.as_str()])?;
    Ok(fhir::patient(
        row,
        imported.get(&row.id).map_or(&[][..], Vec::as_slice),
    ))
}

/// A page of an Appointment search: the resources, and the key to ask for the next page with
/// (`None` on the last one).
#[derive(Debug)]
pub struct SearchPage {
    pub resources: Vec<Value>,
    pub next: Option<(NaiveDateTime, String)>,
}

/// Appointments matching `search`, `count` of them, oldest change first; audited with how
/// many were shown.
pub async fn search_appointments(
    state: &AppState,
    caller: Caller,
    search: AppointmentSearch,
    count: i64,
) -> AppResult<SearchPage> {
    state
        .db
        .write(move |conn| {
            let mut rows = db::fhir::search_appointments(conn, &search, count + 1)?;
            let more = rows.len() > usize::try_from(count).unwrap_or(usize::MAX);
            rows.truncate(usize::try_from(count).unwrap_or(usize::MAX));
            let next = more
                .then(|| rows.last().map(|r| (r.updated_at, r.id.clone())))
                .flatten();
            let shown = rows.len();
            let resources = resources(conn, rows)?;
            crate::audit::record(
                conn,
                &caller,
                "appointment.list",
                None,
                serde_json::json!({
                    "via": "fhir", "patient": search.patient_id, "rows": shown,
                }),
            )?;
            Ok::<_, AppError>(SearchPage { resources, next })
        })
        .await
}

/// What to export: these types, changed after `since` (everything without it).
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub types: Vec<ResourceType>,
    pub since: Option<NaiveDateTime>,
}

/// An export done: the instant its snapshot shows, and how many resources of each type.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub transaction_time: NaiveDateTime,
    pub counts: Vec<(ResourceType, u64)>,
}

/// Why an export stopped.
#[derive(Debug)]
pub enum ExportError {
    /// The database (or the audit entry) failed.
    Failed(AppError),
    /// The sink refused a resource (a file that cannot be written, a reader gone).
    Sink(std::io::Error),
}

impl From<db::DbError> for ExportError {
    fn from(e: db::DbError) -> Self {
        ExportError::Failed(e.into())
    }
}

impl From<diesel::result::Error> for ExportError {
    fn from(e: diesel::result::Error) -> Self {
        ExportError::Failed(db::DbError::from(e).into())
    }
}

/// Where an export's resources go: files, or the rows of a bulk export.
pub trait Sink {
    /// One resource as JSON: a line of NDJSON without its newline.
    fn resource(&mut self, kind: ResourceType, json: &[u8]) -> std::io::Result<()>;
    /// After the last resource, before the export is audited.
    fn end(&mut self) -> std::io::Result<()>;
}

/// How long a write may take from the instant it stamps on its rows (`updated_at`, an
/// attempt's `at`) to its commit: a request waiting for its turn, a large import. An export's
/// `transactionTime` is its snapshot's start less this margin, so that the next export
/// `_since` that instant has every change the snapshot could not see yet; what changed
/// within the margin comes in both, as the same resource again.
pub const WRITE_SETTLE: chrono::Duration = chrono::Duration::minutes(1);

/// Hands every resource of `request` to `sink`, type by type in export order, a page at a
/// time from one snapshot of the database: no resource appears twice or is missed across
/// types, and memory does not grow with the export. Audited (`fhir.export`: who, the types,
/// `_since`, the counts) once the sink has taken the last resource.
pub fn export(
    db: &Db,
    caller: &Caller,
    request: &ExportRequest,
    sink: &mut dyn Sink,
) -> Result<ExportSummary, ExportError> {
    let since = request.since;
    let summary = db.read_blocking(|conn| {
        db::fhir::snapshot(conn, |conn| {
            // Before the snapshot, less the margin: a write stamped before it but committed
            // after the snapshot began is newer than it, so the next `_since` has it.
            let transaction_time = crate::domain::now() - WRITE_SETTLE;
            let mut counts = Vec::new();
            for &kind in &request.types {
                let n = export_type(conn, kind, since, &mut |v| sink.resource(kind, v))?;
                counts.push((kind, n));
            }
            Ok::<_, ExportError>(ExportSummary {
                transaction_time,
                counts,
            })
        })
    })?;
    sink.end().map_err(ExportError::Sink)?;
    let (audit_caller, audited) = (caller.clone(), summary.clone());
    let types: Vec<&str> = request.types.iter().map(|t| t.as_str()).collect();
    let details = serde_json::json!({
        "types": types,
        "since": since.map(fhir::instant),
        "transaction_time": fhir::instant(audited.transaction_time),
        "counts": audited.counts.iter().map(|(t, n)| (t.as_str().to_string(), *n)).collect::<HashMap<_, _>>(),
        "resources": audited.counts.iter().map(|(_, n)| n).sum::<u64>(),
    });
    db.write_blocking(move |conn| {
        crate::audit::record(conn, &audit_caller, "fhir.export", None, details)
            .map_err(AppError::from)
    })
    .map_err(ExportError::Failed)?;
    Ok(summary)
}

/// One type's resources through `each`, a page at a time; how many.
fn export_type(
    conn: &mut db::DbConnection,
    kind: ResourceType,
    since: Option<NaiveDateTime>,
    each: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(4096);
    let mut send_json = |json: &[u8]| {
        n += 1;
        each(json).map_err(ExportError::Sink)
    };
    let mut send = |v: &Value| {
        let mut buf = Vec::with_capacity(1024);
        let _ = serde_json::to_writer(&mut buf, v);
        send_json(&buf)
    };
    match kind {
        ResourceType::Patient => {
            let any_imported = db::fhir::any_identifiers(conn)?;
            let mut after: Option<String> = None;
            let read = move |conn: &mut db::DbConnection| {
                let rows = db::fhir::patients_page(conn, since, after.as_deref())?;
                let Some(last) = rows.last() else {
                    return Ok(None);
                };
                after = Some(last.id.clone());
                let imported = if any_imported {
                    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                    db::fhir::identifiers_of(conn, &ids)?
                } else {
                    HashMap::new()
                };
                Ok(Some((rows, imported)))
            };
            pipelined(conn, read, |(rows, imported)| {
                for row in &rows {
                    let extra = imported.get(&row.id).map_or(&[][..], Vec::as_slice);
                    buf.clear();
                    fhir::write_patient(&mut buf, row, extra);
                    send_json(&buf)?;
                }
                Ok(())
            })?;
        }
        ResourceType::Appointment => {
            let minutes = db::fhir::operation_minutes(conn)?;
            let any_imported = db::fhir::any_identifiers(conn)?;
            let mut after: Option<String> = None;
            let read = |conn: &mut db::DbConnection| {
                let rows = db::fhir::appointments_page(conn, since, after.as_deref())?;
                let Some(last) = rows.last() else {
                    return Ok(None);
                };
                after = Some(last.id.clone());
                let extras = page_extras(conn, &rows, &minutes, any_imported)?;
                Ok(Some((rows, extras)))
            };
            pipelined(conn, read, |(rows, extras)| {
                for (row, extras) in rows.iter().zip(&extras) {
                    buf.clear();
                    fhir::write_appointment(&mut buf, row, extras);
                    send_json(&buf)?;
                }
                Ok(())
            })?;
        }
        ResourceType::Communication => {
            let mut after: Option<String> = None;
            loop {
                let rows = db::fhir::attempts_page(conn, since, after.as_deref())?;
                for (row, patient) in &rows {
                    send(&fhir::attempt(row, patient))?;
                }
                match rows.last() {
                    Some((last, _)) => after = Some(last.id.clone()),
                    None => break,
                }
            }
            let mut after: Option<String> = None;
            loop {
                let rows = db::fhir::emails_page(conn, since, after.as_deref())?;
                for row in &rows {
                    if let Some(v) = fhir::email(row) {
                        send(&v)?;
                    }
                }
                match rows.last() {
                    Some(last) => after = Some(last.id.clone()),
                    None => break,
                }
            }
        }
        ResourceType::Location => {
            for (site, updated) in db::fhir::sites_changed(conn, since)? {
                send(&fhir::location(&site, updated))?;
            }
        }
        ResourceType::HealthcareService => {
            for service in db::fhir::services_changed(conn, since)? {
                send(&fhir::healthcare_service(&service))?;
            }
        }
    }
    Ok(n)
}

/// Pages `read` on a thread of their own and handed to `write` on this one, one page ahead:
/// the next page is queried and decoded while this one is written. Stops at the first error
/// of either; `read` answers `None` after the last page.
fn pipelined<P: Send>(
    conn: &mut db::DbConnection,
    mut read: impl FnMut(&mut db::DbConnection) -> Result<Option<P>, ExportError> + Send,
    mut write: impl FnMut(P) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    std::thread::scope(|scope| {
        let (pages, received) = std::sync::mpsc::sync_channel::<Result<P, ExportError>>(1);
        std::thread::Builder::new()
            .name("fhir-export-reader".into())
            .spawn_scoped(scope, move || loop {
                let page = read(conn).transpose();
                let last = !matches!(page, Some(Ok(_)));
                // A closed channel: the writer stopped, and so does the reader.
                if page.is_some_and(|page| pages.send(page).is_err()) || last {
                    return;
                }
            })
            .map_err(|e| {
                ExportError::Failed(AppError::Internal(format!("no reader thread: {e}")))
            })?;
        // Leaving early drops `received`: the reader's next send fails and it stops.
        for page in received {
            write(page?)?;
        }
        Ok(())
    })
}

/// How long a finished bulk export's files are kept (the Bulk Data guide's "expires").
pub const EXPORT_KEPT: chrono::Duration = chrono::Duration::hours(1);
/// Resources per file of a bulk export: a file is held in memory once while it is made and
/// once while it is served, whatever the size of the export.
pub const FILE_RESOURCES: usize = 10_000;
/// A running export whose maker has not written for this long has lost its instance.
pub const EXPORT_STALE: chrono::Duration = chrono::Duration::minutes(2);

/// Starts a bulk export for `caller` (who alone may read it) and makes it in the background,
/// on this instance; its id. One running export per account: another is a 429.
pub async fn start_export(
    state: &AppState,
    caller: Caller,
    request: ExportRequest,
    request_url: String,
) -> AppResult<String> {
    let owner = caller
        .id
        .clone()
        .ok_or_else(|| AppError::Forbidden("a bulk export needs an account".into()))?;
    let now = crate::domain::now();
    let row = db::fhir::ExportRow {
        // Random, not time-ordered: the status URL names it.
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: owner,
        types: request
            .types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(","),
        since: request.since,
        request: request_url,
        status: crate::domain::export::ExportStatus::Running,
        created_at: now,
        heartbeat_at: now,
        progress: String::new(),
        transaction_time: None,
        finished_at: None,
        expires_at: now + EXPORT_KEPT,
        error: None,
    };
    let (audited, id) = (caller.clone(), row.id.clone());
    state
        .db
        .write(move |conn| {
            if db::fhir::running_of(conn, &row.owner_id)? > 0 {
                return Err(AppError::TooManyRequests(5));
            }
            db::fhir::insert_export(conn, &row)?;
            crate::audit::record(
                conn,
                &audited,
                "fhir_export.start",
                Some(&format!("fhir_export:{}", row.id)),
                serde_json::json!({ "types": row.types, "since": row.since.map(fhir::instant) }),
            )?;
            Ok::<_, AppError>(())
        })
        .await?;
    let (db, made) = (state.db.clone(), id.clone());
    tokio::task::spawn_blocking(move || make_export(&db, &caller, &made, &request));
    Ok(id)
}

/// Makes export `id`: its files stored as they fill, then `done` (or `failed`). Stops at the
/// next file if it was cancelled meanwhile.
fn make_export(db: &Db, caller: &Caller, id: &str, request: &ExportRequest) {
    let mut files = StoredFiles {
        db: db.clone(),
        id: id.to_string(),
        kind: None,
        body: Vec::new(),
        resources: 0,
        seq: 0,
        done: 0,
        storing: None,
    };
    let outcome = export(db, caller, request, &mut files);
    let now = crate::domain::now();
    let ended = match &outcome {
        Ok(summary) => Ok(summary.transaction_time),
        Err(ExportError::Sink(e)) if e.kind() == std::io::ErrorKind::Interrupted => return,
        Err(e) => {
            tracing::error!(error = ?e, "a bulk export failed");
            Err("the export failed; start another")
        }
    };
    let (db_id, error) = (id.to_string(), ended.err().map(str::to_string));
    let at = ended.ok();
    let finished = db.write_blocking(move |conn| {
        let outcome = match (&at, &error) {
            (Some(at), _) => Ok(*at),
            (None, Some(e)) => Err(e.as_str()),
            (None, None) => Err("the export failed"),
        };
        db::fhir::finish(conn, &db_id, outcome, now, now + EXPORT_KEPT).map_err(db::DbError::from)
    });
    if let Err(e) = finished {
        tracing::error!(error = %e, "could not end a bulk export");
    }
}

/// The files of a bulk export, stored as they fill: a file holds one type, at most
/// [`FILE_RESOURCES`] resources. A file is stored on a thread of its own while the next one
/// is made (one at a time, in order): memory holds two files at most.
struct StoredFiles {
    db: Db,
    id: String,
    kind: Option<ResourceType>,
    body: Vec<u8>,
    resources: usize,
    seq: i32,
    /// Resources handed to be stored so far.
    done: usize,
    /// The file being stored.
    storing: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl StoredFiles {
    /// Waits for the file being stored: an error if it could not be, `Interrupted` if the
    /// export is no longer running (cancelled, or failed by housekeeping).
    fn stored(&mut self) -> std::io::Result<()> {
        match self.storing.take() {
            Some(storing) => storing
                .join()
                .map_err(|_| std::io::Error::other("storing a file panicked"))?,
            None => Ok(()),
        }
    }

    fn store(&mut self) -> std::io::Result<()> {
        let Some(kind) = self.kind else {
            return Ok(());
        };
        if self.resources == 0 {
            return Ok(());
        }
        self.stored()?;
        self.done += self.resources;
        let (id, seq, body) = (self.id.clone(), self.seq, std::mem::take(&mut self.body));
        let resources = i32::try_from(self.resources).unwrap_or(i32::MAX);
        let progress = format!("{}: {} resources exported", kind.as_str(), self.done);
        let db = self.db.clone();
        let storing = std::thread::Builder::new().name("fhir-export-store".into());
        self.storing = Some(storing.spawn(move || {
            let body = lz4_flex::block::compress_prepend_size(&body);
            let now = crate::domain::now();
            let going_on = db
                .write_blocking(move |conn| {
                    if !db::fhir::beat(conn, &id, &progress, now)? {
                        return Ok(false);
                    }
                    db::fhir::insert_file(conn, &id, seq, kind.as_str(), resources, &body)?;
                    Ok::<_, db::DbError>(true)
                })
                .map_err(std::io::Error::other)?;
            if going_on {
                Ok(())
            } else {
                // Cancelled (or failed by housekeeping): stop without a word.
                Err(std::io::Error::from(std::io::ErrorKind::Interrupted))
            }
        })?);
        self.seq += 1;
        self.resources = 0;
        Ok(())
    }
}

impl Sink for StoredFiles {
    fn resource(&mut self, kind: ResourceType, json: &[u8]) -> std::io::Result<()> {
        if self.kind != Some(kind) {
            self.store()?;
            self.kind = Some(kind);
        }
        self.body.extend_from_slice(json);
        self.body.push(b'\n');
        self.resources += 1;
        if self.resources >= FILE_RESOURCES {
            self.store()?;
        }
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.store()?;
        self.stored()
    }
}

/// A bulk export of `caller`'s, with its files: 404 for another account's, an unknown or an
/// expired one alike.
pub async fn export_status(
    state: &AppState,
    caller: Caller,
    id: String,
) -> AppResult<(db::fhir::ExportRow, Vec<db::fhir::ExportFile>)> {
    state
        .db
        .read(move |conn| {
            let row = owned(conn, &caller, &id)?;
            let files = db::fhir::files_of(conn, &id)?;
            Ok::<_, AppError>((row, files))
        })
        .await
}

fn owned(conn: &mut db::DbConnection, caller: &Caller, id: &str) -> AppResult<db::fhir::ExportRow> {
    let now = crate::domain::now();
    db::fhir::find_export(conn, id)?
        .filter(|row| Some(&row.owner_id) == caller.id.as_ref())
        .filter(|row| {
            row.status == crate::domain::export::ExportStatus::Running || row.expires_at > now
        })
        .ok_or_else(|| AppError::NotFound("no such export".into()))
}

/// One file of a finished export of `caller`'s: its type and NDJSON.
pub async fn export_file(
    state: &AppState,
    caller: Caller,
    id: String,
    seq: i32,
) -> AppResult<(String, Vec<u8>)> {
    state
        .db
        .read(move |conn| {
            let row = owned(conn, &caller, &id)?;
            if row.status != crate::domain::export::ExportStatus::Done {
                return Err(AppError::NotFound("no such file".into()));
            }
            let (kind, body) = db::fhir::file_body(conn, &id, seq)?
                .ok_or_else(|| AppError::NotFound("no such file".into()))?;
            Ok((kind, decompressed(&body)?))
        })
        .await
}

/// A stored file's NDJSON. The size it claims is checked first: LZ4 cannot expand bytes more
/// than 255 times, so a damaged row cannot make it reserve gigabytes.
fn decompressed(stored: &[u8]) -> AppResult<Vec<u8>> {
    let damaged = || AppError::Internal("a stored export file is damaged".into());
    let claimed = stored
        .first_chunk::<4>()
        .map(|size| u32::from_le_bytes(*size) as usize)
        .ok_or_else(damaged)?;
    if claimed > stored.len().saturating_mul(255) {
        return Err(damaged());
    }
    lz4_flex::block::decompress_size_prepended(stored).map_err(|_| damaged())
}

/// Cancels a running export of `caller`'s or removes a finished one, with its files; audited.
pub async fn cancel_export(state: &AppState, caller: Caller, id: String) -> AppResult<()> {
    state
        .db
        .write(move |conn| {
            let row = owned(conn, &caller, &id)?;
            db::fhir::delete_export(conn, &id)?;
            crate::audit::record(
                conn,
                &caller,
                "fhir_export.cancel",
                Some(&format!("fhir_export:{id}")),
                serde_json::json!({ "status": row.status }),
            )?;
            Ok::<_, AppError>(())
        })
        .await
}

/// Housekeeping, on every instance: exports whose instance stopped are failed, exports past
/// their hour removed with their files.
pub async fn expire_exports(db: &Db) -> Result<(usize, usize), db::DbError> {
    let now = crate::domain::now();
    db.write(move |conn| {
        db::fhir::expire_exports(conn, now, now - EXPORT_STALE, now + EXPORT_KEPT)
            .map_err(db::DbError::from)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> (tempfile::TempDir, db::DbConnection) {
        let dir = tempfile::tempdir().expect("dir");
        let url = db::DatabaseUrl::parse(&format!("sqlite://{}/p.db", dir.path().display()))
            .expect("url");
        let conn = url.connect().expect("a connection");
        (dir, conn)
    }

    #[test]
    fn a_stored_file_reads_back_and_a_damaged_one_is_refused_without_a_huge_allocation() {
        let ndjson = b"{\"resourceType\":\"Patient\"}\n".repeat(1000);
        let stored = lz4_flex::block::compress_prepend_size(&ndjson);
        assert!(stored.len() < ndjson.len() / 10, "{} bytes", stored.len());
        assert_eq!(decompressed(&stored).expect("read back"), ndjson);
        // A size prefix claiming 4 GiB: refused before anything is reserved.
        let mut lying = stored.clone();
        lying[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decompressed(&lying), Err(AppError::Internal(_))));
        // Cut short, or not even a size.
        assert!(decompressed(&stored[..stored.len() / 2]).is_err());
        assert!(decompressed(&[1, 2]).is_err());
    }

    #[test]
    fn pages_come_in_order_and_an_error_on_either_side_stops_both() {
        let (_dir, mut conn) = connection();
        let (mut n, mut got) = (0, Vec::new());
        let read = |_: &mut db::DbConnection| {
            n += 1;
            Ok((n <= 5).then_some(n))
        };
        pipelined(&mut conn, read, |page| {
            got.push(page);
            Ok(())
        })
        .expect("every page");
        assert_eq!(got, [1, 2, 3, 4, 5]);

        // The reader fails at its third page: the two before are written, then its error.
        let (mut n, mut got) = (0, Vec::new());
        let read = |_: &mut db::DbConnection| {
            n += 1;
            if n == 3 {
                return Err(ExportError::Failed(AppError::Internal("read".into())));
            }
            Ok(Some(n))
        };
        let outcome = pipelined(&mut conn, read, |page| {
            got.push(page);
            Ok(())
        });
        assert!(
            matches!(outcome, Err(ExportError::Failed(_))),
            "{outcome:?}"
        );
        assert_eq!(got, [1, 2]);

        // The writer fails at its second page: the endless reader stops soon after.
        let mut n = 0;
        let read = |_: &mut db::DbConnection| {
            n += 1;
            Ok(Some(n))
        };
        let outcome = pipelined(&mut conn, read, |page| {
            if page == 2 {
                return Err(ExportError::Sink(std::io::Error::other("write")));
            }
            Ok(())
        });
        assert!(matches!(outcome, Err(ExportError::Sink(_))), "{outcome:?}");
        assert!(n <= 4, "the reader went on for {n} pages");
    }
}
