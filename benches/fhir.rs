//! `cargo bench --bench fhir`: FHIR R4 against the CSV formats, in the same run (issue 22).
//!
//! - Export: the bulk export over HTTP (`$export` of Patient and Appointment, polled until done,
//!   every file downloaded) of 1,000,000 postponed appointments with their 200,000 patients,
//!   against the CSV contact list of the same rows over HTTP; `ratio=` is FHIR ÷ CSV. The
//!   service's memory during the export, against the export of a 100,000-appointment database.
//! - Import: a Bundle of 100,000 appointments (70,000 patients) read from its JSON text and
//!   imported, against the CSV import of the same data; `ratio=` is FHIR ÷ CSV.
//!
//! SQLite, and PostgreSQL when `REPRISE_TEST_POSTGRES_URL` is set. `BENCH_SCALE=0.1` for a
//! quick look.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fill, rss, scale, targets, BenchDb};
use diesel::connection::SimpleConnection;
use futures_util::StreamExt;
use reprise::auth::Caller;
use reprise::db::{Backend, DatabaseUrl};
use reprise::demo::{People, Person};
use reprise::error::AppError;
use serde_json::{json, Value};

/// Peak RSS above `idle` while `work` runs, sampled every 5 ms; and `work`'s value.
async fn peak_during<T>(idle: u64, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let value = work.await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (value, peak.load(Ordering::Relaxed).saturating_sub(idle))
}

/// Downloads `url` to `out`; its bytes.
async fn download(client: &reqwest::Client, url: &str, token: &str, out: &std::path::Path) -> u64 {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "{url}");
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("file"));
    let mut bytes = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        bytes += chunk.len() as u64;
        file.write_all(&chunk).expect("write");
    }
    file.flush().expect("flush");
    bytes
}

/// `url`'s path on the served instance (the settings' public URL names another port).
fn here(base: &str, url: &str) -> String {
    format!("{base}{}", &url[url.find("/api/").expect("a path")..])
}

/// The whole bulk export of Patients and Appointments: kick-off, status until done, every
/// file; (seconds, seconds until the manifest, resources, bytes).
async fn bulk_export(base: &str, token: &str, dir: &std::path::Path) -> (f64, f64, u64, u64) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let r = client
        .get(format!(
            "{base}/api/v1/fhir/$export?_type=Patient,Appointment"
        ))
        .header("Prefer", "respond-async")
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 202);
    let status = here(
        base,
        r.headers()["content-location"].to_str().expect("a URL"),
    );
    let manifest: Value = loop {
        let r = client
            .get(&status)
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        match r.status().as_u16() {
            202 => tokio::time::sleep(Duration::from_millis(20)).await,
            200 => break r.json().await.expect("a manifest"),
            other => panic!("export status {other}"),
        }
    };
    let ready = started.elapsed().as_secs_f64();
    let (mut resources, mut bytes) = (0, 0);
    for (i, file) in manifest["output"]
        .as_array()
        .expect("output")
        .iter()
        .enumerate()
    {
        resources += file["count"].as_u64().expect("count");
        let url = here(base, file["url"].as_str().expect("url"));
        bytes += download(&client, &url, token, &dir.join(format!("{i}.ndjson"))).await;
    }
    let _ = client.delete(&status).bearer_auth(token).send().await;
    (started.elapsed().as_secs_f64(), ready, resources, bytes)
}

