//! Patients answer by email (issue 9, item 4): the links of `site_reopened` and
//! `appointment_rescheduled` emails, the public page they open, and what each answer records,
//! on both backends. Emails are read back from the outbox's `.eml` files.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{fast_delivery, spawn_app_with, unique_code, TestApp};
use crate::web::WebClient;

pub struct Scene {
    pub site: String,
    pub service: String,
    /// Anne (French): an operation the plan gives a day, one too long for any day.
    pub kept: String,
    pub unplanned: String,
    pub anne: String,
    /// Bram (Dutch): a consultation the plan gives a day.
    pub consultation: String,
    pub bram: String,
}

pub async fn app() -> TestApp {
    spawn_app_with(|s| s.delivery = Some(fast_delivery())).await
}

async fn ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// A two-room site closed by an incident; a committed plan on 4 March 2030; the site reopens
/// and its patients are emailed.
pub async fn scene(app: &TestApp) -> Scene {
    let site = unique_code("ANS");
    let service = format!("{site}-ORT");
    let admin = app.admin();
    ok(admin
        .post(
            "/api/v1/sites",
            &json!({"code": site, "name": "Arlon", "kind": "hospital", "operating_rooms": 2}),
        )
        .await)
    .await;
    ok(admin
        .post(
            "/api/v1/services",
            &json!({"code": service, "name": "Orthopédie", "site": site,
                    "secretariat_phone": "+3263553000"}),
        )
        .await)
    .await;
    let patient = |last: &str, first: &str, email: &str, language: &str| {
        json!({"last_name": last, "first_name": first, "birth_date": "1960-05-04",
               "email": email, "email_consent": true, "language": language})
    };
    let anne = app
        .create_patient_with(patient("Dubois", "Anne", "anne@example.be", "fr"))
        .await;
    let bram = app
        .create_patient_with(patient("Peeters", "Bram", "bram@example.be", "nl"))
        .await;
    let appointment = |patient: &str, kind: &str, label: &str, at: &str, priority: i64| {
        json!({"patient_id": patient, "site": site, "service": service, "kind": kind,
               "label": label, "scheduled_at": at, "priority": priority})
    };
    let kept = app
        .create_appointment_with(appointment(
            &anne,
            "operation",
            "Genou",
            "2030-01-10T08:00:00Z",
            1,
        ))
        .await;
    let unplanned = app
        .create_appointment_with(appointment(
            &anne,
            "operation",
            "Hanche",
            "2030-01-11T08:00:00Z",
            2,
        ))
        .await;
    let consultation = app
        .create_appointment_with(appointment(
            &bram,
            "consultation",
            "Contrôle",
            "2030-01-12T13:30:00Z",
            3,
        ))
        .await;
    app.postpone(&site, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
        .await;
    ok(admin
        .put(
            &format!("/api/v1/services/{service}/capacity"),
            &json!({"consultation_slots": 3, "operation_minutes": 120,
                    "durations": {"Hanche": 600}}),
        )
        .await)
    .await;
    ok(admin
        .post(
            &format!("/api/v1/sites/{site}/plan?commit=true"),
            &json!({"from": "2030-03-04", "until": "2030-03-04"}),
        )
        .await)
    .await;
    ok(admin
        .post(
            &format!("/api/v1/sites/{site}/reopen"),
            &json!({"programme": "full", "notify_patients": true}),
        )
        .await)
    .await;
    Scene {
        site,
        service,
        kept,
        unplanned,
        anne,
        consultation,
        bram,
    }
}

/// The text part of the patient's sent email of `template`, once the worker has written it.
async fn email_text(app: &TestApp, patient: &str, template: &str, nth: usize) -> String {
    let started = std::time::Instant::now();
    loop {
        let all = app
            .admin()
            .get_json(&format!("/api/v1/notifications?patient_id={patient}"))
            .await;
        let sent: Vec<&Value> = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|n| n["template"] == template && n["status"] == "sent")
            .collect();
        if let Some(n) = sent.get(nth) {
            let path = app
                .outbox
                .join(format!("{}.eml", n["id"].as_str().expect("id")));
            let raw = std::fs::read(path).expect("the .eml file");
            let mail = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("a MIME message");
            return mail.body_text(0).expect("a text part").into_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no {template} email sent: {all}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every `/answer/{token}` path in a text, in order.
fn answer_paths(text: &str) -> Vec<String> {
    text.match_indices("/answer/")
        .map(|(i, _)| {
            let token: String = text[i + 8..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            format!("/answer/{token}")
        })
        .collect()
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.client.get(app.url(path)).send().await.expect("sent");
    (r.status().as_u16(), r.text().await.expect("text"))
}

async fn answer(app: &TestApp, path: &str, choice: &str) -> (u16, String) {
    let r = app
        .client
        .post(app.url(path))
        .form(&[("answer", choice)])
        .send()
        .await
        .expect("sent");
    (r.status().as_u16(), r.text().await.expect("text"))
}

pub async fn appointment(app: &TestApp, id: &str) -> Value {
    app.admin()
        .get_json(&format!("/api/v1/appointments/{id}"))
        .await
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    app.admin()
        .get_json(&format!("/api/v1/audit?action={action}"))
        .await["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn contact_list(app: &TestApp, site: &str) -> Vec<Value> {
    app.admin()
        .get_json(&format!("/api/v1/contact-list?site={site}"))
        .await["items"]
        .as_array()
        .expect("items")
        .clone()
}

/// A new committed plan on 5 March 2030 (Anne's planned operation moves there).
async fn replan_on_5_march(app: &TestApp, s: &Scene) {
    ok(app
        .admin()
        .post(
            &format!("/api/v1/sites/{}/plan?commit=true", s.site),
            &json!({"from": "2030-03-05", "until": "2030-03-05"}),
        )
        .await)
    .await;
}

/// The site's contact list as the service's secretary sees it.
async fn contacts_page(app: &TestApp, s: &Scene) -> String {
    let tokens = app.tokens_by_role(&s.service).await;
    let secretary = &tokens
        .iter()
        .find(|(r, _)| *r == "secretary")
        .expect("one")
        .1;
    let web = WebClient::sign_in(app, secretary).await;
    web.html(&format!("/contacts?site={}", s.site)).await
}

/// Anne's links: the planned operation's, then the unplanned one's (the email's order).
pub async fn anne_links(app: &TestApp, s: &Scene) -> (String, String, String) {
    let text = email_text(app, &s.anne, "site_reopened", 0).await;
    let links = answer_paths(&text);
    assert_eq!(links.len(), 2, "one link per appointment: {text}");
    (links[0].clone(), links[1].clone(), text)
}

#[tokio::test]
async fn a_reopening_email_links_each_appointment_to_its_page_in_the_patients_language() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, unplanned, text) = anne_links(&app, &s).await;
    assert_ne!(planned, unplanned);
    for link in [&planned, &unplanned] {
        // The id and its signature: 64 hex digits, nothing about the patient.
        let token = link.strip_prefix("/answer/").expect("path");
        assert_eq!(token.len(), 64, "{link}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{link}");
        assert!(text.contains(&format!("http://127.0.0.1:8080{link}")));
    }
    // The proposed day at the original time of day (09:00 in Brussels, winter).
    assert!(
        text.contains("Date proposée : 04/03/2030 à 09:00"),
        "{text}"
    );

    let (status, html) = page(&app, &planned).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<html lang=\"fr\""));
    assert!(html.contains("Orthopédie") && html.contains("Arlon"));
    assert!(html.contains("04/03/2030 à 09:00"), "{html}");
    for choice in ["keep", "other_date", "call_back", "withdraw"] {
        assert!(html.contains(&format!("value=\"{choice}\"")), "{choice}");
    }
    assert!(html.contains("+32 63 55 30 00"), "the service's phone");
    assert!(
        !html.contains("Dubois") && !html.contains("Genou"),
        "no name, no label"
    );

    // Without a proposed day, there is nothing to keep or trade.
    let (status, html) = page(&app, &unplanned).await;
    assert_eq!(status, 200);
    assert!(html.contains("value=\"call_back\"") && html.contains("value=\"withdraw\""));
    assert!(!html.contains("value=\"keep\"") && !html.contains("value=\"other_date\""));

    // Bram's email and page are in Dutch.
    let text = email_text(&app, &s.bram, "site_reopened", 0).await;
    assert!(
        text.contains("Voorgestelde datum: 04/03/2030 om 14:30"),
        "{text}"
    );
    let bram = answer_paths(&text);
    assert_eq!(bram.len(), 1);
    let (_, html) = page(&app, &bram[0]).await;
    assert!(html.contains("<html lang=\"nl\"") && html.contains("Uw afspraak"));

    // Reading is audited (no personal data in the entry), and changes nothing.
    let reads = audit(&app, "answer_link.read").await;
    assert_eq!(reads.len(), 3);
    assert!(reads[0]["actor"].is_null());
    assert_eq!(reads[0]["actor_name"], "answer link");
    let detail = appointment(&app, &s.kept).await;
    assert_eq!(detail["status"], "postponed");
    assert!(detail["contact_attempts"]
        .as_array()
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn keeping_the_proposed_day_rebooks_it_and_the_new_email_links_again() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, _, _) = anne_links(&app, &s).await;
    let (status, html) = answer(&app, &planned, "keep").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("fixé au 04/03/2030 à 09:00"), "{html}");

    let a = appointment(&app, &s.kept).await;
    assert_eq!(a["status"], "rescheduled");
    assert_eq!(a["scheduled_at"], "2030-03-04T08:00:00Z");
    assert_eq!(a["original_scheduled_at"], "2030-01-10T08:00:00Z");
    let attempts = a["contact_attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            &attempts[0]["channel"],
            &attempts[0]["outcome"],
            &attempts[0]["answer"]
        ),
        (&json!("email"), &json!("reached"), &json!("keep"))
    );
    assert!(attempts[0]["by"].is_null());
    // Off the contact list: it has a date.
    let list = contact_list(&app, &s.site).await;
    assert!(list.iter().all(|i| i["appointment_id"] != s.kept.as_str()));
    for action in ["appointment.answer", "appointment.reschedule"] {
        let entries = audit(&app, action).await;
        assert_eq!(entries.len(), 1, "{action}");
        assert_eq!(entries[0]["target"], format!("appointment:{}", s.kept));
        assert_eq!(entries[0]["actor_name"], "answer link");
    }

    // The link is used up: the page says so, a second answer records nothing.
    let (status, html) = page(&app, &planned).await;
    assert_eq!(status, 200);
    assert!(html.contains("déjà répondu"), "{html}");
    assert!(!html.contains("<form"));
    let (status, html) = answer(&app, &planned, "withdraw").await;
    assert_eq!(status, 409);
    assert!(
        html.contains("déjà répondu") && html.contains("je garde cette date"),
        "{html}"
    );
    let a = appointment(&app, &s.kept).await;
    assert_eq!(a["status"], "rescheduled");
    assert_eq!(a["contact_attempts"].as_array().expect("list").len(), 1);

    // The confirmation carries its own link, which confirms the new date.
    let text = email_text(&app, &s.anne, "appointment_rescheduled", 0).await;
    assert!(text.contains("04/03/2030 à 09:00"), "{text}");
    let again = answer_paths(&text);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], planned);
    let (status, html) = page(&app, &again[0]).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Nouvelle date") && html.contains("value=\"keep\""),
        "{html}"
    );
    let (status, html) = answer(&app, &again[0], "keep").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("du 04/03/2030 à 09:00 est confirmé"),
        "{html}"
    );
    let a = appointment(&app, &s.kept).await;
    assert_eq!(a["scheduled_at"], "2030-03-04T08:00:00Z");
    assert_eq!(a["contact_attempts"].as_array().expect("list").len(), 2);
}

