use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{fast_delivery, spawn_app, TestApp};
use reprise::config::Settings;
use reprise::demo::{DemoReport, DemoSize};

const SMALL: DemoSize = DemoSize {
    patients: 400,
    appointments: 900,
    calls: 630,
};

async fn load(app: &TestApp, seed: u64) -> Result<DemoReport, reprise::error::AppError> {
    let db = app.state.db.clone();
    tokio::task::spawn_blocking(move || reprise::demo::load(&db, seed, SMALL))
        .await
        .expect("joined")
}

/// National numbers and names of every patient, and every call's time, in id order.
async fn fingerprint(app: &TestApp) -> (Vec<(Option<String>, String)>, Vec<String>) {
    use diesel::prelude::*;
    use reprise::db::schema::{calls, patients};
    app.state
        .db
        .read(|conn| {
            let people = patients::table
                .order(patients::id)
                .select((patients::national_number, patients::last_name))
                .load(conn)?;
            let times: Vec<chrono::NaiveDateTime> = calls::table
                .order(calls::id)
                .select(calls::received_at)
                .load(conn)?;
            Ok::<_, reprise::db::DbError>((people, times.iter().map(|t| t.to_string()).collect()))
        })
        .await
        .expect("read")
}

#[tokio::test]
async fn the_same_seed_loads_the_same_scenario() {
    let (a, b, c) = (spawn_app().await, spawn_app().await, spawn_app().await);
    let report = load(&a, 7).await.expect("loads");
    load(&b, 7).await.expect("loads");
    load(&c, 8).await.expect("loads");
    assert_eq!(report.sites, 7);
    assert_eq!(report.patients, SMALL.patients);
    assert_eq!(report.calls, SMALL.calls);
    assert!(report.postponed > 0);
    assert_eq!(report.tokens.len(), 4);
    let (fa, fb, fc) = (
        fingerprint(&a).await,
        fingerprint(&b).await,
        fingerprint(&c).await,
    );
    assert_eq!(fa, fb, "same seed, same data");
    assert_ne!(fa, fc, "another seed, other data");
    // A second load into the same database is refused and adds nothing.
    assert!(matches!(
        load(&a, 7).await,
        Err(reprise::error::AppError::Conflict(_))
    ));
    assert_eq!(fingerprint(&a).await, fb);
}

#[tokio::test]
async fn the_scenario_is_the_vivalia_case() {
    let app = spawn_app().await;
    let report = load(&app, 2022).await.expect("loads");
    let admin = report.tokens["admin"].clone();
    let sites: Value = app.user(&admin).get_json("/api/v1/sites").await;
    let items = sites["items"].as_array().expect("items");
    let arlon = items.iter().find(|s| s["code"] == "ARL").expect("Arlon");
    assert_eq!(arlon["operating_rooms"], 4);
    assert!(
        items.iter().all(|s| s["status"] == "closed"),
        "the incident closed every site"
    );
    assert!(items.iter().any(|s| s["kind"] == "nursing_home"));
    let postponed: i64 = items
        .iter()
        .filter_map(|s| s["postponed_to_contact"].as_i64())
        .sum();
    assert_eq!(postponed, report.postponed);

    // The calls start on 14 May 2022, peak in the first days and then decline.
    let stats: Value = app
        .user(&admin)
        .get_json("/api/v1/calls/stats?bucket=day")
        .await;
    assert_eq!(stats["total"], SMALL.calls as u64);
    let series = stats["series"].as_array().expect("series");
    assert_eq!(series[0]["start"], "2022-05-14T00:00:00+02:00");
    assert_eq!(series.len(), 21);
    let first = series[0]["count"].as_i64().unwrap_or(0);
    let last = series[20]["count"].as_i64().unwrap_or(0);
    assert!(first > 4 * last, "a peak then a decline: {first} vs {last}");

    // The demo accounts work, each with its role.
    assert_eq!(
        app.user(&report.tokens["agent"])
            .get("/api/v1/calls")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.user(&report.tokens["agent"])
            .get("/api/v1/users")
            .await
            .status(),
        403
    );
    let mine: Value = app
        .user(&report.tokens["secretary"])
        .get_json("/api/v1/appointments?status=postponed")
        .await;
    assert!(mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|a| a["site"] == "ARL"));
}

/// Every notification with this status, page after page.
async fn notifications(base: &str, token: &str, status: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = client
            .get(format!(
                "{base}/api/v1/notifications?status={status}&limit=1000{cursor}"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        all.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all,
        }
    }
}

