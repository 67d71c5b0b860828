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
            None => match url.connect() {
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

/// Why a job's savepoint was rolled back.
enum Step {
    JobFailed,
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for Step {
    fn from(e: diesel::result::Error) -> Self {
        Step::Db(e)
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
        if only.run(conn) {
            Ok(true)
        } else {
            Ok(false)
        }
    } else {
        let mut failure = None;
        for job in batch.iter_mut() {
            // At depth 1, diesel's `transaction` is a savepoint: released on Ok, rolled back
            // to on Err.
            match conn.transaction::<(), Step, _>(|c| {
                if job.run(c) {
                    Ok(())
                } else {
                    Err(Step::JobFailed)
                }
            }) {
                Ok(()) | Err(Step::JobFailed) => {}
                Err(Step::Db(e)) => {
                    failure = Some(e.to_string());
                    break;
                }
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
