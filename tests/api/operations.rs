//! The procedures of docs/operations.md, run as written: an upgrade (`reprise migrate` on the
//! database of the previous release), and a backup restored into a working service (SQLite:
//! `reprise backup` and the file put in place; PostgreSQL: `pg_dump` and `pg_restore`).

use std::process::Command;

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use reprise::db::{Backend, DatabaseUrl};
use serde_json::{json, Value};

use crate::cli::{create_token, reprise, serve};
use crate::helpers::{free_port, TestDb};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

fn run(command: &mut Command) -> String {
    let out = command.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The version diesel gives the newest migration of the source tree: the digits of its folder's
/// name (`2026-11-28-000006_delivery` → `20261128000006`).
fn last_migration_version(backend: Backend) -> String {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    let last = std::fs::read_dir(folder)
        .expect("migrations")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .max()
        .expect("a migration");
    let (version, _) = last.split_once('_').expect("VERSION_name");
    version.replace('-', "")
}

/// A new database, migrated by `reprise migrate`, with an admin token.
async fn migrated_database() -> (TestDb, DatabaseUrl, String) {
    let (db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("db");
    run(reprise()
        .env("REPRISE_DATABASE_URL", url.expose())
        .arg("migrate"));
    let token = create_token(&url, "Operations", "admin");
    (db, url, token)
}

/// Serves `url`, logs these calls (by Idempotency-Key) or lists the keys present, then stops.
async fn with_service(url: &DatabaseUrl, token: &str, log: &[&str]) -> Vec<String> {
    let outbox = tempfile::tempdir().expect("outbox");
    let port = free_port();
    let mut server = serve(&url.expose(), port, outbox.path()).await;
    let client = reqwest::Client::new();
    for key in log {
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/v1/calls"))
            .bearer_auth(token)
            .header("Idempotency-Key", *key)
            .json(&json!({"reason": "appointment_status", "outcome": "informed"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 201);
    }
    let page: Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/calls?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    server.kill().await.expect("stopped");
    let mut ids: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

/// "Upgrades": the new binary's `reprise migrate` on the database of the previous release (here:
/// the current schema with its last migration reverted) applies what is missing and keeps the
/// data; the service then starts on it.
#[tokio::test]
async fn an_upgrade_with_reprise_migrate_keeps_the_data() {
    let (_db, url, token) = migrated_database().await;
    let before = with_service(&url, &token, &["before-upgrade"]).await;
    assert_eq!(before.len(), 1);

    // The previous release's schema.
    let reverted = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || match url.connect().expect("connection") {
            reprise::db::DbConnection::Sqlite(mut c) => c
                .revert_last_migration(SQLITE_MIGRATIONS)
                .map(|v| v.to_string()),
            reprise::db::DbConnection::Pg(mut c) => c
                .revert_last_migration(POSTGRES_MIGRATIONS)
                .map(|v| v.to_string()),
        })
        .await
        .expect("task")
        .expect("reverted")
    };
    assert_eq!(reverted, last_migration_version(url.backend));

    run(reprise()
        .env("REPRISE_DATABASE_URL", url.expose())
        .arg("migrate"));
    let pending = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || match url.connect().expect("connection") {
            reprise::db::DbConnection::Sqlite(mut c) => c.has_pending_migration(SQLITE_MIGRATIONS),
            reprise::db::DbConnection::Pg(mut c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
        })
        .await
        .expect("task")
        .expect("checked")
    };
    assert!(!pending, "reprise migrate applied the new migration");
    let after = with_service(&url, &token, &["after-upgrade"]).await;
    assert_eq!(after.len(), 2);
    assert!(after.contains(&before[0]), "the data survived the upgrade");
}

/// "Backups and restores", on both databases: what the backup held is what the restored
/// service answers; what came after the backup is not there.
#[tokio::test]
async fn a_backup_restores_into_a_working_service() {
    let (_db, url, token) = migrated_database().await;
    let backed_up = with_service(&url, &token, &["one", "two"]).await;
    let folder = tempfile::tempdir().expect("folder");

    match url.backend {
        Backend::Sqlite => {
            let file = folder.path().join("reprise-backup.db");
            run(reprise()
                .env("REPRISE_DATABASE_URL", url.expose())
                .arg("backup")
                .arg(&file));
            let later = with_service(&url, &token, &["after-the-backup"]).await;
            assert_eq!(later.len(), 3);
            // Restore: the service stopped, the backup put in place, no -wal/-shm beside it.
            let live = std::path::PathBuf::from(
                url.expose()
                    .strip_prefix("sqlite://")
                    .expect("a sqlite:// URL"),
            );
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
            }
            std::fs::copy(&file, &live).expect("backup put in place");
            let restored = with_service(&url, &token, &[]).await;
            assert_eq!(restored, backed_up);
        }
        Backend::Postgres => {
            let dump = folder.path().join("reprise.dump");
            run(Command::new("pg_dump")
                .arg("--format=custom")
                .arg(format!("--file={}", dump.display()))
                .arg(url.expose()));
            let later = with_service(&url, &token, &["after-the-backup"]).await;
            assert_eq!(later.len(), 3);
            // Restore into a new, empty database.
            let (_restored_db, restored_url) = tokio::task::spawn_blocking(TestDb::create)
                .await
                .expect("db");
            run(Command::new("pg_restore")
                .arg("--no-owner")
                .arg(format!("--dbname={}", restored_url.expose()))
                .arg(&dump));
            let restored = with_service(&restored_url, &token, &[]).await;
            assert_eq!(restored, backed_up);
        }
    }
}
