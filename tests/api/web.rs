//! The web pages over HTTP (CONTRACT §5), on both backends: sessions, CSRF, access agreeing
//! with the API, and each page's forms doing what the API does. tests/api/browser.rs drives
//! the same pages in a real browser.

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// A person in a browser, minus the browser: the session cookie and the forms' secret.
pub struct WebClient {
    client: reqwest::Client,
    base: String,
    pub cookie: String,
    pub csrf: String,
}

/// The value of `name="csrf"` in a page.
pub fn csrf_in(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with its secret");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end of value")].to_string()
}

fn cookie_value(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (n, value) = pair.split_once('=')?;
        (n == name).then(|| (value.to_string(), v.to_string()))
    })
}

impl WebClient {
    fn plain() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client")
    }

    /// Signs in through the sign-in form; panics unless it works.
    pub async fn sign_in(app: &TestApp, token: &str) -> WebClient {
        Self::try_sign_in(app, token, "fr")
            .await
            .expect("signed in")
    }

    /// The sign-in form sent with `token`: the client, or the refusal.
    pub async fn try_sign_in(
        app: &TestApp,
        token: &str,
        lang: &str,
    ) -> Result<WebClient, reqwest::Response> {
        Self::try_sign_in_with(app, token, lang, Self::plain()).await
    }

    /// Signs in with a browser of the test's own (headers it sends on every request).
    pub async fn sign_in_as(app: &TestApp, token: &str, headers: HeaderMap) -> WebClient {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .default_headers(headers)
            .build()
            .expect("client");
        Self::try_sign_in_with(app, token, "fr", client)
            .await
            .expect("signed in")
    }

    async fn try_sign_in_with(
        app: &TestApp,
        token: &str,
        lang: &str,
        client: reqwest::Client,
    ) -> Result<WebClient, reqwest::Response> {
        Self::try_sign_in_at(&app.address, token, lang, client).await
    }

    /// Signs in at `base` (an instance, a proxy); panics unless it works.
    pub async fn sign_in_at(base: &str, token: &str) -> WebClient {
        Self::try_sign_in_at(base, token, "fr", Self::plain())
            .await
            .expect("signed in")
    }

    async fn try_sign_in_at(
        base: &str,
        token: &str,
        lang: &str,
        client: reqwest::Client,
    ) -> Result<WebClient, reqwest::Response> {
        let form = client
            .get(format!("{base}/sign-in"))
            .send()
            .await
            .expect("sign-in page");
        assert_eq!(form.status(), 200);
        let (pre, _) = cookie_value(&form, "reprise_sign_in").expect("double-submit cookie");
        let html = form.text().await.expect("html");
        assert_eq!(csrf_in(&html), pre, "the form carries the cookie's value");
        let res = client
            .post(format!("{base}/sign-in"))
            .header(COOKIE, format!("reprise_sign_in={pre}"))
            .form(&[("csrf", pre.as_str()), ("token", token), ("lang", lang)])
            .send()
            .await
            .expect("sign-in sent");
        if res.status() != 303 {
            return Err(res);
        }
        let (value, _) = cookie_value(&res, "reprise_session").expect("a session cookie");
        let mut web = WebClient {
            client,
            base: base.to_string(),
            cookie: format!("reprise_session={value}"),
            csrf: String::new(),
        };
        let home = web.get("/").await;
        let page = home
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .expect("home redirects")
            .to_string();
        web.csrf = csrf_in(&web.get(&page).await.text().await.expect("html"));
        Ok(web)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("page")
    }

    pub async fn html(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        res.text().await.expect("html")
    }

    /// Sends a form with the session's secret.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .form(fields)
            .send()
            .await
            .expect("form sent")
    }
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A site closed by an incident, with three postponed operations of priorities 1 to 3.
pub struct Crisis {
    pub site: String,
    pub service: String,
    pub patients: Vec<String>,
    pub appointments: Vec<String>,
}

