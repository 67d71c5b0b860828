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
        futures_util::stream::iter(outgoing)
            .for_each_concurrent(self.settings.connections.max(1), |n| async move {
                let delivery = self.deliver(&n).await;
                self.record(n, delivery).await;
            })
            .await;
        Ok(claimed)
    }

    async fn deliver(&self, n: &Outgoing) -> Delivery {
        let domain = self.from.email.domain().to_string();
        let result = match render::message(n, &self.from, &domain) {
            Err(e) => Err(SendError::Permanent(e.to_string())),
            Ok(message) => {
                let envelope = message.envelope().clone();
                self.transport
                    .send(&n.id, &envelope, message.formatted())
                    .await
            }
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

    async fn record(&self, n: Outgoing, delivery: Delivery) {
        let result = match &delivery {
            Delivery::Sent => "sent",
            Delivery::Retry { .. } => "retry",
            Delivery::Failed { .. } => "failed",
        };
        self.metrics
            .notification_deliveries
            .with_label_values(&[result])
            .inc();
        // Only the notification's id and template reach the log: the address and the error
        // text (which may quote it) stay in the database.
        tracing::info!(notification = %n.id, template = %n.template, result, "email delivery");
        let owner = self.owner.clone();
        let id = n.id;
        // A record that fails (the database is away) is tried again: a sent email whose record
        // is lost would be sent twice when the lease runs out.
        let mut wait = Duration::from_millis(100);
        loop {
            let job = (owner.clone(), id.clone(), delivery.clone());
            let recorded = self
                .db
                .write(move |conn| {
                    let (owner, id, delivery) = job;
                    notifications::record(conn, &id, &owner, &delivery, crate::domain::now())
                        .map_err(DbError::from)
                })
                .await;
            match recorded {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(notification = %id, "claim lost before the result was recorded");
                    return;
                }
                Err(e) if wait < self.settings.lease / 2 => {
                    tracing::warn!(notification = %id, error = %e, "cannot record a delivery yet");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::error!(notification = %id, error = %e, "delivery not recorded");
                    return;
                }
            }
        }
    }
}
