//! `cargo bench --bench postponed_care`: the postponed-care figures of issue 3, each against a
//! raw baseline measured in the same run, on a temporary SQLite file and, when
//! `REPRISE_TEST_POSTGRES_URL` is set, on PostgreSQL.
//!
//! - importing 100,000 appointments through the CSV import, against a raw batched insert of the
//!   same rows;
//! - an incident over 1,000,000 scheduled appointments, against the single raw UPDATE;
//! - a patient search among 1,000,000 patients (median, p99), against a raw indexed lookup.
//!
//! Sizes can be lowered for a quick look: `BENCH_SCALE=0.1`.

use std::time::Instant;

mod common;

use common::{percentile, scale, seed_sites, targets, BenchDb, SITES};

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use reprise::auth::Caller;
use reprise::db::appointments::AppointmentRow;
use reprise::db::patients::PatientRow;
use reprise::db::{self, Backend, DatabaseUrl, Db, DbConnection};
use reprise::demo::{People, Person};
use reprise::domain::appointment::{Kind, Status};
use reprise::domain::patient::{search_key, PatientQuery};
use reprise::error::AppError;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn now() -> chrono::NaiveDateTime {
    reprise::domain::now()
}

fn patient_row(p: &Person, id: String) -> PatientRow {
    p.patient_row(id, now())
}

/// The i-th appointment of a data set: spread over the sites, services and three weeks from
/// 14 May 2022; 3 % urgent, 3 % essential.
fn appointment_row(i: usize, patient_id: String, services: &[(String, String)]) -> AppointmentRow {
    let (site, service) = services[i % services.len()].clone();
    let at = chrono::NaiveDate::from_ymd_opt(2022, 5, 14)
        .and_then(|d| d.and_hms_opt(6, 0, 0))
        .expect("date")
        + chrono::Duration::minutes(((i * 37) % (21 * 24 * 60)) as i64);
    AppointmentRow {
        id: uuid::Uuid::now_v7().to_string(),
        patient_id,
        site_code: site,
        service_code: service,
        kind: if i.is_multiple_of(3) {
            Kind::Operation
        } else {
            Kind::Consultation
        },
        label: "Consultation de contrôle".into(),
        original_scheduled_at: at,
        scheduled_at: at,
        priority: (i % 4) as i32 + 1,
        urgent: i % 100 < 3,
        essential: (3..6).contains(&(i % 100)),
        status: Status::Scheduled,
        incident_id: None,
        postponed_at: None,
        import_id: None,
        created_at: now(),
        updated_at: now(),
        reached_at: None,
        proposed_at: None,
    }
}

fn insert_in_batches<T: Send + 'static>(
    db: &Db,
    mut rows: Vec<T>,
    insert: fn(&mut DbConnection, &[T]) -> diesel::QueryResult<()>,
) {
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(50_000));
        let chunk = std::mem::replace(&mut rows, rest);
        db.write_blocking(move |conn| insert(conn, &chunk).map_err(AppError::from))
            .expect("insert");
    }
}

fn national_format(e164: &str) -> String {
    // +3247012345 6 → 0470 12 34 56: the form people read out on the phone.
    let national = format!("0{}", &e164[3..]);
    national
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn bench_import(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let rows = scale(100_000, 100);
    let distinct = rows * 7 / 10;
    let people: Vec<Person> = People::new(42).take(distinct).collect();
    let header = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    let service_db = BenchDb::create(backend, server, "import");
    let db = service_db.open();
    let services = seed_sites(&db);
    let mut csv = String::with_capacity(rows * 160);
    csv.push_str(&header);
    csv.push('\n');
    let pick = |i: usize| {
        if i < distinct {
            i
        } else {
            (i * 7919) % distinct
        }
    };
    for i in 0..rows {
        let p = &people[pick(i)];
        let a = appointment_row(i, String::new(), &services);
        let phone = p.phone.as_deref().map(national_format).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            p.national_number,
            p.last_name,
            p.first_name,
            p.birth_date,
            phone,
            p.email.as_deref().unwrap_or(""),
            p.language.as_str(),
            p.email_consent,
            a.site_code,
            a.service_code,
            a.kind,
            a.label,
            a.scheduled_at.format("%Y-%m-%dT%H:%M:%SZ"),
            a.priority,
            a.urgent,
            a.essential
        ));
    }
    let started = Instant::now();
    let report = reprise::service::imports::import_appointments(
        &db,
        csv.as_bytes(),
        &Caller::command_line(),
    )
    .expect("the import succeeds");
    let service_ms = ms(started);
    assert_eq!(report.imported as usize, rows);

    // Raw: the same rows, already built, in multi-row INSERTs in one transaction.
    let raw_db_holder = BenchDb::create(backend, server, "importraw");
    let raw_db = raw_db_holder.open();
    let services = seed_sites(&raw_db);
    let patients: Vec<PatientRow> = people
        .iter()
        .map(|p| patient_row(p, uuid::Uuid::now_v7().to_string()))
        .collect();
    let appointments: Vec<AppointmentRow> = (0..rows)
        .map(|i| appointment_row(i, patients[pick(i)].id.clone(), &services))
        .collect();
    let started = Instant::now();
    raw_db
        .write_blocking(move |conn| {
            db::patients::insert_many(conn, &patients)?;
            db::appointments::insert_many(conn, &appointments)?;
            Ok::<_, AppError>(())
        })
        .expect("raw insert");
    let raw_ms = ms(started);
    println!("{tag}.import.rows={rows}");
    println!("{tag}.import.service_ms={service_ms:.1}");
    println!("{tag}.import.raw_ms={raw_ms:.1}");
    println!("{tag}.import ratio={:.2}", service_ms / raw_ms);
}