async fn export(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let big = scale(1_000_000, 1000);
    let small = big / 10;
    let mut measured = Vec::new();
    for (label, appointments) in [("small", small), ("big", big)] {
        let target = BenchDb::create(backend, server, label);
        let (base, state) = target.serve(8).await;
        let db = state.db.clone();
        tokio::task::spawn_blocking(move || {
            fill(&db, "BIG", appointments / 5, appointments, 1);
            db.read_blocking(|conn| conn.batch_execute("ANALYZE").map_err(AppError::from))
                .expect("analyze");
        })
        .await
        .expect("filled");
        let token = common::account(&state, "Bench", "admin", None).await;
        let dir = target.dir.path();
        let csv_url = format!("{base}/api/v1/contact-list?site=BIG&format=csv");
        let client = reqwest::Client::new();
        // Warm both paths once.
        download(&client, &csv_url, &token, &dir.join("warm.csv")).await;
        bulk_export(&base, &token, dir).await;
        let started = Instant::now();
        let csv_bytes = download(&client, &csv_url, &token, &dir.join("list.csv")).await;
        let csv_s = started.elapsed().as_secs_f64();
        let ((fhir_s, ready_s, resources, fhir_bytes), peak) =
            peak_during(rss(), bulk_export(&base, &token, dir)).await;
        assert_eq!(resources as usize, appointments + appointments / 5);
        // The same resources made from the snapshot into one file, as `reprise export fhir`
        // does: what making them costs without storing and serving the files.
        let (db, out) = (state.db.clone(), dir.join("direct.ndjson"));
        let direct_s = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut sink = OneFile(std::io::BufWriter::new(
                std::fs::File::create(out).expect("file"),
            ));
            let request = reprise::service::fhir::ExportRequest {
                types: vec![
                    reprise::fhir::ResourceType::Patient,
                    reprise::fhir::ResourceType::Appointment,
                ],
                since: None,
            };
            reprise::service::fhir::export(&db, &Caller::command_line(), &request, &mut sink)
                .expect("exported");
            started.elapsed().as_secs_f64()
        })
        .await
        .expect("direct");
        measured.push((
            appointments,
            csv_s,
            csv_bytes,
            fhir_s,
            fhir_bytes,
            peak,
            direct_s,
            ready_s,
        ));
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let (rows, csv_s, csv_bytes, fhir_s, fhir_bytes, peak_big, direct_s, ready_s) = measured[1];
    let peak_small = measured[0].5;
    println!("{tag}.fhir_export.appointments={rows}");
    println!("{tag}.fhir_export.csv_contact_list_s={csv_s:.2}");
    println!("{tag}.fhir_export.csv_mb={:.1}", mb(csv_bytes));
    println!("{tag}.fhir_export.bulk_export_s={fhir_s:.2}");
    println!("{tag}.fhir_export.bulk_export_ready_s={ready_s:.2}");
    println!("{tag}.fhir_export.ndjson_mb={:.1}", mb(fhir_bytes));
    println!("{tag}.fhir_export.snapshot_to_one_file_s={direct_s:.2}");
    println!("{tag}.fhir_export ratio={:.2}", fhir_s / csv_s);
    println!(
        "{tag}.fhir_export.peak_mb_above_idle_1m={:.1}",
        mb(peak_big)
    );
    println!(
        "{tag}.fhir_export.peak_mb_above_idle_100k={:.1}",
        mb(peak_small)
    );
}

/// Every resource into one NDJSON file.
struct OneFile(std::io::BufWriter<std::fs::File>);

impl reprise::service::fhir::Sink for OneFile {
    fn resource(&mut self, _: reprise::fhir::ResourceType, json: &[u8]) -> std::io::Result<()> {
        self.0.write_all(json)?;
        self.0.write_all(b"\n")
    }

