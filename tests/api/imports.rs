use serde_json::Value;

use crate::cli::reprise;
use crate::helpers::{assert_problem, spawn_app, TestApp};

fn header() -> String {
    reprise::service::imports::APPOINTMENT_HEADER.join(",")
}

async fn import(app: &TestApp, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.admin()
        .post_csv("/api/v1/appointments/import", body)
        .await
}

async fn count_appointments(app: &TestApp) -> usize {
    let page: Value = app
        .admin()
        .get_json("/api/v1/appointments?limit=1000")
        .await;
    page["items"].as_array().expect("items").len()
}

#[tokio::test]
async fn an_import_matches_patients_on_national_number() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    // Already known: reused, not duplicated.
    let known = serde_json::json!({"national_number": "85073003328", "last_name": "Dupont", "first_name": "Marie", "birth_date": "1985-07-30"});
    let r = app.admin().post("/api/v1/patients", &known).await;
    let known_id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let csv = format!(
        "{h}\n\
         85.07.30-033.28,Dupont,Marie,1985-07-30,061 23 45 67,,fr,true,{site},{service},operation,Hanche,2022-05-16 09:30,1,false,false\n\
         17020100178,Peeters,Jan,2017-02-01,,,nl,false,{site},{service},consultation,Suivi,2022-05-17 10:00,3,false,false\n\
         17020100178,Peeters,Jan,2017-02-01,,,nl,false,{site},{service},consultation,Contrôle,2022-05-24 10:00,3,false,false\n\
         ,Sansnumero,Anne,1940-12-24,,,de,false,{site},{service},operation,Cataracte,2022-05-18T08:00:00+02:00,2,false,true\n",
        h = header()
    );
    let r = import(&app, csv).await;
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["imported"], 4);
    assert_eq!(report["patients_created"], 2);

    let detail: Value = app
        .admin()
        .get_json(&format!("/api/v1/patients/{known_id}"))
        .await;
    assert_eq!(detail["appointments"][0]["label"], "Hanche");
    assert_eq!(
        detail["appointments"][0]["scheduled_at"],
        "2022-05-16T07:30:00Z"
    );
    let found: Value = app
        .admin()
        .post(
            "/api/v1/patients/search",
            &serde_json::json!({"q": "17020100178"}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(found["items"].as_array().expect("items").len(), 1);
    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=appointment.import")
        .await;
    assert_eq!(audit["items"][0]["details"]["rows"], 4);
}

#[tokio::test]
async fn one_bad_line_anywhere_stores_nothing_and_every_bad_line_is_listed() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let good = format!(",Bon,Patient,1950-01-01,,,fr,false,{site},{service},operation,x,2022-05-16 09:30,2,false,false");
    let csv = format!(
        "{h}\n{good}\n\
         85073003327,Dupont,Marie,1985-07-30,,,fr,false,{site},{service},operation,x,2022-05-16 09:30,2,false,false\n\
         {good}\n\
         ,Mauvais,Tel,1950-01-01,pas un numéro,,fr,false,{site},{service},operation,x,2022-02-30 09:30,7,false,false\n\
         ,Trop,Court\n",
        h = header()
    );
    let problem = assert_problem(import(&app, csv).await, 422).await;
    let errors: Vec<(u64, String)> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap_or(0),
                e["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = [
        (3, "national_number"),
        (5, "phone"),
        (5, "scheduled_at"),
        (5, "priority"),
        (6, "line"),
    ]
    .iter()
    .map(|(l, f)| (*l, f.to_string()))
    .collect();
    assert_eq!(errors, expected);
    assert_eq!(count_appointments(&app).await, 0);
}

#[tokio::test]
async fn malformed_files_get_a_4xx_and_store_nothing() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let line = format!(",Dupont,Marie,1950-01-01,,,fr,false,{site},{service},operation,x,2022-05-16 09:30,2,false,false");
    let mut invalid_utf8 = format!("{}\n", header()).into_bytes();
    invalid_utf8.extend_from_slice(
        format!(",Dupont,M,1950-01-01,,,fr,false,{site},{service},operation,").as_bytes(),
    );
    invalid_utf8.extend_from_slice(b"\xff\xfe,2022-05-16 09:30,2,false,false\n");
    let mut huge_line = format!("{}\n{line}\n", header()).into_bytes();
    huge_line.extend(std::iter::repeat_n(b'a', 50 * 1024 * 1024));
    huge_line.push(b'\n');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong header", format!("name,date\n{line}\n").into_bytes()),
        ("empty file", Vec::new()),
        (
            "unterminated quote",
            format!("{}\n{line}\n,\"Dupont,Marie\n", header()).into_bytes(),
        ),
        (
            "wrong column count",
            format!("{}\n{line}\n{line},extra\n", header()).into_bytes(),
        ),
        ("invalid UTF-8", invalid_utf8),
        ("50 MB line", huge_line),
    ];
    for (what, body) in cases {
        let r = import(&app, body).await;
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "{what}: {status}");
        assert_problem(r, status).await;
    }
    let r = app
        .admin()
        .post_raw("/api/v1/appointments/import", "application/json", "{}")
        .await;
    assert_problem(r, 415).await;
    assert_eq!(count_appointments(&app).await, 0);
}

#[tokio::test]
async fn the_command_line_imports_the_same_files() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.csv");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&good, format!("{}\n,Cli,Patient,1950-01-01,,,fr,false,{site},{service},operation,x,2022-05-16 09:30,2,false,false\n", header())).expect("write");
    std::fs::write(&bad, format!("{}\n,Cli,Patient,1950-01-01,,,fr,false,{site},{service},operation,x,2022-05-16 09:30,9,false,false\n", header())).expect("write");
    let url = app.state.settings.database.expose();

    let out = reprise()
        .env("REPRISE_DATABASE_URL", &url)
        .args(["import", "appointments"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: priority"));
    assert_eq!(count_appointments(&app).await, 0);

    let out = reprise()
        .env("REPRISE_DATABASE_URL", &url)
        .args(["import", "appointments"])
        .arg(&good)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["imported"], 1);
    assert_eq!(count_appointments(&app).await, 1);
}
