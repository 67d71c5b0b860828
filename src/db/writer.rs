//! The SQLite writer: one thread, one connection, and commit batching.
//!
//! With `synchronous = FULL` every commit waits for the disk, so one transaction per request
//! caps the write rate at the disk's fsync rate. Here every write of the process is a job sent
//! to one thread, which takes all the jobs waiting, runs each inside its own savepoint of one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers each job. A job that
//! fails is rolled back to its savepoint and gets its own error; the others still commit. No
//! job is acknowledged before the commit that makes it durable.
//!
//! The rule: only this thread writes to the SQLite file from this process, so writes never
//! meet "database is locked" among themselves (another process, such as the command line,
//! waits on the busy timeout).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::Connection;

use super::{DatabaseUrl, DbConnection, DbError};

/// Most jobs in one commit: enough to amortise the fsync, few enough to keep latency flat.
const MAX_BATCH: usize = 512;

/// A unit of work for the writer thread.
pub(super) trait Job: Send {
    /// Runs the work on the writer's connection; `true` if it succeeded.
    fn run(&mut self, conn: &mut DbConnection) -> bool;
    /// Answers the caller once the batch has committed (or failed to).
    fn deliver(self: Box<Self>, committed: Result<(), String>);
}

/// A closure and where to send its result.
pub(super) struct Typed<T, E, F> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Typed<T, E, F> {
    pub(super) fn new(f: F, reply: tokio::sync::oneshot::Sender<Result<T, E>>) -> Self {
        Self {
            f: Some(f),
            out: None,
            reply,
        }
    }
}

impl<T, E, F> Job for Typed<T, E, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send,
    T: Send,
    E: From<DbError> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(E::from(DbError::Task("a database job panicked".into()))));
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
}

/// Where jobs are sent; cloned with the `Db`.
pub(super) type Handle = mpsc::Sender<Box<dyn Job>>;

/// Starts the writer thread for `url`; it stops when every handle is dropped.
pub(super) fn spawn(url: DatabaseUrl) -> std::io::Result<Handle> {
    let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(&url, &rx))?;
    Ok(tx)
}

fn run(url: &DatabaseUrl, rx: &mpsc::Receiver<Box<dyn Job>>) {
    let mut conn: Option<DbConnection> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = match conn.as_mut() {
            Some(c) => commit_batch(c, &mut batch),
            None => match open(url) {
                Ok(c) => commit_batch(conn.insert(c), &mut batch),
                Err(e) => Err(format!("cannot open the database: {e}")),
            },
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, jobs = batch.len(), "write batch failed");
            // Start the next batch on a fresh connection, whatever state this one is in.
            conn = None;
        }
        for job in batch {
            job.deliver(result.clone());
        }
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
        c.batch_execute("PRAGMA temp_store = MEMORY")
            .map_err(|e| e.to_string())?;
    }
    Ok(conn)
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

        impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for $name {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
            ) -> diesel::QueryResult<()> {
                out.push_sql($sql);
                Ok(())
            }
        }

        impl diesel::RunQueryDsl<diesel::SqliteConnection> for $name {}
    )*};
}

fixed_statements! {
    Savepoint = "SAVEPOINT writer_job";
    Release = "RELEASE writer_job";
    RollbackTo = "ROLLBACK TO writer_job";
}

/// Runs one job of a batch in its own savepoint: kept if it succeeds, undone if it fails.
fn run_in_savepoint(conn: &mut DbConnection, job: &mut dyn Job) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    fn on(conn: &mut DbConnection) -> diesel::QueryResult<&mut diesel::SqliteConnection> {
        match conn {
            DbConnection::Sqlite(c) => Ok(c),
            DbConnection::Pg(_) => Err(diesel::result::Error::QueryBuilderError(
                "the writer thread serves SQLite only".into(),
            )),
        }
    }
    Savepoint.execute(on(conn)?)?;
    let ok = job.run(conn);
    balanced(conn)?;
    if !ok {
        RollbackTo.execute(on(conn)?)?;
    }
    // After `ROLLBACK TO` the savepoint is still open; `RELEASE` closes it either way.
    Release.execute(on(conn)?)?;
    Ok(())
}

/// A job must leave diesel's transaction depth as it found it (1: the batch's transaction). One
/// that panicked inside its own nested transaction leaves it deeper, and diesel would then
/// commit or roll back the wrong level: the batch fails and the connection is replaced.
fn balanced(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    let DbConnection::Sqlite(c) = conn else {
        return Err(diesel::result::Error::BrokenTransactionManager);
    };
    match AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth() {
        Ok(Some(depth)) if depth.get() == 1 => Ok(()),
        _ => Err(diesel::result::Error::BrokenTransactionManager),
    }
}

