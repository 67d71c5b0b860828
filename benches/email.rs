//! `cargo bench --bench email`: 10,000 queued notifications delivered by the outbox worker to a
//! local SMTP sink (mailin-embedded, the tests' server), over one connection and then over the
//! pool, beside a reference client in the same run: a minimal SMTP client that sends the same
//! messages, already rendered, over one reused connection with TCP_NODELAY.
//!
//! Prints the rates and `ratio=X.XX`, the worker's rate over one connection divided by the
//! reference's measured just before it (target ≥ 0.8), and the pool's rate (target ≥ 500/s).
//! Each is run three times, interleaved, and the medians printed: the machine is noisy.
//! Then the same for `site_reopened` emails, each carrying an answer link the worker makes as
//! it loads the batch (`reopened ratio=`, over one connection, against the reference sending
//! the same messages with their links).
//! Also printed: reprise's SMTP pool alone (no database, no rendering) and lettre's own
//! socket (the Nagle trap, 100 messages). SQLite always; PostgreSQL
//! too when `REPRISE_TEST_POSTGRES_URL` is set. `BENCH_SCALE=0.1` for a quick look.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;
#[path = "../tests/api/smtp_sink.rs"]
#[allow(dead_code)]
mod smtp_sink;

use common::{scale, seed_sites, targets, BenchDb};
use reprise::auth::Caller;
use reprise::config::SmtpSettings;
use reprise::db::{Backend, Db};
use reprise::email::render::Links;
use reprise::email::{smtp::SmtpPool, DeliverySettings, Transport, Worker};
use reprise::error::AppError;
use smtp_sink::Sink;

const FROM: &str = "Reprise <no-reply@vivalia.test>";

/// A database with `n` `appointment_postponed` notifications queued (an import, then an
/// incident, as in production). Kept open: a SQLite database is not copied while open.
fn queued(backend: Backend, server: Option<&reprise::db::DatabaseUrl>, n: usize) -> BenchDb {
    queued_at(backend, server, n).0
}

/// [`queued`], then those emails set aside (`failed`) and the site reopened: `n`
/// `site_reopened` notifications queued, one appointment (so one answer link) each.
fn reopened(backend: Backend, server: Option<&reprise::db::DatabaseUrl>, n: usize) -> BenchDb {
    use diesel::connection::SimpleConnection;
    let (holder, site) = queued_at(backend, server, n);
    let queued = holder
        .open()
        .write_blocking(move |conn| {
            conn.batch_execute("UPDATE notifications SET status = 'failed', last_error = 'bench'")?;
            reprise::db::notifications::queue_reopened(conn, &site, reprise::domain::now())
                .map_err(AppError::from)
        })
        .expect("reopened");
    assert_eq!(queued, n);
    holder
}

/// The answer links of the bench's database, as `reprise serve` makes them.
fn links() -> Links {
    Links {
        base: "https://reprise.vivalia.test".parse().expect("url"),
    }
}

fn queued_at(
    backend: Backend,
    server: Option<&reprise::db::DatabaseUrl>,
    n: usize,
) -> (BenchDb, String) {
    let holder = BenchDb::create(backend, server, "email");
    let db = holder.open();
    let services = seed_sites(&db);
    let (site, service) = services[0].clone();
    let site_code = site.clone();
    let mut csv = reprise::service::imports::APPOINTMENT_HEADER.join(",");
    csv.push('\n');
    for i in 0..n {
        csv.push_str(&format!(
            ",Patient{i},Anne,1950-01-01,,patient{i}@example.be,fr,true,{site},{service},consultation,Suivi,2022-05-16 09:30,3,false,false\n"
        ));
    }
    reprise::service::imports::import_appointments(&db, csv.as_bytes(), &Caller::command_line())
        .expect("import");
    let queued = db
        .write_blocking(move |conn| {
            let from = chrono::NaiveDate::from_ymd_opt(2022, 5, 14)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("date");
            let incident = reprise::db::incidents::IncidentRow {
                id: uuid::Uuid::now_v7().to_string(),
                title: "bench".into(),
                started_at: from,
                postpone_until: from + chrono::Duration::days(21),
                created_at: reprise::domain::now(),
                created_by: None,
            };
            let sites = vec![site];
            reprise::db::incidents::insert(conn, &incident, &sites)?;
            let done = reprise::db::incidents::apply(
                conn,
                &incident.id,
                &sites,
                incident.started_at,
                incident.postpone_until,
                reprise::domain::now(),
            )?;
            Ok::<_, AppError>(done.notifications_queued)
        })
        .expect("incident");
    assert_eq!(queued as usize, n);
    (holder, site_code)
}

