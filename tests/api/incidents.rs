use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn appointment(app: &TestApp, id: &str) -> Value {
    app.admin()
        .get_json(&format!("/api/v1/appointments/{id}"))
        .await
}

async fn declare(app: &TestApp, sites: &[&str], from: &str, until: &str) -> reqwest::Response {
    app.admin().post("/api/v1/incidents", &json!({"title": "Ransomware", "started_at": from, "postpone_until": until, "sites": sites}))
    .await
}

#[tokio::test]
async fn an_incident_postpones_only_non_urgent_non_essential_care_in_its_window() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let (spared_site, spared_service) = app.create_site_and_service().await;
    let p = app.create_patient("Dupont", "Marie").await;
    let ordinary = |at: &str, urgent: bool, essential: bool| {
        json!({"patient_id": p, "site": site, "service": service, "kind": "operation", "label": "x",
               "scheduled_at": at, "priority": 2, "urgent": urgent, "essential": essential})
    };
    let hit = app
        .create_appointment_with(ordinary("2022-05-16T09:30:00+02:00", false, false))
        .await;
    let urgent = app
        .create_appointment_with(ordinary("2022-05-16T10:00:00+02:00", true, false))
        .await;
    let essential = app
        .create_appointment_with(ordinary("2022-05-17T10:00:00+02:00", false, true))
        .await;
    let before = app
        .create_appointment_with(ordinary("2022-05-13T23:59:00+02:00", false, false))
        .await;
    let after = app
        .create_appointment_with(ordinary("2022-06-10T09:00:00+02:00", false, false))
        .await;
    let elsewhere = app
        .create_appointment(
            &p,
            &spared_site,
            &spared_service,
            "2022-05-16T09:30:00+02:00",
        )
        .await;

    let r = declare(
        &app,
        &[&site],
        "2022-05-14T00:00:00+02:00",
        "2022-06-04T00:00:00+02:00",
    )
    .await;
    assert_eq!(r.status(), 201);
    let incident: Value = r.json().await.expect("json");
    assert_eq!(incident["postponed"], 1);
    assert_eq!(incident["kept_urgent"], 1);
    assert_eq!(incident["kept_essential"], 1);

    let postponed = appointment(&app, &hit).await;
    assert_eq!(postponed["status"], "postponed");
    assert_eq!(postponed["original_scheduled_at"], "2022-05-16T07:30:00Z");
    assert_eq!(postponed["incident_id"], incident["id"]);
    let history: Vec<&str> = postponed["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["scheduled", "postponed"]);
    for id in [&urgent, &essential, &before, &after, &elsewhere] {
        assert_eq!(appointment(&app, id).await["status"], "scheduled");
    }

    let sites: Value = app.admin().get_json("/api/v1/sites").await;
    for s in sites["items"].as_array().expect("items") {
        let expected = if s["code"] == site.as_str() {
            "closed"
        } else {
            "open"
        };
        assert_eq!(s["status"], expected, "{s}");
    }
    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=incident.create")
        .await;
    assert_eq!(audit["items"][0]["details"]["rows"], 1);
}

#[tokio::test]
async fn applying_an_incident_again_changes_nothing_more_and_extending_widens_it() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let p = app.create_patient("Dupont", "Marie").await;
    for day in [16, 20, 30] {
        app.create_appointment(
            &p,
            &site,
            &service,
            &format!("2022-05-{day}T09:00:00+02:00"),
        )
        .await;
    }
    let late = app
        .create_appointment(&p, &site, &service, "2022-06-08T09:00:00+02:00")
        .await;

    let first: Value = declare(
        &app,
        &[&site],
        "2022-05-14T00:00:00+02:00",
        "2022-06-04T00:00:00+02:00",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(first["postponed"], 3);
    let again: Value = declare(
        &app,
        &[&site],
        "2022-05-14T00:00:00+02:00",
        "2022-06-04T00:00:00+02:00",
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(again["postponed"], 0);

    let id = first["id"].as_str().expect("id");
    let path = format!("/api/v1/incidents/{id}/extend");
    let extend = |until: &str| {
        let body = json!({ "postpone_until": until });
        let (app, path) = (&app, &path);
        async move { app.admin().post(path, &body).await }
    };
    let r = extend("2022-06-11T00:00:00+02:00").await;
    assert_eq!(r.status(), 200);
    let extended: Value = r.json().await.expect("json");
    assert_eq!(extended["postponed"], 1);
    assert_eq!(extended["postpone_until"], "2022-06-10T22:00:00Z");
    assert_eq!(appointment(&app, &late).await["status"], "postponed");
    let same: Value = extend("2022-06-11T00:00:00+02:00")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(same["postponed"], 0);

    assert_problem(extend("2022-06-01T00:00:00+02:00").await, 422).await;
    assert_problem(
        app.admin()
            .post(
                "/api/v1/incidents/nope/extend",
                &json!({"postpone_until": "2022-07-01T00:00:00Z"}),
            )
            .await,
        404,
    )
    .await;
    let page: Value = app
        .admin()
        .get_json("/api/v1/appointments?status=postponed")
        .await;
    assert_eq!(page["items"].as_array().expect("items").len(), 4);
}

#[tokio::test]
async fn a_bad_incident_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let p = app.create_patient("Dupont", "Marie").await;
    let a = app
        .create_appointment(&p, &site, &service, "2022-05-16T09:00:00+02:00")
        .await;
    let from = "2022-05-14T00:00:00+02:00";
    let until = "2022-06-04T00:00:00+02:00";
    for (sites, f, u, field) in [
        (vec![site.as_str(), "NOPE"], from, until, "sites"),
        (vec![], from, until, "sites"),
        (vec![site.as_str()], until, from, "postpone_until"),
        (vec![site.as_str()], "yesterday", until, "started_at"),
    ] {
        let problem = assert_problem(declare(&app, &sites, f, u).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    assert_eq!(appointment(&app, &a).await["status"], "scheduled");
    let sites: Value = app.admin().get_json("/api/v1/sites").await;
    assert!(sites["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|s| s["status"] == "open"));
}
