//! Spawns the real application on port 0 against its own database: a temporary SQLite file,
//! or, when `REPRISE_TEST_POSTGRES_URL` is set, a fresh PostgreSQL database dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use reprise::auth::Caller;
use reprise::config::Settings;
use reprise::db::{Backend, DatabaseUrl};
use reprise::domain::account::NewAccount;
use serde_json::Value;

pub const ROLES: [&str; 4] = ["admin", "coordinator", "secretary", "agent"];

/// A database of the test's own.
pub enum TestDb {
    // Held for its lifetime: the folder is removed on drop.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server: DatabaseUrl, name: String },
}

impl TestDb {
    /// SQLite by default; PostgreSQL when `REPRISE_TEST_POSTGRES_URL` names a server.
    pub fn create() -> (Self, DatabaseUrl) {
        match std::env::var("REPRISE_TEST_POSTGRES_URL") {
            Ok(raw) if !raw.is_empty() => {
                let server = DatabaseUrl::parse(&raw)
                    .expect("REPRISE_TEST_POSTGRES_URL is a postgres:// URL");
                assert_eq!(server.backend, Backend::Postgres);
                let name = format!("reprise_test_{}", uuid::Uuid::new_v4().simple());
                admin_sql(&server, &format!("CREATE DATABASE {name}"));
                let url = server
                    .with_database(&name)
                    .expect("a URL with a database name");
                (TestDb::Postgres { server, name }, url)
            }
            _ => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url =
                    DatabaseUrl::parse(&format!("sqlite://{}/reprise.db", dir.path().display()))
                        .expect("sqlite URL");
                (TestDb::Sqlite(dir), url)
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestDb::Sqlite(_) => Backend::Sqlite,
            TestDb::Postgres { .. } => Backend::Postgres,
        }
    }
}

