//! The telephone system's events and the caller log (CONTRACT §4.9), as a PBX sends them.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

/// Posts one event as the generic CTI format's form (`user[]` repeated).
pub async fn form(app: &TestApp, token: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    app.anonymous()
        .post_raw(
            &format!("/api/v1/cti/{token}"),
            "application/x-www-form-urlencoded",
            body,
        )
        .await
}

pub async fn ok(r: reqwest::Response) {
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

async fn phone_calls(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .coordinator()
        .await
        .get_json(&format!("/api/v1/phone-calls{query}"))
        .await;
    page["items"].as_array().expect("items").clone()
}

async fn agent_with_extension(app: &TestApp, extension: &str) -> String {
    let r = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": format!("Agent {extension}"), "role": "agent", "extension": extension}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    created["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn an_answered_call_names_its_agent_and_the_patient_who_called() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let agent = agent_with_extension(&app, "201").await;
    let patient = app
        .create_patient_with(json!({"last_name": "Dubois", "first_name": "Marie",
            "birth_date": "1950-02-03", "phone": "061 23 45 67"}))
        .await;
    let call = [
        ("callId", "c-1"),
        ("direction", "in"),
        ("from", "061234567"),
        ("to", "+3263553000"),
    ];
    ok(form(&app, &pbx, &[&[("event", "newCall")][..], &call].concat()).await).await;
    ok(form(
        &app,
        &pbx,
        &[
            &[("event", "answer"), ("answeringNumber", "201")][..],
            &call,
        ]
        .concat(),
    )
    .await)
    .await;
    ok(form(
        &app,
        &pbx,
        &[
            &[("event", "hangup"), ("cause", "normalClearing")][..],
            &call,
        ]
        .concat(),
    )
    .await)
    .await;
    let calls = phone_calls(&app, "").await;
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c["pbx_call_id"], "c-1");
    assert_eq!(c["from"], "+3261234567", "the caller's number in E.164");
    assert_eq!(c["direction"], "in");
    assert_eq!(c["missed"], false);
    assert_eq!(c["answered_by"], agent.as_str());
    assert_eq!(c["cause"], "normalClearing");
    assert_eq!(c["patient_ids"], json!([patient]));
    assert!(c["answered_at"].is_string() && c["ended_at"].is_string());
    assert!(c["call_id"].is_null());
}

#[tokio::test]
async fn a_call_nobody_answered_is_missed_and_filtered_so() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let missed = [
        ("callId", "m-1"),
        ("from", "+3284212121"),
        ("to", "+3263553000"),
    ];
    ok(form(&app, &pbx, &[&[("event", "newCall")][..], &missed].concat()).await).await;
    ok(form(
        &app,
        &pbx,
        &[&[("event", "hangup"), ("cause", "cancel")][..], &missed].concat(),
    )
    .await)
    .await;
    // An outbound call that nobody answered is not a missed call.
    let out = [
        ("callId", "o-1"),
        ("direction", "out"),
        ("from", "201"),
        ("to", "+3284212121"),
    ];
    ok(form(&app, &pbx, &[&[("event", "newCall")][..], &out].concat()).await).await;
    ok(form(
        &app,
        &pbx,
        &[&[("event", "hangup"), ("cause", "noAnswer")][..], &out].concat(),
    )
    .await)
    .await;
    // A call still ringing is not missed yet.
    ok(form(
        &app,
        &pbx,
        &[
            ("event", "newCall"),
            ("callId", "r-1"),
            ("from", "+3284212122"),
        ],
    )
    .await)
    .await;
    let only_missed = phone_calls(&app, "?missed=true").await;
    assert_eq!(only_missed.len(), 1);
    assert_eq!(only_missed[0]["pbx_call_id"], "m-1");
    assert_eq!(only_missed[0]["missed"], true);
    let others: Vec<Value> = phone_calls(&app, "?missed=false").await;
    let mut ids: Vec<&str> = others
        .iter()
        .map(|c| c["pbx_call_id"].as_str().unwrap_or(""))
        .collect();
    ids.sort();
    assert_eq!(ids, ["o-1", "r-1"]);
}

#[tokio::test]
async fn events_repeated_and_out_of_order_make_one_call_as_json_too() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    agent_with_extension(&app, "305").await;
    let post = |body: Value| {
        let path = format!("/api/v1/cti/{pbx}");
        let app = &app;
        async move { app.anonymous().post(&path, &body).await }
    };
    let base =
        json!({"callId": "x-9", "direction": "in", "from": "+3261000001", "to": "+3263553000"});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        b
    };
    // The hangup arrives first, then the answer, then the new call, each twice.
    for _ in 0..2 {
        ok(post(with(json!({"event": "hangup", "cause": "normalClearing"}))).await).await;
    }
    for _ in 0..2 {
        ok(post(with(json!({"event": "answer", "user": ["305"]}))).await).await;
        ok(post(with(json!({"event": "newCall"}))).await).await;
    }
    let calls = phone_calls(&app, "").await;
    assert_eq!(calls.len(), 1, "one row per PBX call: {calls:?}");
    let first = calls[0].clone();
    assert_eq!(first["missed"], false, "answered, whatever the order");
    assert!(first["answered_by"].is_string());
    ok(post(with(json!({"event": "hangup", "cause": "busy"}))).await).await;
    assert_eq!(
        phone_calls(&app, "").await,
        vec![first],
        "a repeated event changes nothing"
    );
}

