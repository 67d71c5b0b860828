//! The database layer: one connection type over SQLite and PostgreSQL, a pool, embedded
//! migrations, and the two doors every query goes through, [`Db::read`] and [`Db::write`].
//!
//! The rule that keeps it simple: diesel only ever runs inside those two closures, off the
//! async workers; every write is one transaction, and on SQLite all writes go to one writer
//! thread that commits them in batches (`writer.rs`), so concurrent writes queue up instead of
//! failing with "database is locked". On PostgreSQL, the writes of the hot path (logging a
//! call) go to a few writer threads that commit them in batches too ([`Db::write_grouped`]).

/// Runs the same diesel expression on the concrete connection of either backend. Used for
/// what the `MultiConnection` cannot express (multi-row inserts) and on hot paths: a query
/// typed for one backend gets that connection's prepared-statement cache, which queries
/// through the `MultiConnection` do not.
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            $crate::db::DbConnection::Pg($c) => $body,
        }
    };
}

/// Gives a hand-written statement `$name<'a>` (a `QueryFragment` whose SQL text never changes)
/// a static query id, so that each connection prepares it once: diesel prepares an `UPDATE`,
/// an `ON CONFLICT … DO UPDATE` or a `sql_query` again at every run.
macro_rules! prepared_once {
    ($name:ident) => {
        impl diesel::query_builder::QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl<Conn> diesel::RunQueryDsl<Conn> for $name<'_> {}
    };
}

/// A statement diesel builds under the static query id `M`, so that each connection prepares
/// it once instead of building its SQL text again at every run to look it up: for statements
/// whose text never changes but which have no static id of their own, such as an insert of one
/// row with `ON CONFLICT DO NOTHING`. One marker type per statement: two statements under one
/// marker would share one prepared statement. The text must not depend on the values either:
/// an `Insertable` needs `treat_none_as_default_value = false`.
pub(crate) struct PreparedOnce<M, Q>(Q, std::marker::PhantomData<M>);

impl<M, Q> PreparedOnce<M, Q> {
    pub(crate) fn new(query: Q) -> Self {
        Self(query, std::marker::PhantomData)
    }
}

impl<M: 'static, Q> diesel::query_builder::QueryId for PreparedOnce<M, Q> {
    type QueryId = M;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB, M, Q> diesel::query_builder::QueryFragment<DB> for PreparedOnce<M, Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }
}

impl<Conn, M, Q> diesel::RunQueryDsl<Conn> for PreparedOnce<M, Q> {}

pub mod answers;
pub mod appointments;
pub mod audit;
mod batch;
pub mod callbacks;
pub mod calls;
pub mod contact_list;
pub mod disclosures;
pub mod fhir;
pub mod incidents;
pub mod notifications;
pub mod patients;
pub mod phone_calls;
pub mod planning;
pub mod schema;
pub mod sessions;
pub mod sites;
mod text;
pub mod users;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, CacheSize, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Advisory lock taken around migrations on PostgreSQL ("reprise" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0072_6570_7269_7365;

/// How long a SQLite connection waits on a lock held by another process (the CLI, a backup).
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// A connection to either backend; queries are written once against this type.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

/// The backend type of [`DbConnection`], for boxed expressions.
pub type DbBackend = <DbConnection as Connection>::Backend;

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters for our widest table.
pub const BULK_ROWS: usize = 1000;

/// Which database the service runs on, chosen from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A parsed database URL: the backend and what its driver is given.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub backend: Backend,
    /// For SQLite a file path, for PostgreSQL the whole URL.
    target: String,
    /// PostgreSQL: whether each connection keeps diesel's named prepared statements
    /// (`REPRISE_DB_PREPARED_STATEMENTS`, on by default). Off, every query is sent unnamed
    /// with its parameters, as PgBouncer's transaction pooling needs.
    prepared_statements: bool,
}