#[tokio::test]
async fn asking_for_a_call_or_another_date_keeps_the_patient_on_the_list_with_the_answer() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, unplanned, _) = anne_links(&app, &s).await;
    let (status, html) = answer(&app, &planned, "other_date").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Le service vous appellera"), "{html}");
    let (status, _) = answer(&app, &unplanned, "call_back").await;
    assert_eq!(status, 200);

    let list = contact_list(&app, &s.site).await;
    let item = |id: &str| {
        list.iter()
            .find(|i| i["appointment_id"] == id)
            .unwrap_or_else(|| panic!("{id} on the list: {list:?}"))
            .clone()
    };
    let other = item(&s.kept);
    assert_eq!(
        (
            &other["attempts"],
            &other["last_outcome"],
            &other["patient_request"]
        ),
        (&json!(1), &json!("declined"), &json!("other_date"))
    );
    // The refused day is withdrawn; the status stays postponed.
    assert!(other["proposed_at"].is_null());
    let call = item(&s.unplanned);
    assert_eq!(
        (&call["last_outcome"], &call["patient_request"]),
        (&json!("declined"), &json!("call_back"))
    );
    assert_eq!(appointment(&app, &s.kept).await["status"], "postponed");
    // The consultation nobody answered about is unchanged.
    let untouched = item(&s.consultation);
    assert!(untouched["patient_request"].is_null() && untouched["attempts"] == 0);

    // A secretary's call that does not reach the patient leaves the request standing.
    let path = format!("/api/v1/appointments/{}/contact-attempts", s.unplanned);
    let no_answer = json!({"channel": "phone", "outcome": "no_answer"});
    ok(app.admin().post(&path, &no_answer).await).await;
    let list = contact_list(&app, &s.site).await;
    let call = list
        .iter()
        .find(|i| i["appointment_id"] == s.unplanned.as_str())
        .expect("still listed");
    assert_eq!(call["last_outcome"], "no_answer");
    assert_eq!(call["patient_request"], "call_back");
    assert_eq!(call["attempts"], 2);

    // The secretaries' page shows both requests in words.
    let html = contacts_page(&app, &s).await;
    assert!(html.contains("Le patient demande une autre date"), "{html}");
    assert!(html.contains("Le patient demande à être rappelé"), "{html}");
    assert_eq!(html.matches("Le patient demande").count(), 2);
    // What the answer was recorded as ("declined": not reached) is not shown as a refusal.
    assert!(html.contains("Réponse par email le"), "{html}");

    // Reached: the request is dealt with, and the appointment leaves the list.
    let reached = json!({"channel": "phone", "outcome": "reached"});
    ok(app.admin().post(&path, &reached).await).await;
    let list = contact_list(&app, &s.site).await;
    assert!(list
        .iter()
        .all(|i| i["appointment_id"] != s.unplanned.as_str()));
}

