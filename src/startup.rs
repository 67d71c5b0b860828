//! Building and running the service: database → migrations → application state → listener →
//! HTTP server. `Application::build` binds first (port 0 allowed), so tests learn the port.

use std::collections::HashMap;
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
use crate::middleware;
use crate::routes;
pub use crate::state::AppState;

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
    problems_as_problem_json(&mut spec);
    spec
}

/// The operations of a path item, each with its method.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("GET", &mut item.get),
        ("PUT", &mut item.put),
        ("POST", &mut item.post),
        ("DELETE", &mut item.delete),
        ("PATCH", &mut item.patch),
        ("HEAD", &mut item.head),
        ("OPTIONS", &mut item.options),
        ("TRACE", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

/// Every error answer is `application/problem+json` (`error::Problem`); utoipa writes
/// `application/json` for a `body = Problem` unless told otherwise on each response.
fn problems_as_problem_json(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    for item in spec.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.get("application/json").is_some_and(|c| {
                    matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
                });
                if is_problem {
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response
                            .content
                            .insert("application/problem+json".into(), content);
                    }
                }
            }
        }
    }
}

/// The methods each route pattern answers, for the `Allow` header of a 405.
pub fn allowed_methods(spec: &utoipa::openapi::OpenApi) -> HashMap<String, String> {
    let mut spec = spec.clone();
    spec.paths
        .paths
        .iter_mut()
        .map(|(path, item)| {
            let methods: Vec<&str> = operations(item).map(|(method, _)| method).collect();
            (path.clone(), methods.join(", "))
        })
        .collect()
}

/// The answers any `/api/v1` route may give whatever it does, added to every operation once
/// rather than written on each: 503 when the database is away, 429 when the account is over
/// its budget (`ratelimit`); 400 and 422 when what it reads (body, query) cannot be parsed or
/// is invalid; 413 and 415 for a body too large or of another media type.
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
        for (_, operation) in operations(item) {
            let reads_input = operation.request_body.is_some()
                || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut operation.responses.responses;
            if reads_input {
                responses.entry("400".into()).or_insert_with(|| {
                    problem("The request cannot be read (malformed JSON or query string)").into()
                });
                responses
                    .entry("422".into())
                    .or_insert_with(|| problem("A field is invalid; `errors` names it").into());
            }
            if operation.request_body.is_some() {
                responses
                    .entry("413".into())
                    .or_insert_with(|| problem("The body is over the size limit").into());
                responses.entry("415".into()).or_insert_with(|| {
                    problem("The body is not of the documented media type").into()
                });
            }
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
        let spec = openapi();
        let state = web::Data::new(AppState {
            db,
            metrics,
            settings,
            limits,
            anonymous: crate::ratelimit::AnonymousLimits::new(state_settings_rate_anonymous),
            denials: Default::default(),
            tokens: Default::default(),
            allow: allowed_methods(&spec),
            links,
        });
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

/// The background chores of a running service: the aggregated refusals written every
/// [`DENIALS_FLUSH`]; the disclosure counts of past hours purged.
async fn housekeeping(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(DENIALS_FLUSH);
    let mut purged_before = None;
    loop {
        tick.tick().await;
        flush_denials(&state).await;
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