fn sent(db: &Db) -> i64 {
    db.read_blocking(|conn| {
        let (by_status, _) = reprise::db::notifications::census(conn)?;
        Ok::<_, AppError>(
            by_status
                .iter()
                .find(|(s, _)| s == "sent")
                .map_or(0, |(_, n)| *n),
        )
    })
    .expect("census")
}

/// The worker's rate (emails/s) until every notification is recorded as sent.
fn worker_rate(holder: &BenchDb, n: usize, connections: usize, links: Option<&Links>) -> f64 {
    let sink = Sink::start(false);
    let db = holder.open();
    let settings = DeliverySettings {
        poll: Duration::from_millis(10),
        batch: 500,
        connections,
        ..DeliverySettings::default()
    };
    // As in `reprise serve`: the worker runs on the main thread's runtime (actix's system
    // runtime is a current-thread one).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async {
        let transport = Transport::Smtp(
            SmtpPool::new(
                SmtpSettings::parse(&sink.url()).expect("url"),
                connections,
                settings.timeout,
            )
            .expect("pool"),
        );
        let mut worker = Worker::new(
            db.clone(),
            transport,
            FROM.parse().expect("from"),
            settings,
            reprise::metrics::Metrics::new().expect("metrics"),
        );
        if let Some(links) = links {
            worker = worker.with_links(links.clone(), chrono::Duration::days(30));
        }
        let worker = worker.spawn();
        // The sink's counter first (cheap), then the database (every result recorded).
        while sink.accepted() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        loop {
            let check = db.clone();
            let done = tokio::task::spawn_blocking(move || sent(&check))
                .await
                .expect("joined");
            if done as usize >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        worker.stop().await;
        assert_eq!(sink.accepted(), n, "every email once");
        n as f64 / elapsed.as_secs_f64()
    })
}

/// The same messages, rendered beforehand: what the reference client sends.
fn rendered(holder: &BenchDb, links: Option<&Links>) -> Vec<(String, String, Vec<u8>)> {
    let db = holder.open();
    let from: lettre::message::Mailbox = FROM.parse().expect("from");
    let links = links.cloned();
    let terms = links.as_ref().map(|_| {
        let now = reprise::domain::now();
        reprise::db::notifications::LinkTerms {
            now,
            expires_at: now + chrono::Duration::days(30),
        }
    });
    db.write_blocking(move |conn| {
        let filter = reprise::db::notifications::NotificationFilter {
            status: Some(reprise::domain::notification::NotificationStatus::Queued),
            ..Default::default()
        };
        let ids: Vec<String> = reprise::db::notifications::list(conn, &filter, i64::MAX)?
            .into_iter()
            .map(|n| n.id)
            .collect();
        let outgoing = reprise::db::notifications::outgoing(conn, &ids, terms)?;
        let started = Instant::now();
        let rendered: Vec<_> = outgoing
            .iter()
            .map(|o| {
                let m = reprise::email::render::message(o, &from, "vivalia.test", links.as_ref())
                    .expect("renders");
                (from.email.to_string(), o.to_address.clone(), m.formatted())
            })
            .collect();
        println!(
            "render_us_per_message={:.1}",
            started.elapsed().as_secs_f64() * 1e6 / rendered.len() as f64
        );
        Ok::<_, AppError>(rendered)
    })
    .expect("messages")
}