#[tokio::test]
async fn a_call_asked_from_a_rescheduling_email_puts_the_appointment_back_on_the_list() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, _, _) = anne_links(&app, &s).await;
    assert_eq!(answer(&app, &planned, "keep").await.0, 200);
    let text = email_text(&app, &s.anne, "appointment_rescheduled", 0).await;
    let link = answer_paths(&text).remove(0);
    let (status, html) = answer(&app, &link, "call_back").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Le service vous appellera"), "{html}");
    let a = appointment(&app, &s.kept).await;
    assert_eq!(
        a["status"], "rescheduled",
        "the date stands until a secretary moves it"
    );
    let list = contact_list(&app, &s.site).await;
    let item = list
        .iter()
        .find(|i| i["appointment_id"] == s.kept.as_str())
        .unwrap_or_else(|| panic!("back on the list: {list:?}"));
    assert_eq!(item["patient_request"], "call_back");
    // The list shows the date booked, which the patient asks to change.
    assert_eq!(
        (&item["status"], &item["scheduled_at"]),
        (&json!("rescheduled"), &json!("2030-03-04T09:00:00+01:00"))
    );
    // The site's count is the list's length.
    let sites = app.admin().get_json("/api/v1/sites").await;
    let site = sites["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["code"] == s.site.as_str())
        .expect("the site")
        .clone();
    assert_eq!(site["postponed_to_contact"], json!(list.len()), "{site}");
    let html = contacts_page(&app, &s).await;
    assert!(html.contains("Fixé au : 04/03/2030 09:00"), "{html}");
    // The secretary gives another date: the request is answered, the list is done with it.
    ok(app
        .admin()
        .post(
            &format!("/api/v1/appointments/{}/reschedule", s.kept),
            &json!({"scheduled_at": "2030-03-11T08:00:00Z"}),
        )
        .await)
    .await;
    let list = contact_list(&app, &s.site).await;
    assert!(list.iter().all(|i| i["appointment_id"] != s.kept.as_str()));
}

