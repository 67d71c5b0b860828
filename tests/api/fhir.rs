//! FHIR R4 (CONTRACT §4.10): the CapabilityStatement, Patients and Appointments read and
//! searched, errors as OperationOutcomes, and `reprise export fhir`.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::cli::reprise;
use crate::helpers::{fast_delivery, spawn_app, spawn_app_with, TestApp, User};

const SSIN: &str = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
const BE_PATIENT: &str =
    "https://www.ehealth.fgov.be/standards/fhir/core/StructureDefinition/be-patient";

/// The answer's FHIR JSON, after checking its status and media type.
async fn fhir(response: reqwest::Response, status: u16) -> Value {
    if response.status().as_u16() != status {
        let got = response.status();
        panic!(
            "{got}, expected {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(media.starts_with("application/fhir+json"), "{media}");
    response.json().await.expect("JSON")
}

/// An OperationOutcome answer with this status: its issues.
async fn outcome(response: reqwest::Response, status: u16) -> Vec<Value> {
    let body = fhir(response, status).await;
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let issues = body["issue"].as_array().cloned().unwrap_or_default();
    assert!(!issues.is_empty(), "{body}");
    for issue in &issues {
        assert_eq!(issue["severity"], "error");
        assert!(issue["code"].is_string() && issue["diagnostics"].is_string());
    }
    issues
}

fn appointments_of(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            assert_eq!(e["search"]["mode"], "match");
            e["resource"].clone()
        })
        .collect()
}

fn participant<'a>(appointment: &'a Value, kind: &str) -> &'a Value {
    appointment["participant"]
        .as_array()
        .and_then(|ps| {
            ps.iter().find(|p| {
                p["actor"]["reference"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&format!("{kind}/")))
            })
        })
        .unwrap_or_else(|| panic!("no {kind} participant in {appointment}"))
}

#[tokio::test]
async fn the_capability_statement_needs_no_token() {
    let app = spawn_app().await;
    let body = fhir(app.anonymous().get("/api/v1/fhir/metadata").await, 200).await;
    assert_eq!(body["resourceType"], "CapabilityStatement");
    assert_eq!(body["fhirVersion"], "4.0.1");
    assert_eq!(body["kind"], "instance");
    let resources: Vec<&str> = body["rest"][0]["resource"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["type"].as_str())
        .collect();
    for t in [
        "Patient",
        "Appointment",
        "Communication",
        "Location",
        "HealthcareService",
    ] {
        assert!(resources.contains(&t), "{t} in {resources:?}");
    }
}

