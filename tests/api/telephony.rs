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
    app.agent_with_extension(extension).await.id().to_string()
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
    // The PBX sends the first answer again (a retry): the call stays with the second agent.
    for user in ["201", "202", "201"] {
        ok(form(
            &app,
            &pbx,
            &[&[("event", "answer"), ("user[]", user)][..], &call].concat(),
        )
        .await)
        .await;
    }
    assert_eq!(
        phone_calls(&app, "").await[0]["answered_by"],
        second.as_str()
    );
    // A third agent takes it: a new transfer.
    let third = agent_with_extension(&app, "203").await;
    let transfer = [
        &[("event", "answer"), ("answeringNumber", "203")][..],
        &call,
    ]
    .concat();
    ok(form(&app, &pbx, &transfer).await).await;
    assert_eq!(
        phone_calls(&app, "").await[0]["answered_by"],
        third.as_str()
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

/// Posts one event of the call `call` (its other fields as `fields`).
async fn event(
    app: &TestApp,
    pbx: &str,
    kind: &str,
    call: &[(&str, &str)],
    extra: &[(&str, &str)],
) {
    ok(form(app, pbx, &[&[("event", kind)][..], call, extra].concat()).await).await;
}

#[tokio::test]
async fn a_logged_call_takes_its_time_number_and_duration_from_the_pbx() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let created: Value = app
        .admin()
        .post(
            "/api/v1/users",
            &json!({"name": "Agent 201", "role": "agent", "extension": "201"}),
        )
        .await
        .json()
        .await
        .expect("json");
    let agent = app.user(created["token"].as_str().expect("token"));
    let call = [
        ("callId", "l-1"),
        ("from", "061 23 45 67"),
        ("to", "+3263553000"),
    ];
    event(&app, &pbx, "newCall", &call, &[]).await;
    event(&app, &pbx, "answer", &call, &[("answeringNumber", "201")]).await;
    let pbx_call = phone_calls(&app, "").await[0].clone();
    let id = pbx_call["id"].as_str().expect("id");

    // Logged while the caller is still on the line: the body's time and number give way to
    // the PBX's; the duration comes with the hangup.
    let body = json!({"reason": "appointment_status", "outcome": "informed", "phone_call_id": id,
        "caller_phone": "+3284212121", "received_at": "2022-05-16T08:00:00Z"});
    let r = agent.post("/api/v1/calls", &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let logged: Value = r.json().await.expect("json");
    assert_eq!(logged["caller_phone"], "+3261234567");
    assert_eq!(logged["received_at"], pbx_call["started_at"]);
    assert!(logged["duration_seconds"].is_null());
    assert_eq!(phone_calls(&app, "").await[0]["call_id"], logged["id"]);

    // The PBX call is logged once: again, by anyone, is a 409 that stores nothing.
    let again = agent.post("/api/v1/calls", &body).await;
    assert_problem(again, 409).await;
    let unknown = json!({"reason": "other", "outcome": "informed", "phone_call_id": "nope"});
    let r = agent.post("/api/v1/calls", &unknown).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.expect("json");
    assert!(problem.to_string().contains("phone_call_id"), "{problem}");
    let listed = app.coordinator().await.get_json("/api/v1/calls").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));

    event(&app, &pbx, "hangup", &call, &[("cause", "normalClearing")]).await;
    let listed = app.coordinator().await.get_json("/api/v1/calls").await;
    let duration = &listed["items"][0]["duration_seconds"];
    assert!(duration.as_i64().is_some_and(|d| d >= 0), "{listed}");

    // Logged after the hangup, with a duration typed wrong: the PBX's wins.
    let second = [
        ("callId", "l-2"),
        ("from", "anonymous"),
        ("to", "+3263553000"),
    ];
    event(&app, &pbx, "newCall", &second, &[]).await;
    event(&app, &pbx, "answer", &second, &[("answeringNumber", "201")]).await;
    event(
        &app,
        &pbx,
        "hangup",
        &second,
        &[("cause", "normalClearing")],
    )
    .await;
    let pbx_call = phone_calls(&app, "").await[0].clone();
    assert_eq!(pbx_call["pbx_call_id"], "l-2");
    let body = json!({"reason": "other", "outcome": "informed", "duration_seconds": 3600,
        "phone_call_id": pbx_call["id"]});
    let r = agent.post("/api/v1/calls", &body).await;
    assert_eq!(r.status(), 201);
    let logged: Value = r.json().await.expect("json");
    assert!(
        logged["caller_phone"].is_null(),
        "an anonymous caller has no number"
    );
    assert!(
        logged["duration_seconds"]
            .as_i64()
            .is_some_and(|d| d < 3600),
        "{logged}"
    );
}