fn bench_incident(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let rows = scale(1_000_000, 100);
    let holder = BenchDb::create(backend, server, "incident");
    {
        let db = holder.open();
        let services = seed_sites(&db);
        let patients: Vec<PatientRow> = People::new(7)
            .take(rows / 20)
            .map(|p| patient_row(&p, uuid::Uuid::now_v7().to_string()))
            .collect();
        let appointments: Vec<AppointmentRow> = (0..rows)
            .map(|i| appointment_row(i, patients[i % patients.len()].id.clone(), &services))
            .collect();
        insert_in_batches(&db, patients, db::patients::insert_many);
        insert_in_batches(&db, appointments, db::appointments::insert_many);
        db.read_blocking(|conn| {
            conn.batch_execute(match backend {
                Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;",
                Backend::Postgres => "ANALYZE",
            })
            .map_err(AppError::from)
        })
        .expect("checkpoint");
    }
    let raw_holder = holder.copy("incidentraw");
    let from = chrono::NaiveDate::from_ymd_opt(2022, 5, 14)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date");
    let until = from + chrono::Duration::days(21);
    let sites: Vec<String> = SITES.iter().map(|s| s.to_string()).collect();

    let db = holder.open();
    let service_sites = sites.clone();
    let started = Instant::now();
    let done = db
        .write_blocking(move |conn| {
            let sites = service_sites;
            let incident = db::incidents::IncidentRow {
                id: uuid::Uuid::now_v7().to_string(),
                title: "bench".into(),
                started_at: from,
                postpone_until: until,
                created_at: now(),
                created_by: None,
            };
            db::incidents::insert(conn, &incident, &sites)?;
            let done = db::incidents::apply(conn, &incident.id, &sites, from, until, now())?;
            reprise::audit::record(
                conn,
                &Caller::command_line(),
                "incident.create",
                None,
                serde_json::json!({"rows": done.postponed}),
            )?;
            Ok::<_, AppError>(done)
        })
        .expect("incident");
    let service_ms = ms(started);

    let raw_db = raw_holder.open();
    let incident_id = uuid::Uuid::now_v7().to_string();
    let raw_sites = sites.clone();
    let raw_incident = incident_id.clone();
    raw_db
        .write_blocking(move |conn| {
            let (sites, incident_id) = (raw_sites, raw_incident);
            db::incidents::insert(
                conn,
                &db::incidents::IncidentRow {
                    id: incident_id.clone(),
                    title: "raw".into(),
                    started_at: from,
                    postpone_until: until,
                    created_at: now(),
                    created_by: None,
                },
                &sites,
            )
            .map_err(AppError::from)
        })
        .expect("incident row");
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let sql = format!(
        "UPDATE appointments SET status = 'postponed', incident_id = '{incident_id}', postponed_at = '{n}', updated_at = '{n}' \
         WHERE status = 'scheduled' AND urgent = FALSE AND essential = FALSE \
         AND site_code IN ('ARL', 'MAR', 'LIB', 'BAS') AND scheduled_at >= '{f}' AND scheduled_at < '{u}'",
        n = fmt(now()),
        f = fmt(from),
        u = fmt(until)
    );
    let started = Instant::now();
    let raw_count = raw_db
        .write_blocking(move |conn| {
            diesel::sql_query(&sql)
                .execute(conn)
                .map_err(AppError::from)
        })
        .expect("raw update");
    let raw_ms = ms(started);
    assert_eq!(
        raw_count as i64, done.postponed,
        "both postpone the same rows"
    );
    println!("{tag}.incident.appointments={rows}");
    println!("{tag}.incident.postponed={}", done.postponed);
    println!("{tag}.incident.service_ms={service_ms:.1}");
    println!("{tag}.incident.raw_ms={raw_ms:.1}");
    println!("{tag}.incident ratio={:.2}", service_ms / raw_ms);
}

