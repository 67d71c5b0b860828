//! The command line of CONTRACT §1, run as a real process.

use std::process::Command;

use crate::helpers::TestDb;

pub fn reprise() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
    for (key, _) in std::env::vars() {
        if key.starts_with("REPRISE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// `reprise token create` on `url`: the new account's token.
pub fn create_token(url: &reprise::db::DatabaseUrl, name: &str, role: &str) -> String {
    printed(url, &["token", "create", "--name", name, "--role", role])
}

/// `reprise cti-token create` on `url`: the telephone system's new token.
pub fn create_pbx_token(url: &reprise::db::DatabaseUrl, name: &str) -> String {
    printed(url, &["cti-token", "create", "--name", name])
}

/// What `reprise ARGS` on `url` printed, trimmed; panics unless it succeeded.
fn printed(url: &reprise::db::DatabaseUrl, args: &[&str]) -> String {
    let out = reprise()
        .env("REPRISE_DATABASE_URL", url.expose())
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// A real `reprise serve` on `url` and `port`, per-account limits off (the tests that run it
/// put a whole call centre's load on one token); returns once `/health` answers 200.
pub async fn serve(url: &str, port: u16, outbox: &std::path::Path) -> tokio::process::Child {
    serve_with(url, port, outbox, &[]).await
}

/// [`serve`] with more settings (`REPRISE_…` variables), which may override its own.
pub async fn serve_with(
    url: &str,
    port: u16,
    outbox: &std::path::Path,
    settings: &[(&str, &str)],
) -> tokio::process::Child {
    let child = tokio::process::Command::from(reprise())
        .env("REPRISE_DATABASE_URL", url)
        .env("REPRISE_BIND", format!("127.0.0.1:{port}"))
        .env("REPRISE_OUTBOX_DIR", outbox)
        .env("REPRISE_RATE_WRITES", "0")
        .env("REPRISE_RATE_READS", "0")
        .envs(settings.iter().copied())
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("reprise serve starts");
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
        {
            if r.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the service did not come up");
}

#[test]
fn token_create_prints_the_token_alone() {
    let (_db, url) = TestDb::create();
    let out = reprise()
        .env("REPRISE_DATABASE_URL", url.expose())
        .args(["token", "create", "--name", "Root", "--role", "admin"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout: {stdout:?}");
    assert!(lines[0].starts_with("rp_") && lines[0].len() > 32);
}

#[test]
fn token_create_refuses_a_secretary_without_service() {
    let (_db, url) = TestDb::create();
    let out = reprise()
        .env("REPRISE_DATABASE_URL", url.expose())
        .args(["token", "create", "--name", "S", "--role", "secretary"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("services"));
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    for (var, value) in [
        ("REPRISE_BIND", "not-an-address"),
        ("REPRISE_DB_POOL", "zero"),
        ("REPRISE_DB_PREPARED_STATEMENTS", "maybe"),
        ("REPRISE_SMTP_URL", "http://mail"),
        ("REPRISE_DATABASE_URL", "oracle://db"),
        ("REPRISE_LOG_FORMAT", "yaml"),
        ("REPRISE_RATE_WRITES", "-5"),
        ("REPRISE_RATE_READS", "lots"),
    ] {
        let out = reprise()
            .env(var, value)
            .arg("serve")
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[test]
fn flags_win_over_variables() {
    let out = reprise()
        .env("REPRISE_BIND", "127.0.0.1:1")
        .args(["--bind", "nowhere", "serve"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nowhere\""));
}

#[test]
fn migrate_applies_the_schema_and_reports_a_bad_database_plainly() {
    let (_db, url) = TestDb::create();
    let out = reprise()
        .env("REPRISE_DATABASE_URL", url.expose())
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = reprise()
        .env("REPRISE_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .arg("migrate")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("127.0.0.1") && stderr.to_lowercase().contains("connect"),
        "{stderr}"
    );
}
