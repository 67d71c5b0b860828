//! The access-control matrix: every route × every role (and no token), expected statuses in one
//! table. It fails when the OpenAPI document lists a route that has no row here.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, unique_code, TestApp};

/// Expected statuses for: admin, coordinator, secretary, agent, no token.
type Expect = [u16; 5];

const PUBLIC: Expect = [200, 200, 200, 200, 200];
const ADMIN_ONLY_READ: Expect = [200, 403, 403, 403, 401];
const MANAGERS_READ: Expect = [200, 200, 403, 403, 401];
const MANAGERS_CREATE: Expect = [201, 201, 403, 403, 401];

/// (method, path as in the OpenAPI document, expected statuses)
type Row = (&'static str, &'static str, Expect);

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    ("get",    "/health",                       PUBLIC),
    ("get",    "/metrics",                      PUBLIC),
    ("post",   "/api/v1/users",                 [201, 403, 403, 403, 401]),
    ("get",    "/api/v1/users",                 ADMIN_ONLY_READ),
    ("delete", "/api/v1/users/{id}",            [204, 403, 403, 403, 401]),
    ("get",    "/api/v1/audit",                 ADMIN_ONLY_READ),
    ("get",    "/api/v1/sites",                 MANAGERS_READ),
    ("post",   "/api/v1/sites",                 MANAGERS_CREATE),
    ("get",    "/api/v1/services",              MANAGERS_READ),
    ("post",   "/api/v1/services",              MANAGERS_CREATE),
    ("post",   "/api/v1/patients",              [201, 201, 403, 201, 401]),
    ("post",   "/api/v1/patients/search",       [200, 200, 200, 200, 401]),
    ("get",    "/api/v1/patients/{id}",         [200, 200, 200, 200, 401]),
    ("post",   "/api/v1/appointments",          MANAGERS_CREATE),
    ("post",   "/api/v1/appointments/import",   [200, 200, 403, 403, 401]),
    ("get",    "/api/v1/appointments",          [200, 200, 200, 200, 401]),
    ("get",    "/api/v1/appointments/{id}",     [200, 200, 200, 200, 401]),
    ("post",   "/api/v1/incidents",             MANAGERS_CREATE),
    ("post",   "/api/v1/incidents/{id}/extend", [200, 200, 403, 403, 401]),
    ("post",   "/api/v1/sites/{code}/reopen",   [200, 200, 403, 403, 401]),
    ("post",   "/api/v1/appointments/{id}/reschedule",       [200, 200, 200, 403, 401]),
    ("post",   "/api/v1/appointments/{id}/cancel",           [200, 200, 200, 403, 401]),
    ("post",   "/api/v1/appointments/{id}/contact-attempts", [201, 201, 201, 403, 401]),
    ("get",    "/api/v1/contact-list",          [200, 200, 200, 403, 401]),
    ("get",    "/api/v1/notifications",         MANAGERS_READ),
    ("post",   "/api/v1/calls",                 [201, 201, 403, 201, 401]),
    ("get",    "/api/v1/calls",                 [200, 200, 403, 200, 401]),
    ("get",    "/api/v1/calls/stats",           [200, 200, 403, 200, 401]),
    ("post",   "/api/v1/calls/import",          [200, 200, 403, 403, 401]),
    ("get",    "/api/v1/call-centre",           MANAGERS_READ),
    // The telephone system's token is in the path; a bearer token changes nothing.
    ("post",   "/api/v1/cti/{pbx_token}",       PUBLIC),
    ("get",    "/api/v1/phone-calls",           [200, 200, 403, 200, 401]),
    ("get",    "/api/v1/phone-calls/stats",     [200, 200, 403, 200, 401]),
    ("get",    "/api/v1/pbx-tokens",            ADMIN_ONLY_READ),
    ("delete", "/api/v1/pbx-tokens/{id}",       [204, 403, 403, 403, 401]),
    ("get",    "/api/v1/callbacks",             [200, 200, 403, 200, 401]),
    // A new callback for each caller: one that another role claimed would be a 409.
    ("post",   "/api/v1/callbacks/{id}/claim",  [200, 200, 403, 200, 401]),
    ("post",   "/api/v1/callbacks/{id}/attempts", [201, 201, 403, 201, 401]),
    ("put",    "/api/v1/call-centre",           [200, 200, 403, 403, 401]),
    ("get",    "/api/v1/sites/{code}/capacity",    MANAGERS_READ),
    ("put",    "/api/v1/sites/{code}/capacity",    [200, 200, 403, 403, 401]),
    ("put",    "/api/v1/services/{code}/capacity", [200, 200, 403, 403, 401]),
    ("post",   "/api/v1/sites/{code}/plan",        [200, 200, 403, 403, 401]),
    ("get",    "/api/v1/planning/deadline",        MANAGERS_READ),
    ("get",    "/api/v1/fhir/metadata",            PUBLIC),
    ("get",    "/api/v1/fhir/Patient/{id}",        MANAGERS_READ),
    ("get",    "/api/v1/fhir/Appointment/{id}",    MANAGERS_READ),
    ("get",    "/api/v1/fhir/Appointment",         MANAGERS_READ),
    // With `Prefer: respond-async`. An export is its owner's (the admin's here): another
    // account gets a 404, as for an unknown one.
    ("get",    "/api/v1/fhir/$export",             [202, 202, 403, 403, 401]),
    ("get",    "/api/v1/fhir/$export-status/{id}", [200, 404, 403, 403, 401]),
    ("delete", "/api/v1/fhir/$export-status/{id}", [202, 404, 403, 403, 401]),
    ("get",    "/api/v1/fhir/$export-file/{id}/{seq}", [200, 404, 403, 403, 401]),
    ("post",   "/api/v1/fhir",                     [200, 200, 403, 403, 401]),
];

