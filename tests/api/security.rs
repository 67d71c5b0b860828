//! Hardening of issue 16 (CONTRACT §7), on both backends: the anonymous limit per client
//! address, which `X-Forwarded-For` is believed, refusals audited in aggregate, where each
//! audited request came from, the distinct-patients budget across instances, the headers of
//! every answer, idle sessions, expiring tokens, and no existence oracle.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reprise::config::Settings;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app_with, TestApp};
use crate::web::WebClient;

/// A client whose requests come through a trusted proxy on behalf of `address`.
fn behind_proxy(address: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_str(address).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("sent").status().as_u16()
}

/// Sends `path` with `token` until the answer is a 429: that answer, and how many 401s came
/// before it.
async fn until_refused(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> (reqwest::Response, usize) {
    let mut unauthorized = 0;
    loop {
        let r = app.caller(token).get(path).await;
        match r.status().as_u16() {
            401 => unauthorized += 1,
            429 => return (r, unauthorized),
            other => panic!("{other}"),
        }
        assert!(unauthorized < 100, "never refused");
    }
}

/// The audit entries of `action`, after the counts held in memory are written (waiting out the
/// anonymous limit when the test has made its own address go over it).
async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    reprise::startup::flush_denials(&app.state).await;
    loop {
        let r = app
            .admin()
            .get(&format!("/api/v1/audit?action={action}&limit=1000"))
            .await;
        if r.status() == 429 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let body: Value = r.json().await.expect("json");
        return body["items"].as_array().expect("items").clone();
    }
}

fn total(entries: &[Value]) -> i64 {
    entries
        .iter()
        .map(|e| e["count"].as_i64().expect("count"))
        .sum()
}

#[tokio::test]
async fn an_address_over_its_anonymous_budget_is_refused_before_any_lookup() {
    // 60 a minute: a burst of 10.
    let app = spawn_app_with(|s| s.rate_anonymous = Some(60)).await;
    let (refused, unauthorized) = until_refused(&app, "/api/v1/sites", Some("rp_made_up")).await;
    // The burst (ten) and the one that went over; one more if a second passed meanwhile.
    assert!((11..=13).contains(&unauthorized), "{unauthorized}");
    let wait: u64 = refused
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    assert_problem(refused, 429).await;
    // Refused before the token is looked up: a valid one from that address waits too, and so
    // do the sign-in form and an answer link. Probes of the service still answer.
    assert_eq!(app.admin().get("/api/v1/sites").await.status(), 429);
    assert_eq!(status_of(app.client.post(app.url("/sign-in"))).await, 429);
    assert_eq!(
        status_of(
            app.client
                .get(app.url(&format!("/answer/{}", "a".repeat(64))))
        )
        .await,
        429
    );
    assert_eq!(app.anonymous().get("/health").await.status(), 200);
    assert_eq!(app.anonymous().get("/metrics").await.status(), 200);
    // Requests with a valid credential spend nothing: once the budget is back, the admin's
    // many requests do not block the address again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    for _ in 0..30 {
        assert_eq!(app.admin().get("/api/v1/sites").await.status(), 200);
    }
    let limited = audit(&app, "auth.denied").await;
    let reasons: HashSet<&str> = limited
        .iter()
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    assert!(reasons.contains("unknown_token") && reasons.contains("rate_limited"));
}