#[tokio::test]
async fn a_patient_reads_as_a_belgian_core_patient_and_the_read_is_audited() {
    let app = spawn_app().await;
    let id = app
        .create_patient_with(json!({
            "national_number": "85.07.30-033.28", "last_name": "Dupont", "first_name": "Marie",
            "birth_date": "1985-07-30", "phone": "061 23 45 67", "email": "marie@example.org",
            "language": "nl",
        }))
        .await;
    let p = fhir(
        app.admin().get(&format!("/api/v1/fhir/Patient/{id}")).await,
        200,
    )
    .await;
    assert_eq!(p["resourceType"], "Patient");
    assert_eq!(p["id"], id.as_str());
    assert_eq!(p["meta"]["profile"], json!([BE_PATIENT]));
    assert!(p["meta"]["lastUpdated"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let ssin = p["identifier"]
        .as_array()
        .and_then(|ids| ids.iter().find(|i| i["system"] == SSIN))
        .expect("the national number as SSIN");
    assert_eq!(ssin["value"], "85073003328");
    assert_eq!(p["name"][0]["family"], "Dupont");
    assert_eq!(p["name"][0]["given"], json!(["Marie"]));
    assert_eq!(p["birthDate"], "1985-07-30");
    assert_eq!(
        p["telecom"],
        json!([{"system": "phone", "value": "+3261234567"}, {"system": "email", "value": "marie@example.org"}])
    );
    assert_eq!(p["communication"][0]["language"]["coding"][0]["code"], "nl");
    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=patient.read")
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["target"], format!("patient:{id}"));
    assert_eq!(entry["details"]["via"], "fhir");

    // Errors are OperationOutcomes, whoever raises them.
    let missing = outcome(
        app.admin()
            .get("/api/v1/fhir/Patient/00000000-0000-0000-0000-000000000000")
            .await,
        404,
    )
    .await;
    assert_eq!(missing[0]["code"], "not-found");
    let anonymous = outcome(
        app.anonymous()
            .get(&format!("/api/v1/fhir/Patient/{id}"))
            .await,
        401,
    )
    .await;
    assert_eq!(anonymous[0]["code"], "login");
    let agent = app.agent().await;
    let refused = outcome(agent.get(&format!("/api/v1/fhir/Patient/{id}")).await, 403).await;
    assert_eq!(refused[0]["code"], "forbidden");
    outcome(app.admin().get("/api/v1/fhir/Observation/1").await, 404).await;
}

/// A site with a service and a patient; the appointments of each status at the site.
struct Statuses {
    site: String,
    service: String,
    patient: String,
    scheduled: String,
    postponed: String,
    rescheduled: String,
    cancelled: String,
}

impl Statuses {
    /// `appointments` are these four, each once.
    fn are_each_once_in(&self, appointments: &[Value]) {
        let mut ids: Vec<&str> = appointments
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect();
        ids.sort();
        let mut expected = vec![
            self.scheduled.as_str(),
            self.postponed.as_str(),
            self.rescheduled.as_str(),
            self.cancelled.as_str(),
        ];
        expected.sort();
        assert_eq!(ids, expected, "each appointment once");
    }
}

async fn one_of_each_status(app: &TestApp) -> Statuses {
    let (site, service) = app.create_site_and_service().await;
    let patient = app
        .create_patient_with(json!({
            "national_number": "85.07.30-033.28", "last_name": "Martin", "first_name": "Luc",
            "birth_date": "1985-07-30", "phone": "+32 61 23 45 67", "email": "luc@example.org",
            "email_consent": true,
        }))
        .await;
    let postponed = app
        .create_appointment(&patient, &site, &service, "2030-03-02T08:00:00Z")
        .await;
    let rescheduled = app
        .create_appointment(&patient, &site, &service, "2030-03-03T08:00:00Z")
        .await;
    app.postpone(&site, "2030-03-01T00:00:00Z", "2030-03-10T00:00:00Z")
        .await;
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{rescheduled}/reschedule"),
            &json!({"scheduled_at": "2030-04-07T09:30:00Z"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let scheduled = app
        .create_appointment_with(json!({
            "patient_id": patient, "site": site, "service": service, "kind": "consultation",
            "label": "Consultation", "scheduled_at": "2030-05-01T10:00:00Z", "priority": 3,
        }))
        .await;
    let cancelled = app
        .create_appointment(&patient, &site, &service, "2030-05-02T08:00:00Z")
        .await;
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{cancelled}/cancel"),
            &json!({"reason": "patient_request"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    Statuses {
        site,
        service,
        patient,
        scheduled,
        postponed,
        rescheduled,
        cancelled,
    }
}

async fn read_appointment(user: &User, id: &str) -> Value {
    let a = fhir(
        user.get(&format!("/api/v1/fhir/Appointment/{id}")).await,
        200,
    )
    .await;
    assert_eq!(a["resourceType"], "Appointment");
    assert_eq!(a["id"], id);
    a
}

#[tokio::test]
async fn each_status_maps_to_fhir_and_the_original_date_is_kept() {
    let app = spawn_app().await;
    let s = one_of_each_status(&app).await;
    let admin = app.admin();

    let booked = read_appointment(admin, &s.scheduled).await;
    assert_eq!(booked["status"], "booked");
    assert_eq!(booked["start"], "2030-05-01T10:00:00.000000Z");
    assert!(
        booked["end"].as_str() > booked["start"].as_str(),
        "{booked}"
    );
    assert_eq!(booked["priority"], 3);
    assert_eq!(booked["description"], "Consultation");
    assert_eq!(
        booked["appointmentType"]["coding"][0]["code"],
        "consultation"
    );
    assert_eq!(
        participant(&booked, "Patient")["actor"]["reference"],
        format!("Patient/{}", s.patient)
    );
    assert_eq!(
        participant(&booked, "Location")["actor"]["identifier"]["value"],
        s.site.as_str()
    );
    assert_eq!(
        participant(&booked, "HealthcareService")["actor"]["identifier"]["value"],
        s.service.as_str()
    );
    assert!(booked.get("cancelationReason").is_none());

    let waitlist = read_appointment(admin, &s.postponed).await;
    assert_eq!(waitlist["status"], "waitlist");
    assert_eq!(participant(&waitlist, "Patient")["status"], "needs-action");

    let moved = read_appointment(admin, &s.rescheduled).await;
    assert_eq!(moved["status"], "booked");
    assert_eq!(moved["start"], "2030-04-07T09:30:00.000000Z");
    assert_eq!(
        moved["extension"][0]["valueInstant"], "2030-03-03T08:00:00.000000Z",
        "the original date is kept"
    );
    assert_eq!(
        moved["serviceCategory"][0]["coding"][0]["code"],
        "rescheduled"
    );

    let cancelled = read_appointment(admin, &s.cancelled).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        cancelled["cancelationReason"]["coding"][0]["code"],
        "patient_request"
    );

    let audit = admin
        .get_json("/api/v1/audit?action=appointment.read")
        .await;
    assert!(audit["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|e| e["details"]["via"] == "fhir")));
    outcome(
        admin
            .get("/api/v1/fhir/Appointment/00000000-0000-0000-0000-000000000000")
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn appointments_are_searched_by_patient_status_and_last_change_a_page_at_a_time() {
    let app = spawn_app().await;
    let s = one_of_each_status(&app).await;
    let admin = app.admin();
    let other = app.create_patient("Other", "Patient").await;
    let theirs = app
        .create_appointment(&other, &s.site, &s.service, "2030-06-01T08:00:00Z")
        .await;

    let all = appointments_of(
        &fhir(
            admin
                .get(&format!(
                    "/api/v1/fhir/Appointment?patient=Patient/{}",
                    s.patient
                ))
                .await,
            200,
        )
        .await,
    );
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(
        |a| participant(a, "Patient")["actor"]["reference"] == format!("Patient/{}", s.patient)
    ));
    // Oldest change first.
    let changed: Vec<&str> = all
        .iter()
        .filter_map(|a| a["meta"]["lastUpdated"].as_str())
        .collect();
    assert!(changed.windows(2).all(|w| w[0] <= w[1]), "{changed:?}");

    let waiting = appointments_of(
        &fhir(
            admin.get("/api/v1/fhir/Appointment?status=waitlist").await,
            200,
        )
        .await,
    );
    let ids: Vec<&str> = waiting.iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids, [s.postponed.as_str()]);
    let booked = appointments_of(
        &fhir(
            admin
                .get("/api/v1/fhir/Appointment?status=booked,cancelled")
                .await,
            200,
        )
        .await,
    );
    assert_eq!(
        booked.len(),
        4,
        "scheduled, rescheduled, the other's, cancelled"
    );

    // Only what changed after an instant: the other patient's appointment, made last.
    let cancelled_at = all
        .iter()
        .find(|a| a["id"] == s.cancelled.as_str())
        .and_then(|a| a["meta"]["lastUpdated"].as_str())
        .expect("the cancellation's instant")
        .to_string();
    let since = appointments_of(
        &fhir(
            admin
                .get(&format!(
                    "/api/v1/fhir/Appointment?_lastUpdated=gt{}",
                    cancelled_at.replace('+', "%2B")
                ))
                .await,
            200,
        )
        .await,
    );
    let ids: Vec<&str> = since.iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids, [theirs.as_str()]);

    // A new operation length moves the operations' end: they count as changed.
    let newest = since[0]["meta"]["lastUpdated"]
        .as_str()
        .expect("an instant")
        .to_string();
    let r = admin
        .put(
            &format!("/api/v1/services/{}/capacity", s.service),
            &json!({"operation_minutes": 90}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let lengthened = appointments_of(
        &fhir(
            admin
                .get(&format!("/api/v1/fhir/Appointment?_lastUpdated=gt{newest}"))
                .await,
            200,
        )
        .await,
    );
    let mut ids: Vec<&str> = lengthened.iter().filter_map(|a| a["id"].as_str()).collect();
    ids.sort();
    let mut operations = vec![
        s.postponed.as_str(),
        s.rescheduled.as_str(),
        s.cancelled.as_str(),
        theirs.as_str(),
    ];
    operations.sort();
    assert_eq!(ids, operations, "the operations, not the consultation");
    assert!(lengthened.iter().all(|a| a["minutesDuration"] == 90));

    // Two at a time: the next links go through every appointment once.
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/fhir/Appointment?_count=2".to_string());
    while let Some(path) = next.take() {
        let bundle = fhir(admin.get(&path).await, 200).await;
        let page = appointments_of(&bundle);
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .filter_map(|a| a["id"].as_str().map(str::to_string)),
        );
        next = bundle["link"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(|url| {
                let at = url.find("/api/").expect("a path");
                url[at..].to_string()
            });
    }
    seen.sort();
    let mut expected = vec![
        s.scheduled.clone(),
        s.postponed.clone(),
        s.rescheduled.clone(),
        s.cancelled.clone(),
        theirs.clone(),
    ];
    expected.sort();
    assert_eq!(seen, expected);

    // A parameter this server does not know, or a bad value: 400, naming it.
    for (query, name) in [
        ("name=Martin", "name"),
        ("status=done", "status"),
        ("_lastUpdated=2022-05-14", "_lastUpdated"),
        ("_lastUpdated=gtyesterday", "_lastUpdated"),
        ("_count=0", "_count"),
        ("_page=nonsense", "_page"),
    ] {
        let issues = outcome(
            admin
                .get(&format!("/api/v1/fhir/Appointment?{query}"))
                .await,
            400,
        )
        .await;
        assert!(
            issues[0]["diagnostics"]
                .as_str()
                .is_some_and(|d| d.contains(name)),
            "{query}: {issues:?}"
        );
    }
}

/// Writes resources as `{Type}.ndjson` files in `dir`, for the validators.
fn write_ndjson(dir: &std::path::Path, resources: &HashMap<String, Vec<Value>>) {
    for (kind, list) in resources {
        let text: String = list.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(dir.join(format!("{kind}.ndjson")), text).expect("written");
    }
}

/// Every resource of the NDJSON files in `dir` passes validators nobody here wrote: HL7's FHIR
/// R4 JSON schema and the `fhir.resources` models (`.ci/fhir_validate.py`, installed by
/// `.ci/fhir-validators.sh`, which `.ci/run` runs), plus the Belgian patient's profile and
/// national number.
fn validated_by_outside_tools(dir: &std::path::Path) {
    let (Some(python), Some(schema)) = (
        std::env::var_os("REPRISE_FHIR_PYTHON"),
        std::env::var_os("REPRISE_FHIR_SCHEMA"),
    ) else {
        crate::helpers::missing_tool(
            "REPRISE_REQUIRE_FHIR_VALIDATORS",
            "no FHIR validators (REPRISE_FHIR_PYTHON, REPRISE_FHIR_SCHEMA: .ci/fhir-validators.sh)",
        );
        return;
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/fhir_validate.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(schema)
        .arg(dir)
        .output()
        .expect("the validators run");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The NDJSON file of `t` in `dir`: its resources.
fn ndjson(dir: &std::path::Path, t: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{t}.ndjson"))).expect("the file");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one resource per line"))
        .inspect(|r| assert_eq!(r["resourceType"], t))
        .collect()
}

#[tokio::test]
async fn the_command_line_exports_every_type_to_private_files_and_since_an_instant() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app_with(|s| s.delivery = Some(fast_delivery())).await;
    let s = one_of_each_status(&app).await;
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{}/contact-attempts", s.postponed),
            &json!({"channel": "phone", "outcome": "no_answer", "note": "rappeler"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    // The postponement's email, sent: a Communication too.
    let mut waited = 0;
    while app
        .admin()
        .get_json("/api/v1/notifications?status=sent")
        .await["items"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(waited < 100, "the postponement's email was never sent");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    long_ago(&app).await;
    let folder = tempfile::tempdir().expect("folder");
    let out = folder.path().join("fhir");
    let summary = export_to(&app, &out, &[]);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o700);
    let counts: HashMap<String, u64> = summary["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|o| {
            (
                o["type"].as_str().expect("type").to_string(),
                o["count"].as_u64().expect("count"),
            )
        })
        .collect();
    for t in [
        "Patient",
        "Appointment",
        "Communication",
        "Location",
        "HealthcareService",
    ] {
        let file = out.join(format!("{t}.ndjson"));
        assert_eq!(mode(&file), 0o600, "{t}");
        assert_eq!(ndjson(&out, t).len() as u64, counts[t], "{t}");
    }
    s.are_each_once_in(&ndjson(&out, "Appointment"));
    assert!(ndjson(&out, "Patient")
        .iter()
        .any(|p| p["id"] == s.patient.as_str()));
    let attempts = ndjson(&out, "Communication");
    let attempt = attempts
        .iter()
        .find(|c| c["about"][0]["reference"] == format!("Appointment/{}", s.postponed))
        .expect("the contact attempt");
    assert_eq!(attempt["status"], "not-done");
    assert_eq!(attempt["statusReason"]["coding"][0]["code"], "no_answer");
    assert_eq!(attempt["medium"][0]["coding"][0]["code"], "PHONE");
    let email = attempts
        .iter()
        .find(|c| c["category"][0]["coding"][0]["code"] == "appointment_postponed")
        .expect("the email sent");
    assert_eq!(email["status"], "completed");
    assert_eq!(email["medium"][0]["coding"][0]["code"], "EMAILWRIT");
    assert_eq!(
        email["subject"]["reference"],
        format!("Patient/{}", s.patient)
    );
    validated_by_outside_tools(&out);
    let location = ndjson(&out, "Location");
    let site = location
        .iter()
        .find(|l| l["id"] == s.site.as_str())
        .expect("the site");
    assert_eq!(site["status"], "suspended", "closed by the incident");
    assert!(ndjson(&out, "HealthcareService")
        .iter()
        .any(|h| h["id"] == s.service.as_str()
            && h["location"][0]["reference"] == format!("Location/{}", s.site)));

    // Since the first export: only what changed after it.
    let since = summary["transactionTime"]
        .as_str()
        .expect("transactionTime")
        .to_string();
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{}/cancel", s.scheduled),
            &json!({"reason": "duplicate"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    export_to(
        &app,
        &out,
        &["--since", &since, "--type", "Appointment,Patient"],
    );
    let changed = ndjson(&out, "Appointment");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0]["id"], s.scheduled.as_str());
    assert_eq!(
        changed[0]["cancelationReason"]["coding"][0]["code"],
        "duplicate"
    );
    assert!(ndjson(&out, "Patient").is_empty());

    let audit = app
        .admin()
        .get_json("/api/v1/audit?action=fhir.export")
        .await;
    let entries = audit["items"].as_array().expect("items");
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["details"]["types"],
        json!(["Patient", "Appointment"])
    );
    assert_eq!(entries[0]["details"]["counts"]["Appointment"], 1);
    assert_eq!(
        entries[1]["details"]["resources"],
        counts.values().sum::<u64>()
    );

    // Bad arguments are refused before anything is written.
    for bad in [["--since", "yesterday"], ["--type", "Observation"]] {
        let output = reprise()
            .env("REPRISE_DATABASE_URL", app.database.expose())
            .args(["export", "fhir", "--out"])
            .arg(folder.path().join("never"))
            .args(bad)
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!folder.path().join("never").exists());
    }
}

/// A bulk export's kick-off as `user`, `Prefer: respond-async`, with `query`.
async fn export_request(user: &User, query: &str) -> reqwest::Response {
    user.request(
        reqwest::Method::GET,
        &format!("/api/v1/fhir/$export{query}"),
    )
    .header("Prefer", "respond-async")
    .send()
    .await
    .expect("sent")
}

/// Starts a bulk export as `user`; the status URL's path.
pub async fn kick_off(user: &User, query: &str) -> String {
    let r = export_request(user, query).await;
    let location = r
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = fhir(r, 202).await;
    assert_eq!(body["resourceType"], "OperationOutcome");
    let location = location.expect("Content-Location");
    let at = location.find("/api/").expect("a URL of this server");
    location[at..].to_string()
}

/// [`kick_off`] of an export of every type, once the account's running one (if any) has ended.
pub async fn started_export(user: &User) -> String {
    for _ in 0..200 {
        let r = export_request(user, "").await;
        if r.status() == 429 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        let location = r.headers().get("content-location").cloned();
        fhir(r, 202).await;
        return path_of(location.expect("Content-Location").to_str().expect("text"));
    }
    panic!("the account's running export never ended")
}

/// Polls a bulk export's status until it is done; its manifest.
pub async fn manifest(user: &User, status: &str) -> Value {
    for _ in 0..200 {
        let r = user.get(status).await;
        match r.status().as_u16() {
            202 => {
                assert!(r.headers().get("x-progress").is_some());
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            200 => return r.json().await.expect("a manifest"),
            other => panic!("status {other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    panic!("the export never ended")
}

/// The path of a URL of this server.
fn path_of(url: &str) -> String {
    let at = url.find("/api/").expect("a URL of this server");
    url[at..].to_string()
}

/// A bulk export's files, each checked: NDJSON of its type, as many lines as the manifest says.
async fn files(user: &User, manifest: &Value) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for file in manifest["output"].as_array().expect("output") {
        let r = user.get(&path_of(file["url"].as_str().expect("url"))).await;
        assert_eq!(r.status(), 200);
        let media = r.headers()["content-type"]
            .to_str()
            .expect("a type")
            .to_string();
        assert!(media.starts_with("application/fhir+ndjson"), "{media}");
        let text = r.text().await.expect("text");
        let kind = file["type"].as_str().expect("type");
        let resources: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("a resource per line"))
            .inspect(|r| assert_eq!(r["resourceType"], kind))
            .collect();
        assert_eq!(
            resources.len() as u64,
            file["count"].as_u64().expect("count")
        );
        out.entry(kind.to_string()).or_default().extend(resources);
    }
    out
}

/// Moves every appointment's last change and every patient's creation a day back, as if
/// the setup had happened long before the export: an export's `transactionTime` is a minute
/// before its snapshot, so the next `_since` export would have what changed in that minute
/// again.
async fn long_ago(app: &TestApp) {
    use diesel::prelude::*;
    use reprise::db::schema::{appointments, patients};
    let day_ago = reprise::domain::now() - chrono::Duration::days(1);
    app.state
        .db
        .write(move |conn| {
            diesel::update(appointments::table)
                .set(appointments::updated_at.eq(day_ago))
                .execute(conn)?;
            diesel::update(patients::table)
                .set(patients::created_at.eq(day_ago))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("moved back");
}

/// Sets a column of export `id` to `at` (as time passing would).
async fn age_export(app: &TestApp, id: &str, heartbeat: bool, at: chrono::NaiveDateTime) {
    use diesel::prelude::*;
    use reprise::db::schema::fhir_exports;
    let id = id.to_string();
    app.state
        .db
        .write(move |conn| {
            let target = fhir_exports::table.find(id);
            if heartbeat {
                diesel::update(target)
                    .set(fhir_exports::heartbeat_at.eq(at))
                    .execute(conn)
            } else {
                diesel::update(target)
                    .set(fhir_exports::expires_at.eq(at))
                    .execute(conn)
            }
            .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("aged");
}

#[tokio::test]
async fn a_bulk_export_runs_in_the_background_and_only_its_owner_reads_it_for_an_hour() {
    let app = spawn_app().await;
    let s = one_of_each_status(&app).await;
    let admin = app.admin();

    // Asynchronous only, and its parameters checked.
    let r = admin.get("/api/v1/fhir/$export").await;
    outcome(r, 400).await;
    for query in [
        "?_type=Observation",
        "?_since=yesterday",
        "?_outputFormat=text/csv",
        "?q=1",
    ] {
        outcome(export_request(admin, query).await, 400).await;
    }

    long_ago(&app).await;
    let status = kick_off(admin, "?_type=Appointment,Patient").await;
    let m = manifest(admin, &status).await;
    assert_eq!(m["requiresAccessToken"], true);
    assert!(m["transactionTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(m["request"]
        .as_str()
        .is_some_and(|r| r.contains("$export?_type=Patient%2CAppointment")));
    assert_eq!(m["error"], json!([]));
    let got = files(admin, &m).await;
    s.are_each_once_in(&got["Appointment"]);
    let folder = tempfile::tempdir().expect("folder");
    write_ndjson(folder.path(), &got);
    validated_by_outside_tools(folder.path());
    assert_eq!(got["Patient"].len(), 1);
    assert!(!got.contains_key("Location"), "only the types asked for");
    let audit = admin.get_json("/api/v1/audit?action=fhir.export").await;
    assert_eq!(audit["items"][0]["details"]["counts"]["Appointment"], 4);

    // Another account sees none of it.
    let other = app.coordinator().await;
    outcome(other.get(&status).await, 404).await;
    let file = path_of(m["output"][0]["url"].as_str().expect("url"));
    outcome(other.get(&file).await, 404).await;
    outcome(other.delete(&status).await, 404).await;

    // Since its instant: only what changed after it.
    let r = admin
        .post(
            &format!("/api/v1/appointments/{}/cancel", s.scheduled),
            &json!({"reason": "clinical_decision"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let since = m["transactionTime"].as_str().expect("instant").to_string();
    let later = kick_off(admin, &format!("?_since={}", since.replace(':', "%3A"))).await;
    let changed = files(admin, &manifest(admin, &later).await).await;
    assert_eq!(
        changed["Appointment"]
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect::<Vec<_>>(),
        [s.scheduled.as_str()]
    );

    // An hour after its end it is gone, files and all.
    let id = status.rsplit('/').next().expect("an id").to_string();
    age_export(
        &app,
        &id,
        false,
        reprise::domain::now() - chrono::Duration::seconds(1),
    )
    .await;
    outcome(admin.get(&status).await, 404).await;
    outcome(admin.get(&file).await, 404).await;
    reprise::service::fhir::expire_exports(&app.state.db)
        .await
        .expect("expired");
    // Removing one finished: its files go too.
    r_delete_gone(admin, &later).await;
}

async fn r_delete_gone(admin: &User, status: &str) {
    let r = admin.delete(status).await;
    assert_eq!(r.status(), 202);
    outcome(admin.get(status).await, 404).await;
}

#[tokio::test]
async fn a_running_export_reports_progress_and_can_be_cancelled_and_a_lost_one_fails() {
    let app = spawn_app().await;
    let admin = app.admin();
    // An export another instance is making: a row as that instance wrote it.
    let now = reprise::domain::now();
    let row = reprise::db::fhir::ExportRow {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: admin.id().to_string(),
        types: "Appointment".into(),
        since: None,
        request: "x".into(),
        status: reprise::domain::export::ExportStatus::Running,
        created_at: now,
        heartbeat_at: now,
        progress: "Appointment: 10000 resources exported".into(),
        transaction_time: None,
        finished_at: None,
        expires_at: now + chrono::Duration::hours(1),
        error: None,
    };
    let inserted = row.clone();
    app.state
        .db
        .write(move |conn| {
            reprise::db::fhir::insert_export(conn, &inserted).map_err(reprise::db::DbError::from)
        })
        .await
        .expect("inserted");
    let status = format!("/api/v1/fhir/$export-status/{}", row.id);
    let r = admin.get(&status).await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.headers()["x-progress"],
        "Appointment: 10000 resources exported"
    );
    assert!(r.headers().get("retry-after").is_some());
    // One running export per account.
    outcome(export_request(admin, "").await, 429).await;

    // Its instance stopped: housekeeping fails it, and the status says so.
    age_export(&app, &row.id, true, now - chrono::Duration::minutes(5)).await;
    reprise::service::fhir::expire_exports(&app.state.db)
        .await
        .expect("expired");
    let issues = outcome(admin.get(&status).await, 500).await;
    assert!(issues[0]["diagnostics"]
        .as_str()
        .is_some_and(|d| d.contains("stopped")));
    // Removed at DELETE; a new one may start.
    r_delete_gone(admin, &status).await;
    let next = kick_off(admin, "?_type=Location").await;
    manifest(admin, &next).await;
    let audit = admin
        .get_json("/api/v1/audit?action=fhir_export.cancel")
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
}

/// POSTs a Bundle to `/api/v1/fhir`.
async fn post_bundle(user: &User, bundle: &Value) -> reqwest::Response {
    user.request(reqwest::Method::POST, "/api/v1/fhir")
        .header("content-type", "application/fhir+json")
        .body(bundle.to_string())
        .send()
        .await
        .expect("sent")
}

fn patient_entry(url: &str, resource: Value) -> Value {
    json!({ "fullUrl": url, "resource": resource })
}

fn hospital_appointment(key: &str, patient: &str, site: &str, service: &str, start: &str) -> Value {
    json!({ "resource": {
        "resourceType": "Appointment",
        "identifier": [{ "system": "https://hospital.example/appointments", "value": key }],
        "status": "booked",
        "appointmentType": { "coding": [{ "code": "operation" }] },
        "description": "Prothèse de hanche",
        "priority": 2,
        "start": start,
        "end": start,
        "participant": [
            { "actor": { "reference": patient }, "status": "accepted" },
            { "actor": { "identifier": { "value": site } }, "status": "accepted" },
            { "actor": { "identifier": { "value": service } }, "status": "accepted" },
        ],
    }})
}

async fn appointment_count(app: &TestApp) -> usize {
    app.admin()
        .get_json("/api/v1/appointments?limit=1000")
        .await["items"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn a_bundle_is_imported_with_the_csv_checks_all_or_nothing_and_once() {
    let app = spawn_app().await;
    let (site, service) = app.create_site_and_service().await;
    let stored = app.create_patient("Déjà", "Là").await;
    let admin = app.admin();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            patient_entry("urn:uuid:4f1c0a52-0000-4000-8000-000000000001", json!({
                "resourceType": "Patient",
                "identifier": [{ "system": SSIN, "value": "85073003328" }],
                "name": [{ "family": "Dupont", "given": ["Marie", "Anne"] }],
                "birthDate": "1985-07-30",
                "telecom": [{ "system": "phone", "value": "061 23 45 67" }],
                "communication": [{ "language": { "coding": [{ "code": "nl" }] } }],
            })),
            patient_entry("urn:uuid:4f1c0a52-0000-4000-8000-000000000002", json!({
                "resourceType": "Patient",
                "identifier": [{ "system": "https://hospital.example/patients", "value": "P-2" }],
                "name": [{ "family": "Lambert", "given": ["Jules"] }],
                "birthDate": "1950-01-02",
            })),
            hospital_appointment("A-1", "urn:uuid:4f1c0a52-0000-4000-8000-000000000001", &site, &service, "2030-09-01T08:00:00Z"),
            hospital_appointment("A-2", "urn:uuid:4f1c0a52-0000-4000-8000-000000000002", &site, &service, "2030-09-02T08:00:00Z"),
            hospital_appointment("A-3", &format!("Patient/{stored}"), &site, &service, "2030-09-03T08:00:00Z"),
            // Neither a national number nor an identifier: known again by its appointment.
            patient_entry("urn:uuid:4f1c0a52-0000-4000-8000-000000000006", json!({
                "resourceType": "Patient",
                "name": [{ "family": "Sansnuméro", "given": ["Paul"] }],
                "birthDate": "1940-03-04",
            })),
            hospital_appointment("A-4", "urn:uuid:4f1c0a52-0000-4000-8000-000000000006", &site, &service, "2030-09-04T08:00:00Z"),
        ],
    });
    let answer = fhir(post_bundle(admin, &bundle).await, 200).await;
    assert_eq!(answer["type"], "transaction-response");
    let statuses: Vec<&str> = answer["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["response"]["status"].as_str())
        .collect();
    assert_eq!(statuses, ["201 Created"; 7]);
    let location = |i: usize| {
        answer["entry"][i]["response"]["location"]
            .as_str()
            .expect("a location")
            .to_string()
    };
    let a1 = location(2).trim_start_matches("Appointment/").to_string();
    let stored_a1 = admin.get_json(&format!("/api/v1/appointments/{a1}")).await;
    assert_eq!(stored_a1["status"], "scheduled");
    assert_eq!(stored_a1["label"], "Prothèse de hanche");
    assert_eq!(stored_a1["priority"], 2);
    let marie = admin
        .get_json(&format!(
            "/api/v1/patients/{}",
            location(0).trim_start_matches("Patient/")
        ))
        .await;
    assert_eq!(marie["first_name"], "Marie Anne");
    assert_eq!(marie["phone"], "+3261234567");
    assert_eq!(marie["language"], "nl");
    assert_eq!(
        location(4).trim_start_matches("Appointment/").len(),
        36,
        "the stored patient's appointment"
    );
    // The hospital's identifiers go back out with reprise's own.
    let exported = read_appointment(admin, &a1).await;
    assert_eq!(
        exported["identifier"][1],
        json!({"system": "https://hospital.example/appointments", "value": "A-1"})
    );
    assert_eq!(appointment_count(&app).await, 4);

    // The same Bundle again: nothing more.
    let again = fhir(post_bundle(admin, &bundle).await, 200).await;
    for (i, e) in again["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .enumerate()
    {
        assert_eq!(e["response"]["status"], "200 OK", "entry {i}");
        assert_eq!(e["response"]["location"], location(i).as_str());
    }
    assert_eq!(appointment_count(&app).await, 4);
    let audit = admin.get_json("/api/v1/audit?action=fhir.import").await;
    assert_eq!(audit["items"][1]["details"]["appointments_created"], 4);
    assert_eq!(audit["items"][0]["details"]["appointments_created"], 0);

    // Bad entries: every one named by index and path, nothing stored.
    let mut unknown_service = hospital_appointment(
        "B-2",
        &format!("Patient/{stored}"),
        &site,
        "NOPE",
        "2030-09-05T08:00:00Z",
    );
    unknown_service["resource"]["priority"] = json!(7);
    let mut no_identifier = hospital_appointment(
        "B-3",
        &format!("Patient/{stored}"),
        &site,
        &service,
        "2030-09-05T08:00:00Z",
    );
    no_identifier["resource"]["identifier"] = json!([]);
    let mut unusable = hospital_appointment(
        "B-8",
        &format!("Patient/{stored}"),
        &site,
        &service,
        "9999-12-31T23:30:00Z",
    );
    unusable["resource"]["identifier"] =
        json!([{"system": "https://hospital.example/appointments", "value": " "}]);
    let bad = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            patient_entry("urn:uuid:bad", json!({
                "resourceType": "Patient",
                "identifier": [{ "system": SSIN, "value": "85073003327" }],
                "name": [{ "family": "Faux", "given": ["Numéro"] }],
                "birthDate": "1985-07-30",
            })),
            hospital_appointment("B-1", "urn:uuid:bad", &site, &service, "2030-09-04T08:00:00Z"),
            unknown_service,
            no_identifier,
            json!({ "resource": { "resourceType": "Observation", "status": "final" } }),
            hospital_appointment("B-5", &format!("Patient/{stored}"), &site, &service, "2030-09-06T08:00:00Z"),
            // Nothing identifies it and no appointment names it: a second import would
            // create it again.
            patient_entry("urn:uuid:alone", json!({
                "resourceType": "Patient",
                "name": [{ "family": "Seul", "given": ["Sans"] }],
                "birthDate": "1950-01-02",
            })),
            hospital_appointment("B-7", "Patient/00000000-0000-0000-0000-000000000000", &site, &service, "2030-09-06T08:00:00Z"),
            unusable,
        ],
    });
    let issues = outcome(post_bundle(admin, &bad).await, 422).await;
    let paths: Vec<&str> = issues
        .iter()
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    for expected in [
        "Bundle.entry[0].resource.identifier",
        "Bundle.entry[1].resource.participant",
        "Bundle.entry[2].resource.priority",
        "Bundle.entry[2].resource.participant",
        "Bundle.entry[3].resource.identifier",
        "Bundle.entry[4].resource.resourceType",
        "Bundle.entry[6].resource.identifier",
        "Bundle.entry[7].resource.participant",
        "Bundle.entry[8].resource.identifier[0]",
        "Bundle.entry[8].resource.start",
    ] {
        assert!(paths.contains(&expected), "{expected} in {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("Bundle.entry[5]")),
        "{paths:?}"
    );
    assert_eq!(appointment_count(&app).await, 4, "nothing stored");

    // A batch stores its good entries and answers each.
    let batch = json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [bad["entry"][3].clone(), bad["entry"][5].clone()],
    });
    let answer = fhir(post_bundle(admin, &batch).await, 200).await;
    assert_eq!(answer["type"], "batch-response");
    assert_eq!(
        answer["entry"][0]["response"]["status"],
        "422 Unprocessable Entity"
    );
    assert_eq!(
        answer["entry"][0]["response"]["outcome"]["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.identifier"
    );
    assert_eq!(answer["entry"][1]["response"]["status"], "201 Created");
    assert_eq!(appointment_count(&app).await, 5);

    // Not a Bundle, not JSON, not JSON at all.
    outcome(
        post_bundle(admin, &json!({"resourceType": "Patient"})).await,
        422,
    )
    .await;
    let r = admin
        .request(reqwest::Method::POST, "/api/v1/fhir")
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    outcome(r, 400).await;
    let r = admin
        .request(reqwest::Method::POST, "/api/v1/fhir")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("sent");
    outcome(r, 415).await;
}

/// A resource without what differs between two databases: ids, instants of writing, and
/// reprise's own identifiers; references to patients by the patient's national number.
fn comparable(mut r: Value, patients: &HashMap<String, String>) -> Value {
    let obj = r.as_object_mut().expect("an object");
    for key in ["id", "meta", "created"] {
        obj.remove(key);
    }
    if let Some(ids) = obj.get_mut("identifier").and_then(Value::as_array_mut) {
        ids.retain(|i| {
            !i["system"]
                .as_str()
                .is_some_and(|s| s.starts_with("urn:reprise:"))
        });
    }
    if let Some(ps) = obj.get_mut("participant").and_then(Value::as_array_mut) {
        for p in ps {
            if let Some(reference) = p["actor"]["reference"].as_str() {
                if let Some(nn) = patients.get(reference) {
                    p["actor"]["reference"] = json!(nn);
                }
            }
        }
    }
    r
}

/// The CLI export of `app`'s database into `dir`.
fn export_to(app: &TestApp, dir: &std::path::Path, extra: &[&str]) -> Value {
    let out = reprise()
        .env("REPRISE_DATABASE_URL", app.database.expose())
        .args(["export", "fhir", "--out"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON summary")
}

/// `Patient/{id}` → the patient's national number, for the patients of an export.
fn patients_by_reference(patients: &[Value]) -> HashMap<String, String> {
    patients
        .iter()
        .map(|p| {
            let nn = p["identifier"]
                .as_array()
                .and_then(|ids| ids.iter().find(|i| i["system"] == SSIN))
                .and_then(|i| i["value"].as_str())
                .expect("a national number")
                .to_string();
            (format!("Patient/{}", p["id"].as_str().expect("id")), nn)
        })
        .collect()
}

#[tokio::test]
async fn an_export_imported_into_an_empty_database_exports_the_same_resources() {
    let first = spawn_app().await;
    let s = one_of_each_status(&first).await;
    let folder = tempfile::tempdir().expect("folder");
    let (before, after) = (folder.path().join("before"), folder.path().join("after"));
    export_to(&first, &before, &["--type", "Patient,Appointment"]);
    let patients = ndjson(&before, "Patient");
    let appointments = ndjson(&before, "Appointment");
    assert_eq!(appointments.len(), 4);

    // An empty database with the same sites and services.
    let second = spawn_app().await;
    let r = second
        .admin()
        .post(
            "/api/v1/sites",
            &json!({"code": s.site, "name": "Site", "kind": "hospital", "operating_rooms": 2}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = second
        .admin()
        .post(
            "/api/v1/services",
            &json!({"code": s.service, "name": "Service", "site": s.site}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let entries: Vec<Value> = patients
        .iter()
        .map(|p| json!({ "fullUrl": format!("Patient/{}", p["id"].as_str().expect("id")), "resource": p }))
        .chain(appointments.iter().map(|a| json!({ "resource": a })))
        .collect();
    let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": entries });
    fhir(post_bundle(second.admin(), &bundle).await, 200).await;
    export_to(&second, &after, &["--type", "Patient,Appointment"]);
    // Imported back where it came from: everything is there already.
    let back = fhir(post_bundle(first.admin(), &bundle).await, 200).await;
    for e in back["entry"].as_array().expect("entries") {
        assert_eq!(e["response"]["status"], "200 OK", "{e}");
    }
    assert_eq!(appointment_count(&first).await, 4);

    let key = |a: &Value| {
        a["identifier"]
            .as_array()
            .and_then(|ids| {
                ids.iter()
                    .find(|i| i["system"] == "urn:reprise:appointment")
            })
            .and_then(|i| i["value"].as_str())
            .map(str::to_string)
    };
    let (was, now) = (
        patients_by_reference(&patients),
        patients_by_reference(&ndjson(&after, "Patient")),
    );
    let mut again: HashMap<String, Value> = HashMap::new();
    for a in ndjson(&after, "Appointment") {
        // The first database's id came back as an identifier beside the new one.
        let original = a["identifier"]
            .as_array()
            .and_then(|ids| ids.get(1))
            .and_then(|i| i["value"].as_str())
            .expect("the original id as an identifier")
            .to_string();
        again.insert(original, comparable(a, &now));
    }
    for a in appointments {
        let id = key(&a).expect("reprise's id");
        assert_eq!(
            Some(&comparable(a, &was)),
            again.get(&id),
            "appointment {id}"
        );
    }
    let comparable_patients = |list: Vec<Value>| -> Vec<Value> {
        list.into_iter()
            .map(|p| comparable(p, &HashMap::new()))
            .collect()
    };
    assert_eq!(
        comparable_patients(patients),
        comparable_patients(ndjson(&after, "Patient"))
    );
}

#[tokio::test]
async fn every_fhir_answer_is_valid_fhir() {
    let app = spawn_app().await;
    let s = one_of_each_status(&app).await;
    let admin = app.admin();
    let mut answers: HashMap<String, Vec<Value>> = HashMap::new();
    let mut keep = |v: Value| {
        let kind = v["resourceType"].as_str().expect("a resource").to_string();
        answers.entry(kind).or_default().push(v);
    };
    // (Not the CapabilityStatement: it says `fhirVersion: 4.0.1`, R4's technical correction,
    // which the schema of the npm package, made for 4.0.0, does not list yet.)
    keep(
        fhir(
            admin
                .get(&format!("/api/v1/fhir/Patient/{}", s.patient))
                .await,
            200,
        )
        .await,
    );
    keep(fhir(admin.get("/api/v1/fhir/Appointment?_count=2").await, 200).await);
    keep(fhir(admin.get("/api/v1/fhir/Appointment/nothing").await, 404).await);
    keep(fhir(admin.get("/api/v1/fhir/Appointment?status=no").await, 400).await);
    keep(fhir(export_request(admin, "?_type=Location").await, 202).await);
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        hospital_appointment("V-1", &format!("Patient/{}", s.patient), &s.site, &s.service, "2030-09-01T08:00:00Z"),
        hospital_appointment("V-2", &format!("Patient/{}", s.patient), &s.site, "NOPE", "2030-09-01T08:00:00Z"),
    ]});
    keep(fhir(post_bundle(admin, &bundle).await, 200).await);
    let mut bad = bundle.clone();
    bad["type"] = json!("transaction");
    keep(fhir(post_bundle(admin, &bad).await, 422).await);
    let folder = tempfile::tempdir().expect("folder");
    write_ndjson(folder.path(), &answers);
    validated_by_outside_tools(folder.path());
}

/// A sink that, once the export has handed over its first resource, changes the database as
/// other users would meanwhile: an appointment moved, another patient and appointment created.
struct ChangingMeanwhile {
    db: reprise::db::Db,
    changed: Option<String>,
    moved: String,
    got: HashMap<&'static str, Vec<Value>>,
}

impl ChangingMeanwhile {
    /// Writes (and commits) the changes: the id of the appointment created.
    fn change(&self) -> String {
        let (moved, added) = (self.moved.clone(), uuid::Uuid::now_v7().to_string());
        let new_id = added.clone();
        self.db
            .write_blocking(move |conn| {
                use diesel::prelude::*;
                use reprise::db::schema::appointments;
                let now = reprise::domain::now();
                // Stamped before the export began, committed after its snapshot: a write
                // that waited for its turn.
                diesel::update(appointments::table.find(&moved))
                    .set((
                        appointments::label.eq("Changed meanwhile"),
                        appointments::updated_at.eq(now - chrono::Duration::seconds(2)),
                    ))
                    .execute(conn)?;
                let mut row = reprise::db::appointments::find(conn, &moved)?.expect("the row");
                let mut patient =
                    reprise::db::patients::find(conn, &row.patient_id)?.expect("its patient");
                patient.id = uuid::Uuid::now_v7().to_string();
                patient.national_number = None;
                patient.created_at = now;
                reprise::db::patients::insert(conn, &patient)?;
                (row.id, row.patient_id) = (added, patient.id);
                (row.created_at, row.updated_at) = (now, now);
                reprise::db::appointments::insert(conn, &row)?;
                Ok::<_, reprise::db::DbError>(())
            })
            .expect("changed");
        new_id
    }
}

impl reprise::service::fhir::Sink for ChangingMeanwhile {
    fn resource(&mut self, kind: reprise::fhir::ResourceType, json: &[u8]) -> std::io::Result<()> {
        if self.changed.is_none() {
            self.changed = Some(self.change());
        }
        let v: Value = serde_json::from_slice(json).expect("JSON");
        self.got.entry(kind.as_str()).or_default().push(v);
        Ok(())
    }

    fn end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_export_shows_the_database_as_it_began_whatever_is_written_meanwhile() {
    use reprise::fhir::ResourceType;
    let app = spawn_app().await;
    let s = one_of_each_status(&app).await;
    let db = app.state.db.clone();
    // Enough appointments for several pages of the export's reader (1,000 rows each).
    let (template, more) = (s.postponed.clone(), 2_500);
    db.write(move |conn| {
        let row = reprise::db::appointments::find(conn, &template)
            .map_err(reprise::db::DbError::from)?
            .expect("a row");
        let rows: Vec<_> = (0..more)
            .map(|_| reprise::db::appointments::AppointmentRow {
                id: uuid::Uuid::now_v7().to_string(),
                ..row.clone()
            })
            .collect();
        reprise::db::appointments::insert_many(conn, &rows).map_err(reprise::db::DbError::from)
    })
    .await
    .expect("more appointments");
    long_ago(&app).await;
    let moved = s.cancelled.clone();
    let (sink, summary) = tokio::task::spawn_blocking(move || {
        let mut sink = ChangingMeanwhile {
            db: db.clone(),
            changed: None,
            moved,
            got: HashMap::new(),
        };
        let request = reprise::service::fhir::ExportRequest {
            types: vec![ResourceType::Patient, ResourceType::Appointment],
            since: None,
        };
        let summary = reprise::service::fhir::export(
            &db,
            &reprise::auth::Caller::command_line(),
            &request,
            &mut sink,
        )
        .map_err(|e| format!("{e:?}"))
        .expect("exported");
        (sink, summary)
    })
    .await
    .expect("ran");
    let added = sink
        .changed
        .clone()
        .expect("the database was changed during the export");

    // Written after the export began (the first resource was already out): not in it, in
    // either type, and the moved appointment as it was.
    assert_eq!(sink.got["Patient"].len(), 1, "{:?}", sink.got["Patient"]);
    let ids: std::collections::HashSet<&str> = sink.got["Appointment"]
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 4 + more, "each appointment once");
    assert_eq!(sink.got["Appointment"].len(), 4 + more);
    for id in [&s.scheduled, &s.postponed, &s.rescheduled, &s.cancelled] {
        assert!(ids.contains(id.as_str()));
    }
    assert!(!ids.contains(added.as_str()));
    let before = sink.got["Appointment"]
        .iter()
        .find(|a| a["id"] == s.cancelled.as_str())
        .expect("the moved appointment");
    assert_ne!(before["description"], "Changed meanwhile");
    let counts: HashMap<&str, u64> = summary
        .counts
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    assert_eq!(
        (counts["Patient"], counts["Appointment"]),
        (1, 4 + more as u64)
    );

    // The next export since its instant has exactly what changed: nothing missed, not even
    // the change stamped before the export began.
    let since = reprise::fhir::instant(summary.transaction_time);
    let admin = app.admin();
    let later = kick_off(admin, &format!("?_since={}", since.replace(':', "%3A"))).await;
    let changed = files(admin, &manifest(admin, &later).await).await;
    let mut ids: Vec<&str> = changed["Appointment"]
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    ids.sort();
    let mut expected = vec![s.cancelled.as_str(), added.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(changed["Patient"].len(), 1);
    let after = changed["Appointment"]
        .iter()
        .find(|a| a["id"] == s.cancelled.as_str())
        .expect("the moved appointment");
    assert_eq!(after["description"], "Changed meanwhile");
}
