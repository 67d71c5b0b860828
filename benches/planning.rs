//! `cargo bench --bench planning`: planning the reopening of a site with 50,000 postponed
//! appointments (half operations of three lengths, half consultations, five services) over a
//! year, through `POST /api/v1/sites/{code}/plan`, against a raw SELECT of the same rows in the
//! same order in the same run; then the same plan committed. SQLite, and PostgreSQL when
//! `REPRISE_TEST_POSTGRES_URL` is set. `BENCH_SCALE=0.1` for a quick look.

mod common;

use reprise::domain::appointment::Kind;
use std::time::Instant;

use common::{scale, targets, BenchDb};
use reprise::auth::Caller;
use reprise::db::appointments::AppointmentRow;
use reprise::db::{self, DatabaseUrl};
use reprise::domain::account::NewAccount;
use reprise::error::AppError;

const SITE: &str = "ARL";
const LABELS: [(&str, i32); 3] = [
    ("Arthroscopie", 60),
    ("Prothèse de genou", 150),
    ("Cholécystectomie", 90),
];

fn now() -> chrono::NaiveDateTime {
    reprise::domain::now()
}

/// The site's five services with their capacity, `patients` patients and `n` postponed
/// appointments.
fn fill(db: &db::Db, patients: usize, n: usize) -> Vec<String> {
    let services: Vec<String> = common::seed_sites(db)
        .into_iter()
        .filter(|(site, _)| site == SITE)
        .map(|(_, service)| service)
        .collect();
    let svc = services.clone();
    db.write_blocking(move |conn| {
        db::planning::set_session_minutes(conn, SITE, 480)?;
        for s in &svc {
            db::planning::set_service_capacity(
                conn,
                s,
                Some(40),
                Some(120),
                reprise::domain::now(),
            )?;
            let durations: Vec<(String, i32)> =
                LABELS.iter().map(|(l, m)| (l.to_string(), *m)).collect();
            db::planning::set_durations(conn, s, &durations)?;
        }
        Ok::<_, AppError>(())
    })
    .expect("capacity");
    let rows = common::patient_rows(9, patients);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    db.write_blocking(move |conn| db::patients::insert_many(conn, &rows).map_err(AppError::from))
        .expect("patients");
    let base = chrono::NaiveDate::from_ymd_opt(2022, 5, 14)
        .and_then(|d| d.and_hms_opt(6, 0, 0))
        .expect("date");
    let appointments: Vec<AppointmentRow> = (0..n)
        .map(|k| {
            let at = base + chrono::Duration::minutes(((k * 37) % (21 * 24 * 60)) as i64);
            let operation = k % 2 == 0;
            AppointmentRow {
                id: uuid::Uuid::now_v7().to_string(),
                patient_id: ids[k % ids.len()].clone(),
                site_code: SITE.into(),
                service_code: services[k % services.len()].clone(),
                kind: if operation {
                    Kind::Operation
                } else {
                    Kind::Consultation
                },
                label: if operation {
                    LABELS[k % 3].0
                } else {
                    "Contrôle"
                }
                .into(),
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
    for chunk in appointments.chunks(50_000) {
        let chunk = chunk.to_vec();
        db.write_blocking(move |conn| {
            db::appointments::insert_many(conn, &chunk).map_err(AppError::from)
        })
        .expect("appointments");
    }
    ids
}

/// The same rows in the same order, read by a plain connection.
fn raw_select(url: &DatabaseUrl) -> (f64, usize) {
    let mut conn = url.connect().expect("connection");
    let started = Instant::now();
    let rows = db::planning::postponed(&mut conn, SITE).expect("rows");
    (started.elapsed().as_secs_f64(), rows.len())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = scale(50_000, 1_000);
    let rt = common::runtime();
    for (backend, server) in targets() {
        let bench = BenchDb::create(backend, server.as_ref(), "planning");
        let db = bench.open();
        let started = Instant::now();
        fill(&db, n / 2, n);
        println!("backend={}", backend.name());
        println!("setup_seconds={:.1}", started.elapsed().as_secs_f64());
        let token = db
            .write_blocking(|conn| {
                reprise::service::users::create_account(
                    conn,
                    &Caller::command_line(),
                    NewAccount::parse("Bench", "coordinator", &[]).expect("account"),
                )
            })
            .expect("token")
            .token;
        drop(db);
        rt.block_on(async {
            let (base, _state) = bench.serve(4).await;
            let client = reqwest::Client::new();
            // A year from tomorrow (a plan proposes days to come).
            let from = reprise::domain::now().date() + chrono::Duration::days(1);
            let until = from + chrono::Duration::days(364);
            let body = serde_json::json!({"from": from.to_string(), "until": until.to_string()});
            let url = format!("{base}/api/v1/sites/{SITE}/plan");
            let send = |query: &'static str| {
                let (client, url, body, token) =
                    (client.clone(), url.clone(), body.clone(), token.clone());
                async move {
                    let started = Instant::now();
                    let r = client
                        .post(format!("{url}{query}"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .expect("sent");
                    assert_eq!(r.status(), 200);
                    let plan: serde_json::Value = r.json().await.expect("json");
                    (started.elapsed().as_secs_f64(), plan)
                }
            };
            let (_, warm) = send("").await;
            let (mut http, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                raw.push(raw_select(&bench.url).0);
                http.push(send("").await.0);
            }
            let (commit, _) = send("?commit=true").await;
            let (http, raw) = (median(http), median(raw));
            println!("appointments={}", warm["appointments"]);
            println!("planned={}", warm["planned"]);
            println!("late={}", warm["late"]);
            println!("plan_seconds={http:.3}");
            println!("raw_select_seconds={raw:.3}");
            println!("plan_commit_seconds={commit:.3}");
            println!(
                "target_under_1s={}",
                if http < 1.0 { "met" } else { "missed" }
            );
            println!("ratio={:.2}", http / raw);
        });
    }
}