impl fmt::Debug for DatabaseUrl {
    // PostgreSQL URLs can carry a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl DatabaseUrl {
    /// `sqlite://path`, `sqlite:path` or `postgres://…` / `postgresql://…`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(
                    "a sqlite URL needs a file path, as in sqlite://data/reprise.db".into(),
                );
            }
            if rest.contains(":memory:") || rest.contains("mode=memory") {
                // Each pooled connection, and the writer, would get its own empty database.
                return Err(
                    "an in-memory SQLite database cannot be shared; give a file path".into(),
                );
            }
            return Ok(Self {
                backend: Backend::Sqlite,
                target: rest.to_string(),
                prepared_statements: true,
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            return Ok(Self {
                backend: Backend::Postgres,
                target: raw.to_string(),
                prepared_statements: true,
            });
        }
        Err("expected a URL starting with sqlite:// or postgres://".into())
    }

    /// The URL without any password, in the userinfo or the query string, fit for a log line
    /// or an error (`secrets.rs`).
    pub fn redacted(&self) -> String {
        match self.backend {
            // A file path, printed as given; only a `file:` URI has parameters.
            Backend::Sqlite => match self.target.split_once('?') {
                Some((path, query)) => {
                    format!("sqlite://{path}?{}", crate::secrets::redact_query(query))
                }
                None => format!("sqlite://{}", self.target),
            },
            Backend::Postgres => crate::secrets::redact_url(&self.target),
        }
    }

    /// The full URL, password included: for handing to a child process, never for a log.
    /// Only the tests and benches use it (they start `reprise` on their databases).
    #[doc(hidden)]
    pub fn expose(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.target),
            Backend::Postgres => self.target.clone(),
        }
    }

    /// For PostgreSQL, the same server with another database name: for the tests and benches
    /// only, which make a database of their own on the server they are given.
    #[doc(hidden)]
    pub fn with_database(&self, name: &str) -> Option<Self> {
        let mut u = url::Url::parse(&self.target).ok()?;
        u.set_path(name);
        Some(Self {
            target: u.to_string(),
            ..self.clone()
        })
    }

    /// The same URL, its connections keeping named prepared statements or not (PostgreSQL
    /// only: SQLite's statement cache lives in the process and is always kept).
    pub fn with_prepared_statements(self, on: bool) -> Self {
        Self {
            prepared_statements: on,
            ..self
        }
    }

    /// For SQLite, the database file: the target itself, or the path of a `file:` URI.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let Some(uri) = self.target.strip_prefix("file:") else {
            return Some(self.target.clone().into());
        };
        // file:PATH?PARAMS or file://[localhost]/PATH?PARAMS, percent-encoded (SQLite's URIs).
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        let path = match path.strip_prefix("//") {
            Some(rest) => &rest[rest.find('/')?..],
            None => path,
        };
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?;
        Some(decoded.into_owned().into())
    }

    /// Before the first connection of a process: on SQLite, the folder and the database file
    /// are created private, or made private if others could read them (`files.rs`). Once per
    /// start, not per pooled connection.
    pub fn prepare(&self) -> Result<(), String> {
        match self.sqlite_file() {
            Some(file) => crate::files::prepare_sqlite_database(&file),
            None => Ok(()),
        }
    }

    /// Opens one connection, with the backend's own error on failure. On SQLite, the file is
    /// created if missing: [`DatabaseUrl::prepare`] first makes it private.
    pub fn connect(&self) -> Result<DbConnection, diesel::ConnectionError> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.target)?;
                // WAL lets readers go on while one writer commits; FULL makes every commit
                // durable before it is acknowledged.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;"
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
            Backend::Postgres => {
                let mut conn = PgConnection::establish(&self.target)?;
                if !self.prepared_statements {
                    // Behind PgBouncer in transaction mode a named statement prepared on one
                    // server connection is unknown on the next: send every query unnamed,
                    // parsed and run in one round trip (diesel's `PQsendQueryParams` path).
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                // Nothing reads the session's zone but the first migration's one
                // CURRENT_TIMESTAMP (docs/database.md); PgBouncer keeps it per client.
                conn.batch_execute("SET TIME ZONE 'UTC'")
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Pg(conn))
            }
        }
    }
}

/// r2d2 manager that opens connections through [`DatabaseUrl::connect`].
struct Manager(DatabaseUrl);

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.0.connect()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Why a database call failed, as far as callers need to know.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had: the database is down or saturated.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// The blocking task died (a bug: a panic in a query closure).
    #[error("database task failed: {0}")]
    Task(String),
}

