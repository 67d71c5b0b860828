//! `cargo bench --bench contact_list`: exporting a contact list of 1,000,000 postponed
//! appointments (200,000 patients, one site) as CSV over HTTP, against a raw SELECT of the same
//! rows in the same order streamed to a file, in the same run; and the service's memory during
//! the export, against a 100,000-row export. Then the same two lists as `.xlsx` workbooks: their
//! time and memory. SQLite, and PostgreSQL when `REPRISE_TEST_POSTGRES_URL` is set.
//! `BENCH_SCALE=0.1` for a quick look.

use std::io::Write;

mod common;

use common::{fill, rss, scale, targets, BenchDb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::StreamExt;
use reprise::db::{Backend, DatabaseUrl, DbConnection};
use reprise::error::AppError;

/// Downloads the list in `format` to a file; returns (seconds, bytes, peak RSS above `idle`).
async fn http_export(
    base: &str,
    token: &str,
    site: &str,
    format: &str,
    out: &std::path::Path,
    idle: u64,
) -> (f64, u64, u64) {
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
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/api/v1/contact-list?site={site}&format={format}"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("file"));
    let mut bytes = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        bytes += chunk.len() as u64;
        file.write_all(&chunk).expect("write");
    }
    file.flush().expect("flush");
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (
        seconds,
        bytes,
        peak.load(Ordering::Relaxed).saturating_sub(idle),
    )
}

/// The same rows in the same order, streamed from a raw query to a CSV file (the list's own
/// condition, `TO_CONTACT`, so that both read the same index).
fn raw_export(url: &DatabaseUrl, site: &str, out: &std::path::Path) -> f64 {
    use reprise::db::schema::{appointments as a, patients as p};
    let mut conn = url.connect().expect("connection");
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("file"));
    let started = Instant::now();
    macro_rules! query {
        () => {
            a::table
                .inner_join(p::table)
                .filter(a::site_code.eq(site))
                .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    reprise::db::contact_list::TO_CONTACT,
                ))
                .order((
                    a::priority,
                    a::original_scheduled_at,
                    p::last_name_key,
                    p::first_name_key,
                    a::id,
                ))
                .select((
                    a::id,
                    a::priority,
                    a::kind,
                    a::service_code,
                    a::label,
                    a::original_scheduled_at,
                    p::last_name,
                    p::first_name,
                    p::birth_date,
                    p::phone,
                    p::email,
                    p::language,
                    a::attempts,
                    a::last_outcome,
                    a::last_attempt_at,
                ))
        };
    }
    type Row = (
        String,
        i32,
        String,
        String,
        String,
        chrono::NaiveDateTime,
        String,
        String,
        chrono::NaiveDate,
        Option<String>,
        Option<String>,
        String,
        i32,
        Option<String>,
        Option<chrono::NaiveDateTime>,
    );
    let mut write = |r: Row| {
        writeln!(
            file,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.0,
            r.1,
            r.2,
            r.3,
            r.4,
            r.5,
            r.6,
            r.7,
            r.8,
            r.9.unwrap_or_default(),
            r.10.unwrap_or_default(),
            r.11,
            r.12,
            r.13.unwrap_or_default(),
            r.14.map(|t| t.to_string()).unwrap_or_default()
        )
        .expect("write");
    };
    match &mut conn {
        DbConnection::Sqlite(c) => {
            for row in query!()
                .load_iter::<Row, diesel::connection::DefaultLoadingMode>(c)
                .expect("query")
            {
                write(row.expect("row"));
            }
        }
        DbConnection::Pg(c) => {
            for row in query!()
                .load_iter::<Row, diesel::pg::PgRowByRowLoadingMode>(c)
                .expect("query")
            {
                write(row.expect("row"));
            }
        }
    }
    file.flush().expect("flush");
    started.elapsed().as_secs_f64()
}

