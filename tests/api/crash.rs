//! Crashes: a real `reprise serve` is killed with SIGKILL at random moments while eight clients
//! log calls with idempotency keys, and restarted each time. Every acknowledged call must be in
//! the database exactly once, under the id it was acknowledged with; every key retried across
//! a crash maps to one call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::RunQueryDsl;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::cli::{create_token, serve};
use crate::helpers::{free_port, TestDb};

const KILLS: usize = 20;
const CLIENTS: usize = 8;

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    idempotency_key: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_call_is_lost_or_doubled_when_the_server_is_killed() {
    let (_db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("db");
    let outbox = tempfile::tempdir().expect("outbox");
    let token = create_token(&url, "Crash", "agent");
    let port = free_port();
    let mut server = serve(&url.expose(), port, outbox.path()).await;

    // key → the call id of every acknowledgement (a retried key may be acknowledged twice).
    let acknowledged: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let retried = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (acknowledged, retried, stop, token) = (
            acknowledged.clone(),
            retried.clone(),
            stop.clone(),
            token.clone(),
        );
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("client{c}-call{i}");
                i += 1;
                let body = json!({"reason": "appointment_status", "outcome": "informed",
                                  "notes": format!("call {key}")});
                // The same key until the server acknowledges it, across crashes.
                loop {
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/api/v1/calls"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 || r.status() == 200 => {
                            let call: Value = match r.json().await {
                                Ok(v) => v,
                                // Killed while the answer was on its way: not acknowledged.
                                Err(_) => {
                                    retried.fetch_add(1, Ordering::SeqCst);
                                    continue;
                                }
                            };
                            let id = call["id"].as_str().expect("id").to_string();
                            acknowledged
                                .lock()
                                .expect("lock")
                                .entry(key.clone())
                                .or_default()
                                .push(id);
                            break;
                        }
                        Ok(r) => {
                            let status = r.status();
                            assert!(
                                status.is_server_error(),
                                "only a crash may refuse a call: {status}"
                            );
                            retried.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => {
                            retried.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(2022);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        server.start_kill().expect("SIGKILL");
        let _ = server.wait().await;
        server = serve(&url.expose(), port, outbox.path()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("a client");
    }
    server.start_kill().expect("stop");
    let _ = server.wait().await;

    let db_url = url.clone();
    let rows: Vec<Row> = tokio::task::spawn_blocking(move || {
        let mut conn = db_url.connect().expect("the database");
        match &mut conn {
            reprise::db::DbConnection::Sqlite(c) => {
                diesel::sql_query("SELECT id, idempotency_key FROM calls").load(c)
            }
            reprise::db::DbConnection::Pg(c) => {
                diesel::sql_query("SELECT id, idempotency_key FROM calls").load(c)
            }
        }
        .expect("calls")
    })
    .await
    .expect("joined");
    let mut stored: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        stored.entry(r.idempotency_key).or_default().push(r.id);
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let lost = acknowledged
        .iter()
        .filter(|(key, ids)| match stored.get(*key) {
            None => true,
            Some(rows) => ids.iter().any(|id| !rows.contains(id)),
        })
        .count();
    let duplicated = stored.values().filter(|rows| rows.len() > 1).count()
        + acknowledged
            .values()
            .filter(|ids| ids.iter().any(|id| id != &ids[0]))
            .count();
    println!(
        "kills: {KILLS}, acknowledged: {}, retried requests: {}, stored: {}, lost: {lost}, duplicated: {duplicated}",
        acknowledged.len(),
        retried.load(Ordering::SeqCst),
        stored.len()
    );
    assert!(acknowledged.len() > 100, "calls were logged");
    assert_eq!(lost, 0, "an acknowledged call is missing");
    assert_eq!(duplicated, 0, "a call is stored twice");
    // Every stored call was acknowledged: each client retried its key until it was.
    assert_eq!(stored.len(), acknowledged.len());
}
