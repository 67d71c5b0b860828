//! `reprise backup FILE` while calls are being logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use reprise::db::Backend;
use serde_json::{json, Value};

use crate::cli::reprise;
use crate::helpers::spawn_app;

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = diesel::sql_types::Text)]
    idempotency_key: String,
}

#[tokio::test]
async fn a_backup_taken_while_calls_are_logged_holds_every_call_acknowledged_before_it() {
    let app = spawn_app().await;
    let folder = tempfile::tempdir().expect("folder");
    let file = folder.path().join("reprise-backup.db");
    let url = app.database.expose().to_string();
    if app.backend == Backend::Postgres {
        let out = reprise()
            .env("REPRISE_DATABASE_URL", &url)
            .arg("backup")
            .arg(&file)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
        assert!(!file.exists());
        crate::helpers::skipped(
            "on PostgreSQL `reprise backup` refuses (pg_dump's job): the backup under load runs on SQLite",
        );
        return;
    }

    // Four agents log calls without a pause; each acknowledged key is noted with its time.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut agents = Vec::new();
    for agent in 0..4 {
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/calls"),
            app.admin().token().to_string(),
        );
        agents.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("agent{agent}-call{i}");
                i += 1;
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"reason": "appointment_status", "outcome": "informed"}))
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(r.status(), 201);
                let at = Instant::now();
                acknowledged.lock().expect("lock").push((key, at));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let began = Instant::now();
    let (backup_url, target) = (url.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        reprise()
            .env("REPRISE_DATABASE_URL", backup_url)
            .arg("backup")
            .arg(target)
            .output()
            .expect("runs")
    })
    .await
    .expect("joined");
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for a in agents {
        a.await.expect("an agent");
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert!(report["bytes"].as_u64() > Some(0));

    let path = file.to_string_lossy().into_owned();
    let keys: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut conn = diesel::SqliteConnection::establish(&path).expect("the backup opens");
        diesel::sql_query("SELECT idempotency_key FROM calls")
            .load::<Key>(&mut conn)
            .expect("calls")
            .into_iter()
            .map(|k| k.idempotency_key)
            .collect()
    })
    .await
    .expect("joined");
    let in_backup: std::collections::HashSet<String> = keys.into_iter().collect();
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let before: Vec<&String> = acknowledged
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(k, _)| k)
        .collect();
    let during = acknowledged
        .iter()
        .filter(|(_, at)| *at >= began && *at < ended)
        .count();
    let missing: Vec<&&String> = before.iter().filter(|k| !in_backup.contains(**k)).collect();
    println!(
        "acknowledged before the backup: {}, during it: {during}, in the backup: {}, missing: {}",
        before.len(),
        in_backup.len(),
        missing.len()
    );
    assert!(before.len() > 10, "calls were being logged");
    assert!(missing.is_empty(), "lost: {missing:?}");

    // The backup is audited; a second one never overwrites the first.
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=database.backup")
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");
    let again = reprise()
        .env("REPRISE_DATABASE_URL", &url)
        .arg("backup")
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let leftovers = std::fs::read_dir(folder.path())
        .expect("folder")
        .filter(|e| {
            e.as_ref()
                .map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(".reprise-backup-")
                })
                .unwrap_or(false)
        })
        .count();
    assert_eq!(leftovers, 0, "no partial file left behind");
}
