//! Several instances (issue 21): three real `reprise serve` on one PostgreSQL behind Debian's
//! nginx, configured by the block of docs/operations.md ("Several instances") as it is written
//! there, and again with the instances connected through PgBouncer in transaction mode (the
//! page's other block) with `REPRISE_DB_PREPARED_STATEMENTS=off`. Each run has a database of
//! its own, and shows:
//!
//! - the three instances start together on the empty database (they take turns migrating);
//! - the audit log names the client beyond the proxy (`X-Forwarded-For`);
//! - the same `Idempotency-Key` sent at once to two instances gives one call;
//! - an account deleted through one instance is refused by every instance within a second;
//! - the disclosure budget holds across instances;
//! - calls logged through the proxy by several clients while one instance is killed and
//!   restarted are each stored once, under the id they were acknowledged with, and a key sent
//!   again after the kill answers the same call;
//! - the three outbox workers send each email once;
//! - the agents' page's event stream (`GET /agent/events`) passes through nginx unbuffered:
//!   the screen pop of a call answered arrives through the proxy.
//!
//! PostgreSQL only; nginx and pgbouncer are required where `REPRISE_REQUIRE_PROXIES` is set
//! (`.ci/run`), and the test is skipped without them elsewhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli::{create_token, serve_with};
use crate::crash::{lost_and_duplicated, stored_calls, Clients};
use crate::helpers::{free_port, missing_tool, skipped, unique_code, Sent, TestDb, User};
use crate::smtp_sink::Sink;

