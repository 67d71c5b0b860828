use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn search(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let r = app
        .user(token)
        .post("/api/v1/patients/search", &json!({ "q": q }))
        .await;
    assert_eq!(r.status(), 200, "search {q:?}");
    let body: Value = r.json().await.expect("json");
    body["items"].as_array().expect("items").clone()
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["first_name"].as_str().unwrap_or(""),
                p["last_name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn a_patient_is_stored_with_normalised_numbers() {
    let app = spawn_app().await;
    let r = app.admin().post("/api/v1/patients", &json!({"national_number": "85.07.30-033.28", "last_name": "Dupont", "first_name": "Marie",
                    "birth_date": "1985-07-30", "phone": "061 23 45 67", "email": "marie@example.be"}))
        .await;
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["national_number"], "85073003328");
    assert_eq!(p["phone"], "+3261234567");
    assert_eq!(p["language"], "fr");
    assert_eq!(p["email_consent"], false);
    assert_eq!(p["birth_date"], "1985-07-30");
    let id = p["id"].as_str().expect("id");
    let detail: Value = app
        .admin()
        .get_json(&format!("/api/v1/patients/{id}"))
        .await;
    assert_eq!(detail["last_name"], "Dupont");
    assert_eq!(detail["appointments"], json!([]));
}

#[tokio::test]
async fn bad_patient_fields_are_422_naming_them_and_store_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"national_number": "85.07.30-033.27", "last_name": "D", "first_name": "M", "birth_date": "1985-07-30"}),
            "national_number",
        ),
        // Check digits of someone born in 2017, with a birth date in 1917.
        (
            json!({"national_number": "17020100178", "last_name": "D", "first_name": "M", "birth_date": "1917-02-01"}),
            "national_number",
        ),
        (
            json!({"national_number": "85.07.30-033.28", "last_name": "D", "first_name": "M", "birth_date": "1985-07-31"}),
            "national_number",
        ),
        (
            json!({"last_name": "D", "first_name": "M", "birth_date": "1985-02-30"}),
            "birth_date",
        ),
        (
            json!({"last_name": "D", "first_name": "M", "birth_date": "1985-02-03", "phone": "not a phone"}),
            "phone",
        ),
        (
            json!({"last_name": "D", "first_name": "M", "birth_date": "1985-02-03", "email": "nope"}),
            "email",
        ),
        (
            json!({"last_name": "D", "first_name": "M", "birth_date": "1985-02-03", "language": "it"}),
            "language",
        ),
        (
            json!({"first_name": "M", "birth_date": "1985-02-03"}),
            "last_name",
        ),
    ];
    for (body, field) in cases {
        let p = assert_problem(app.admin().post("/api/v1/patients", &body).await, 422).await;
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {fields:?}");
    }
    assert!(search(&app, app.admin().token(), "dxz").await.is_empty());
}

#[tokio::test]
async fn a_known_national_number_is_a_conflict() {
    let app = spawn_app().await;
    let body = json!({"national_number": "85073003328", "last_name": "Dupont", "first_name": "Marie", "birth_date": "1985-07-30"});
    assert_eq!(
        app.admin().post("/api/v1/patients", &body).await.status(),
        201
    );
    let again = json!({"national_number": "85.07.30 033 28", "last_name": "Other", "first_name": "X", "birth_date": "1985-07-30"});
    assert_problem(app.admin().post("/api/v1/patients", &again).await, 409).await;
    assert_eq!(search(&app, app.admin().token(), "other").await.len(), 0);
}

#[tokio::test]
async fn search_finds_name_prefixes_ignoring_case_and_accents() {
    let app = spawn_app().await;
    for (last, first) in [
        ("Prénom", "Éloïse"),
        ("Dupont", "Marie"),
        ("Dupuis", "Jean-Pierre"),
        ("Martin", "Dupont"),
    ] {
        app.create_patient(last, first).await;
    }
    let admin = app.admin();
    assert_eq!(
        names(&search(&app, admin.token(), "prenom").await),
        ["Éloïse Prénom"]
    );
    assert_eq!(
        names(&search(&app, admin.token(), "ELO").await),
        ["Éloïse Prénom"]
    );
    assert_eq!(
        names(&search(&app, admin.token(), "dup").await),
        ["Marie Dupont", "Jean-Pierre Dupuis", "Dupont Martin"]
    );
    assert_eq!(
        names(&search(&app, admin.token(), "dupont marie").await),
        ["Marie Dupont"]
    );
    assert_eq!(
        names(&search(&app, admin.token(), "Marie Dupont").await),
        ["Marie Dupont"]
    );
    assert_eq!(
        names(&search(&app, admin.token(), "jean-p").await),
        ["Jean-Pierre Dupuis"]
    );
    assert!(search(&app, admin.token(), "zzz").await.is_empty());
    assert_problem(
        admin
            .post("/api/v1/patients/search", &json!({"q": "  "}))
            .await,
        422,
    )
    .await;
}

