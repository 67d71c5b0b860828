//! `cargo bench --bench cti`: the telephone system's events (issue 20).
//!
//! Starts the application in-process on a temporary SQLite file with 50 agents, each with an
//! extension and its page's event stream open. Then:
//! 1. 16 PBX connections push the events of 1,000 calls a second (`newCall`, `answer` naming
//!    one of the agents, `hangup`) for 30 s, paced: each event's answer time, and for each
//!    `answer` the time until the screen pop reaches that agent's stream (from the moment the
//!    `answer` event was sent); the process's memory at the start and the end.
//! 2. Events as fast as they are answered, from the PBX's 16 connections and then from 32
//!    (the calls' clients), the pages' streams still open: events per second.
//! 3. 32 clients post calls (`POST /api/v1/calls`) as fast as they are answered: calls per
//!    second, the baseline of the ratio.
//!
//! With `REPRISE_TEST_POSTGRES_URL` set it runs on PostgreSQL too. `BENCH_SCALE=0.1` for a
//! quick look (3 s of load instead of 30).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reprise::db::{Backend, DatabaseUrl};

mod common;

use common::{percentile, scale, targets, BenchDb};

const PBX_CONNECTIONS: usize = 16;
const AGENTS: usize = 50;
const CALLS_PER_S: usize = 1_000;
const CALL_CLIENTS: usize = 32;

/// The caller's number of call `i`: unique, so that a pop names its call.
fn caller(i: usize) -> String {
    format!("+32470{:06}", i % 1_000_000)
}

fn extension(agent: usize) -> String {
    format!("{}", 1000 + agent)
}

/// The process's resident memory, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The value of the cookie `name` that an answer sets.
fn cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (n, value) = pair.split_once('=')?;
            (n == name).then(|| value.to_string())
        })
}

/// Signs in through the page's form, as a browser does; returns the session cookie.
async fn sign_in(base: &str, token: &str) -> String {
    let http = client();
    let form = http
        .get(format!("{base}/sign-in"))
        .send()
        .await
        .expect("form");
    let csrf = cookie(&form, "reprise_sign_in").expect("double-submit cookie");
    let r = http
        .post(format!("{base}/sign-in"))
        .header(reqwest::header::COOKIE, format!("reprise_sign_in={csrf}"))
        .form(&[("csrf", csrf.as_str()), ("token", token), ("lang", "fr")])
        .send()
        .await
        .expect("sign-in");
    assert_eq!(r.status(), 303, "signed in");
    format!(
        "reprise_session={}",
        cookie(&r, "reprise_session").expect("session cookie")
    )
}

/// When each caller's `answer` event was sent, and the pops' delays.
#[derive(Default)]
struct Pops {
    sent: HashMap<String, Instant>,
    delays_ms: Vec<f64>,
}

/// Holds an agent's event stream open, and notes the delay of every pop it brings.
async fn agent_stream(base: String, session: String, pops: Arc<Mutex<Pops>>) {
    let r = reqwest::Client::new()
        .get(format!("{base}/agent/events"))
        .header(reqwest::header::COOKIE, session)
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), 200, "the event stream opens");
    let mut body = r.bytes_stream();
    let mut pending = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            let Some(at) = message.find("+32470") else {
                continue;
            };
            let number = message.get(at..at + 12).unwrap_or_default().to_string();
            let mut pops = pops.lock().expect("pops");
            if let Some(sent) = pops.sent.remove(&number) {
                pops.delays_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
}

