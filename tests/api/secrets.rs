//! CONTRACT §7, secrets: the database and SMTP URLs may be read from the files that
//! `REPRISE_DATABASE_URL_FILE` / `REPRISE_SMTP_URL_FILE` name, are never taken as flags, and
//! are printed with every password hidden. Run as a real process, for the environment.

use std::process::Output;

use crate::cli::reprise;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A configuration error: exit 2, one line naming `variable`, no secret in it.
fn assert_refused(out: &Output, variable: &str) {
    let stderr = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("invalid {variable} (--")),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_password_given_as_a_flag_is_refused_before_or_after_the_sub_command() {
    for args in [
        [
            "--database",
            "postgres://me:s3cret@127.0.0.1:1/none",
            "migrate",
        ],
        [
            "migrate",
            "--database",
            "postgres://me:s3cret@127.0.0.1:1/none",
        ],
        [
            "migrate",
            "--database",
            "postgres://me@127.0.0.1:1/none?password=s3cret",
        ],
        ["migrate", "--smtp", "smtps://me:s3cret@127.0.0.1:1"],
    ] {
        let out = reprise().args(args).output().expect("runs");
        let variable = if args.contains(&"--smtp") {
            "REPRISE_SMTP_URL"
        } else {
            "REPRISE_DATABASE_URL"
        };
        assert_refused(&out, variable);
        assert!(stderr(&out).contains(&format!("{variable}_FILE")));
    }
}

#[test]
fn a_password_in_the_variable_is_taken_and_printed_hidden() {
    // Nothing listens on port 1: the error line prints the URL, its secrets hidden.
    for url in [
        "postgres://me:s3cret@127.0.0.1:1/none",
        "postgres://me@127.0.0.1:1/none?sslmode=disable&password=s3cret",
    ] {
        let out = reprise()
            .env("REPRISE_DATABASE_URL", url)
            .arg("migrate")
            .output()
            .expect("runs");
        let stderr = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("127.0.0.1:1/none") && stderr.contains("***"),
            "{stderr}"
        );
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

#[test]
fn the_database_url_is_read_from_the_file_its_file_variable_names() {
    let folder = tempfile::tempdir().expect("folder");
    let database = folder.path().join("from-a-file.db");
    let secret = folder.path().join("database-url");
    std::fs::write(&secret, format!("sqlite://{}\n", database.display())).expect("written");

    let out = reprise()
        .env("REPRISE_DATABASE_URL_FILE", &secret)
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(database.exists(), "the database named in the file");

    // With the variable too, or a file that cannot be read: one line naming the _FILE.
    let both = reprise()
        .env("REPRISE_DATABASE_URL_FILE", &secret)
        .env("REPRISE_DATABASE_URL", "sqlite://elsewhere.db")
        .arg("migrate")
        .output()
        .expect("runs");
    assert_refused(&both, "REPRISE_DATABASE_URL_FILE");
    let unreadable = reprise()
        .env("REPRISE_SMTP_URL_FILE", folder.path().join("missing"))
        .arg("migrate")
        .output()
        .expect("runs");
    assert_refused(&unreadable, "REPRISE_SMTP_URL_FILE");
    println!("{}{}", stderr(&both), stderr(&unreadable));
}