#[tokio::test]
async fn search_finds_phones_in_any_format_and_national_numbers() {
    let app = spawn_app().await;
    let body = json!({"national_number": "85073003328", "last_name": "Dupont", "first_name": "Marie",
                      "birth_date": "1985-07-30", "phone": "0470 12 34 56"});
    assert_eq!(
        app.admin().post("/api/v1/patients", &body).await.status(),
        201
    );
    app.create_patient("Other", "Person").await;
    let admin = app.admin();
    for q in [
        "0470 12 34 56",
        "+32470123456",
        "0032 470/12.34.56",
        "85.07.30-033.28",
        "85073003328",
    ] {
        assert_eq!(
            names(&search(&app, admin.token(), q).await),
            ["Marie Dupont"],
            "{q}"
        );
    }
    // The search was audited without the query itself.
    let audit: Value = admin.get_json("/api/v1/audit?action=patient.search").await;
    let text = audit.to_string();
    assert!(!text.contains("85073003328") && !text.contains("470123456"));
    assert_eq!(audit["items"][0]["details"]["by"], "national_number");
}

#[tokio::test]
async fn reading_a_patient_is_audited() {
    let app = spawn_app().await;
    let id = app.create_patient("Lecture", "Audit").await;
    assert_eq!(
        app.admin()
            .get(&format!("/api/v1/patients/{id}"))
            .await
            .status(),
        200
    );
    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=patient.read")
        .await;
    assert_eq!(audit["items"][0]["target"], format!("patient:{id}"));
    assert_problem(
        app.admin().get("/api/v1/patients/does-not-exist").await,
        404,
    )
    .await;
}

#[tokio::test]
async fn secretaries_see_only_their_services_patients() {
    let app = spawn_app().await;
    let (site, mine) = app.create_site_and_service().await;
    let (other_site, theirs) = app.create_site_and_service().await;
    let ours = app.create_patient("Patour", "A").await;
    let other = app.create_patient("Patother", "B").await;
    app.create_appointment(&ours, &site, &mine, "2030-01-01T09:00:00Z")
        .await;
    app.create_appointment(&other, &other_site, &theirs, "2030-01-01T09:00:00Z")
        .await;
    // A patient with appointments in both services: the secretary sees only hers.
    let both = app.create_patient("Patboth", "C").await;
    app.create_appointment(&both, &site, &mine, "2030-01-02T09:00:00Z")
        .await;
    app.create_appointment(&both, &other_site, &theirs, "2030-01-03T09:00:00Z")
        .await;
    let secretary = app.secretary(&[&mine]).await;

    let found: Vec<String> = search(&app, secretary.token(), "patou")
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(found, std::slice::from_ref(&ours));
    let found = search(&app, secretary.token(), "patb").await;
    assert_eq!(found.len(), 1);
    // Patother is in another service: searched for, not found.
    assert!(search(&app, secretary.token(), "patot").await.is_empty());
    assert_eq!(search(&app, secretary.token(), "pat").await.len(), 2);
    assert_eq!(
        secretary
            .get(&format!("/api/v1/patients/{ours}"))
            .await
            .status(),
        200
    );
    // Read by id, a patient outside her services is as unknown as one that does not exist.
    assert_problem(
        secretary.get(&format!("/api/v1/patients/{other}")).await,
        404,
    )
    .await;
    let detail: Value = secretary
        .get_json(&format!("/api/v1/patients/{both}"))
        .await;
    let services: Vec<&str> = detail["appointments"]
        .as_array()
        .expect("appointments")
        .iter()
        .filter_map(|a| a["service"].as_str())
        .collect();
    assert_eq!(services, [mine.as_str()]);
}
