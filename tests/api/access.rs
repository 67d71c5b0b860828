//! The access-control matrix: every route × every role (and no token), expected statuses in one
//! table. It fails when the OpenAPI document lists a route that has no row here.

use serde_json::{json, Value};

use crate::helpers::{create_account_directly, spawn_app, unique_code, TestApp};

/// Expected statuses for: admin, coordinator, secretary, agent, no token.
type Expect = [u16; 5];

const PUBLIC: Expect = [200, 200, 200, 200, 200];
const ADMIN_ONLY_READ: Expect = [200, 403, 403, 403, 401];
const MANAGERS_READ: Expect = [200, 200, 403, 403, 401];
const MANAGERS_CREATE: Expect = [201, 201, 403, 403, 401];

struct Row {
    method: &'static str,
    path: &'static str,
    expect: Expect,
}

const MATRIX: &[Row] = &[
    Row {
        method: "get",
        path: "/health",
        expect: PUBLIC,
    },
    Row {
        method: "get",
        path: "/metrics",
        expect: PUBLIC,
    },
    Row {
        method: "post",
        path: "/api/v1/users",
        expect: [201, 403, 403, 403, 401],
    },
    Row {
        method: "get",
        path: "/api/v1/users",
        expect: ADMIN_ONLY_READ,
    },
    Row {
        method: "delete",
        path: "/api/v1/users/{id}",
        expect: [204, 403, 403, 403, 401],
    },
    Row {
        method: "get",
        path: "/api/v1/audit",
        expect: ADMIN_ONLY_READ,
    },
    Row {
        method: "get",
        path: "/api/v1/sites",
        expect: MANAGERS_READ,
    },
    Row {
        method: "post",
        path: "/api/v1/sites",
        expect: MANAGERS_CREATE,
    },
    Row {
        method: "get",
        path: "/api/v1/services",
        expect: MANAGERS_READ,
    },
    Row {
        method: "post",
        path: "/api/v1/services",
        expect: MANAGERS_CREATE,
    },
];

/// A valid body for the route, fresh each time so that a permitted call succeeds.
fn body_for(method: &str, path: &str, site: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/api/v1/users") => Some(json!({"name": "Someone", "role": "agent"})),
        ("post", "/api/v1/sites") => Some(
            json!({"code": unique_code("M"), "name": "x", "kind": "hospital", "operating_rooms": 1}),
        ),
        ("post", "/api/v1/services") => {
            Some(json!({"code": unique_code("SV"), "name": "x", "site": site}))
        }
        _ => None,
    }
}

async fn concrete_path(app: &TestApp, path: &str) -> String {
    if path.contains("{id}") {
        let (id, _) = create_account_directly(&app.state, "Victim", "agent", &[]).await;
        path.replace("{id}", &id)
    } else {
        path.to_string()
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_contract_says() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let tokens = app.tokens_by_role(&service).await;

    // Every documented route has a row, and every row is documented.
    let spec: Value = app
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .expect("spec");
    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for (method, path) in &documented {
        assert!(
            MATRIX.iter().any(|r| r.method == method && r.path == path),
            "{method} {path} has no row in the access matrix"
        );
    }
    for row in MATRIX {
        assert!(
            documented
                .iter()
                .any(|(m, p)| m == row.method && p == row.path),
            "{} {} is in the matrix but not in the OpenAPI document",
            row.method,
            row.path
        );
    }

    let mut failures = Vec::new();
    for row in MATRIX {
        let callers = tokens
            .iter()
            .map(|(role, t)| (*role, Some(t.as_str())))
            .chain([("no token", None)]);
        for ((who, token), expected) in callers.zip(row.expect) {
            let path = concrete_path(&app, row.path).await;
            let mut req = match row.method {
                "get" => app.client.get(app.url(&path)),
                "post" => app.client.post(app.url(&path)),
                "put" => app.client.put(app.url(&path)),
                "delete" => app.client.delete(app.url(&path)),
                other => panic!("unexpected method {other}"),
            };
            if let Some(body) = body_for(row.method, row.path, &site) {
                req = req.json(&body);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let status = req.send().await.expect("sent").status().as_u16();
            if status != expected {
                failures.push(format!(
                    "{} {} as {who}: {status}, expected {expected}",
                    row.method, row.path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access matrix mismatches:\n{}",
        failures.join("\n")
    );
}
