use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

#[tokio::test]
async fn an_admin_creates_an_account_whose_token_is_shown_once_and_works() {
    let app = spawn_app().await;
    let r = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "Coco", "role": "coordinator"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    let token = created["token"].as_str().expect("a token").to_string();
    assert!(token.len() >= 35, "at least 128 random bits");
    assert_eq!(created["role"], "coordinator");

    // The token works for what a coordinator may do...
    assert_eq!(app.user(&token).get("/api/v1/sites").await.status(), 200);
    // ...and the list never shows it again.
    let list: Value = app.admin().get_json("/api/v1/users").await;
    assert!(!list.to_string().contains(&token));
    assert!(list["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|u| u["id"] == created["id"]));
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    use diesel::prelude::*;
    use reprise::db::schema::users;
    let app = spawn_app().await;
    let admin = app.admin();
    let stored: Vec<Option<String>> = app
        .state
        .db
        .read(|conn| {
            users::table
                .select(users::token_hash)
                .load(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("read");
    assert!(!stored.is_empty());
    for hash in stored.into_iter().flatten() {
        assert!(
            !hash.contains(&admin.token()[3..]),
            "the token itself is stored"
        );
        assert_eq!(hash, reprise::auth::token_hash(admin.token()));
    }
}

/// Creates an agent account through the API; returns its (id, token).
async fn create_agent(app: &TestApp, name: &str) -> (String, String) {
    let created: Value = app
        .admin()
        .post("/api/v1/users", &json!({"name": name, "role": "agent"}))
        .await
        .json()
        .await
        .expect("json");
    let text = |field: &str| created[field].as_str().expect(field).to_string();
    (text("id"), text("token"))
}

#[tokio::test]
async fn a_deleted_accounts_token_fails_at_once() {
    let app = spawn_app().await;
    let (id, token) = &create_agent(&app, "Agent A").await;
    assert_eq!(app.user(token).get("/api/v1/users").await.status(), 403);

    assert_eq!(
        app.admin()
            .delete(&format!("/api/v1/users/{id}"))
            .await
            .status(),
        204
    );
    assert_problem(app.user(token).get("/api/v1/users").await, 401).await;
    // Deleting again: no such live account.
    assert_problem(
        app.admin().delete(&format!("/api/v1/users/{id}")).await,
        404,
    )
    .await;
    let list: Value = app.admin().get_json("/api/v1/users").await;
    assert!(!list["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|u| u["id"] == **id));
}

/// Tokens are trusted from a per-instance cache for at most a second (`auth::TokenCache`):
/// another instance on the same database refuses a deleted account's token within that.
#[tokio::test]
async fn a_deleted_accounts_token_fails_on_another_instance_within_a_second() {
    let app = spawn_app().await;
    let (other, _outbox) = app.second_instance().await;
    let other_url = format!("{other}/api/v1/users");

    let (id, token) = &create_agent(&app, "Agent B").await;
    let on_other = || app.client.get(&other_url).bearer_auth(token).send();
    // Known to the other instance (and now in its cache): an agent may not list accounts.
    assert_eq!(on_other().await.expect("sent").status(), 403);

    assert_eq!(
        app.admin()
            .delete(&format!("/api/v1/users/{id}"))
            .await
            .status(),
        204
    );
    assert_problem(app.user(token).get("/api/v1/users").await, 401).await;
    let deleted = std::time::Instant::now();
    let mut status = on_other().await.expect("sent").status();
    while status != 401 && deleted.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status = on_other().await.expect("sent").status();
    }
    // The bound is the cache's second; the 5 s leave room for a loaded test machine.
    assert_eq!(status, 401, "still accepted {:?} after", deleted.elapsed());
}

#[tokio::test]
async fn the_last_admin_cannot_be_deleted() {
    let app = spawn_app().await;
    let list: Value = app.admin().get_json("/api/v1/users").await;
    let admin_id = list["items"][0]["id"].as_str().expect("id").to_string();
    assert_problem(
        app.admin()
            .delete(&format!("/api/v1/users/{admin_id}"))
            .await,
        409,
    )
    .await;
    // With a second admin, the first can go.
    let second: Value = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "Admin 2", "role": "admin"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let second_token = second["token"].as_str().expect("token");
    assert_eq!(
        app.user(second_token)
            .delete(&format!("/api/v1/users/{admin_id}"))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn secretaries_are_bound_to_existing_services_and_others_to_none() {
    let app = spawn_app().await;
    let (_, service) = app.create_site_and_service().await;
    let body = assert_problem(
        app.admin()
            .post("/api/v1/users", &json!({"name": "S", "role": "secretary"}))
            .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "services");
    let body = assert_problem(
        app.admin()
            .post(
                "/api/v1/users",
                &json!({"name": "S", "role": "secretary", "services": ["NOPE-X"]}),
            )
            .await,
        422,
    )
    .await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .expect("message")
        .contains("NOPE-X"));
    assert_problem(
        app.admin()
            .post(
                "/api/v1/users",
                &json!({"name": "A", "role": "agent", "services": [service]}),
            )
            .await,
        422,
    )
    .await;
    let r = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "S", "role": "secretary", "services": [service]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["services"], json!([service]));
    // A refused account left nothing behind: only the admin and this secretary exist.
    let list: Value = app.admin().get_json("/api/v1/users").await;
    assert_eq!(list["items"].as_array().expect("items").len(), 2);
}

#[tokio::test]
async fn invalid_accounts_list_every_faulty_field() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.admin()
            .post("/api/v1/users", &json!({"name": " ", "role": "boss"}))
            .await,
        422,
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["name", "role"]);
}

#[tokio::test]
async fn the_user_list_pages_with_a_stable_cursor() {
    let app = spawn_app().await;
    for i in 0..5 {
        let r = app
            .admin()
            .post(
                "/api/v1/users",
                &json!({"name": format!("Agent {i}"), "role": "agent"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=2&cursor={c}"),
            None => "/api/v1/users?limit=2".to_string(),
        };
        let page: Value = app.admin().get_json(&path).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "admin + 5 agents, each once");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 6);
}
