//! The writers: threads that each hold one connection and commit the jobs waiting in batches.
//!
//! Every commit waits for the disk (SQLite with `synchronous = FULL`, PostgreSQL's WAL flush),
//! so one transaction per request caps the write rate at the disk's flush rate, and on
//! PostgreSQL each transaction also costs its `BEGIN` and `COMMIT` round trips. Here a writer
//! takes all the jobs waiting, runs each inside its own savepoint of one transaction, commits
//! once, and only then answers each job. A job that fails is rolled back to its savepoint and
//! gets its own error; the others still commit. No job is acknowledged before the commit that
//! makes it durable.
//!
//! A savepoint per job costs statements (on PostgreSQL, round trips) per job. The jobs of
//! [`super::Db::write_grouped`] can run again, so a batch first runs them together in one
//! savepoint, and their calls go in with one insert (`batch.rs`); only if one of them fails is
//! the group undone and run again, each job in its own savepoint, as above.
//!
//! On SQLite one writer thread takes every write of the process, so writes never meet
//! "database is locked" among themselves (another process, such as the command line, waits on
//! the busy timeout). On PostgreSQL a few writer threads share one queue and take only the
//! writes sent to them ([`super::Db::write_grouped`]: logging a call); other writes run in
//! their own transactions on the pool.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::Connection;

use super::{DatabaseUrl, DbConnection, DbError};

/// Most jobs in one SQLite commit: enough to amortise the fsync, few enough to keep latency
/// flat.
const MAX_BATCH_SQLITE: usize = 512;

/// Most jobs in one PostgreSQL commit. Each job's savepoint that writes is a subtransaction,
/// and a transaction with more than 64 of them overflows PostgreSQL's per-backend cache of
/// subtransaction ids: every snapshot on the server then has to read `pg_subtrans`.
const MAX_BATCH_POSTGRES: usize = 48;

/// A unit of work for the writer thread.
pub(super) trait Job: Send {
    /// Runs the work on the writer's connection; `true` if it succeeded.
    fn run(&mut self, conn: &mut DbConnection) -> bool;
    /// Answers the caller once the batch has committed (or failed to).
    fn deliver(self: Box<Self>, committed: Result<(), String>);
    /// The unique key the job inserts, if any: a batch runs its jobs in this order (see
    /// [`next_batch`]).
    fn order(&self) -> Option<&str>;
    /// Sent by `Db::write_grouped`: its audit entries wait for the batch's commit (`batch.rs`).
    fn grouped(&self) -> bool;
    /// It can run again, its first run undone: the batch may first run such jobs together,
    /// without a savepoint each ([`run_together`]).
    fn repeatable(&self) -> bool;
}

/// How a job joins its batch.
#[derive(Debug, Default)]
pub(super) struct Terms {
    /// Sent by `Db::write_grouped`.
    pub grouped: bool,
    /// The unique key it inserts (its `Idempotency-Key`).
    pub order: Option<String>,
}

/// The work of a job: a closure that runs once, or one that can run again.
pub(super) trait Work<T, E>: Send {
    /// `None` once a closure that runs once has run.
    fn call(&mut self, conn: &mut DbConnection) -> Option<Result<T, E>>;
    fn repeatable(&self) -> bool;
}

/// A closure that runs once.
pub(super) struct Once<F>(Option<F>);

impl<T, E, F> Work<T, E> for Once<F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send,
{
    fn call(&mut self, conn: &mut DbConnection) -> Option<Result<T, E>> {
        self.0.take().map(|f| f(conn))
    }

    fn repeatable(&self) -> bool {
        false
    }
}

/// A closure that can run again.
pub(super) struct Again<F>(F);

impl<T, E, F> Work<T, E> for Again<F>
where
    F: Fn(&mut DbConnection) -> Result<T, E> + Send,
{
    fn call(&mut self, conn: &mut DbConnection) -> Option<Result<T, E>> {
        Some((self.0)(conn))
    }

    fn repeatable(&self) -> bool {
        true
    }
}

/// A closure and where to send its result.
pub(super) struct Typed<T, E, W> {
    work: W,
    out: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
    terms: Terms,
}

impl<T, E, F> Typed<T, E, Once<F>> {
    /// A job that runs `f` once.
    pub(super) fn new(
        f: F,
        reply: tokio::sync::oneshot::Sender<Result<T, E>>,
        terms: Terms,
    ) -> Self {
        Self {
            work: Once(Some(f)),
            out: None,
            reply,
            terms,
        }
    }
}

impl<T, E, F> Typed<T, E, Again<F>> {
    /// A job whose `f` may run more than once, the earlier runs undone: `f` must have no effect
    /// outside the connection.
    pub(super) fn repeatable(
        f: F,
        reply: tokio::sync::oneshot::Sender<Result<T, E>>,
        terms: Terms,
    ) -> Self {
        Self {
            work: Again(f),
            out: None,
            reply,
            terms,
        }
    }
}

impl<T, E, W> Job for Typed<T, E, W>
where
    W: Work<T, E>,
    T: Send,
    E: From<DbError> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) -> bool {
        let work = &mut self.work;
        let Some(out) = std::panic::catch_unwind(AssertUnwindSafe(|| work.call(conn)))
            .unwrap_or_else(|_| {
                Some(Err(E::from(DbError::Task(
                    "a database job panicked".into(),
                ))))
            })
        else {
            return false;
        };
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn deliver(self: Box<Self>, committed: Result<(), String>) {
        let this = *self;
        let result = match (this.out, committed) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(E::from(DbError::Unavailable(e))),
            (None, Ok(())) => Err(E::from(DbError::Task("a database job did not run".into()))),
        };
        // The caller may have gone (a cancelled request): its work is committed regardless.
        let _ = this.reply.send(result);
    }

    fn order(&self) -> Option<&str> {
        self.terms.order.as_deref()
    }

    fn grouped(&self) -> bool {
        self.terms.grouped
    }

    fn repeatable(&self) -> bool {
        self.work.repeatable()
    }
}