async fn run(backend: Backend, server: Option<&DatabaseUrl>, tag: &str) {
    let target = BenchDb::create(backend, server, "list");
    let (dir, url) = (&target.dir, target.url.clone());
    let (base, state) = target.serve(8).await;
    let big = scale(1_000_000, 100);
    let small = big / 10;
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        fill(&db, "BIG", big / 5, big, 1);
        fill(&db, "SMALL", small / 5, small, 2);
        db.read_blocking(|conn| conn.batch_execute("ANALYZE").map_err(AppError::from))
            .expect("analyze");
    })
    .await
    .expect("filled");
    let token = common::account(&state, "Bench", "coordinator", None).await;

    // One export of each first, so that buffers and allocator arenas have settled; then each
    // is measured from its own idle level.
    for site in ["SMALL", "BIG"] {
        http_export(
            &base,
            &token,
            site,
            "csv",
            &dir.path().join("warm.csv"),
            rss(),
        )
        .await;
    }
    let small_idle = rss();
    let (_, _, small_peak) = http_export(
        &base,
        &token,
        "SMALL",
        "csv",
        &dir.path().join("small.csv"),
        small_idle,
    )
    .await;
    let big_idle = rss();
    let (seconds, bytes, big_peak) = http_export(
        &base,
        &token,
        "BIG",
        "csv",
        &dir.path().join("big.csv"),
        big_idle,
    )
    .await;
    let raw = {
        let (url, out) = (url.clone(), dir.path().join("raw.csv"));
        tokio::task::spawn_blocking(move || raw_export(&url, "BIG", &out))
            .await
            .expect("raw")
    };
    let lines = std::fs::read_to_string(dir.path().join("big.csv"))
        .map(|s| s.lines().count())
        .unwrap_or(0);
    assert_eq!(lines, big + 1, "header and every row");
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("{tag}.contact_list.rows={big}");
    println!("{tag}.contact_list.bytes={bytes}");
    println!("{tag}.contact_list.http_csv_s={seconds:.2}");
    println!("{tag}.contact_list.raw_select_to_file_s={raw:.2}");
    println!("{tag}.contact_list ratio={:.2}", seconds / raw);
    println!(
        "{tag}.contact_list.peak_mb_above_idle_1m={:.1}",
        mb(big_peak)
    );
    println!(
        "{tag}.contact_list.peak_mb_above_idle_100k={:.1}",
        mb(small_peak)
    );
    // The process's peak resident memory during each export (it holds the server, the
    // client and this bench): the 1,000,000-row list against the 100,000-row one.
    println!(
        "{tag}.contact_list.peak_rss_mb_1m={:.1}",
        mb(big_idle + big_peak)
    );
    println!(
        "{tag}.contact_list.peak_rss_mb_100k={:.1}",
        mb(small_idle + small_peak)
    );
    println!(
        "{tag}.contact_list.memory ratio={:.2}",
        (big_idle + big_peak) as f64 / (small_idle + small_peak).max(1) as f64
    );

    // The same lists as workbooks (constant-memory sheet, scratch files on disk): one of the
    // smaller first, to settle, then each measured from its own idle level.
    let xlsx = |name: &str| dir.path().join(name);
    http_export(&base, &token, "SMALL", "xlsx", &xlsx("warm.xlsx"), rss()).await;
    let small_idle = rss();
    let (small_s, _, small_peak) = http_export(
        &base,
        &token,
        "SMALL",
        "xlsx",
        &xlsx("small.xlsx"),
        small_idle,
    )
    .await;
    let big_idle = rss();
    let (big_s, big_bytes, big_peak) =
        http_export(&base, &token, "BIG", "xlsx", &xlsx("big.xlsx"), big_idle).await;
    let zip = std::fs::read(xlsx("big.xlsx")).is_ok_and(|b| b.starts_with(b"PK"));
    assert!(zip, "a workbook");
    println!("{tag}.contact_list.xlsx_s={big_s:.2}");
    println!("{tag}.contact_list.xlsx_100k_s={small_s:.2}");
    println!("{tag}.contact_list.xlsx_bytes={big_bytes}");
    println!(
        "{tag}.contact_list.xlsx ratio_to_csv={:.2}",
        big_s / seconds
    );
    println!(
        "{tag}.contact_list.xlsx_peak_mb_above_idle_1m={:.1}",
        mb(big_peak)
    );
    println!(
        "{tag}.contact_list.xlsx_peak_mb_above_idle_100k={:.1}",
        mb(small_peak)
    );
    println!(
        "{tag}.contact_list.xlsx memory ratio={:.2}",
        (big_idle + big_peak) as f64 / (small_idle + small_peak).max(1) as f64
    );
}

fn main() {
    let runtime = common::runtime();
    for (backend, server) in &targets() {
        runtime.block_on(run(*backend, server.as_ref(), backend.name()));
    }
}
