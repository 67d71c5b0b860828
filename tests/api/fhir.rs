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
    assert_eq!(response.status().as_u16(), status, "unexpected status");
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
    let folder = tempfile::tempdir().expect("folder");
    let out = folder.path().join("fhir");
    let run = |extra: &[&str]| {
        let output = reprise()
            .env("REPRISE_DATABASE_URL", app.database.expose())
            .args(["export", "fhir", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).expect("a JSON summary")
    };
    let summary = run(&[]);
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
    let appointments = ndjson(&out, "Appointment");
    let mut ids: Vec<&str> = appointments
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    ids.sort();
    let mut expected = vec![
        s.scheduled.as_str(),
        s.postponed.as_str(),
        s.rescheduled.as_str(),
        s.cancelled.as_str(),
    ];
    expected.sort();
    assert_eq!(ids, expected, "each appointment once");
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
    run(&["--since", &since, "--type", "Appointment,Patient"]);
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
