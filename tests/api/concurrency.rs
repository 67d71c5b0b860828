use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_writes_all_succeed() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let (path, body) = if i % 2 == 0 {
                ("/api/v1/sites", json!({"code": format!("C{i:03}"), "name": "x", "kind": "hospital", "operating_rooms": 1}))
            } else {
                ("/api/v1/users", json!({"name": format!("Agent {i}"), "role": "agent"}))
            };
            let r = app.admin().post(path, &body).await;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, text)
        }));
    }
    for task in tasks {
        let (status, text) = task.await.expect("joined");
        assert_eq!(status, 201, "{text}");
        assert!(!text.contains("locked"));
    }
    let sites: serde_json::Value = app.admin().get_json("/api/v1/sites?limit=1000").await;
    assert_eq!(sites["items"].as_array().expect("items").len(), 50);
    let users: serde_json::Value = app.admin().get_json("/api/v1/users?limit=1000").await;
    assert_eq!(users["items"].as_array().expect("items").len(), 51);
}