/// SQLite: writes a consistent copy of the database to `path` with `VACUUM INTO` (one read
/// transaction's view; writers go on meanwhile). Must run outside a transaction.
pub fn backup_into(conn: &mut DbConnection, path: &str) -> Result<(), DbError> {
    use diesel::RunQueryDsl;
    match conn {
        DbConnection::Sqlite(c) => {
            diesel::sql_query("VACUUM INTO ?")
                .bind::<diesel::sql_types::Text, _>(path)
                .execute(c)?;
            Ok(())
        }
        DbConnection::Pg(_) => Err(DbError::Unavailable(
            "a backup of PostgreSQL is pg_dump's job".into(),
        )),
    }
}

/// Opens a SQLite file on its own and runs `PRAGMA quick_check`.
pub fn check_sqlite_file(path: &std::path::Path) -> Result<(), String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        quick_check: String,
    }
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| format!("the copy cannot be opened: {e}"))?;
    let rows: Vec<Check> = diesel::sql_query("PRAGMA quick_check")
        .load(&mut conn)
        .map_err(|e| format!("the copy cannot be checked: {e}"))?;
    match rows.first() {
        Some(r) if rows.len() == 1 && r.quick_check == "ok" => Ok(()),
        _ => Err(format!(
            "the copy is damaged: {}",
            rows.iter()
                .map(|r| r.quick_check.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// Writer threads, each with its own connection, that batch the commits of
/// [`Db::write_grouped`] on PostgreSQL (`writer.rs`).
const POSTGRES_WRITERS: usize = 2;

/// The shared handle: a pool for reads (and PostgreSQL writes) plus, on SQLite, the one
/// writer thread that batches commits, and on PostgreSQL the writers of
/// [`Db::write_grouped`] (see `writer.rs`).
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// The writer threads: on SQLite they take every write, on PostgreSQL the writes of
    /// [`Db::write_grouped`].
    writer: writer::Handle,
    writer_stats: Arc<writer::Stats>,
}

/// What the writer threads have done since the process started (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterFigures {
    /// How many writer threads there are: one on SQLite, two on PostgreSQL.
    pub threads: usize,
    /// Transactions committed or rolled back, each holding the jobs waiting when it began.
    pub batches: u64,
    /// Writes done through them.
    pub jobs: u64,
    /// Time the threads spent on batches, added up over the threads.
    pub busy_seconds: f64,
    /// The part of it spent in the commit.
    pub commit_seconds: f64,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Db {
    /// Builds the pool and checks that one connection opens, so that a wrong URL or a
    /// server that is down is reported at start-up with the driver's own words.
    pub fn connect(url: &DatabaseUrl, pool_size: u32) -> Result<Self, String> {
        url.prepare()?;
        // Fail fast with the real error rather than r2d2's "timed out waiting for connection".
        drop(url.connect().map_err(|e| e.to_string())?);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            // No idle connections kept warm: a background thread still connecting when a
            // command-line run exits would crash inside libpq.
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            // A PostgreSQL connection can die with its server; a SQLite file cannot.
            .test_on_check_out(url.backend == Backend::Postgres)
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build(Manager(url.clone()))
            .map_err(|e| e.to_string())?;
        let writers = match url.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        };
        let (writer, writer_stats) =
            writer::spawn(url, writers).map_err(|e| format!("cannot start the writer: {e}"))?;
        Ok(Self {
            pool,
            backend: url.backend,
            writer,
            writer_stats,
        })
    }

    /// What the writer threads have done since the process started.
    pub fn writer_figures(&self) -> WriterFigures {
        self.writer_stats.figures()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, String> {
        self.migrate_with(None)
    }

    /// [`Db::migrate`], where answer links of v1 may have been signed with a configured key
    /// (`REPRISE_ANSWER_LINK_KEY`) rather than the database's (see [`answers::rehash`]).
    pub fn migrate_with(&self, legacy_link_key: Option<&[u8]>) -> Result<usize, String> {
        let mut conn = self.checkout().map_err(|e| e.to_string())?;
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        match self.backend {
            Backend::Sqlite => run_migrations(&mut conn, migrations, legacy_link_key),
            // Several instances starting together on one PostgreSQL take turns, under a lock
            // of the transaction that runs every pending migration (each in a savepoint): the
            // lock is held on one server connection and ends with the commit or rollback,
            // also through PgBouncer's transaction pooling, where a session's lock and unlock
            // could reach two server connections and the lock never be released.
            Backend::Postgres => conn
                .transaction(|conn| {
                    conn.batch_execute(&format!(
                        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                    ))?;
                    run_migrations(conn, migrations, legacy_link_key).map_err(MigrationFailed)
                })
                .map_err(|MigrationFailed(e)| e),
        }
    }

    fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs `f` on a pooled connection, off the async workers. For reads: no transaction is
    /// opened, so `f` must not write.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        blocking(move || {
            let mut conn = db.checkout()?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` in one transaction, off the async workers: committed if `f` returns `Ok`,
    /// rolled back otherwise, and answered only once committed. On SQLite the work goes to the
    /// writer thread, which commits many such closures together (each in its own savepoint);
    /// on PostgreSQL it runs on a pooled connection, transactions in parallel.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match submit(self.every_write(), writer::Terms::default(), f) {
            Ok(rx) => rx.await.unwrap_or_else(|_| Err(E::from(writer_gone()))),
            Err(f) => {
                let db = self.clone();
                blocking(move || db.pooled_transaction(f)).await
            }
        }
    }

    /// [`Db::write`] for the hot path, committed with other such writes on both backends: on
    /// PostgreSQL a writer thread runs the closures waiting in one transaction and commits them
    /// once (group commit, as the SQLite writer does).
    ///
    /// Several writers run at once, and each holds the locks of all its batch's jobs until the
    /// batch commits. So a grouped job must not take row locks in an order another job could
    /// take them in reverse: it inserts (a unique key, as an Idempotency-Key, makes a concurrent
    /// insert of the same key wait, which cannot cycle), it updates rows its own request
    /// names (the PBX call it links, the open callback of its phone), and counters go through
    /// `db::batch`, which adds them once per batch, last, in key order. `key` is the unique
    /// key `f` inserts, if any: every batch runs its jobs in key order, so two batches never
    /// wait on each other's keys (docs/database.md: the cycles left, and their 503).
    ///
    /// `f` may run more than once, the earlier runs undone (`writer::run_together`): it must do
    /// nothing outside the connection.
    pub async fn write_grouped<T, E, F>(&self, key: Option<String>, f: F) -> Result<T, E>
    where
        F: Fn(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let terms = writer::Terms {
            grouped: true,
            order: key,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        // If the threads are gone, the job (and its reply sender) is dropped: the caller sees it.
        let _ = self
            .writer
            .send(Box::new(writer::Typed::repeatable(f, tx, terms)));
        rx.await.unwrap_or_else(|_| Err(E::from(writer_gone())))
    }

    /// The writer of every write: SQLite's; on PostgreSQL none (a pooled transaction each).
    fn every_write(&self) -> Option<&writer::Handle> {
        (self.backend == Backend::Sqlite).then_some(&self.writer)
    }

    /// [`Db::write`] for callers already on a blocking thread (the command line, imports).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match submit(self.every_write(), writer::Terms::default(), f) {
            Ok(rx) => rx
                .blocking_recv()
                .unwrap_or_else(|_| Err(E::from(writer_gone()))),
            Err(f) => self.pooled_transaction(f),
        }
    }

    fn pooled_transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self.checkout()?;
        transaction(&mut conn, f)
    }

    /// [`Db::read`] for callers already on a blocking thread.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self.checkout()?;
        f(&mut conn)
    }
}

/// Why a migration run failed, in words; diesel's own errors (the lock, the commit) too.
struct MigrationFailed(String);

impl From<diesel::result::Error> for MigrationFailed {
    fn from(e: diesel::result::Error) -> Self {
        Self(e.to_string())
    }
}

/// Runs the pending migrations one by one. Before the one that drops the key that signed the
/// answer links of v1, the links still valid get the hash of their token, computed from that
/// key (`answers::rehash`): links already in patients' mailboxes keep working.
fn run_migrations(
    conn: &mut DbConnection,
    migrations: EmbeddedMigrations,
    legacy_link_key: Option<&[u8]>,
) -> Result<usize, String> {
    let pending = conn
        .pending_migrations(migrations)
        .map_err(|e| e.to_string())?;
    for migration in &pending {
        if migration.name().to_string().ends_with("_no_link_key") {
            transaction(conn, |conn| {
                answers::rehash(conn, legacy_link_key, crate::domain::now()).map_err(DbError::from)
            })
            .map_err(|e| format!("cannot keep the answer links already sent: {e}"))?;
        }
        conn.run_migration(migration.as_ref())
            .map_err(|e| format!("migration {} failed: {e}", migration.name()))?;
    }
    Ok(pending.len())
}

/// Locks a table against concurrent writers until the transaction ends, for the rare
/// check-then-write that a unique key cannot express (the last admin). On SQLite every write
/// transaction already runs alone.
pub fn lock_for_write(conn: &mut DbConnection, table: &str) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(_) => Ok(()),
        DbConnection::Pg(pg) => {
            pg.batch_execute(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
        }
    }
}

/// Hands `f` to `writer`, or gives it back without one.
#[allow(clippy::type_complexity)]
fn submit<T, E, F>(
    writer: Option<&writer::Handle>,
    terms: writer::Terms,
    f: F,
) -> Result<tokio::sync::oneshot::Receiver<Result<T, E>>, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let Some(writer) = writer else {
        return Err(f);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Box<dyn writer::Job> = Box::new(writer::Typed::new(f, tx, terms));
    // If the threads are gone, the job (and its reply sender) is dropped: the caller sees it.
    let _ = writer.send(job);
    Ok(rx)
}

fn writer_gone() -> DbError {
    DbError::Task("the database writer stopped".into())
}

/// One transaction on either backend; `BEGIN IMMEDIATE` on SQLite.
fn transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DbError>,
{
    let begin = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Pg(_) => {
            <DbConnection as Connection>::TransactionManager::begin_transaction(conn)
        }
    };
    begin.map_err(|e| E::from(DbError::Query(e)))?;
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(|e| E::from(DbError::Query(e)))?;
            Ok(value)
        }
        Err(err) => {
            // The caller's error is the one worth reporting; a failed rollback leaves the
            // connection marked broken and r2d2 drops it.
            if let Err(e) =
                <DbConnection as Connection>::TransactionManager::rollback_transaction(conn)
            {
                tracing::error!(error = %e, "rollback failed");
            }
            Err(err)
        }
    }
}

/// Runs blocking work on the blocking thread pool; a panic there becomes an error, not a crash.
async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    match actix_web::rt::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(E::from(DbError::Task(join.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_their_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/reprise.db").map(|u| u.backend),
            Ok(Backend::Sqlite)
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://u@localhost/db").map(|u| u.backend),
            Ok(Backend::Postgres)
        );
        assert!(DatabaseUrl::parse("mysql://localhost/db").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn in_memory_sqlite_is_refused() {
        for raw in [
            "sqlite://file::memory:",
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://file::memory:?mode=memory",
        ] {
            assert!(DatabaseUrl::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        let file = |raw: &str| DatabaseUrl::parse(raw).expect("valid").sqlite_file();
        assert_eq!(
            file("sqlite://data/reprise.db"),
            Some("data/reprise.db".into())
        );
        assert_eq!(file("sqlite:///var/lib/r.db"), Some("/var/lib/r.db".into()));
        assert_eq!(
            file("sqlite://file:data/my%20db.db?mode=rwc"),
            Some("data/my db.db".into())
        );
        assert_eq!(
            file("sqlite://file:///var/lib/r.db?cache=shared"),
            Some("/var/lib/r.db".into())
        );
        assert_eq!(
            file("sqlite://file://localhost/var/lib/r.db"),
            Some("/var/lib/r.db".into())
        );
        assert_eq!(file("postgres://u@h/db"), None);
    }

    #[test]
    fn redacted_urls_hide_passwords() {
        for raw in [
            "postgres://me:s3cret@db:5432/reprise",
            "postgres://me:s3%40cret@db:5432/reprise",
            "postgresql://me@db/reprise?sslmode=require&password=s3cret",
            "postgres://me@db/reprise?sslpassword=s3cret",
            "sqlite://file:data/r.db?mode=rwc&key=s3cret",
        ] {
            let url = DatabaseUrl::parse(raw).expect("valid");
            assert!(!url.redacted().contains("s3"), "{}", url.redacted());
            assert!(!format!("{url:?}").contains("s3"));
        }
        let url = DatabaseUrl::parse("postgres://me@db/reprise?sslmode=require&password=s3cret")
            .expect("valid");
        assert_eq!(
            url.redacted(),
            "postgres://me@db/reprise?sslmode=require&password=***"
        );
        let url = DatabaseUrl::parse("sqlite://data/my db.db").expect("valid");
        assert_eq!(url.redacted(), "sqlite://data/my db.db");
    }
}
