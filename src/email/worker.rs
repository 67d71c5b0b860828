//! The outbox worker: claim due notifications, send them, record each result.
//!
//! Never twice: a notification is claimed by one worker at a time (`db::notifications::claim`:
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, the single writer on SQLite) and its result is
//! recorded as soon as the server has answered. The one window left is a process killed
//! between the server's 250 and that record: the notification is sent again once the lease
//! runs out, with the same Message-ID.

use std::time::Duration;

use futures_util::StreamExt;
use lettre::message::Mailbox;
use tokio::sync::{mpsc, watch};

use super::{render, DeliverySettings, SendError, Transport};
use crate::db::notifications::{self, Delivery, Outgoing};
use crate::db::{Db, DbError};
use crate::metrics::Metrics;

/// Results written in one transaction, at most.
const RECORD_BATCH: usize = 1000;

type Rendered = (lettre::address::Envelope, Vec<u8>);
type Prepared = (Outgoing, Result<Rendered, SendError>);

pub struct Worker {
    pub db: Db,
    pub transport: Transport,
    pub from: Mailbox,
    pub settings: DeliverySettings,
    pub metrics: Metrics,
    /// This worker's name on its claims.
    pub owner: String,
    /// The answer links of its emails, and how long they last; `None`: emails without links.
    pub links: Option<(render::Links, chrono::Duration)>,
}

/// Stops the worker after the round in progress.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Worker {
    pub fn new(
        db: Db,
        transport: Transport,
        from: Mailbox,
        settings: DeliverySettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            db,
            transport,
            from,
            settings,
            metrics,
            owner: uuid::Uuid::new_v4().to_string(),
            links: None,
        }
    }

    /// Emails that ask about a date carry answer links valid for `ttl` from their first
    /// rendering.
    pub fn with_links(mut self, links: render::Links, ttl: chrono::Duration) -> Self {
        self.links = Some((links, ttl));
        self
    }

    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        WorkerHandle { stop, task }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = %self.owner, "outbox worker started");
        let batch = usize::try_from(self.settings.batch).unwrap_or(usize::MAX);
        let (results, pending) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(recorder(
            self.db.clone(),
            self.owner.clone(),
            self.settings.lease,
            pending,
        ));
        let mut next = self.prepare();
        // Stopped by the handle, or the handle is gone.
        let mut stopping = false;
        loop {
            let prepared = self.take(next).await;
            let claimed = prepared.len();
            if stopping || *stop.borrow() {
                // Every result written first; then what was claimed but not sent goes back
                // to the queue for whoever comes next.
                drop(results);
                let _ = recorder.await;
                self.release().await;
                break;
            }
            if claimed < batch {
                // Nothing more due right now: send what there is, then wait.
                self.send(prepared, &results).await;
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    changed = stop.changed() => stopping = changed.is_err(),
                }
                next = self.prepare();
            } else {
                // A full batch: claim and render the next one while this one is sent.
                next = self.prepare();
                self.send(prepared, &results).await;
            }
        }
        tracing::info!(worker = %self.owner, "outbox worker stopped");
    }

    /// Claims the next batch and renders its emails, off the worker's task: the claim and the
    /// reading of what the emails say on the database's threads, the rendering on a blocking
    /// thread.
    fn prepare(&self) -> tokio::task::JoinHandle<Result<Vec<Prepared>, DbError>> {
        let (db, owner, from) = (self.db.clone(), self.owner.clone(), self.from.clone());
        let (batch, lease) = (self.settings.batch, chrono_duration(self.settings.lease));
        let links = self.links.clone();
        tokio::spawn(async move {
            let now = crate::domain::now();
            let terms = links.as_ref().map(|(_, ttl)| notifications::LinkTerms {
                now,
                expires_at: now + *ttl,
            });
            let outgoing = db
                .write(move |conn| {
                    let ids = notifications::claim(conn, &owner, now, now + lease, batch)?;
                    Ok::<_, DbError>(notifications::outgoing(conn, &ids, terms)?)
                })
                .await?;
            if outgoing.is_empty() {
                return Ok(Vec::new());
            }
            tokio::task::spawn_blocking(move || {
                let domain = from.email.domain().to_string();
                outgoing
                    .into_iter()
                    .map(|n| {
                        let message =
                            render::message(&n, &from, &domain, links.as_ref().map(|(l, _)| l))
                                .map(|m| (m.envelope().clone(), m.formatted()))
                                .map_err(|e| SendError::Permanent(e.to_string()));
                        (n, message)
                    })
                    .collect()
            })
            .await
            .map_err(|e| DbError::Task(format!("rendering emails failed: {e}")))
        })
    }

    async fn take(
        &self,
        prepared: tokio::task::JoinHandle<Result<Vec<Prepared>, DbError>>,
    ) -> Vec<Prepared> {
        match prepared.await {
            Ok(Ok(batch)) => batch,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot take notifications from the outbox");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "the outbox claim task failed");
                Vec::new()
            }
        }
    }

    /// Gives this worker's claims back (on a stop), so that they are due again at once.
    async fn release(&self) {
        let owner = self.owner.clone();
        let released = self
            .db
            .write(move |conn| notifications::release(conn, &owner).map_err(DbError::from))
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "cannot release claims; they return when the lease ends");
        }
    }

    /// Sends a batch, up to `connections` messages in flight. Results are recorded as soon as
    /// the server has answered, without holding up the next message: those that arrive
    /// together are written in one transaction.
    async fn send(
        &self,
        prepared: Vec<Prepared>,
        results: &mpsc::UnboundedSender<(String, Delivery)>,
    ) {
        let connections = self.settings.connections.max(1);
        futures_util::stream::iter(prepared)
            .map(|(n, message)| async move {
                let delivery = self.deliver(&n, message).await;
                (n, delivery)
            })
            .buffer_unordered(connections)
            .for_each(|(n, delivery)| {
                let result = match &delivery {
                    Delivery::Sent => "sent",
                    Delivery::Retry { .. } => "retry",
                    Delivery::Failed { .. } => "failed",
                };
                self.metrics
                    .notification_deliveries
                    .with_label_values(&[result])
                    .inc();
                // Only the notification's id and template reach the log: the address and the
                // error text (which may quote it) stay in the database.
                tracing::info!(notification = %n.id, template = %n.template, result, "email delivery");
                // The recorder outlives every send (it stops when this sender is dropped).
                let _ = results.send((n.id, delivery));
                std::future::ready(())
            })
            .await;
    }

    async fn deliver(&self, n: &Outgoing, message: Result<Rendered, SendError>) -> Delivery {
        let result = match message {
            Err(e) => Err(e),
            Ok((envelope, raw)) => self.transport.send(&n.id, &envelope, raw).await,
        };
        let now = crate::domain::now();
        match result {
            Ok(()) => Delivery::Sent,
            Err(SendError::Permanent(error)) => Delivery::Failed { error },
            Err(SendError::Temporary(error)) if n.attempts + 1 >= self.settings.max_attempts => {
                Delivery::Failed {
                    error: format!("gave up after {} attempts: {error}", n.attempts + 1),
                }
            }
            Err(SendError::Temporary(error)) => Delivery::Retry {
                at: now + chrono_duration(self.settings.backoff(n.attempts + 1)),
                error,
            },
        }
    }
}

