//! What the benchmarks share: their databases, sizes, percentiles and the in-process service.
//! Each bench uses a part of it.
#![allow(dead_code)]

use diesel::connection::SimpleConnection;
use reprise::config::Settings;
use reprise::db::appointments::AppointmentRow;
use reprise::db::{self, Backend, DatabaseUrl, Db};
use reprise::error::AppError;

/// `n` times `BENCH_SCALE` (default 1), at least `min`: `BENCH_SCALE=0.1` for a quick look.
pub fn scale(n: usize, min: usize) -> usize {
    let factor: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64) * factor).max(min as f64) as usize
}

/// SQLite always; PostgreSQL too when `REPRISE_TEST_POSTGRES_URL` names a server.
pub fn targets() -> Vec<(Backend, Option<DatabaseUrl>)> {
    let mut targets = vec![(Backend::Sqlite, None)];
    if let Ok(raw) = std::env::var("REPRISE_TEST_POSTGRES_URL") {
        if !raw.is_empty() {
            let url = DatabaseUrl::parse(&raw).expect("a postgres:// URL");
            targets.push((Backend::Postgres, Some(url)));
        }
    }
    // `BENCH_ONLY=postgres` (or `sqlite`): one backend, for a quicker look.
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        targets.retain(|(backend, _)| backend.name() == only);
    }
    targets
}

