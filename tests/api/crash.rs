//! Crashes: a real `reprise serve` is killed with SIGKILL at random moments while eight clients
//! log calls with idempotency keys, and restarted each time. Every acknowledged call must be in
//! the database exactly once, under the id it was acknowledged with; every key retried across
//! a crash maps to one call. The clients and the check are shared with `instances.rs`, which
//! does the same through nginx in front of three instances.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Key → the call id of every acknowledgement (a retried key may be acknowledged twice).
pub type Acknowledged = Arc<Mutex<HashMap<String, Vec<String>>>>;

/// What the clients of a run share: the acknowledgements, the requests retried, and the
/// signal to stop.
#[derive(Clone, Default)]
pub struct Clients {
    pub acknowledged: Acknowledged,
    pub retried: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
}

impl Clients {
    /// A client logging calls at `base` with `token` until told to stop, each with a key of
    /// its own (`name` and a number), sent again with the same key until the server acknowledges it (201 or 200),
    /// across crashes. Only a server error (a crash, a proxy's 502) may refuse a call.
    pub fn spawn(&self, name: String, base: String, token: String) -> tokio::task::JoinHandle<()> {
        let Clients {
            acknowledged,
            retried,
            stop,
        } = self.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("{name}-call{i}");
                i += 1;
                let body = json!({"reason": "appointment_status", "outcome": "informed",
                                  "notes": format!("call {key}")});
                loop {
                    let sent = client
                        .post(format!("{base}/api/v1/calls"))
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
        })
    }

    /// Stops the clients and waits for them; the acknowledgements, by key.
    pub async fn stop(
        &self,
        clients: Vec<tokio::task::JoinHandle<()>>,
    ) -> HashMap<String, Vec<String>> {
        self.stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.expect("a client");
        }
        self.acknowledged.lock().expect("lock").clone()
    }
}

/// The calls in the database, by key: their ids.
pub async fn stored_calls(url: &reprise::db::DatabaseUrl) -> HashMap<String, Vec<String>> {
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
    stored
}

/// Acknowledged calls missing from the database (or stored under another id), and keys
/// stored twice or acknowledged with two ids.
pub fn lost_and_duplicated(
    acknowledged: &HashMap<String, Vec<String>>,
    stored: &HashMap<String, Vec<String>>,
) -> (usize, usize) {
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
    (lost, duplicated)
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

    let run = Clients::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = format!("http://127.0.0.1:{port}");
            run.spawn(format!("client{c}"), base, token.clone())
        })
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(2022);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        server.start_kill().expect("SIGKILL");
        let _ = server.wait().await;
        server = serve(&url.expose(), port, outbox.path()).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acknowledged = run.stop(clients).await;
    server.start_kill().expect("stop");
    let _ = server.wait().await;

    let stored = stored_calls(&url).await;
    let (lost, duplicated) = lost_and_duplicated(&acknowledged, &stored);
    println!(
        "kills: {KILLS}, acknowledged: {}, retried requests: {}, stored: {}, lost: {lost}, duplicated: {duplicated}",
        acknowledged.len(),
        run.retried.load(Ordering::SeqCst),
        stored.len()
    );
    assert!(acknowledged.len() > 100, "calls were logged");
    assert_eq!(lost, 0, "an acknowledged call is missing");
    assert_eq!(duplicated, 0, "a call is stored twice");
    // Every stored call was acknowledged: each client retried its key until it was.
    assert_eq!(stored.len(), acknowledged.len());
}
