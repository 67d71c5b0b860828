//! Callbacks (CONTRACT §4.9): missed calls and agents' promises open them, agents claim them
//! (one at a time) and record attempts until the patient is reached or unreachable.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, TestApp, User};
use crate::telephony::{form, ok};
use crate::web::audit_actions;

/// Sends the PBX's event `event` (its fields) about `call` (the call's fields); expects 200.
async fn send(app: &TestApp, pbx: &str, call: &[(&str, &str)], event: &[(&str, &str)]) {
    ok(form(app, pbx, &[event, call].concat()).await).await;
}

/// A missed inbound call `call_id` from `from`: rung, then hung up before any answer.
async fn missed(app: &TestApp, pbx: &str, call_id: &str, from: &str) {
    let call = [("callId", call_id), ("direction", "in"), ("from", from)];
    send(app, pbx, &call, &[("event", "newCall")]).await;
    send(app, pbx, &call, &[("event", "hangup"), ("cause", "cancel")]).await;
}

async fn callbacks(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .admin()
        .get_json(&format!("/api/v1/callbacks{query}"))
        .await;
    page["items"].as_array().expect("items").clone()
}

async fn json_of(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.expect("json");
    assert_eq!(got, status, "{body}");
    body
}

fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// Moves a callback's claim `minutes` into the past, as time would.
async fn age_claim(app: &TestApp, id: &str, minutes: i64) {
    let id = id.to_string();
    app.state
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use reprise::db::schema::callbacks::dsl as c;
            diesel::update(c::callbacks.filter(c::id.eq(id)))
                .set(c::claimed_at.eq(reprise::domain::now() - chrono::Duration::minutes(minutes)))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("claim aged");
}

async fn attempt(who: &User, id: &str, outcome: &str) -> reqwest::Response {
    who.post(
        &format!("/api/v1/callbacks/{id}/attempts"),
        &json!({"outcome": outcome}),
    )
    .await
}

#[tokio::test]
async fn a_patient_who_calls_five_times_has_one_callback_with_five_missed_calls() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let patient = app
        .create_patient_with(json!({"last_name": "Dubois", "first_name": "Marie",
            "birth_date": "1950-02-03", "phone": "061 23 45 67"}))
        .await;
    for i in 0..5 {
        missed(&app, &pbx, &format!("five-{i}"), "061 23 45 67").await;
    }
    // A hangup repeated changes nothing.
    missed(&app, &pbx, "five-0", "061 23 45 67").await;
    let open = callbacks(&app, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let c = &open[0];
    assert_eq!(c["phone"], "+3261234567");
    assert_eq!(c["patient_id"], patient.as_str());
    assert_eq!(c["source"], "missed_call");
    assert_eq!(c["status"], "open");
    assert_eq!(c["attempts"], 0);
    assert_eq!(c["missed_calls"], 5);
    for field in ["claimed_by", "claimed_at", "done_at"] {
        assert!(c[field].is_null(), "{field}");
    }
    assert!(instant(&c["due_at"]) <= chrono::Utc::now());
    // Its missed calls all point at it.
    let page = app
        .admin()
        .get_json("/api/v1/phone-calls?missed=true")
        .await;
    let linked = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["callback_id"] == c["id"])
        .count();
    assert_eq!(linked, 5);
}

#[tokio::test]
async fn missed_calls_of_one_number_at_once_open_one_callback() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let hangups = (0..8).map(|i| {
        let (app, pbx) = (&app, &pbx);
        async move {
            form(
                app,
                pbx,
                &[
                    ("event", "hangup"),
                    ("callId", &format!("race-{i}")),
                    ("from", "+3284212121"),
                    ("cause", "cancel"),
                ],
            )
            .await
        }
    });
    for r in futures_util::future::join_all(hangups).await {
        ok(r).await;
    }
    let open = callbacks(&app, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["missed_calls"], 8);
}