#[tokio::test]
async fn only_the_day_the_email_offered_is_kept_and_only_at_an_open_site() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, _, _) = anne_links(&app, &s).await;
    let text = email_text(&app, &s.bram, "site_reopened", 0).await;
    let bram = answer_paths(&text).remove(0);
    // A new plan moves Anne's operation to another day after her email.
    replan_on_5_march(&app, &s).await;
    assert_eq!(
        appointment(&app, &s.kept).await["proposed_at"],
        "2030-03-05"
    );
    let (status, html) = page(&app, &planned).await;
    assert_eq!(status, 200);
    assert!(!html.contains("value=\"keep\"") && html.contains("value=\"call_back\""));
    assert!(
        !html.contains("05/03/2030"),
        "a day the email did not offer: {html}"
    );
    // Keeping anyway (the page was open before): refused, the page as it is now.
    let (status, html) = answer(&app, &planned, "keep").await;
    assert_eq!(status, 409);
    assert!(
        html.contains("plus possible") && html.contains("value=\"call_back\""),
        "{html}"
    );
    assert_eq!(appointment(&app, &s.kept).await["status"], "postponed");

    // The site closes again: Bram's offered day is not kept either.
    app.postpone(&s.site, "2030-03-01T00:00:00Z", "2030-04-01T00:00:00Z")
        .await;
    let (_, html) = page(&app, &bram).await;
    assert!(
        !html.contains("value=\"keep\"") && html.contains("value=\"withdraw\""),
        "{html}"
    );
    assert_eq!(answer(&app, &bram, "keep").await.0, 409);
    assert_eq!(
        appointment(&app, &s.consultation).await["status"],
        "postponed"
    );
}

