//! Emails to patients: the outbox worker, its transports and the templates.
//!
//! A notification is queued in the transaction of the change that causes it
//! (`db::notifications`). The worker started with the service claims due notifications, renders
//! each (`render`), hands it to the transport (`smtp`, or `.eml` files with no SMTP server
//! configured) and records what happened. See docs/architecture.md, "Email".

pub mod render;
pub mod smtp;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;

pub use smtp::SendError;
pub use worker::{Worker, WorkerHandle};

/// How the outbox is delivered. Not part of the contract's configuration: the defaults suit a
/// hospital relay; tests shorten the delays.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// How often an idle worker looks for due notifications.
    pub poll: Duration,
    /// Notifications claimed at once.
    pub batch: i64,
    /// SMTP connections, and so messages in flight.
    pub connections: usize,
    /// Connect, greeting and per-message timeout.
    pub timeout: Duration,
    /// How long a claim holds; a worker that dies leaves its claims to others after this.
    pub lease: Duration,
    /// Delay before the first retry, doubled at each attempt up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// After this many temporary failures, a notification is `failed`.
    pub max_attempts: i32,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            batch: 64,
            connections: 4,
            timeout: Duration::from_secs(30),
            lease: Duration::from_secs(300),
            retry_base: Duration::from_secs(10),
            retry_cap: Duration::from_secs(15 * 60),
            // About two days of tries at the cap.
            max_attempts: 200,
        }
    }
}

impl DeliverySettings {
    /// The delay after the `attempts`-th temporary failure: base × 2^(attempts−1), capped,
    /// less up to a tenth at random so that workers do not retry in step.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let delay = self
            .retry_base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.retry_cap);
        let jitter = delay.mul_f64(rand::random::<f64>() / 10.0);
        delay.saturating_sub(jitter)
    }
}

/// Where emails go.
#[derive(Clone)]
pub enum Transport {
    Smtp(smtp::SmtpPool),
    /// One `<notification id>.eml` file per email, written whole (temporary file, then rename),
    /// so that a second delivery of the same notification replaces the file, never adds one.
    /// The folder is created 0700 and the files are 0600 (`files.rs`).
    Files(PathBuf),
}

impl Transport {
    /// Through the SMTP server, or as `.eml` files in `outbox_dir` without one.
    pub fn new(
        smtp: Option<&smtp::SmtpSettings>,
        outbox_dir: &std::path::Path,
        delivery: &DeliverySettings,
    ) -> Result<Self, String> {
        match smtp {
            Some(smtp) => Ok(Transport::Smtp(smtp::SmtpPool::new(
                smtp.clone(),
                delivery.connections,
                delivery.timeout,
            )?)),
            None => {
                crate::files::create_private_dir(outbox_dir).map_err(|e| {
                    format!(
                        "cannot create the outbox folder {}: {e}",
                        outbox_dir.display()
                    )
                })?;
                Ok(Transport::Files(outbox_dir.to_path_buf()))
            }
        }
    }

    pub async fn send(&self, id: &str, envelope: &Envelope, raw: Vec<u8>) -> Result<(), SendError> {
        match self {
            Transport::Smtp(pool) => pool.send(envelope, &raw).await,
            Transport::Files(dir) => {
                let dir = dir.clone();
                let id = id.to_string();
                tokio::task::spawn_blocking(move || write_eml(&dir, &id, &raw))
                    .await
                    .map_err(|e| SendError::Temporary(e.to_string()))?
                    .map_err(|e| SendError::Temporary(format!("cannot write the .eml file: {e}")))
            }
        }
    }
}

/// Writes `<id>.eml` whole: a private temporary file (0600: the email names the patient and
/// the care), renamed into place with its mode.
fn write_eml(dir: &std::path::Path, id: &str, raw: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = crate::files::private_tempfile_in(dir, ".tmp")?;
    file.write_all(raw)?;
    file.as_file().sync_all()?;
    file.persist(dir.join(format!("{id}.eml")))
        .map_err(|e| e.error)?;
    Ok(())
}
