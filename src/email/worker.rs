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
use tokio::sync::watch;

use super::{render, DeliverySettings, SendError, Transport};
use crate::db::notifications::{self, Delivery, Outgoing};
use crate::db::{Db, DbError};
use crate::metrics::Metrics;

type Rendered = (lettre::address::Envelope, Vec<u8>);

pub struct Worker {
    pub db: Db,
    pub transport: Transport,
    pub from: Mailbox,
    pub settings: DeliverySettings,
    pub metrics: Metrics,
    /// This worker's name on its claims.
    pub owner: String,
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
        }
    }

    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        WorkerHandle { stop, task }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = %self.owner, "outbox worker started");
        while !*stop.borrow() {
            let claimed = match self.round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox round failed");
                    0
                }
            };
            // A full batch means more may be due: go on at once.
            if claimed < usize::try_from(self.settings.batch).unwrap_or(usize::MAX) {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        tracing::info!(worker = %self.owner, "outbox worker stopped");
    }

    /// One round: claim what is due, send it, record each result. Returns how many it claimed.
    pub async fn round(&self) -> Result<usize, DbError> {
        let owner = self.owner.clone();
        let now = crate::domain::now();
        let lease_until = now + chrono_duration(self.settings.lease);
        let batch = self.settings.batch;
        let outgoing = self
            .db
            .write(move |conn| {
                let ids = notifications::claim(conn, &owner, now, lease_until, batch)?;
                Ok::<_, DbError>(notifications::outgoing(conn, &ids)?)
            })
            .await?;
        let claimed = outgoing.len();
        // Up to `connections` messages in flight. Results are recorded as soon as the server
        // has answered, without holding up the next message: those that arrive together are
        // written in one transaction.
        // (Rendering here, inline, measured faster than on a blocking thread: about 20 µs a
        // message, see docs/performance.md.)
        let connections = self.settings.connections.max(1);
        let from = self.from.clone();
        let domain = from.email.domain().to_string();
        futures_util::stream::iter(outgoing)
            .map(move |n| {
                let message = render::message(&n, &from, &domain)
                    .map(|m| (m.envelope().clone(), m.formatted()))
                    .map_err(|e| SendError::Permanent(e.to_string()));
                (n, message)
            })
            .map(|(n, message)| async move {
                let delivery = self.deliver(&n, message).await;
                (n, delivery)
            })
            .buffer_unordered(connections)
            .ready_chunks(256)
            .for_each_concurrent(None, |results| self.record(results))
            .await;
        Ok(claimed)
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

    async fn record(&self, results: Vec<(Outgoing, Delivery)>) {
        let mut job = Vec::with_capacity(results.len());
        for (n, delivery) in results {
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
            job.push((n.id, delivery));
        }
        // A record that fails (the database is away) is tried again: a sent email whose record
        // is lost would be sent again when the lease runs out.
        let mut wait = Duration::from_millis(100);
        loop {
            let (owner, batch) = (self.owner.clone(), job.clone());
            let recorded = self
                .db
                .write(move |conn| {
                    let now = crate::domain::now();
                    // The usual case, sent, in one statement; failures one by one.
                    let (sent, other): (Vec<_>, Vec<_>) =
                        batch.into_iter().partition(|(_, d)| *d == Delivery::Sent);
                    let sent: Vec<String> = sent.into_iter().map(|(id, _)| id).collect();
                    let mut held = notifications::record_sent(conn, &sent, &owner, now)?;
                    for (id, delivery) in &other {
                        held +=
                            usize::from(notifications::record(conn, id, &owner, delivery, now)?);
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
                Err(e) if wait < self.settings.lease / 2 => {
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
}
