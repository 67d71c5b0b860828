//! `cargo bench --bench calls`: the call-centre write path of issue 4.
//!
//! Starts the application in-process on a temporary SQLite file, posts 40,000 calls from 32
//! concurrent keep-alive HTTP clients (each with an Idempotency-Key; 10,000 callers' numbers,
//! a third of the calls asking for a callback; then 10,000 more from one number, the worst
//! case for callbacks, printed as `one_caller_*`), and measures in the same
//! run the raw rate of one-row-per-transaction inserts of the same row through diesel with the
//! same pragmas (`synchronous = FULL`), no HTTP in front. Then loads 1,000,000 calls and times
//! `GET /api/v1/calls/stats` against a raw `GROUP BY`. With `REPRISE_TEST_POSTGRES_URL` set it
//! also runs on PostgreSQL (raw baseline: per-row inserts on one connection).
//!
//! `BENCH_SCALE=0.1` for a quick look.

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use reprise::db::calls::CallRow;
use reprise::db::{self, Backend, DatabaseUrl};
use reprise::domain::call::{Outcome, Reason};
use reprise::error::AppError;

mod common;

use common::{percentile, scale, targets, BenchDb};

const CLIENTS: usize = 32;

fn call_row(i: usize) -> CallRow {
    let now = reprise::domain::now();
    CallRow {
        id: uuid::Uuid::now_v7().to_string(),
        received_at: now - chrono::Duration::seconds((i % 1_800_000) as i64),
        caller_phone: Some("+32470123456".into()),
        patient_id: None,
        appointment_id: None,
        reason: [
            Reason::AppointmentStatus,
            Reason::RescheduleRequest,
            Reason::MedicalQuestion,
            Reason::Other,
        ][i % 4],
        outcome: [
            Outcome::Informed,
            Outcome::ForwardedToService,
            Outcome::CallbackScheduled,
        ][i % 3],
        duration_seconds: Some((30 + i % 300) as i32),
        notes: Some("Demande la date de son opération".into()),
        callback_requested: i % 3 == 2,
        agent_id: None,
        idempotency_key: None,
        request_hash: None,
        import_id: None,
        created_at: now,
    }
}

