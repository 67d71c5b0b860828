//! The log canary: personal data and secrets are seeded through the API of a real `reprise
//! serve` process logging at trace level, and none of them may appear in what it printed.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::reprise;
use crate::helpers::{free_port, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_personal_data_reaches_the_logs() {
    let (_db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("db");
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("serve.log");
    let cli_log_path = dir.path().join("cli.log");

    // The admin's name is personal data too.
    let out = reprise()
        .env("RUST_LOG", "trace")
        .env("REPRISE_DATABASE_URL", url.expose())
        .args([
            "token",
            "create",
            "--name",
            "Zyxwv Canaryadmin",
            "--role",
            "admin",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success());
    std::fs::write(&cli_log_path, &out.stderr).expect("write");
    let admin = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();

    let mut logs_of_cli = String::new();
    let port = free_port();
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut server = tokio::process::Command::from(reprise())
        .env("RUST_LOG", "trace")
        .env("REPRISE_LOG_FORMAT", "json")
        .env("REPRISE_DATABASE_URL", url.expose())
        .env("REPRISE_BIND", format!("127.0.0.1:{port}"))
        .env("REPRISE_OUTBOX_DIR", dir.path().join("outbox"))
        .arg("serve")
        .stdout(log_file.try_clone().expect("clone"))
        .stderr(log_file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the service did not come up");

    let post = |path: &str, token: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(token.to_string())
            .json(&body)
            .send()
    };
    let r = post(
        "/api/v1/sites",
        &admin,
        json!({"code": "CAN", "name": "Canary site", "kind": "hospital", "operating_rooms": 1}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);
    let r = post(
        "/api/v1/services",
        &admin,
        json!({"code": "CAN-S", "name": "Canary", "site": "CAN", "secretariat_phone": "061 99 88 77", "secretariat_email": "canary.zyxwv@example.be"}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);
    let r = post(
        "/api/v1/users",
        &admin,
        json!({"name": "Qwertz Canarysecretary", "role": "secretary", "services": ["CAN-S"]}),
    )
    .await
    .expect("sent");
    let secretary: Value = r.json().await.expect("json");
    let secretary_token = secretary["token"].as_str().expect("token").to_string();
    // Refused and invalid requests carrying personal data.
    let _ = client
        .get(format!("{base}/api/v1/users"))
        .bearer_auth(&secretary_token)
        .send()
        .await;
    let forged = "rp_forgedcanarytoken0123456789abcdef";
    let _ = client
        .get(format!("{base}/api/v1/users"))
        .bearer_auth(forged)
        .send()
        .await;
    let _ = post(
        "/api/v1/users",
        &admin,
        json!({"name": "Qwertz Canarysecretary", "role": "+3261998877"}),
    )
    .await;
    let _ = client
        .post(format!("{base}/api/v1/sites"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": \"Qwertz Canarybroken")
        .send()
        .await;
    let _ = client
        .get(format!("{base}/api/v1/audit?actor=qcanary77&action=Zyxwv"))
        .bearer_auth(&admin)
        .send()
        .await;
    let _ = client.get(format!("{base}/nowhere/qcanary77")).send().await;
    // A patient, searches by name and national number, a call with notes, a bad import line.
    let r = post(
        "/api/v1/patients",
        &admin,
        json!({"national_number": "85.07.30-033.28", "last_name": "Canarylast", "first_name": "Canaryfirst",
               "birth_date": "1985-07-30", "phone": "0471 99 88 77", "email": "canarypatient@example.be",
               "email_consent": true}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);
    let patient: Value = r.json().await.expect("json");
    for q in ["canarylast", "85073003328", "0471 99 88 77"] {
        let r = post("/api/v1/patients/search", &admin, json!({ "q": q }))
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
    }
    let r = post(
        "/api/v1/calls",
        &admin,
        json!({"patient_id": patient["id"], "caller_phone": "0471 99 88 77", "reason": "other",
               "outcome": "informed", "notes": "canarynote about the hip"}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);
    let _ = client
        .post(format!("{base}/api/v1/appointments/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(format!(
            "{}\n85073003329,Canarylast,Canaryfirst,1985-07-30,0471 99 88 77,,fr,false,CAN,CAN-S,operation,x,2022-05-16 09:00,2,false,false\n",
            reprise::service::imports::APPOINTMENT_HEADER.join(",")
        ))
        .send()
        .await;

    // An incident: the outbox worker delivers the patient's email (as an .eml file here) and
    // logs that it did, without the address or the name.
    let r = post(
        "/api/v1/appointments",
        &admin,
        json!({"patient_id": patient["id"], "site": "CAN", "service": "CAN-S", "kind": "operation",
               "label": "canarylabel", "scheduled_at": "2022-05-16T09:00:00+02:00", "priority": 2}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);
    let r = post(
        "/api/v1/incidents",
        &admin,
        json!({"title": "Canary incident", "started_at": "2022-05-14T00:00:00+02:00",
               "postpone_until": "2022-06-04T00:00:00+02:00", "sites": ["CAN"]}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);
    let outbox = dir.path().join("outbox");
    let mut delivered = false;
    for _ in 0..200 {
        let files = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
        if files > 0 {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(delivered, "the worker wrote the email");

    // The site reopens: the patient's email carries an answer link, which is opened, forged
    // and answered. The token is a credential: it must not reach the logs either.
    let r = post(
        "/api/v1/sites/CAN/reopen",
        &admin,
        json!({"programme": "full", "notify_patients": true}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 200);
    let mut token = None;
    for _ in 0..200 {
        token = std::fs::read_dir(&outbox)
            .expect("outbox")
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .filter_map(|raw| {
                let mail = mail_parser::MessageParser::default().parse(&raw)?;
                let text = mail.body_text(0)?.into_owned();
                let at = text.find("/answer/")? + "/answer/".len();
                text.get(at..at + 64).map(str::to_string)
            })
            .next();
        if token.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let token = token.expect("the reopening email with its link");
    let link = format!("{base}/answer/{token}");
    assert_eq!(client.get(&link).send().await.expect("sent").status(), 200);
    // The same token but its last digit: another link (flipped, never the same digit again).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged_link = format!("{base}/answer/{}{last}", &token[..63]);
    assert_eq!(
        client
            .get(&forged_link)
            .send()
            .await
            .expect("sent")
            .status(),
        404
    );
    let r = client
        .post(&link)
        .form(&[("answer", "call_back")])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    // The telephone system: its token (made by the command line), a call from the patient's
    // phone that nobody answers, the callback it opens, claimed and attempted with a note.
    let out = reprise()
        .env("RUST_LOG", "trace")
        .env("REPRISE_DATABASE_URL", url.expose())
        .args(["cti-token", "create", "--name", "Zyxwv PBX"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    logs_of_cli.push_str(&String::from_utf8_lossy(&out.stderr));
    let pbx = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    for event in ["newCall", "hangup"] {
        let r = client
            .post(format!("{base}/api/v1/cti/{pbx}"))
            .form(&[
                ("event", event),
                ("callId", "canary-1"),
                ("from", "0471 99 88 77"),
            ])
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
    }
    let callbacks: Value = client
        .get(format!("{base}/api/v1/callbacks?status=open"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let callback = callbacks["items"][0]["id"]
        .as_str()
        .expect("a callback")
        .to_string();
    let r = post(
        &format!("/api/v1/callbacks/{callback}/claim"),
        &admin,
        json!({}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 200);
    let r = post(
        &format!("/api/v1/callbacks/{callback}/attempts"),
        &admin,
        json!({"outcome": "voicemail", "note": "canarynote on the voicemail"}),
    )
    .await
    .expect("sent");
    assert_eq!(r.status(), 201);

    // Its delivery is recorded (and logged) just after the file is written.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    server.start_kill().expect("killed");
    let _ = server.wait().await;

    let mut logs = std::fs::read_to_string(&log_path).expect("logs");
    logs.push_str(&std::fs::read_to_string(&cli_log_path).expect("cli logs"));
    logs.push_str(&logs_of_cli);
    assert!(
        logs.contains("request served"),
        "the capture works: {}",
        &logs[..logs.len().min(2000)]
    );
    assert!(logs.lines().count() > 20, "trace level was on");
    assert!(
        logs.contains("email delivery"),
        "the worker's log is captured"
    );
    for canary in [
        admin.as_str(),
        &admin[3..20],
        pbx.as_str(),
        &pbx[3..20],
        secretary_token.as_str(),
        forged,
        "Zyxwv",
        "Qwertz",
        "+3261998877",
        "61 99 88 77",
        "canary.zyxwv",
        "qcanary77",
        "Canarylast",
        "canarylast",
        "Canaryfirst",
        "85073003328",
        "85073003329",
        "85.07.30",
        "471998877",
        "71 99 88 77",
        "canarypatient",
        "canarynote",
        "canarylabel",
        &token,
        &token[..32],
        &token[32..],
    ] {
        if let Some(at) = logs.find(canary) {
            let start = at.saturating_sub(300);
            let end = (at + 300).min(logs.len());
            panic!("{canary:?} reached the logs: …{}…", &logs[start..end]);
        }
    }
}