#[tokio::test]
async fn the_stats_count_received_answered_and_missed_calls_per_brussels_day() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    agent_with_extension(&app, "201").await;
    let answered = [("callId", "s-1"), ("from", "+3284212121")];
    event(&app, &pbx, "newCall", &answered, &[]).await;
    event(
        &app,
        &pbx,
        "answer",
        &answered,
        &[("answeringNumber", "201")],
    )
    .await;
    event(
        &app,
        &pbx,
        "hangup",
        &answered,
        &[("cause", "normalClearing")],
    )
    .await;
    let missed = [("callId", "s-2"), ("from", "+3284212122")];
    event(&app, &pbx, "newCall", &missed, &[]).await;
    event(&app, &pbx, "hangup", &missed, &[("cause", "cancel")]).await;
    let ringing = [("callId", "s-3"), ("from", "+3284212123")];
    event(&app, &pbx, "newCall", &ringing, &[]).await;
    // Outbound calls are not received calls.
    let out = [
        ("callId", "s-4"),
        ("direction", "out"),
        ("from", "201"),
        ("to", "+3284212122"),
    ];
    event(&app, &pbx, "newCall", &out, &[]).await;
    event(&app, &pbx, "hangup", &out, &[("cause", "noAnswer")]).await;

    let agent = app.agent().await;
    let stats = agent.get_json("/api/v1/phone-calls/stats").await;
    assert_eq!(stats["received"], 3, "{stats}");
    assert_eq!(stats["answered"], 1);
    assert_eq!(stats["missed"], 1);
    assert!(
        stats["median_wait_seconds"]
            .as_f64()
            .is_some_and(|w| w >= 0.0),
        "{stats}"
    );
    let series = stats["series"].as_array().expect("series");
    let sum = |k: &str| {
        series
            .iter()
            .map(|p| p[k].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!((sum("received"), sum("answered"), sum("missed")), (3, 1, 1));
    let start = series[0]["start"].as_str().expect("start");
    assert!(
        start.ends_with("T00:00:00+01:00") || start.ends_with("T00:00:00+02:00"),
        "days start at Brussels midnight: {start}"
    );

    // A window before any call: nothing, and empty days are in the series.
    let stats = agent
        .get_json("/api/v1/phone-calls/stats?from=2022-05-14T00:00:00%2B02:00&to=2022-05-16T00:00:00%2B02:00")
        .await;
    assert_eq!(stats["received"], 0);
    assert!(stats["median_wait_seconds"].is_null());
    let days: Vec<&str> = stats["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(|p| p["start"].as_str())
        .collect();
    assert_eq!(
        days,
        ["2022-05-14T00:00:00+02:00", "2022-05-15T00:00:00+02:00"]
    );
    let hourly = agent
        .get_json("/api/v1/phone-calls/stats?from=2022-05-14T00:00:00Z&to=2022-05-14T03:00:00Z&bucket=hour")
        .await;
    assert_eq!(hourly["series"].as_array().map(Vec::len), Some(3));

    for bad in [
        "?bucket=week",
        "?from=yesterday",
        "?from=2022-05-14T00:00:00Z&to=2040-05-14T00:00:00Z&bucket=hour",
    ] {
        assert_problem(
            agent.get(&format!("/api/v1/phone-calls/stats{bad}")).await,
            422,
        )
        .await;
    }
}

#[tokio::test]
async fn the_board_shows_the_telephone_systems_calls_per_day_beside_the_logged_ones() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    agent_with_extension(&app, "201").await;
    for (id, answered) in [("b-1", true), ("b-2", false), ("b-3", false)] {
        let call = [("callId", id), ("from", "+3284212121")];
        event(&app, &pbx, "newCall", &call, &[]).await;
        if answered {
            event(&app, &pbx, "answer", &call, &[("answeringNumber", "201")]).await;
        }
        event(&app, &pbx, "hangup", &call, &[("cause", "normalClearing")]).await;
    }
    let logged = json!({"reason": "other", "outcome": "informed"});
    assert_eq!(
        app.agent()
            .await
            .post("/api/v1/calls", &logged)
            .await
            .status(),
        201
    );

    let coordinator = app.coordinator().await;
    let web = crate::web::WebClient::sign_in(&app, coordinator.token()).await;
    let html = web.html("/board").await;
    assert!(
        html.contains("3 appels reçus, 1 répondus, 2 manqués"),
        "the period's figures: {html}"
    );
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Brussels)
        .format("%d/%m/%Y")
        .to_string();
    assert!(
        html.contains(&format!(
            "<tr><td>{today}</td><td>1</td><td>3</td><td>1</td><td>2</td></tr>"
        )),
        "a day: logged, received, answered, missed: {html}"
    );
    // The two missed calls of one number: one callback, waiting for minutes.
    assert!(
        html.contains("Rappels : 1 ouverts, le plus ancien attend depuis 0 h 0"),
        "{html}"
    );
    // A period without PBX calls shows no telephone columns.
    let html = web.html("/board?from=2022-05-10&to=2022-05-12").await;
    assert!(!html.contains("phone-summary"));
}

#[tokio::test]
async fn an_admin_lists_and_revokes_pbx_tokens_and_a_revoked_one_is_unknown() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let call = [("callId", "t-1"), ("from", "+3284212121")];
    event(&app, &pbx, "newCall", &call, &[]).await;
    let admin = app.admin();
    let tokens = admin.get_json("/api/v1/pbx-tokens").await;
    let items = tokens["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "PBX");
    assert!(items[0]["revoked_at"].is_null());
    assert!(
        !tokens.to_string().contains(&pbx),
        "the token is never shown again"
    );
    let id = items[0]["id"].as_str().expect("id");

    let r = admin.delete(&format!("/api/v1/pbx-tokens/{id}")).await;
    assert_eq!(r.status(), 204);
    let refused = form(&app, &pbx, &[&[("event", "hangup")][..], &call].concat()).await;
    assert_problem(refused, 404).await;
    assert_problem(admin.delete(&format!("/api/v1/pbx-tokens/{id}")).await, 404).await;
    assert_problem(admin.delete("/api/v1/pbx-tokens/nope").await, 404).await;
    let tokens = admin.get_json("/api/v1/pbx-tokens").await;
    assert!(tokens["items"][0]["revoked_at"].is_string());
    let audit = admin
        .get_json("/api/v1/audit?action=pbx_token.revoke")
        .await;
    assert_eq!(audit["items"][0]["target"], format!("pbx:{id}"));
    // The call it reported stays in the caller log, not ended.
    assert!(phone_calls(&app, "").await[0]["ended_at"].is_null());
}
