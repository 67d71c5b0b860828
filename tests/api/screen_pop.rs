//! The screen pop (issue 20) over HTTP, on both backends: the agents' page's event stream
//! (`GET /agent/events`) shows the call an agent answered, to that agent only, also when the
//! PBX's event reached another instance; a plain refresh shows the same. tests/api/browser.rs
//! watches it arrive in a real page.

use std::time::Duration;

use reqwest::header::COOKIE;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::web::WebClient;

/// Generous: these are not timing assertions (the browser test holds the one-second promise).
const PATIENCE: Duration = Duration::from_secs(10);

/// Posts one event of call `call_id` from the caller's number `061 23 45 67`.
pub async fn pbx_event(app: &TestApp, pbx: &str, call_id: &str, extra: &[(&str, &str)]) {
    let mut fields = vec![
        ("callId", call_id),
        ("direction", "in"),
        ("from", "061234567"),
        ("to", "+3263553000"),
    ];
    fields.extend_from_slice(extra);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let r = app
        .anonymous()
        .post_raw(
            &format!("/api/v1/cti/{pbx}"),
            "application/x-www-form-urlencoded",
            body,
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// Agent `extension` answers call `call_id`.
pub async fn answer(app: &TestApp, pbx: &str, call_id: &str, extension: &str) {
    pbx_event(
        app,
        pbx,
        call_id,
        &[("event", "answer"), ("answeringNumber", extension)],
    )
    .await;
}

/// A patient whose phone is `061 23 45 67`, with a postponed operation; returns its id.
pub async fn caller_patient(app: &TestApp) -> String {
    let (site, service) = app.create_site_and_service().await;
    let patient = app
        .create_patient_with(json!({"last_name": "Dubois", "first_name": "Marie",
            "birth_date": "1950-02-03", "phone": "061 23 45 67"}))
        .await;
    app.create_appointment_with(json!({
        "patient_id": patient, "site": site, "service": service, "kind": "operation",
        "label": "Prothèse de hanche", "scheduled_at": "2030-01-10T08:00:00Z", "priority": 2
    }))
    .await;
    app.postpone(&site, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
        .await;
    patient
}

/// An open event stream, read event by event.
pub struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    pub async fn open(res: reqwest::Response) -> Stream {
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        assert_eq!(res.headers()["cache-control"], "no-store");
        Stream {
            res,
            buf: String::new(),
        }
    }

    /// The next event (`event:` name, `id:`, `data:` as JSON) within `wait`, skipping comments
    /// and the `retry:` line; `None` if none came.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                        .map(str::to_string)
                };
                if let (Some(event), Some(data)) = (field("event"), field("data")) {
                    let data = serde_json::from_str(&data).expect("JSON data");
                    return Some((event, field("id").unwrap_or_default(), data));
                }
            }
            match tokio::time::timeout_at(deadline, self.res.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => panic!("the stream ended"),
                Err(_) => return None,
            }
        }
    }
}