#[tokio::test]
async fn forged_links_and_session_cookies_spend_the_address_budget_too() {
    let app = spawn_app_with(|s| s.rate_anonymous = Some(60)).await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for i in 0..5 {
        let path = format!("/answer/{:064x}", i);
        assert_eq!(status_of(browser.get(app.url(&path))).await, 404);
        let cookie = format!("reprise_session=forged{i}");
        let page = browser.get(app.url("/agent")).header("cookie", cookie);
        assert_eq!(status_of(page).await, 303);
    }
    // The budget is spent: requests without a credential are soon refused at the door.
    let (_, unauthorized) = until_refused(&app, "/api/v1/sites", None).await;
    assert!(unauthorized <= 3, "{unauthorized}");
    let entries = audit(&app, "auth.denied").await;
    let reasons: HashSet<&str> = entries
        .iter()
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    for reason in [
        "unknown_link",
        "unknown_session",
        "no_token",
        "rate_limited",
    ] {
        assert!(reasons.contains(reason), "{reason}: {entries:?}");
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    // Behind a trusted proxy: each client address has its own budget and is named.
    let app = spawn_app_with(|s| {
        s.rate_anonymous = Some(60);
        s.trusted_proxies = reprise::client::TrustedProxies::parse("127.0.0.1").expect("ok");
    })
    .await;
    let crawler = behind_proxy("198.51.100.7, 203.0.113.66");
    let mut sent = 0;
    while status_of(crawler.get(app.url("/api/v1/sites")).bearer_auth("rp_x")).await != 429 {
        sent += 1;
        assert!(sent < 20, "never refused");
    }
    // Another client behind the same proxy is not.
    let neighbour = behind_proxy("203.0.113.67");
    let r = neighbour.get(app.url("/api/v1/sites")).bearer_auth("rp_x");
    assert_eq!(status_of(r).await, 401);
    let addresses: HashSet<String> = audit(&app, "auth.denied")
        .await
        .iter()
        .filter_map(|e| e["address"].as_str().map(str::to_string))
        .collect();
    // The hop the client wrote itself (198.51.100.7) proves nothing and is never named.
    assert_eq!(
        addresses,
        HashSet::from(["203.0.113.66".to_string(), "203.0.113.67".to_string()])
    );

    // Without trusted proxies, whatever a client writes in the header is ignored: its
    // requests all count for its own address.
    let app = spawn_app_with(|s| s.rate_anonymous = Some(60)).await;
    let mut sent = 0;
    loop {
        let liar = behind_proxy(&format!("192.0.2.{sent}"));
        if status_of(liar.get(app.url("/api/v1/sites")).bearer_auth("rp_x")).await == 429 {
            break;
        }
        sent += 1;
        assert!(
            sent < 20,
            "each new address in the header got a budget of its own"
        );
    }
    let addresses: HashSet<String> = audit(&app, "auth.denied")
        .await
        .iter()
        .filter_map(|e| e["address"].as_str().map(str::to_string))
        .collect();
    assert_eq!(addresses, HashSet::from(["127.0.0.1".to_string()]));
}

/// Bytes the database holds: SQLite's pages (those still in the WAL included), PostgreSQL's
/// audit table with its indexes.
async fn database_bytes(app: &TestApp) -> u64 {
    #[derive(diesel::QueryableByName)]
    struct Size {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    let sql = match app.backend {
        reprise::db::Backend::Sqlite => {
            "SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()"
        }
        reprise::db::Backend::Postgres => "SELECT pg_total_relation_size('audit_log') AS bytes",
    };
    app.state
        .db
        .read(move |conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query(sql)
                .get_result::<Size>(conn)
                .map(|s| s.bytes.unsigned_abs())
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("size")
}

async fn audit_rows(app: &TestApp) -> i64 {
    app.state
        .db
        .read(|conn| {
            use diesel::prelude::*;
            reprise::db::schema::audit_log::table
                .count()
                .get_result::<i64>(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("count")
}

#[tokio::test]
async fn a_flood_of_made_up_tokens_leaves_a_few_audit_rows_while_an_agent_logs_calls() {
    const CLIENTS: usize = 8;
    const EACH: usize = 600;
    let app = spawn_app_with(|s| {
        s.rate_anonymous = Some(60);
        s.trusted_proxies = reprise::client::TrustedProxies::parse("127.0.0.1").expect("ok");
    })
    .await;
    let agent = app.agent().await;
    let rows_before = audit_rows(&app).await;
    let bytes_before = database_bytes(&app).await;
    let flood: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let client = behind_proxy(&format!("198.51.100.{}", c + 1));
            let url = app.url("/api/v1/calls");
            tokio::spawn(async move {
                let mut statuses = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let r = client
                        .post(&url)
                        .bearer_auth(format!("rp_{c}_{i}_{}", uuid::Uuid::new_v4().simple()))
                        .json(&json!({"reason": "other", "outcome": "informed"}))
                        .send()
                        .await
                        .expect("sent");
                    statuses.push(r.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    // Meanwhile an agent logs calls from the call centre's own address.
    let mut logged = 0;
    while logged < 100 {
        let r = agent
            .post(
                "/api/v1/calls",
                &json!({"reason": "appointment_status", "outcome": "informed"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        logged += 1;
    }
    let mut statuses = Vec::new();
    for f in flood {
        statuses.extend(f.await.expect("client"));
    }
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429));
    assert!(
        statuses.iter().filter(|s| **s == 429).count() > statuses.len() / 2,
        "most were refused at the door"
    );
    let denied = audit(&app, "auth.denied").await;
    assert_eq!(
        total(&denied),
        (CLIENTS * EACH) as i64,
        "every one is counted"
    );
    let rows = audit_rows(&app).await - rows_before - logged;
    assert!(
        rows <= 100,
        "{rows} audit rows for {} refusals",
        CLIENTS * EACH
    );
    let grown = database_bytes(&app).await.saturating_sub(bytes_before);
    assert!(grown < 1_000_000, "{grown} bytes");
}

#[tokio::test]
async fn the_audit_says_where_sign_ins_denials_exports_and_answers_came_from() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = reprise::client::TrustedProxies::parse("127.0.0.1").expect("ok")
    })
    .await;
    let (site, service) = app.create_site_and_service().await;
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
    headers.insert("user-agent", HeaderValue::from_static("Desk 12 browser"));
    let web = WebClient::sign_in_as(&app, app.admin().token(), headers).await;
    let export = web
        .get(&format!(
            "/contacts/export?site={site}&service={service}&format=csv"
        ))
        .await;
    assert_eq!(export.status(), 200);
    assert_eq!(web.post("/sign-out", &[]).await.status(), 303);
    let answer = behind_proxy("198.51.100.44")
        .get(app.url(&format!("/answer/{}", "b".repeat(64))))
        .send()
        .await
        .expect("sent");
    assert_eq!(answer.status(), 404);
    for (action, address, agent) in [
        ("auth.sign_in", "203.0.113.9", Some("Desk 12 browser")),
        (
            "contact_list.export",
            "203.0.113.9",
            Some("Desk 12 browser"),
        ),
        ("auth.sign_out", "203.0.113.9", Some("Desk 12 browser")),
        ("auth.denied", "198.51.100.44", None),
    ] {
        let entries = audit(&app, action).await;
        let entry = entries.first().unwrap_or_else(|| panic!("{action}"));
        assert_eq!(entry["address"], address, "{action}");
        assert_eq!(entry["user_agent"].as_str(), agent, "{action}");
    }
}

/// A second instance of the service on the test's database.
async fn second_instance(app: &TestApp, patients_per_hour: u32) -> String {
    let outbox = tempfile::tempdir().expect("outbox");
    let mut settings = Settings::for_local(app.database.clone(), outbox.path());
    settings.patients_per_hour = Some(patients_per_hour);
    let other = reprise::startup::Application::build(settings)
        .await
        .expect("a second instance starts");
    let address = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(async move {
        let _outbox = outbox;
        other.run_until_stopped().await
    });
    address
}

#[tokio::test]
async fn a_crawler_with_one_token_gets_no_more_patients_than_the_budget_on_any_instance() {
    const BUDGET: u32 = 12;
    let app = spawn_app_with(|s| s.patients_per_hour = Some(BUDGET)).await;
    let other = second_instance(&app, BUDGET).await;
    let mut ids = Vec::new();
    for prefix in [
        "Aaron", "Abel", "Adam", "Bert", "Bram", "Carl", "Cora", "Dirk",
    ] {
        for n in 0..4 {
            ids.push(app.create_patient(&format!("{prefix}x{n}"), "Test").await);
        }
    }
    let crawler = app.account("Leaked", "agent", &[]).await;
    // Searches and reads, alternating instances, honouring every 429.
    let mut seen = HashSet::new();
    let mut refused = 0;
    let bases = [app.address.clone(), other];
    for (i, q) in ["aar", "abe", "ada", "ber", "bra", "car", "cor", "dir"]
        .iter()
        .enumerate()
    {
        let r = app
            .client
            .post(format!("{}/api/v1/patients/search", bases[i % 2]))
            .bearer_auth(crawler.token())
            .json(&json!({ "q": q }))
            .send()
            .await
            .expect("sent");
        match r.status().as_u16() {
            200 => {
                let body: Value = r.json().await.expect("json");
                for p in body["items"].as_array().expect("items") {
                    seen.insert(p["id"].as_str().expect("id").to_string());
                }
            }
            429 => {
                let wait: u64 = r.headers()["retry-after"]
                    .to_str()
                    .expect("text")
                    .parse()
                    .expect("seconds");
                assert!((1..=3600).contains(&wait));
                refused += 1;
            }
            other => panic!("{other}"),
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let r = app
            .client
            .get(format!("{}/api/v1/patients/{id}", bases[i % 2]))
            .bearer_auth(crawler.token())
            .send()
            .await
            .expect("sent");
        match r.status().as_u16() {
            200 => {
                seen.insert(id.clone());
            }
            429 => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!(seen.len(), BUDGET as usize, "{seen:?}");
    assert!(refused > 0);
    // What was shown stays readable; the limit is audited and in the metrics.
    let shown = seen.iter().next().expect("one");
    let again = crawler.get(&format!("/api/v1/patients/{shown}")).await;
    assert_eq!(again.status(), 200);
    // Each instance adds what it counted to the same entries (the other one within seconds).
    let started = Instant::now();
    let mut limit = audit(&app, "patient.disclosure_limit").await;
    while total(&limit) < refused && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        limit = audit(&app, "patient.disclosure_limit").await;
    }
    assert_eq!(total(&limit), refused);
    assert!(limit.iter().all(|e| e["actor_name"] == "Leaked"));
    let metrics = app.anonymous().text("/metrics").await;
    assert!(
        metrics.contains("reprise_refusals_total{reason=\"disclosure_limit\"}"),
        "{metrics}"
    );
    // Another account has its own budget.
    let agent = app.agent().await;
    let r = agent
        .post("/api/v1/patients/search", &json!({"q": "aar"}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn short_searches_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    app.create_patient("Dupont", "Marie").await;
    for q in ["du", "d m", "0470", "12345", "85.07.30", "85.07.30-033.29"] {
        let r = app
            .admin()
            .post("/api/v1/patients/search", &json!({ "q": q }))
            .await;
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem["errors"][0]["field"], "q", "{q}");
    }
    let r = app
        .admin()
        .post("/api/v1/patients/search", &json!({"q": "dup"}))
        .await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_answer_says_nosniff_and_personal_data_is_never_stored_by_caches() {
    let app = spawn_app_with(|_| {}).await;
    let (site, _) = app.create_site_and_service().await;
    let patient = app.create_patient("Dupont", "Marie").await;
    let admin = app.admin();
    let private = [
        admin.get(&format!("/api/v1/patients/{patient}")).await,
        admin
            .get(&format!("/api/v1/contact-list?site={site}&format=csv"))
            .await,
        admin
            .get(&format!("/api/v1/contact-list?site={site}&format=excel"))
            .await,
        app.anonymous().get("/api/v1/sites").await,
        app.anonymous().get("/sign-in").await,
        app.anonymous()
            .get(&format!("/answer/{}", "c".repeat(64)))
            .await,
    ];
    for r in &private {
        assert_eq!(
            header(r, "x-content-type-options"),
            Some("nosniff"),
            "{}",
            r.url()
        );
        assert_eq!(header(r, "cache-control"), Some("no-store"), "{}", r.url());
        assert_eq!(
            header(r, "strict-transport-security"),
            None,
            "http: no HSTS"
        );
    }
    let docs = app.anonymous().get("/docs/").await;
    let csp = header(&docs, "content-security-policy").expect("a policy on /docs");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"));
    assert_eq!(header(&docs, "x-frame-options"), Some("DENY"));
    for path in [
        "/docs/",
        "/static/app.css",
        "/health",
        "/metrics",
        "/api/openapi.json",
    ] {
        let r = app.anonymous().get(path).await;
        assert_eq!(
            header(&r, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }

    // Reached over https: browsers are told to keep to it.
    let app =
        spawn_app_with(|s| s.public_url = "https://reprise.vivalia.test".parse().expect("url"))
            .await;
    for path in ["/health", "/sign-in", "/api/v1/sites"] {
        let r = app.anonymous().get(path).await;
        assert_eq!(
            header(&r, "strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

/// Sets the session's last request `minutes` ago, as if nobody had used it since.
async fn idle_for(app: &TestApp, minutes: i64) {
    app.state
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use reprise::db::schema::web_sessions as w;
            let at = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(minutes);
            diesel::update(w::table)
                .set(w::last_seen_at.eq(at))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("updated");
}

#[tokio::test]
async fn a_page_session_ends_after_its_idle_minutes_and_each_request_keeps_it_alive() {
    let app = spawn_app_with(|s| s.session_idle = chrono::Duration::minutes(30)).await;
    let agent = app.agent().await;
    let web = WebClient::sign_in(&app, agent.token()).await;
    // 29 minutes without a request: still open, and this request restarts the clock.
    idle_for(&app, 29).await;
    assert_eq!(web.get("/agent").await.status(), 200);
    let seen: chrono::NaiveDateTime = app
        .state
        .db
        .read(|conn| {
            use diesel::prelude::*;
            use reprise::db::schema::web_sessions as w;
            w::table
                .select(w::last_seen_at)
                .first(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("read");
    assert!(chrono::Utc::now().naive_utc() - seen < chrono::Duration::minutes(1));
    // 31 minutes: to the sign-in page.
    idle_for(&app, 31).await;
    let r = web.get("/agent").await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), Some("/sign-in"));
}

#[tokio::test]
async fn tokens_may_expire_and_say_when_they_were_last_used() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.admin();
    for bad in [0, -1, 3651] {
        let r = admin
            .post(
                "/api/v1/users",
                &json!({"name": "Temp", "role": "agent", "expires_in_days": bad}),
            )
            .await;
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem["errors"][0]["field"], "expires_in_days");
    }
    let created: Value = admin
        .post(
            "/api/v1/users",
            &json!({"name": "Temp", "role": "agent", "expires_in_days": 7}),
        )
        .await
        .json()
        .await
        .expect("json");
    let (id, token) = (
        created["id"].as_str().expect("id").to_string(),
        created["token"].as_str().expect("token").to_string(),
    );
    let expires: chrono::DateTime<chrono::Utc> = created["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("time");
    let in_a_week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!((in_a_week - expires).num_seconds().abs() < 60);
    assert_eq!(app.user(&token).get("/api/v1/calls").await.status(), 200);
    // Its use is noted (off the request's path, within a moment).
    let started = Instant::now();
    loop {
        let users = admin.get_json("/api/v1/users").await;
        let me = users["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|u| u["id"] == id.as_str())
            .cloned()
            .expect("listed");
        if me["last_used_at"].is_string() {
            assert_eq!(me["expires_at"], created["expires_at"]);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{me}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Once its time is up: 401, within the token cache's second.
    let gone = id.clone();
    app.state
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use reprise::db::schema::users as u;
            let past = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1);
            diesel::update(u::table.filter(u::id.eq(&gone)))
                .set(u::expires_at.eq(Some(past)))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("expired");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_problem(app.user(&token).get("/api/v1/calls").await, 401).await;
    assert!(WebClient::try_sign_in(&app, &token, "fr").await.is_err());
}

#[tokio::test]
async fn a_secretary_cannot_tell_another_services_record_from_a_missing_one() {
    let app = spawn_app_with(|_| {}).await;
    let (site, mine) = app.create_site_and_service().await;
    let (other_site, theirs) = app.create_site_and_service().await;
    let patient = app.create_patient("Lambert", "Anne").await;
    let foreign = app
        .create_appointment(&patient, &other_site, &theirs, "2030-01-01T09:00:00Z")
        .await;
    let secretary = app.secretary(&[&mine]).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let read = |id: String| {
        let secretary = secretary.clone();
        async move {
            let r = secretary.get(&format!("/api/v1/appointments/{id}")).await;
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (a, b) = (read(foreign.clone()).await, read(unknown.clone()).await);
    assert_eq!(a.0, 404);
    assert_eq!(a.1["detail"], b.1["detail"], "the same answer");
    assert_eq!(a.1["title"], b.1["title"]);
    let patient_of = |id: String| {
        let secretary = secretary.clone();
        async move {
            let r = secretary.get(&format!("/api/v1/patients/{id}")).await;
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (a, b) = (patient_of(patient).await, patient_of(unknown).await);
    assert_eq!((a.0, &a.1["detail"]), (404, &b.1["detail"]));
    // A filter naming a service outside hers stays a 403: it names no record.
    let filter = secretary
        .get(&format!("/api/v1/appointments?service={theirs}"))
        .await;
    assert_problem(filter, 403).await;
    let _ = site;
}
