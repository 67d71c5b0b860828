//! `/api/v1/incidents`: declare an IT shutdown, postpone what it hits, extend it.

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{utc, ApiJson};
use crate::auth::{perm, Granted};
use crate::domain::incident::{IncidentInput, NewIncident};
use crate::domain::time::parse_instant;
use crate::error::{AppError, AppResult, Problem};
use crate::service::incidents::{self, Applied};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncident {
    #[schema(example = "Ransomware attack")]
    pub title: String,
    /// RFC 3339; care scheduled from this instant is postponed.
    #[schema(example = "2022-05-14T02:00:00+02:00")]
    pub started_at: String,
    /// RFC 3339; care scheduled before this instant is postponed.
    #[schema(example = "2022-06-04T00:00:00+02:00")]
    pub postpone_until: String,
    /// Codes of the sites it closes.
    pub sites: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendIncident {
    /// RFC 3339; later than the current end.
    pub postpone_until: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentResponse {
    pub id: String,
    pub title: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub postpone_until: chrono::DateTime<chrono::Utc>,
    pub sites: Vec<String>,
    /// Appointments this request postponed.
    pub postponed: i64,
    /// Urgent appointments in the window, kept.
    pub kept_urgent: i64,
    /// Essential (not urgent) appointments in the window, kept.
    pub kept_essential: i64,
    /// `appointment_postponed` emails queued (patients with an address and consent).
    pub notifications_queued: i64,
}

impl From<Applied> for IncidentResponse {
    fn from(a: Applied) -> Self {
        let (row, p) = (a.incident, a.done);
        Self {
            id: row.id,
            title: row.title,
            started_at: utc(row.started_at),
            postpone_until: utc(row.postpone_until),
            sites: a.sites,
            postponed: p.postponed,
            kept_urgent: p.kept_urgent,
            kept_essential: p.kept_essential,
            notifications_queued: p.notifications_queued,
        }
    }
}

/// Declare an incident: every scheduled, non-urgent, non-essential appointment at its sites in
/// its window is postponed (keeping its original date), and the sites close.
#[utoipa::path(
    operation_id = "incidents_create",
    tag = "incidents",
    request_body = CreateIncident,
    responses(
        (status = 201, body = IncidentResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/incidents")]
pub async fn create(
    caller: Granted<perm::ManageIncidents>,
    state: web::Data<AppState>,
    body: ApiJson<CreateIncident>,
) -> AppResult<HttpResponse> {
    let b = body.parse().await?;
    let new = NewIncident::parse(IncidentInput {
        title: &b.title,
        started_at: &b.started_at,
        postpone_until: &b.postpone_until,
        sites: &b.sites,
    })?;
    let applied = incidents::declare(&state, caller.caller, new).await?;
    Ok(HttpResponse::Created().json(IncidentResponse::from(applied)))
}

/// Extend an incident to a later end: the same postponement over the longer window.
/// Extending again to the same date changes nothing more.
#[utoipa::path(
    operation_id = "incidents_extend",
    tag = "incidents",
    request_body = ExtendIncident,
    params(("id" = String, Path, description = "incident id")),
    responses(
        (status = 200, body = IncidentResponse),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 422, body = Problem)
    ),
    security(("bearer" = []))
)]
#[post("/incidents/{id}/extend")]
pub async fn extend(
    caller: Granted<perm::ManageIncidents>,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: ApiJson<ExtendIncident>,
) -> AppResult<web::Json<IncidentResponse>> {
    let b = body.parse().await?;
    let until = parse_instant(&b.postpone_until)
        .map_err(|e| AppError::validation("postpone_until", e.0))?;
    let applied = incidents::extend(&state, caller.caller, id.into_inner(), until).await?;
    Ok(web::Json(applied.into()))
}