#[tokio::test]
async fn the_agent_who_answered_sees_the_caller_and_nobody_else_does() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    let patient = caller_patient(&app).await;
    let anne = app.agent_with_extension("201").await;
    let bob = app.agent_with_extension("202").await;
    let anne = WebClient::sign_in(&app, anne.token()).await;
    let bob = WebClient::sign_in(&app, bob.token()).await;
    let mut anne_stream = Stream::open(anne.get("/agent/events").await).await;
    let mut bob_stream = Stream::open(bob.get("/agent/events").await).await;

    pbx_event(&app, &pbx, "c-1", &[("event", "newCall")]).await;
    answer(&app, &pbx, "c-1", "201").await;
    let (event, id, data) = anne_stream.next(PATIENCE).await.expect("a pop");
    assert_eq!(event, "pop");
    assert!(id.ends_with(":live"), "{id}");
    assert_eq!(data["phone"], "+3261234567");
    assert_eq!(data["patient_id"], patient.as_str());
    assert_eq!(data["patient_label"], "Patient : Dubois, Marie");
    assert_eq!(data["duration_minutes"], "");
    let html = data["html"].as_str().expect("html");
    assert!(html.contains("Appel en cours") && html.contains("+32 61 23 45 67"));
    assert!(html.contains("Dubois, Marie") && html.contains("Prothèse de hanche"));
    assert!(
        html.contains("Reporté"),
        "the postponed appointment: {html}"
    );
    let phone_call_id = data["phone_call_id"].as_str().expect("id").to_string();
    assert!(id.starts_with(&phone_call_id));

    // Another agent's page gets nothing but keep-alives.
    assert!(bob_stream.next(Duration::from_millis(1500)).await.is_none());

    pbx_event(
        &app,
        &pbx,
        "c-1",
        &[("event", "hangup"), ("cause", "normalClearing")],
    )
    .await;
    let (event, id, data) = anne_stream.next(PATIENCE).await.expect("the hangup");
    assert_eq!(event, "pop");
    assert_eq!(id, format!("{phone_call_id}:ended"));
    assert_eq!(data["ended"], true);
    assert!(data["duration_minutes"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert!(data["html"]
        .as_str()
        .expect("html")
        .contains("Appel terminé"));
    assert!(bob_stream.next(Duration::from_millis(700)).await.is_none());

    // Without script: a refresh shows the current call, the form filled.
    let page = anne.html("/agent").await;
    assert!(page.contains(&format!(r#"data-since="{phone_call_id}:ended""#)));
    assert!(page.contains(&format!(
        r#"name="phone_call_id" id="phone_call_id" value="{phone_call_id}""#
    )));
    assert!(page.contains(&format!(
        r#"name="patient_id" id="patient_id" value="{patient}""#
    )));
    assert!(page.contains(r#"value="+3261234567" data-popped="+3261234567""#));
    assert!(page.contains("Appel terminé") && page.contains("Prothèse de hanche"));
    // The form as the page filled it logs the call at the time it came in.
    let csrf = crate::web::csrf_in(&page);
    let key_at = page.find(r#"name="key" value=""#).expect("key") + r#"name="key" value=""#.len();
    let key = &page[key_at..key_at + 36];
    let received_at = {
        let at = page.find(r#"id="received_at" value=""#).expect("time") + 24;
        page[at..at + page[at..].find('"').expect("end")].to_string()
    };
    let sent = anne
        .post_raw(
            "/agent/calls",
            &[
                ("csrf", csrf.as_str()),
                ("key", key),
                ("patient_id", &patient),
                ("phone_call_id", &phone_call_id),
                ("received_at", &received_at),
                ("reason", "other"),
                ("outcome", "informed"),
                ("caller_phone", "+3261234567"),
                ("duration_minutes", "1,5"),
            ],
        )
        .await;
    assert_eq!(sent.status(), 303);
    let calls = app.admin().get_json("/api/v1/calls").await;
    let logged = &calls["items"][0];
    assert_eq!(logged["patient_id"], patient.as_str());
    let phone_calls = app.admin().get_json("/api/v1/phone-calls").await;
    assert_eq!(logged["received_at"], phone_calls["items"][0]["started_at"]);
    // The form logs the PBX's call: linked, with the PBX's talk time over the typed 1,5 min.
    assert_eq!(phone_calls["items"][0]["call_id"], logged["id"]);
    assert!(
        logged["duration_seconds"].as_i64().is_some_and(|d| d < 90),
        "{logged}"
    );
    let others = bob.html("/agent").await;
    assert!(others.contains(r#"data-since="none" hidden"#));
    assert!(!others.contains("+32 61 23 45 67") && !others.contains("Dubois"));

    // Each pop is a disclosure of the patient, audited with ids only.
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=phone_call.pop")
        .await;
    let entries = audit["items"].as_array().expect("items");
    assert_eq!(entries.len(), 3, "answer, hangup, refresh: {entries:?}");
    for e in entries {
        assert_eq!(e["target"], format!("phone_call:{phone_call_id}"));
        let details = e["details"].to_string();
        assert!(details.contains(&patient) && !details.contains("3261234567"));
    }
}

#[tokio::test]
async fn a_stream_opened_on_a_page_already_showing_the_call_sends_it_not_again() {
    let app = spawn_app().await;
    let pbx = app.pbx_token().await;
    caller_patient(&app).await;
    let agent = app.agent_with_extension("201").await;
    let anne = WebClient::sign_in(&app, agent.token()).await;
    answer(&app, &pbx, "c-2", "201").await;
    let page = anne.html("/agent").await;
    let at = page.find(r#"data-since=""#).expect("the panel") + r#"data-since=""#.len();
    let since = page[at..at + page[at..].find('"').expect("end")].to_string();
    assert!(since.ends_with(":live"), "{since}");
    let mut stream = Stream::open(anne.get(&format!("/agent/events?since={since}")).await).await;
    assert!(stream.next(Duration::from_millis(1500)).await.is_none());
    // A stream that says it shows nothing is told at once.
    let mut fresh = Stream::open(anne.get("/agent/events").await).await;
    let (_, id, _) = fresh.next(PATIENCE).await.expect("the current call");
    assert_eq!(id, since);
}

/// Several instances on one database: the PBX posts to one, the agent's page listens on the
/// other, which finds the call by reading the database.
#[tokio::test]
async fn the_pop_reaches_a_page_open_on_another_instance() {
    let app = spawn_app().await;
    let (other_url, _outbox) = app.second_instance().await;
    let pbx = app.pbx_token().await;
    let patient = caller_patient(&app).await;
    let agent = app.agent_with_extension("201").await;
    let anne = WebClient::sign_in(&app, agent.token()).await;
    let res = reqwest::Client::new()
        .get(format!("{other_url}/agent/events"))
        .header(COOKIE, &anne.cookie)
        .send()
        .await
        .expect("stream");
    let mut stream = Stream::open(res).await;
    answer(&app, &pbx, "c-3", "201").await;
    let (event, _, data) = stream.next(PATIENCE).await.expect("a pop");
    assert_eq!(event, "pop");
    assert_eq!(data["patient_id"], patient.as_str());
}

#[tokio::test]
async fn the_stream_is_for_signed_in_call_takers_only() {
    let app = spawn_app().await;
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/agent/events"))
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/sign-in");
    let (_, service) = app.create_site_and_service().await;
    let secretary = app.secretary(&[&service]).await;
    let web = WebClient::sign_in(&app, secretary.token()).await;
    assert_eq!(web.get("/agent/events").await.status(), 403);
    // A `since` of any shape is only compared, never trusted.
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    let long = "x".repeat(5000);
    for since in ["", "%00", "none", long.as_str()] {
        let res = web.get(&format!("/agent/events?since={since}")).await;
        assert!(
            [200, 400, 422].contains(&res.status().as_u16()),
            "{since}: {}",
            res.status()
        );
    }
}