/// Puts the database back as v1 left it: the links signed with `key` (kept in `link_keys`
/// when `stored`), no hash of theirs stored, the migration that drops the key not yet run.
/// Then runs the migrations as the next start would, `configured` being its
/// `REPRISE_ANSWER_LINK_KEY`.
async fn migrate_from_v1(app: &TestApp, key: &[u8], stored: bool, configured: Option<Vec<u8>>) {
    let secret = hex::encode(key);
    let undo = app
        .state
        .db
        .write(move |conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute(
                "CREATE TABLE link_keys (name TEXT PRIMARY KEY NOT NULL, secret TEXT NOT NULL,
                                         created_at TIMESTAMP NOT NULL);
                 UPDATE answer_links SET token_hash = NULL;
                 DELETE FROM __diesel_schema_migrations WHERE version = '20261204000011';",
            )?;
            if stored {
                conn.batch_execute(&format!(
                    "INSERT INTO link_keys VALUES ('answer_links', '{secret}', '2026-11-28 00:00:00')"
                ))?;
            }
            Ok::<_, reprise::db::DbError>(())
        })
        .await;
    undo.expect("back to v1");
    let db = app.state.db.clone();
    let applied = tokio::task::spawn_blocking(move || db.migrate_with(configured.as_deref()))
        .await
        .expect("joined")
        .expect("migrated");
    assert_eq!(applied, 1, "the migration that drops the key");
}