pub fn admin(server: &DatabaseUrl, sql: &str) {
    let mut conn = server.connect().expect("the server answers");
    conn.batch_execute(sql).expect("admin SQL");
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A database of the bench's own (a temporary SQLite file, or a new PostgreSQL database),
/// removed afterwards.
pub struct BenchDb {
    pub url: DatabaseUrl,
    pub dir: tempfile::TempDir,
    server: Option<DatabaseUrl>,
    name: String,
}

impl BenchDb {
    pub fn create(backend: Backend, server: Option<&DatabaseUrl>, label: &str) -> Self {
        let name = format!("reprise_bench_{label}_{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().expect("temporary folder");
        match (backend, server) {
            (Backend::Postgres, Some(server)) => {
                admin(server, &format!("CREATE DATABASE {name}"));
                Self {
                    url: server.with_database(&name).expect("url"),
                    dir,
                    server: Some(server.clone()),
                    name,
                }
            }
            _ => Self {
                url: DatabaseUrl::parse(&format!("sqlite://{}/{name}.db", dir.path().display()))
                    .expect("url"),
                dir,
                server: None,
                name,
            },
        }
    }

    pub fn open(&self) -> Db {
        let db = Db::connect(&self.url, 4).expect("database opens");
        db.migrate().expect("migrations apply");
        db
    }

    /// An identical copy (SQLite: the file; PostgreSQL: a template). Close `self` first.
    pub fn copy(&self, label: &str) -> BenchDb {
        let copy = BenchDb::create(self.url.backend, self.server.as_ref(), label);
        match &self.server {
            Some(server) => {
                admin(server, &format!("DROP DATABASE {}", copy.name));
                admin(
                    server,
                    &format!("CREATE DATABASE {} TEMPLATE {}", copy.name, self.name),
                );
            }
            None => {
                let path = |u: &DatabaseUrl| u.expose().trim_start_matches("sqlite://").to_string();
                std::fs::copy(path(&self.url), path(&copy.url)).expect("copy");
            }
        }
        copy
    }

    /// Starts the service on this database, port 0; returns its base URL and state.
    pub async fn serve(
        &self,
        pool: u32,
    ) -> (String, actix_web::web::Data<reprise::startup::AppState>) {
        self.serve_with(pool, |_| {}).await
    }

    /// [`BenchDb::serve`] with settings changed by the bench.
    pub async fn serve_with(
        &self,
        pool: u32,
        configure: impl FnOnce(&mut Settings),
    ) -> (String, actix_web::web::Data<reprise::startup::AppState>) {
        let mut settings = Settings::for_local(self.url.clone(), self.dir.path().join("outbox"));
        settings.db_pool = pool;
        // The benchmarks measure the service's capacity, not its limits; but as in production,
        // valid anonymous requests spend nothing, yet each one asks...
        settings.rate_anonymous = Some(60);
        // ...and the disclosure budget is counted (one account searches all the bench long),
        // never reached.
        settings.patients_per_hour = Some(1_000_000);
        configure(&mut settings);
        // With the calls route without storage, the calls bench's HTTP ceiling.
        let app = reprise::startup::Application::build_with(settings, true)
            .await
            .expect("the service starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        tokio::spawn(app.run_until_stopped());
        (base, state)
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            admin(
                server,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
        }
    }
}

/// A new account named `name` with `role` (and a telephone `extension`) on the served
/// service; its token.
pub async fn account(
    state: &actix_web::web::Data<reprise::startup::AppState>,
    name: &str,
    role: &str,
    extension: Option<String>,
) -> String {
    let mut new = reprise::domain::account::NewAccount::parse(name, role, &[]).expect("account");
    new.extension = extension;
    state
        .db
        .write(move |conn| {
            reprise::service::users::create_account(
                conn,
                &reprise::auth::Caller::command_line(),
                new,
            )
        })
        .await
        .expect("account")
        .token
}

/// A tokio runtime with the machine's two workers, for the benches that serve HTTP.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub const SITES: [&str; 4] = ["ARL", "MAR", "LIB", "BAS"];
pub const SERVICES_PER_SITE: usize = 5;

/// The four Vivalia hospitals, five services each; returns (site, service) codes.
pub fn seed_sites(db: &Db) -> Vec<(String, String)> {
    db.write_blocking(|conn| {
        let mut services = Vec::new();
        for site in SITES {
            reprise::db::sites::insert_site(
                conn,
                &reprise::db::sites::SiteRow {
                    code: site.into(),
                    name: site.into(),
                    kind: reprise::domain::SiteKind::Hospital,
                    operating_rooms: 4,
                    status: reprise::domain::site::SiteStatus::Open,
                    programme: None,
                    reopened_at: None,
                    reopening_rank: None,
                    created_at: reprise::domain::now(),
                    operating_rooms_open: None,
                },
            )?;
            for i in 0..SERVICES_PER_SITE {
                let code = format!("{site}-S{i}");
                reprise::db::sites::insert_service(
                    conn,
                    &reprise::db::sites::ServiceRow {
                        code: code.clone(),
                        name: code.clone(),
                        site_code: site.into(),
                        secretariat_email: None,
                        secretariat_phone: None,
                        created_at: reprise::domain::now(),
                    },
                )?;
                services.push((site.to_string(), code));
            }
        }
        Ok::<_, reprise::error::AppError>(services)
    })
    .expect("sites")
}

/// `n` people of the seeded stream as patient rows (without national numbers: two streams
/// filled into one database could meet on one).
#[allow(dead_code)]
pub fn patient_rows(seed: u64, n: usize) -> Vec<reprise::db::patients::PatientRow> {
    use reprise::domain::patient::search_key;
    reprise::demo::People::new(seed)
        .take(n)
        .map(|p| reprise::db::patients::PatientRow {
            id: uuid::Uuid::now_v7().to_string(),
            national_number: None,
            last_name_key: search_key(&p.last_name),
            first_name_key: search_key(&p.first_name),
            last_name: p.last_name,
            first_name: p.first_name,
            birth_date: p.birth_date,
            phone: p.phone,
            email: p.email,
            language: p.language,
            email_consent: p.email_consent,
            import_id: None,
            created_at: reprise::domain::now(),
        })
        .collect()
}

/// Resident memory of this process, in bytes.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

pub fn now() -> chrono::NaiveDateTime {
    reprise::domain::now()
}

pub fn site_row(code: &str) -> db::sites::SiteRow {
    db::sites::SiteRow {
        code: code.into(),
        name: code.into(),
        kind: reprise::domain::SiteKind::Hospital,
        operating_rooms: 4,
        status: reprise::domain::site::SiteStatus::Open,
        programme: None,
        reopened_at: None,
        reopening_rank: None,
        created_at: now(),
        operating_rooms_open: None,
    }
}

/// `appointments` postponed appointments at `site` over `patients` new patients.
pub fn fill(db: &db::Db, site: &str, patients: usize, appointments: usize, seed: u64) {
    let site = site.to_string();
    let service = format!("{site}-S");
    let (s, svc) = (site.clone(), service.clone());
    db.write_blocking(move |conn| {
        db::sites::insert_site(conn, &site_row(&s))?;
        db::sites::insert_service(
            conn,
            &db::sites::ServiceRow {
                code: svc.clone(),
                name: svc,
                site_code: s,
                secretariat_email: None,
                secretariat_phone: None,
                created_at: now(),
            },
        )?;
        Ok::<_, AppError>(())
    })
    .expect("site");
    let rows = patient_rows(seed, patients);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    for chunk in rows.chunks(50_000) {
        let chunk = chunk.to_vec();
        db.write_blocking(move |conn| {
            db::patients::insert_many(conn, &chunk).map_err(AppError::from)
        })
        .expect("patients");
    }
    let base = chrono::NaiveDate::from_ymd_opt(2022, 5, 14)
        .and_then(|d| d.and_hms_opt(6, 0, 0))
        .expect("date");
    let mut i = 0;
    while i < appointments {
        let n = (appointments - i).min(50_000);
        let chunk: Vec<AppointmentRow> = (i..i + n)
            .map(|k| {
                let at = base + chrono::Duration::minutes(((k * 37) % (21 * 24 * 60)) as i64);
                AppointmentRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    patient_id: ids[k % ids.len()].clone(),
                    site_code: site.clone(),
                    service_code: service.clone(),
                    kind: reprise::domain::appointment::Kind::Consultation,
                    label: "Consultation de contrôle".into(),
                    original_scheduled_at: at,
                    scheduled_at: at,
                    priority: (k % 4) as i32 + 1,
                    urgent: false,
                    essential: false,
                    status: reprise::domain::appointment::Status::Postponed,
                    incident_id: None,
                    postponed_at: Some(at),
                    import_id: None,
                    created_at: now(),
                    updated_at: now(),
                    reached_at: None,
                    proposed_at: None,
                }
            })
            .collect();
        db.write_blocking(move |conn| {
            db::appointments::insert_many(conn, &chunk).map_err(AppError::from)
        })
        .expect("appointments");
        i += n;
    }
}