fn commit_batch(conn: &mut DbConnection, batch: &mut [Box<dyn Job>]) -> Result<(), String> {
    let DbConnection::Sqlite(sqlite) = conn else {
        return Err("the writer thread serves SQLite only".into());
    };
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    let outcome = if let [only] = batch {
        // Alone: no savepoint needed, its failure rolls the transaction back.
        let ok = only.run(conn);
        balanced(conn).map(|()| ok).map_err(|e| e.to_string())
    } else {
        let mut failure = None;
        for job in batch.iter_mut() {
            if let Err(e) = run_in_savepoint(conn, job.as_mut()) {
                failure = Some(e.to_string());
                break;
            }
        }
        match failure {
            None => Ok(true),
            Some(e) => Err(e),
        }
    };
    type Tm = <DbConnection as Connection>::TransactionManager;
    match outcome {
        Ok(true) => Tm::commit_transaction(conn).map_err(|e| {
            let _ = Tm::rollback_transaction(conn);
            format!("commit failed: {e}")
        }),
        Ok(false) => Tm::rollback_transaction(conn).map_err(|e| format!("rollback failed: {e}")),
        Err(e) => {
            let _ = Tm::rollback_transaction(conn);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
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
        let DbConnection::Sqlite(c) = conn else {
            return Err(DbError::Task("SQLite only".into()));
        };
        diesel::sql_query("INSERT INTO t (name) VALUES (?)")
            .bind::<Text, _>(name)
            .execute(c)
            .map(drop)
            .map_err(DbError::from)
    }

    type Reply = tokio::sync::oneshot::Receiver<Result<(), DbError>>;

    fn job<F>(f: F) -> (Box<dyn Job>, Reply)
    where
        F: FnOnce(&mut DbConnection) -> Result<(), DbError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Box::new(Typed::new(f, tx)), rx)
    }

    fn names(conn: &mut DbConnection) -> Vec<String> {
        let DbConnection::Sqlite(c) = conn else {
            panic!("SQLite expected")
        };
        diesel::sql_query("SELECT name FROM t ORDER BY name")
            .load::<Name>(c)
            .expect("names")
            .into_iter()
            .map(|n| n.name)
            .collect()
    }

    fn writer_on_new_file(dir: &tempfile::TempDir) -> (DatabaseUrl, DbConnection) {
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}/w.db", dir.path().display())).expect("url");
        let mut conn = open(&url).expect("open");
        let DbConnection::Sqlite(c) = &mut conn else {
            panic!("SQLite expected")
        };
        c.batch_execute("CREATE TABLE t (name TEXT NOT NULL UNIQUE)")
            .expect("table");
        (url, conn)
    }

    /// One commit for the batch; the job that fails after writing is undone alone, and each
    /// job gets its own answer.
    #[test]
    fn a_failed_job_is_undone_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().expect("dir");
        let (url, mut conn) = writer_on_new_file(&dir);
        let (a, a_rx) = job(|c| insert(c, "a"));
        let (b, b_rx) = job(|c| {
            insert(c, "b")?;
            // The second insert breaks the unique index: "b" must go too.
            insert(c, "a")
        });
        // A job may open its own (nested) transaction.
        let (nested, nested_rx) = job(|c| c.transaction(|c| insert(c, "c")));
        let mut batch = vec![a, b, nested];
        let committed = commit_batch(&mut conn, &mut batch);
        assert_eq!(committed, Ok(()));
        for job in batch {
            job.deliver(committed.clone());
        }
        assert!(a_rx.blocking_recv().expect("answer").is_ok());
        assert!(b_rx.blocking_recv().expect("answer").is_err());
        assert!(nested_rx.blocking_recv().expect("answer").is_ok());
        // Read back on another connection: what was committed is in the file.
        assert_eq!(names(&mut url.connect().expect("reader")), ["a", "c"]);
    }

    /// A job that panics inside its own nested transaction leaves diesel one level deep: the
    /// batch fails as a whole (nothing acknowledged, nothing committed) rather than committing
    /// at the wrong level.
    #[test]
    fn a_job_that_breaks_the_transaction_depth_fails_its_batch() {
        let dir = tempfile::tempdir().expect("dir");
        let (url, mut conn) = writer_on_new_file(&dir);
        for alone in [false, true] {
            let (a, a_rx) = job(|c| insert(c, "a"));
            let (broken, broken_rx) = job(|c| {
                c.transaction::<(), DbError, _>(|c| {
                    insert(c, "b")?;
                    panic!("a bug inside a nested transaction")
                })
            });
            let mut batch = if alone { vec![broken] } else { vec![a, broken] };
            let committed = commit_batch(&mut conn, &mut batch);
            assert!(committed.is_err(), "alone: {alone}");
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

    /// A job alone in its batch that fails leaves nothing behind.
    #[test]
    fn a_failed_job_alone_rolls_back() {
        let dir = tempfile::tempdir().expect("dir");
        let (_url, mut conn) = writer_on_new_file(&dir);
        let (b, b_rx) = job(|c| {
            insert(c, "b")?;
            Err(DbError::Task("refused after writing".into()))
        });
        let mut batch = vec![b];
        let committed = commit_batch(&mut conn, &mut batch);
        for job in batch {
            job.deliver(committed.clone());
        }
        assert!(b_rx.blocking_recv().expect("answer").is_err());
        assert!(names(&mut conn).is_empty());
    }
}