pub async fn crisis(app: &TestApp) -> Crisis {
    let (site, service) = app.create_site_and_service().await;
    let mut patients = Vec::new();
    let mut appointments = Vec::new();
    for (i, (last, first)) in [
        ("Dupont", "Marie"),
        ("Lambert", "Jean"),
        ("Peeters", "Anke"),
    ]
    .into_iter()
    .enumerate()
    {
        let patient = app
            .create_patient_with(json!({
                "last_name": last, "first_name": first, "birth_date": "1958-03-0".to_string() + &(i + 1).to_string(),
                "phone": format!("061 23 45 6{i}"), "email": format!("{}@example.org", last.to_lowercase()),
                "language": "fr", "email_consent": true
            }))
            .await;
        let appointment = app
            .create_appointment_with(json!({
                "patient_id": patient, "site": site, "service": service, "kind": "operation",
                "label": format!("Prothèse {i}"), "scheduled_at": format!("2030-01-1{i}T08:00:00Z"),
                "priority": i + 1
            }))
            .await;
        patients.push(patient);
        appointments.push(appointment);
    }
    app.postpone(&site, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
        .await;
    Crisis {
        site,
        service,
        patients,
        appointments,
    }
}

async fn calls_logged(app: &TestApp) -> Vec<Value> {
    let page = app.admin().get_json("/api/v1/calls").await;
    page["items"].as_array().expect("items").clone()
}

pub async fn audit_actions(app: &TestApp, action: &str) -> Vec<Value> {
    let page = app
        .admin()
        .get_json(&format!("/api/v1/audit?action={action}"))
        .await;
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn signing_in_opens_a_strict_session_that_signing_out_ends() {
    let app = spawn_app().await;
    let agent = app.account("Agent Anne", "agent", &[]).await;
    let client = WebClient::plain();
    let form = client.get(app.url("/sign-in")).send().await.expect("page");
    let (pre, _) = cookie_value(&form, "reprise_sign_in").expect("cookie");
    let res = client
        .post(app.url("/sign-in"))
        .header(COOKIE, format!("reprise_sign_in={pre}"))
        .form(&[("csrf", pre.as_str()), ("token", agent.token())])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/agent", "an agent lands on the call page");
    let (value, header) = cookie_value(&res, "reprise_session").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }
    assert!(!header.contains("Secure"), "plain http here: {header}");
    assert!(value.len() >= 64 && !value.contains(&agent.token()[3..]));

    let web = WebClient::sign_in(&app, agent.token()).await;
    let page = web.get("/agent").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("default-src 'none'"));
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<html lang="fr">"#) && html.contains("Enregistrer un appel"));
    assert!(html.contains("Agent Anne"));
    assert_eq!(audit_actions(&app, "auth.sign_in").await.len(), 2);

    let out = web.post("/sign-out", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(location(&out), "/sign-in?out=1");
    let after = web.get("/agent").await;
    assert_eq!(after.status(), 303, "the old cookie opens nothing");
    assert_eq!(location(&after), "/sign-in");
    assert_eq!(audit_actions(&app, "auth.sign_out").await.len(), 1);
}

#[tokio::test]
async fn an_unknown_token_or_a_forged_form_opens_nothing() {
    let app = spawn_app().await;
    let refused = WebClient::try_sign_in(&app, "rp_not-a-token", "fr")
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status(), 401);
    assert!(cookie_value(&refused, "reprise_session").is_none());
    let html = refused.text().await.expect("html");
    assert!(html.contains("jeton n&#39;est pas reconnu."), "{html}");
    // Audited like any refused request.
    assert!(!audit_actions(&app, "auth.denied").await.is_empty());

    // A sign-in form whose secret does not match its cookie (a login CSRF).
    let res = WebClient::plain()
        .post(app.url("/sign-in"))
        .header(COOKIE, "reprise_sign_in=aaaa")
        .form(&[("csrf", "bbbb"), ("token", app.admin().token())])
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 403);
    assert!(cookie_value(&res, "reprise_session").is_none());
}

