use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

/// A site with a service and two postponed appointments (and their patient).
async fn closed_site(app: &TestApp) -> (String, String, Vec<String>) {
    let (site, service) = app.create_site_and_service().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let mut ids = Vec::new();
    for at in ["2022-05-16T09:00:00+02:00", "2022-05-18T09:00:00+02:00"] {
        ids.push(app.create_appointment(&patient, &site, &service, at).await);
    }
    let r = app.admin().post("/api/v1/incidents", &json!({"title": "x", "started_at": "2022-05-14T00:00:00+02:00", "postpone_until": "2022-06-04T00:00:00+02:00", "sites": [site]}))
        .await;
    assert_eq!(r.status(), 201);
    (site, service, ids)
}

async fn site(app: &TestApp, code: &str) -> Value {
    let list: Value = app.admin().get_json("/api/v1/sites").await;
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["code"] == code)
        .expect("listed")
        .clone()
}

async fn appointment(app: &TestApp, id: &str) -> Value {
    app.admin()
        .get_json(&format!("/api/v1/appointments/{id}"))
        .await
}

#[tokio::test]
async fn reopening_a_site_opens_it_with_its_programme() {
    let app = spawn_app().await;
    let (code, _, _) = closed_site(&app).await;
    let path = format!("/api/v1/sites/{code}/reopen");
    assert_problem(
        app.admin()
            .post(&path, &json!({"programme": "partial"}))
            .await,
        422,
    )
    .await;
    assert_problem(
        app.admin()
            .post(
                &path,
                &json!({"programme": "full", "operating_rooms_open": 9}),
            )
            .await,
        422,
    )
    .await;
    assert_eq!(site(&app, &code).await["status"], "closed");

    let r = app
        .admin()
        .post(
            &path,
            &json!({"programme": "moderate", "operating_rooms_open": 1}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["to_contact"], 2);
    assert_eq!(body["site"]["status"], "open");
    let listed = site(&app, &code).await;
    assert_eq!(listed["programme"], "moderate");
    assert_eq!(listed["operating_rooms_open"], 1);
    assert_eq!(listed["postponed_to_contact"], 2);
    assert!(listed["reopened_at"].is_string());

    assert_problem(
        app.admin().post(&path, &json!({"programme": "full"})).await,
        409,
    )
    .await;
    assert_problem(
        app.admin()
            .post("/api/v1/sites/NOPE/reopen", &json!({"programme": "full"}))
            .await,
        404,
    )
    .await;
    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=site.reopen")
        .await;
    assert_eq!(audit["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn rescheduling_keeps_the_original_date_and_follows_the_status_machine() {
    let app = spawn_app().await;
    let (_, _, ids) = closed_site(&app).await;
    let path = format!("/api/v1/appointments/{}/reschedule", ids[0]);
    let r = app
        .admin()
        .post(&path, &json!({"scheduled_at": "2030-06-13T10:00:00+02:00"}))
        .await;
    assert_eq!(r.status(), 200);
    let a = appointment(&app, &ids[0]).await;
    assert_eq!(a["status"], "rescheduled");
    assert_eq!(a["scheduled_at"], "2030-06-13T08:00:00Z");
    assert_eq!(a["original_scheduled_at"], "2022-05-16T07:00:00Z");
    let steps: Vec<&str> = a["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(steps, ["scheduled", "postponed", "rescheduled"]);
    // Moved again: still allowed.
    assert_eq!(
        app.admin()
            .post(&path, &json!({"scheduled_at": "2030-06-20T10:00:00+02:00"}))
            .await
            .status(),
        200
    );
    assert_problem(
        app.admin()
            .post(&path, &json!({"scheduled_at": "next week"}))
            .await,
        422,
    )
    .await;

    // Cancelled is final: no move changes it.
    let cancel = format!("/api/v1/appointments/{}/cancel", ids[0]);
    assert_problem(
        app.admin().post(&cancel, &json!({"reason": "bored"})).await,
        422,
    )
    .await;
    assert_eq!(
        app.admin()
            .post(
                &cancel,
                &json!({"reason": "patient_request", "note": "Opéré ailleurs"})
            )
            .await
            .status(),
        200
    );
    assert_problem(
        app.admin().post(&cancel, &json!({"reason": "other"})).await,
        409,
    )
    .await;
    assert_problem(
        app.admin()
            .post(&path, &json!({"scheduled_at": "2030-06-27T10:00:00+02:00"}))
            .await,
        409,
    )
    .await;
    let a = appointment(&app, &ids[0]).await;
    assert_eq!(a["status"], "cancelled");
    assert_eq!(
        a["scheduled_at"], "2030-06-20T08:00:00Z",
        "the refused move changed nothing"
    );
    let last = a["history"]
        .as_array()
        .expect("history")
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["reason"], "patient_request");
    assert_eq!(last["note"], "Opéré ailleurs");
    for action in ["appointment.reschedule", "appointment.cancel"] {
        let audit: Value = app
            .admin()
            .get_json(&format!("/api/v1/audit?action={action}"))
            .await;
        assert!(
            !audit["items"].as_array().expect("items").is_empty(),
            "{action} audited"
        );
    }
}

#[tokio::test]
async fn a_reached_patient_leaves_the_contact_list() {
    let app = spawn_app().await;
    let (code, _, ids) = closed_site(&app).await;
    let attempt = |id: &str, outcome: &str| {
        let path = format!("/api/v1/appointments/{id}/contact-attempts");
        let body = json!({"channel": "phone", "outcome": outcome});
        let app = &app;
        async move { app.admin().post(&path, &body).await }
    };
    assert_eq!(attempt(&ids[0], "no_answer").await.status(), 201);
    assert_eq!(site(&app, &code).await["postponed_to_contact"], 2);
    let r = attempt(&ids[0], "reached").await;
    assert_eq!(r.status(), 201);
    let recorded: Value = r.json().await.expect("json");
    assert_eq!(recorded["outcome"], "reached");
    assert_eq!(site(&app, &code).await["postponed_to_contact"], 1);
    let a = appointment(&app, &ids[0]).await;
    assert!(a["reached_at"].is_string());
    let outcomes: Vec<&str> = a["contact_attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|c| c["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["no_answer", "reached"]);
    assert_problem(attempt(&ids[1], "maybe").await, 422).await;

    let cancel = format!("/api/v1/appointments/{}/cancel", ids[1]);
    assert_eq!(
        app.admin()
            .post(&cancel, &json!({"reason": "duplicate"}))
            .await
            .status(),
        200
    );
    assert_problem(attempt(&ids[1], "reached").await, 409).await;
    assert_eq!(site(&app, &code).await["postponed_to_contact"], 0);
}

#[tokio::test]
async fn secretaries_act_only_on_their_services() {
    let app = spawn_app().await;
    let (_, service, ids) = closed_site(&app).await;
    let (_, other_service) = app.create_site_and_service().await;
    let mine = app.secretary(&[&service]).await;
    let theirs = app.secretary(&[&other_service]).await;
    let path = format!("/api/v1/appointments/{}/contact-attempts", ids[0]);
    let body = json!({"channel": "phone", "outcome": "voicemail"});
    // Another service's appointment, by id: 404, as an unknown one (no existence oracle).
    assert_problem(theirs.post(&path, &body).await, 404).await;
    assert_eq!(mine.post(&path, &body).await.status(), 201);
    let cancel = format!("/api/v1/appointments/{}/cancel", ids[0]);
    assert_problem(theirs.post(&cancel, &json!({"reason": "other"})).await, 404).await;
    let reschedule = format!("/api/v1/appointments/{}/reschedule", ids[0]);
    assert_problem(
        theirs
            .post(
                &reschedule,
                &json!({"scheduled_at": "2031-01-01T09:00:00Z"}),
            )
            .await,
        404,
    )
    .await;
    assert_eq!(appointment(&app, &ids[0]).await["status"], "postponed");
}
