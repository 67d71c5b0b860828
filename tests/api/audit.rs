use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, unique_code};

async fn audit(app: &crate::helpers::TestApp, query: &str) -> Vec<Value> {
    let r = app.admin().get(&format!("/api/v1/audit{query}")).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.expect("json");
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor_and_target() {
    let app = spawn_app().await;
    let code = unique_code("C");
    let body = json!({"code": code, "name": "Libramont", "kind": "hospital", "operating_rooms": 3});
    assert_eq!(app.admin().post("/api/v1/sites", &body).await.status(), 201);
    let entries = audit(&app, "?action=site.create").await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["target"], format!("site:{code}"));
    assert_eq!(e["actor_name"], "Test Admin");
    assert!(e["actor"].is_string());
    assert!(e["at"].as_str().expect("at").ends_with('Z'));

    // A refused change writes no audit entry of its own.
    assert_eq!(app.admin().post("/api/v1/sites", &body).await.status(), 409);
    assert_eq!(audit(&app, "?action=site.create").await.len(), 1);
}

#[tokio::test]
async fn refused_requests_are_audited() {
    let app = spawn_app().await;
    let (_, service) = app.create_site_and_service().await;
    let tokens = app.tokens_by_role(&service).await;
    let agent = &tokens.iter().find(|(r, _)| *r == "agent").expect("agent").1;

    assert_problem(app.anonymous().get("/api/v1/users").await, 401).await;
    assert_problem(app.user("rp_forged").get("/api/v1/users").await, 401).await;
    assert_problem(app.user(agent).get("/api/v1/audit").await, 403).await;

    let denied = audit(&app, "?action=auth.denied").await;
    assert_eq!(denied.len(), 3);
    // Newest first: the agent's 403 names the agent, the 401s name nobody.
    assert_eq!(denied[0]["details"]["status"], 403);
    assert_eq!(denied[0]["actor_name"], "T agent");
    assert_eq!(denied[0]["target"], "/api/v1/audit");
    assert_eq!(denied[1]["actor"], Value::Null);
    assert!(!denied.iter().any(|e| e.to_string().contains("rp_forged")));
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_and_time_and_pages_newest_first() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.create_site_and_service().await;
    }
    let all = audit(&app, "?action=site.create").await;
    assert_eq!(all.len(), 3);
    let actor = all[0]["actor"].as_str().expect("actor").to_string();
    assert_eq!(
        audit(&app, &format!("?actor={actor}&action=site.create"))
            .await
            .len(),
        3
    );
    assert!(audit(&app, "?actor=nobody").await.is_empty());
    assert!(audit(&app, "?from=2100-01-01T00:00:00Z").await.is_empty());
    assert!(audit(&app, "?to=2000-01-01T00:00:00Z").await.is_empty());

    let first: Value = app.admin().get_json("/api/v1/audit?limit=2").await;
    let ids: Vec<i64> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert!(ids[0] > ids[1], "newest first");
    let cursor = first["next_cursor"].as_str().expect("more");
    let second: Value = app
        .admin()
        .get_json(&format!("/api/v1/audit?limit=2&cursor={cursor}"))
        .await;
    assert!(second["items"][0]["id"].as_i64().expect("id") < ids[1]);

    assert_problem(app.admin().get("/api/v1/audit?from=yesterday").await, 422).await;
    assert_problem(app.admin().get("/api/v1/audit?cursor=abc").await, 422).await;
}

#[tokio::test]
async fn the_audit_log_cannot_be_changed_or_deleted() {
    use diesel::prelude::*;
    use reprise::db::schema::audit_log;
    let app = spawn_app().await;
    app.create_site_and_service().await;
    let update = app
        .state
        .db
        .write(|conn| {
            diesel::update(audit_log::table)
                .set(audit_log::action.eq("forged"))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await;
    assert!(update.is_err(), "an update went through");
    let delete = app
        .state
        .db
        .write(|conn| {
            diesel::delete(audit_log::table)
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await;
    assert!(delete.is_err(), "a delete went through");
    if app.backend == reprise::db::Backend::Postgres {
        let truncate = app
            .state
            .db
            .write(|conn| {
                diesel::sql_query("TRUNCATE audit_log")
                    .execute(conn)
                    .map_err(reprise::db::DbError::from)
            })
            .await;
        assert!(truncate.is_err(), "a TRUNCATE went through");
    }
    assert!(!audit(&app, "").await.is_empty());
}