/// Each link's id, as v1 wrote it in the URL with its signature.
async fn link_ids(app: &TestApp) -> Vec<String> {
    app.state
        .db
        .read(|conn| {
            use diesel::prelude::*;
            use reprise::db::schema::answer_links as l;
            l::table
                .select(l::id)
                .order(l::created_at)
                .load::<String>(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("links")
}

/// Whether the table exists (asked in a way both backends answer).
async fn has_table(app: &TestApp, table: &'static str) -> bool {
    app.state
        .db
        .read(move |conn| {
            use diesel::connection::SimpleConnection;
            Ok::<_, reprise::db::DbError>(
                conn.batch_execute(&format!("SELECT 1 FROM {table} WHERE 1 = 0"))
                    .is_ok(),
            )
        })
        .await
        .expect("asked")
}

#[tokio::test]
async fn links_sent_before_v2_keep_working_and_the_key_that_signed_them_is_gone() {
    for (stored, configured) in [(true, None), (false, Some(vec![42u8; 32]))] {
        let app = app().await;
        let s = scene(&app).await;
        let (planned, unplanned, _) = anne_links(&app, &s).await;
        let key = configured.clone().unwrap_or_else(|| vec![7u8; 32]);
        migrate_from_v1(&app, &key, stored, configured.clone()).await;
        assert!(!has_table(&app, "link_keys").await, "no key left behind");
        // The links of v2 made before the step back have no hash any more: they open nothing.
        assert_eq!(page(&app, &planned).await.0, 404);
        // Links of v1 (id and signature) work as they did, each on its own appointment.
        let ids = link_ids(&app).await;
        assert_eq!(ids.len(), 3, "Anne's two links and Bram's one");
        let mut opened = 0;
        for id in &ids {
            let token = reprise::domain::answer::legacy_token(&key, id).expect("a token");
            let (status, html) = page(&app, &format!("/answer/{token}")).await;
            assert_eq!(status, 200, "{html}");
            opened += 1;
        }
        assert_eq!(opened, 3);
        // And an answer through one of them is recorded.
        let id = &ids[0];
        let token = reprise::domain::answer::legacy_token(&key, id).expect("a token");
        let (status, html) = answer(&app, &format!("/answer/{token}"), "call_back").await;
        assert_eq!(status, 200, "{html}");
        assert_eq!(audit(&app, "appointment.answer").await.len(), 1);
        let _ = unplanned;
    }
}

#[tokio::test]
async fn nothing_in_the_database_can_make_an_answer_link() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, _, _) = anne_links(&app, &s).await;
    let token = planned.strip_prefix("/answer/").expect("path").to_string();
    assert_eq!(token.len(), 64);
    // Everything the database holds, as a thief of a backup would have it.
    let dump = match app.backend {
        reprise::db::Backend::Sqlite => {
            let folder = tempfile::tempdir().expect("folder");
            let file = folder.path().join("stolen.db");
            let out = crate::cli::reprise()
                .env("REPRISE_DATABASE_URL", app.database.expose())
                .arg("backup")
                .arg(&file)
                .output()
                .expect("runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read(&file).expect("the copy")
        }
        reprise::db::Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .arg(app.database.expose())
                .output()
                .expect("pg_dump runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    };
    let holds = |needle: &str| dump.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        holds(&link_ids(&app).await[0]),
        "the dump holds the links' rows"
    );
    assert!(!holds(&token), "the link's secret is not stored");
    assert!(!holds("link_keys"), "no key that signs links");
    // v1's recipe, the link's id with any signature, opens nothing.
    for id in link_ids(&app).await {
        let forged = format!("/answer/{id}{}", &token[32..]);
        assert_eq!(page(&app, &forged).await.0, 404);
    }
    assert_eq!(
        page(&app, &planned).await.0,
        200,
        "the patient's link works"
    );
}

#[tokio::test]
async fn withdrawing_cancels_the_appointment_at_the_patients_request() {
    let app = app().await;
    let s = scene(&app).await;
    let text = email_text(&app, &s.bram, "site_reopened", 0).await;
    let link = answer_paths(&text).remove(0);
    // First the question; nothing is cancelled until the patient confirms.
    let (status, html) = answer(&app, &link, "withdraw").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Wilt u echt afzien") && html.contains("name=\"confirm\""),
        "{html}"
    );
    assert_eq!(
        appointment(&app, &s.consultation).await["status"],
        "postponed"
    );
    let r = app
        .client
        .post(app.url(&link))
        .form(&[("answer", "withdraw"), ("confirm", "yes")])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("text");
    assert!(html.contains("geannuleerd"), "{html}");
    let a = appointment(&app, &s.consultation).await;
    assert_eq!(a["status"], "cancelled");
    let history = a["history"].as_array().expect("history");
    let last = history.last().expect("a move");
    assert_eq!(
        (&last["status"], &last["reason"]),
        (&json!("cancelled"), &json!("patient_request"))
    );
    assert_eq!(a["contact_attempts"][0]["outcome"], "declined");
    assert_eq!(a["contact_attempts"][0]["answer"], "withdraw");
    let list = contact_list(&app, &s.site).await;
    assert!(list
        .iter()
        .all(|i| i["appointment_id"] != s.consultation.as_str()));
    assert_eq!(audit(&app, "appointment.cancel").await.len(), 1);
    // Nothing more to answer: the link is used.
    let (_, html) = page(&app, &link).await;
    assert!(html.contains("al geantwoord"), "{html}");
}

#[tokio::test]
async fn forged_expired_and_outdated_links_say_so_and_change_nothing() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, unplanned, _) = anne_links(&app, &s).await;

    // A forged signature, a token of the wrong shape: not valid, said in four languages.
    let mut forged = planned.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("ascii");
    for bad in [forged.as_str(), "/answer/1234", "/answer/ZZ"] {
        let (status, html) = page(&app, bad).await;
        assert_eq!(status, 404, "{bad}");
        assert!(
            html.contains("This link is not valid.") && html.contains("Deze link is niet geldig."),
            "{bad}: {html}"
        );
        let (status, _) = answer(&app, bad, "keep").await;
        assert!(status == 404 || status == 400, "{bad}: {status}");
    }

    // An answer the page does not offer: the page again, as it is (409); none: 422. Nothing
    // recorded; an oversized form: 413.
    for (choice, expected) in [("keep", 409), ("other_date", 409), ("", 422), ("yes", 422)] {
        let (status, html) = answer(&app, &unplanned, choice).await;
        assert_eq!(status, expected, "{choice:?}");
        assert!(html.contains("id=\"notice\"") && html.contains("value=\"call_back\""));
    }
    let r = app
        .client
        .post(app.url(&unplanned))
        .form(&[("answer", "x".repeat(5000))])
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 413);
    // Hostile bodies: never a 5xx, never an answer.
    for (content_type, body) in [
        (
            "application/x-www-form-urlencoded",
            b"answer=call_back%00".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"answer=\xff\xfe".to_vec(),
        ),
        (
            "application/x-www-form-urlencoded",
            b"answer=call_back&answer=withdraw".to_vec(),
        ),
        ("application/json", br#"{"answer":"call_back"}"#.to_vec()),
        ("text/plain", Vec::new()),
    ] {
        let r = app
            .client
            .post(app.url(&unplanned))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 422, "{content_type} {body:?}");
    }

    // Outdated: a secretary gave the planned operation a date after the email.
    ok(app
        .admin()
        .post(
            &format!("/api/v1/appointments/{}/reschedule", s.kept),
            &json!({"scheduled_at": "2030-03-05T08:00:00Z"}),
        )
        .await)
    .await;
    let (status, html) = page(&app, &planned).await;
    assert_eq!(status, 410);
    assert!(
        html.contains("applique plus") && !html.contains("<form"),
        "{html}"
    );
    assert_eq!(answer(&app, &planned, "keep").await.0, 410);

    // Expired.
    app.state
        .db
        .write(|conn| {
            use diesel::prelude::*;
            use reprise::db::schema::answer_links::dsl as l;
            diesel::update(l::answer_links)
                .set(l::expires_at.eq(chrono::Utc::now().naive_utc() - chrono::Duration::hours(1)))
                .execute(conn)
                .map_err(reprise::db::DbError::from)
        })
        .await
        .expect("expired");
    let (status, html) = page(&app, &unplanned).await;
    assert_eq!(status, 410);
    assert!(html.contains("expiré"), "{html}");
    assert_eq!(answer(&app, &unplanned, "call_back").await.0, 410);

    // Nothing was recorded by any of it.
    for id in [&s.kept, &s.unplanned] {
        let a = appointment(&app, id).await;
        assert!(
            a["contact_attempts"].as_array().expect("list").is_empty(),
            "{a}"
        );
    }
    assert!(audit(&app, "appointment.answer").await.is_empty());
}