#[tokio::test]
async fn forms_without_the_sessions_secret_change_nothing() {
    let app = spawn_app().await;
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    let call = [
        ("key", "k-1"),
        ("reason", "appointment_status"),
        ("outcome", "informed"),
    ];
    for secret in ["", "0123", &web.csrf[1..]] {
        let mut fields = vec![("csrf", secret)];
        fields.extend_from_slice(&call);
        let res = web.post_raw("/agent/calls", &fields).await;
        assert_eq!(res.status(), 403, "secret {secret:?}");
        assert!(res
            .text()
            .await
            .expect("html")
            .contains("formulaire a expiré"));
    }
    // Without the cookie: to the sign-in page, nothing logged.
    let anonymous = WebClient::plain()
        .post(app.url("/agent/calls"))
        .form(&[
            ("csrf", web.csrf.as_str()),
            ("key", "k-2"),
            ("reason", "other"),
            ("outcome", "informed"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(anonymous.status(), 303);
    assert_eq!(location(&anonymous), "/sign-in");
    assert!(calls_logged(&app).await.is_empty());
    // The secret is the session's: another session's does not fit.
    let other = WebClient::sign_in(&app, agent.token()).await;
    assert_ne!(other.csrf, web.csrf);
    let mut fields = vec![("csrf", other.csrf.as_str())];
    fields.extend_from_slice(&call);
    assert_eq!(web.post_raw("/agent/calls", &fields).await.status(), 403);
    assert!(calls_logged(&app).await.is_empty());
}

#[tokio::test]
async fn pages_and_api_agree_on_who_may_do_what() {
    let app = spawn_app().await;
    let c = crisis(&app).await;
    let (other_site, other_service) = app.create_site_and_service().await;
    let other_patient = app.create_patient("Autre", "Personne").await;
    let other_appointment = app
        .create_appointment(
            &other_patient,
            &other_site,
            &other_service,
            "2031-01-01T08:00:00Z",
        )
        .await;
    for (role, token) in app.tokens_by_role(&c.service).await {
        let web = WebClient::sign_in(&app, &token).await;
        // (page, the API call that needs the same permission)
        let pairs: [(reqwest::Response, reqwest::Response); 10] = [
            (
                web.get("/agent").await,
                app.user(&token)
                    .post(
                        "/api/v1/calls",
                        &json!({"reason": "other", "outcome": "informed"}),
                    )
                    .await,
            ),
            // The screen pop's stream shows calls as the caller log does.
            (
                web.get("/agent/events").await,
                app.user(&token).get("/api/v1/phone-calls").await,
            ),
            (
                web.get(&format!("/contacts?site={}", c.site)).await,
                app.user(&token)
                    .get(&format!("/api/v1/contact-list?site={}", c.site))
                    .await,
            ),
            (
                web.get(&format!(
                    "/contacts/export?site={}&service={}&format=csv",
                    other_site, other_service
                ))
                .await,
                app.user(&token)
                    .get(&format!(
                        "/api/v1/contact-list?site={other_site}&service={other_service}"
                    ))
                    .await,
            ),
            (
                web.get("/board").await,
                app.user(&token).get("/api/v1/call-centre").await,
            ),
            // The confirmation pages and the printed list need what their forms and the
            // export need (the list of sites and the call centre's state: same permissions).
            (
                web.get(&format!("/board/reopen?site={}&programme=full", c.site))
                    .await,
                app.user(&token).get("/api/v1/sites").await,
            ),
            (
                web.get("/board/call-centre?status=deactivated").await,
                app.user(&token).get("/api/v1/call-centre").await,
            ),
            (
                web.get(&format!("/contacts/print?site={}", c.site)).await,
                app.user(&token)
                    .get(&format!("/api/v1/contact-list?site={}", c.site))
                    .await,
            ),
            (
                web.post(
                    "/contacts/attempt",
                    &[
                        ("appointment_id", &other_appointment),
                        ("outcome", "no_answer"),
                    ],
                )
                .await,
                app.user(&token)
                    .post(
                        &format!("/api/v1/appointments/{other_appointment}/contact-attempts"),
                        &json!({"channel": "phone", "outcome": "no_answer"}),
                    )
                    .await,
            ),
            (
                web.get("/callbacks").await,
                app.user(&token).get("/api/v1/callbacks").await,
            ),
        ];
        for (i, (page, api)) in pairs.into_iter().enumerate() {
            // A form's success is a redirect to a page, never to the sign-in page.
            let redirected = location(&page);
            let (page, api) = (page.status().as_u16(), api.status().as_u16());
            let page_ok = page == 200 || (page == 303 && !redirected.starts_with("/sign-in"));
            let api_ok = (200..300).contains(&api);
            assert_eq!(page_ok, api_ok, "{role}, pair {i}: page {page}, API {api}");
            if !page_ok {
                // Refused by role: 403. A secretary's form on another service's appointment
                // (pair 8) finds no such appointment, as the API does (no existence oracle).
                let expected = if role == "secretary" && i == 8 {
                    404
                } else {
                    403
                };
                assert_eq!(page, expected, "{role}, pair {i}");
                assert_eq!(api, expected, "{role}, pair {i}");
            }
        }
    }
    // Refusals on pages are audited as the API's are.
    assert!(audit_actions(&app, "auth.denied")
        .await
        .iter()
        .any(|e| e["target"] == "/board"));
}

#[tokio::test]
async fn an_agent_finds_a_patient_and_logs_one_call_per_form() {
    let app = spawn_app().await;
    let c = crisis(&app).await;
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    // The search goes in a form body: the name never reaches a URL.
    let found = web.post("/agent/search", &[("q", "dupont")]).await;
    assert_eq!(found.status(), 200);
    let html = found.text().await.expect("html");
    let link = format!("/agent?patient={}", c.patients[0]);
    assert!(
        html.contains(&link) && html.contains("Dupont, Marie"),
        "{html}"
    );
    assert!(!html.contains("Lambert"));
    let page = web.html(&link).await;
    assert!(
        page.contains("Prothèse 0") && page.contains("Reporté"),
        "status shown"
    );
    assert!(page.contains("10/01/2030 09:00"), "Brussels time");
    let key = {
        let at = page.find(r#"name="key" value=""#).expect("a key") + r#"name="key" value=""#.len();
        page[at..at + 36].to_string()
    };
    let form = [
        ("key", key.as_str()),
        ("patient_id", c.patients[0].as_str()),
        ("appointment_id", c.appointments[0].as_str()),
        ("reason", "appointment_status"),
        ("outcome", "informed"),
        ("duration_minutes", "2,5"),
        ("caller_phone", "0470 12 34 56"),
        ("notes", "Demande la date"),
        ("callback", "1"),
    ];
    // The same form sent twice at once (a double click): one call.
    let (a, b) = tokio::join!(
        web.post("/agent/calls", &form),
        web.post("/agent/calls", &form)
    );
    for r in [&a, &b] {
        assert_eq!(r.status(), 303);
        assert_eq!(location(r), "/agent?done=call");
    }
    let calls = calls_logged(&app).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call["patient_id"], c.patients[0]);
    assert_eq!(call["appointment_id"], c.appointments[0]);
    assert_eq!(call["duration_seconds"], 150);
    assert_eq!(call["caller_phone"], "+32470123456");
    assert_eq!(call["callback_requested"], true);
    assert_eq!(call["notes"], "Demande la date");
    let after = web.html("/agent?done=call").await;
    assert!(after.contains("Appel enregistré.") && after.contains(r#"id="q""#));
    // A call without a patient, with a new form's key.
    let r = web
        .post(
            "/agent/calls",
            &[
                ("key", "another"),
                ("reason", "other"),
                ("outcome", "abandoned"),
                ("patient_id", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(calls_logged(&app).await.len(), 2);
    // Each search and each patient read is audited.
    assert_eq!(audit_actions(&app, "patient.search").await.len(), 1);
    assert_eq!(audit_actions(&app, "patient.read").await.len(), 1);
}

type Fields<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn bad_forms_get_a_clear_page_and_change_nothing() {
    let app = spawn_app().await;
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    let cases: [(Fields, u16, &str); 5] = [
        (
            &[("key", "k"), ("reason", "gossip"), ("outcome", "informed")],
            422,
            "Valeur refusée : Motif",
        ),
        (
            &[
                ("key", "k"),
                ("reason", "other"),
                ("outcome", "informed"),
                ("duration_minutes", "two"),
            ],
            422,
            "durée en minutes",
        ),
        (
            &[
                ("key", "k"),
                ("reason", "other"),
                ("outcome", "informed"),
                ("patient_id", "nobody"),
            ],
            422,
            "Valeur refusée : Patient",
        ),
        (
            &[
                ("key", "k"),
                ("reason", "other"),
                ("outcome", "informed"),
                ("notes", "a\u{0}b"),
            ],
            422,
            "Valeur refusée : le formulaire",
        ),
        (
            &[("key", "k"), ("outcome", "informed")],
            422,
            "Valeur refusée : le formulaire",
        ),
    ];
    for (fields, status, word) in cases {
        let res = web.post("/agent/calls", fields).await;
        assert_eq!(res.status(), status, "{fields:?}");
        assert!(res.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/html"));
        let html = res.text().await.expect("html");
        assert!(
            html.contains("Saisie à corriger") && html.contains(word),
            "{html}"
        );
        // Every word in the page's language: none of the API's English details.
        for english in ["must be", "missing field", "no such", "NUL"] {
            assert!(!html.contains(english), "{english} in {html}");
        }
    }
    // Too large, or not a form.
    let big = "x".repeat(40_000);
    let res = web
        .post(
            "/agent/calls",
            &[
                ("key", "k"),
                ("reason", "other"),
                ("outcome", "informed"),
                ("notes", &big),
            ],
        )
        .await;
    assert_eq!(res.status(), 413);
    let res = reqwest::Client::new()
        .post(app.url("/agent/calls"))
        .header(COOKIE, &web.cookie)
        .json(&json!({"csrf": web.csrf}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 415);
    // An empty search says why, on the page.
    let res = web.post("/agent/search", &[("q", " ")]).await;
    assert_eq!(res.status(), 422);
    assert!(res
        .text()
        .await
        .expect("html")
        .contains(r#"<p class="error" role="alert">"#));
    assert!(calls_logged(&app).await.is_empty());
    // Unknown patient id in the page's URL: a 404 page.
    assert_eq!(web.get("/agent?patient=nobody").await.status(), 404);
}

#[tokio::test]
async fn a_secretary_works_a_contact_list_row_by_row() {
    let app = spawn_app().await;
    let c = crisis(&app).await;
    let secretary = app.account("Secrétaire", "secretary", &[&c.service]).await;
    let web = WebClient::sign_in(&app, secretary.token()).await;
    // Her one service: signing in lands on its list at once.
    let landing = web.html("/contacts").await;
    assert!(
        landing.contains(r#"<span id="total">3</span>"#),
        "{landing}"
    );
    let list_path = format!("/contacts?site={}&service={}", c.site, c.service);
    let html = web.html(&list_path).await;
    // Contract order: priority 1 first.
    let rows: Vec<usize> = c
        .appointments
        .iter()
        .map(|a| html.find(&format!(r#"id="row-{a}""#)).expect("row shown"))
        .collect();
    assert!(rows[0] < rows[1] && rows[1] < rows[2], "{rows:?}");
    assert!(html.contains(r#"<span id="total">3</span>"#));
    // Each list read is audited: at sign-in, just above, and here.
    assert_eq!(audit_actions(&app, "contact_list.read").await.len(), 3);

    let back = format!("site={}&service={}", c.site, c.service);
    let r = web
        .post(
            "/contacts/attempt",
            &[
                ("appointment_id", &c.appointments[0]),
                ("outcome", "no_answer"),
                ("note", "répondeur"),
                ("back", &back),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        format!(
            "/contacts?{back}&done=attempt&at={}&next=#done",
            c.appointments[0]
        )
    );
    let html = web.html(&location(&r)).await;
    assert!(html.contains("Pas de réponse") && html.contains("Tentative notée."));
    let row_at = |html: &str, id: &str| {
        html.find(&format!(r#"id="row-{id}""#))
            .unwrap_or_else(|| panic!("row {id}"))
    };
    let row = &html[row_at(&html, &c.appointments[0])..];
    assert!(row[..row.find("</tr>").expect("end")].contains(r#"<span class="attempts">1</span>"#));
    // Said once, where the secretary is looking: just below the row, not above the list.
    let done = html
        .find(r#"id="done""#)
        .expect("the message beside the row");
    assert!(row_at(&html, &c.appointments[0]) < done && done < row_at(&html, &c.appointments[1]));
    assert!(
        !html.contains(r#"id="flash""#),
        "not on top of the page as well"
    );
    assert_eq!(html.matches("Tentative notée.").count(), 1);
    // Reached: off the list; the message takes its place, above the row that follows.
    let r = web
        .post(
            "/contacts/attempt",
            &[
                ("appointment_id", &c.appointments[0]),
                ("outcome", "reached"),
                ("back", &back),
                ("next", &c.appointments[1]),
            ],
        )
        .await;
    let html = web.html(&location(&r)).await;
    assert!(!html.contains(&format!(r#"id="row-{}""#, c.appointments[0])));
    let done = html
        .find(r#"id="done""#)
        .expect("the message where the row was");
    assert!(done < row_at(&html, &c.appointments[1]));
    // Switching the language does not say it again.
    let r = web
        .post("/language", &[("lang", "nl"), ("back", &location(&r))])
        .await;
    assert!(!location(&r).contains("done="), "{}", location(&r));
    web.post("/language", &[("lang", "fr"), ("back", "/contacts")])
        .await;
    // A new date, typed in Brussels time.
    let r = web
        .post(
            "/contacts/reschedule",
            &[
                ("appointment_id", &c.appointments[1]),
                ("scheduled_at", "2030-03-04T09:30"),
                ("back", &back),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = web.html(&list_path).await;
    assert!(html.contains(r#"<span id="total">1</span>"#), "{html}");
    assert!(!html.contains(&c.appointments[0]) && !html.contains(&c.appointments[1]));
    let moved = app
        .admin()
        .get_json(&format!("/api/v1/appointments/{}", c.appointments[1]))
        .await;
    assert_eq!(moved["status"], "rescheduled");
    assert_eq!(moved["scheduled_at"], "2030-03-04T08:30:00Z");
    let attempts = app
        .admin()
        .get_json(&format!("/api/v1/appointments/{}", c.appointments[0]))
        .await;
    assert_eq!(
        attempts["contact_attempts"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(attempts["status"], "postponed", "reached, not yet rebooked");
    // A bad date: a page saying so, nothing changed.
    let r = web
        .post(
            "/contacts/reschedule",
            &[
                ("appointment_id", &c.appointments[2]),
                ("scheduled_at", "demain"),
                ("back", &back),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .expect("html")
        .contains("Saisissez une date et une heure"));
    // A date in the past: refused, in the page's words, nothing emailed.
    let r = web
        .post(
            "/contacts/reschedule",
            &[
                ("appointment_id", &c.appointments[2]),
                ("scheduled_at", "2020-01-01T09:00"),
                ("back", &back),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("html");
    assert!(html.contains("La nouvelle date est passée"), "{html}");
    assert!(
        !html.contains("is in the past"),
        "no English on a French page"
    );

    // The downloads are the API's exports, audited.
    let csv = web
        .get(&format!("/contacts/export?{back}&format=csv"))
        .await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .expect("cd")
        .contains(".csv"));
    let body = csv.text().await.expect("csv");
    let api = secretary
        .text(&format!("/api/v1/contact-list?{back}&format=csv"))
        .await;
    assert_eq!(body, api);
    assert!(body.starts_with("appointment_id,priority,kind,service,label,original_scheduled_at"));
    assert!(body.contains(&c.appointments[2]));
    let excel = web
        .get(&format!("/contacts/export?{back}&format=excel"))
        .await;
    assert!(excel
        .bytes()
        .await
        .expect("bytes")
        .starts_with("\u{feff}".as_bytes()));
    assert_eq!(audit_actions(&app, "contact_list.export").await.len(), 3);
    // Another service's list: refused on the page as in the API.
    let (other_site, other_service) = app.create_site_and_service().await;
    let r = web
        .get(&format!(
            "/contacts?site={other_site}&service={other_service}"
        ))
        .await;
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_coordinator_reopens_a_site_and_switches_the_call_centre() {
    let app = spawn_app().await;
    let c = crisis(&app).await;
    for day in [
        "2022-05-14T10:00:00+02:00",
        "2022-05-14T11:00:00+02:00",
        "2022-05-16T09:00:00+02:00",
    ] {
        let r = app
            .admin()
            .post(
                "/api/v1/calls",
                &json!({"received_at": day, "reason": "other", "outcome": "informed"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let coordinator = app.coordinator().await;
    let web = WebClient::sign_in(&app, coordinator.token()).await;
    let html = web.html("/board").await;
    assert!(html.contains(&format!(r#"id="site-{}" class="closed""#, c.site)));
    // The chart: one bar per day from the first call to the last, as the API counts them.
    let stats = coordinator.get_json("/api/v1/calls/stats").await;
    let series = stats["series"].as_array().expect("series");
    assert_eq!(series.len(), 3, "{stats}");
    assert_eq!(html.matches(r#"<rect class="bar""#).count(), series.len());
    for point in series {
        assert!(html.contains(&format!(r#"data-count="{}""#, point["count"])));
    }
    assert!(html.contains("<svg") && html.contains(r#"role="img""#));
    assert!(html.contains(r#"<strong id="calls-total">3</strong>"#));

    // Reopening first says what it will do, and sends nothing until confirmed.
    let html = web
        .html(&format!(
            "/board/reopen?site={}&programme=moderate&operating_rooms_open=1",
            c.site
        ))
        .await;
    assert!(
        html.contains(r#"<dd id="confirm-to-contact">3</dd>"#),
        "{html}"
    );
    assert!(html.contains(r#"id="confirm-emails""#) && html.contains("1 / 2"));
    assert!(
        html.contains(r#"name="notify" value="1" id="confirm-notify">"#),
        "emails are a choice, unticked: {html}"
    );
    // Sent without the confirmation: refused, nothing done.
    let r = web
        .post(
            "/board/reopen",
            &[
                ("site", &c.site),
                ("programme", "moderate"),
                ("notify", "1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let reopened = |all: Value| {
        all["items"].as_array().map_or(0, |n| {
            n.iter()
                .filter(|n| n["template"] == "site_reopened")
                .count()
        })
    };
    let notifications = coordinator.get_json("/api/v1/notifications").await;
    assert_eq!(reopened(notifications), 0, "nothing sent");
    let r = web
        .post(
            "/board/reopen",
            &[
                ("site", &c.site),
                ("programme", "moderate"),
                ("operating_rooms_open", "1"),
                ("notify", "1"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let queued = reopened(coordinator.get_json("/api/v1/notifications").await);
    assert!(queued > 0);
    assert_eq!(
        location(&r),
        format!(
            "/board?done=reopened&site={0}&to_contact=3&queued={queued}#site-{0}",
            c.site
        )
    );
    let sites = coordinator.get_json("/api/v1/sites").await;
    let site = sites["items"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["code"] == c.site))
        .expect("site")
        .clone();
    assert_eq!(site["status"], "open");
    assert_eq!(site["programme"], "moderate");
    let html = web.html(&location(&r)).await;
    assert!(html.contains(&format!(r#"id="site-{}" class="open""#, c.site)));
    // The message says what left: the appointments to rebook and the emails queued.
    let said = format!(
        "({}) est rouvert : 3 rendez-vous à recontacter ; {queued} emails en file d",
        c.site
    );
    assert!(html.contains("1 / 2") && html.contains(&said), "{html}");
    // Reopening it again is the API's 409, on a page, in its words.
    let r = web
        .post(
            "/board/reopen",
            &[("site", &c.site), ("programme", "full"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .expect("html")
        .contains("Ce site est déjà ouvert."));

    // Switching the call centre off asks first too.
    let html = web.html("/board/call-centre?status=deactivated").await;
    assert!(html.contains("3 appels sont enregistrés"), "{html}");
    let r = web
        .post("/board/call-centre", &[("status", "deactivated")])
        .await;
    assert_eq!(r.status(), 422);
    let centre = coordinator.get_json("/api/v1/call-centre").await;
    assert_eq!(centre["status"], "active", "not without its confirmation");
    let r = web
        .post(
            "/board/call-centre",
            &[("status", "deactivated"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let centre = coordinator.get_json("/api/v1/call-centre").await;
    assert_eq!(centre["status"], "deactivated");
    let agent_page = web.html("/agent").await;
    assert!(agent_page.contains("est désactivé : les appels ne sont plus enregistrés"));
    assert_eq!(audit_actions(&app, "site.reopen").await.len(), 1);
    assert_eq!(audit_actions(&app, "call_centre.update").await.len(), 1);
}

#[tokio::test]
async fn pages_speak_the_sessions_language_and_deleted_accounts_sign_out() {
    let app = spawn_app().await;
    let agent = app.agent().await;
    let id = agent.id().to_string();
    let web = WebClient::try_sign_in(&app, agent.token(), "nl")
        .await
        .expect("signed in");
    let html = web.html("/agent").await;
    assert!(html.contains(r#"<html lang="nl">"#) && html.contains("Een oproep registreren"));
    let r = web
        .post("/language", &[("lang", "de"), ("back", "/agent")])
        .await;
    assert_eq!(location(&r), "/agent");
    assert!(web.html("/agent").await.contains("Einen Anruf erfassen"));
    // Only back to this site.
    let r = web
        .post("/language", &[("lang", "en"), ("back", "//evil.example/")])
        .await;
    assert_eq!(location(&r), "/");
    assert!(web.html("/agent").await.contains("Log a call"));
    let r = web.post("/language", &[("lang", "xx")]).await;
    assert_eq!(r.status(), 422);

    // Deleting the account ends its sessions at once.
    let r = app.admin().delete(&format!("/api/v1/users/{id}")).await;
    assert_eq!(r.status(), 204);
    let after = web.get("/agent").await;
    assert_eq!(after.status(), 303);
    assert_eq!(location(&after), "/sign-in");
}

#[tokio::test]
async fn hostile_page_requests_get_a_4xx_never_a_5xx() {
    let app = spawn_app().await;
    let c = crisis(&app).await;
    let web = WebClient::sign_in(&app, app.admin().token()).await;
    let long = "A".repeat(5_000);
    let gets = [
        format!("/contacts?site={}&page=9223372036854775807", c.site),
        format!("/contacts?site={}&page=-3", c.site),
        "/contacts?site=%00".to_string(),
        format!("/contacts?site={}&service=%00", c.site),
        format!("/contacts?site={}&kind=%00", c.site),
        format!("/contacts?site={long}"),
        "/contacts?page=abc".to_string(),
        "/agent?patient=%00".to_string(),
        format!("/agent?patient={long}"),
        "/contacts/export?site=%00&format=csv".to_string(),
        format!("/contacts/export?site={}&format=%00", c.site),
        "/board?done=%00".to_string(),
        "/sign-in?lang=%00".to_string(),
        "/static/%00".to_string(),
        "/static/../Cargo.toml".to_string(),
        format!("/board/reopen?site={long}&programme=full"),
        format!("/board/reopen?site={}&programme=%00", c.site),
        format!(
            "/board/reopen?site={}&programme=full&operating_rooms_open=99999999999",
            c.site
        ),
        "/board/reopen".to_string(),
        "/board/call-centre?status=%00".to_string(),
        "/board?from=9999-99-99&to=%00".to_string(),
        "/board?from=0001-01-01&to=9999-12-31".to_string(),
        format!("/board?from={long}"),
        "/contacts/print?site=%00".to_string(),
        format!("/contacts/print?site={long}"),
        format!("/contacts/print?site={}&kind=%00", c.site),
        format!(
            "/contacts?site={}&requests=%00&at=%00&next={long}&done=attempt",
            c.site
        ),
    ];
    for path in &gets {
        let status = web.get(path).await.status().as_u16();
        assert!((200..500).contains(&status), "{path}: {status}");
    }
    let posts: [(&str, Vec<(&str, &str)>); 7] = [
        ("/agent/search", vec![("q", "\u{0}")]),
        ("/agent/search", vec![("q", &long)]),
        (
            "/contacts/attempt",
            vec![("appointment_id", "\u{0}"), ("outcome", "reached")],
        ),
        (
            "/contacts/attempt",
            vec![("appointment_id", &long), ("outcome", &long)],
        ),
        (
            "/contacts/reschedule",
            vec![
                ("appointment_id", &c.appointments[0]),
                ("scheduled_at", "9999-99-99T99:99"),
            ],
        ),
        (
            "/board/reopen",
            vec![
                ("site", &long),
                ("programme", "full"),
                ("operating_rooms_open", "99999999999"),
            ],
        ),
        ("/board/call-centre", vec![("status", "on fire")]),
    ];
    for (path, fields) in &posts {
        let status = web.post(path, fields).await.status().as_u16();
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert!((400..500).contains(&status), "{path} {names:?}: {status}");
    }
    // Nothing changed: the list is whole, the site closed, the call centre on.
    let list = app
        .admin()
        .get_json(&format!("/api/v1/contact-list?site={}", c.site))
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3));
    let centre = app.admin().get_json("/api/v1/call-centre").await;
    assert_eq!(centre["status"], "active");
}

#[tokio::test]
async fn a_long_list_is_read_a_hundred_rows_at_a_time() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let patient = app.create_patient("Long", "Liste").await;
    for i in 0..150 {
        let at = format!(
            "2030-01-{:02}T{:02}:{:02}:00Z",
            2 + i / 60,
            8 + (i % 60) / 10,
            (i % 10) * 5
        );
        app.create_appointment(&patient, &site, &service, &at).await;
    }
    app.postpone(&site, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
        .await;
    let secretary = app.account("Secrétaire", "secretary", &[&service]).await;
    let web = WebClient::sign_in(&app, secretary.token()).await;
    let first = web
        .html(&format!("/contacts?site={site}&service={service}"))
        .await;
    assert_eq!(first.matches("data-appointment=").count(), 100);
    assert!(first.contains(r#"<span id="total">150</span>"#));
    let next = format!("/contacts?site={site}&service={service}&page=1");
    let link = format!(r#"href="{}#list""#, next.replace('&', "&#38;"));
    let nav = &first[first.find(r#"class="pages"#).expect("page links")..];
    assert!(nav.contains(&link), "a link to the next page: {nav}");
    let second = web.html(&next).await;
    assert_eq!(second.matches("data-appointment=").count(), 50);
    assert!(!second.contains(r#"rel="next""#) && second.contains(r#"rel="prev""#));
    // Every row once across the pages.
    let ids = |html: &str| -> Vec<String> {
        html.split("data-appointment=\"")
            .skip(1)
            .map(|s| s[..36].to_string())
            .collect()
    };
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 150);
    // A form sent from the second page comes back to it.
    let back = format!("site={site}&service={service}&page=1");
    let row = ids(&second)[0].clone();
    let r = web
        .post(
            "/contacts/attempt",
            &[
                ("appointment_id", &row),
                ("outcome", "no_answer"),
                ("back", &back),
            ],
        )
        .await;
    assert!(
        location(&r).starts_with(&format!("/contacts?{back}&done=attempt&at=")),
        "{}",
        location(&r)
    );
    // A page past the end is empty; one that is not a number is the first.
    let past = web.html(&format!("/contacts?site={site}&page=99")).await;
    assert_eq!(past.matches("data-appointment=").count(), 0);
    let odd = web.html(&format!("/contacts?site={site}&page=deux")).await;
    assert_eq!(odd.matches("data-appointment=").count(), 100);
}

#[tokio::test]
async fn sessions_end_when_they_expire_and_a_new_sign_in_replaces_the_old() {
    let app = spawn_app().await;
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    assert_eq!(web.get("/agent").await.status(), 200);
    app.state
        .db
        .write(|conn| {
            use diesel::prelude::*;
            use reprise::db::schema::web_sessions;
            let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
            diesel::update(web_sessions::table)
                .set(web_sessions::expires_at.eq(past))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("expired");
    let r = web.get("/agent").await;
    assert_eq!(
        (r.status().as_u16(), location(&r)),
        (303, "/sign-in".to_string())
    );

    // Signing in again from a browser that has a session ends that one.
    let first = WebClient::sign_in(&app, agent.token()).await;
    let res = WebClient::plain()
        .get(app.url("/sign-in"))
        .send()
        .await
        .expect("page");
    let (pre, _) = cookie_value(&res, "reprise_sign_in").expect("cookie");
    let again = WebClient::plain()
        .post(app.url("/sign-in"))
        .header(COOKIE, format!("reprise_sign_in={pre}; {}", first.cookie))
        .form(&[("csrf", pre.as_str()), ("token", agent.token())])
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 303);
    assert_eq!(
        first.get("/agent").await.status(),
        303,
        "the old session is gone"
    );
}

#[tokio::test]
async fn the_language_switch_goes_back_to_pages_only() {
    let app = spawn_app().await;
    let web = WebClient::sign_in(&app, app.admin().token()).await;
    for back in [
        "/\t/evil.example",
        "/agent\r\nSet-Cookie: x=1",
        "/agent/search",
        "//evil.example",
        "/\u{7f}",
    ] {
        let r = web
            .post("/language", &[("lang", "nl"), ("back", back)])
            .await;
        assert_eq!(
            (r.status().as_u16(), location(&r)),
            (303, "/".to_string()),
            "{back:?}"
        );
    }
    let r = web
        .post(
            "/language",
            &[("lang", "fr"), ("back", "/contacts?site=ARL&page=2")],
        )
        .await;
    assert_eq!(location(&r), "/contacts?site=ARL&page=2");
}

#[tokio::test]
async fn a_call_logged_with_a_wrong_year_leaves_the_board_readable() {
    let app = spawn_app().await;
    let today = chrono::Utc::now().to_rfc3339();
    for at in [
        "1990-05-14T10:00:00+02:00",
        "2022-05-14T10:00:00+02:00",
        "2022-05-14T11:00:00+02:00",
        "2022-05-16T10:00:00+02:00",
        // One call today, years after the crisis: it must not empty the chart.
        today.as_str(),
    ] {
        let r = app
            .admin()
            .post(
                "/api/v1/calls",
                &json!({"received_at": at, "reason": "other", "outcome": "informed"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let web = WebClient::sign_in(&app, app.admin().token()).await;
    let html = web.html("/board").await;
    // The chart shows the crisis, the busiest stretch of calls, whatever a single call says.
    assert_eq!(html.matches(r#"<rect class="bar""#).count(), 3, "{html}");
    assert!(html.contains(r#"data-count="2""#) && html.contains("14/05: 2"));
    assert!(html.contains(r#"value="2022-05-14""#) && html.contains(r#"value="2022-05-16""#));
    assert!(html.contains(r#"<strong id="calls-total">5</strong>"#));
    // A period the coordinator picks: one bar a day, empty days too.
    let html = web.html("/board?from=2022-05-10&to=2022-05-19").await;
    assert_eq!(html.matches(r#"<rect class="bar""#).count(), 10);
    // A period backwards, or of more than a year: refused in the page's language.
    let r = web.get("/board?from=2022-05-19&to=2022-05-10").await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("html");
    assert!(html.contains("La période va"), "{html}");
}

#[tokio::test]
async fn page_reads_of_personal_data_spend_the_accounts_reads_budget() {
    // 18 a minute: a burst of 3 (a sixth), then one every 3.3 s.
    let app = spawn_app_with(|s| s.rate_reads = Some(18)).await;
    let c = crisis(&app).await;
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    let page = format!("/agent?patient={}", c.patients[0]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(web.get(&page).await.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    // The budget is the account's: the API refuses it too now.
    let r = agent
        .get(&format!("/api/v1/patients/{}", c.patients[0]))
        .await;
    assert_eq!(r.status(), 429);
}
