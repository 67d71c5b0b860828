use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn a_new_appointment_is_scheduled_and_keeps_its_original_date() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let r = app.admin().post("/api/v1/appointments", &json!({"patient_id": patient, "site": site, "service": service, "kind": "operation",
                    "label": "Prothèse de hanche", "scheduled_at": "2022-05-16T09:30:00+02:00", "priority": 1}))
        .await;
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.expect("json");
    assert_eq!(a["status"], "scheduled");
    assert_eq!(a["scheduled_at"], "2022-05-16T07:30:00Z");
    assert_eq!(a["original_scheduled_at"], "2022-05-16T07:30:00Z");
    assert_eq!(a["urgent"], false);
    assert_eq!(a["essential"], false);
    let id = a["id"].as_str().expect("id");
    let detail: Value = app
        .admin()
        .get_json(&format!("/api/v1/appointments/{id}"))
        .await;
    assert_eq!(detail["history"][0]["status"], "scheduled");
    assert_eq!(detail["history"].as_array().expect("history").len(), 1);
}

#[tokio::test]
async fn bad_appointments_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let (other_site, _) = app.create_site_and_service().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let base = json!({"patient_id": patient, "site": site, "service": service, "kind": "operation",
                      "label": "x", "scheduled_at": "2022-05-16T09:30:00+02:00", "priority": 2});
    let with = |key: &str, value: Value| {
        let mut b = base.clone();
        b[key] = value;
        b
    };
    let cases = [
        (with("priority", json!(5)), "priority"),
        (with("priority", json!(0)), "priority"),
        (with("kind", json!("surgery")), "kind"),
        (
            with("scheduled_at", json!("2022-02-30T09:00:00Z")),
            "scheduled_at",
        ),
        (with("scheduled_at", json!("16/05/2022")), "scheduled_at"),
        (with("label", json!("")), "label"),
        (with("patient_id", json!("nobody")), "patient_id"),
        (with("service", json!("NOPE-SVC")), "service"),
        (with("site", json!(other_site)), "service"),
        (with("urgent", json!("yes")), "urgent"),
    ];
    for (body, field) in cases {
        let p = assert_problem(app.admin().post("/api/v1/appointments", &body).await, 422).await;
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {fields:?}");
    }
    let list: Value = app.admin().get_json("/api/v1/appointments").await;
    assert!(list["items"].as_array().expect("items").is_empty());
}

#[tokio::test]
async fn the_list_filters_and_pages() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let (other_site, other_service) = app.create_site_and_service().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    for day in 1..=5 {
        app.create_appointment(
            &patient,
            &site,
            &service,
            &format!("2030-01-0{day}T09:00:00Z"),
        )
        .await;
    }
    app.create_appointment_with(json!({"patient_id": patient, "site": other_site, "service": other_service,
        "kind": "consultation", "label": "x", "scheduled_at": "2030-01-01T09:00:00Z", "priority": 4})).await;

    let admin = app.admin();
    let get = |q: String| {
        let admin = admin.clone();
        async move {
            let page: Value = admin.get_json(&format!("/api/v1/appointments{q}")).await;
            page
        }
    };
    assert_eq!(
        get(format!("?site={site}")).await["items"]
            .as_array()
            .expect("items")
            .len(),
        5
    );
    assert_eq!(
        get("?kind=consultation".into()).await["items"]
            .as_array()
            .expect("items")
            .len(),
        1
    );
    assert_eq!(
        get("?status=postponed".into()).await["items"]
            .as_array()
            .expect("items")
            .len(),
        0
    );
    assert_eq!(
        get(format!("?patient_id={patient}")).await["items"]
            .as_array()
            .expect("items")
            .len(),
        6
    );

    let mut seen = Vec::new();
    let mut query = format!("?site={site}&limit=2");
    loop {
        let page = get(query.clone()).await;
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|a| a["id"].as_str().unwrap_or("").to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?site={site}&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    assert_problem(
        app.admin().get("/api/v1/appointments?status=lost").await,
        422,
    )
    .await;
}

#[tokio::test]
async fn secretaries_list_and_read_only_their_services() {
    let app = spawn_app().await;
    let (site, mine) = app.create_site_and_service().await;
    let (other_site, theirs) = app.create_site_and_service().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let own = app
        .create_appointment(&patient, &site, &mine, "2030-01-01T09:00:00Z")
        .await;
    let foreign = app
        .create_appointment(&patient, &other_site, &theirs, "2030-01-01T09:00:00Z")
        .await;
    let sec = app.secretary(&[&mine]).await;

    let page: Value = sec.get_json("/api/v1/appointments").await;
    let ids: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, [own.as_str()]);
    assert_problem(
        sec.get(&format!("/api/v1/appointments?service={theirs}"))
            .await,
        403,
    )
    .await;
    assert_eq!(
        sec.get(&format!("/api/v1/appointments/{own}"))
            .await
            .status(),
        200
    );
    // By id, an appointment of another service is as unknown as one that does not exist.
    assert_problem(
        sec.get(&format!("/api/v1/appointments/{foreign}")).await,
        404,
    )
    .await;
}