fn eml_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test]
async fn the_first_start_on_the_demo_sends_no_email_until_someone_acts() {
    let app = spawn_app().await;
    let report = load(&app, 2022).await.expect("loads");
    let admin = report.tokens["admin"].clone();

    // The first `reprise serve` on the demo database: an instance with its outbox worker.
    let outbox = tempfile::tempdir().expect("outbox");
    let mut settings = Settings::for_local(app.database.clone(), outbox.path());
    settings.delivery = Some(fast_delivery());
    let served = reprise::startup::Application::build(settings)
        .await
        .expect("the service starts on the demo");
    let base = format!("http://127.0.0.1:{}", served.port());
    tokio::spawn(served.run_until_stopped());
    // Twenty rounds of the worker (it looks every 50 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(eml_files(outbox.path()), 0, "no email written");
    assert!(
        notifications(&base, &admin, "queued").await.is_empty(),
        "nothing left to send"
    );

    // The postponement emails of May 2022 went out then, once each.
    let sent = notifications(&base, &admin, "sent").await;
    assert!(!sent.is_empty());
    for n in &sent {
        assert_eq!(n["template"], "appointment_postponed");
        assert_eq!(n["attempts"], 1);
        let at = n["sent_at"].as_str().expect("sent_at");
        assert!(
            at.starts_with("2022-05-14"),
            "sent during the incident: {at}"
        );
    }
    assert!(notifications(&base, &admin, "failed").await.is_empty());

    // Someone acts: rescheduling one of those appointments sends its email, and only it.
    let appointment = sent[0]["appointment_id"].as_str().expect("appointment");
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/api/v1/appointments/{appointment}/reschedule"
        ))
        .bearer_auth(&admin)
        .json(&json!({"scheduled_at": "2030-06-20T09:00:00+02:00"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let start = std::time::Instant::now();
    while eml_files(outbox.path()) == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(eml_files(outbox.path()), 1, "the rescheduling email alone");
}

/// Full years from `birth` to `on`.
fn age_on(birth: chrono::NaiveDate, on: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    let before_birthday = (on.month(), on.day()) < (birth.month(), birth.day());
    on.year() - birth.year() - i32::from(before_birthday)
}

#[tokio::test]
async fn each_demo_service_does_its_own_care_for_patients_of_its_age() {
    use diesel::prelude::*;
    use reprise::db::schema::{appointments as a, patients as p};
    let app = spawn_app().await;
    load(&app, 2022).await.expect("loads");
    type Row = (
        String,
        String,
        String,
        chrono::NaiveDateTime,
        chrono::NaiveDate,
        Option<String>,
    );
    let rows: Vec<Row> = app
        .state
        .db
        .read(|conn| {
            a::table
                .inner_join(p::table)
                .select((
                    a::service_code,
                    a::kind,
                    a::label,
                    a::original_scheduled_at,
                    p::birth_date,
                    p::national_number,
                ))
                .load(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("read");
    assert_eq!(rows.len(), SMALL.appointments);
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for (service, kind, label, at, birth, national_number) in &rows {
        let spec = reprise::demo::service_spec(service)
            .unwrap_or_else(|| panic!("{service} is a demo service"));
        let labels = if kind == "operation" {
            spec.operations
        } else {
            spec.consultations
        };
        assert!(
            labels.contains(&label.as_str()),
            "{label} ({kind}) is not care of {service}"
        );
        let day = reprise::domain::time::brussels(*at).date_naive();
        let age = age_on(*birth, day);
        let national_number = national_number.as_deref().expect("a national number");
        // The register's serial: odd for men, even for women.
        let woman = national_number[6..9]
            .parse::<u32>()
            .expect("digits")
            .is_multiple_of(2);
        let (_, suffix) = service.rsplit_once('-').expect("SITE-SERVICE");
        *seen.entry(suffix).or_default() += 1;
        match suffix {
            "PED" => assert!(age < 18, "{service}: {age} years old on {day}"),
            "GERIA" => assert!(age >= 75, "{service}: {age} years old on {day}"),
            "GYN" => assert!(
                woman && (18..=45).contains(&age),
                "{service}: a woman of childbearing age, not {age} (woman: {woman})"
            ),
            _ => assert!(age >= 18, "{service}: an adult, not {age} on {day}"),
        }
    }
    for suffix in ["PED", "GERIA", "GYN", "ORTHO", "OPHTA"] {
        assert!(
            seen.contains_key(suffix),
            "no appointment in {suffix}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn the_demo_has_the_telephone_systems_may_2022() {
    let app = spawn_app().await;
    let report = load(&app, 2022).await.expect("loads");
    let coordinator = app.user(&report.tokens["coordinator"]);
    let stats = coordinator
        .get_json("/api/v1/phone-calls/stats?from=2022-05-14T00:00:00%2B02:00&to=2022-06-04T00:00:00%2B02:00")
        .await;
    // Every logged call was answered on the telephone; the others were missed.
    assert_eq!(stats["answered"], SMALL.calls as i64, "{stats}");
    let received = stats["received"].as_i64().expect("received");
    assert_eq!(
        received,
        stats["answered"].as_i64().unwrap_or(0) + stats["missed"].as_i64().unwrap_or(0)
    );
    let series = stats["series"].as_array().expect("series");
    assert_eq!(series.len(), 21);
    let (first, last) = (&series[0], &series[20]);
    assert!(
        first["missed"].as_i64() > first["answered"].as_i64(),
        "the first day, more calls missed than answered: {first}"
    );
    assert!(
        last["missed"].as_i64() < last["answered"].as_i64(),
        "three weeks later, most are answered: {last}"
    );
    assert!(stats["median_wait_seconds"]
        .as_f64()
        .is_some_and(|w| w > 0.0));
    // Answered PBX calls lead to the calls the agents logged.
    let answered = coordinator
        .get_json("/api/v1/phone-calls?missed=false&limit=5")
        .await;
    for c in answered["items"].as_array().expect("items") {
        assert!(c["call_id"].is_string(), "{c}");
    }
    let missed = coordinator
        .get_json("/api/v1/phone-calls?missed=true&limit=50")
        .await;
    let items = missed["items"].as_array().expect("items");
    assert!(items
        .iter()
        .all(|c| c["call_id"].is_null() && c["answered_at"].is_null()));
    assert!(items
        .iter()
        .any(|c| !c["patient_ids"].as_array().expect("ids").is_empty()));
}
