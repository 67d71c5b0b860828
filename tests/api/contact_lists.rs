use serde_json::{json, Value};

use crate::cli::reprise;
use crate::helpers::{assert_problem, spawn_app, TestApp};

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
        .admin()
        .post(
            "/api/v1/services",
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
            .admin()
            .post("/api/v1/patients", &patient(last, first, phone))
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
    let r = app.admin().post("/api/v1/incidents", &json!({"title": "x", "started_at": "2022-05-14T00:00:00+02:00", "postpone_until": "2022-06-04T00:00:00+02:00", "sites": [site]}))
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{reached}/contact-attempts"),
            &json!({"channel": "phone", "outcome": "reached"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{moved}/reschedule"),
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
    app.user(token)
        .get(&format!("/api/v1/contact-list?{query}"))
        .await
}

#[tokio::test]
async fn the_list_has_the_contract_rows_order_and_columns() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let r = fetch(&app, app.admin().token(), &format!("site={}", s.site)).await;
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
    let mut expected: Vec<&str> = reprise::service::contact_lists::HEADER.to_vec();
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
        app.admin().token(),
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
        Some(reprise::service::contact_lists::HEADER.join(",").as_str())
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
        app.admin().token(),
        &format!("site={}&format=excel&service={}", s.site, s.service),
    )
    .await;
    let bytes = excel.bytes().await.expect("bytes");
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "UTF-8 with BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    assert!(text.starts_with(&reprise::service::contact_lists::HEADER.join(";")));
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
    let secretary = app.account("Sec", "secretary", &[&s.service]).await;
    let agent = app.agent().await;
    let body: Value = fetch(&app, secretary.token(), &format!("site={}", s.site))
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
            secretary.token(),
            &format!("site={}&service={}", s.site, s.other_service),
        )
        .await,
        403,
    )
    .await;
    assert_problem(
        fetch(&app, agent.token(), &format!("site={}", s.site)).await,
        403,
    )
    .await;
    assert_problem(fetch(&app, app.admin().token(), "site=NOPE").await, 404).await;
    assert_problem(
        fetch(
            &app,
            app.admin().token(),
            &format!("site={}&format=pdf", s.site),
        )
        .await,
        422,
    )
    .await;
    assert_problem(fetch(&app, app.admin().token(), "format=csv").await, 422).await;

    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=contact_list.export")
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
        app.admin().token(),
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
        crate::helpers::missing_tool(
            "REPRISE_REQUIRE_LIBREOFFICE",
            "LibreOffice is not installed (apt-get install libreoffice-calc-nogui); .ci/run installs it",
        );
        return;
    };
    let app = spawn_app().await;
    let s = setup(&app).await;
    let bytes = fetch(
        &app,
        app.admin().token(),
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
            let column = reprise::service::contact_lists::HEADER[col];
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

/// A spreadsheet's date serial (days since 30 December 1899, the day's fraction the time) as
/// a date and time, to the second.
fn from_serial(serial: f64) -> chrono::NaiveDateTime {
    let base = chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date");
    base + chrono::Duration::seconds((serial * 86_400.0).round() as i64)
}

fn local(text: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a local time")
}

/// Every cell of the first sheet of a workbook.
fn sheet_cells(path: &std::path::Path) -> (String, Vec<Vec<calamine::Data>>) {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).expect("a workbook");
    let name = book.sheet_names()[0].clone();
    let sheet = book
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    (name, sheet.rows().map(|r| r.to_vec()).collect())
}

/// What a cell of the setup's list must read back as.
enum Want {
    Text(String),
    Number(f64),
    At(chrono::NaiveDateTime),
    Empty,
}

fn check_cells(read: &[Vec<calamine::Data>], want: &[Vec<Want>]) {
    use calamine::Data;
    assert_eq!(read.len(), want.len(), "rows");
    for (row, (got, want)) in read.iter().zip(want).enumerate() {
        assert_eq!(got.len(), want.len(), "row {row}: columns");
        for (col, (cell, want)) in got.iter().zip(want).enumerate() {
            match (cell, want) {
                (Data::String(s), Want::Text(t)) => assert_eq!(s, t, "row {row} col {col}"),
                (Data::Float(f), Want::Number(n)) => assert_eq!(f, n, "row {row} col {col}"),
                (Data::Int(i), Want::Number(n)) => assert_eq!(*i as f64, *n, "row {row} col {col}"),
                (Data::DateTime(d), Want::At(at)) => {
                    assert!(d.is_datetime(), "row {row} col {col}: a date");
                    assert_eq!(from_serial(d.as_f64()), *at, "row {row} col {col}");
                }
                (Data::Empty, Want::Empty) => {}
                (other, _) => panic!("row {row} col {col}: came back as {other:?}"),
            }
        }
    }
}

