//! The database as a whole: a backup copy of a SQLite database.

use crate::auth::Caller;
use crate::db::Db;
use crate::error::AppError;

/// Why a backup did not happen: its audit entry could not be written, or the copy failed.
#[derive(Debug)]
pub enum BackupError {
    Audit(AppError),
    Copy(String),
}

/// Copies the database into the empty file `target` as one read transaction sees it
/// (`VACUUM INTO`, without stopping the writer), after auditing `database.backup`, so that the
/// copy holds its own audit entry.
pub fn backup(db: &Db, caller: Caller, target: String) -> Result<(), BackupError> {
    db.write_blocking(move |conn| {
        crate::audit::record(
            conn,
            &caller,
            "database.backup",
            None,
            serde_json::json!({}),
        )
        .map_err(AppError::from)
    })
    .map_err(BackupError::Audit)?;
    // VACUUM cannot run inside a transaction: a pooled connection, not the writer.
    db.read_blocking(move |conn| crate::db::backup_into(conn, &target))
        .map_err(|e| BackupError::Copy(e.to_string()))
}