/// Where jobs are sent; cloned with the `Db`.
pub(super) type Handle = mpsc::Sender<Box<dyn Job>>;

/// What the writer threads have done since the process started, added up over the threads.
#[derive(Debug, Default)]
pub(super) struct Stats {
    threads: usize,
    batches: AtomicU64,
    jobs: AtomicU64,
    /// Nanoseconds spent on batches: running the jobs, committing, answering.
    busy_ns: AtomicU64,
    /// Nanoseconds of that in the commit itself (on SQLite the WAL's writes and the disk's sync).
    commit_ns: AtomicU64,
}

impl Stats {
    fn add_batch(&self, jobs: usize, busy: Duration) {
        self.batches.fetch_add(1, Relaxed);
        self.jobs.fetch_add(jobs as u64, Relaxed);
        self.busy_ns.fetch_add(nanos(busy), Relaxed);
    }

    fn add_busy(&self, took: Duration) {
        self.busy_ns.fetch_add(nanos(took), Relaxed);
    }

    fn add_commit(&self, took: Duration) {
        self.commit_ns.fetch_add(nanos(took), Relaxed);
    }

    pub(super) fn figures(&self) -> super::WriterFigures {
        let seconds = |ns: &AtomicU64| ns.load(Relaxed) as f64 / 1e9;
        super::WriterFigures {
            threads: self.threads,
            batches: self.batches.load(Relaxed),
            jobs: self.jobs.load(Relaxed),
            busy_seconds: seconds(&self.busy_ns),
            commit_seconds: seconds(&self.commit_ns),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Starts `threads` writers for `url` on one queue; they stop when every handle is dropped.
/// Also returns what they count.
pub(super) fn spawn(url: &DatabaseUrl, threads: usize) -> std::io::Result<(Handle, Arc<Stats>)> {
    let threads = threads.max(1);
    let stats = Arc::new(Stats {
        threads,
        ..Stats::default()
    });
    let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
    let rx = Arc::new(Mutex::new(rx));
    let max_batch = match url.backend {
        super::Backend::Sqlite => MAX_BATCH_SQLITE,
        super::Backend::Postgres => MAX_BATCH_POSTGRES,
    };
    for i in 0..threads {
        let (url, rx, stats) = (url.clone(), rx.clone(), stats.clone());
        std::thread::Builder::new()
            .name(format!("{}-writer-{i}", url.backend.name()))
            .spawn(move || run(&url, &rx, max_batch, &stats))?;
    }
    Ok((tx, stats))
}

/// The jobs waiting, up to `max`: blocks for the first. `None` once every handle is dropped.
///
/// They run in the order of the unique keys they insert. A job inserting a key that another
/// writer's batch has inserted and not yet committed waits for that commit; if that batch
/// waited in turn for a key this batch holds, PostgreSQL would find a deadlock (after a second)
/// and fail one of them. Taken in one order everywhere, keys cannot form such a cycle: two
/// requests with the same key sent to two instances at once, say.
fn next_batch(rx: &Mutex<mpsc::Receiver<Box<dyn Job>>>, max: usize) -> Option<Vec<Box<dyn Job>>> {
    // Another writer panicking cannot leave the receiver half-updated: take it back.
    let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut batch = vec![rx.recv().ok()?];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    drop(rx);
    // The jobs that can run again go last, together (`commit_batch_counted`).
    batch.sort_by(|a, b| (a.repeatable(), a.order()).cmp(&(b.repeatable(), b.order())));
    Some(batch)
}

fn run(
    url: &DatabaseUrl,
    rx: &Mutex<mpsc::Receiver<Box<dyn Job>>>,
    max_batch: usize,
    stats: &Stats,
) {
    let mut conn: Option<DbConnection> = None;
    while let Some(mut batch) = next_batch(rx, max_batch) {
        let started = Instant::now();
        let jobs = batch.len();
        let result = match conn.as_mut() {
            Some(c) => commit_batch(c, &mut batch, stats),
            None => match open(url) {
                Ok(c) => commit_batch(conn.insert(c), &mut batch, stats),
                Err(e) => Err(format!("cannot open the database: {e}")),
            },
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, jobs = batch.len(), "write batch failed");
            // Start the next batch on a fresh connection, whatever state this one is in.
            conn = None;
        }
        // Counted before the answers: a caller that has its answer finds its batch counted.
        stats.add_batch(jobs, started.elapsed());
        let answering = Instant::now();
        for job in batch {
            job.deliver(result.clone());
        }
        stats.add_busy(answering.elapsed());
    }
}

/// The writer's connection. Every job of a batch runs in a savepoint, and SQLite keeps what a
/// savepoint needs to roll back in a sub-journal that spills to a temporary file past 64 KiB
/// unless temporary storage is in memory: a batch of a few dozen calls went past it, and the
/// writer spent a fifth of its time writing that file.
fn open(url: &DatabaseUrl) -> Result<DbConnection, String> {
    use diesel::connection::SimpleConnection;
    let mut conn = url.connect().map_err(|e| e.to_string())?;
    if let DbConnection::Sqlite(c) = &mut conn {
        // The write lock is waited for by `begin_immediate`, which asks again far more often
        // than SQLite's busy handler would.
        c.batch_execute("PRAGMA temp_store = MEMORY; PRAGMA busy_timeout = 0")
            .map_err(|e| e.to_string())?;
    }
    Ok(conn)
}

/// How often a SQLite writer asks again for the write lock another process holds.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_micros(250);

/// `BEGIN IMMEDIATE` on SQLite, waiting for the write lock up to the busy timeout.
///
/// SQLite's own busy handler sleeps longer and longer between tries, up to 100 ms. A process
/// whose writer commits batch after batch (the service while agents log calls) frees the lock
/// only for the microseconds between a commit and its next `BEGIN`: another process waiting
/// that way (`reprise backup` writing its audit entry) could miss every one of those windows
/// and fail with "database is locked" after the whole timeout. Asking every 250 µs finds one.
fn begin_immediate(c: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(u64::from(super::SQLITE_BUSY_TIMEOUT_MS));
    loop {
        match AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE") {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(LOCK_POLL);
            }
            done => return done,
        }
    }
}

