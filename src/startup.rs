//! Building and running the service: database → migrations → application state → listener →
//! HTTP server. `Application::build` binds first (port 0 allowed), so tests learn the port.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::db::Db;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::middleware;
use crate::openapi;
use crate::routes;
pub use crate::state::AppState;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    worker: Option<crate::email::WorkerHandle>,
}

impl Application {
    /// Connects, migrates and binds; the server starts when awaited.
    pub async fn build(settings: Settings) -> Result<Self, String> {
        Self::build_with(settings, false).await
    }

    /// [`Application::build`] with, when `ceiling`, the calls route without its storage at
    /// `POST /api/v1/ceiling/calls` (`routes::calls::create_unstored`): the same server, the
    /// same middleware, extractors, checks and answer, nothing written. Only the calls
    /// benchmark builds it, to measure what the HTTP stack alone costs; `reprise serve` never
    /// mounts it.
    #[doc(hidden)]
    pub async fn build_with(settings: Settings, ceiling: bool) -> Result<Self, String> {
        let url = settings.database.clone();
        let pool_size = settings.db_pool;
        let legacy_key = settings.legacy_link_key.clone();
        let db = web::block(move || -> Result<Db, String> {
            let db = Db::connect(&url, pool_size)
                .map_err(|e| format!("cannot open {}: {e}", url.redacted()))?;
            let applied = db.migrate_with(legacy_key.as_ref().map(|k| k.0.as_slice()))?;
            tracing::info!(applied, backend = db.backend().name(), "migrations applied");
            Ok(db)
        })
        .await
        .map_err(|e| e.to_string())??;
        if settings.legacy_link_key.is_some() {
            tracing::warn!(
                "REPRISE_ANSWER_LINK_KEY is no longer used once the database is migrated: \
                 answer links have secrets of their own (docs/operations.md); remove it"
            );
        }
        let metrics = Metrics::new().map_err(|e| e.to_string())?;
        // The email transport is checked (its folder created) before the server starts, so
        // that a failure here leaves no server running.
        let transport = settings
            .delivery
            .clone()
            .map(|delivery| {
                crate::email::Transport::new(
                    settings.smtp.as_ref(),
                    &settings.outbox_dir,
                    &delivery,
                )
                .map(|t| (t, delivery))
            })
            .transpose()?;
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.bind))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        let port = bound.port();
        let mut settings = settings;
        if !settings.public_url_given {
            // Port 0 was bound to a real port: links carry that one.
            settings.public_url = crate::config::public_url_of(bound);
        }
        warn_about_links(&settings.public_url, bound);
        let links = crate::email::render::Links {
            base: settings.public_url.clone(),
        };
        let limits = crate::ratelimit::RateLimits::new(settings.rate_writes, settings.rate_reads);
        let state_settings_rate_anonymous = settings.rate_anonymous;
        let spec = openapi::openapi();
        let document = openapi::document_of(&spec);
        let state = web::Data::new(AppState {
            db,
            metrics,
            settings,
            limits,
            anonymous: crate::ratelimit::AnonymousLimits::new(state_settings_rate_anonymous),
            denials: Default::default(),
            tokens: Default::default(),
            allow: openapi::allowed_methods(&spec),
            links,
            pops: Default::default(),
        });
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| {
                    if ceiling {
                        cfg.route(
                            "/api/v1/ceiling/calls",
                            web::post().to(routes::calls::create_unstored),
                        );
                    }
                })
                .configure(|cfg| {
                    let mut cfg = utoipa_actix_web::service_config::ServiceConfig::new(cfg);
                    routes::root(&mut cfg);
                })
                .service(web::scope("/api/v1").configure(|cfg| {
                    let mut cfg = utoipa_actix_web::service_config::ServiceConfig::new(cfg);
                    routes::api_v1(&mut cfg);
                }))
                .service(
                    SwaggerUi::new("/docs/{_:.*}")
                        .external_url_unchecked("/api/openapi.json", document.clone()),
                )
                .route("/docs", web::get().to(docs_redirect))
                .configure(crate::web::pages)
                .default_service(web::to(not_found))
                .wrap(ErrorHandlers::new().default_handler(middleware::problem_fallback))
                .wrap(from_fn(middleware::trace_requests))
        })
        // Without it a streamed answer (an export, sent in chunks) meets Nagle's algorithm and
        // the client's delayed ACK: 40 ms lost per export, the soak's whole p99.
        .tcp_nodelay(true)
        .listen(listener)
        .map_err(|e| e.to_string())?
        .shutdown_timeout(10)
        .run();
        tracing::info!(port, "listening");
        tokio::spawn(housekeeping(state.clone()));
        tokio::spawn(screen_pops(state.clone()));
        let worker = transport.map(|(transport, delivery)| {
            crate::email::Worker::new(
                state.db.clone(),
                transport,
                state.settings.mail_from.clone(),
                delivery,
                state.metrics.clone(),
            )
            .with_links(state.links.clone(), state.settings.answer_link_ttl)
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
        flush_denials(&self.state).await;
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
        served
    }
}