const INSTANCES: usize = 3;
/// `REPRISE_PATIENTS_PER_HOUR` of the instances.
const BUDGET: usize = 3;
/// Clients logging calls through the proxy at once while an instance is killed.
const CLIENTS: usize = 6;
/// Clients logging calls through the proxy at once for the rate (docs/operations.md).
const LOAD_CLIENTS: usize = 32;
/// Emails queued for the three workers.
const EMAILS: usize = 300;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pooling {
    /// The instances connect to PostgreSQL.
    Direct,
    /// The instances connect to PgBouncer in transaction mode.
    PgBouncer,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_nginx_on_one_postgresql() {
    run(Pooling::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behind_nginx_through_pgbouncer_in_transaction_mode() {
    run(Pooling::PgBouncer).await;
}

/// The executable `name` on the PATH or in /usr/sbin (where Debian puts both, off a user's PATH).
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The fenced block of docs/operations.md whose first line is `marker`, as it is written there.
fn documented(marker: &str) -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md");
    let page = std::fs::read_to_string(page).expect("docs/operations.md");
    let start = page
        .find(&format!("\n{marker}\n"))
        .unwrap_or_else(|| panic!("docs/operations.md has a block starting {marker:?}"))
        + 1;
    let end = page[start..].find("\n```").expect("the block ends") + start;
    page[start..=end].to_string()
}

/// `text` with `from` replaced by `to`, where `from` is there exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} once in:\n{text}");
    text.replacen(from, to, 1)
}

/// A process of the test's, run as itself or, when the test runs as root, as a user that
/// exists (PgBouncer refuses root): `setpriv` replaces itself with the program, so killing the
/// child kills the program.
fn command(program: &Path, unprivileged: Option<&str>) -> tokio::process::Command {
    let mut cmd = match unprivileged {
        Some(user) => {
            let mut c = tokio::process::Command::new("setpriv");
            c.args([
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
            ])
            .arg(program);
            c
        }
        None => tokio::process::Command::new(program),
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

fn output_of(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .expect("runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn running_as_root() -> bool {
    output_of("id", &["-u"]) == "0"
}

/// Waits until something listens on `port` (up to 10 s).
async fn listening(port: u16, what: &str) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not listen on {port}");
}

/// nginx with the documented site in front of `upstreams`, in a folder of its own.
struct Nginx {
    port: u16,
    _process: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn start_nginx(binary: &Path, upstreams: &[u16]) -> Nginx {
    let dir = tempfile::tempdir().expect("nginx's folder");
    let port = free_port();
    let mut site = documented("# reprise: nginx.conf");
    for (i, upstream) in upstreams.iter().enumerate() {
        site = replace_once(
            &site,
            &format!("reprise-{}.hospital.internal:8080", i + 1),
            &format!("127.0.0.1:{upstream}"),
        );
    }
    site = replace_once(
        &site,
        "    listen 443 ssl;\n    ssl_certificate     /etc/nginx/tls/reprise.crt;\n    ssl_certificate_key /etc/nginx/tls/reprise.key;\n",
        &format!("    listen 127.0.0.1:{port};\n"),
    );
    let d = dir.path().display();
    std::fs::write(dir.path().join("reprise.conf"), site).expect("site written");
    // Only where the process keeps its files; one process (no master to outlive its workers
    // when the test ends); as root, workers as root: the test's folder is root's alone.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    let main = format!(
        "{user}master_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
         proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
         uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
         include {d}/reprise.conf;\n}}\n"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main).expect("nginx.conf written");
    let args = |cmd: &mut std::process::Command| {
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf);
    };
    let mut check = std::process::Command::new(binary);
    args(&mut check);
    let check = check.arg("-t").output().expect("nginx -t runs");
    assert!(
        check.status.success(),
        "nginx refuses the documented configuration: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut serve = command(binary, None);
    args(serve.as_std_mut());
    let process = serve
        .args(["-g", "daemon off;"])
        .spawn()
        .expect("nginx starts");
    listening(port, "nginx").await;
    Nginx {
        port,
        _process: process,
        _dir: dir,
    }
}

/// PgBouncer with the documented configuration in front of the test's database.
struct PgBouncer {
    url: String,
    _process: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn start_pgbouncer(binary: &Path, database: &reprise::db::DatabaseUrl) -> PgBouncer {
    let server = url::Url::parse(&database.expose()).expect("the database URL");
    let user = match server.username() {
        "" => "postgres",
        name => name,
    };
    let name = server.path().trim_start_matches('/');
    let host = server.host_str().expect("a host");
    let dir = tempfile::tempdir().expect("PgBouncer's folder");
    let port = free_port();
    // The server's own password, if any, comes from the auth file too (as in production);
    // without one (a server that trusts the test), a random one for PgBouncer's clients.
    let random = uuid::Uuid::new_v4().simple().to_string();
    let password = server.password().unwrap_or(&random);
    let d = dir.path().display();
    let mut ini = replace_once(
        &documented("; reprise: pgbouncer.ini"),
        "host=db.hospital.internal port=5432 dbname=reprise",
        &format!(
            "host={host} port={} dbname={name}",
            server.port().unwrap_or(5432)
        ),
    );
    ini.push_str(&format!(
        "listen_port = {port}\nauth_file = {d}/userlist.txt\nlogfile = {d}/pgbouncer.log\n\
         unix_socket_dir =\n"
    ));
    let files = [
        ("pgbouncer.ini", ini),
        ("userlist.txt", format!("\"{user}\" \"{password}\"\n")),
    ];
    // As root, PgBouncer runs as postgres (as Debian's service does), in a folder of its own.
    let owner = running_as_root().then(|| {
        if output_of("id", &["-u", "postgres"]).is_empty() {
            "nobody"
        } else {
            "postgres"
        }
    });
    for (file, content) in &files {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(dir.path().join(file))
            .expect("a file of PgBouncer's");
        f.write_all(content.as_bytes()).expect("written");
    }
    if let Some(owner) = owner {
        let uid: u32 = output_of("id", &["-u", owner]).parse().expect("a uid");
        let gid: u32 = output_of("id", &["-g", owner]).parse().expect("a gid");
        for path in [
            dir.path().to_path_buf(),
            dir.path().join("pgbouncer.ini"),
            dir.path().join("userlist.txt"),
        ] {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
        }
    }
    let process = command(binary, owner)
        .arg(dir.path().join("pgbouncer.ini"))
        .spawn()
        .expect("pgbouncer starts");
    listening(port, "pgbouncer").await;
    PgBouncer {
        url: format!("postgres://{user}:{password}@127.0.0.1:{port}/reprise"),
        _process: process,
        _dir: dir,
    }
}

/// Three `reprise serve` with the same settings, each on its port.
struct Instances {
    ports: Vec<u16>,
    processes: Vec<tokio::process::Child>,
    settings: Vec<(&'static str, String)>,
    database: String,
    outbox: tempfile::TempDir,
}

impl Instances {
    async fn start(database: String, settings: Vec<(&'static str, String)>) -> Self {
        let mut instances = Instances {
            ports: (0..INSTANCES).map(|_| free_port()).collect(),
            processes: Vec::new(),
            settings,
            database,
            outbox: tempfile::tempdir().expect("outbox"),
        };
        // Together, on the empty database: each applies pending migrations at start-up.
        let (a, b, c) = tokio::join!(instances.spawn(0), instances.spawn(1), instances.spawn(2));
        instances.processes = vec![a, b, c];
        instances
    }

    async fn spawn(&self, i: usize) -> tokio::process::Child {
        let settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        serve_with(&self.database, self.ports[i], self.outbox.path(), &settings).await
    }

    fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// SIGKILL, then a new process on the same port.
    async fn kill(&mut self, i: usize) {
        self.processes[i].start_kill().expect("SIGKILL");
        let _ = self.processes[i].wait().await;
    }

    async fn restart(&mut self, i: usize) {
        self.processes[i] = self.spawn(i).await;
    }
}

async fn run(pooling: Pooling) {
    let (db, url) = tokio::task::spawn_blocking(TestDb::create)
        .await
        .expect("database");
    if db.backend() != reprise::db::Backend::Postgres {
        skipped("several instances share one PostgreSQL database");
        return;
    }
    let Some(nginx_binary) = tool("nginx") else {
        missing_tool("REPRISE_REQUIRE_PROXIES", "nginx is not installed");
        return;
    };
    let pgbouncer_binary = tool("pgbouncer");
    if pooling == Pooling::PgBouncer && pgbouncer_binary.is_none() {
        missing_tool("REPRISE_REQUIRE_PROXIES", "pgbouncer is not installed");
        return;
    }
    let started = Instant::now();
    let sink = Sink::start(true);
    // 20 ms a message, four connections a worker: one worker alone would take 1.5 s for
    // the emails, while the others look for work every second.
    sink.slow_down(Duration::from_millis(20));
    let mut settings = vec![
        ("REPRISE_PATIENTS_PER_HOUR", BUDGET.to_string()),
        ("REPRISE_SMTP_URL", sink.url()),
        ("REPRISE_TRUSTED_PROXIES", "127.0.0.1".to_string()),
        ("REPRISE_DB_POOL", "4".to_string()),
    ];
    let pgbouncer = match (pooling, &pgbouncer_binary) {
        (Pooling::PgBouncer, Some(binary)) => {
            settings.push(("REPRISE_DB_PREPARED_STATEMENTS", "off".to_string()));
            Some(start_pgbouncer(binary, &url).await)
        }
        _ => None,
    };
    let database = pgbouncer
        .as_ref()
        .map_or_else(|| url.expose(), |p| p.url.clone());
    let mut instances = Instances::start(database, settings).await;
    let nginx = start_nginx(&nginx_binary, &instances.ports).await;
    let proxy = format!("http://127.0.0.1:{}", nginx.port);
    let admin_token = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || create_token(&url, "Admin", "admin"))
            .await
            .expect("token")
    };
    let admin = User::at(&proxy, Some(&admin_token));

    the_audit_names_the_client_beyond_the_proxy(&admin, &proxy).await;
    let mut acknowledged = same_key_at_once(&admin, &instances).await;
    let refused_after = deleted_everywhere_within_a_second(&admin, &instances).await;
    disclosure_budget_across_instances(&admin, &instances).await;

    // Calls per second through the proxy, nothing killed.
    let (_, agent) = account(&admin, "Throughput", "agent").await;
    let load = Clients::default();
    let clients: Vec<_> = (0..LOAD_CLIENTS)
        .map(|c| load.spawn(format!("load{c}"), proxy.clone(), agent.token().to_string()))
        .collect();
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connections = server_connections(&url).await;
    let logged = load.stop(clients).await;
    let per_second = logged.len() as f64 / measured.elapsed().as_secs_f64();
    acknowledged.extend(logged);

    let (through_kills, retried) = killed_and_restarted(&mut instances, &proxy, &agent).await;
    let during_kills = through_kills.len();
    acknowledged.extend(through_kills);
    let stored = stored_calls(&url).await;
    let (lost, duplicated) = lost_and_duplicated(&acknowledged, &stored);
    assert_eq!(lost, 0, "an acknowledged call is missing");
    assert_eq!(duplicated, 0, "a call is stored twice");
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "a call nobody acknowledged"
    );

    let senders = each_email_once(&admin, &instances, &sink).await;
    screen_pop_through_the_proxy(&admin, &proxy, &url).await;
    println!(
        "{pooling:?}: {per_second:.0} calls/s through nginx with {INSTANCES} instances and \
         {LOAD_CLIENTS} clients ({connections} PostgreSQL connections for the test's database); \
         {during_kills} calls during 3 kills ({retried} requests sent again); deleted account \
         refused everywhere after {refused_after:?}; emails sent per instance: {senders:?}; \
         {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    drop(nginx);
    drop(instances);
    drop(pgbouncer);
}

/// Clients log calls through the proxy while instance 1 is killed and restarted three times;
/// one call acknowledged by instance 1 just before is sent again after its kill, to the proxy,
/// and answers the same call. The acknowledgements, and how many requests were sent again.
async fn killed_and_restarted(
    instances: &mut Instances,
    proxy: &str,
    agent: &User,
) -> (HashMap<String, Vec<String>>, usize) {
    let crash = Clients::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            crash.spawn(
                format!("kill{c}"),
                proxy.to_string(),
                agent.token().to_string(),
            )
        })
        .collect();
    let body = json!({"reason": "results", "outcome": "informed"});
    let first = call_with_key(&instances.base(1), agent, "across-the-kill", &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        instances.kill(1).await;
        if round == 0 {
            // The client never saw the answer and sends it again: the proxy picks another
            // instance, which answers the same call.
            let again = call_with_key(proxy, agent, "across-the-kill", &body).await;
            assert_eq!(again.status(), 200);
            let again: Value = again.json().await.expect("json");
            assert_eq!(again["id"], first["id"]);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        instances.restart(1).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut acknowledged = crash.stop(clients).await;
    assert!(
        acknowledged.len() > 30,
        "calls were logged during the kills"
    );
    acknowledged.insert(
        "across-the-kill".into(),
        vec![first["id"].as_str().expect("id").to_string()],
    );
    (
        acknowledged,
        crash.retried.load(std::sync::atomic::Ordering::SeqCst),
    )
}

/// `POST /api/v1/calls` at `base` (an instance, the proxy) with an `Idempotency-Key`.
async fn call_with_key(base: &str, agent: &User, key: &str, body: &Value) -> reqwest::Response {
    User::at(base, Some(agent.token()))
        .request(reqwest::Method::POST, "/api/v1/calls")
        .header("Idempotency-Key", key)
        .json(body)
        .sent()
        .await
}

/// An account made by `admin` (through the proxy): its id, and its token (without an address:
/// each use says which instance it calls, with [`User::at`]).
async fn account(admin: &User, name: &str, role: &str) -> (String, User) {
    let r = admin
        .post("/api/v1/users", &json!({"name": name, "role": role}))
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_string();
    (
        id,
        User::at("", Some(created["token"].as_str().expect("token"))),
    )
}

/// nginx adds the address it had the request from to `X-Forwarded-For`, and the instances
/// believe the header from the proxy (`REPRISE_TRUSTED_PROXIES`): the audit log names the
/// client beyond it. Here every hop is 127.0.0.1, so the client says where it is from itself.
async fn the_audit_names_the_client_beyond_the_proxy(admin: &User, proxy: &str) {
    let refused = User::at(proxy, Some("rp_not-a-token"))
        .request(reqwest::Method::GET, "/api/v1/calls")
        .header("X-Forwarded-For", "203.0.113.9")
        .sent()
        .await;
    assert_eq!(refused.status(), 401);
    let audit = admin.get_json("/api/v1/audit?action=auth.denied").await;
    let addresses: Vec<&Value> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| &e["address"])
        .collect();
    assert_eq!(addresses, [&json!("203.0.113.9")], "{audit}");
}

/// The same key sent at the same moment to two instances: one 201 and one 200, the same call.
async fn same_key_at_once(admin: &User, instances: &Instances) -> HashMap<String, Vec<String>> {
    let (_, agent) = account(admin, "Twins", "agent").await;
    let (a, b) = (instances.base(0), instances.base(2));
    let mut acknowledged = HashMap::new();
    for k in 0..10 {
        let key = format!("twin-{k}");
        let body = json!({"reason": "prescription", "outcome": "informed", "notes": key});
        let (ra, rb) = tokio::join!(
            call_with_key(&a, &agent, &key, &body),
            call_with_key(&b, &agent, &key, &body)
        );
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort_unstable();
        let (ca, cb): (Value, Value) = (
            ra.json().await.expect("json"),
            rb.json().await.expect("json"),
        );
        assert_eq!(statuses, [200, 201], "{key}: {ca} {cb}");
        assert_eq!(ca["id"], cb["id"], "{key}");
        acknowledged.insert(key, vec![ca["id"].as_str().expect("id").to_string()]);
    }
    acknowledged
}

/// An account deleted through instance 0, after every instance served it: each refuses it
/// within a second (polled every 50 ms: no request sent a second after the deletion is
/// accepted); returns when the last one refused it, from the deletion.
async fn deleted_everywhere_within_a_second(admin: &User, instances: &Instances) -> Duration {
    let (id, leaving) = account(admin, "Leaving", "agent").await;
    let on: Vec<User> = (0..INSTANCES)
        .map(|i| User::at(&instances.base(i), Some(leaving.token())))
        .collect();
    // Each instance has just checked the token: it trusts it for up to a second.
    for user in &on {
        assert_eq!(user.get("/api/v1/calls?limit=1").await.status(), 200);
    }
    // Every lookup of the token that any instance made before this moment is trusted for a
    // second at most: from then on, nothing may accept it.
    let at = Instant::now();
    let deleted = User::at(&instances.base(0), Some(admin.token()))
        .delete(&format!("/api/v1/users/{id}"))
        .await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let polls = on.iter().map(|user| async move {
        let mut polls = 0;
        loop {
            let sent = at.elapsed();
            let status = user.get("/api/v1/calls?limit=1").await.status();
            polls += 1;
            if status == 401 {
                return (sent, polls);
            }
            assert_eq!(status, 200);
            assert!(
                sent < Duration::from_secs(1),
                "accepted {sent:?} after its deletion"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let refused = futures_util::future::join_all(polls).await;
    assert_eq!(refused[0].1, 1, "the deleting instance refuses at once");
    let last = refused
        .iter()
        .map(|(sent, _)| *sent)
        .max()
        .unwrap_or_default();
    last
}

/// Distinct patients read in turn on each instance: the budget's worth are shown, the next
/// ones refused whichever instance serves them, and those shown stay readable.
async fn disclosure_budget_across_instances(admin: &User, instances: &Instances) {
    let mut patients = Vec::new();
    for n in 0..BUDGET + 2 {
        let r = admin
            .post(
                "/api/v1/patients",
                &json!({"last_name": format!("Budget{n}"), "first_name": "Test",
                        "birth_date": "1960-01-01"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let p: Value = r.json().await.expect("json");
        patients.push(p["id"].as_str().expect("id").to_string());
    }
    // The budget is per clock hour: a run across the hour's turn starts again.
    for attempt in 0..2 {
        let hour = chrono::Utc::now().format("%H").to_string();
        let (_, reader) = account(admin, &format!("Reader{attempt}"), "agent").await;
        let mut statuses = Vec::new();
        for (n, patient) in patients.iter().enumerate() {
            let on = User::at(&instances.base(n % INSTANCES), Some(reader.token()));
            statuses.push(
                on.get(&format!("/api/v1/patients/{patient}"))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        let again = User::at(&instances.base(2), Some(reader.token()))
            .get(&format!("/api/v1/patients/{}", patients[0]))
            .await
            .status();
        if chrono::Utc::now().format("%H").to_string() != hour && attempt == 0 {
            continue;
        }
        let mut expected = vec![200; BUDGET];
        expected.extend([429, 429]);
        assert_eq!(statuses, expected, "instances 0, 1, 2, 0, 1");
        assert_eq!(again, 200, "a patient already shown");
        return;
    }
}

/// Connections PostgreSQL has open to the test's database (the instances', or PgBouncer's).
async fn server_connections(url: &reprise::db::DatabaseUrl) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let url = url.clone();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = url.connect().expect("the database");
        let reprise::db::DbConnection::Pg(pg) = &mut conn else {
            unreachable!("PostgreSQL only")
        };
        let count: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .get_result(pg)
        .expect("counted");
        count.n
    })
    .await
    .expect("joined")
}

/// `EMAILS` postponed appointments queue one email each; the three workers send them all, each
/// once. Returns how many each instance sent.
async fn each_email_once(admin: &User, instances: &Instances, sink: &Sink) -> Vec<u64> {
    let site = unique_code("ML");
    let service = format!("{site}-ORTHO");
    let r = admin
        .post(
            "/api/v1/sites",
            &json!({"code": site, "name": "Marche", "kind": "hospital", "operating_rooms": 2}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = admin
        .post(
            "/api/v1/services",
            &json!({"code": service, "name": "Orthopédie", "site": site}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let header = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    let mut csv = format!("{header}\n");
    for i in 0..EMAILS {
        csv.push_str(&format!(
            ",Patient{i},Anne,1950-01-01,,p{i}@example.be,fr,true,{site},{service},consultation,Suivi,2022-05-16 09:30,3,false,false\n"
        ));
    }
    let r = admin.post_csv("/api/v1/appointments/import", csv).await;
    assert_eq!(r.status(), 200);
    let r = admin
        .post(
            "/api/v1/incidents",
            &json!({"title": "Panne", "started_at": "2022-03-20T00:00:00+01:00",
                    "postpone_until": "2022-12-31T00:00:00+01:00", "sites": [site]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let incident: Value = r.json().await.expect("json");
    assert_eq!(incident["notifications_queued"], EMAILS);

    let received = sink.wait_for(EMAILS, Duration::from_secs(60)).await;
    // Long enough for a second send of anything claimed twice to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received_later = sink.received();
    assert_eq!(received_later.len(), received.len(), "nothing more arrives");
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for r in &received_later {
        *per_recipient.entry(r.to.join(",")).or_default() += 1;
        let message = mail_parser::MessageParser::default()
            .parse(&r.raw)
            .expect("a MIME message");
        let id = message.message_id().expect("a Message-ID").to_string();
        *per_message.entry(id).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), EMAILS, "every patient got one");
    assert!(per_recipient.values().all(|n| *n == 1), "{per_recipient:?}");
    assert_eq!(per_message.len(), EMAILS);
    assert!(per_message.values().all(|n| *n == 1), "{per_message:?}");
    // Each worker counts what it sent: together, each email once.
    let mut senders = Vec::new();
    for i in 0..INSTANCES {
        let metrics = User::at(&instances.base(i), None).text("/metrics").await;
        let sent = metrics
            .lines()
            .find_map(|l| l.strip_prefix("reprise_notification_deliveries_total{result=\"sent\"} "))
            .map_or(0, |n| n.trim().parse().expect("a count"));
        senders.push(sent);
    }
    assert_eq!(senders.iter().sum::<u64>(), EMAILS as u64, "{senders:?}");
    // Each claims batches of 64, and looks again every second: the others claim while one
    // sends.
    assert!(
        senders.iter().filter(|n| **n > 0).count() >= 2,
        "the workers shared the outbox: {senders:?}"
    );
    senders
}

/// An agent's page listens through nginx (`location = /agent/events` of docs/operations.md)
/// while the PBX reports the agent's answer: the pop arrives through the proxy, which neither
/// holds it back in a buffer nor cuts the stream.
async fn screen_pop_through_the_proxy(admin: &User, proxy: &str, url: &reprise::db::DatabaseUrl) {
    let pbx = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || crate::cli::create_pbx_token(&url, "PBX"))
            .await
            .expect("PBX token")
    };
    let r = admin
        .post(
            "/api/v1/users",
            &json!({"name": "Agent 301", "role": "agent", "extension": "301"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    let agent =
        crate::web::WebClient::sign_in_at(proxy, created["token"].as_str().expect("token")).await;
    let mut stream = crate::screen_pop::Stream::open(agent.get("/agent/events").await).await;
    let pbx_client = reqwest::Client::new();
    for event in [
        vec![("event", "newCall")],
        vec![("event", "answer"), ("answeringNumber", "301")],
    ] {
        let mut fields = vec![
            ("callId", "proxied-1"),
            ("direction", "in"),
            ("from", "061234567"),
            ("to", "+3263553000"),
        ];
        fields.extend(event);
        let r = pbx_client
            .post(format!("{proxy}/api/v1/cti/{pbx}"))
            .form(&fields)
            .send()
            .await
            .expect("PBX event sent");
        assert_eq!(r.status(), 200);
    }
    let (event, _, data) = stream
        .next(Duration::from_secs(10))
        .await
        .expect("the pop came through the proxy");
    assert_eq!(event, "pop");
    assert_eq!(data["phone"], "+3261234567");
}