/// Records the matrix needs to exist: a patient with an appointment in the secretary's
/// service, and an incident.
struct Fixtures {
    site: String,
    service: String,
    patient: String,
    appointment: String,
    incident: String,
    /// The token of the account whose bulk exports the matrix reads (its admin).
    exporter: String,
}

async fn fixtures(app: &TestApp, site: &str, service: &str) -> Fixtures {
    let patient = app.create_patient("Matrix", "Patient").await;
    let appointment = app
        .create_appointment(&patient, site, service, "2030-01-10T09:00:00Z")
        .await;
    let (other_site, _) = app.create_site_and_service().await;
    let body = json!({"title": "x", "started_at": "2030-01-01T00:00:00Z",
        "postpone_until": "2030-01-02T00:00:00Z", "sites": [other_site]});
    let r = app.admin().post("/api/v1/incidents", &body).await;
    assert_eq!(r.status(), 201);
    let incident: Value = r.json().await.expect("json");
    Fixtures {
        site: site.to_string(),
        service: service.to_string(),
        patient,
        appointment,
        incident: incident["id"].as_str().expect("id").to_string(),
        exporter: String::new(),
    }
}

enum Body {
    Json(Value),
    Csv(String),
}

/// A valid body for the route, fresh each time so that a permitted call succeeds.
fn body_for(method: &str, path: &str, f: &Fixtures) -> Option<Body> {
    let json = match (method, path) {
        ("post", "/api/v1/users") => json!({"name": "Someone", "role": "agent"}),
        ("post", "/api/v1/sites") => {
            json!({"code": unique_code("M"), "name": "x", "kind": "hospital", "operating_rooms": 1})
        }
        ("post", "/api/v1/services") => {
            json!({"code": unique_code("SV"), "name": "x", "site": f.site})
        }
        ("post", "/api/v1/patients") => {
            json!({"last_name": "New", "first_name": "Patient", "birth_date": "1970-01-01"})
        }
        ("post", "/api/v1/patients/search") => json!({"q": "matrix"}),
        ("post", "/api/v1/fhir") => json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient",
                "identifier": [{"system": "https://hospital.example/patients", "value": "matrix"}],
                "name": [{"family": "Bundle", "given": ["Patient"]}], "birthDate": "1970-01-01"}}]}),
        ("post", "/api/v1/appointments") => json!({
            "patient_id": f.patient, "site": f.site, "service": f.service, "kind": "consultation",
            "label": "Contrôle", "scheduled_at": "2030-02-01T10:00:00+01:00", "priority": 3
        }),
        ("post", "/api/v1/appointments/import") => {
            return Some(Body::Csv(format!(
                "{}\n,Csv,Patient,1960-03-04,,,fr,false,{},{},operation,Genou,2030-03-01 08:00,2,false,false\n",
                reprise::service::imports::APPOINTMENT_HEADER.join(","),
                f.site,
                f.service
            )))
        }
        ("post", "/api/v1/calls") => {
            json!({"reason": "appointment_status", "outcome": "informed", "patient_id": f.patient})
        }
        ("post", "/api/v1/calls/import") => {
            return Some(Body::Csv(format!(
                "{}\n2022-05-16T08:00:00Z,061 23 45 67,,other,informed,60,\n",
                reprise::service::imports::CALL_HEADER.join(",")
            )))
        }
        ("put", "/api/v1/call-centre") => json!({"status": "active"}),
        ("post", "/api/v1/callbacks/{id}/attempts") => json!({"outcome": "no_answer"}),
        ("post", "/api/v1/cti/{pbx_token}") => json!({"event": "newCall", "callId": "matrix"}),
        ("put", "/api/v1/sites/{code}/capacity") => json!({"session_minutes": 300}),
        ("put", "/api/v1/services/{code}/capacity") => json!({"consultation_slots": 4}),
        ("post", "/api/v1/sites/{code}/plan") => json!({"from": "2030-03-04", "until": "2030-03-08"}),
        ("post", "/api/v1/sites/{code}/reopen") => json!({"programme": "moderate"}),
        ("post", "/api/v1/appointments/{id}/reschedule") => {
            json!({"scheduled_at": "2030-03-01T09:00:00+01:00"})
        }
        ("post", "/api/v1/appointments/{id}/cancel") => json!({"reason": "patient_request"}),
        ("post", "/api/v1/appointments/{id}/contact-attempts") => {
            json!({"channel": "phone", "outcome": "no_answer"})
        }
        ("post", "/api/v1/incidents") => json!({
            "title": "Test", "started_at": "2031-01-01T00:00:00Z",
            "postpone_until": "2031-01-02T00:00:00Z", "sites": [f.site]
        }),
        ("post", "/api/v1/incidents/{id}/extend") => {
            json!({"postpone_until": "2030-01-03T00:00:00Z"})
        }
        _ => return None,
    };
    Some(Body::Json(json))
}