/// SQLite's `SQLITE_BUSY`: diesel reports it by its message only.
fn is_busy(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info) if info.message() == "database is locked")
}

/// Statements of fixed text that diesel prepares once per connection and then reuses (each has
/// its own type, hence its own cache key). The writer wraps every job of a batch in a savepoint:
/// through `Connection::transaction` that cost a parse of `SAVEPOINT …` and `RELEASE …` per
/// call logged.
macro_rules! fixed_statements {
    ($($name:ident = $sql:literal;)*) => {$(
        struct $name;

        impl diesel::query_builder::QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for $name {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
            ) -> diesel::QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }

        impl<Conn> diesel::RunQueryDsl<Conn> for $name {}
    )*};
}

fixed_statements! {
    Savepoint = "SAVEPOINT writer_job";
    Release = "RELEASE writer_job";
    RollbackTo = "ROLLBACK TO writer_job";
    SavepointGroup = "SAVEPOINT writer_group";
    ReleaseGroup = "RELEASE writer_group";
    RollbackToGroup = "ROLLBACK TO writer_group";
}

/// Runs the jobs of a batch, each in its own savepoint: kept if it succeeds, undone if it
/// fails.
fn run_in_savepoints(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    let last = batch.len().saturating_sub(1);
    for (i, job) in batch.iter_mut().enumerate() {
        match conn {
            DbConnection::Sqlite(c) => Savepoint.execute(c).map(drop)?,
            // On PostgreSQL every statement is a round trip: the savepoint of the next job goes
            // with the end of the previous one.
            DbConnection::Pg(c) if i == 0 => Savepoint.execute(c).map(drop)?,
            DbConnection::Pg(_) => {}
        }
        super::batch::job_start(job.grouped());
        let ok = job.run(conn);
        super::batch::job_done(ok);
        balanced(conn)?;
        match conn {
            DbConnection::Sqlite(c) => {
                if !ok {
                    RollbackTo.execute(c)?;
                }
                // After `ROLLBACK TO` the savepoint is still open; `RELEASE` closes it either way.
                Release.execute(c)?;
            }
            DbConnection::Pg(c) => {
                // The last job's savepoint is released too, though the commit would: a job that
                // swallowed a failed statement and answered `Ok` leaves the transaction
                // aborted, and PostgreSQL answers `COMMIT` on it with a silent rollback, which
                // would acknowledge the whole batch. `RELEASE` on it fails, and so does the
                // batch.
                let sql = match (ok, i == last) {
                    (true, true) => "RELEASE writer_job",
                    (true, false) => "RELEASE writer_job; SAVEPOINT writer_job",
                    (false, true) => "ROLLBACK TO writer_job",
                    (false, false) => {
                        "ROLLBACK TO writer_job; RELEASE writer_job; SAVEPOINT writer_job"
                    }
                };
                diesel::connection::SimpleConnection::batch_execute(c, sql)?;
            }
        }
    }
    Ok(())
}

/// A job must leave diesel's transaction depth as it found it (1: the batch's transaction). One
/// that panicked inside its own nested transaction leaves it deeper, and diesel would then
/// commit or roll back the wrong level: the batch fails and the connection is replaced.
fn balanced(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    let depth = per_backend!(&mut *conn, |c| {
        AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()
    });
    match depth {
        Ok(Some(depth)) if depth.get() == 1 => Ok(()),
        _ => Err(diesel::result::Error::BrokenTransactionManager),
    }
}

fn commit_batch(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
    stats: &Stats,
) -> Result<(), String> {
    super::batch::open();
    let result = commit_batch_counted(conn, batch, stats);
    super::batch::close();
    result
}

/// [`commit_batch`], with the batch's deferred writes open (`batch.rs`).
///
/// The jobs that run once come first, each in its own savepoint (alone in the batch, in the
/// transaction itself). The repeatable ones follow, all together in one savepoint
/// ([`run_together`]); if one of them fails, the group is undone and they run again, each in
/// its own savepoint.
fn commit_batch_counted(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Job>],
    stats: &Stats,
) -> Result<(), String> {
    use diesel::RunQueryDsl;
    type Tm = <DbConnection as Connection>::TransactionManager;
    let begun = match conn {
        DbConnection::Sqlite(c) => begin_immediate(c),
        DbConnection::Pg(_) => Tm::begin_transaction(conn),
    };
    begun.map_err(|e| e.to_string())?;
    let split = batch
        .iter()
        .position(|job| job.repeatable())
        .unwrap_or(batch.len());
    let (once, again) = batch.split_at_mut(split);
    let outcome = match (&mut *once, again.is_empty()) {
        // Alone: no savepoint needed, its failure rolls the transaction back.
        ([only], true) => {
            super::batch::job_start(only.grouped());
            let ok = only.run(conn);
            super::batch::job_done(ok);
            balanced(conn).map(|()| ok)
        }
        ([], _) => Ok(true),
        (once, _) => run_in_savepoints(conn, once).map(|()| true),
    }
    .and_then(|ok| {
        if again.is_empty() {
            return Ok(ok);
        }
        if !run_together(conn, again)? {
            // Undone; each runs again in its own savepoint.
            per_backend!(&mut *conn, |c| {
                RollbackToGroup.execute(c)?;
                ReleaseGroup.execute(c)
            })?;
            run_in_savepoints(conn, again)?;
        }
        Ok(ok)
    })
    .map_err(|e| e.to_string());
    // What the jobs deferred, last, just before the commit (`batch.rs`).
    let outcome = outcome.and_then(|ok| {
        if ok {
            super::batch::flush(conn)
                .map(|()| ok)
                .map_err(|e| format!("the batch's deferred writes failed: {e}"))
        } else {
            Ok(ok)
        }
    });
    match outcome {
        Ok(true) => {
            let started = Instant::now();
            let committed = Tm::commit_transaction(conn);
            stats.add_commit(started.elapsed());
            committed.map_err(|e| {
                let _ = Tm::rollback_transaction(conn);
                format!("commit failed: {e}")
            })
        }
        Ok(false) => Tm::rollback_transaction(conn).map_err(|e| format!("rollback failed: {e}")),
        Err(e) => {
            let _ = Tm::rollback_transaction(conn);
            Err(e)
        }
    }
}

