//! CONTRACT §7, files: the data folder is 0700; the database (with its WAL and SHM files),
//! backups, exports and `.eml` files are 0600, whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use reprise::db::Backend;
use serde_json::{json, Value};

use crate::helpers::{fast_delivery, free_port, spawn_app_with, unique_code, TestDb};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn assert_mode(path: &Path, expected: u32) {
    assert_eq!(
        mode(path),
        expected,
        "{} is {:o}, not {expected:o}",
        path.display(),
        mode(path)
    );
}

/// `reprise`, started under umask 000, as a careless shell or service manager might start it:
/// without explicit modes, everything it creates would be readable (and writable) by all.
fn reprise_under_umask_000() -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"umask 000; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_reprise"));
    for (key, _) in std::env::vars() {
        if key.starts_with("REPRISE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a sub-command on `url` under umask 000; stops the test if it fails.
fn run(url: &str, args: &[&str], file: Option<&Path>) -> Output {
    let mut cmd = reprise_under_umask_000();
    cmd.env("REPRISE_DATABASE_URL", url).args(args);
    if let Some(file) = file {
        cmd.arg(file);
    }
    succeeded(cmd.output().expect("runs"))
}

/// `reprise serve` under umask 000; returns once `/health` answers.
async fn serve(url: &str, port: u16, outbox: &Path) -> tokio::process::Child {
    let mut cmd = reprise_under_umask_000();
    cmd.env("REPRISE_DATABASE_URL", url)
        .env("REPRISE_BIND", format!("127.0.0.1:{port}"))
        .env("REPRISE_OUTBOX_DIR", outbox)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null());
    let child = tokio::process::Command::from(cmd)
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
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the service did not come up");
}

#[tokio::test]
async fn the_command_line_under_umask_000_leaves_nothing_readable_by_others() {
    let root = tempfile::tempdir().expect("folder");
    // SQLite: a database in folders that do not exist yet. PostgreSQL: a database of the
    // test's own, where only the files outside the database apply.
    let (test_db, url) = TestDb::create();
    let backend = test_db.backend();
    let data = root.path().join("data");
    let database = data.join("private").join("reprise.db");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", database.display()),
        Backend::Postgres => url.expose(),
    };

    run(&url, &["migrate"], None);
    let token = String::from_utf8(
        run(
            &url,
            &["token", "create", "--name", "Root", "--role", "admin"],
            None,
        )
        .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_string();

    // A site with a service, through the service itself (sites are made over HTTP).
    let port = free_port();
    let mail = root.path().join("mail");
    let mut service = serve(&url, port, &mail.join("outbox")).await;
    let client = reqwest::Client::new();
    let site = unique_code("F");
    for (path, body) in [
        (
            "sites",
            json!({"code": site, "name": "Site", "kind": "hospital", "operating_rooms": 2}),
        ),
        (
            "services",
            json!({"code": format!("{site}-S"), "name": "Service", "site": site}),
        ),
    ] {
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/v1/{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 201, "{path}");
    }

    // Exports: a new file, and one that replaces a file readable by all.
    let export = root.path().join("list.csv");
    let older = root.path().join("older.csv");
    std::fs::write(&older, "an older list\n").expect("written");
    std::fs::set_permissions(&older, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    for out in [&export, &older] {
        let args = ["export", "contact-list", "--site", site.as_str(), "--out"];
        run(&url, &args, Some(out));
        assert_mode(out, 0o600);
    }
    let replaced = std::fs::read_to_string(&older).expect("the list");
    assert!(!replaced.contains("an older list"), "{replaced}");

    // The outbox folder the service created.
    assert_mode(&mail, 0o700);
    assert_mode(&mail.join("outbox"), 0o700);

    if backend == Backend::Postgres {
        crate::helpers::skipped("on PostgreSQL there is no database file, nor `reprise backup`");
        service.kill().await.expect("stopped");
        return;
    }
    // While the service runs, the WAL and SHM files are there: as private as the database.
    assert_mode(&data, 0o700);
    assert_mode(&data.join("private"), 0o700);
    assert_mode(&database, 0o600);
    for suffix in ["-wal", "-shm"] {
        assert_mode(Path::new(&format!("{}{suffix}", database.display())), 0o600);
    }
    let backup = root.path().join("backup.db");
    let report: Value = serde_json::from_slice(&run(&url, &["backup"], Some(&backup)).stdout)
        .expect("a JSON report");
    assert!(report["bytes"].as_u64() > Some(0));
    assert_mode(&backup, 0o600);
    service.kill().await.expect("stopped");
}

/// The umask of this test process (022 as a rule), for the record.
fn own_umask() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:").map(|m| m.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::test]
async fn eml_files_and_the_outbox_folder_are_private_whatever_the_umask_of_the_process() {
    // The library, run in this process, does not change its umask: the modes are explicit.
    println!("umask of the test process: {}", own_umask());
    let root = tempfile::tempdir().expect("folder");
    let outbox = root.path().join("new").join("outbox");
    let app = {
        let outbox = outbox.clone();
        spawn_app_with(move |s| {
            s.delivery = Some(fast_delivery());
            s.outbox_dir = outbox;
        })
        .await
    };
    assert_mode(&root.path().join("new"), 0o700);
    assert_mode(&outbox, 0o700);

    // One postponed appointment of a patient who takes emails: one email.
    let (site, service) = app.create_site_and_service().await;
    let csv = format!(
        "{}\n,Prive,Anne,1950-01-01,,anne@example.be,fr,true,{site},{service},consultation,Suivi,2022-05-16 09:30,3,false,false\n",
        reprise::service::imports::APPOINTMENT_HEADER.join(",")
    );
    let r = app
        .admin()
        .post_csv("/api/v1/appointments/import", csv)
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .admin()
        .post(
            "/api/v1/incidents",
            &json!({"title": "Cyberattaque", "started_at": "2022-03-20T00:00:00+01:00",
                "postpone_until": "2022-12-31T00:00:00+01:00", "sites": [site]}),
        )
        .await;
    assert_eq!(r.status(), 201);

    let started = std::time::Instant::now();
    let emails = loop {
        let emails: Vec<_> = std::fs::read_dir(&outbox)
            .expect("the outbox")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        if !emails.is_empty() {
            break emails;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no email written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for email in &emails {
        assert_mode(email, 0o600);
    }
}

#[test]
fn a_database_readable_by_others_is_made_private_at_the_next_start() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    if std::env::var("REPRISE_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        crate::helpers::skipped("on PostgreSQL the database is not a file of ours");
        return;
    }
    let root = tempfile::tempdir().expect("folder");
    let database = root.path().join("reprise.db");
    let url = format!("sqlite://{}", database.display());
    run(&url, &["migrate"], None);
    // Another process keeps the database open, so that its WAL and SHM files are there; then
    // all three are made readable by all, as an older version or a `cp` would leave them.
    let mut other = diesel::SqliteConnection::establish(&database.to_string_lossy())
        .expect("the database opens");
    other
        .batch_execute("SELECT count(*) FROM sqlite_master")
        .expect("read");
    let files: Vec<_> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| std::path::PathBuf::from(format!("{}{suffix}", database.display())))
        .collect();
    for file in &files {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }

    let out = run(&url, &["migrate"], None);
    for file in &files {
        assert_mode(file, 0o600);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("made private") && stderr.contains("reprise.db-wal"),
        "a warning names each file: {stderr}"
    );
    drop(other);
}
