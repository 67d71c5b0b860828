use serde_json::{json, Value};

use crate::cli::reprise;
use crate::helpers::{assert_problem, create_account_directly, spawn_app, TestApp};

struct Setup {
    site: String,
    service: String,
    other_service: String,
}

/// A closed site with postponed care in two services, one already reached, one rescheduled.
async fn setup(app: &TestApp) -> Setup {
    let (site, service) = app.create_site_and_service().await;
    let other_service = format!("{site}-B");
    let r = app
        .post_json(
            "/api/v1/services",
            Some(&app.admin_token),
            &json!({"code": other_service, "name": "B", "site": site}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let patient = |last: &str, first: &str, phone: &str| json!({"last_name": last, "first_name": first, "birth_date": "1950-02-03", "phone": phone, "language": "nl"});
    let mut ids = Vec::new();
    for (last, first, phone) in [
        ("Zoé", "Ärne", "061 23 45 67"),
        ("=HYPERLINK(\"http://evil\",\"x\")", "Anne", "0470 12 34 56"),
        ("Adam", "Eve", "+33 1 23 45 67 89"),
    ] {
        let r = app
            .post_json(
                "/api/v1/patients",
                Some(&app.admin_token),
                &patient(last, first, phone),
            )
            .await;
        ids.push(
            r.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let appt = |p: &str, svc: &str, at: &str, priority: i64, label: &str| json!({"patient_id": p, "site": site, "service": svc, "kind": "operation", "label": label, "scheduled_at": at, "priority": priority});
    // Expected order: priority, then original date, then name.
    app.create_appointment_with(appt(
        &ids[0],
        &service,
        "2022-05-20T09:00:00+02:00",
        2,
        "Genou",
    ))
    .await; // 3rd
    app.create_appointment_with(appt(
        &ids[1],
        &service,
        "2022-05-16T09:00:00+02:00",
        2,
        "-cmd",
    ))
    .await; // 2nd
    app.create_appointment_with(appt(
        &ids[2],
        &other_service,
        "2022-05-25T09:00:00+02:00",
        1,
        "Hanche",
    ))
    .await; // 1st
    let reached = app
        .create_appointment_with(appt(
            &ids[2],
            &service,
            "2022-05-17T09:00:00+02:00",
            1,
            "Reached",
        ))
        .await;
    let moved = app
        .create_appointment_with(appt(
            &ids[0],
            &service,
            "2022-05-18T09:00:00+02:00",
            1,
            "Moved",
        ))
        .await;
    let r = app
        .post_json(
            "/api/v1/incidents",
            Some(&app.admin_token),
            &json!({"title": "x", "started_at": "2022-05-14T00:00:00+02:00", "postpone_until": "2022-06-04T00:00:00+02:00", "sites": [site]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .post_json(
            &format!("/api/v1/appointments/{reached}/contact-attempts"),
            Some(&app.admin_token),
            &json!({"channel": "phone", "outcome": "reached"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .post_json(
            &format!("/api/v1/appointments/{moved}/reschedule"),
            Some(&app.admin_token),
            &json!({"scheduled_at": "2030-06-10T09:00:00+02:00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    Setup {
        site,
        service,
        other_service,
    }
}

async fn fetch(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.get(&format!("/api/v1/contact-list?{query}"), Some(token))
        .await
}

#[tokio::test]
async fn the_list_has_the_contract_rows_order_and_columns() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let r = fetch(&app, &app.admin_token, &format!("site={}", s.site)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let items = body["items"].as_array().expect("items");
    let labels: Vec<&str> = items.iter().filter_map(|i| i["label"].as_str()).collect();
    assert_eq!(labels, ["Hanche", "'-cmd", "Genou"]);
    let first = &items[0];
    let keys: Vec<&str> = first
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    // The contract's columns, and two fields beyond them (the contract welcomes extra fields):
    // the day a committed plan proposes and the patient's answer by email.
    let mut expected: Vec<&str> = reprise::export::HEADER.to_vec();
    expected.push("proposed_at");
    expected.push("patient_request");
    expected.push("status");
    expected.push("scheduled_at");
    expected.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, expected);
    assert_eq!(
        first["original_scheduled_at"], "2022-05-25T09:00:00+02:00",
        "Brussels local time"
    );
    assert_eq!(first["phone"], "+33123456789");
    assert_eq!(first["attempts"], 0);
    assert_eq!(items[2]["patient_last_name"], "Zoé");

    let csv = fetch(
        &app,
        &app.admin_token,
        &format!("site={}&format=csv", s.site),
    )
    .await;
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/csv"));
    let text = csv.text().await.expect("text");
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next(),
        Some(reprise::export::HEADER.join(",").as_str())
    );
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 3);
    assert!(
        rows[1].contains("\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""),
        "{}",
        rows[1]
    );
    assert!(
        rows[1].contains(",+32470123456,"),
        "phones keep their +: {}",
        rows[1]
    );

    let excel = fetch(
        &app,
        &app.admin_token,
        &format!("site={}&format=excel&service={}", s.site, s.service),
    )
    .await;
    let bytes = excel.bytes().await.expect("bytes");
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "UTF-8 with BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    assert!(text.starts_with(&reprise::export::HEADER.join(";")));
    assert!(text.contains("Zoé;Ärne"), "{text}");
    assert!(
        text.contains(";+32 61 23 45 67;"),
        "spreadsheets keep the + of a spaced phone: {text}"
    );
    assert_eq!(
        text.trim_end().split("\r\n").count(),
        3,
        "header and the service's two rows"
    );
}

#[tokio::test]
async fn secretaries_get_only_their_services_and_exports_are_audited() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let (_, secretary) =
        create_account_directly(&app.state, "Sec", "secretary", &[&s.service]).await;
    let (_, agent) = create_account_directly(&app.state, "Agent", "agent", &[]).await;
    let body: Value = fetch(&app, &secretary, &format!("site={}", s.site))
        .await
        .json()
        .await
        .expect("json");
    let services: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["service"].as_str())
        .collect();
    assert_eq!(services, [s.service.as_str(), s.service.as_str()]);
    assert_problem(
        fetch(
            &app,
            &secretary,
            &format!("site={}&service={}", s.site, s.other_service),
        )
        .await,
        403,
    )
    .await;
    assert_problem(fetch(&app, &agent, &format!("site={}", s.site)).await, 403).await;
    assert_problem(fetch(&app, &app.admin_token, "site=NOPE").await, 404).await;
    assert_problem(
        fetch(
            &app,
            &app.admin_token,
            &format!("site={}&format=pdf", s.site),
        )
        .await,
        422,
    )
    .await;
    assert_problem(fetch(&app, &app.admin_token, "format=csv").await, 422).await;

    let audit: Value = app
        .get_json(
            "/api/v1/audit?action=contact_list.export",
            Some(&app.admin_token),
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["details"]["rows"], 2);
    assert_eq!(entry["details"]["service"], Value::Null);
    assert_eq!(entry["target"], format!("site:{}", s.site));
}

#[tokio::test]
async fn the_command_line_exports_the_same_list() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let http = fetch(
        &app,
        &app.admin_token,
        &format!("site={}&format=csv", s.site),
    )
    .await
    .text()
    .await
    .expect("text");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("list.csv");
    let run = reprise()
        .env("REPRISE_DATABASE_URL", app.state.settings.database.expose())
        .args([
            "export",
            "contact-list",
            "--site",
            &s.site,
            "--format",
            "csv",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out).expect("file"), http);
    let bad = reprise()
        .env("REPRISE_DATABASE_URL", app.state.settings.database.expose())
        .args(["export", "contact-list", "--site", "NOPE"])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
}

/// Opens an `excel` export in LibreOffice (headless, the semicolon and UTF-8 a person picks in
/// its import dialog), saves it as a workbook, and reads every cell back with its type.
#[tokio::test]
async fn an_excel_export_reads_back_cell_for_cell_in_libreoffice() {
    let Some(soffice) = ["soffice", "libreoffice"].into_iter().find(|cmd| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        crate::helpers::skipped("LibreOffice is not installed (apt-get install libreoffice-calc-nogui); .ci/run installs it");
        return;
    };
    let app = spawn_app().await;
    let s = setup(&app).await;
    let bytes = fetch(
        &app,
        &app.admin_token,
        &format!("site={}&format=excel", s.site),
    )
    .await
    .bytes()
    .await
    .expect("bytes");
    let dir = tempfile::tempdir().expect("dir");
    let csv_path = dir.path().join("list.csv");
    std::fs::write(&csv_path, &bytes).expect("write");
    let profile = dir.path().join("profile");
    let out = tokio::process::Command::new(soffice)
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args([
            "--headless",
            "--infilter=CSV:59,34,76,1",
            "--convert-to",
            "xlsx",
            "--outdir",
        ])
        .arg(dir.path())
        .arg(&csv_path)
        .output()
        .await
        .expect("LibreOffice runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What was written, cell by cell.
    let mut written = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(&bytes[3..]);
    let expected: Vec<Vec<String>> = written
        .records()
        .map(|r| r.expect("record").iter().map(str::to_string).collect())
        .collect();
    assert_eq!(expected.len(), 4, "header and three rows");

    use calamine::{Data, Reader};
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(dir.path().join("list.xlsx")).expect("workbook");
    let sheet = book
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    let read: Vec<Vec<Data>> = sheet.rows().map(|r| r.to_vec()).collect();
    assert_eq!(read.len(), expected.len());
    for (row, (got, want)) in read.iter().zip(&expected).enumerate() {
        for (col, (cell, text)) in got.iter().zip(want).enumerate() {
            let column = reprise::export::HEADER[col];
            let numeric = row > 0 && matches!(column, "priority" | "attempts");
            match cell {
                Data::String(s) => assert_eq!(s, text, "row {row} {column}"),
                Data::Float(f) if numeric => assert_eq!(f.to_string(), *text, "row {row} {column}"),
                Data::Int(i) if numeric => assert_eq!(i.to_string(), *text, "row {row} {column}"),
                Data::Empty => assert!(
                    text.is_empty(),
                    "row {row} {column}: {text:?} came back empty"
                ),
                other => panic!("row {row} {column}: {text:?} came back as {other:?}"),
            }
        }
    }
    // The neutralised formula stayed text, and phones kept their +.
    assert!(expected
        .iter()
        .flatten()
        .any(|c| c.starts_with("'=HYPERLINK")));
    assert!(expected.iter().flatten().any(|c| c.starts_with("+32 ")));
}
