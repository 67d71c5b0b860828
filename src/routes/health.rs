//! `GET /health` and `GET /metrics`, without a token.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::error::{AppError, AppResult, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub version: &'static str,
}

/// Whether the service and its database answer.
#[utoipa::path(
    operation_id = "health_read",
    tag = "operations",
    responses(
        (status = 200, body = Health),
        (status = 503, body = Problem, description = "the database cannot be reached")
    )
)]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> AppResult<web::Json<Health>> {
    state
        .db
        .read(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1").map_err(DbError::from)
        })
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok(web::Json(Health {
        status: "ok",
        database: state.db.backend().name(),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Prometheus metrics of this process.
#[utoipa::path(
    operation_id = "metrics_read",
    tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The outbox gauges count the whole database (every process's notifications), read now; with
    // the database away they keep their last values.
    let census = state
        .db
        .read(|conn| crate::db::notifications::census(conn).map_err(crate::db::DbError::from))
        .await;
    match census {
        Ok((by_status, oldest)) => {
            state
                .metrics
                .set_outbox(&by_status, oldest, crate::domain::now())
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the outbox for /metrics"),
    }
    let now = crate::domain::now();
    let since = now - chrono::Duration::days(crate::service::callbacks::MEDIAN_DAYS);
    match crate::service::callbacks::figures(&state, now, since).await {
        Ok(f) => {
            state
                .metrics
                .set_callbacks(f.open, f.oldest_open_seconds, f.reached_median_seconds)
        }
        Err(e) => tracing::warn!(error = %e, "cannot count the callbacks for /metrics"),
    }
    state.metrics.set_writer(state.db.writer_figures());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