async fn concrete_path(app: &TestApp, path: &str, f: &Fixtures) -> String {
    if path.starts_with("/api/v1/users/") {
        let id = app.agent().await.id().to_string();
        path.replace("{id}", &id)
    } else if path == "/api/v1/pbx-tokens/{id}" {
        // A live token each time: revoking is final.
        app.pbx_token().await;
        let tokens = app.admin().get_json("/api/v1/pbx-tokens?limit=1000").await;
        let live = tokens["items"]
            .as_array()
            .and_then(|items| items.iter().rev().find(|t| t["revoked_at"].is_null()))
            .and_then(|t| t["id"].as_str())
            .expect("a live PBX token")
            .to_string();
        path.replace("{id}", &live)
    } else if path.starts_with("/api/v1/callbacks/{id}") {
        path.replace("{id}", &app.open_callback().await)
    } else if path == "/api/v1/cti/{pbx_token}" {
        path.replace("{pbx_token}", &app.pbx_token().await)
    } else if path == "/api/v1/planning/deadline" {
        format!("{path}?date=2030-06-30")
    } else if path == "/api/v1/contact-list" {
        format!("{path}?site={}", f.site)
    } else if path == "/api/v1/sites/{code}/reopen" {
        // A closed site each time: an incident closes a new one.
        let (site, _) = app.create_site_and_service().await;
        let body = json!({"title": "x", "started_at": "2030-01-01T00:00:00Z",
            "postpone_until": "2030-01-02T00:00:00Z", "sites": [site]});
        let r = app.admin().post("/api/v1/incidents", &body).await;
        assert_eq!(r.status(), 201);
        path.replace("{code}", &site)
    } else if path == "/api/v1/appointments/{id}/cancel" {
        // Cancelling is final: a new appointment in the secretary's service each time.
        let id = app
            .create_appointment(&f.patient, &f.site, &f.service, "2030-01-11T09:00:00Z")
            .await;
        path.replace("{id}", &id)
    } else if path.starts_with("/api/v1/sites/{code}/") {
        path.replace("{code}", &f.site)
    } else if path.starts_with("/api/v1/services/{code}/") {
        path.replace("{code}", &f.service)
    } else if path.starts_with("/api/v1/fhir/$export-") {
        // A finished export of the matrix's admin each time: DELETE removes it.
        let exporter = app.user(&f.exporter);
        let status = crate::fhir::started_export(&exporter).await;
        let manifest = crate::fhir::manifest(&exporter, &status).await;
        if path.contains("$export-file") {
            let url = manifest["output"][0]["url"].as_str().expect("a file");
            url[url.find("/api/").expect("a path")..].to_string()
        } else {
            status
        }
    } else if path == "/api/v1/fhir/Patient/{id}" {
        path.replace("{id}", &f.patient)
    } else if path == "/api/v1/fhir/Appointment/{id}" {
        path.replace("{id}", &f.appointment)
    } else if path.starts_with("/api/v1/patients/{id}") {
        path.replace("{id}", &f.patient)
    } else if path.starts_with("/api/v1/appointments/{id}") {
        path.replace("{id}", &f.appointment)
    } else if path.starts_with("/api/v1/incidents/{id}") {
        path.replace("{id}", &f.incident)
    } else {
        path.to_string()
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_contract_says() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let tokens = app.tokens_by_role(&service).await;
    let mut f = fixtures(&app, &site, &service).await;
    f.exporter = tokens
        .iter()
        .find(|(role, _)| *role == "admin")
        .map(|(_, t)| t.clone())
        .expect("an admin");

    // Every documented route has a row, and every row is documented.
    let spec: Value = app
        .anonymous()
        .get("/api/openapi.json")
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
            MATRIX.iter().any(|r| r.0 == method && r.1 == path),
            "{method} {path} has no row in the access matrix"
        );
    }
    for row in MATRIX {
        assert!(
            documented.iter().any(|(m, p)| m == row.0 && p == row.1),
            "{} {} is in the matrix but not in the OpenAPI document",
            row.0,
            row.1
        );
    }

    let mut failures = Vec::new();
    for row in MATRIX {
        let callers = tokens
            .iter()
            .map(|(role, t)| (*role, Some(t.as_str())))
            .chain([("no token", None)]);
        for ((who, token), expected) in callers.zip(row.2) {
            let path = concrete_path(&app, row.1, &f).await;
            let mut req = match row.0 {
                "get" => app.client.get(app.url(&path)),
                "post" => app.client.post(app.url(&path)),
                "put" => app.client.put(app.url(&path)),
                "delete" => app.client.delete(app.url(&path)),
                other => panic!("unexpected method {other}"),
            };
            match body_for(row.0, row.1, &f) {
                Some(Body::Json(body)) => req = req.json(&body),
                Some(Body::Csv(body)) => req = req.header("content-type", "text/csv").body(body),
                None => {}
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if row.1 == "/api/v1/fhir/$export" {
                req = req.header("Prefer", "respond-async");
            }
            let status = req.send().await.expect("sent").status().as_u16();
            if status != expected {
                failures.push(format!(
                    "{} {} as {who}: {status}, expected {expected}",
                    row.0, row.1
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

#[tokio::test]
async fn authorisation_is_decided_before_the_input_is_read() {
    let app = spawn_app().await;
    let (_, service) = app.create_site_and_service().await;
    let tokens = app.tokens_by_role(&service).await;
    let agent = &tokens.iter().find(|(r, _)| *r == "agent").expect("agent").1;
    for token in [Some(agent.as_str()), Some("rp_forged"), None] {
        let expected = if token == Some(agent.as_str()) {
            403
        } else {
            401
        };
        let mut bad_query = app.client.get(app.url("/api/v1/users?limit=abc"));
        let mut bad_type = app
            .client
            .post(app.url("/api/v1/sites"))
            .header("content-type", "text/plain")
            .body("x");
        let mut bad_json = app
            .client
            .post(app.url("/api/v1/sites"))
            .header("content-type", "application/json")
            .body("{");
        if let Some(t) = token {
            bad_query = bad_query.bearer_auth(t);
            bad_type = bad_type.bearer_auth(t);
            bad_json = bad_json.bearer_auth(t);
        }
        for req in [bad_query, bad_type, bad_json] {
            let status = req.send().await.expect("sent").status().as_u16();
            assert_eq!(status, expected, "token {token:?}");
        }
    }
    // Each refusal was audited, aggregated: one entry per caller, route and reason (the
    // second POST of each caller counts in the first's entry, added a moment later).
    reprise::startup::flush_denials(&app.state).await;
    let page: Value = app
        .admin()
        .get_json("/api/v1/audit?action=auth.denied")
        .await;
    let items = page["items"].as_array().expect("items");
    let count: i64 = items
        .iter()
        .map(|e| e["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(count, 9);
    // Six entries, unless the test ran across a minute's end (entries are per minute).
    let kinds: std::collections::HashSet<String> = items
        .iter()
        .map(|e| format!("{}{}{}", e["actor"], e["target"], e["details"]["reason"]))
        .collect();
    assert_eq!(kinds.len(), 6, "{items:?}");
    assert!(items.len() <= 9);
}