fn admin_sql(server: &DatabaseUrl, sql: &str) {
    use diesel::connection::SimpleConnection;
    let mut conn = server
        .connect()
        .expect("the PostgreSQL test server answers");
    conn.batch_execute(sql).expect("administrative SQL runs");
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { server, name } = self {
            admin_sql(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// Outbox delivery with short delays, so that sending and retries happen within a test.
pub fn fast_delivery() -> reprise::email::DeliverySettings {
    use std::time::Duration;
    reprise::email::DeliverySettings {
        poll: Duration::from_millis(50),
        batch: 50,
        connections: 4,
        timeout: Duration::from_secs(5),
        lease: Duration::from_secs(60),
        retry_base: Duration::from_millis(200),
        retry_cap: Duration::from_secs(1),
        max_attempts: 1000,
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// An admin account created for the test: [`TestApp::admin`].
    admin: User,
    pub state: actix_web::web::Data<reprise::startup::AppState>,
    pub backend: Backend,
    /// The test's database, for a second process's worth of handles.
    pub database: DatabaseUrl,
    /// `REPRISE_OUTBOX_DIR` of the application (emails as `.eml` files without SMTP).
    pub outbox: std::path::PathBuf,
    _outbox: tempfile::TempDir,
    // Dropped last: the database outlives the handles above.
    _db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The application with settings changed by the test (an SMTP server, an outbox worker…).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let (db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("database created");
    let outbox = tempfile::tempdir().expect("outbox folder");
    // No outbox worker and no limits unless a test asks for them (see `spawn_app_with`,
    // tests/api/ratelimit.rs, tests/api/security.rs).
    let mut settings = Settings::for_local(url.clone(), outbox.path());
    configure(&mut settings);
    let app = reprise::startup::Application::build(settings)
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let (id, token) = create_account_directly(&state, "Test Admin", "admin", &[]).await;
    let admin = User {
        id: Some(id),
        token: Some(token),
        client: client.clone(),
        address: address.clone(),
    };
    TestApp {
        address,
        client,
        admin,
        state,
        backend: db.backend(),
        database: url,
        outbox: outbox.path().to_path_buf(),
        _outbox: outbox,
        _db: db,
    }
}

/// Creates an account without going through HTTP (for fixtures); returns (id, token).
pub async fn create_account_directly(
    state: &actix_web::web::Data<reprise::startup::AppState>,
    name: &str,
    role: &str,
    services: &[&str],
) -> (String, String) {
    let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
    let new = NewAccount::parse(name, role, &services).expect("valid account");
    let created = state
        .db
        .write(move |conn| {
            reprise::service::users::create_account(conn, &Caller::command_line(), new)
        })
        .await
        .expect("account created");
    (created.account.id, created.token)
}

/// A code no other test uses, for sites and services.
pub fn unique_code(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let salt = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    format!("{prefix}{n}{}", &salt[..4])
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// The admin account every test app starts with.
    pub fn admin(&self) -> &User {
        &self.admin
    }

    /// A caller without a token.
    pub fn anonymous(&self) -> User {
        self.caller(None)
    }

    /// A caller with this token (one a test got from the API, the command line, a report…).
    pub fn user(&self, token: &str) -> User {
        self.caller(Some(token))
    }

    /// A caller with this token, or without one.
    pub fn caller(&self, token: Option<&str>) -> User {
        User {
            id: None,
            token: token.map(str::to_string),
            client: self.client.clone(),
            address: self.address.clone(),
        }
    }

    /// A new account with this name, role and services (a secretary's), made without HTTP.
    pub async fn account(&self, name: &str, role: &str, services: &[&str]) -> User {
        let (id, token) = create_account_directly(&self.state, name, role, services).await;
        User {
            id: Some(id),
            ..self.user(&token)
        }
    }

    /// A new agent account, "Agent".
    pub async fn agent(&self) -> User {
        self.account("Agent", "agent", &[]).await
    }

    /// A new coordinator account, "Coordinator".
    pub async fn coordinator(&self) -> User {
        self.account("Coordinator", "coordinator", &[]).await
    }

    /// A new secretary account of these services, "Secretary".
    pub async fn secretary(&self, services: &[&str]) -> User {
        self.account("Secretary", "secretary", services).await
    }

    /// A telephone number no other callback of the test has (E.164, Libramont's zone).
    pub fn unique_phone() -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 1000;
        let salt = uuid::Uuid::new_v4().as_u128() % 900;
        format!("+3261{:03}{:03}", 100 + salt, n)
    }

    /// Opens a `requested` callback of a new number, as an admin logging a call with outcome
    /// `callback_scheduled`; returns its id.
    pub async fn open_callback(&self) -> String {
        let phone = Self::unique_phone();
        let r = self
            .admin()
            .post(
                "/api/v1/calls",
                &serde_json::json!({"reason": "other", "outcome": "callback_scheduled", "caller_phone": phone}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let page = self
            .admin()
            .get_json("/api/v1/callbacks?status=open&limit=1000")
            .await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["phone"] == phone.as_str())
            .and_then(|c| c["id"].as_str())
            .expect("the callback of the call")
            .to_string()
    }

    /// Creates a site and one service there as admin; returns (site, service) codes.
    /// A telephone system's token, made as `reprise cti-token create` makes it.
    pub async fn pbx_token(&self) -> String {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            reprise::service::telephony::create_pbx_token(
                &state.db,
                reprise::auth::Caller::command_line(),
                "PBX".into(),
            )
        })
        .await
        .expect("joined")
        .expect("a PBX token")
    }

    /// An agent account with a telephone extension, made through `POST /users`.
    pub async fn agent_with_extension(&self, extension: &str) -> User {
        let r = self
            .admin()
            .post(
                "/api/v1/users",
                &serde_json::json!({"name": format!("Agent {extension}"), "role": "agent",
                    "extension": extension}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.expect("json");
        User {
            id: created["id"].as_str().map(str::to_string),
            ..self.user(created["token"].as_str().expect("token"))
        }
    }

    /// A second instance of the application on the test's database, serving until the test
    /// ends: its base URL, and its outbox folder to hold for as long.
    pub async fn second_instance(&self) -> (String, tempfile::TempDir) {
        let outbox = tempfile::tempdir().expect("outbox");
        let other = reprise::startup::Application::build(Settings::for_local(
            self.database.clone(),
            outbox.path(),
        ))
        .await
        .expect("a second instance starts");
        let url = format!("http://127.0.0.1:{}", other.port());
        tokio::spawn(other.run_until_stopped());
        (url, outbox)
    }

    pub async fn create_site_and_service(&self) -> (String, String) {
        let site = unique_code("S");
        let service = format!("{site}-SVC");
        let r = self
            .admin()
            .post(
                "/api/v1/sites",
                &serde_json::json!({"code": site, "name": "Site", "kind": "hospital", "operating_rooms": 2}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let r = self
            .admin()
            .post(
                "/api/v1/services",
                &serde_json::json!({"code": service, "name": "Service", "site": site}),
            )
            .await;
        assert_eq!(r.status(), 201);
        (site, service)
    }

    /// Creates a patient as admin (no national number); returns its id.
    pub async fn create_patient(&self, last_name: &str, first_name: &str) -> String {
        let r = self
            .admin()
            .post(
                "/api/v1/patients",
                &serde_json::json!({"last_name": last_name, "first_name": first_name, "birth_date": "1960-05-04"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.expect("json");
        body["id"].as_str().expect("id").to_string()
    }

    /// Creates a patient as admin from a full body; returns its id.
    pub async fn create_patient_with(&self, body: Value) -> String {
        let r = self.admin().post("/api/v1/patients", &body).await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Creates a priority-2 operation as admin; returns its id.
    pub async fn create_appointment(
        &self,
        patient: &str,
        site: &str,
        service: &str,
        at: &str,
    ) -> String {
        self.create_appointment_with(serde_json::json!({
            "patient_id": patient, "site": site, "service": service, "kind": "operation",
            "label": "Opération", "scheduled_at": at, "priority": 2
        }))
        .await
    }

    pub async fn create_appointment_with(&self, body: Value) -> String {
        let r = self.admin().post("/api/v1/appointments", &body).await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// An incident over `[from, until)` at `site`: its scheduled care in the window is
    /// postponed and the site closes.
    pub async fn postpone(&self, site: &str, from: &str, until: &str) {
        let r = self
            .admin()
            .post(
                "/api/v1/incidents",
                &serde_json::json!({"title": "Incident", "started_at": from,
                                    "postpone_until": until, "sites": [site]}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }

    /// One token per role (the secretary bound to `service`).
    pub async fn tokens_by_role(&self, service: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for role in ROLES {
            let services: &[&str] = if role == "secretary" { &[service] } else { &[] };
            let (_, token) =
                create_account_directly(&self.state, &format!("T {role}"), role, services).await;
            out.push((role, token));
        }
        out
    }
}

/// Someone calling the API in a test: an account's token (or none) and the test's client.
/// Each request answers the response whatever its status: the test asserts what it expects.
#[derive(Clone)]
pub struct User {
    id: Option<String>,
    token: Option<String>,
    client: reqwest::Client,
    address: String,
}

impl User {
    /// Someone calling the service at `address` (another instance, a proxy) with `token`.
    pub fn at(address: &str, token: Option<&str>) -> User {
        User {
            id: None,
            token: token.map(str::to_string),
            client: reqwest::Client::new(),
            address: address.to_string(),
        }
    }

    /// The account's id (a user of [`TestApp::account`] and its shorthands, or the admin).
    pub fn id(&self) -> &str {
        self.id
            .as_deref()
            .expect("an account the test created, whose id it knows")
    }

    /// The token, for what takes one itself (a page's sign-in, a form).
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("a user with a token")
    }

    /// A request with this user's token, for a test that sets more (headers, a body).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.address, path));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path).sent().await
    }

    /// GET and parse the JSON answer, whatever the status (callers assert what they expect).
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON answer")
    }

    /// GET and read the answer as text, whatever the status (`/metrics`, a CSV export).
    pub async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("a text answer")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .json(body)
            .sent()
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.request(reqwest::Method::PUT, path)
            .json(body)
            .sent()
            .await
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path).sent().await
    }

    /// POST a CSV file (the imports).
    pub async fn post_csv(&self, path: &str, csv: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_raw(path, "text/csv", csv).await
    }

    /// POST a body as it is, with this content type (malformed or unexpected bodies).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .header("content-type", content_type)
            .body(body)
            .sent()
            .await
    }
}

/// `.sent().await` sends a request a test built and expects an answer (any status).
pub trait Sent {
    fn sent(self) -> impl std::future::Future<Output = reqwest::Response> + Send;
}

impl Sent for reqwest::RequestBuilder {
    async fn sent(self) -> reqwest::Response {
        self.send().await.expect("request sent")
    }
}

/// Asserts a problem+json body with this status, and returns it.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type was {content_type}"
    );
    let body: Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A test (or a part of one) cannot run because a tool is not installed: it fails where
/// `variable` (`REPRISE_REQUIRE_BROWSER`, `REPRISE_REQUIRE_LIBREOFFICE`) is set, as `.ci/run`
/// sets them after installing the tools, and is otherwise [`skipped`], `why` being its reason.
pub fn missing_tool(variable: &str, why: &str) {
    assert!(
        std::env::var_os(variable).is_none(),
        "{variable} is set, but {why}"
    );
    skipped(why);
}

/// Says that a test (or a part of one) did not run, and why: on stderr, and as a line of the
/// file `REPRISE_SKIP_LOG` names, which `.ci/run` counts and prints after each run, so that a
/// skipped test is seen in CI's summary and not only with `--nocapture`.
pub fn skipped(why: &str) {
    eprintln!("SKIPPED: {why}");
    if let Some(path) = std::env::var_os("REPRISE_SKIP_LOG") {
        use std::io::Write;
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("a test");
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(log, "{test}: {why}");
        }
    }
}