/// Writes results as they come: each write takes everything that arrived during the last one,
/// so that a slow commit (PostgreSQL's WAL flush, SQLite's fsync) is paid once for many emails.
async fn recorder(
    db: Db,
    owner: String,
    lease: Duration,
    mut results: mpsc::UnboundedReceiver<(String, Delivery)>,
) {
    while let Some(first) = results.recv().await {
        let mut job = vec![first];
        while job.len() < RECORD_BATCH {
            match results.try_recv() {
                Ok(result) => job.push(result),
                Err(_) => break,
            }
        }
        write_results(&db, &owner, lease, job).await;
    }
}

async fn write_results(db: &Db, owner: &str, lease: Duration, job: Vec<(String, Delivery)>) {
    // A record that fails (the database is away) is tried again: a sent email whose record is
    // lost would be sent again when the lease runs out.
    let mut wait = Duration::from_millis(100);
    loop {
        let (owner, batch) = (owner.to_string(), job.clone());
        let recorded = db
            .write(move |conn| {
                let now = crate::domain::now();
                // The usual case, sent, in one statement; failures one by one.
                let (sent, other): (Vec<_>, Vec<_>) =
                    batch.into_iter().partition(|(_, d)| *d == Delivery::Sent);
                let sent: Vec<String> = sent.into_iter().map(|(id, _)| id).collect();
                let mut held = notifications::record_sent(conn, &sent, &owner, now)?;
                for (id, delivery) in &other {
                    held += usize::from(notifications::record(conn, id, &owner, delivery, now)?);
                }
                Ok::<_, DbError>(held)
            })
            .await;
        match recorded {
            Ok(held) => {
                if held < job.len() {
                    tracing::warn!(
                        lost = job.len() - held,
                        "claims lost before their results were recorded"
                    );
                }
                return;
            }
            Err(e) if wait < lease / 2 => {
                tracing::warn!(error = %e, "cannot record deliveries yet");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, count = job.len(), "deliveries not recorded");
                return;
            }
        }
    }
}
