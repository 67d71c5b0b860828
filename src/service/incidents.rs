//! Declaring an incident and extending it: the care it hits is postponed (keeping its
//! original date), its sites close, and the patients' `appointment_postponed` emails are
//! queued, all in one transaction with its audit entry.

use crate::auth::Caller;
use crate::db::{self, incidents::IncidentRow, incidents::Postponement, DbConnection};
use crate::domain::incident::NewIncident;
use crate::domain::site::SiteStatus;
use crate::domain::time::utc;
use crate::domain::Faults;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// An incident after a declaration or an extension: its row, the sites it (still) closes and
/// what this request postponed.
#[derive(Debug, Clone)]
pub struct Applied {
    pub incident: IncidentRow,
    pub sites: Vec<String>,
    pub done: Postponement,
}

fn audit(conn: &mut DbConnection, caller: &Caller, action: &str, a: &Applied) -> AppResult<()> {
    let p = a.done;
    crate::audit::record(
        conn,
        caller,
        action,
        Some(&format!("incident:{}", a.incident.id)),
        serde_json::json!({
            "sites": a.sites, "postpone_until": utc(a.incident.postpone_until),
            "rows": p.postponed, "kept_urgent": p.kept_urgent, "kept_essential": p.kept_essential,
        }),
    )?;
    Ok(())
}

/// Declares an incident: every scheduled, non-urgent, non-essential appointment at its sites
/// in its window is postponed, and the sites close. An unknown site is a 422.
pub async fn declare(state: &AppState, caller: Caller, new: NewIncident) -> AppResult<Applied> {
    let now = crate::domain::now();
    let incident = IncidentRow {
        id: uuid::Uuid::now_v7().to_string(),
        title: new.title,
        started_at: new.started_at,
        postpone_until: new.postpone_until,
        created_at: now,
        created_by: caller.id.clone(),
    };
    let sites: Vec<String> = new.sites.into_iter().map(|c| c.into_string()).collect();
    state
        .db
        .write(move |conn| {
            let mut f = Faults::default();
            for code in &sites {
                if !db::sites::site_exists(conn, code)? {
                    f.push("sites", format!("unknown site {code}"));
                }
            }
            f.finish(Some(()))?;
            db::incidents::insert(conn, &incident, &sites)?;
            let done = db::incidents::apply(
                conn,
                &incident.id,
                &sites,
                incident.started_at,
                incident.postpone_until,
                now,
            )?;
            let applied = Applied {
                incident,
                sites,
                done,
            };
            audit(conn, &caller, "incident.create", &applied)?;
            Ok(applied)
        })
        .await
}

/// Extends an incident to a later end: the same postponement over the longer window, at the
/// sites still closed (a site reopened since is not shut again). The same end again changes
/// nothing more; an earlier one is a 422.
pub async fn extend(
    state: &AppState,
    caller: Caller,
    id: String,
    until: chrono::NaiveDateTime,
) -> AppResult<Applied> {
    let now = crate::domain::now();
    state
        .db
        .write(move |conn| {
            let db::incidents::Incident {
                row: mut incident,
                sites: codes,
            } = db::incidents::find(conn, &id)?
                .ok_or_else(|| AppError::NotFound("no such incident".into()))?;
            if until < incident.postpone_until {
                return Err(AppError::validation(
                    "postpone_until",
                    "cannot be earlier than the current end; postponed care stays postponed",
                ));
            }
            db::incidents::set_postpone_until(conn, &id, until)?;
            incident.postpone_until = until;
            let mut sites = Vec::new();
            for code in codes {
                if db::sites::find_site(conn, &code)?
                    .is_some_and(|s| s.status == SiteStatus::Closed)
                {
                    sites.push(code);
                }
            }
            let done = db::incidents::apply(conn, &id, &sites, incident.started_at, until, now)?;
            let applied = Applied {
                incident,
                sites,
                done,
            };
            audit(conn, &caller, "incident.extend", &applied)?;
            Ok(applied)
        })
        .await
}
