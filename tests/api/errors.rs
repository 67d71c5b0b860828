use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, Sent};

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    assert_problem(app.anonymous().get("/nowhere").await, 404).await;
    assert_problem(app.admin().get("/api/v1/nowhere").await, 404).await;
    let r = app
        .client
        .put(app.url("/health"))
        .send()
        .await
        .expect("sent");
    // RFC 9110: a 405 says which methods the path answers.
    assert_eq!(r.headers()["allow"], "GET");
    assert_problem(r, 405).await;
    let r = app
        .admin()
        .request(reqwest::Method::PATCH, "/api/v1/sites")
        .sent()
        .await;
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_problem(r, 405).await;
    // A path outside the OpenAPI document (the docs pages): no `Allow` rather than an empty one.
    let r = app
        .client
        .post(app.url("/docs/index.html"))
        .send()
        .await
        .expect("sent");
    assert!(r.headers().get("allow").is_none());
    assert_problem(r, 405).await;
}

#[tokio::test]
async fn malformed_bodies_get_400_or_415_and_change_nothing() {
    let app = spawn_app().await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        app.admin()
            .request(reqwest::Method::POST, "/api/v1/sites")
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        send("application/json", b"{\"code\": ".to_vec())
            .await
            .expect("sent"),
        400,
    )
    .await;
    assert_problem(
        send("application/json", vec![0xff, 0xfe, b'{'])
            .await
            .expect("sent"),
        400,
    )
    .await;
    assert_problem(send("application/json", b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec()).await.expect("sent"), 400).await;
    assert_problem(send("text/plain", b"{}".to_vec()).await.expect("sent"), 415).await;
    assert_problem(
        send("application/xml", b"<site/>".to_vec())
            .await
            .expect("sent"),
        415,
    )
    .await;
    let list: Value = app.admin().get_json("/api/v1/sites").await;
    assert!(list["items"].as_array().expect("items").is_empty());
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let app = spawn_app().await;
    let huge = json!({"code": "AB", "name": "x".repeat(1024 * 1024 + 10), "kind": "hospital", "operating_rooms": 1});
    assert_problem(app.admin().post("/api/v1/sites", &huge).await, 413).await;
    // Without a Content-Length header too (chunked).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let r = app
        .admin()
        .post_raw(
            "/api/v1/sites",
            "application/json",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_problem(r, 413).await;
}

#[tokio::test]
async fn wrong_fields_are_422_naming_them() {
    let app = spawn_app().await;
    let unknown = json!({"code": "AB", "name": "x", "kind": "hospital", "operating_rooms": 1, "colour": "red"});
    let p = assert_problem(app.admin().post("/api/v1/sites", &unknown).await, 422).await;
    assert!(p["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("colour"));
    let p = assert_problem(app.admin().post("/api/v1/sites", &json!([1, 2])).await, 422).await;
    assert_eq!(p["errors"][0]["field"], "body");
    let p = assert_problem(app.admin().get("/api/v1/users?limit=abc").await, 422).await;
    assert_eq!(p["errors"][0]["field"], "limit");
    let p = assert_problem(app.admin().get("/api/v1/users?limit=5000").await, 422).await;
    assert_eq!(p["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn sql_meta_characters_are_plain_data() {
    let app = spawn_app().await;
    let r = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "Robert'); DROP TABLE users;--", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let list: Value = app.admin().get_json("/api/v1/users").await;
    assert!(list.to_string().contains("DROP TABLE users"));
    let page: Value = app
        .admin()
        .get_json("/api/v1/audit?action=%27%20OR%201%3D1--")
        .await;
    assert!(page["items"].as_array().expect("items").is_empty());
}

/// PostgreSQL cannot store a NUL in text and SQLite can: refused up front, the same on both,
/// wherever it comes (found by schemathesis: a `%00` in a query string was a 500 on PostgreSQL).
#[tokio::test]
async fn nul_characters_are_refused_everywhere_and_store_nothing() {
    let app = spawn_app().await;
    let r = app
        .admin()
        .get("/api/v1/appointments?patient_id=a%00b")
        .await;
    assert_problem(r, 422).await;
    let r = app.admin().get("/api/v1/audit?actor=%00").await;
    assert_problem(r, 422).await;
    let r = app.admin().get("/api/v1/patients/a%00b").await;
    assert_problem(r, 422).await;
    let r = app
        .admin()
        .post_raw(
            "/api/v1/patients",
            "application/json",
            r#"{"last_name": "Nul\u0000", "first_name": "A", "birth_date": "1960-01-01"}"#,
        )
        .await;
    assert_problem(r, 422).await;
    let patients: Value = app
        .admin()
        .post("/api/v1/patients/search", &json!({"q": "Nul"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(patients["items"], json!([]), "nothing stored");
}
