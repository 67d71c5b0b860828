//! Delivery of the outbox to a real SMTP server on a loopback port (`smtp_sink`), through
//! lettre's SMTP client; what arrives is read back with a MIME parser.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use reprise::config::SmtpSettings;
use reprise::email::{DeliverySettings, Transport, Worker};
use serde_json::{json, Value};

use crate::helpers::{fast_delivery as fast, spawn_app_with, unique_code, TestApp};
use crate::smtp_sink::{Received, Sink};

async fn app_sending_to(sink: &Sink) -> TestApp {
    let url = sink.url();
    spawn_app_with(move |s| {
        s.smtp = Some(SmtpSettings::parse(&url).expect("smtp URL"));
        s.delivery = Some(fast());
    })
    .await
}

/// A site named Arlon with a service whose secretariat has a phone; returns their codes.
async fn arlon(app: &TestApp) -> (String, String) {
    let site = unique_code("ARL");
    let service = format!("{site}-ORTHO");
    let r = app
        .admin()
        .post(
            "/api/v1/sites",
            &json!({"code": site, "name": "Arlon", "kind": "hospital", "operating_rooms": 4}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app.admin().post("/api/v1/services", &json!({"code": service, "name": "Orthopédie", "site": site, "secretariat_phone": "063 55 30 00"}))
        .await;
    assert_eq!(r.status(), 201);
    (site, service)
}

async fn patient(app: &TestApp, first: &str, email: &str, consent: bool, language: &str) -> String {
    let body = json!({"last_name": "Lambert", "first_name": first, "birth_date": "1958-02-11",
        "email": email, "email_consent": consent, "language": language});
    app.create_patient_with(body).await
}

async fn incident(app: &TestApp, site: &str) -> Value {
    let r = app
        .admin()
        .post(
            "/api/v1/incidents",
            &json!({"title": "Cyberattaque", "started_at": "2022-03-20T00:00:00+01:00",
                "postpone_until": "2022-12-31T00:00:00+01:00", "sites": [site]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.expect("json")
}

async fn notifications(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app
        .admin()
        .get_json(&format!("/api/v1/notifications?limit=1000{query}"))
        .await;
    page["items"].as_array().expect("items").clone()
}

/// Polls the notifications until `done` holds for them (or gives up after `limit`).
async fn wait_until(app: &TestApp, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let all = notifications(app, "").await;
        if done(&all) || start.elapsed() > limit {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Mail {
    to: String,
    subject: String,
    text: String,
    html: String,
    message_id: String,
    attachments: Vec<(String, String)>,
}

fn parse(r: &Received) -> Mail {
    let m = MessageParser::default()
        .parse(&r.raw)
        .expect("a MIME message");
    Mail {
        to: r.to.join(","),
        subject: m.subject().unwrap_or_default().to_string(),
        text: m.body_text(0).unwrap_or_default().to_string(),
        html: m.body_html(0).unwrap_or_default().to_string(),
        message_id: m.message_id().unwrap_or_default().to_string(),
        attachments: m
            .attachments()
            .map(|a| {
                (
                    a.attachment_name().unwrap_or_default().to_string(),
                    String::from_utf8_lossy(a.contents()).to_string(),
                )
            })
            .collect(),
    }
}

fn by_recipient(received: &[Received]) -> HashMap<String, Vec<Mail>> {
    let mut out: HashMap<String, Vec<Mail>> = HashMap::new();
    for r in received {
        let m = parse(r);
        out.entry(m.to.clone()).or_default().push(m);
    }
    out
}

#[tokio::test]
async fn each_patient_gets_the_right_email_in_their_language_and_local_time() {
    let sink = Sink::start(true);
    let app = app_sending_to(&sink).await;
    let (site, service) = arlon(&app).await;
    let operation = |p: &str, at: &str| {
        json!({"patient_id": p, "site": site, "service": service, "kind": "operation",
            "label": "Prothèse de hanche", "scheduled_at": at, "priority": 2})
    };
    let fr = patient(&app, "Marie", "marie@example.be", true, "fr").await;
    let nl = patient(&app, "Jan", "jan@example.be", true, "nl").await;
    let de = patient(&app, "Jürgen", "juergen@example.be", true, "de").await;
    let en = patient(&app, "Emma", "emma@example.be", true, "en").await;
    let silent = patient(&app, "Paul", "paul@example.be", false, "fr").await;
    // Both at 09:30 in Brussels, on either side of the change to summer time (27 March 2022).
    app.create_appointment_with(operation(&fr, "2022-03-25T09:30:00+01:00"))
        .await;
    app.create_appointment_with(operation(&fr, "2022-03-29T09:30:00+02:00"))
        .await;
    let nl_appointment = app
        .create_appointment_with(operation(&nl, "2022-03-28T14:00:00+02:00"))
        .await;
    for p in [&de, &en, &silent] {
        app.create_appointment_with(operation(p, "2022-03-28T14:00:00+02:00"))
            .await;
    }

    let r = incident(&app, &site).await;
    assert_eq!(r["notifications_queued"], 5);
    let received = sink.wait_for(5, Duration::from_secs(20)).await;
    assert!(received
        .iter()
        .all(|r| r.from.contains("no-reply@localhost")));
    let mails = by_recipient(&received);
    assert_eq!(mails.values().map(Vec::len).sum::<usize>(), 5);
    assert!(
        !mails.contains_key("paul@example.be"),
        "no consent, no email"
    );

    let marie = &mails["marie@example.be"];
    assert_eq!(marie.len(), 2);
    assert!(marie
        .iter()
        .all(|m| m.subject == "Votre rendez-vous est reporté"));
    let marie_text: String = marie.iter().map(|m| m.text.as_str()).collect();
    assert!(marie_text.contains("25/03/2022 à 09:30"), "{marie_text}");
    assert!(marie_text.contains("29/03/2022 à 09:30"), "{marie_text}");
    for m in marie {
        assert!(m.text.contains("Bonjour Marie Lambert"), "{}", m.text);
        assert!(m.text.contains("opération") && m.text.contains("Orthopédie"));
        assert!(m.text.contains("Orthopédie, Arlon,") && m.text.contains("+32 63 55 30 00"));
        assert!(
            m.html.contains("<p>Bonjour Marie Lambert,</p>"),
            "{}",
            m.html
        );
        assert!(m.attachments.is_empty());
    }
    let checks = [
        (
            "jan@example.be",
            "Uw afspraak wordt uitgesteld",
            "Beste Jan Lambert",
            "28/03/2022 om 14:00",
        ),
        (
            "juergen@example.be",
            "Ihr Termin wird verschoben",
            "Guten Tag Jürgen Lambert",
            "28/03/2022 um 14:00",
        ),
        (
            "emma@example.be",
            "Your appointment is postponed",
            "Dear Emma Lambert",
            "28/03/2022 at 14:00",
        ),
    ];
    for (to, subject, hello, date) in checks {
        let m = &mails[to][0];
        assert_eq!(m.subject, subject);
        assert!(
            m.text.contains(hello) && m.text.contains(date),
            "{}",
            m.text
        );
        assert!(
            m.html.contains(hello) && m.html.contains(date),
            "{}",
            m.html
        );
    }

    // A new date for Jan: an email with the date in Dutch and an iCalendar file.
    let r = app
        .admin()
        .post(
            &format!("/api/v1/appointments/{nl_appointment}/reschedule"),
            &json!({"scheduled_at": "2030-10-31T10:00:00+01:00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mails = by_recipient(&sink.wait_for(6, Duration::from_secs(20)).await);
    let jan = &mails["jan@example.be"];
    let new_date = jan
        .iter()
        .find(|m| m.subject == "Nieuwe datum voor uw afspraak")
        .expect("the rescheduled email");
    assert!(
        new_date.text.contains("31/10/2030 om 10:00"),
        "{}",
        new_date.text
    );
    let (name, ics) = &new_date.attachments[0];
    assert_eq!(name, "afspraak.ics");
    assert!(
        ics.contains("BEGIN:VEVENT") && ics.contains("DTSTART:20301031T090000Z"),
        "{ics}"
    );
    assert!(ics.contains(&format!("UID:{nl_appointment}@reprise")));

    // Reopening: one email per patient still waiting (Jan has his date), listing their care.
    let r = app
        .admin()
        .post(
            &format!("/api/v1/sites/{site}/reopen"),
            &json!({"programme": "moderate", "notify_patients": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mails = by_recipient(&sink.wait_for(9, Duration::from_secs(20)).await);
    let reopened = mails["marie@example.be"]
        .iter()
        .find(|m| m.subject == "Reprise des activités : Arlon")
        .expect("the reopening email");
    assert!(
        reopened.text.contains("25/03/2022 à 09:30")
            && reopened.text.contains("29/03/2022 à 09:30")
    );
    assert!(mails["emma@example.be"]
        .iter()
        .any(|m| m.subject == "Arlon has reopened"));
    assert_eq!(mails["jan@example.be"].len(), 2);

    let all = wait_until(&app, Duration::from_secs(5), |all| {
        all.iter().all(|n| n["status"] == "sent")
    })
    .await;
    assert_eq!(all.len(), 9);
    for n in &all {
        assert_eq!(n["status"], "sent", "{n}");
        assert_eq!(n["attempts"], 1);
        assert!(n["sent_at"].is_string() && n["last_error"].is_null());
    }
    assert_eq!(sink.accepted(), 9, "nothing sent twice");
}

/// `count` patients with one appointment each at a new site, postponed: `count` emails queued.
async fn queue_postponed(app: &TestApp, count: usize, email: impl Fn(usize) -> String) {
    let (site, service) = arlon(app).await;
    let header = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    let mut csv = format!("{header}\n");
    for i in 0..count {
        csv.push_str(&format!(
            ",Patient{i},Anne,1950-01-01,,{},fr,true,{site},{service},consultation,Suivi,2022-05-16 09:30,3,false,false\n",
            email(i)
        ));
    }
    let r = app
        .admin()
        .post_csv("/api/v1/appointments/import", csv)
        .await;
    assert_eq!(r.status(), 200);
    let r = incident(app, &site).await;
    assert_eq!(r["notifications_queued"], count);
}

fn message_ids(received: &[Received]) -> HashSet<String> {
    received.iter().map(|r| parse(r).message_id).collect()
}

#[tokio::test]
async fn a_server_down_for_a_while_then_back_gets_every_email_once() {
    let sink = Sink::reserve(true);
    let app = app_sending_to(&sink).await;
    queue_postponed(&app, 10, |i| format!("p{i}@example.be")).await;
    // Nothing listens: attempts fail with their reason, and are retried.
    let waiting = wait_until(&app, Duration::from_secs(10), |all| {
        all.len() == 10 && all.iter().all(|n| n["attempts"].as_i64() >= Some(2))
    })
    .await;
    for n in &waiting {
        assert_eq!(n["status"], "queued", "{n}");
        assert!(n["attempts"].as_i64() >= Some(2), "{n}");
        let error = n["last_error"].as_str().expect("an error");
        assert!(error.contains("cannot connect"), "{error}");
    }

    sink.serve();
    let received = sink.wait_for(10, Duration::from_secs(20)).await;
    let all = wait_until(&app, Duration::from_secs(10), |all| {
        all.iter().all(|n| n["status"] == "sent")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.accepted(), 10, "every email once");
    assert_eq!(message_ids(&received).len(), 10);
    assert!(all.iter().all(|n| n["status"] == "sent"));
}

#[tokio::test]
async fn a_451_is_retried_and_the_email_sent_once() {
    let sink = Sink::start(true);
    sink.script(&[451]);
    let app = app_sending_to(&sink).await;
    queue_postponed(&app, 1, |_| "retry@example.be".into()).await;
    let all = wait_until(&app, Duration::from_secs(10), |all| {
        all.iter().all(|n| n["status"] == "sent")
    })
    .await;
    assert_eq!(all[0]["status"], "sent");
    assert_eq!(all[0]["attempts"], 2, "one refusal, then sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.accepted(), 1);
}

#[tokio::test]
async fn a_550_is_failed_with_its_reason_and_not_retried() {
    let sink = Sink::start(true);
    sink.refuse("unknown");
    let app = app_sending_to(&sink).await;
    queue_postponed(&app, 2, |i| {
        if i == 0 {
            "unknown@example.be".into()
        } else {
            "known@example.be".into()
        }
    })
    .await;
    let all = wait_until(&app, Duration::from_secs(10), |all| {
        all.iter().all(|n| n["status"] != "queued")
    })
    .await;
    // Several retry periods later, still one attempt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all_later = notifications(&app, "").await;
    assert_eq!(all.len(), 2);
    for n in &all_later {
        if n["to"] == "unknown@example.be" {
            assert_eq!(n["status"], "failed", "{n}");
            assert_eq!(n["attempts"], 1);
            assert!(
                n["last_error"].as_str().expect("reason").contains("550"),
                "{n}"
            );
        } else {
            assert_eq!(n["status"], "sent", "{n}");
        }
    }
    assert_eq!(sink.rcpt_refusals(), 1);
    assert_eq!(sink.accepted(), 1);
    let failed = notifications(&app, "&status=failed").await;
    assert_eq!(failed.len(), 1);
}

#[tokio::test]
async fn two_workers_on_one_database_never_send_an_email_twice() {
    let sink = Sink::start(true);
    // The application queues; two workers of their own, each with its own database pool and
    // SMTP pool as two processes would have, deliver.
    let app = spawn_app_with(|_| {}).await;
    queue_postponed(&app, 1000, |i| format!("patient{i}@example.be")).await;
    // Both are ready before either starts: on a loaded machine, a worker that started alone
    // could send all 1,000 before the other had its pool.
    let mut ready = Vec::new();
    let mut metrics = Vec::new();
    for _ in 0..2 {
        let url = app.database.clone();
        let db = tokio::task::spawn_blocking(move || reprise::db::Db::connect(&url, 4))
            .await
            .expect("joined")
            .expect("a second pool");
        let settings = fast();
        let transport = Transport::Smtp(
            reprise::email::smtp::SmtpPool::new(
                SmtpSettings::parse(&sink.url()).expect("url"),
                settings.connections,
                settings.timeout,
            )
            .expect("pool"),
        );
        let m = reprise::metrics::Metrics::new().expect("metrics");
        metrics.push(m.clone());
        ready.push(Worker::new(
            db,
            transport,
            "Reprise <no-reply@localhost>".parse().expect("from"),
            settings,
            m,
        ));
    }
    let workers: Vec<_> = ready.into_iter().map(Worker::spawn).collect();
    let received = sink.wait_for(1000, Duration::from_secs(120)).await;
    let all = wait_until(&app, Duration::from_secs(10), |all| {
        all.iter().all(|n| n["status"] == "sent")
    })
    .await;
    for w in workers {
        w.stop().await;
    }
    assert_eq!(sink.accepted(), 1000, "no duplicates, none lost");
    assert_eq!(message_ids(&received).len(), 1000);
    assert_eq!(all.len(), 1000);
    assert!(all
        .iter()
        .all(|n| n["status"] == "sent" && n["attempts"] == 1));
    for m in &metrics {
        let sent = m.notification_deliveries.with_label_values(&["sent"]).get();
        assert!(sent > 0, "both workers took a share");
    }
}

#[tokio::test]
async fn metrics_count_the_outbox_by_status_with_the_oldest_queued_age() {
    let app = spawn_app_with(|_| {}).await;
    queue_postponed(&app, 3, |i| format!("m{i}@example.be")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = app.anonymous().text("/metrics").await;
    assert!(
        text.contains("reprise_notifications{status=\"queued\"} 3"),
        "{text}"
    );
    assert!(text.contains("reprise_notifications{status=\"sent\"} 0"));
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("reprise_notifications_oldest_queued_age_seconds "))
        .expect("the age")
        .parse()
        .expect("a number");
    assert!(age >= 1.0, "{age}");
}

#[tokio::test]
async fn without_smtp_each_email_is_an_eml_file_written_once() {
    let app = spawn_app_with(|s| s.delivery = Some(fast())).await;
    queue_postponed(&app, 3, |i| format!("file{i}@example.be")).await;
    let all = wait_until(&app, Duration::from_secs(10), |all| {
        all.len() == 3 && all.iter().all(|n| n["status"] == "sent")
    })
    .await;
    let mut files: Vec<_> = std::fs::read_dir(&app.outbox)
        .expect("the outbox folder")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut expected: Vec<_> = all
        .iter()
        .map(|n| {
            app.outbox
                .join(format!("{}.eml", n["id"].as_str().expect("id")))
        })
        .collect();
    expected.sort();
    assert_eq!(files, expected, "one file per notification, nothing else");
    let raw = std::fs::read(&files[0]).expect("readable");
    let mail = parse(&Received {
        from: String::new(),
        to: Vec::new(),
        raw,
    });
    assert_eq!(mail.subject, "Votre rendez-vous est reporté");
    assert!(mail.text.contains("Bonjour Anne Patient"), "{}", mail.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_long_smtp_outage_and_a_worker_killed_mid_batch_lose_nothing() {
    let sink = Sink::reserve(true);
    let app = spawn_app_with(|_| {}).await;
    queue_postponed(&app, 500, |i| format!("outage{i}@example.be")).await;
    let settings = DeliverySettings {
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(5),
        lease: Duration::from_secs(3),
        ..fast()
    };
    let worker = |db: reprise::db::Db| {
        let transport = Transport::Smtp(
            reprise::email::smtp::SmtpPool::new(
                SmtpSettings::parse(&sink.url()).expect("url"),
                settings.connections,
                settings.timeout,
            )
            .expect("pool"),
        );
        Worker::new(
            db,
            transport,
            "Reprise <no-reply@localhost>".parse().expect("from"),
            settings.clone(),
            reprise::metrics::Metrics::new().expect("metrics"),
        )
    };
    let open = |url: reprise::db::DatabaseUrl| async move {
        tokio::task::spawn_blocking(move || reprise::db::Db::connect(&url, 4))
            .await
            .expect("joined")
            .expect("a pool")
    };
    // Worker A runs on a runtime of its own, so that it can be killed whole: every task of it
    // (sending, claiming, recording) stops at once, as in a process killed with SIGKILL.
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let db_a = open(app.database.clone()).await;
    {
        let _inside = runtime_a.enter();
        // Its handle is kept: dropping it would stop the worker gently.
        let handle = worker(db_a).spawn();
        std::mem::forget(handle);
    }

    // The SMTP server is down for a minute: everything stays queued, with its reason.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let waiting = notifications(&app, "&status=queued").await;
    assert_eq!(waiting.len(), 500, "nothing lost, nothing failed");
    assert!(waiting.iter().all(|n| n["attempts"].as_i64() >= Some(1)));
    assert_eq!(sink.accepted(), 0);

    // Back up; worker A is killed while it delivers.
    sink.serve();
    let start = std::time::Instant::now();
    while sink.accepted() < 100 && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    runtime_a.shutdown_background();
    let accepted_at_kill = sink.accepted();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let accepted_after_kill = sink.accepted();

    // Worker B takes over: what A had claimed comes back when A's lease ends.
    let worker_b = worker(open(app.database.clone()).await).spawn();
    let all = wait_until(&app, Duration::from_secs(90), |all| {
        all.len() == 500 && all.iter().all(|n| n["status"] == "sent")
    })
    .await;
    worker_b.stop().await;
    let received = sink.received();
    let unique = message_ids(&received).len();
    let duplicates = received.len() - unique;
    println!(
        "accepted when A was killed: {accepted_at_kill} (+{} in flight), delivered: {}, distinct: {unique}, duplicates: {duplicates}",
        accepted_after_kill - accepted_at_kill,
        received.len()
    );
    assert!(
        all.iter().all(|n| n["status"] == "sent"),
        "every email delivered"
    );
    assert_eq!(unique, 500, "none lost");
    // A duplicate is an email A had sent but not yet recorded when it died: at most what it
    // had claimed (two batches: the one being sent and the next).
    assert!(duplicates <= 2 * 50, "{duplicates} duplicates");
}