fn bench_search(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let rows = scale(1_000_000, 100);
    let holder = BenchDb::create(backend, server, "search");
    let db = holder.open();
    let people: Vec<Person> = People::new(11).take(rows).collect();
    let patients: Vec<PatientRow> = people
        .iter()
        .map(|p| patient_row(p, uuid::Uuid::now_v7().to_string()))
        .collect();
    insert_in_batches(&db, patients, db::patients::insert_many);
    db.read_blocking(|conn| conn.batch_execute("ANALYZE").map_err(AppError::from))
        .expect("analyze");

    // What agents type: a last name, a last and first name, a phone read out, a national number.
    let queries: Vec<String> = (0..1000)
        .map(|i| {
            let p = &people[(i * 104_729) % people.len()];
            match i % 4 {
                0 => p.last_name.to_lowercase(),
                1 => format!("{} {}", p.last_name, p.first_name),
                2 => p
                    .phone
                    .as_deref()
                    .map(national_format)
                    .unwrap_or_else(|| p.national_number.clone()),
                _ => format!(
                    "{}.{}.{}-{}.{}",
                    &p.national_number[0..2],
                    &p.national_number[2..4],
                    &p.national_number[4..6],
                    &p.national_number[6..9],
                    &p.national_number[9..11]
                ),
            }
        })
        .collect();
    let mut service = Vec::with_capacity(queries.len());
    let mut found = 0usize;
    for q in &queries {
        let started = Instant::now();
        let query = PatientQuery::parse(q).expect("query");
        let rows = db
            .read_blocking(|conn| {
                db::patients::search(conn, &query, None, 50).map_err(AppError::from)
            })
            .expect("search");
        service.push(ms(started));
        found += usize::from(!rows.is_empty());
    }
    assert_eq!(found, queries.len(), "every query finds its patient");

    // Raw: the one indexed query a developer would write for the same text, already folded
    // and classified, loading the same rows.
    let mut raw = Vec::with_capacity(queries.len());
    for q in &queries {
        use diesel::prelude::*;
        use reprise::db::schema::patients as p;
        let query = PatientQuery::parse(q).expect("query");
        let key = search_key(q);
        let started = Instant::now();
        db.read_blocking(|conn| {
            let base = p::table
                .select(PatientRow::as_select())
                .limit(50)
                .into_boxed();
            let rows: Vec<PatientRow> = match &query {
                PatientQuery::NationalNumber(nn) => base
                    .filter(p::national_number.eq(nn.as_str().to_string()))
                    .load(conn)?,
                PatientQuery::Phone(phone) => base
                    .filter(p::phone.eq(phone.as_str().to_string()))
                    .load(conn)?,
                PatientQuery::Name(_) => base
                    .filter(p::last_name_key.ge(key.clone()))
                    .filter(p::last_name_key.lt(format!("{key}~")))
                    .order((p::last_name_key, p::first_name_key, p::id))
                    .load(conn)?,
            };
            Ok::<_, AppError>(rows)
        })
        .expect("raw search");
        raw.push(ms(started));
    }
    service.sort_by(f64::total_cmp);
    raw.sort_by(f64::total_cmp);
    println!("{tag}.search.patients={rows}");
    println!("{tag}.search.median_ms={:.3}", percentile(&service, 0.5));
    println!("{tag}.search.p99_ms={:.3}", percentile(&service, 0.99));
    println!("{tag}.search.raw_median_ms={:.3}", percentile(&raw, 0.5));
    println!(
        "{tag}.search ratio={:.2}",
        percentile(&service, 0.5) / percentile(&raw, 0.5)
    );
}

fn main() {
    let backends = targets();
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (backend, server) in &backends {
        let tag = backend.name();
        let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
        if wanted("import") {
            bench_import(*backend, server.as_ref(), tag);
        }
        if wanted("incident") {
            bench_incident(*backend, server.as_ref(), tag);
        }
        if wanted("search") {
            bench_search(*backend, server.as_ref(), tag);
        }
    }
}