#[tokio::test]
async fn a_transferred_call_names_the_agent_who_has_it_now() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    agent_with_extension(&app, "201").await;
    let second = agent_with_extension(&app, "202").await;
    let call = [
        ("callId", "t-1"),
        ("from", "+3261000002"),
        ("to", "+3263553000"),
    ];
    ok(form(&app, &pbx, &[&[("event", "newCall")][..], &call].concat()).await).await;
    ok(form(
        &app,
        &pbx,
        &[&[("event", "answer"), ("user[]", "201")][..], &call].concat(),
    )
    .await)
    .await;
    let answered_at = phone_calls(&app, "").await[0]["answered_at"].clone();
    ok(form(
        &app,
        &pbx,
        &[&[("event", "answer"), ("user[]", "202")][..], &call].concat(),
    )
    .await)
    .await;
    let c = &phone_calls(&app, "").await[0];
    assert_eq!(c["answered_by"], second.as_str());
    assert_eq!(
        c["answered_at"], answered_at,
        "answered when first answered"
    );
}

#[tokio::test]
async fn anonymous_callers_stay_anonymous_and_a_shared_phone_names_every_patient() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let mut family = Vec::new();
    for first in ["Anne", "Louis"] {
        family.push(
            app.create_patient_with(json!({"last_name": "Lambert", "first_name": first,
                "birth_date": "1948-06-01", "phone": "+32 63 21 00 00"}))
                .await,
        );
    }
    family.sort();
    ok(form(
        &app,
        &pbx,
        &[
            ("event", "newCall"),
            ("callId", "a-1"),
            ("from", "anonymous"),
        ],
    )
    .await)
    .await;
    ok(form(
        &app,
        &pbx,
        &[
            ("event", "newCall"),
            ("callId", "f-1"),
            ("from", "063210000"),
        ],
    )
    .await)
    .await;
    let calls = phone_calls(&app, "").await;
    let by_id = |id: &str| {
        calls
            .iter()
            .find(|c| c["pbx_call_id"] == id)
            .cloned()
            .expect("call")
    };
    assert_eq!(by_id("a-1")["from"], "anonymous");
    assert_eq!(by_id("a-1")["patient_ids"], json!([]));
    let mut named: Vec<String> =
        serde_json::from_value(by_id("f-1")["patient_ids"].clone()).expect("ids");
    named.sort();
    assert_eq!(named, family);
}

#[tokio::test]
async fn an_unknown_token_is_404_and_a_bad_event_changes_nothing() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let r = form(&app, "rp_0000", &[("event", "newCall"), ("callId", "u-1")]).await;
    assert_problem(r, 404).await;
    // An unknown token with a bad event is still an unknown token.
    assert_problem(form(&app, "rp_0000", &[("event", "ring")]).await, 404).await;
    let bad = assert_problem(
        form(
            &app,
            &pbx,
            &[("event", "ring"), ("callId", ""), ("cause", "lost")],
        )
        .await,
        422,
    )
    .await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["event", "callId", "cause"]);
    let r = app
        .anonymous()
        .post_raw(&format!("/api/v1/cti/{pbx}"), "text/plain", "event=newCall")
        .await;
    assert_problem(r, 415).await;
    let r = app
        .anonymous()
        .post_raw(
            &format!("/api/v1/cti/{pbx}"),
            "application/json",
            "{not json",
        )
        .await;
    assert_problem(r, 400).await;
    assert!(phone_calls(&app, "").await.is_empty());
    // The PBX's token opens nothing else.
    let r = app.user(&pbx).get("/api/v1/phone-calls").await;
    assert_problem(r, 401).await;
}

#[tokio::test]
async fn the_command_line_makes_a_pbx_token_that_works() {
    let app = spawn_app().await;
    let out = crate::cli::reprise()
        .env("REPRISE_DATABASE_URL", app.database.expose())
        .args(["cti-token", "create", "--name", "Asterisk Arlon"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    ok(form(
        &app,
        &token,
        &[
            ("event", "newCall"),
            ("callId", "cli-1"),
            ("from", "+3261000003"),
        ],
    )
    .await)
    .await;
    assert_eq!(phone_calls(&app, "").await.len(), 1);
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=pbx_token.create")
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
    let logs = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !logs.contains(&token),
        "the token is printed on stdout only"
    );
}

#[tokio::test]
async fn unknown_pbx_tokens_spend_the_anonymous_budget_and_a_known_one_does_not() {
    // 60 a minute: a burst of 10.
    let app = crate::helpers::spawn_app_with(|s| s.rate_anonymous = Some(60)).await;
    let pbx = app.pbx_token().await;
    for i in 0..40 {
        let call_id = format!("k-{i}");
        ok(form(&app, &pbx, &[("event", "newCall"), ("callId", &call_id)]).await).await;
    }
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(
            form(&app, "rp_made_up", &[("event", "newCall"), ("callId", "z")])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses[0], 404);
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| [404, 429].contains(s)));
}

#[tokio::test]
async fn an_extension_names_one_account_only() {
    let app = spawn_app().await;
    agent_with_extension(&app, "201").await;
    let r = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "Other", "role": "agent", "extension": "201"}),
        )
        .await;
    assert_problem(r, 409).await;
    let r = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "Other", "role": "agent", "extension": "2 01"}),
        )
        .await;
    assert_problem(r, 422).await;
}
