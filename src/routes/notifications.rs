//! `GET /api/v1/notifications`: the email outbox and what became of each email.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{utc, ApiQuery, Page, PageRequest};
use crate::auth::{perm, Granted};
use crate::db::{self, notifications::NotificationFilter, notifications::NotificationRow};
use crate::domain::notification::NotificationStatus;
use crate::error::{AppError, AppResult, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// `queued`, `sent` or `failed`.
    pub status: Option<String>,
    pub patient_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationResponse {
    pub id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    /// `appointment_postponed`, `site_reopened` or `appointment_rescheduled`.
    pub template: String,
    pub language: String,
    /// The address it goes to.
    pub to: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<NotificationRow> for NotificationResponse {
    fn from(r: NotificationRow) -> Self {
        Self {
            id: r.id,
            patient_id: r.patient_id,
            appointment_id: r.appointment_id,
            template: r.template.to_string(),
            language: r.language.to_string(),
            to: r.to_address,
            status: r.status.to_string(),
            attempts: r.attempts,
            last_error: r.last_error,
            sent_at: r.sent_at.map(utc),
            created_at: utc(r.created_at),
        }
    }
}

/// List notifications (audited: they carry patients' addresses).
#[utoipa::path(
    operation_id = "notifications_list",
    tag = "notifications",
    params(NotificationQuery),
    responses(
        (status = 200, body = Page<NotificationResponse>),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[get("/notifications")]
pub async fn list(
    caller: Granted<perm::ReadNotifications>,
    state: web::Data<AppState>,
    query: ApiQuery<NotificationQuery>,
) -> AppResult<web::Json<Page<NotificationResponse>>> {
    let q = query.parse()?;
    let status = q
        .status
        .as_deref()
        .map(NotificationStatus::parse)
        .transpose()
        .map_err(|_| AppError::validation("status", "must be queued, sent or failed"))?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let filter = NotificationFilter {
        status,
        patient_id: q.patient_id,
        after_id: page.cursor.clone(),
    };
    let fetch = page.fetch();
    let caller = caller.caller;
    let rows = state
        .db
        .write(move |conn| {
            let rows = db::notifications::list(conn, &filter, fetch)?;
            crate::audit::record(
                conn,
                &caller,
                "notification.list",
                None,
                serde_json::json!({ "status": filter.status, "patient": filter.patient_id, "rows": rows.len() }),
            )?;
            Ok::<_, AppError>(rows)
        })
        .await?;
    Ok(web::Json(page.page(
        rows,
        |r| r.id.clone(),
        NotificationResponse::from,
    )))
}