/// One-row-per-transaction inserts on one connection with the service's pragmas.
fn raw_rate(backend: Backend, server: Option<&DatabaseUrl>, rows: usize) -> f64 {
    let target = BenchDb::create(backend, server, "callsraw");
    let db = db::Db::connect(&target.url, 1).expect("db");
    db.migrate().expect("migrate");
    drop(db);
    let mut conn = target.url.connect().expect("connection");
    let started = Instant::now();
    for i in 0..rows {
        let row = call_row(i);
        conn.transaction(|c| db::calls::insert(c, &row))
            .expect("insert");
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

async fn raw_rate_off_thread(backend: Backend, server: Option<&DatabaseUrl>, rows: usize) -> f64 {
    let server = server.cloned();
    tokio::task::spawn_blocking(move || raw_rate(backend, server.as_ref(), rows))
        .await
        .expect("raw")
}

/// Who calls: how many telephone numbers the calls come from, and the prefix of their keys.
#[derive(Clone, Copy)]
struct Callers {
    numbers: usize,
    keys: &'static str,
}

/// 10,000 numbers, each calling four times in 40,000 calls; a third of the calls ask for a
/// callback, which opens one per number or joins its open one.
const MANY_CALLERS: Callers = Callers {
    numbers: 10_000,
    keys: "bench",
};

/// Every call from one number: every callback requested joins the same open callback, one row
/// that every writer's batch updates and holds until it commits (the worst case).
const ONE_CALLER: Callers = Callers {
    numbers: 1,
    keys: "one",
};

/// `total` calls posted to `url` by `CLIENTS` keep-alive clients, each with its
/// Idempotency-Key: the seconds it took and every answer time (ms), sorted.
async fn post_calls(
    url: String,
    token: &Arc<String>,
    total: usize,
    callers: Callers,
) -> (f64, Vec<f64>) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_no in 0..CLIENTS {
        let (url, token) = (url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut latencies = Vec::new();
            let mut i = client_no;
            while i < total {
                let reason = [
                    "appointment_status",
                    "reschedule_request",
                    "medical_question",
                    "other",
                ][i % 4];
                let outcome = ["informed", "forwarded_to_service", "callback_scheduled"][i % 3];
                let number = i % callers.numbers;
                let body = format!(
                    r#"{{"caller_phone":"0470 {:02} {:02} {:02}","reason":"{reason}","outcome":"{outcome}","duration_seconds":{},"notes":"Demande la date de son opération","callback_requested":{}}}"#,
                    number / 10_000 % 100,
                    number / 100 % 100,
                    number % 100,
                    30 + i % 300,
                    i % 3 == 2
                );
                let sent = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(token.as_str())
                    .header("Idempotency-Key", format!("{}-{i}", callers.keys))
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                i += CLIENTS;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (elapsed, latencies)
}

/// One-row-per-transaction inserts of the same rows from `CLIENTS` connections at once
/// (PostgreSQL's own group commit), no HTTP: rows per second.
async fn raw_parallel_rate(server: Option<&DatabaseUrl>, rows: usize) -> f64 {
    let target = BenchDb::create(Backend::Postgres, server, "callsraw32");
    let db = db::Db::connect(&target.url, 1).expect("db");
    db.migrate().expect("migrate");
    drop(db);
    let url = Arc::new(target.url.clone());
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut conn = url.connect().expect("connection");
                let mut i = t;
                while i < rows {
                    let row = call_row(i);
                    conn.transaction(|c| db::calls::insert(c, &row))
                        .expect("insert");
                    i += CLIENTS;
                }
            })
        })
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            t.join().expect("inserter");
        }
    })
    .await;
    rows as f64 / started.elapsed().as_secs_f64()
}