#[tokio::test]
async fn anonymous_answered_and_outbound_calls_open_no_callback() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    missed(&app, &pbx, "anon", "anonymous").await;
    // Answered.
    let call = [("callId", "ans"), ("from", "+3261000001")];
    send(&app, &pbx, &call, &[("event", "newCall")]).await;
    send(
        &app,
        &pbx,
        &call,
        &[("event", "answer"), ("answeringNumber", "201")],
    )
    .await;
    send(
        &app,
        &pbx,
        &call,
        &[("event", "hangup"), ("cause", "normalClearing")],
    )
    .await;
    // Answered, but the hangup came first: the callback it opened goes with the answer.
    let late = [("callId", "late"), ("from", "+3261000002")];
    send(
        &app,
        &pbx,
        &late,
        &[("event", "hangup"), ("cause", "normalClearing")],
    )
    .await;
    let known = callbacks(&app, "").await;
    assert_eq!(known.len(), 1, "missed, as far as known");
    send(
        &app,
        &pbx,
        &late,
        &[("event", "answer"), ("user[]", "Anne")],
    )
    .await;
    // Outbound, unanswered.
    let out = [("callId", "out"), ("direction", "out"), ("from", "201")];
    send(
        &app,
        &pbx,
        &out,
        &[("event", "hangup"), ("cause", "noAnswer")],
    )
    .await;
    assert_eq!(callbacks(&app, "").await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_call_logged_with_callback_scheduled_opens_a_requested_callback_due_when_said() {
    let app = spawn_app().await;
    let agent = app.agent().await;
    let due = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT09:30:00+01:00")
        .to_string();
    let body = json!({"reason": "reschedule_request", "outcome": "callback_scheduled",
        "caller_phone": "0470 12 34 56", "callback_due_at": due});
    let logged = agent
        .request(reqwest::Method::POST, "/api/v1/calls")
        .header("Idempotency-Key", "promise-1")
        .json(&body)
        .send()
        .await
        .expect("sent");
    let call = json_of(logged, 201).await;
    // The same request again: the same call, and no second callback.
    let replay = agent
        .request(reqwest::Method::POST, "/api/v1/calls")
        .header("Idempotency-Key", "promise-1")
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(json_of(replay, 200).await["id"], call["id"]);
    let open = callbacks(&app, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let c = &open[0];
    assert_eq!(c["source"], "requested");
    assert_eq!(c["phone"], "+32470123456");
    assert_eq!(c["call_id"], call["id"]);
    assert_eq!(instant(&c["due_at"]), instant(&json!(due)));
    assert_eq!(audit_actions(&app, "callback.open").await.len(), 1);

    // Without a number to call: 422 on caller_phone, nothing stored.
    let no_phone = agent
        .post(
            "/api/v1/calls",
            &json!({"reason": "other", "outcome": "callback_scheduled"}),
        )
        .await;
    let problem = assert_problem(no_phone, 422).await;
    assert_eq!(problem["errors"][0]["field"], "caller_phone");
    // A time for another outcome, or a bad one: 422 on callback_due_at.
    for body in [
        json!({"reason": "other", "outcome": "informed", "callback_due_at": due}),
        json!({"reason": "other", "outcome": "callback_scheduled", "caller_phone": "0470 12 34 57",
               "callback_due_at": "demain"}),
    ] {
        let problem = assert_problem(agent.post("/api/v1/calls", &body).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], "callback_due_at");
    }
    // The patient's phone when the caller's is not given; now when no time is.
    let patient = app
        .create_patient_with(json!({"last_name": "Lambert", "first_name": "Jean",
            "birth_date": "1961-01-01", "phone": "061 55 44 33"}))
        .await;
    let r = agent
        .post(
            "/api/v1/calls",
            &json!({"reason": "other", "outcome": "callback_scheduled", "patient_id": patient}),
        )
        .await;
    json_of(r, 201).await;
    let mine = callbacks(&app, "")
        .await
        .into_iter()
        .find(|c| c["phone"] == "+3261554433")
        .expect("the patient's callback");
    assert_eq!(mine["patient_id"], patient.as_str());
    assert!(instant(&mine["due_at"]) <= chrono::Utc::now());
    assert_eq!(callbacks(&app, "").await.len(), 2);
}

/// An application with an open callback and two agents, Anne and Bert.
async fn two_agents_and_a_callback() -> (TestApp, String, User, User) {
    let app = spawn_app().await;
    let id = app.open_callback().await;
    let (anne, bert) = (app.agent().await, app.agent().await);
    (app, id, anne, bert)
}

#[tokio::test]
async fn two_agents_claiming_one_callback_at_once_one_wins() {
    let (app, id, anne, bert) = two_agents_and_a_callback().await;
    let path = format!("/api/v1/callbacks/{id}/claim");
    let empty = json!({});
    let (a, b) = tokio::join!(anne.post(&path, &empty), bert.post(&path, &empty));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let (winner, loser) = if a.status() == 200 {
        (&anne, &bert)
    } else {
        (&bert, &anne)
    };
    let refused = if a.status() == 200 { b } else { a };
    assert_problem(refused, 409).await;
    // The winner may claim again; the other still may not, nor record an attempt.
    let again = json_of(winner.post(&path, &json!({})).await, 200).await;
    assert_eq!(again["claimed_by"], winner.id());
    assert_eq!(again["status"], "claimed");
    assert_problem(loser.post(&path, &json!({})).await, 409).await;
    assert_problem(attempt(loser, &id, "reached").await, 409).await;
    assert_eq!(callbacks(&app, "?status=claimed").await.len(), 1);
    assert_eq!(callbacks(&app, "?status=open").await.len(), 0);
}

#[tokio::test]
async fn a_claim_lapses_after_fifteen_minutes() {
    let (app, id, anne, bert) = two_agents_and_a_callback().await;
    let path = format!("/api/v1/callbacks/{id}/claim");
    json_of(anne.post(&path, &json!({})).await, 200).await;
    age_claim(&app, &id, 14).await;
    assert_problem(bert.post(&path, &json!({})).await, 409).await;
    age_claim(&app, &id, 16).await;
    let open = callbacks(&app, "?status=open").await;
    assert_eq!(open.len(), 1, "a lapsed claim shows as open");
    assert_eq!(open[0]["status"], "open");
    let taken = json_of(bert.post(&path, &json!({})).await, 200).await;
    assert_eq!(taken["claimed_by"], bert.id());
}

#[tokio::test]
async fn attempts_bring_a_callback_back_later_and_reached_closes_it() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    missed(&app, &pbx, "m-1", "+3261777777").await;
    let id = callbacks(&app, "").await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let agent = app.agent().await;
    // Free: the attempt takes the claim itself.
    let before = chrono::Utc::now();
    let first = json_of(attempt(&agent, &id, "no_answer").await, 201).await;
    assert_eq!(first["outcome"], "no_answer");
    assert_eq!(first["agent"], agent.id());
    let c = &first["callback"];
    assert_eq!(c["status"], "open");
    assert_eq!(c["attempts"], 1);
    assert!(c["claimed_by"].is_null(), "released");
    let due = instant(&c["due_at"]);
    assert!(due >= before + chrono::Duration::minutes(30));
    assert!(due <= chrono::Utc::now() + chrono::Duration::minutes(30));
    let second = json_of(attempt(&agent, &id, "voicemail").await, 201).await;
    assert_eq!(second["callback"]["attempts"], 2);
    assert!(instant(&second["callback"]["due_at"]) >= before + chrono::Duration::hours(2));
    let reached = json_of(
        agent
            .post(
                &format!("/api/v1/callbacks/{id}/attempts"),
                &json!({"outcome": "reached", "note": "Rendez-vous confirmé"}),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(reached["note"], "Rendez-vous confirmé");
    let c = &reached["callback"];
    assert_eq!(c["status"], "done");
    assert_eq!(c["attempts"], 2);
    assert!(c["done_at"].is_string() && c["reached_at"].is_string());
    assert_eq!(callbacks(&app, "?status=done").await.len(), 1);
    // Closed: no claim, no attempt.
    assert_problem(attempt(&agent, &id, "no_answer").await, 409).await;
    assert_problem(
        agent
            .post(&format!("/api/v1/callbacks/{id}/claim"), &json!({}))
            .await,
        409,
    )
    .await;
    // A new missed call of the same number opens a new callback.
    missed(&app, &pbx, "m-2", "+3261777777").await;
    let open = callbacks(&app, "?status=open").await;
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["id"], id.as_str());
    assert_eq!(open[0]["missed_calls"], 1);
    // Everything audited.
    assert_eq!(audit_actions(&app, "callback.attempt").await.len(), 3);
    assert!(!audit_actions(&app, "callback.list").await.is_empty());
    // The figures of /metrics.
    let metrics = app.anonymous().text("/metrics").await;
    assert!(metrics.contains("reprise_callbacks_open 1"), "{metrics}");
    assert!(metrics.contains("reprise_callbacks_oldest_open_age_seconds"));
    assert!(metrics.contains("reprise_callbacks_missed_to_reached_median_seconds"));
}

#[tokio::test]
async fn the_fifth_failed_attempt_makes_a_callback_unreachable_and_the_number_is_configurable() {
    let app = spawn_app().await;
    let id = app.open_callback().await;
    let agent = app.agent().await;
    for n in 1..=5 {
        let r = json_of(attempt(&agent, &id, "no_answer").await, 201).await;
        assert_eq!(r["callback"]["attempts"], n);
        let expected = if n < 5 { "open" } else { "unreachable" };
        assert_eq!(r["callback"]["status"], expected, "after {n}");
    }
    assert_eq!(callbacks(&app, "?status=unreachable").await.len(), 1);
    assert_problem(attempt(&agent, &id, "reached").await, 409).await;

    let app = spawn_app_with(|s| s.callback_attempts = 2).await;
    let id = app.open_callback().await;
    let agent = app.agent().await;
    json_of(attempt(&agent, &id, "voicemail").await, 201).await;
    let last = json_of(attempt(&agent, &id, "voicemail").await, 201).await;
    assert_eq!(last["callback"]["status"], "unreachable");
}

#[tokio::test]
async fn wrong_number_closes_and_hostile_input_is_refused() {
    let app = spawn_app().await;
    let id = app.open_callback().await;
    let agent = app.agent().await;
    let path = format!("/api/v1/callbacks/{id}/attempts");
    for (body, field) in [
        (json!({"outcome": "busy"}), "outcome"),
        (
            json!({"outcome": "no_answer", "note": "x".repeat(2001)}),
            "note",
        ),
    ] {
        let problem = assert_problem(agent.post(&path, &body).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    assert_problem(
        agent
            .post(&path, &json!({"outcome": "reached", "extra": 1}))
            .await,
        422,
    )
    .await;
    for unknown in [
        "00000000-0000-0000-0000-000000000000",
        "not-an-id",
        "%27%3B",
    ] {
        assert_problem(
            agent
                .post(&format!("/api/v1/callbacks/{unknown}/claim"), &json!({}))
                .await,
            404,
        )
        .await;
        assert_problem(attempt(&agent, unknown, "reached").await, 404).await;
    }
    for query in ["?status=lost", "?cursor=nope", "?limit=0"] {
        assert_problem(agent.get(&format!("/api/v1/callbacks{query}")).await, 422).await;
    }
    // Nothing changed by the refusals.
    let c = callbacks(&app, "").await;
    assert_eq!(c[0]["attempts"], 0);
    assert_eq!(c[0]["status"], "open");
    let done = json_of(attempt(&agent, &id, "wrong_number").await, 201).await;
    assert_eq!(done["callback"]["status"], "done");
    assert!(done["callback"]["reached_at"].is_null());
}

#[tokio::test]
async fn the_worklist_is_oldest_due_first_across_pages() {
    let app = spawn_app().await;
    let agent = app.agent().await;
    let now = chrono::Utc::now();
    for hours in [5, 1, 3, 2, 4] {
        let due = (now + chrono::Duration::hours(hours)).to_rfc3339();
        let r = agent
            .post(
                "/api/v1/calls",
                &json!({"reason": "other", "outcome": "callback_scheduled",
                        "caller_phone": TestApp::unique_phone(), "callback_due_at": due}),
            )
            .await;
        json_of(r, 201).await;
    }
    let first = app.admin().get_json("/api/v1/callbacks?limit=2").await;
    let cursor = first["next_cursor"].as_str().expect("more").to_string();
    let rest = app
        .admin()
        .get_json(&format!("/api/v1/callbacks?limit=10&cursor={cursor}"))
        .await;
    assert!(rest["next_cursor"].is_null());
    let dues: Vec<_> = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .chain(rest["items"].as_array().expect("items"))
        .map(|c| instant(&c["due_at"]))
        .collect();
    assert_eq!(dues.len(), 5);
    assert!(dues.windows(2).all(|w| w[0] < w[1]), "{dues:?}");
}

#[tokio::test]
async fn an_agent_takes_a_callback_and_records_its_outcome_on_the_page() {
    let app = spawn_app().await;
    let id = app.open_callback().await;
    let agent = app.agent().await;
    let web = crate::web::WebClient::sign_in(&app, agent.token()).await;
    let html = web.html("/agent").await;
    assert!(
        html.contains(r#"href="/callbacks""#),
        "linked from the agents' page"
    );
    let html = web.html("/callbacks").await;
    assert!(
        html.contains("Rappels à faire") && html.contains("Prendre"),
        "{html}"
    );
    assert!(html.contains(&format!("cb-{id}")));
    // Taking it: the outcome buttons appear, each with its access key.
    let r = web.post("/callbacks/claim", &[("id", &id)]).await;
    assert_eq!(r.status(), 303);
    let html = web.html("/callbacks?done=claimed").await;
    assert!(html.contains("Pris par vous"), "{html}");
    for (outcome, key) in [
        ("reached", "j"),
        ("no_answer", "p"),
        ("voicemail", "m"),
        ("wrong_number", "f"),
    ] {
        assert!(
            html.contains(&format!(r#"value="{outcome}" accesskey="{key}""#)),
            "{outcome}"
        );
    }
    // Another agent sees it taken, and may not take it.
    let other = app.agent().await;
    let other_web = crate::web::WebClient::sign_in(&app, other.token()).await;
    assert!(other_web
        .html("/callbacks")
        .await
        .contains("Pris par un autre agent"));
    assert_eq!(
        other_web
            .post("/callbacks/claim", &[("id", &id)])
            .await
            .status(),
        409
    );
    // A form without its secret changes nothing.
    let forged = web
        .post_raw("/callbacks/attempt", &[("id", &id), ("outcome", "reached")])
        .await;
    assert_eq!(forged.status(), 403);
    let r = web
        .post(
            "/callbacks/attempt",
            &[("id", &id), ("outcome", "reached"), ("note", "")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(callbacks(&app, "?status=done").await.len(), 1);
    assert!(web
        .html("/callbacks")
        .await
        .contains("Aucun rappel en attente."));
}
