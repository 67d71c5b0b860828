use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, unique_code};

#[tokio::test]
async fn a_new_site_is_open_and_listed() {
    let app = spawn_app().await;
    let code = unique_code("A");
    let r = app.admin().post("/api/v1/sites", &json!({"code": code, "name": "Arlon", "kind": "hospital", "operating_rooms": 4, "reopening_rank": 1}))
        .await;
    assert_eq!(r.status(), 201);
    let site: Value = r.json().await.expect("json");
    assert_eq!(site["status"], "open");
    assert_eq!(site["operating_rooms"], 4);
    assert_eq!(site["programme"], Value::Null);
    assert_eq!(site["postponed_to_contact"], 0);

    let list: Value = app.admin().get_json("/api/v1/sites").await;
    let listed = &list["items"][0];
    for field in [
        "code",
        "name",
        "kind",
        "operating_rooms",
        "status",
        "programme",
        "reopened_at",
        "reopening_rank",
        "postponed_to_contact",
    ] {
        assert!(listed.get(field).is_some(), "{field} missing from the list");
    }
    assert_eq!(listed["code"], code.as_str());
}

#[tokio::test]
async fn a_duplicate_site_code_is_a_conflict_that_changes_nothing() {
    let app = spawn_app().await;
    let body = json!({"code": "MAR", "name": "Marche", "kind": "hospital", "operating_rooms": 3});
    assert_eq!(app.admin().post("/api/v1/sites", &body).await.status(), 201);
    let again =
        json!({"code": "MAR", "name": "Other", "kind": "nursing_home", "operating_rooms": 0});
    assert_problem(app.admin().post("/api/v1/sites", &again).await, 409).await;
    let list: Value = app.admin().get_json("/api/v1/sites").await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    assert_eq!(list["items"][0]["name"], "Marche");
}

#[tokio::test]
async fn site_fields_are_checked_and_named() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"code": "a", "name": "x", "kind": "hospital", "operating_rooms": 1}),
            "code",
        ),
        (
            json!({"code": "TOO-LONG-CODE-XYZ", "name": "x", "kind": "hospital", "operating_rooms": 1}),
            "code",
        ),
        (
            json!({"code": "AB", "name": "x", "kind": "castle", "operating_rooms": 1}),
            "kind",
        ),
        (
            json!({"code": "AB", "name": "x", "kind": "hospital", "operating_rooms": -1}),
            "operating_rooms",
        ),
        (
            json!({"code": "AB", "name": "", "kind": "hospital", "operating_rooms": 1}),
            "name",
        ),
        (
            json!({"code": "AB", "name": "x", "kind": "hospital"}),
            "operating_rooms",
        ),
        (
            json!({"code": "AB", "name": "x", "kind": "hospital", "operating_rooms": "four"}),
            "operating_rooms",
        ),
    ];
    for (body, field) in cases {
        let problem = assert_problem(app.admin().post("/api/v1/sites", &body).await, 422).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.contains(&field),
            "{body} should name {field}, named {fields:?}"
        );
    }
    let list: Value = app.admin().get_json("/api/v1/sites").await;
    assert!(list["items"].as_array().expect("items").is_empty());
}

#[tokio::test]
async fn services_belong_to_a_known_site_and_keep_phones_in_e164() {
    let app = spawn_app().await;
    let site = unique_code("B");
    let r = app
        .admin()
        .post(
            "/api/v1/sites",
            &json!({"code": site, "name": "Bastogne", "kind": "hospital", "operating_rooms": 2}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app.admin().post("/api/v1/services", &json!({"code": "BAS-ORTHO", "name": "Orthopédie", "site": site, "secretariat_phone": "061 23 45 67", "secretariat_email": "ortho@example.be"}))
        .await;
    assert_eq!(r.status(), 201);
    let service: Value = r.json().await.expect("json");
    assert_eq!(service["secretariat_phone"], "+3261234567");
    assert_eq!(service["site"], site.as_str());

    let dup = json!({"code": "BAS-ORTHO", "name": "Again", "site": site});
    assert_problem(app.admin().post("/api/v1/services", &dup).await, 409).await;
    let nowhere = json!({"code": "NOWHERE-X", "name": "x", "site": "NOPE"});
    let problem = assert_problem(app.admin().post("/api/v1/services", &nowhere).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "site");
    let bad_phone =
        json!({"code": "BAS-X", "name": "x", "site": site, "secretariat_phone": "not a phone"});
    let problem = assert_problem(app.admin().post("/api/v1/services", &bad_phone).await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "secretariat_phone");

    let list: Value = app
        .admin()
        .get_json(&format!("/api/v1/services?site={site}"))
        .await;
    let codes: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["code"].as_str())
        .collect();
    assert_eq!(codes, ["BAS-ORTHO"]);
}

#[tokio::test]
async fn the_site_list_pages_by_code() {
    let app = spawn_app().await;
    for code in ["AA", "BB", "CC"] {
        let body =
            json!({"code": code, "name": code, "kind": "nursing_home", "operating_rooms": 0});
        assert_eq!(app.admin().post("/api/v1/sites", &body).await.status(), 201);
    }
    let first: Value = app.admin().get_json("/api/v1/sites?limit=2").await;
    assert_eq!(first["items"].as_array().expect("items").len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: Value = app
        .admin()
        .get_json(&format!("/api/v1/sites?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["code"], "CC");
    assert_eq!(second["next_cursor"], Value::Null);
}