/// Two sends of one link at once. On PostgreSQL they race (without `used_at IS NULL` in the
/// update that uses the link up, both are recorded); SQLite's one writer runs them in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_answers_at_once_record_one() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, _, _) = anne_links(&app, &s).await;
    let (a, b) = tokio::join!(
        answer(&app, &planned, "keep"),
        answer(&app, &planned, "call_back")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let attempts = appointment(&app, &s.kept).await["contact_attempts"]
        .as_array()
        .expect("list")
        .len();
    assert_eq!(attempts, 1);
    assert_eq!(audit(&app, "appointment.answer").await.len(), 1);
}

#[tokio::test]
async fn an_email_sent_again_carries_its_links_with_new_secrets() {
    let app = app().await;
    let s = scene(&app).await;
    let (planned, unplanned, _) = anne_links(&app, &s).await;
    // A new plan moves Anne's operation; then the worker renders the same notification again
    // (a retry after a failure): the same links with their first expiry, the email still
    // offering the day its link keeps, and new secrets (only their hashes are stored: the
    // first ones cannot be written again).
    replan_on_5_march(&app, &s).await;
    let anne = s.anne.clone();
    let (tokens, expiries) = app
        .state
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use reprise::db::schema::{answer_links as l, notifications as n};
            let id: String = n::table
                .filter(n::patient_id.eq(&anne))
                .filter(n::template.eq("site_reopened"))
                .select(n::id)
                .first(conn)?;
            let rows = |conn: &mut reprise::db::DbConnection| {
                l::table
                    .select((l::id, l::expires_at))
                    .order(l::id)
                    .load::<(String, chrono::NaiveDateTime)>(conn)
            };
            let before = rows(conn)?;
            let later = chrono::Utc::now().naive_utc() + chrono::Duration::days(3);
            let again = reprise::db::notifications::outgoing(
                conn,
                &[id],
                Some(reprise::db::notifications::LinkTerms {
                    now: later,
                    expires_at: later + chrono::Duration::days(30),
                }),
            )?;
            assert_eq!(before, rows(conn)?, "no new link, no new expiry");
            let offered =
                chrono::NaiveDate::from_ymd_opt(2030, 3, 4).and_then(|d| d.and_hms_opt(8, 0, 0));
            assert_eq!(again[0].care[0].offered, offered);
            let moved = chrono::NaiveDate::from_ymd_opt(2030, 3, 5);
            assert_eq!(again[0].care[0].proposed_at, moved);
            let tokens: Vec<String> = again[0]
                .care
                .iter()
                .map(|c| c.link.clone().expect("a link"))
                .collect();
            Ok::<_, reprise::db::DbError>((tokens, before.len()))
        })
        .await
        .expect("rendered");
    assert_eq!(expiries, 3, "Anne's two links and Bram's one");
    for (token, first) in tokens.iter().zip([&planned, &unplanned]) {
        let path = format!("/answer/{token}");
        assert_ne!(&path, first);
        assert_eq!(
            page(&app, first).await.0,
            404,
            "the first secret is replaced"
        );
        assert_eq!(page(&app, &path).await.0, 200, "the new one opens the page");
    }
}

