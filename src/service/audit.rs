//! Reading the audit log (admins only; reading it is not itself audited).

use crate::db::{self, audit::AuditFilter, audit::AuditRow};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Up to `limit` entries matching the filter, newest first.
pub async fn list(state: &AppState, filter: AuditFilter, limit: i64) -> AppResult<Vec<AuditRow>> {
    state
        .db
        .read(move |conn| db::audit::list(conn, &filter, limit).map_err(AppError::from))
        .await
}
