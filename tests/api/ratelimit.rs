//! Per-account budgets: 429 with `Retry-After`, nothing stored, other accounts and other
//! budgets untouched, and the budget back after the wait.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_problem, create_account_directly, spawn_app_with, TestApp};

async fn log_call(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/calls"))
        .bearer_auth(token)
        .json(&json!({"reason": "appointment_status", "outcome": "informed"}))
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn an_account_over_its_budget_gets_429_with_retry_after_and_changes_nothing() {
    // 60 a minute: bursts of 10.
    let app = spawn_app_with(|s| {
        s.rate_writes = Some(60);
        s.rate_reads = Some(60);
    })
    .await;
    let (_, agent) = create_account_directly(&app.state, "Agent", "agent", &[]).await;
    for _ in 0..10 {
        assert_eq!(log_call(&app, &agent).await.status(), 201);
    }
    let refused = log_call(&app, &agent).await;
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(refused, 429).await;
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains("retry"));

    // Nothing stored by the refused request; another account writes and reads as usual.
    let calls = app
        .get_json("/api/v1/calls?limit=100", Some(&app.admin_token))
        .await;
    assert_eq!(calls["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(log_call(&app, &app.admin_token).await.status(), 201);

    // After the wait, the agent may log again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(log_call(&app, &agent).await.status(), 201);
}

#[tokio::test]
async fn reads_of_personal_data_have_their_own_budget() {
    let app = spawn_app_with(|s| {
        s.rate_writes = Some(60);
        s.rate_reads = Some(60);
    })
    .await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let (_, coordinator) = create_account_directly(&app.state, "Coord", "coordinator", &[]).await;
    // Lists of sites carry no personal data: not counted.
    for _ in 0..30 {
        assert_eq!(
            app.get("/api/v1/sites", Some(&coordinator)).await.status(),
            200
        );
    }
    for _ in 0..10 {
        let r = app
            .get(&format!("/api/v1/patients/{patient}"), Some(&coordinator))
            .await;
        assert_eq!(r.status(), 200);
    }
    // A search is a POST, and a read: the same budget, now spent.
    let r = app
        .post_json(
            "/api/v1/patients/search",
            Some(&coordinator),
            &json!({"q": "dupont"}),
        )
        .await;
    assert_problem(r, 429).await;
    // The writes budget is untouched.
    let r = app
        .post_json(
            "/api/v1/patients",
            Some(&coordinator),
            &json!({"last_name": "Martin", "first_name": "Luc", "birth_date": "1950-01-01"}),
        )
        .await;
    let body: Value = r.json().await.expect("json");
    assert!(body["id"].is_string(), "{body}");
}
