//! `cargo bench --bench flood`: unauthenticated traffic costs nothing (issue 16). Eight clients
//! behind a trusted proxy, each with its own address, send 50,000 requests with made-up tokens
//! as fast as they can, while an agent logs calls from the call centre's address. Printed: how
//! many were refused at the door (the anonymous limit, before any lookup), the audit rows and
//! the database growth the flood left, and the agent's p99 alone, while the same clients send
//! as many requests for the stylesheet (served from memory: the raw baseline of serving that
//! traffic at all), and during the flood, in the same run (`ratio=` is the agent's p99 during
//! the flood ÷ during the stylesheet flood: 1.00 means refusing made-up tokens costs the agent
//! nothing more than serving a static file would). SQLite, and PostgreSQL when
//! `REPRISE_TEST_POSTGRES_URL` is set. `BENCH_SCALE=0.1` for a quick look.

use std::time::{Duration, Instant};

use reprise::db::Backend;

mod common;

use common::{percentile, scale, targets, BenchDb};

const CLIENTS: usize = 8;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// (audit rows other than the agent's calls, bytes the database holds).
async fn footprint(state: &reprise::startup::AppState, backend: Backend) -> (i64, i64) {
    let size = match backend {
        Backend::Sqlite => {
            "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()"
        }
        Backend::Postgres => "SELECT pg_database_size(current_database()) AS n",
    };
    state
        .db
        .read(move |conn| {
            use diesel::RunQueryDsl;
            let rows = diesel::sql_query(
                "SELECT count(*) AS n FROM audit_log WHERE action <> 'call.create'",
            )
            .get_result::<Count>(conn)?;
            let bytes = diesel::sql_query(size).get_result::<Count>(conn)?;
            Ok::<_, reprise::db::DbError>((rows.n, bytes.n))
        })
        .await
        .expect("footprint")
}

/// The agent logs calls one after the other until `stop` says so (or `at_most` calls); returns
/// each call's latency in milliseconds.
async fn agent(
    base: String,
    token: String,
    at_most: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<f64> {
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(at_most.min(100_000));
    while latencies.len() < at_most && !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/calls"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(r#"{"reason":"appointment_status","outcome":"informed","duration_seconds":95}"#)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 201);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Eight clients, each from its own address behind the trusted proxy, send `total` requests
/// to `path` (with a made-up token when `token_tail` is given) while the agent logs calls.
/// Returns the agent's latencies, how many requests were refused before any lookup (429), and
/// how long the flood took.
async fn flood(
    base: &str,
    agent_token: &str,
    total: usize,
    path: &'static str,
    token_tail: Option<&'static str>,
) -> (Vec<f64>, usize, f64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logging = tokio::spawn(agent(
        base.to_string(),
        agent_token.to_string(),
        usize::MAX,
        stop.clone(),
    ));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = base.to_string();
            tokio::spawn(async move {
                let mut headers = reqwest::header::HeaderMap::new();
                let address = format!("198.51.100.{}", c + 1);
                headers.insert(
                    "x-forwarded-for",
                    reqwest::header::HeaderValue::from_str(&address).expect("header"),
                );
                let client = reqwest::Client::builder()
                    .default_headers(headers)
                    .build()
                    .expect("client");
                let mut refused_at_door = 0usize;
                for i in 0..total / CLIENTS {
                    let mut req = client.get(format!("{base}{path}"));
                    if let Some(tail) = token_tail {
                        req = req.bearer_auth(format!("rp_{c:02}{i:010}{tail}"));
                    }
                    let r = req.send().await.expect("sent");
                    match r.status().as_u16() {
                        429 => refused_at_door += 1,
                        200 | 401 => {}
                        other => panic!("{other}"),
                    }
                }
                refused_at_door
            })
        })
        .collect();
    let mut refused_at_door = 0;
    for c in clients {
        refused_at_door += c.await.expect("client");
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (logging.await.expect("agent"), refused_at_door, seconds)
}

async fn run(backend: Backend, server: Option<&reprise::db::DatabaseUrl>) {
    let tag = backend.name();
    let total = scale(50_000, 2_000);
    let holder = BenchDb::create(backend, server, "flood");
    let (base, state) = holder
        .serve_with(16, |s| {
            s.trusted_proxies = reprise::client::TrustedProxies::parse("127.0.0.1").expect("ok");
            s.rate_anonymous = Some(60);
        })
        .await;
    let token = common::account(&state, "Agent", "agent", None).await;
    let never = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The agent alone.
    let calls_alone = scale(3_000, 300);
    let before = footprint(&state, backend).await;
    let alone = agent(base.clone(), token.clone(), calls_alone, never.clone()).await;
    let after_alone = footprint(&state, backend).await;
    let bytes_per_call = (after_alone.1 - before.1) as f64 / calls_alone as f64;

    // The agent while the eight clients send requests that cost the least an HTTP request can
    // (the stylesheet, from memory: no credential, no database): the raw baseline of serving
    // that many requests at all.
    let (during_static, _, _) = flood(&base, &token, total, "/static/app.css", None).await;
    let before_flood = footprint(&state, backend).await;

    // The agent during the flood of made-up tokens.
    let (during, refused_at_door, flood_seconds) =
        flood(&base, &token, total, "/api/v1/calls", Some("made_up")).await;
    reprise::startup::flush_denials(&state).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = footprint(&state, backend).await;
    let rows = after.0 - before_flood.0;
    let growth = (after.1 - before_flood.1) as f64 - bytes_per_call * during.len() as f64;
    let sent = total / CLIENTS * CLIENTS;
    let p99_alone = percentile(&alone, 0.99);
    let p99_during = percentile(&during, 0.99);
    let p99_static = percentile(&during_static, 0.99);
    println!("{tag}.flood.requests={sent}");
    println!("{tag}.flood.clients={CLIENTS}");
    println!("{tag}.flood.seconds={flood_seconds:.2}");
    println!("{tag}.flood.per_s={:.0}", sent as f64 / flood_seconds);
    println!("{tag}.flood.refused_before_lookup={refused_at_door}");
    println!("{tag}.flood.audit_rows={rows}");
    println!("{tag}.flood.growth_bytes={:.0}", growth.max(0.0));
    println!("{tag}.flood.agent_calls_alone={}", alone.len());
    println!("{tag}.flood.agent_calls_during={}", during.len());
    println!(
        "{tag}.flood.agent_p50_alone_ms={:.2}",
        percentile(&alone, 0.5)
    );
    println!("{tag}.flood.agent_p99_alone_ms={p99_alone:.2}");
    println!(
        "{tag}.flood.agent_p50_static_flood_ms={:.2}",
        percentile(&during_static, 0.5)
    );
    println!("{tag}.flood.agent_p99_static_flood_ms={p99_static:.2}");
    println!("{tag}.flood.agent_p50_ms={:.2}", percentile(&during, 0.5));
    println!("{tag}.flood.agent_p99_ms={p99_during:.2}");
    println!("{tag}.flood ratio={:.2}", p99_during / p99_static);
}

fn main() {
    let runtime = common::runtime();
    for (backend, server) in &targets() {
        runtime.block_on(run(*backend, server.as_ref()));
    }
}