async fn http_run(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let total = scale(40_000, 64);
    let target = BenchDb::create(backend, server, "calls");
    let (base, state) = target.serve(16).await;
    let token = common::account(&state, "Bench agent", "agent", None).await;
    let token = Arc::new(token);
    // The raw rate before and after the HTTP run (the disk's fsync rate drifts during a run).
    let raw_rows = scale(3_000, 64);
    let raw_before = raw_rate_off_thread(backend, server, raw_rows).await;

    let calls_url = format!("{base}/api/v1/calls");
    let writer_before = state.db.writer_figures();
    let (elapsed, latencies) = post_calls(calls_url.clone(), &token, total, MANY_CALLERS).await;
    let writer = state.db.writer_figures();
    let stored = state
        .db
        .read(|conn| db::calls::count(conn).map_err(AppError::from))
        .await
        .expect("count");
    assert_eq!(
        stored as usize, total,
        "every acknowledged call is stored once"
    );
    let http_rate = total as f64 / elapsed;
    let raw_after = raw_rate_off_thread(backend, server, raw_rows).await;
    let raw = (raw_before + raw_after) / 2.0;
    println!("{tag}.calls.posted={total}");
    println!("{tag}.calls.clients={CLIENTS}");
    println!("{tag}.calls.seconds={elapsed:.2}");
    println!("{tag}.calls.http_per_s={http_rate:.0}");
    println!("{tag}.calls.p50_ms={:.2}", percentile(&latencies, 0.5));
    println!("{tag}.calls.p99_ms={:.2}", percentile(&latencies, 0.99));
    println!("{tag}.calls.raw_before_per_s={raw_before:.0}");
    println!("{tag}.calls.raw_after_per_s={raw_after:.0}");
    println!("{tag}.calls.raw_per_row_per_s={raw:.0}");
    println!("{tag}.calls ratio={:.2}", http_rate / raw);
    // The writer threads during the calls: how many calls a commit held, how busy they were.
    let (batches, jobs) = (
        writer.batches - writer_before.batches,
        writer.jobs - writer_before.jobs,
    );
    let busy = writer.busy_seconds - writer_before.busy_seconds;
    let commit = writer.commit_seconds - writer_before.commit_seconds;
    println!(
        "{tag}.calls.writer_jobs_per_batch={:.1}",
        jobs as f64 / batches.max(1) as f64
    );
    println!(
        "{tag}.calls.writer_busy_share={:.2}",
        busy / (elapsed * writer.threads as f64)
    );
    println!(
        "{tag}.calls.writer_commit_share={:.2}",
        commit / busy.max(f64::EPSILON)
    );
    println!(
        "{tag}.calls.writer_us_per_call={:.1}",
        busy * 1e6 / jobs.max(1) as f64
    );
    // The HTTP ceiling: the same server, middleware, extractors, checks and answer, nothing
    // stored.
    let (ceiling_s, _) = post_calls(
        format!("{base}/api/v1/ceiling/calls"),
        &token,
        total,
        MANY_CALLERS,
    )
    .await;
    let ceiling = total as f64 / ceiling_s;
    println!("{tag}.calls.http_ceiling_per_s={ceiling:.0}");
    println!("{tag}.calls http_ceiling_ratio={:.2}", http_rate / ceiling);
    // The worst case, shorter: every call from one number.
    let one = total / 4;
    let (one_s, one_latencies) = post_calls(calls_url, &token, one, ONE_CALLER).await;
    println!("{tag}.calls.one_caller_per_s={:.0}", one as f64 / one_s);
    println!(
        "{tag}.calls.one_caller_p99_ms={:.2}",
        percentile(&one_latencies, 0.99)
    );
    if backend == Backend::Postgres {
        // What PostgreSQL commits for the same rows from as many connections, no HTTP.
        let raw32 = raw_parallel_rate(server, scale(20_000, 64)).await;
        println!("{tag}.calls.raw_{CLIENTS}_connections_per_s={raw32:.0}");
        println!("{tag}.calls ceiling_ratio={:.2}", http_rate / raw32);
    }
    if std::env::args().skip(1).any(|a| a == "--no-stats") {
        return;
    }

    // Statistics over a million calls.
    let rows = scale(1_000_000, 64);
    let mut i = 0;
    while i < rows {
        let n = (rows - i).min(50_000);
        let batch: Vec<CallRow> = (i..i + n).map(call_row).collect();
        state
            .db
            .write(move |conn| db::calls::insert_many(conn, &batch).map_err(AppError::from))
            .await
            .expect("bulk calls");
        i += n;
    }
    state
        .db
        .read(|conn| conn.batch_execute("ANALYZE").map_err(AppError::from))
        .await
        .expect("analyze");
    let client = reqwest::Client::new();
    let mut stats_ms = Vec::new();
    for _ in 0..7 {
        let sent = Instant::now();
        let r = client
            .get(format!("{base}/api/v1/calls/stats?bucket=day"))
            .bearer_auth(token.as_str())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(
            body["total"].as_u64().map(|n| n as usize),
            Some(rows + total)
        );
        stats_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let mut raw_ms = Vec::new();
    for _ in 0..7 {
        let sent = Instant::now();
        state
            .db
            .read(|conn| {
                conn.batch_execute("SELECT reason, COUNT(*) FROM calls GROUP BY reason")
                    .map_err(AppError::from)
            })
            .await
            .expect("raw stats");
        raw_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    stats_ms.sort_by(f64::total_cmp);
    raw_ms.sort_by(f64::total_cmp);
    println!("{tag}.stats.calls={}", rows + total);
    println!("{tag}.stats.median_ms={:.1}", percentile(&stats_ms, 0.5));
    println!(
        "{tag}.stats.raw_group_by_median_ms={:.1}",
        percentile(&raw_ms, 0.5)
    );
    println!(
        "{tag}.stats ratio={:.2}",
        percentile(&stats_ms, 0.5) / percentile(&raw_ms, 0.5)
    );
}

fn main() {
    let runtime = common::runtime();
    for (backend, server) in &targets() {
        runtime.block_on(http_run(*backend, server.as_ref(), backend.name()));
    }
}
