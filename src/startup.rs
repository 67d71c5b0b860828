//! Building and running the service: database → migrations → application state → listener →
//! HTTP server. `Application::build` binds first (port 0 allowed), so tests learn the port.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::db::Db;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::routes::{self, middleware};

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub metrics: Metrics,
    pub settings: Settings,
    /// Per-account request budgets (`ratelimit`).
    pub limits: crate::ratelimit::RateLimits,
    /// Accounts recently found by their token (`auth::TokenCache`).
    pub tokens: crate::auth::TokenCache,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "reprise",
        description = "Postponed care, call centre, contact lists and patient emails after a hospital IT shutdown."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem, crate::error::FieldError))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of every route, as registered.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut spec = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::root)
        .service(utoipa_actix_web::scope("/api/v1").configure(routes::api_v1))
        .split_for_parts()
        .1;
    common_responses(&mut spec);
    spec
}

/// The answers any `/api/v1` route may give whatever it does, added to every operation once
/// rather than written on each: 503 when the database is away, and 429 when the account is
/// over its budget (`ratelimit`).
fn common_responses(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for (path, item) in spec.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses.entry("429".into()).or_insert_with(|| {
                problem("Too many requests for this account; see Retry-After").into()
            });
            responses
                .entry("503".into())
                .or_insert_with(|| problem("The database cannot be reached").into());
        }
    }
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    worker: Option<crate::email::WorkerHandle>,
}

impl Application {
    /// Connects, migrates and binds; the server starts when awaited.
    pub async fn build(settings: Settings) -> Result<Self, String> {
        let url = settings.database.clone();
        let pool_size = settings.db_pool;
        let db = web::block(move || -> Result<Db, String> {
            let db = Db::connect(&url, pool_size)
                .map_err(|e| format!("cannot open {}: {e}", url.redacted()))?;
            let applied = db.migrate()?;
            tracing::info!(applied, backend = db.backend().name(), "migrations applied");
            Ok(db)
        })
        .await
        .map_err(|e| e.to_string())??;
        let metrics = Metrics::new().map_err(|e| e.to_string())?;
        // The email transport is checked (its folder created) before the server starts, so
        // that a failure here leaves no server running.
        let transport = settings
            .delivery
            .clone()
            .map(|delivery| {
                crate::email::Transport::from_settings(&settings, &delivery).map(|t| (t, delivery))
            })
            .transpose()?;
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let limits = crate::ratelimit::RateLimits::new(settings.rate_writes, settings.rate_reads);
        let state = web::Data::new(AppState {
            db,
            metrics,
            settings,
            limits,
            tokens: Default::default(),
        });
        let spec = openapi();
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| {
                    let mut cfg = utoipa_actix_web::service_config::ServiceConfig::new(cfg);
                    routes::root(&mut cfg);
                })
                .service(web::scope("/api/v1").configure(|cfg| {
                    let mut cfg = utoipa_actix_web::service_config::ServiceConfig::new(cfg);
                    routes::api_v1(&mut cfg);
                }))
                .service(SwaggerUi::new("/docs/{_:.*}").url("/api/openapi.json", spec.clone()))
                .route("/docs", web::get().to(docs_redirect))
                .default_service(web::to(not_found))
                .wrap(ErrorHandlers::new().default_handler(middleware::problem_fallback))
                .wrap(from_fn(middleware::audit_denials))
                .wrap(from_fn(middleware::trace_requests))
        })
        .listen(listener)
        .map_err(|e| e.to_string())?
        .shutdown_timeout(10)
        .run();
        tracing::info!(port, "listening");
        let worker = transport.map(|(transport, delivery)| {
            crate::email::Worker::new(
                state.db.clone(),
                transport,
                state.settings.mail_from.clone(),
                delivery,
                state.metrics.clone(),
            )
            .spawn()
        });
        Ok(Self {
            port,
            server,
            state,
            worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops (a signal), then lets the outbox worker finish its round.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
        served
    }
}

async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// No route answered: 405 when the path exists for other methods, 404 otherwise.
async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, AppError> {
    if req.match_pattern().is_some() {
        Err(AppError::MethodNotAllowed)
    } else {
        Err(AppError::NotFound("no such route".into()))
    }
}