/// Holds the appointment's row in a transaction of its own that applies `change` (returns once
/// it does), until a request waits for that row (PostgreSQL's `pg_stat_activity`), then
/// commits: the request meets a change in flight.
async fn in_flight(app: &TestApp, id: &str, change: &str) -> tokio::task::JoinHandle<()> {
    use diesel::connection::SimpleConnection;
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let (url, id, change) = (app.database.clone(), id.to_string(), change.to_string());
    let (held, holding) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = url.connect().expect("connects");
        let mut watch = url.connect().expect("connects");
        conn.batch_execute(&format!(
            "BEGIN; UPDATE appointments SET {change} WHERE id = '{id}'"
        ))
        .expect("the change, not yet committed");
        let _ = held.send(());
        let started = std::time::Instant::now();
        loop {
            let waiting = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            .get_result::<Waiting>(&mut watch)
            .expect("activity");
            if waiting.n > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no request came to wait for the row"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        conn.batch_execute("COMMIT").expect("committed");
    });
    holding.await.expect("the row is held");
    task
}

/// A secretary's reschedule still in its transaction when the patient keeps the proposed day:
/// the answer waits for her, then finds the appointment moved on and changes nothing.
/// (PostgreSQL: transactions run side by side there. SQLite's one writer runs them one after
/// the other, which the other tests cover.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_waits_for_a_secretarys_move_in_flight_and_respects_it() {
    let app = app().await;
    if app.backend != reprise::db::Backend::Postgres {
        crate::helpers::skipped("on SQLite, one writer runs transactions one after the other");
        return;
    }
    let s = scene(&app).await;
    let (planned, _, _) = anne_links(&app, &s).await;
    let secretary = in_flight(
        &app,
        &s.kept,
        "status = 'rescheduled', scheduled_at = '2030-03-05 08:00:00', proposed_at = NULL",
    )
    .await;
    let (status, html) = answer(&app, &planned, "keep").await;
    secretary.await.expect("joined");
    assert_eq!(status, 410, "{html}");
    let a = appointment(&app, &s.kept).await;
    assert_eq!(a["scheduled_at"], "2030-03-05T08:00:00Z", "her date stands");
    assert!(a["contact_attempts"].as_array().expect("list").is_empty());
}

/// The other way round: a patient's withdrawal in flight, then a secretary's reschedule. Hers
/// waits, finds the appointment cancelled, and is refused: a cancellation is final.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_secretarys_move_waits_for_an_answer_in_flight_and_respects_it() {
    let app = app().await;
    if app.backend != reprise::db::Backend::Postgres {
        crate::helpers::skipped("on SQLite, one writer runs transactions one after the other");
        return;
    }
    let s = scene(&app).await;
    let patient = in_flight(&app, &s.kept, "status = 'cancelled', proposed_at = NULL").await;
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{}/reschedule", s.kept),
            &json!({"scheduled_at": "2030-03-05T08:00:00Z"}),
        )
        .await;
    patient.await.expect("joined");
    assert_eq!(r.status(), 409);
    let a = appointment(&app, &s.kept).await;
    assert_eq!(a["status"], "cancelled");
    assert_eq!(a["history"].as_array().expect("history").len(), 2, "{a}");
}

#[tokio::test]
async fn without_a_public_url_links_follow_the_address_the_service_listens_on() {
    let app = spawn_app_with(|s| {
        s.delivery = Some(fast_delivery());
        s.public_url_given = false;
    })
    .await;
    let s = scene(&app).await;
    let (_, _, text) = anne_links(&app, &s).await;
    // Bound to port 0: the links carry the port actually bound, not a default one.
    assert!(
        text.contains(&format!("{}/answer/", app.address)),
        "{} in {text}",
        app.address
    );
    assert!(!text.contains("127.0.0.1:8080"), "{text}");
}