    fn end(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `national_format` of a Belgian E.164 number, as a CSV file would have it.
fn csv_phone(p: &Person) -> String {
    p.phone.clone().unwrap_or_default()
}

fn import(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let rows = scale(100_000, 100);
    let distinct = rows * 7 / 10;
    let people: Vec<Person> = People::new(42).take(distinct).collect();
    let pick = |i: usize| {
        if i < distinct {
            i
        } else {
            (i * 7919) % distinct
        }
    };
    let at = |i: usize| {
        chrono::NaiveDate::from_ymd_opt(2030, 1, 1)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("a date")
            + chrono::Duration::minutes((i % 50_000) as i64 * 15)
    };
    let (site, service) = ("ARL", "ARL-S0");
    let mut csv = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    csv.push('\n');
    for i in 0..rows {
        let p = &people[pick(i)];
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{site},{service},operation,Prothèse de hanche,{},{},false,false\n",
            p.national_number,
            p.last_name,
            p.first_name,
            p.birth_date,
            csv_phone(p),
            p.email.as_deref().unwrap_or(""),
            p.language.as_str(),
            p.email_consent,
            at(i).format("%Y-%m-%dT%H:%M:%SZ"),
            i % 4 + 1,
        ));
    }
    let mut entries: Vec<Value> = people
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut telecom = Vec::new();
            if let Some(phone) = &p.phone {
                telecom.push(json!({"system": "phone", "value": phone}));
            }
            if let Some(email) = &p.email {
                telecom.push(json!({"system": "email", "value": email}));
            }
            json!({
                "fullUrl": format!("urn:uuid:00000000-0000-4000-8000-{k:012}"),
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": reprise::fhir::SSIN_SYSTEM, "value": p.national_number}],
                    "name": [{"family": p.last_name, "given": [p.first_name]}],
                    "birthDate": p.birth_date.to_string(),
                    "telecom": telecom,
                    "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": p.language.as_str()}]}}],
                },
            })
        })
        .collect();
    for i in 0..rows {
        let start = reprise::fhir::instant(at(i));
        entries.push(json!({"resource": {
            "resourceType": "Appointment",
            "identifier": [{"system": "https://hospital.example/appointments", "value": format!("A-{i}")}],
            "status": "booked",
            "appointmentType": {"coding": [{"system": reprise::fhir::KIND_SYSTEM, "code": "operation"}]},
            "description": "Prothèse de hanche",
            "priority": i % 4 + 1,
            "start": start,
            "end": start,
            "participant": [
                {"actor": {"reference": format!("urn:uuid:00000000-0000-4000-8000-{:012}", pick(i))}, "status": "accepted"},
                {"actor": {"reference": format!("Location/{site}")}, "status": "accepted"},
                {"actor": {"reference": format!("HealthcareService/{service}")}, "status": "accepted"},
            ],
        }}));
    }
    let bundle =
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string();

    let csv_db = BenchDb::create(backend, server, "csvimport");
    let db = csv_db.open();
    common::seed_sites(&db);
    let started = Instant::now();
    let report = reprise::service::imports::import_appointments(
        &db,
        csv.as_bytes(),
        &Caller::command_line(),
    )
    .expect("the CSV import succeeds");
    let csv_s = started.elapsed().as_secs_f64();
    assert_eq!(report.imported as usize, rows);

    let fhir_db = BenchDb::create(backend, server, "fhirimport");
    let db = fhir_db.open();
    common::seed_sites(&db);
    let started = Instant::now();
    let value: Value = serde_json::from_str(&bundle).expect("JSON");
    let report = reprise::service::fhir_import::import_bundle(&db, &Caller::command_line(), &value)
        .expect("the Bundle is imported");
    let fhir_s = started.elapsed().as_secs_f64();
    assert_eq!(report.entries.len(), rows + distinct);
    println!("{tag}.fhir_import.appointments={rows}");
    println!(
        "{tag}.fhir_import.csv_mb={:.1}",
        csv.len() as f64 / 1048576.0
    );
    println!(
        "{tag}.fhir_import.bundle_mb={:.1}",
        bundle.len() as f64 / 1048576.0
    );
    println!("{tag}.fhir_import.csv_import_s={csv_s:.2}");
    println!("{tag}.fhir_import.bundle_import_s={fhir_s:.2}");
    println!("{tag}.fhir_import ratio={:.2}", fhir_s / csv_s);
}

fn main() {
    let runtime = common::runtime();
    for (backend, server) in targets() {
        let tag = backend.name();
        import(backend, server.as_ref(), tag);
        runtime.block_on(export(backend, server.as_ref(), tag));
    }
}
