//! Load and soak: a real `reprise serve` under a steady 200 requests a second, mixed — calls
//! logged, patient searches, call statistics, contact-list exports — for
//! `REPRISE_SOAK_SECONDS` (20 in CI; `REPRISE_SOAK_SECONDS=600 cargo test --release --test api
//! soak -- --nocapture` for the ten-minute run of docs/reliability.md). No request may fail;
//! the server's memory, measured after a warm-up, may not grow by 10 % or more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::{create_token, serve};
use crate::helpers::{free_port, TestDb};

const RATE: u64 = 200;

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_mixed_load_gets_no_errors_and_memory_stays_flat() {
    let seconds: u64 = std::env::var("REPRISE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // The first seconds fill what is filled once: the runtime's threads and their allocator
    // arenas, the database connections and their caches.
    let warm_up = Duration::from_secs(
        std::env::var("REPRISE_SOAK_WARM_UP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let (_db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("db");
    let dir = tempfile::tempdir().expect("dir");
    let token = create_token(&url, "Soak", "admin");
    let port = free_port();
    let mut server = serve(&url.expose(), port, &dir.path().join("outbox")).await;
    let pid = server.id().expect("pid");
    let base = format!("http://127.0.0.1:{port}");
    // The server closes a keep-alive connection after 5 s idle (actix-web's default); a client
    // that reuses one at that instant sends into a closing socket and gets "connection closed
    // before message completed" for a request the server never read: a race in the client's
    // pool, not an answer. Its idle connections go first.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .expect("client");

    // A site, 300 patients with a postponed appointment each, the site reopened.
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(
            "/api/v1/sites",
            json!({"code": "SOAK", "name": "Soak", "kind": "hospital", "operating_rooms": 4})
        )
        .await
        .expect("sent")
        .status(),
        201
    );
    assert_eq!(
        post(
            "/api/v1/services",
            json!({"code": "SOAK-S", "name": "Service", "site": "SOAK"})
        )
        .await
        .expect("sent")
        .status(),
        201
    );
    let mut csv = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    csv.push('\n');
    for i in 0..300 {
        csv.push_str(&format!(
            ",Lambert{i},Anne,1950-01-01,,,fr,false,SOAK,SOAK-S,consultation,Suivi,2022-05-16 09:30,{},false,false\n",
            i % 4 + 1
        ));
    }
    let r = client
        .post(format!("{base}/api/v1/appointments/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    assert_eq!(
        post(
            "/api/v1/incidents",
            json!({"title": "Soak", "started_at": "2022-05-14T00:00:00+02:00",
            "postpone_until": "2022-06-04T00:00:00+02:00", "sites": ["SOAK"]})
        )
        .await
        .expect("sent")
        .status(),
        201
    );
    assert_eq!(
        post(
            "/api/v1/sites/SOAK/reopen",
            json!({"programme": "moderate", "notify_patients": false})
        )
        .await
        .expect("sent")
        .status(),
        200
    );

    // (status, or what a request without an answer met; milliseconds) of every request after
    // the warm-up.
    type Outcome = (Result<u16, String>, f64);
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut rss_after_warm_up = None;
    let mut samples = Vec::new();
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while started.elapsed() < warm_up + Duration::from_secs(seconds) {
        ticker.tick().await;
        if rss_after_warm_up.is_none() && started.elapsed() >= warm_up {
            rss_after_warm_up = Some(resident_kib(pid));
        }
        if sent.is_multiple_of(RATE * 5) {
            samples.push((started.elapsed().as_secs(), resident_kib(pid)));
        }
        let measured = started.elapsed() >= warm_up;
        let n = sent;
        sent += 1;
        let (client, base, token, results) =
            (client.clone(), base.clone(), token.clone(), results.clone());
        tasks.spawn(async move {
            let request = match n % 20 {
                // Half the load: calls logged.
                0..=9 => client
                    .post(format!("{base}/api/v1/calls"))
                    .header("Idempotency-Key", format!("soak-{n}"))
                    .json(
                        &json!({"reason": "appointment_status", "outcome": "informed",
                                  "duration_seconds": 60, "notes": "soak"}),
                    ),
                10..=14 => client
                    .post(format!("{base}/api/v1/patients/search"))
                    .json(&json!({"q": format!("lambert{}", n % 30)})),
                15..=17 => client.get(format!("{base}/api/v1/calls/stats?bucket=hour")),
                _ => client.get(format!("{base}/api/v1/contact-list?site=SOAK&format=csv")),
            };
            let t = Instant::now();
            let status = match request.bearer_auth(&token).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // Read the whole answer: an export is only done when downloaded.
                    let _ = r.bytes().await;
                    Ok(status)
                }
                Err(e) => Err(format!("{e:?}")),
            };
            if measured {
                results
                    .lock()
                    .expect("lock")
                    .push((status, t.elapsed().as_secs_f64() * 1000.0));
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let rss_end = resident_kib(pid);
    let rss_start = rss_after_warm_up.expect("measured");
    server.start_kill().expect("stop");
    let _ = server.wait().await;

    let results = results.lock().expect("lock").clone();
    // Everything but a 2xx: its status, or what it met.
    let failures: Vec<&Result<u16, String>> = results
        .iter()
        .map(|(outcome, _)| outcome)
        .filter(|outcome| !matches!(outcome, Ok(s) if (200..300).contains(s)))
        .collect();
    let errors = failures.len();
    let mut latencies: Vec<f64> = results.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let growth = (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0;
    println!(
        "soak: {seconds} s at {RATE}/s after {} s of warm-up: {} requests, {errors} errors, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, memory {rss_start} KiB → {rss_end} KiB ({growth:+.1} %)",
        warm_up.as_secs(),
        results.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    println!("memory (s, KiB): {samples:?}");
    assert!(
        results.len() as u64 >= seconds * RATE * 9 / 10,
        "the rate was kept"
    );
    assert_eq!(errors, 0, "every request succeeded: {failures:?}");
    assert!(growth < 10.0, "memory grew by {growth:.1} %");
}
