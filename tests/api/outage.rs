//! A PostgreSQL outage under load: the service reaches its database through a TCP proxy in the
//! test, which is cut for ten seconds (open connections dropped, new ones closed at once).
//! Requests meanwhile get a quick 503 problem+json; the service recovers by itself; no
//! acknowledged call is lost. (SQLite has no server to lose: the test applies to PostgreSQL.)

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use reprise::db::{Backend, DatabaseUrl};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{spawn_app_with, TestDb};

/// Forwards 127.0.0.1:<port> to PostgreSQL while `up`; cutting it drops every connection.
struct Proxy {
    port: u16,
    up: watch::Sender<bool>,
}

async fn proxy(target: u16) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (up, state) = watch::channel(true);
    tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                continue;
            };
            if !*state.borrow() {
                drop(inbound);
                continue;
            }
            let mut cut = state.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut a, mut b) = (inbound, outbound);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                    _ = cut.wait_for(|up| !*up) => {}
                }
            });
        }
    });
    Proxy { port, up }
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = diesel::sql_types::Text)]
    idempotency_key: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gets_quick_503s_and_the_service_recovers_by_itself() {
    let (db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("db");
    let TestDb::Postgres { server, name } = &db else {
        crate::helpers::skipped(
            "on SQLite: there is no database server to lose; runs on PostgreSQL",
        );
        return;
    };
    assert_eq!(url.backend, Backend::Postgres);
    let real_port = url::Url::parse(&server.expose())
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(5432);
    let proxy = proxy(real_port).await;
    let mut through = url::Url::parse(&server.expose()).expect("url");
    through.set_port(Some(proxy.port)).expect("port");
    through.set_path(&format!("/{name}"));
    let via_proxy = DatabaseUrl::parse(through.as_str()).expect("a postgres URL");
    let app = spawn_app_with(move |s| s.database = via_proxy).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    // (status, seconds, problem+json?) of every answer that was not a success.
    let refusals: Arc<Mutex<Vec<(u16, f64, bool)>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..4 {
        let (stop, acknowledged, refusals) = (stop.clone(), acknowledged.clone(), refusals.clone());
        let (client, endpoint, token) = (
            app.client.clone(),
            app.url("/api/v1/calls"),
            app.admin().token().to_string(),
        );
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("c{c}-{i}");
                let started = Instant::now();
                let r = client
                    .post(&endpoint)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"reason": "appointment_status", "outcome": "informed"}))
                    .send()
                    .await
                    .expect("the service answers");
                let status = r.status().as_u16();
                let problem = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                if status == 201 || status == 200 {
                    acknowledged.lock().expect("lock").push(key);
                    i += 1;
                } else {
                    refusals.lock().expect("lock").push((
                        status,
                        started.elapsed().as_secs_f64(),
                        problem,
                    ));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = acknowledged.lock().expect("lock").len();
    proxy.up.send_replace(false);
    let health = app.anonymous().get("/health").await;
    assert_eq!(health.status(), 503, "the health check sees the outage");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = acknowledged.lock().expect("lock").len() - before;
    proxy.up.send_replace(true);

    // Recovery without a restart: calls are acknowledged again within seconds.
    let back = Instant::now();
    let at_restore = acknowledged.lock().expect("lock").len();
    while acknowledged.lock().expect("lock").len() < at_restore + 20 {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the service did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_in = back.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("a client");
    }
    assert_eq!(app.anonymous().get("/health").await.status(), 200);

    let refusals = refusals.lock().expect("lock").clone();
    let slowest = refusals.iter().map(|r| r.1).fold(0.0, f64::max);
    println!(
        "acknowledged before: {before}, during the 10 s outage: {during}, refusals: {}, slowest refusal: {slowest:.2} s, recovered in {recovered_in:.2} s",
        refusals.len()
    );
    assert!(!refusals.is_empty(), "the outage was felt");
    for (status, seconds, problem) in &refusals {
        assert_eq!(*status, 503, "only 503 during an outage");
        assert!(*problem, "a problem+json body");
        assert!(
            *seconds < 7.0,
            "an answer within the pool's wait, not a hang: {seconds}"
        );
    }

    // Every acknowledged call is in the database (read directly, not through the proxy).
    let direct = url.clone();
    let stored: HashSet<String> = tokio::task::spawn_blocking(move || {
        let mut conn = direct.connect().expect("the database");
        let reprise::db::DbConnection::Pg(c) = &mut conn else {
            unreachable!("PostgreSQL")
        };
        diesel::sql_query("SELECT idempotency_key FROM calls")
            .load::<Key>(c)
            .expect("calls")
            .into_iter()
            .map(|k| k.idempotency_key)
            .collect()
    })
    .await
    .expect("joined");
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let lost = acknowledged.iter().filter(|k| !stored.contains(*k)).count();
    println!("acknowledged: {}, lost: {lost}", acknowledged.len());
    assert_eq!(lost, 0);
}
