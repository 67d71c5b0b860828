//! What a writer's batch (`writer.rs`) writes once, just before it commits: the hourly call
//! counts of every job, and the audit entries of the grouped jobs (`Db::write_grouped`).
//!
//! **Counts.** Every call of an hour with the same reason and outcome adds to one `call_hours`
//! row. Counted per call, each transaction would hold that row's lock from its insert to its
//! commit, concurrent transactions would queue on it, and batches taking these rows in
//! different orders could deadlock. Counted per batch, each row is updated once per commit,
//! last, in key order.
//!
//! **Audit entries.** A grouped job's entries go in with the batch's others, in one multi-row
//! insert: on PostgreSQL one round trip per batch instead of one per request. The job cannot
//! read them back before the commit, which is why only grouped jobs defer theirs (logging a
//! call records its entry and reads nothing after).
//!
//! **The call centre's switch** is read once per batch (every call checks it), and read again
//! after a job of the batch changes it or fails. On PostgreSQL that reading takes a share lock
//! on the switch's row until the batch commits: a change of the switch waits for the batches
//! in flight, and no call is stored after it.
//!
//! **Calls.** While the repeatable jobs of a batch run together (`writer::run_together`), a
//! call that nothing else in its job refers to waits too, and the group's calls go in with one
//! multi-row insert. Its job answers as if it were stored: if the insert finds a key taken
//! (a retry, two requests with one key), the group is undone and each job runs again in its
//! own savepoint, inserting its call at once (`calls::insert_or_defer`).
//!
//! A job's deferred writes follow the job: kept with it, dropped if it fails. The state is the
//! writer thread's own (thread-local); outside a batch everything is written at once. A
//! savepoint the job opens and rolls back itself does not take back what it deferred (its
//! entries, counts or call).

use std::cell::RefCell;

use super::audit::AuditEntry;
use super::calls::{add_hours, merge, CallRow, Centre, Groups};
use super::DbConnection;

#[derive(Default)]
struct Deferred {
    hours: Groups,
    audit: Vec<AuditEntry>,
    calls: Vec<CallRow>,
}

impl Deferred {
    fn merge(&mut self, from: Deferred) {
        merge(&mut self.hours, from.hours);
        self.audit.extend(from.audit);
        self.calls.extend(from.calls);
    }
}

#[derive(Default)]
struct Pending {
    /// The job running may defer its audit entries.
    grouped: bool,
    /// Repeatable jobs are running together: their calls may wait for the group's insert.
    together: bool,
    job: Deferred,
    /// What the jobs running together deferred, until their calls are in.
    group: Deferred,
    batch: Deferred,
    /// The switch as this batch's transaction read it.
    centre: Option<Centre>,
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// A batch starts on this thread.
pub(super) fn open() {
    PENDING.with(|p| *p.borrow_mut() = Some(Pending::default()));
}

/// The batch is over, committed or not: nothing pending stays.
pub(super) fn close() {
    PENDING.with(|p| *p.borrow_mut() = None);
}

/// A job of the batch starts; `grouped` if it came through `Db::write_grouped`.
pub(super) fn job_start(grouped: bool) {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.grouped = grouped;
        }
    });
}

/// The job that just ran is kept (what it deferred joins the batch's) or undone (it goes).
pub(super) fn job_done(kept: bool) {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            let job = std::mem::take(&mut p.job);
            p.grouped = false;
            if kept {
                if p.together {
                    p.group.merge(job);
                } else {
                    p.batch.merge(job);
                }
            } else {
                // It may have changed the switch and read it back: undone, the next job reads
                // the switch again.
                p.centre = None;
            }
        }
    });
}

/// Repeatable jobs start (`true`) or stop (`false`) running together.
pub(super) fn together(on: bool) {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.together = on;
        }
    });
}

/// Inserts the calls the group deferred; `false` if any of them was not inserted (its key is
/// taken).
pub(super) fn settle(conn: &mut DbConnection) -> diesel::QueryResult<bool> {
    let calls = PENDING.with(|p| {
        p.borrow_mut()
            .as_mut()
            .map(|p| std::mem::take(&mut p.group.calls))
            .unwrap_or_default()
    });
    Ok(super::calls::insert_new(conn, &calls)? == calls.len())
}

/// The group ran and its calls are in: what it deferred joins the batch's.
pub(super) fn keep_group() {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            let group = std::mem::take(&mut p.group);
            p.batch.merge(group);
        }
    });
}

/// The group is undone: what it deferred goes, and so does its reading of the switch.
pub(super) fn drop_group() {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.group = Deferred::default();
            p.centre = None;
        }
    });
}

/// `true` if `row` waits for the group's insert (a grouped job running with others);
/// otherwise the caller inserts it.
pub(super) fn defer_call(row: &CallRow) -> bool {
    PENDING.with(|p| match p.borrow_mut().as_mut() {
        Some(p) if p.together && p.grouped => {
            p.job.calls.push(row.clone());
            true
        }
        _ => false,
    })
}

/// Writes what the batch deferred, before its commit: the audit entries, then the counts in
/// key order. The batch stays open, empty.
pub(super) fn flush(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    let Some(deferred) = PENDING.with(|p| {
        p.borrow_mut()
            .as_mut()
            .map(|p| std::mem::take(&mut p.batch))
    }) else {
        return Ok(());
    };
    // The group's calls went in when it settled; any left here go in now, all of them or the
    // batch fails (they were answered as stored).
    if super::calls::insert_new(conn, &deferred.calls)? != deferred.calls.len() {
        return Err(diesel::result::Error::RollbackTransaction);
    }
    super::audit::insert_many(conn, &deferred.audit)?;
    add_hours(conn, deferred.hours)
}

/// Keeps `groups` for the batch's commit, or gives them back outside a batch.
pub(super) fn defer_hours(groups: Groups) -> Option<Groups> {
    PENDING.with(|p| match p.borrow_mut().as_mut() {
        Some(p) => {
            merge(&mut p.job.hours, groups);
            None
        }
        None => Some(groups),
    })
}

/// `true` if the entry `make` gives is kept for the batch's commit (a grouped job's, inside
/// a batch); otherwise `make` is not called.
pub(super) fn defer_audit(make: impl FnOnce() -> AuditEntry) -> bool {
    PENDING.with(|p| match p.borrow_mut().as_mut() {
        Some(p) if p.grouped => {
            p.job.audit.push(make());
            true
        }
        _ => false,
    })
}

/// The call centre's switch as this batch read it, or `read` it (and keep it for the batch).
pub(super) fn centre(
    read: impl FnOnce() -> diesel::QueryResult<Centre>,
) -> diesel::QueryResult<Centre> {
    if let Some(known) = PENDING.with(|p| p.borrow().as_ref().and_then(|p| p.centre.clone())) {
        return Ok(known);
    }
    let centre = read()?;
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.centre = Some(centre.clone());
        }
    });
    Ok(centre)
}

/// The switch is being changed: the next reading of this batch goes to the database.
pub(super) fn forget_centre() {
    PENDING.with(|p| {
        if let Some(p) = p.borrow_mut().as_mut() {
            p.centre = None;
        }
    });
}