fn expect_reply(reader: &mut BufReader<TcpStream>, line: &mut String, code: &str) {
    loop {
        line.clear();
        reader.read_line(line).expect("a reply");
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        // Multi-line replies continue with "250-".
        if line.as_bytes().get(3) != Some(&b'-') {
            return;
        }
    }
}

/// A minimal SMTP client: one connection, TCP_NODELAY, one write per command and per message.
fn reference_rate(messages: &[(String, String, Vec<u8>)]) -> f64 {
    let sink = Sink::start(false);
    let stream = TcpStream::connect(("127.0.0.1", sink.port)).expect("connects");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    expect_reply(&mut reader, &mut line, "220");
    writer.write_all(b"EHLO reference\r\n").expect("write");
    expect_reply(&mut reader, &mut line, "250");
    let started = Instant::now();
    for (from, to, raw) in messages {
        writer
            .write_all(format!("MAIL FROM:<{from}>\r\n").as_bytes())
            .expect("write");
        expect_reply(&mut reader, &mut line, "250");
        writer
            .write_all(format!("RCPT TO:<{to}>\r\n").as_bytes())
            .expect("write");
        expect_reply(&mut reader, &mut line, "250");
        writer.write_all(b"DATA\r\n").expect("write");
        expect_reply(&mut reader, &mut line, "354");
        // Dot-stuffing: a line starting with '.' gets another.
        let mut body = Vec::with_capacity(raw.len() + 16);
        for l in raw.split_inclusive(|b| *b == b'\n') {
            if l.first() == Some(&b'.') {
                body.push(b'.');
            }
            body.extend_from_slice(l);
        }
        body.extend_from_slice(b"\r\n.\r\n");
        writer.write_all(&body).expect("write");
        expect_reply(&mut reader, &mut line, "250");
    }
    let elapsed = started.elapsed();
    writer.write_all(b"QUIT\r\n").expect("write");
    assert_eq!(sink.accepted(), messages.len());
    messages.len() as f64 / elapsed.as_secs_f64()
}

/// reprise's SMTP pool alone, one connection, the same pre-rendered messages: the floor of
/// the worker without its database and rendering.
fn pool_only_rate(messages: &[(String, String, Vec<u8>)]) -> f64 {
    let sink = Sink::start(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let pool = SmtpPool::new(
            SmtpSettings::parse(&sink.url()).expect("url"),
            1,
            Duration::from_secs(10),
        )
        .expect("pool");
        let envelopes: Vec<lettre::address::Envelope> = messages
            .iter()
            .map(|(from, to, _)| {
                lettre::address::Envelope::new(
                    Some(from.parse().expect("from")),
                    vec![to.parse().expect("to")],
                )
                .expect("envelope")
            })
            .collect();
        let started = Instant::now();
        for ((_, _, raw), envelope) in messages.iter().zip(&envelopes) {
            pool.send(envelope, raw).await.expect("sent");
        }
        messages.len() as f64 / started.elapsed().as_secs_f64()
    })
}

/// The trap this design avoids: lettre's own socket (Nagle on), one connection.
fn lettre_socket_rate(messages: &[(String, String, Vec<u8>)]) -> f64 {
    use lettre::transport::smtp::client::AsyncSmtpConnection;
    use lettre::transport::smtp::extension::ClientId;
    let sink = Sink::start(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            ("127.0.0.1", sink.port),
            Some(Duration::from_secs(10)),
            &ClientId::default(),
            None,
            None,
        )
        .await
        .expect("connects");
        let started = Instant::now();
        for (from, to, raw) in messages {
            let envelope = lettre::address::Envelope::new(
                Some(from.parse().expect("from")),
                vec![to.parse().expect("to")],
            )
            .expect("envelope");
            conn.send(&envelope, raw).await.expect("sent");
        }
        messages.len() as f64 / started.elapsed().as_secs_f64()
    })
}

