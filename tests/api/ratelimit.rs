//! Per-account budgets: 429 with `Retry-After`, nothing stored, other accounts and other
//! budgets untouched, and the budget back after the wait.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app_with, Sent, TestApp};

async fn log_call(app: &TestApp, token: &str) -> reqwest::Response {
    app.user(token)
        .request(reqwest::Method::POST, "/api/v1/calls")
        .json(&json!({"reason": "appointment_status", "outcome": "informed"}))
        .sent()
        .await
}

#[tokio::test]
async fn an_account_over_its_budget_gets_429_with_retry_after_and_changes_nothing() {
    // 60 a minute: bursts of 10.
    let app = spawn_app_with(|s| {
        s.rate_writes = Some(60);
        s.rate_reads = Some(60);
    })
    .await;
    let agent = app.agent().await;
    for _ in 0..10 {
        assert_eq!(log_call(&app, agent.token()).await.status(), 201);
    }
    let refused = log_call(&app, agent.token()).await;
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
    let calls = app.admin().get_json("/api/v1/calls?limit=100").await;
    assert_eq!(calls["items"].as_array().map(Vec::len), Some(10));
    assert_eq!(log_call(&app, app.admin().token()).await.status(), 201);

    // After the wait, the agent may log again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(log_call(&app, agent.token()).await.status(), 201);
}

#[tokio::test]
async fn reads_of_personal_data_have_their_own_budget() {
    let app = spawn_app_with(|s| {
        s.rate_writes = Some(60);
        s.rate_reads = Some(60);
    })
    .await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let coordinator = app.coordinator().await;
    // Lists of sites carry no personal data: not counted.
    for _ in 0..30 {
        assert_eq!(coordinator.get("/api/v1/sites").await.status(), 200);
    }
    for _ in 0..10 {
        let r = coordinator
            .get(&format!("/api/v1/patients/{patient}"))
            .await;
        assert_eq!(r.status(), 200);
    }
    // A search is a POST, and a read: the same budget, now spent.
    let r = coordinator
        .post("/api/v1/patients/search", &json!({"q": "dupont"}))
        .await;
    assert_problem(r, 429).await;
    // The writes budget is untouched.
    let r = coordinator
        .post(
            "/api/v1/patients",
            &json!({"last_name": "Martin", "first_name": "Luc", "birth_date": "1950-01-01"}),
        )
        .await;
    let body: Value = r.json().await.expect("json");
    assert!(body["id"].is_string(), "{body}");
}
