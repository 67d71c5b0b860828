//! `/api/v1/incidents`: declare an IT shutdown, postpone what it hits, extend it.

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{utc, ApiJson, Fields};
use crate::auth::{perm, Caller, Granted};
use crate::db::{self, incidents::IncidentRow, incidents::Postponement, DbConnection};
use crate::domain::appointment::parse_text;
use crate::domain::time::parse_instant;
use crate::domain::SiteCode;
use crate::error::{AppError, AppResult, Problem};
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

fn response(row: IncidentRow, sites: Vec<String>, p: Postponement) -> IncidentResponse {
    IncidentResponse {
        id: row.id,
        title: row.title,
        started_at: utc(row.started_at),
        postpone_until: utc(row.postpone_until),
        sites,
        postponed: p.postponed,
        kept_urgent: p.kept_urgent,
        kept_essential: p.kept_essential,
        notifications_queued: p.notifications_queued,
    }
}

fn audit(
    conn: &mut DbConnection,
    caller: &Caller,
    action: &str,
    row: &IncidentRow,
    sites: &[String],
    p: Postponement,
) -> diesel::QueryResult<()> {
    crate::audit::record(
        conn,
        caller,
        action,
        Some(&format!("incident:{}", row.id)),
        serde_json::json!({
            "sites": sites, "postpone_until": utc(row.postpone_until),
            "rows": p.postponed, "kept_urgent": p.kept_urgent, "kept_essential": p.kept_essential,
        }),
    )
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
    let mut f = Fields::new();
    let title = f.check("title", parse_text(&b.title, 200));
    let started = f.check("started_at", parse_instant(&b.started_at));
    let until = f.check("postpone_until", parse_instant(&b.postpone_until));
    if let (Some(s), Some(u)) = (started, until) {
        if u <= s {
            f.push("postpone_until", "must be after started_at");
        }
    }
    let mut codes: Vec<String> = Vec::new();
    for raw in &b.sites {
        if let Some(code) = f.check("sites", SiteCode::parse(raw)) {
            if !codes.contains(&code.to_string()) {
                codes.push(code.into_string());
            }
        }
    }
    if b.sites.is_empty() {
        f.push("sites", "name at least one site");
    }
    let now = crate::domain::now();
    let row = f.finish((|| {
        Some(IncidentRow {
            id: uuid::Uuid::now_v7().to_string(),
            title: title?,
            started_at: started?,
            postpone_until: until?,
            created_at: now,
            created_by: caller.id.clone(),
        })
    })())?;
    let caller = caller.caller;
    let (row, codes, done) = state
        .db
        .write(move |conn| {
            let mut f = Fields::new();
            for code in &codes {
                if !db::sites::site_exists(conn, code)? {
                    f.push("sites", format!("unknown site {code}"));
                }
            }
            f.finish(Some(()))?;
            db::incidents::insert(conn, &row, &codes)?;
            let done = db::incidents::apply(
                conn,
                &row.id,
                &codes,
                row.started_at,
                row.postpone_until,
                now,
            )?;
            audit(conn, &caller, "incident.create", &row, &codes, done)?;
            Ok::<_, AppError>((row, codes, done))
        })
        .await?;
    Ok(HttpResponse::Created().json(response(row, codes, done)))
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
    let id = id.into_inner();
    let caller = caller.caller;
    let now = crate::domain::now();
    let (row, codes, done) = state
        .db
        .write(move |conn| {
            let (mut row, codes) = db::incidents::find(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such incident".into()))?;
            if until < row.postpone_until {
                return Err(AppError::validation(
                    "postpone_until",
                    "cannot be earlier than the current end; postponed care stays postponed",
                ));
            }
            db::incidents::set_postpone_until(conn, &id, until)?;
            row.postpone_until = until;
            // A site reopened since is not shut again by a longer window.
            let mut still_closed = Vec::new();
            for code in codes {
                if db::sites::find_site(conn, &code)?.is_some_and(|s| s.status == "closed") {
                    still_closed.push(code);
                }
            }
            let codes = still_closed;
            let done = db::incidents::apply(conn, &id, &codes, row.started_at, until, now)?;
            audit(conn, &caller, "incident.extend", &row, &codes, done)?;
            Ok::<_, AppError>((row, codes, done))
        })
        .await?;
    Ok(web::Json(response(row, codes, done)))
}