/// Every notification queued again, due now: the same work for the next run (on PostgreSQL,
/// with the dead rows of the last run vacuumed, as autovacuum would).
fn requeue(holder: &BenchDb, backend: Backend) {
    use diesel::connection::SimpleConnection;
    let db = holder.open();
    db.write_blocking(|conn| {
        conn.batch_execute(
            "UPDATE notifications SET status = 'queued', attempts = 0, sent_at = NULL, \
             last_error = NULL, claimed_by = NULL, claimed_until = NULL, next_attempt_at = created_at \
             WHERE status = 'sent'; DELETE FROM answer_links",
        )
        .map_err(AppError::from)
    })
    .expect("requeued");
    if backend == Backend::Postgres {
        db.read_blocking(|conn| {
            // One statement each: VACUUM runs outside a transaction, which a multi-statement
            // string is not.
            conn.batch_execute("VACUUM ANALYZE notifications")?;
            conn.batch_execute("VACUUM ANALYZE answer_links")
                .map_err(AppError::from)
        })
        .expect("vacuum");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs of each measure, interleaved; the figures are medians.
const RUNS: usize = 3;

fn main() {
    let n = scale(10_000, 200);
    let pool = 8;
    for (backend, server) in targets() {
        let tag = backend.name();
        let messages = rendered(&queued(backend, server.as_ref(), n), None);
        let one = queued(backend, server.as_ref(), n);
        let many = queued(backend, server.as_ref(), n);
        let nagle = lettre_socket_rate(&messages[..messages.len().min(100)]);
        let (mut reference, mut pool_only, mut one_rate, mut pool_rate, mut ratios) =
            (vec![], vec![], vec![], vec![], vec![]);
        for run in 0..RUNS {
            if run > 0 {
                requeue(&one, backend);
                requeue(&many, backend);
            }
            let r = reference_rate(&messages);
            let o = worker_rate(&one, n, 1, None);
            ratios.push(o / r);
            reference.push(r);
            one_rate.push(o);
            pool_only.push(pool_only_rate(&messages));
            pool_rate.push(worker_rate(&many, n, pool, None));
        }
        println!("{tag}.email.notifications={n}");
        println!("{tag}.email.runs={RUNS}");
        println!("{tag}.email.reference_per_s={:.0}", median(reference));
        println!("{tag}.email.lettre_own_socket_per_s={nagle:.0}");
        println!("{tag}.email.smtp_pool_alone_per_s={:.0}", median(pool_only));
        println!("{tag}.email.one_connection_per_s={:.0}", median(one_rate));
        println!("{tag}.email.pool{pool}_per_s={:.0}", median(pool_rate));
        println!("{tag}.email ratio={:.2}", median(ratios));

        // site_reopened emails, each with an answer link made as the batch is loaded.
        let baseline = reopened(backend, server.as_ref(), n);
        let messages = rendered(&baseline, Some(&links()));
        let one = reopened(backend, server.as_ref(), n);
        let one_links = links();
        // The same emails without links: what the links themselves cost.
        let bare = reopened(backend, server.as_ref(), n);
        let (mut reference, mut one_rate, mut bare_rate, mut ratios) =
            (vec![], vec![], vec![], vec![]);
        for run in 0..RUNS {
            if run > 0 {
                requeue(&one, backend);
                requeue(&bare, backend);
            }
            let r = reference_rate(&messages);
            let o = worker_rate(&one, n, 1, Some(&one_links));
            ratios.push(o / r);
            reference.push(r);
            one_rate.push(o);
            bare_rate.push(worker_rate(&bare, n, 1, None));
        }
        println!(
            "{tag}.email.reopened.reference_per_s={:.0}",
            median(reference)
        );
        println!(
            "{tag}.email.reopened.one_connection_with_links_per_s={:.0}",
            median(one_rate)
        );
        println!(
            "{tag}.email.reopened.one_connection_without_links_per_s={:.0}",
            median(bare_rate)
        );
        println!("{tag}.email.reopened ratio={:.2}", median(ratios));
    }
}
