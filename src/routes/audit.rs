//! `/api/v1/audit`: the audit log, newest first (admins only).

use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{parse_instant, utc, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::audit::{AuditFilter, AuditRow};
use crate::domain::Faults;
use crate::error::{AppResult, Problem};
use crate::service::audit;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries at or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Entries before this instant (RFC 3339).
    pub to: Option<String>,
    /// Account id of the actor.
    pub actor: Option<String>,
    /// Action name, such as `user.create` or `auth.denied`.
    pub action: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Account id, or null for the command line and unrecognised callers.
    pub actor: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    /// The client address of the request (`REPRISE_TRUSTED_PROXIES`), when it came over HTTP.
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// How many times it happened in the entry's minute: refusals are aggregated, one entry
    /// per address, account, route, reason and minute.
    pub count: i32,
}

/// Read the audit log.
#[utoipa::path(
    operation_id = "audit_list",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = Page<AuditEntry>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/audit")]
pub async fn list(
    _caller: Granted<perm::ReadAudit>,
    state: web::Data<AppState>,
    query: ApiQuery<AuditQuery>,
) -> AppResult<web::Json<Page<AuditEntry>>> {
    let q = query.parse()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let mut fields = Faults::default();
    let from = fields.check_opt("from", q.from.as_deref(), parse_instant);
    let to = fields.check_opt("to", q.to.as_deref(), parse_instant);
    let before_id = fields.check_opt("cursor", page.cursor.as_deref(), |c| {
        c.parse::<i64>()
            .map_err(|_| crate::domain::Invalid("is not a cursor of this list".into()))
    });
    let filter =
        fields.finish(
            from.zip(to)
                .zip(before_id)
                .map(|((from, to), before_id)| AuditFilter {
                    from,
                    to,
                    actor: q.actor,
                    action: q.action,
                    before_id,
                }),
        )?;
    let rows = audit::list(&state, filter, page.fetch()).await?;
    Ok(web::Json(page.page(
        rows,
        |r| r.id.to_string(),
        AuditEntry::from,
    )))
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            at: utc(r.at),
            actor: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            target: r.target,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            request_id: r.request_id,
            address: r.address,
            user_agent: r.user_agent,
            count: r.occurrences,
        }
    }
}
