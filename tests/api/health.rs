use serde_json::Value;

use reprise::db::Backend;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn health_names_the_database_backend() {
    let app = spawn_app().await;
    let r = app.anonymous().get("/health").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], app.backend.name());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    if app.backend != reprise::db::Backend::Postgres {
        crate::helpers::skipped(
            "on SQLite: a local file cannot become unreachable; runs on PostgreSQL",
        );
        return;
    }
    // Drop the test's database under the running service.
    let url = app.state.settings.database.clone();
    let name = url
        .redacted()
        .rsplit('/')
        .next()
        .expect("db name")
        .to_string();
    let server = url.with_database("postgres").expect("url");
    tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        let mut conn = server.connect().expect("server");
        conn.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .expect("dropped");
    })
    .await
    .expect("joined");
    let started = std::time::Instant::now();
    assert_problem(app.anonymous().get("/health").await, 503).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered quickly"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = spawn_app().await;
    let _ = app.admin().get("/api/v1/users").await;
    let _ = app.admin().delete("/api/v1/users/some-id-123").await;
    let text = app.anonymous().text("/metrics").await;
    assert!(
        text.contains(
            r#"reprise_http_requests_total{method="GET",route="/api/v1/users",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/api/v1/users/{id}""#));
    assert!(
        !text.contains("some-id-123"),
        "raw paths must not become labels"
    );
}

/// The value of an unlabelled metric in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn metrics_show_the_database_writers_work() {
    let app = spawn_app().await;
    let call = serde_json::json!({"reason": "other", "outcome": "informed"});
    let log_calls = |n: usize| {
        let app = &app;
        let call = &call;
        futures_util::future::join_all((0..n).map(move |_| async move {
            let r = app.admin().post("/api/v1/calls", call).await;
            assert_eq!(r.status(), 201);
        }))
    };
    log_calls(20).await;
    let before = app.anonymous().text("/metrics").await;
    let threads = match app.backend {
        Backend::Sqlite => 1.0,
        Backend::Postgres => 2.0,
    };
    assert_eq!(metric(&before, "reprise_db_writer_threads"), threads);
    let jobs = metric(&before, "reprise_db_writer_jobs_total");
    let batches = metric(&before, "reprise_db_writer_batches_total");
    let busy = metric(&before, "reprise_db_writer_busy_seconds_total");
    let commit = metric(&before, "reprise_db_writer_commit_seconds_total");
    assert!(jobs >= 20.0, "every call went through a writer: {before}");
    assert!((1.0..=jobs).contains(&batches), "{before}");
    assert!(commit > 0.0 && commit <= busy, "{before}");

    log_calls(5).await;
    let after = app.anonymous().text("/metrics").await;
    let more = metric(&after, "reprise_db_writer_jobs_total") - jobs;
    // On PostgreSQL only the calls go through the writers; on SQLite every write does.
    match app.backend {
        Backend::Postgres => assert_eq!(more, 5.0, "{after}"),
        Backend::Sqlite => assert!(more >= 5.0, "{after}"),
    }
    assert!(metric(&after, "reprise_db_writer_batches_total") > batches);
    assert!(metric(&after, "reprise_db_writer_busy_seconds_total") > busy);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let r = app.anonymous().get("/api/openapi.json").await;
    assert_eq!(r.status(), 200);
    let spec: Value = r.json().await.expect("json");
    assert!(spec["openapi"]
        .as_str()
        .expect("version")
        .starts_with("3.1"));
    let expected = [
        ("get", "/health"),
        ("get", "/metrics"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users"),
        ("delete", "/api/v1/users/{id}"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/sites"),
        ("post", "/api/v1/sites"),
        ("get", "/api/v1/services"),
        ("post", "/api/v1/services"),
    ];
    for (method, path) in expected {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} missing from the spec"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    // Every API operation documents the answers any of them may give.
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().expect("operations") {
            for status in ["429", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
            let reads_input =
                operation["requestBody"].is_object() || operation["parameters"].is_array();
            assert_eq!(
                operation["responses"]["400"].is_object(),
                reads_input,
                "{method} {path}: 400 documented exactly where a body or parameters are read"
            );
            assert!(
                !reads_input || operation["responses"]["422"].is_object(),
                "{method} {path}: 422 documented where a body or parameters are read"
            );
            for status in ["413", "415"] {
                assert_eq!(
                    operation["responses"][status].is_object(),
                    operation["requestBody"].is_object(),
                    "{method} {path}: {status} documented exactly where a body is read"
                );
            }
        }
    }
    // Error answers are documented with the media type they are sent with.
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let content = response["content"].as_object();
                let json_problem = content
                    .and_then(|c| c.get("application/json"))
                    .is_some_and(|c| c["schema"]["$ref"] == "#/components/schemas/Problem");
                assert!(
                    !json_problem,
                    "{method} {path} {status}: a Problem documented as application/json"
                );
            }
        }
    }
    assert!(
        spec["paths"]["/api/v1/sites"]["get"]["responses"]["401"]["content"]
            ["application/problem+json"]
            .is_object()
    );
}

#[tokio::test]
async fn the_docs_page_works_offline() {
    let app = spawn_app().await;
    let page = app.anonymous().get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger"), "a Swagger UI page");
    // Every script and stylesheet it loads is served by the service itself.
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset) || asset == "swagger-initializer.js");
        let r = app.anonymous().get(&format!("/docs/{asset}")).await;
        assert_eq!(r.status(), 200, "{asset}");
    }
    assert!(
        !html.contains("https://"),
        "no asset fetched from the internet"
    );
}
