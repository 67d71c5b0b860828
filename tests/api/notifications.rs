use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn notifications(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app
        .admin()
        .get(&format!("/api/v1/notifications{query}"))
        .await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.expect("json");
    page["items"].as_array().expect("items").clone()
}

async fn patient(
    app: &TestApp,
    last: &str,
    email: Option<&str>,
    consent: bool,
    language: &str,
) -> String {
    let mut body = json!({"last_name": last, "first_name": "X", "birth_date": "1960-01-01", "email_consent": consent, "language": language});
    if let Some(e) = email {
        body["email"] = json!(e);
    }
    app.create_patient_with(body).await
}

#[tokio::test]
async fn emails_are_queued_with_their_change_and_only_with_consent() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let consenting = patient(&app, "Oui", Some("oui@example.be"), true, "nl").await;
    let refusing = patient(&app, "Non", Some("non@example.be"), false, "fr").await;
    let without = patient(&app, "Sans", None, true, "fr").await;
    let mut appointments = Vec::new();
    for p in [&consenting, &consenting, &refusing, &without] {
        appointments.push(
            app.create_appointment(p, &site, &service, "2022-05-16T09:00:00+02:00")
                .await,
        );
    }
    let incident = json!({"title": "x", "started_at": "2022-05-14T00:00:00+02:00", "postpone_until": "2022-06-04T00:00:00+02:00", "sites": [site]});
    let r: Value = app
        .admin()
        .post("/api/v1/incidents", &incident)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["postponed"], 4);
    assert_eq!(
        r["notifications_queued"], 2,
        "one per postponed appointment of the consenting patient"
    );
    let queued = notifications(&app, "?status=queued").await;
    assert_eq!(queued.len(), 2);
    assert!(queued
        .iter()
        .all(|n| n["template"] == "appointment_postponed"
            && n["language"] == "nl"
            && n["to"] == "oui@example.be"));
    // Applying the incident again queues nothing more.
    let again: Value = app
        .admin()
        .post("/api/v1/incidents", &incident)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["notifications_queued"], 0);

    // Reopening: one site_reopened email per consenting patient, not per appointment.
    let r: Value = app
        .admin()
        .post(
            &format!("/api/v1/sites/{site}/reopen"),
            &json!({"programme": "moderate", "notify_patients": true}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["notifications_queued"], 1);

    // Rescheduling: one email for the new date; nothing for the patient who refused.
    for id in [&appointments[0], &appointments[2]] {
        let r = app
            .admin()
            .post(
                &format!("/api/v1/appointments/{id}/reschedule"),
                &json!({"scheduled_at": "2030-06-13T10:00:00+02:00"}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let templates: Vec<String> = notifications(&app, &format!("?patient_id={consenting}"))
        .await
        .iter()
        .filter_map(|n| n["template"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        templates
            .iter()
            .filter(|t| *t == "appointment_rescheduled")
            .count(),
        1
    );
    assert_eq!(
        templates.iter().filter(|t| *t == "site_reopened").count(),
        1
    );
    assert!(notifications(&app, &format!("?patient_id={refusing}"))
        .await
        .is_empty());
    assert!(notifications(&app, &format!("?patient_id={without}"))
        .await
        .is_empty());
    assert_problem(
        app.admin().get("/api/v1/notifications?status=lost").await,
        422,
    )
    .await;
}

#[tokio::test]
async fn a_failed_change_queues_nothing() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let p = patient(&app, "Oui", Some("oui@example.be"), true, "fr").await;
    let a = app
        .create_appointment(&p, &site, &service, "2022-05-16T09:00:00+02:00")
        .await;
    let cancel = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{a}/cancel"),
            &json!({"reason": "other"}),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    // A refused reschedule (cancelled is final) leaves no email behind.
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{a}/reschedule"),
            &json!({"scheduled_at": "2030-06-13T10:00:00+02:00"}),
        )
        .await;
    assert_problem(r, 409).await;
    assert!(notifications(&app, "").await.is_empty());
}

#[tokio::test]
async fn an_unsent_email_about_an_older_date_is_not_sent() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let p = patient(&app, "Oui", Some("oui@example.be"), true, "fr").await;
    let a = app
        .create_appointment(&p, &site, &service, "2022-05-16T09:00:00+02:00")
        .await;
    for date in [
        "2030-06-13T10:00:00+02:00",
        "2030-06-20T10:00:00+02:00",
        // The same date again: the email already queued for it stays.
        "2030-06-20T10:00:00+02:00",
    ] {
        let r = app
            .admin()
            .post(
                &format!("/api/v1/appointments/{a}/reschedule"),
                &json!({ "scheduled_at": date }),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let all = notifications(&app, "").await;
    assert_eq!(all.len(), 2, "{all:?}");
    let failed: Vec<&Value> = all.iter().filter(|n| n["status"] == "failed").collect();
    let queued: Vec<&Value> = all.iter().filter(|n| n["status"] == "queued").collect();
    assert_eq!((failed.len(), queued.len()), (1, 1), "{all:?}");
    assert!(failed[0]["last_error"]
        .as_str()
        .expect("reason")
        .starts_with("superseded"));
}
