//! Planning the reopening: capacities and the plan that fills them (issue: capacity-aware
//! rebooking proposals), on both backends.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, TestApp};
use crate::helpers::{spawn_app, Sent};

struct Scene {
    site: String,
    service: String,
    /// Operations P1, P2, P2, P3, P4 then consultations P2 ×4, in contract order.
    appointments: Vec<String>,
}

/// A two-room site closed by an incident with five postponed operations and four
/// consultations; its service sees 3 consultations a day and operates 120 minutes by default.
async fn scene(app: &TestApp) -> Scene {
    let (site, service) = app.create_site_and_service().await;
    let patient = app.create_patient("Plan", "Patient").await;
    let mut appointments = Vec::new();
    let operations = [
        (1, "10", "Genou"),
        (2, "11", "Genou"),
        (2, "12", "Genou"),
        (3, "13", "Genou"),
        (4, "14", "Prothèse de hanche"),
    ];
    for (priority, day, label) in operations {
        appointments.push(
            app.create_appointment_with(json!({
                "patient_id": patient, "site": site, "service": service, "kind": "operation",
                "label": label, "scheduled_at": format!("2030-01-{day}T08:00:00Z"), "priority": priority
            }))
            .await,
        );
    }
    for day in ["20", "21", "22", "23"] {
        appointments.push(
            app.create_appointment_with(json!({
                "patient_id": patient, "site": site, "service": service, "kind": "consultation",
                "label": "Contrôle", "scheduled_at": format!("2030-01-{day}T08:00:00Z"), "priority": 2
            }))
            .await,
        );
    }
    // Contract order: priority, then original date.
    let order = [0, 1, 2, 5, 6, 7, 8, 3, 4];
    let appointments = order.iter().map(|i| appointments[*i].clone()).collect();
    app.postpone(&site, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
        .await;
    let r = put(
        app,
        &format!("/api/v1/services/{service}/capacity"),
        &json!({"consultation_slots": 3, "operation_minutes": 120,
                "durations": {"Prothèse de hanche": 240}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    Scene {
        site,
        service,
        appointments,
    }
}

async fn appointment(app: &TestApp, id: &str) -> Value {
    app.admin()
        .get_json(&format!("/api/v1/appointments/{id}"))
        .await
}

async fn put(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.admin().put(path, body).await
}

async fn plan(app: &TestApp, site: &str, query: &str, body: &Value) -> reqwest::Response {
    app.admin()
        .post(&format!("/api/v1/sites/{site}/plan{query}"), body)
        .await
}

#[tokio::test]
async fn capacity_is_set_read_checked_and_audited() {
    let app = spawn_app().await;
    let s = scene(&app).await;
    let path = format!("/api/v1/sites/{}/capacity", s.site);
    // 2030-03-09 is a Saturday.
    let r = put(
        &app,
        &path,
        &json!({"session_minutes": 240,
        "days": [{"date": "2030-03-09", "rooms_open": 1, "session_minutes": 480}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let capacity: Value = app.admin().get_json(&path).await;
    assert_eq!(capacity["session_minutes"], 240);
    assert_eq!(capacity["fraction"], 0.5, "moderate until the site reopens");
    assert_eq!(
        capacity["minutes_per_working_day"], 240,
        "2 rooms × 240 min × 50 %"
    );
    assert_eq!(capacity["days"][0]["date"], "2030-03-09");
    assert_eq!(capacity["services"][0]["code"], s.service);
    assert_eq!(capacity["services"][0]["consultation_slots"], 3);
    assert_eq!(
        capacity["services"][0]["durations"]["Prothèse de hanche"],
        240
    );
    // Refused, and nothing changed.
    for bad in [
        json!({"session_minutes": 2000}),
        json!({"days": [{"date": "2030-03-09", "rooms_open": 3, "session_minutes": 60}]}),
        json!({"days": [{"date": "09/03/2030", "rooms_open": 1, "session_minutes": 60}]}),
        json!({"session_minutes": 60, "rooms": 1}),
    ] {
        let r = put(&app, &path, &bad).await;
        assert!(
            r.status() == 422 || r.status() == 400,
            "{bad}: {}",
            r.status()
        );
    }
    let again: Value = app.admin().get_json(&path).await;
    assert_eq!(again, capacity);
    let r = put(
        &app,
        &format!("/api/v1/services/{}/capacity", s.service),
        &json!({"operation_minutes": 0}),
    )
    .await;
    assert_problem(r, 422).await;
    assert_problem(
        put(&app, "/api/v1/sites/NOPE/capacity", &json!({})).await,
        404,
    )
    .await;
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=site.capacity")
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=service.capacity")
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_plan_fills_each_day_in_contract_order_and_never_beyond_its_capacity() {
    let app = spawn_app().await;
    let s = scene(&app).await;
    let r = put(
        &app,
        &format!("/api/v1/sites/{}/capacity", s.site),
        &json!({"session_minutes": 240,
        "days": [{"date": "2030-03-09", "rooms_open": 1, "session_minutes": 480}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Monday 4 to Sunday 10 March 2030.
    let r = plan(
        &app,
        &s.site,
        "",
        &json!({"from": "2030-03-04", "until": "2030-03-10"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["committed"], false);
    assert_eq!(
        (
            p["appointments"].as_i64(),
            p["planned"].as_i64(),
            p["not_placed"].as_i64()
        ),
        (Some(9), Some(9), Some(0))
    );
    let items = p["items"].as_array().expect("items");
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|i| i["appointment_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        s.appointments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "contract order"
    );
    let day = |i: usize| {
        items[i]["proposed_date"]
            .as_str()
            .unwrap_or("none")
            .to_string()
    };
    // 240 operating minutes a day: two 120-minute operations; the hip takes a whole day.
    assert_eq!(
        [day(0), day(1), day(2), day(7), day(8)],
        [
            "2030-03-04",
            "2030-03-04",
            "2030-03-05",
            "2030-03-05",
            "2030-03-06"
        ]
    );
    assert_eq!(items[8]["minutes"], 240);
    // Three consultations a working day.
    assert_eq!(
        [day(3), day(4), day(5), day(6)],
        ["2030-03-04", "2030-03-04", "2030-03-04", "2030-03-05"]
    );
    for d in p["days"].as_array().expect("days") {
        let n = |k: &str| d[k].as_i64().expect("a number");
        assert!(n("operation_minutes_used") <= n("operation_minutes"), "{d}");
        assert!(n("consultations") <= n("consultation_slots"), "{d}");
    }
    let days = p["days"].as_array().expect("days");
    assert_eq!(days.len(), 7);
    assert_eq!(
        (
            days[0]["operation_minutes"].as_i64(),
            days[0]["operations"].as_i64()
        ),
        (Some(240), Some(2))
    );
    assert_eq!(
        days[5]["operation_minutes"], 240,
        "the Saturday opened: 1 room × 480 × 50 %"
    );
    assert_eq!(
        (
            days[6]["operation_minutes"].as_i64(),
            days[6]["consultation_slots"].as_i64()
        ),
        (Some(0), Some(0)),
        "Sunday"
    );
    // Deadlines: P1 was due 14 days after 10 January, P2 28 days after: both late in March;
    // P3 (91 days) and P4 (182 days) are not.
    assert_eq!(items[0]["due"], "2030-01-24");
    let late: Vec<bool> = items.iter().map(|i| i["late"] == true).collect();
    assert_eq!(
        late,
        [true, true, true, true, true, true, true, false, false]
    );

    // One Monday only: what does not fit is said, and flagged.
    let r = plan(
        &app,
        &s.site,
        "",
        &json!({"from": "2030-03-04", "until": "2030-03-04"}),
    )
    .await;
    let p: Value = r.json().await.expect("json");
    assert_eq!(
        (p["planned"].as_i64(), p["not_placed"].as_i64()),
        (Some(5), Some(4))
    );
    let unplaced: Vec<&Value> = p["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["proposed_date"].is_null())
        .collect();
    assert!(unplaced.iter().all(|i| i["late"] == true));

    // A full programme doubles the operating minutes.
    let r = app
        .admin()
        .post(
            &format!("/api/v1/sites/{}/reopen", s.site),
            &json!({"programme": "full", "notify_patients": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = plan(
        &app,
        &s.site,
        "",
        &json!({"from": "2030-03-04", "until": "2030-03-04"}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(p["days"][0]["operation_minutes"], 480);
}

#[tokio::test]
async fn a_committed_plan_proposes_days_and_keeps_the_status() {
    let app = spawn_app().await;
    let s = scene(&app).await;
    let path = format!("/api/v1/sites/{}/capacity", s.site);
    assert_eq!(
        put(&app, &path, &json!({"session_minutes": 240}))
            .await
            .status(),
        200
    );
    let r = plan(
        &app,
        &s.site,
        "?commit=true",
        &json!({"from": "2030-03-04", "until": "2030-03-04"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["committed"], true);
    let first = appointment(&app, &s.appointments[0]).await;
    assert_eq!(
        (first["status"].as_str(), first["proposed_at"].as_str()),
        (Some("postponed"), Some("2030-03-04"))
    );
    let last = appointment(&app, &s.appointments[8]).await;
    assert!(last["proposed_at"].is_null(), "no room for it: no day");
    let audit = app.admin().get_json("/api/v1/audit?action=site.plan").await;
    assert_eq!(audit["items"][0]["details"]["planned"], 5);
    // A plan without commit stores nothing: a longer window leaves the days as they were.
    plan(
        &app,
        &s.site,
        "",
        &json!({"from": "2030-03-04", "until": "2030-03-20"}),
    )
    .await;
    let last = appointment(&app, &s.appointments[8]).await;
    assert!(last["proposed_at"].is_null());
    // Committing it again moves them.
    plan(
        &app,
        &s.site,
        "?commit=true",
        &json!({"from": "2030-03-04", "until": "2030-03-20"}),
    )
    .await;
    let last = appointment(&app, &s.appointments[8]).await;
    assert_eq!(last["proposed_at"], "2030-03-06");
    // The contact list (JSON) shows the proposals; a new date ends one.
    let list = app
        .admin()
        .get_json(&format!("/api/v1/contact-list?site={}", s.site))
        .await;
    let proposed: Vec<&Value> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| &i["proposed_at"])
        .collect();
    assert_eq!(proposed[0], "2030-03-04");
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{}/reschedule", s.appointments[0]),
            &json!({"scheduled_at": "2030-03-04T09:00:00+01:00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(appointment(&app, &s.appointments[0]).await["proposed_at"].is_null());
}

#[tokio::test]
async fn plan_windows_are_checked() {
    let app = spawn_app().await;
    let s = scene(&app).await;
    for bad in [
        json!({"from": "2030-03-04", "until": "2030-03-03"}),
        json!({"from": "2030-03-04", "until": "2031-03-05"}),
        json!({"from": "04/03/2030", "until": "2030-03-05"}),
        json!({"from": "2030-03-04"}),
        json!({"from": "2020-03-02", "until": "2020-03-06"}),
        json!({"from": "-5000-01-01", "until": "-5000-01-02"}),
        json!({"from": "2030-03-04", "until": "2101-01-01"}),
    ] {
        // Committed or not, a bad window stores nothing.
        let r = plan(&app, &s.site, "?commit=true", &bad).await;
        assert_problem(r, 422).await;
    }
    assert_problem(
        plan(
            &app,
            &s.site,
            "?commit=maybe",
            &json!({"from": "2030-03-04", "until": "2030-03-04"}),
        )
        .await,
        422,
    )
    .await;
    assert_problem(
        plan(
            &app,
            "NOPE",
            "",
            &json!({"from": "2030-03-04", "until": "2030-03-04"}),
        )
        .await,
        404,
    )
    .await;
    // Nothing was stored by any of them.
    let first = appointment(&app, &s.appointments[0]).await;
    assert!(first["proposed_at"].is_null());
}

#[tokio::test]
async fn the_deadline_view_says_what_remains_and_when_it_will_be_done() {
    let app = spawn_app().await;
    let s = scene(&app).await;
    let view = |date: &'static str| {
        let app = &app;
        async move {
            app.admin()
                .get_json(&format!(
                    "/api/v1/planning/deadline?date={date}&from=2030-03-04"
                ))
                .await
        }
    };
    let site = |v: &Value| -> Value {
        v["sites"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["site"] == s.site.as_str()).cloned())
            .expect("the site")
    };
    // Four postponed consultations, three slots a working day.
    let tuesday = site(&view("2030-03-05").await);
    assert_eq!(
        (
            tuesday["remaining"].as_i64(),
            tuesday["capacity_until_date"].as_i64()
        ),
        (Some(4), Some(6))
    );
    assert_eq!(tuesday["reaches_date"], true);
    assert_eq!(tuesday["done_at_capacity"], "2030-03-05");
    assert_eq!(tuesday["pace_per_day"], 0.0);
    assert!(tuesday["done_at_pace"].is_null(), "no pace yet");
    let monday = site(&view("2030-03-04").await);
    assert_eq!(monday["reaches_date"], false);
    // One consultation rebooked today: a pace of 1 a week, three left: 21 days.
    let consultation = &s.appointments[3];
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{consultation}/reschedule"),
            &json!({"scheduled_at": "2030-03-04T09:00:00+01:00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let after = site(&view("2030-03-05").await);
    assert_eq!(after["remaining"], 3);
    let pace = after["pace_per_day"].as_f64().expect("pace");
    assert!((pace - 1.0 / 7.0).abs() < 1e-9, "{pace}");
    let in_21_days = |d: chrono::NaiveDate| (d + chrono::Duration::days(21)).to_string();
    let today = chrono::Utc::now().date_naive();
    let done = after["done_at_pace"].as_str().expect("a day");
    // (The server's day, which may have turned since.)
    assert!(
        done == in_21_days(today) || done == in_21_days(today - chrono::Duration::days(1)),
        "{done}"
    );
    // A second service with a consultation and no slot: the site cannot reach any date,
    // whatever the first service's slots.
    let other = format!("{}-B", s.site);
    let r = app
        .admin()
        .post(
            "/api/v1/services",
            &json!({"code": other, "name": "Autre", "site": s.site}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let patient = app.create_patient("Autre", "Service").await;
    app.create_appointment_with(json!({
        "patient_id": patient, "site": s.site, "service": other, "kind": "consultation",
        "label": "Contrôle", "scheduled_at": "2030-01-25T08:00:00Z", "priority": 2
    }))
    .await;
    // Postponed by a second incident over the same window (the site is closed already).
    app.postpone(&s.site, "2030-01-24T00:00:00Z", "2030-02-01T00:00:00Z")
        .await;
    let both = site(&view("2030-12-31").await);
    assert_eq!(both["remaining"], 4);
    assert_eq!(both["reaches_date"], false, "{both}");
    assert!(both["done_at_capacity"].is_null(), "{both}");
    // Bad dates are refused.
    for bad in [
        "date=2030-03-03&from=2030-03-04",
        "date=tomorrow",
        "from=2030-03-04",
    ] {
        let r = app
            .admin()
            .get(&format!("/api/v1/planning/deadline?{bad}"))
            .await;
        assert!(
            r.status() == 422 || r.status() == 400,
            "{bad}: {}",
            r.status()
        );
    }
}

/// `reprise purge-calls`: at the end of the crisis, the notes and callers' numbers of calls
/// older than the retention period go; the statistics stay.
#[tokio::test]
async fn purging_calls_removes_notes_and_numbers_but_keeps_the_statistics() {
    let app = spawn_app().await;
    let old = json!({"received_at": "2022-05-16T09:00:00+02:00", "caller_phone": "061 23 45 67",
                     "notes": "Demande pour sa fille", "reason": "other", "outcome": "informed",
                     "duration_seconds": 90});
    let recent = json!({"caller_phone": "0470 12 34 56", "notes": "Rappeler demain",
                        "reason": "other", "outcome": "informed"});
    for body in [&old, &recent] {
        let r = app.admin().post("/api/v1/calls", body).await;
        assert_eq!(r.status(), 201);
    }
    let stats_before = app.admin().get_json("/api/v1/calls/stats").await;
    let purge = || {
        crate::cli::reprise()
            .env("REPRISE_DATABASE_URL", app.database.expose())
            .args(["purge-calls", "--retention-days", "30"])
            .output()
            .expect("runs")
    };
    // Refused while the call centre takes calls.
    let out = purge();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("deactivate it first"));
    let r = app
        .admin()
        .request(reqwest::Method::PUT, "/api/v1/call-centre")
        .json(&json!({"status": "deactivated"}))
        .sent()
        .await;
    assert_eq!(r.status(), 200);
    let out = purge();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["calls_purged"], 1);
    let calls = app.admin().get_json("/api/v1/calls").await;
    let items = calls["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "no call is deleted");
    let (newer, older) = (&items[0], &items[1]);
    assert!(
        older["notes"].is_null() && older["caller_phone"].is_null(),
        "{older}"
    );
    assert_eq!(
        (older["reason"].as_str(), older["duration_seconds"].as_i64()),
        (Some("other"), Some(90))
    );
    assert_eq!(newer["notes"], "Rappeler demain");
    assert_eq!(newer["caller_phone"], "+32470123456");
    let stats_after = app.admin().get_json("/api/v1/calls/stats").await;
    assert_eq!(stats_after, stats_before, "the statistics are kept");
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=call.purge")
        .await;
    assert_eq!(audit["items"][0]["details"]["rows"], 1);
    // Again: nothing left to purge.
    let report: Value = serde_json::from_slice(&purge().stdout).expect("json");
    assert_eq!(report["calls_purged"], 0);
}