/// Warns when patients' links would lead to this machine's loopback address while the service
/// listens for other machines: set `REPRISE_PUBLIC_URL` to the address patients reach.
fn warn_about_links(public_url: &url::Url, bound: std::net::SocketAddr) {
    let loopback = match public_url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if loopback && !bound.ip().is_loopback() {
        tracing::warn!(
            public_url = %public_url,
            "links in patients' emails lead to this machine's loopback address, which patients \
             cannot reach: set REPRISE_PUBLIC_URL to the address they use (docs/security.md)"
        );
    }
}

/// How often the refusals counted in memory are added to their audit entries.
const DENIALS_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);
/// How often an instance fails the bulk exports whose instance stopped and removes the expired
/// ones (`service::fhir::expire_exports`).
const EXPORTS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The screen pop's database path: twice a second, the current call of each account with an
/// agents' page open here (one read, none while no page is open), for the PBX events another
/// instance received (docs/architecture.md, "The screen pop").
async fn screen_pops(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(crate::service::screen_pop::POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = crate::service::screen_pop::poll(&state).await {
            // The causes of internal and database errors, never data.
            e.log();
        }
    }
}

/// The background chores of a running service: the aggregated refusals written every
/// [`DENIALS_FLUSH`]; the disclosure counts of past hours purged; the bulk exports expired
/// every [`EXPORTS_EVERY`].
async fn housekeeping(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(DENIALS_FLUSH);
    let mut purged_before = None;
    let mut exports_checked: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        flush_denials(&state).await;
        if exports_checked.is_none_or(|at| at.elapsed() >= EXPORTS_EVERY) {
            exports_checked = Some(std::time::Instant::now());
            if let Err(e) = crate::service::fhir::expire_exports(&state.db).await {
                tracing::warn!(error = %e, "could not expire bulk exports");
            }
        }
        let hour = crate::db::disclosures::hour_of(crate::domain::now());
        if purged_before != Some(hour) {
            let purged = state
                .db
                .write(move |conn| {
                    crate::db::disclosures::purge_before(conn, hour)
                        .map_err(crate::db::DbError::from)
                })
                .await;
            match purged {
                Ok(_) => purged_before = Some(hour),
                Err(e) => tracing::warn!(error = %e, "could not purge past disclosure counts"),
            }
        }
    }
}

/// Writes what [`crate::denials::Denials`] counted since the last time.
pub async fn flush_denials(state: &AppState) {
    let flushes = state.denials.take(crate::domain::now());
    if flushes.is_empty() {
        return;
    }
    let written = state
        .db
        .write(move |conn| {
            crate::denials::write_denials(conn, &flushes).map_err(crate::db::DbError::from)
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "could not audit refused requests");
    }
}

async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Found()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// No route answered: 405 when the path exists for other methods, 404 otherwise.
async fn not_found(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<actix_web::HttpResponse, AppError> {
    if let Some(pattern) = req.match_pattern() {
        Err(AppError::MethodNotAllowed(
            state.allow.get(&pattern).cloned().unwrap_or_default(),
        ))
    } else {
        Err(AppError::NotFound("no such route".into()))
    }
}