/// What kind of error `e` is, without its message.
fn error_kind(e: &diesel::result::Error) -> String {
    match e {
        diesel::result::Error::DatabaseError(kind, _) => format!("{kind:?}"),
        _ => "not a database error".into(),
    }
}

/// Runs repeatable jobs one after the other in one savepoint, none in a savepoint of its own,
/// and inserts the calls they left to the batch (`batch.rs`) in one statement: on PostgreSQL
/// that is one round trip per batch instead of three per call. `Ok(false)` if any of that
/// failed (a job, a call whose key turns out to be taken, a statement): the savepoint is
/// still open, for the caller to roll back to. `Err` if the batch cannot go on.
fn run_together(conn: &mut DbConnection, jobs: &mut [Box<dyn Job>]) -> diesel::QueryResult<bool> {
    use diesel::RunQueryDsl;
    per_backend!(&mut *conn, |c| SavepointGroup.execute(c))?;
    super::batch::together(true);
    let mut all = true;
    for job in jobs.iter_mut() {
        super::batch::job_start(job.grouped());
        let ok = job.run(conn);
        super::batch::job_done(ok);
        if let Err(e) = balanced(conn) {
            super::batch::together(false);
            return Err(e);
        }
        if !ok {
            all = false;
            break;
        }
    }
    super::batch::together(false);
    // On PostgreSQL, `RELEASE` fails on a transaction aborted by a statement a job swallowed
    // (see `run_in_savepoints`).
    let settled =
        all && super::batch::settle(conn).unwrap_or_else(|e| {
            // Every job runs again and meets the error itself; the kind only (a message may
            // quote a row's values).
            tracing::warn!(
                error = error_kind(&e),
                "the calls of a group failed to go in together"
            );
            false
        }) && per_backend!(&mut *conn, |c| ReleaseGroup.execute(c)).is_ok();
    if settled {
        super::batch::keep_group();
    } else {
        super::batch::drop_group();
    }
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::Text;
    use diesel::RunQueryDsl;

    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }

    fn insert(conn: &mut DbConnection, name: &str) -> Result<(), DbError> {
        let sql = match conn {
            DbConnection::Sqlite(_) => "INSERT INTO t (name) VALUES (?)",
            DbConnection::Pg(_) => "INSERT INTO t (name) VALUES ($1)",
        };
        per_backend!(conn, |c| diesel::sql_query(sql)
            .bind::<Text, _>(name)
            .execute(c))
        .map(drop)
        .map_err(DbError::from)
    }

    type Reply = tokio::sync::oneshot::Receiver<Result<(), DbError>>;

    fn job<F>(f: F) -> (Box<dyn Job>, Reply)
    where
        F: FnOnce(&mut DbConnection) -> Result<(), DbError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Box::new(Typed::new(f, tx, Terms::default())), rx)
    }

    fn names(conn: &mut DbConnection) -> Vec<String> {
        per_backend!(conn, |c| diesel::sql_query(
            "SELECT name FROM t ORDER BY name"
        )
        .load::<Name>(c))
        .expect("names")
        .into_iter()
        .map(|n| n.name)
        .collect()
    }

    /// A database of its own for a test: a SQLite file, and also a PostgreSQL database when
    /// `REPRISE_TEST_POSTGRES_URL` names a server (dropped with the value).
    enum Scratch {
        Sqlite(#[allow(dead_code)] tempfile::TempDir),
        Postgres { server: DatabaseUrl, name: String },
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if let Scratch::Postgres { server, name } = self {
                if let Ok(mut c) = server.connect() {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }

    /// Each backend the tests can reach, with a table `t` and the writer's connection on it.
    fn writers_on_new_databases() -> Vec<(Scratch, DatabaseUrl, DbConnection)> {
        let dir = tempfile::tempdir().expect("dir");
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}/w.db", dir.path().display())).expect("url");
        let mut out = vec![(Scratch::Sqlite(dir), url)];
        if let Some(server) = std::env::var("REPRISE_TEST_POSTGRES_URL")
            .ok()
            .filter(|raw| !raw.is_empty())
            .and_then(|raw| DatabaseUrl::parse(&raw).ok())
        {
            let name = format!("reprise_writer_{}", uuid::Uuid::new_v4().simple());
            server
                .connect()
                .expect("the PostgreSQL test server answers")
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("a database");
            let url = server.with_database(&name).expect("url");
            out.push((Scratch::Postgres { server, name }, url));
        }
        out.into_iter()
            .map(|(scratch, url)| {
                let mut conn = open(&url).expect("open");
                conn.batch_execute("CREATE TABLE t (name TEXT NOT NULL UNIQUE)")
                    .expect("table");
                (scratch, url, conn)
            })
            .collect()
    }

    /// Applies the service's migrations on `conn`; returns an instant for the rows of a test.
    fn migrated(url: &DatabaseUrl, conn: &mut DbConnection) -> chrono::NaiveDateTime {
        let migrations = match url.backend {
            super::super::Backend::Sqlite => super::super::SQLITE_MIGRATIONS,
            super::super::Backend::Postgres => super::super::POSTGRES_MIGRATIONS,
        };
        super::super::run_migrations(conn, migrations, None).expect("migrated");
        chrono::NaiveDate::from_ymd_opt(2022, 5, 16)
            .and_then(|d| d.and_hms_opt(8, 15, 0))
            .expect("a time")
    }

    /// One commit for the batch; the job that fails after writing is undone alone, and each
    /// job gets its own answer.
    #[test]
    fn a_failed_job_is_undone_alone_and_the_others_commit() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let (a, a_rx) = job(|c| insert(c, "a"));
            let (b, b_rx) = job(|c| {
                insert(c, "b")?;
                // The second insert breaks the unique index: "b" must go too.
                insert(c, "a")
            });
            // A job may open its own (nested) transaction.
            let (nested, nested_rx) = job(|c| c.transaction(|c| insert(c, "c")));
            let mut batch = vec![a, b, nested];
            let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
            assert_eq!(committed, Ok(()), "{:?}", url.backend);
            for job in batch {
                job.deliver(committed.clone());
            }
            assert!(a_rx.blocking_recv().expect("answer").is_ok());
            assert!(b_rx.blocking_recv().expect("answer").is_err());
            assert!(nested_rx.blocking_recv().expect("answer").is_ok());
            // Read back on another connection: what was committed is in the database.
            assert_eq!(names(&mut url.connect().expect("reader")), ["a", "c"]);
        }
    }

    /// Another process whose writer commits without a pause (the service while agents log
    /// calls) frees the write lock only between a commit and its next `BEGIN`: a writer still
    /// gets it in time (`reprise backup` writing its audit entry meanwhile).
    #[test]
    fn a_writer_gets_the_lock_from_a_process_that_commits_without_a_pause() {
        let (_scratch, url, mut conn) = writers_on_new_databases().swap_remove(0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hog_stop, hog_url) = (stop.clone(), url.clone());
        let (started, ready) = mpsc::channel();
        let hog = std::thread::spawn(move || {
            let mut c = hog_url.connect().expect("the other process");
            let mut commits = 0u64;
            let next = "BEGIN IMMEDIATE; INSERT OR IGNORE INTO t VALUES ('other')";
            c.batch_execute(next).expect("the other process writes");
            while !hog_stop.load(SeqCst) {
                // A batch's work and its fsync, then at once the next batch.
                std::thread::sleep(std::time::Duration::from_millis(1));
                c.batch_execute(&format!("COMMIT; {next}"))
                    .expect("the other process commits");
                commits += 1;
                if commits == 10 {
                    started.send(()).expect("started");
                }
            }
            c.batch_execute("COMMIT")
                .expect("the other process commits");
            commits
        });
        ready.recv().expect("the other process commits");
        let (a, a_rx) = job(|c| insert(c, "a"));
        let mut batch = vec![a];
        let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
        stop.store(true, SeqCst);
        let commits = hog.join().expect("the other process");
        assert_eq!(committed, Ok(()), "after {commits} commits of the other");
        for job in batch {
            job.deliver(committed.clone());
        }
        assert!(a_rx.blocking_recv().expect("answer").is_ok());
        assert_eq!(names(&mut url.connect().expect("reader")), ["a", "other"]);
    }

    /// A job that panics inside its own nested transaction leaves diesel one level deep: the
    /// batch fails as a whole (nothing acknowledged, nothing committed) rather than committing
    /// at the wrong level.
    #[test]
    fn a_job_that_breaks_the_transaction_depth_fails_its_batch() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            for alone in [false, true] {
                let (a, a_rx) = job(|c| insert(c, "a"));
                let (broken, broken_rx) = job(|c| {
                    c.transaction::<(), DbError, _>(|c| {
                        insert(c, "b")?;
                        panic!("a bug inside a nested transaction")
                    })
                });
                let mut batch = if alone { vec![broken] } else { vec![a, broken] };
                let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
                assert!(committed.is_err(), "alone: {alone}, {:?}", url.backend);
                for job in batch {
                    job.deliver(committed.clone());
                }
                assert!(broken_rx.blocking_recv().expect("answer").is_err());
                if !alone {
                    assert!(a_rx.blocking_recv().expect("answer").is_err());
                }
                // The writer replaces its connection after a failed batch.
                conn = open(&url).expect("reopened");
                assert!(names(&mut conn).is_empty(), "nothing committed");
            }
        }
    }

    /// A job alone in its batch that fails leaves nothing behind.
    #[test]
    fn a_failed_job_alone_rolls_back() {
        for (_scratch, _url, mut conn) in writers_on_new_databases() {
            let (b, b_rx) = job(|c| {
                insert(c, "b")?;
                Err(DbError::Task("refused after writing".into()))
            });
            let mut batch = vec![b];
            let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
            for job in batch {
                job.deliver(committed.clone());
            }
            assert!(b_rx.blocking_recv().expect("answer").is_err());
            assert!(names(&mut conn).is_empty());
        }
    }

    /// A batch runs its jobs in the order of the keys they insert, those without one first,
    /// whatever order they arrived in.
    #[test]
    fn a_batch_runs_its_jobs_in_key_order() {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        for order in [Some("k-2"), None, Some("k-1"), Some("k-10")] {
            let (reply, _) = tokio::sync::oneshot::channel::<Result<(), DbError>>();
            let f = |_: &mut DbConnection| Ok::<(), DbError>(());
            tx.send(Box::new(Typed::new(
                f,
                reply,
                Terms {
                    grouped: true,
                    order: order.map(str::to_string),
                },
            )))
            .expect("sent");
        }
        let rx = Mutex::new(rx);
        let batch = next_batch(&rx, 3).expect("a batch");
        let orders: Vec<_> = batch.iter().map(|j| j.order()).collect();
        assert_eq!(
            orders,
            [None, Some("k-1"), Some("k-2")],
            "the first three, sorted"
        );
        let rest = next_batch(&rx, 3).expect("the rest");
        assert_eq!(
            rest.iter().map(|j| j.order()).collect::<Vec<_>>(),
            [Some("k-10")]
        );
        drop(tx);
        assert!(
            next_batch(&rx, 3).is_none(),
            "no batch once every handle is gone"
        );
    }

    /// A grouped job's audit entry and hourly counts wait for the batch's commit, and go with
    /// the job if it fails after making them; the switch is read once per batch, and again
    /// after a job changed it.
    #[test]
    fn a_grouped_job_that_fails_takes_its_deferred_writes_with_it() {
        use crate::db::{audit, calls};
        use crate::domain::call::{CentreStatus, Outcome, Reason};
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let at = migrated(&url, &mut conn);
            let call = move |id: &str| calls::CallRow {
                id: id.into(),
                received_at: at,
                caller_phone: None,
                patient_id: None,
                appointment_id: None,
                reason: Reason::Other,
                outcome: Outcome::Informed,
                duration_seconds: Some(60),
                notes: None,
                callback_requested: false,
                agent_id: None,
                idempotency_key: Some(id.into()),
                request_hash: None,
                import_id: None,
                created_at: at,
            };
            let logged = move |id: &'static str, fail: bool| {
                move |c: &mut DbConnection| {
                    calls::try_insert(c, &call(id))?;
                    let entry = audit::NewAuditRow {
                        at,
                        actor_id: None,
                        actor_name: None,
                        action: "call.create",
                        target: Some(id),
                        details: "{}",
                        request_id: None,
                        address: None,
                        user_agent: None,
                    };
                    audit::insert(c, &entry)?;
                    if fail {
                        return Err(DbError::Task("refused after writing".into()));
                    }
                    Ok(())
                }
            };
            type Work = Box<dyn FnOnce(&mut DbConnection) -> Result<(), DbError> + Send>;
            let grouped = |f: Work| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let terms = Terms {
                    grouped: true,
                    order: None,
                };
                (Box::new(Typed::new(f, tx, terms)) as Box<dyn Job>, rx)
            };
            let (kept, kept_rx) = grouped(Box::new(logged("kept", false)));
            let (dropped, dropped_rx) = grouped(Box::new(logged("dropped", true)));
            // The switch, read by one job, turned off by the next, read again by the last.
            let (read, read_rx) = grouped(Box::new(|c: &mut DbConnection| {
                assert_eq!(calls::centre(c)?.status, CentreStatus::Active);
                Ok(())
            }));
            let (off, off_rx) = job(move |c| {
                calls::set_centre(c, CentreStatus::Deactivated, at, None)?;
                Ok(())
            });
            let (again, again_rx) = grouped(Box::new(|c: &mut DbConnection| {
                assert_eq!(calls::centre(c)?.status, CentreStatus::Deactivated);
                Ok(())
            }));
            let mut batch = vec![kept, dropped, read, off, again];
            let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
            assert_eq!(committed, Ok(()), "{:?}", url.backend);
            for job in batch {
                job.deliver(committed.clone());
            }
            for (rx, ok) in [
                (kept_rx, true),
                (dropped_rx, false),
                (read_rx, true),
                (off_rx, true),
                (again_rx, true),
            ] {
                assert_eq!(rx.blocking_recv().expect("answer").is_ok(), ok);
            }

            #[derive(diesel::QueryableByName)]
            struct Counted {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut count = |sql: &str| -> i64 {
                per_backend!(&mut conn, |c| diesel::sql_query(sql).load::<Counted>(c))
                    .expect("counted")[0]
                    .n
            };
            assert_eq!(count("SELECT COUNT(*) AS n FROM calls"), 1);
            assert_eq!(
                count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'call.create' AND target = 'kept'"),
                1
            );
            assert_eq!(
                count("SELECT COUNT(*) AS n FROM audit_log WHERE target = 'dropped'"),
                0
            );
            assert_eq!(
                count("SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) AS n FROM call_hours"),
                1
            );
        }
    }

    /// A job that changes the switch, reads it back, then fails: the next job of the batch
    /// sees the switch as the database has it.
    #[test]
    fn a_failed_job_takes_its_reading_of_the_switch_with_it() {
        use crate::db::calls;
        use crate::domain::call::CentreStatus;
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let at = migrated(&url, &mut conn);
            let (off, off_rx) = job(move |c| {
                calls::set_centre(c, CentreStatus::Deactivated, at, None)?;
                assert_eq!(calls::centre(c)?.status, CentreStatus::Deactivated);
                Err(DbError::Task("failed after reading it back".into()))
            });
            let (read, read_rx) = job(|c| {
                assert_eq!(calls::centre(c)?.status, CentreStatus::Active);
                Ok(())
            });
            let mut batch = vec![off, read];
            let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
            for job in batch {
                job.deliver(committed.clone());
            }
            assert!(off_rx.blocking_recv().expect("answer").is_err());
            assert!(
                read_rx.blocking_recv().expect("answer").is_ok(),
                "{:?}",
                url.backend
            );
        }
    }

    /// The last job of a batch answers `Ok` after one of its statements failed (it swallowed
    /// the error): on PostgreSQL the transaction is aborted, so the batch must fail rather than
    /// be acknowledged and silently rolled back by `COMMIT`. SQLite undoes only the failed
    /// statement: the batch commits, and what was acknowledged is stored.
    #[test]
    fn a_batch_whose_transaction_is_aborted_is_not_acknowledged() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let (a, a_rx) = job(|c| insert(c, "a"));
            let (b, b_rx) = job(|c| {
                insert(c, "b")?;
                // A unique violation, swallowed.
                let _ = insert(c, "b");
                Ok(())
            });
            let mut batch = vec![a, b];
            let committed = commit_batch(&mut conn, &mut batch, &Stats::default());
            for job in batch {
                job.deliver(committed.clone());
            }
            let answers = [
                a_rx.blocking_recv().expect("answer").is_ok(),
                b_rx.blocking_recv().expect("answer").is_ok(),
            ];
            let stored = names(&mut url.connect().expect("reader"));
            match url.backend {
                super::super::Backend::Postgres => {
                    assert!(committed.is_err());
                    assert_eq!(answers, [false, false]);
                    assert!(stored.is_empty());
                }
                super::super::Backend::Sqlite => {
                    assert_eq!(committed, Ok(()));
                    assert_eq!(answers, [true, true]);
                    assert_eq!(stored, ["a", "b"]);
                }
            }
        }
    }

    /// A call of a test, under `key`.
    fn call_row(key: &str, at: chrono::NaiveDateTime) -> crate::db::calls::CallRow {
        use crate::domain::call::{Outcome, Reason};
        crate::db::calls::CallRow {
            id: uuid::Uuid::now_v7().to_string(),
            received_at: at,
            caller_phone: None,
            patient_id: None,
            appointment_id: None,
            reason: Reason::Other,
            outcome: Outcome::Informed,
            duration_seconds: Some(60),
            notes: None,
            callback_requested: false,
            agent_id: None,
            idempotency_key: Some(key.into()),
            request_hash: None,
            import_id: None,
            created_at: at,
        }
    }

    type Stored = tokio::sync::oneshot::Receiver<Result<bool, DbError>>;

    /// A repeatable grouped job that logs a call under `key` (`true`: stored, `false`: the key
    /// was taken) and counts its runs in `runs`; it fails after writing when `fail` is set.
    fn logging(
        key: &'static str,
        at: chrono::NaiveDateTime,
        runs: &Arc<std::sync::atomic::AtomicUsize>,
        fail: bool,
    ) -> (Box<dyn Job>, Stored) {
        let runs = runs.clone();
        let row = call_row(key, at);
        let f = move |c: &mut DbConnection| {
            runs.fetch_add(1, SeqCst);
            let stored = crate::db::calls::insert_or_defer(c, &row)?;
            if fail {
                return Err(DbError::Task("refused after writing".into()));
            }
            Ok(stored)
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let terms = Terms {
            grouped: true,
            order: Some(key.into()),
        };
        (Box::new(Typed::repeatable(f, tx, terms)), rx)
    }

    #[derive(diesel::QueryableByName)]
    struct Counted {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    fn count(conn: &mut DbConnection, sql: &str) -> i64 {
        per_backend!(conn, |c| diesel::sql_query(sql).load::<Counted>(c)).expect("counted")[0].n
    }

    /// The keys of the calls stored, and the calls the hourly counts count.
    fn stored_calls(url: &DatabaseUrl) -> (Vec<String>, i64) {
        let mut reader = url.connect().expect("reader");
        let counted = count(
            &mut reader,
            "SELECT CAST(SUM(calls) AS BIGINT) AS n FROM call_hours",
        );
        (keys(&mut reader), counted)
    }

    fn keys(conn: &mut DbConnection) -> Vec<String> {
        per_backend!(conn, |c| diesel::sql_query(
            "SELECT idempotency_key AS name FROM calls ORDER BY idempotency_key"
        )
        .load::<Name>(c))
        .expect("keys")
        .into_iter()
        .map(|n| n.name)
        .collect()
    }

    fn commit_and_deliver(
        conn: &mut DbConnection,
        mut batch: Vec<Box<dyn Job>>,
    ) -> Result<(), String> {
        let committed = commit_batch(conn, &mut batch, &Stats::default());
        for job in batch {
            job.deliver(committed.clone());
        }
        committed
    }

    /// Repeatable jobs run once each when nothing fails, and their calls are stored and counted
    /// as if each had inserted its own.
    #[test]
    fn repeatable_jobs_run_together_once_each() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let at = migrated(&url, &mut conn);
            let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (jobs, answers): (Vec<_>, Vec<_>) = ["k-3", "k-1", "k-2"]
                .into_iter()
                .map(|k| logging(k, at, &runs, false))
                .unzip();
            assert_eq!(
                commit_and_deliver(&mut conn, jobs),
                Ok(()),
                "{:?}",
                url.backend
            );
            for rx in answers {
                assert!(rx.blocking_recv().expect("answer").expect("stored"));
            }
            assert_eq!(runs.load(SeqCst), 3, "no job ran twice");
            assert_eq!(
                stored_calls(&url),
                (["k-1", "k-2", "k-3"].map(String::from).to_vec(), 3)
            );
        }
    }

    /// One repeatable job fails after writing: the group is undone and runs again, each job in
    /// its own savepoint. The others are stored once and counted once; the failed one leaves
    /// nothing; the jobs that run once, before the group, are kept.
    #[test]
    fn a_failed_repeatable_job_makes_its_group_run_again_alone() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let at = migrated(&url, &mut conn);
            let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (once, once_rx) = job(move |c| {
                crate::db::calls::try_insert(c, &call_row("once", at))?;
                Ok(())
            });
            let (a, a_rx) = logging("k-1", at, &runs, false);
            let (bad, bad_rx) = logging("k-2", at, &runs, true);
            let (c, c_rx) = logging("k-3", at, &runs, false);
            let committed = commit_and_deliver(&mut conn, vec![a, bad, once, c]);
            assert_eq!(committed, Ok(()), "{:?}", url.backend);
            assert!(once_rx.blocking_recv().expect("answer").is_ok());
            assert!(a_rx.blocking_recv().expect("answer").expect("stored"));
            assert!(bad_rx.blocking_recv().expect("answer").is_err());
            assert!(c_rx.blocking_recv().expect("answer").expect("stored"));
            // Together: k-1, then k-2 fails (k-3 does not run); again: all three.
            assert_eq!(runs.load(SeqCst), 5);
            assert_eq!(
                stored_calls(&url),
                (["k-1", "k-3", "once"].map(String::from).to_vec(), 3)
            );
        }
    }

    /// A deferred call whose key is taken (committed earlier, or by another job of the same
    /// group) is found when the group's calls go in: the group runs again and the job learns
    /// its key is taken, as if it had inserted at once.
    #[test]
    fn a_taken_key_found_by_the_group_insert_makes_the_group_run_again() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let at = migrated(&url, &mut conn);
            crate::db::calls::try_insert(&mut conn, &call_row("taken", at)).expect("stored");
            let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (first, first_rx) = logging("k-1", at, &runs, false);
            let (retry, retry_rx) = logging("taken", at, &runs, false);
            let (twin_a, twin_a_rx) = logging("twin", at, &runs, false);
            let (twin_b, twin_b_rx) = logging("twin", at, &runs, false);
            let committed = commit_and_deliver(&mut conn, vec![first, retry, twin_a, twin_b]);
            assert_eq!(committed, Ok(()), "{:?}", url.backend);
            assert_eq!(runs.load(SeqCst), 8, "each ran twice");
            assert!(first_rx.blocking_recv().expect("answer").expect("ok"));
            assert!(
                !retry_rx.blocking_recv().expect("answer").expect("ok"),
                "taken"
            );
            let twins = [
                twin_a_rx.blocking_recv().expect("answer").expect("ok"),
                twin_b_rx.blocking_recv().expect("answer").expect("ok"),
            ];
            assert_eq!(twins, [true, false], "one of the two stores the key");
            assert_eq!(
                stored_calls(&url),
                (["k-1", "taken", "twin"].map(String::from).to_vec(), 3),
                "the stored call, k-1 and twin"
            );
        }
    }

    /// A repeatable job that swallows a failed statement and answers `Ok`: on PostgreSQL the
    /// transaction is aborted, and running the group again cannot hide it (the batch fails,
    /// nothing is acknowledged); SQLite undoes only the statement and commits.
    #[test]
    fn a_repeatable_job_that_swallows_a_failed_statement_is_not_acknowledged_on_postgres() {
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let (tx, swallowed_rx) = tokio::sync::oneshot::channel();
            let swallows = |c: &mut DbConnection| {
                insert(c, "b")?;
                let _ = insert(c, "b");
                Ok::<_, DbError>(())
            };
            let terms = Terms {
                grouped: true,
                order: None,
            };
            let swallowed: Box<dyn Job> = Box::new(Typed::repeatable(swallows, tx, terms));
            let committed = commit_and_deliver(&mut conn, vec![swallowed]);
            let answer = swallowed_rx.blocking_recv().expect("answer");
            let stored = names(&mut url.connect().expect("reader"));
            match url.backend {
                super::super::Backend::Postgres => {
                    assert!(committed.is_err());
                    assert!(answer.is_err());
                    assert!(stored.is_empty());
                }
                super::super::Backend::Sqlite => {
                    assert_eq!(committed, Ok(()));
                    assert!(answer.is_ok());
                    assert_eq!(stored, ["b"]);
                }
            }
        }
    }

    /// The statements every call logged runs are prepared once per connection: each is cached
    /// once over three calls (a statement diesel does not cache is never reported as cached).
    #[test]
    fn the_statements_of_a_call_logged_are_prepared_once_per_connection() {
        use crate::db::{callbacks, calls, phone_calls};
        use crate::domain::callback::Source;
        for (_scratch, url, mut conn) in writers_on_new_databases() {
            let at = migrated(&url, &mut conn);
            let cached = Arc::new(Mutex::new(Vec::<String>::new()));
            let seen = cached.clone();
            let watch = move |event: diesel::connection::InstrumentationEvent<'_>| {
                if let diesel::connection::InstrumentationEvent::CacheQuery { sql, .. } = event {
                    seen.lock().expect("list").push(sql.to_string());
                }
            };
            per_backend!(&mut conn, |c| c.set_instrumentation(watch));
            let phone = "+32470123456";
            for i in 0..3 {
                let mut call = call_row(&format!("k-{i}"), at);
                call.caller_phone = Some(phone.into());
                // Other fields empty in each: one prepared insert, whichever are NULL.
                match i {
                    0 => call.duration_seconds = None,
                    1 => call.notes = Some("rappeler".into()),
                    _ => call.idempotency_key = None,
                }
                assert!(calls::try_insert(&mut conn, &call).expect("inserted"));
                let stored = calls::list(&mut conn, &Default::default(), 10)
                    .expect("calls")
                    .into_iter()
                    .find(|c| c.id == call.id)
                    .expect("stored");
                assert_eq!(
                    (
                        &stored.duration_seconds,
                        &stored.notes,
                        &stored.idempotency_key
                    ),
                    (&call.duration_seconds, &call.notes, &call.idempotency_key),
                    "{:?}",
                    url.backend
                );
                let mut callback =
                    callbacks::CallbackRow::open(phone.into(), None, Source::Requested, at, at);
                callback.call_id = Some(call.id.clone());
                let open = callbacks::open_or_join(&mut conn, &callback).expect("open");
                callbacks::request_on(&mut conn, &open, at, &call.id).expect("asked again");
                phone_calls::patients_with_phones(&mut conn, &[phone.to_string()])
                    .expect("patients");
            }
            let cached = cached.lock().expect("list").clone();
            for statement in [
                "ON CONFLICT DO NOTHING",
                "INSERT INTO callbacks",
                "UPDATE callbacks",
                "patients",
                "call_hours",
            ] {
                let times = cached.iter().filter(|sql| sql.contains(statement)).count();
                assert_eq!(times, 1, "{statement} on {:?}: {cached:#?}", url.backend);
            }
        }
    }
}