/// The setup's list as the French workbook must hold it, cell for cell and type for type.
async fn expected_workbook(app: &TestApp, s: &Setup) -> Vec<Vec<Want>> {
    let json: Value = fetch(app, app.admin().token(), &format!("site={}", s.site))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<String> = json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["appointment_id"].as_str().expect("id").to_string())
        .collect();
    let text = |t: &str| Want::Text(t.to_string());
    let born = local("1950-02-03 00:00");
    let rows = [
        (
            &s.other_service,
            "Hanche",
            "2022-05-25 09:00",
            "Adam",
            "Eve",
            "+33 1 23 45 67 89",
        ),
        (
            &s.service,
            "-cmd",
            "2022-05-16 09:00",
            "=HYPERLINK(\"http://evil\",\"x\")",
            "Anne",
            "+32 470 12 34 56",
        ),
        (
            &s.service,
            "Genou",
            "2022-05-20 09:00",
            "Zoé",
            "Ärne",
            "+32 61 23 45 67",
        ),
    ];
    let mut want = vec![[
        "Priorité",
        "Type",
        "Service",
        "Intervention",
        "Date initiale",
        "Nom",
        "Prénom",
        "Date de naissance",
        "Téléphone",
        "Email",
        "Langue",
        "Tentatives",
        "Dernier résultat",
        "Dernière tentative",
        "N° de rendez-vous",
    ]
    .map(text)
    .into_iter()
    .collect::<Vec<_>>()];
    for (i, (service, label, at, last, first, phone)) in rows.into_iter().enumerate() {
        want.push(vec![
            Want::Number(if i == 0 { 1.0 } else { 2.0 }),
            text("Opération"),
            text(service),
            text(label),
            Want::At(local(at)),
            text(last),
            text(first),
            Want::At(born),
            text(phone),
            Want::Empty,
            text("Nederlands"),
            Want::Number(0.0),
            Want::Empty,
            Want::Empty,
            text(&ids[i]),
        ]);
    }
    want
}

/// Downloads the `.xlsx` list, reads it back with its types as written, then opens it in
/// LibreOffice (headless), saves it again, and reads every cell back once more.
#[tokio::test]
async fn an_xlsx_export_reads_back_cell_for_cell_in_libreoffice() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let r = fetch(
        &app,
        app.admin().token(),
        &format!("site={}&format=xlsx", s.site),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"contact-list-{}.xlsx\"", s.site).as_str()
    );
    let bytes = r.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"PK"), "a zip container");
    let want = expected_workbook(&app, &s).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("list.xlsx");
    std::fs::write(&path, &bytes).expect("write");
    let (name, written) = sheet_cells(&path);
    assert_eq!(name, "Liste de rappel");
    check_cells(&written, &want);

    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=contact_list.export")
        .await;
    let entry = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["details"]["format"] == "xlsx")
        .expect("the workbook's export is audited");
    assert_eq!(entry["details"]["rows"], 3);
    assert_eq!(entry["target"], format!("site:{}", s.site));

    let Some(soffice) = ["soffice", "libreoffice"].into_iter().find(|cmd| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        crate::helpers::missing_tool(
            "REPRISE_REQUIRE_LIBREOFFICE",
            "LibreOffice is not installed (apt-get install libreoffice-calc-nogui); .ci/run installs it",
        );
        return;
    };
    let resaved = dir.path().join("libreoffice");
    let out = tokio::process::Command::new(soffice)
        .arg(format!(
            "-env:UserInstallation=file://{}",
            dir.path().join("profile").display()
        ))
        .args(["--headless", "--convert-to", "xlsx", "--outdir"])
        .arg(&resaved)
        .arg(&path)
        .output()
        .await
        .expect("LibreOffice runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, read) = sheet_cells(&resaved.join("list.xlsx"));
    check_cells(&read, &want);
}

#[tokio::test]
async fn the_xlsx_download_of_a_dutch_page_has_dutch_headers() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let secretary = app
        .account("Sec", "secretary", &[&s.service, &s.other_service])
        .await;
    let web = crate::web::WebClient::try_sign_in(&app, secretary.token(), "nl")
        .await
        .expect("signed in");
    let html = web
        .get(&format!("/contacts?site={}", s.site))
        .await
        .text()
        .await
        .expect("html");
    let link = format!(
        r#"<a class="button" id="download-xlsx" href="/contacts/export?site={}&amp;format=xlsx">Downloaden (Excel .xlsx)</a>"#,
        s.site
    );
    assert!(html.contains(&link), "{html}");
    let r = web
        .get(&format!("/contacts/export?site={}&format=xlsx", s.site))
        .await;
    assert_eq!(r.status(), 200);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("lijst.xlsx");
    std::fs::write(&path, r.bytes().await.expect("bytes")).expect("write");
    let (name, rows) = sheet_cells(&path);
    assert_eq!(name, "Terugbellijst");
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(
        header,
        [
            "Prioriteit",
            "Soort",
            "Dienst",
            "Ingreep",
            "Oorspronkelijke datum",
            "Naam",
            "Voornaam",
            "Geboortedatum",
            "Telefoon",
            "E-mail",
            "Taal",
            "Pogingen",
            "Laatste resultaat",
            "Laatste poging",
            "Afspraaknummer",
        ]
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][1].to_string(), "Operatie");
    let audit: Value = app
        .admin()
        .get_json("/api/v1/audit?action=contact_list.export")
        .await;
    assert_eq!(audit["items"][0]["details"]["format"], "xlsx");
}

#[tokio::test]
async fn the_command_line_writes_the_workbook_too() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let s = setup(&app).await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("list.xlsx");
    let run = reprise()
        .env("REPRISE_DATABASE_URL", app.state.settings.database.expose())
        .args([
            "export",
            "contact-list",
            "--site",
            &s.site,
            "--format",
            "xlsx",
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
    let mode = std::fs::metadata(&out).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let want = expected_workbook(&app, &s).await;
    check_cells(&sheet_cells(&out).1, &want);
}