/// Posts one event; its answer time in ms.
async fn post_event(http: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> f64 {
    let sent = Instant::now();
    let r = http.post(url).form(fields).send().await.expect("event");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    sent.elapsed().as_secs_f64() * 1000.0
}

/// The three events of call `i`, answered by agent `i % AGENTS`.
async fn one_call(
    http: &reqwest::Client,
    url: &str,
    i: usize,
    pops: Option<&Mutex<Pops>>,
) -> [f64; 3] {
    let (id, from, ext) = (format!("bench.{i}"), caller(i), extension(i % AGENTS));
    let call = [
        ("callId", id.as_str()),
        ("from", from.as_str()),
        ("to", "+3263553000"),
    ];
    let new = post_event(http, url, &[&[("event", "newCall")][..], &call].concat()).await;
    if let Some(pops) = pops {
        pops.lock()
            .expect("pops")
            .sent
            .insert(from.clone(), Instant::now());
    }
    let answer = [
        &[("event", "answer"), ("answeringNumber", ext.as_str())][..],
        &call,
    ]
    .concat();
    let answered = post_event(http, url, &answer).await;
    let hangup = [
        &[("event", "hangup"), ("cause", "normalClearing")][..],
        &call,
    ]
    .concat();
    let ended = post_event(http, url, &hangup).await;
    [new, answered, ended]
}

/// Calls `first..first + n` from `connections` connections, paced at `per_s` calls a second
/// in all (none: as fast as answered); every event's answer time, sorted.
async fn push_calls(
    url: &str,
    (first, n): (usize, usize),
    connections: usize,
    per_s: Option<usize>,
    pops: Option<Arc<Mutex<Pops>>>,
) -> Vec<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let (url, pops) = (url.to_string(), pops.clone());
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut latencies = Vec::new();
            let mut k = conn;
            while k < n {
                if let Some(per_s) = per_s {
                    // Open loop: call k is due at k / per_s seconds, whatever came before.
                    let due = started + Duration::from_secs_f64(k as f64 / per_s as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                latencies.extend(one_call(&http, &url, first + k, pops.as_deref()).await);
                k += connections;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("PBX connection"));
    }
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Calls posted by `CALL_CLIENTS` clients as fast as they are answered: calls per second.
async fn post_calls(base: &str, token: &str, n: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CALL_CLIENTS {
        let (url, token) = (format!("{base}/api/v1/calls"), token.to_string());
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut i = c;
            while i < n {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("cti-bench-{i}"))
                    .json(&serde_json::json!({"caller_phone": "0470 12 34 56",
                        "reason": "appointment_status", "outcome": "informed",
                        "duration_seconds": 120}))
                    .send()
                    .await
                    .expect("call");
                assert_eq!(r.status(), 201);
                i += CALL_CLIENTS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn run(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let seconds = scale(30, 3);
    let target = BenchDb::create(backend, server, "cti");
    let (base, state) = target.serve(16).await;
    let db = state.db.clone();
    let pbx = tokio::task::spawn_blocking(move || {
        reprise::service::telephony::create_pbx_token(
            &db,
            reprise::auth::Caller::command_line(),
            "Bench".into(),
        )
    })
    .await
    .expect("joined")
    .expect("PBX token");
    let url = format!("{base}/api/v1/cti/{pbx}");
    let mut tokens = Vec::new();
    for agent in 0..=AGENTS {
        // The last one logs calls, without an extension.
        let extension = (agent < AGENTS).then(|| extension(agent));
        tokens.push(common::account(&state, &format!("Agent {agent}"), "agent", extension).await);
    }
    let pops = Arc::new(Mutex::new(Pops::default()));
    let mut streams = Vec::new();
    for token in &tokens[..AGENTS] {
        let session = sign_in(&base, token).await;
        streams.push(tokio::spawn(agent_stream(
            base.clone(),
            session,
            pops.clone(),
        )));
    }
    // The streams are open before the first call.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. Paced: 1,000 calls a second.
    let calls = seconds * CALLS_PER_S;
    let rss_start = rss_mib();
    // The memory every 10 s of the load: flat once the caches are warm.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn({
        let samples = samples.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                samples.lock().expect("samples").push(rss_mib());
            }
        }
    });
    let started = Instant::now();
    let events = push_calls(
        &url,
        (0, calls),
        PBX_CONNECTIONS,
        Some(CALLS_PER_S),
        Some(pops.clone()),
    )
    .await;
    let paced_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_end = rss_mib();
    let (mut delays, lost) = {
        let mut p = pops.lock().expect("pops");
        (std::mem::take(&mut p.delays_ms), p.sent.len())
    };
    delays.sort_by(f64::total_cmp);
    println!("{tag}.cti.agents_streaming={AGENTS}");
    println!("{tag}.cti.pbx_connections={PBX_CONNECTIONS}");
    println!("{tag}.cti.paced_calls={calls}");
    println!("{tag}.cti.paced_seconds={paced_s:.2}");
    println!(
        "{tag}.cti.paced_events_per_s={:.0}",
        events.len() as f64 / paced_s
    );
    println!("{tag}.cti.event_p50_ms={:.2}", percentile(&events, 0.5));
    println!("{tag}.cti.event_p99_ms={:.2}", percentile(&events, 0.99));
    println!("{tag}.cti.pops={}", delays.len());
    println!("{tag}.cti.pops_missing={lost}");
    println!("{tag}.cti.pop_p50_ms={:.2}", percentile(&delays, 0.5));
    println!("{tag}.cti.pop_p99_ms={:.2}", percentile(&delays, 0.99));
    sampler.abort();
    println!("{tag}.cti.rss_start_mib={rss_start:.1}");
    for (i, rss) in samples.lock().expect("samples").iter().enumerate() {
        println!("{tag}.cti.rss_at_{}s_mib={rss:.1}", 10 * (i + 1));
    }
    println!("{tag}.cti.rss_end_mib={rss_end:.1}");

    // 2. Events as fast as they are answered, the streams still open (each answer and hangup
    // pops on a page): from the PBX's 16 connections, then from as many as the calls' clients.
    let burst = scale(10_000, 200);
    let mut rates = Vec::new();
    for (round, connections) in [PBX_CONNECTIONS, CALL_CLIENTS].into_iter().enumerate() {
        let started = Instant::now();
        let first = calls + round * burst;
        let events = push_calls(&url, (first, burst), connections, None, None).await;
        rates.push(events.len() as f64 / started.elapsed().as_secs_f64());
    }
    // 3. Calls as fast as they are answered.
    let calls_per_s = post_calls(&base, &tokens[AGENTS], scale(20_000, 200)).await;
    println!("{tag}.cti.events_per_s_16_connections={:.0}", rates[0]);
    println!("{tag}.cti.events_per_s={:.0}", rates[1]);
    println!("{tag}.cti.calls_per_s={calls_per_s:.0}");
    // Both from 32 clients.
    println!("{tag}.cti ratio={:.2}", rates[1] / calls_per_s);
    for s in streams {
        s.abort();
    }
}

fn main() {
    let runtime = common::runtime();
    for (backend, server) in &targets() {
        runtime.block_on(run(*backend, server.as_ref(), backend.name()));
    }
}
