use serde_json::{json, Value};

use crate::cli::reprise;
use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn log(app: &TestApp, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .admin()
        .request(reqwest::Method::POST, "/api/v1/calls")
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("sent")
}

/// Logs an "other / informed" call received at this instant (default now); it must be 201.
async fn logged_at(app: &TestApp, received_at: Option<&str>) {
    let mut body = json!({"reason": "other", "outcome": "informed"});
    if let Some(at) = received_at {
        body["received_at"] = json!(at);
    }
    assert_eq!(log(app, None, &body).await.status(), 201);
}

async fn all_calls(app: &TestApp) -> Vec<Value> {
    let page: Value = app.admin().get_json("/api/v1/calls?limit=1000").await;
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn a_call_is_logged_with_its_fields() {
    let app = spawn_app().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let r = log(
        &app,
        None,
        &json!({"received_at": "2022-05-16T09:15:00+02:00", "caller_phone": "0470 12 34 56", "patient_id": patient,
                "reason": "appointment_status", "outcome": "callback_scheduled", "duration_seconds": 95,
                "notes": "Demande quand sera reprogrammée l'opération", "callback_requested": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let call: Value = r.json().await.expect("json");
    assert_eq!(call["caller_phone"], "+32470123456");
    assert_eq!(call["received_at"], "2022-05-16T07:15:00Z");
    assert_eq!(call["callback_requested"], true);
    assert!(call["agent_id"].is_string());
    let metrics = app.anonymous().text("/metrics").await;
    assert!(
        metrics.contains("reprise_calls_logged_total 1"),
        "{metrics}"
    );
    // received_at defaults to now.
    let r = log(
        &app,
        None,
        &json!({"reason": "other", "outcome": "abandoned"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let now: Value = r.json().await.expect("json");
    let at = chrono::DateTime::parse_from_rfc3339(now["received_at"].as_str().expect("at"))
        .expect("rfc3339");
    assert!(
        (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            < 60
    );
}

#[tokio::test]
async fn bad_calls_are_422_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let base = json!({"reason": "other", "outcome": "informed"});
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    for (body, field) in [
        (with("reason", json!("complaint")), "reason"),
        (with("outcome", json!("hung_up")), "outcome"),
        (with("notes", json!("x".repeat(2001))), "notes"),
        (with("duration_seconds", json!(-5)), "duration_seconds"),
        (
            with("received_at", json!("16/05/2022 09:15")),
            "received_at",
        ),
        (
            with("received_at", json!("2999-01-01T00:00:00Z")),
            "received_at",
        ),
        (with("caller_phone", json!("not a number")), "caller_phone"),
        (with("patient_id", json!("nobody")), "patient_id"),
    ] {
        let p = assert_problem(log(&app, None, &body).await, 422).await;
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {fields:?}");
    }
    assert!(all_calls(&app).await.is_empty());
}

#[tokio::test]
async fn one_key_one_call_even_when_a_hundred_requests_race() {
    let app = std::sync::Arc::new(spawn_app().await);
    let body =
        json!({"reason": "reschedule_request", "outcome": "informed", "duration_seconds": 30});
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (app, body) = (app.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r = log(&app, Some("key-race-1"), &body).await;
            let status = r.status().as_u16();
            let call: Value = r.json().await.expect("json");
            (status, call["id"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (status, id) = t.await.expect("joined");
        assert!(status == 201 || status == 200, "status {status}");
        created += usize::from(status == 201);
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the same call");
    assert_eq!(created, 1, "exactly one 201");
    assert_eq!(all_calls(&app).await.len(), 1);

    // The same key with another body is refused.
    let other = json!({"reason": "other", "outcome": "informed"});
    assert_problem(log(&app, Some("key-race-1"), &other).await, 422).await;
    assert_eq!(all_calls(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_key_on_parallel_connections_creates_one_call() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            // A fresh client: a connection of its own.
            let client = reqwest::Client::new();
            let r = client
                .post(app.url("/api/v1/calls"))
                .bearer_auth(app.admin().token())
                .header("Idempotency-Key", format!("k-{}", i % 10))
                .json(&json!({"reason": "results", "outcome": "informed", "notes": format!("n{}", i % 10)}))
                .send()
                .await
                .expect("sent");
            r.status().as_u16()
        }));
    }
    for t in tasks {
        let status = t.await.expect("joined");
        assert!(status == 201 || status == 200, "{status}");
    }
    assert_eq!(all_calls(&app).await.len(), 10);
}

#[tokio::test]
async fn the_list_is_newest_first_and_stable_while_calls_arrive() {
    let app = spawn_app().await;
    for minute in 0..5 {
        logged_at(&app, Some(&format!("2022-05-16T09:0{minute}:00+02:00"))).await;
    }
    let first: Value = app.admin().get_json("/api/v1/calls?limit=2").await;
    let times: Vec<&str> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["received_at"].as_str())
        .collect();
    assert_eq!(times, ["2022-05-16T07:04:00Z", "2022-05-16T07:03:00Z"]);
    // New calls arrive, newer and older than the page: the next page goes on where it stopped.
    for at in ["2022-05-16T10:00:00+02:00", "2022-05-16T09:03:30+02:00"] {
        logged_at(&app, Some(at)).await;
    }
    let cursor = first["next_cursor"].as_str().expect("more");
    let second: Value = app
        .admin()
        .get_json(&format!("/api/v1/calls?limit=10&cursor={cursor}"))
        .await;
    let times: Vec<&str> = second["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["received_at"].as_str())
        .collect();
    assert_eq!(
        times,
        [
            "2022-05-16T07:02:00Z",
            "2022-05-16T07:01:00Z",
            "2022-05-16T07:00:00Z"
        ]
    );

    let filtered: Value = app
        .admin()
        .get_json("/api/v1/calls?from=2022-05-16T07:01:00Z&to=2022-05-16T07:03:00Z&reason=other")
        .await;
    assert_eq!(filtered["items"].as_array().expect("items").len(), 2);
    assert_problem(app.admin().get("/api/v1/calls?cursor=garbage").await, 422).await;
    assert_problem(app.admin().get("/api/v1/calls?reason=nope").await, 422).await;
}

#[tokio::test]
async fn statistics_follow_belgian_days() {
    let app = spawn_app().await;
    // 23:30 UTC on the 13th is already the 14th in Brussels.
    for (at, reason, outcome, duration) in [
        (
            "2022-05-13T21:30:00Z",
            "appointment_status",
            "informed",
            Some(60),
        ),
        (
            "2022-05-13T23:30:00Z",
            "appointment_status",
            "abandoned",
            None,
        ),
        ("2022-05-14T10:00:00Z", "results", "informed", Some(120)),
        ("2022-05-15T21:59:00Z", "other", "informed", Some(30)),
    ] {
        let mut body = json!({"received_at": at, "reason": reason, "outcome": outcome});
        if let Some(d) = duration {
            body["duration_seconds"] = json!(d);
        }
        assert_eq!(log(&app, None, &body).await.status(), 201);
    }
    let stats: Value = app.admin().get_json("/api/v1/calls/stats?from=2022-05-13T00:00:00%2B02:00&to=2022-05-16T00:00:00%2B02:00&bucket=day").await;
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["avg_duration_seconds"], 70.0);
    assert_eq!(stats["by_reason"]["appointment_status"], 2);
    assert_eq!(stats["by_reason"]["prescription"], 0);
    assert_eq!(stats["by_outcome"]["abandoned"], 1);
    let series: Vec<(String, i64)> = stats["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|p| {
            (
                p["start"].as_str().unwrap_or("").to_string(),
                p["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        series,
        [
            ("2022-05-13T00:00:00+02:00".to_string(), 1),
            ("2022-05-14T00:00:00+02:00".to_string(), 2),
            ("2022-05-15T00:00:00+02:00".to_string(), 1),
        ]
    );
    let hourly: Value = app.admin().get_json("/api/v1/calls/stats?from=2022-05-14T12:00:00%2B02:00&to=2022-05-14T14:00:00%2B02:00&bucket=hour").await;
    let counts: Vec<i64> = hourly["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|p| p["count"].as_i64())
        .collect();
    assert_eq!(counts, [1, 0]);
    // Without bounds: every call, including one just logged (this hour) and one a few minutes
    // ahead (a caller's clock); the hourly counts answer alone.
    logged_at(&app, None).await;
    let ahead = (chrono::Utc::now() + chrono::Duration::minutes(3)).to_rfc3339();
    logged_at(&app, Some(&ahead)).await;
    let all: Value = app.admin().get_json("/api/v1/calls/stats").await;
    assert_eq!(all["total"], 6);
    assert_eq!(all["by_reason"]["other"], 3);
    let days: i64 = all["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|p| p["count"].as_i64())
        .sum();
    assert_eq!(days, 6, "the series holds every call too");
    assert_problem(
        app.admin().get("/api/v1/calls/stats?bucket=week").await,
        422,
    )
    .await;
}

#[tokio::test]
async fn a_deactivated_call_centre_refuses_calls_and_the_change_is_audited() {
    let app = spawn_app().await;
    let state: Value = app.admin().get_json("/api/v1/call-centre").await;
    assert_eq!(state["status"], "active");
    let put = |status: &str| {
        app.admin()
            .request(reqwest::Method::PUT, "/api/v1/call-centre")
            .json(&json!({ "status": status }))
            .send()
    };
    let before = json!({"reason": "other", "outcome": "informed"});
    let first: Value = log(&app, Some("before-off"), &before)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(put("deactivated").await.expect("sent").status(), 200);
    // A retry of a call logged before the switch still answers with that call…
    let replay = log(&app, Some("before-off"), &before).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay["id"], first["id"]);
    // …but its key with another body is still refused.
    assert_problem(
        log(
            &app,
            Some("before-off"),
            &json!({"reason": "results", "outcome": "informed"}),
        )
        .await,
        422,
    )
    .await;
    let p = assert_problem(
        log(
            &app,
            None,
            &json!({"reason": "other", "outcome": "informed"}),
        )
        .await,
        409,
    )
    .await;
    assert!(p["detail"]
        .as_str()
        .expect("detail")
        .contains("deactivated"));
    assert_problem(put("paused").await.expect("sent"), 422).await;
    let state: Value = put("active")
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(state["status"], "active");
    assert_eq!(
        log(
            &app,
            None,
            &json!({"reason": "other", "outcome": "informed"})
        )
        .await
        .status(),
        201
    );
    let state: Value = app.admin().get_json("/api/v1/call-centre").await;
    assert_eq!(state["calls_total"], 2);
    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=call_centre.update")
        .await;
    let changes: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["details"]["to"].as_str())
        .collect();
    assert_eq!(changes, ["active", "deactivated"]);
}

#[tokio::test]
async fn call_imports_match_patients_and_are_all_or_nothing() {
    let app = spawn_app().await;
    let known = json!({"national_number": "85073003328", "last_name": "Dupont", "first_name": "Marie", "birth_date": "1985-07-30"});
    assert_eq!(
        app.admin().post("/api/v1/patients", &known).await.status(),
        201
    );
    let header = reprise::service::imports::CALL_HEADER.join(",");
    let good = format!(
        "{header}\n2022-05-16 09:00,061 23 45 67,85.07.30-033.28,appointment_status,informed,60,\"Inquiète, rappeler\"\n\
         2022-05-16T09:05:00+02:00,,17020100178,other,callback_scheduled,,\n"
    );
    let bad = format!("{header}\n2022-05-16 09:00,x,,appointment_status,informed,60,\n2022-05-16 09:00,,,nope,informed,-1,\n");
    let send = |body: String| {
        app.admin()
            .request(reqwest::Method::POST, "/api/v1/calls/import")
            .header("content-type", "text/csv")
            .body(body)
            .send()
    };
    let p = assert_problem(send(bad).await.expect("sent"), 422).await;
    let errors: Vec<(u64, &str)> = p["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["field"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [(2, "caller_phone"), (3, "reason"), (3, "duration_seconds")]
    );
    assert!(all_calls(&app).await.is_empty());

    let report: Value = send(good).await.expect("sent").json().await.expect("json");
    assert_eq!(report["imported"], 2);
    assert_eq!(report["matched_patients"], 1);
    let calls = all_calls(&app).await;
    assert_eq!(calls[1]["notes"], "Inquiète, rappeler");
    assert!(calls[1]["patient_id"].is_string());
    assert_eq!(calls[0]["callback_requested"], true);

    // The command line does the same.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("calls.csv");
    std::fs::write(
        &file,
        format!("{header}\n2022-05-17 10:00,,,results,informed,10,\n"),
    )
    .expect("write");
    let out = reprise()
        .env("REPRISE_DATABASE_URL", app.state.settings.database.expose())
        .args(["import", "calls"])
        .arg(&file)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all_calls(&app).await.len(), 3);
}

/// Calls logged at once are stored in batches (one transaction for the calls waiting), with
/// refusals among them: each stored call has exactly one `call.create` audit entry and is
/// counted once in the hourly statistics; a refused one leaves neither, and a replay adds
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_stored_together_keep_one_audit_entry_and_one_count_each() {
    let app = std::sync::Arc::new(spawn_app().await);
    let at = "2022-05-16T10:15:00+02:00";
    let mut tasks = Vec::new();
    for i in 0..60 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = json!({"received_at": at, "reason": "results", "outcome": "informed",
                                  "duration_seconds": 60});
            if i % 4 == 3 {
                // Refused inside the write, after other calls of its batch have run.
                body["appointment_id"] = json!("no-such-appointment");
            }
            // Every tenth request replays the one before it.
            let key = format!("batch-{}", if i % 10 == 9 { i - 1 } else { i });
            let r = log(&app, Some(&key), &body).await;
            let status = r.status().as_u16();
            let call: Value = r.json().await.expect("json");
            (i, status, call["id"].as_str().map(str::to_string))
        }));
    }
    let mut created = std::collections::BTreeSet::new();
    for t in tasks {
        let (i, status, id) = t.await.expect("joined");
        match (i % 4 == 3, i % 10 == 9) {
            (true, _) => assert_eq!(status, 422, "request {i}"),
            // A replay of a refused request is refused the same way; of a stored one, 200.
            (false, true) if (i - 1) % 4 == 3 => assert_eq!(status, 422, "request {i}"),
            (false, true) => assert!(status == 200 || status == 201, "request {i}: {status}"),
            (false, false) => {
                assert!(status == 201 || status == 200, "request {i}: {status}");
                created.insert(id.expect("an id"));
            }
        }
    }
    let stored: std::collections::BTreeSet<String> = all_calls(&app)
        .await
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(stored, created);

    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=call.create&limit=500")
        .await;
    let mut targets: Vec<String> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["target"].as_str().expect("target").to_string())
        .collect();
    targets.sort();
    let expected: Vec<String> = created.iter().map(|id| format!("call:{id}")).collect();
    assert_eq!(targets, expected, "one entry per stored call");

    let stats: Value = app
        .admin()
        .get_json("/api/v1/calls/stats?from=2022-05-16T10:00:00%2B02:00&to=2022-05-16T11:00:00%2B02:00&bucket=hour")
        .await;
    assert_eq!(stats["total"], created.len());
    assert_eq!(stats["avg_duration_seconds"], 60.0);
}
