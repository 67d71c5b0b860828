//! SMTP delivery through a pool of connections that reprise opens itself.
//!
//! Why not `lettre::AsyncSmtpTransport`: lettre 0.11.23 never sets `TCP_NODELAY`. It writes a
//! message body and then the closing `\r\n.\r\n` as two writes; with Nagle on, the second waits
//! for the server to acknowledge the first, and servers delay that ACK by 40 ms. One connection
//! then sends about 23 messages a second. lettre lets a caller hand it a socket
//! (`AsyncSmtpConnection::connect_with_transport`), so we open the TCP connection, set
//! `TCP_NODELAY` on it, and let lettre speak SMTP over it (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA).
//! The connections are pooled by `deadpool`. Only implicit TLS (`smtps://`) still goes through
//! lettre's own socket, because lettre offers no hook there: it keeps Nagle's delay.

use std::fmt;
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS, for a relay on the local network.
    Plain,
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

/// A parsed `REPRISE_SMTP_URL`. Its password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl SmtpSettings {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        let mut security = match url.scheme() {
            "smtp" => SmtpSecurity::Plain,
            "smtps" => SmtpSecurity::Tls,
            other => return Err(format!("scheme {other:?} is not smtp or smtps")),
        };
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "starttls", SmtpSecurity::Plain) => security = SmtpSecurity::StartTls,
                ("tls", "starttls", _) => {
                    return Err("tls=starttls only goes with smtp://, not smtps://".into())
                }
                // The name only: the value could be a password.
                _ => return Err(format!("unknown parameter {key:?}")),
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("a host is required")?
            .to_string();
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        });
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s).ok_or_else(|| "user or password is not valid UTF-8".to_string())
            };
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ))
        };
        Ok(Self {
            host,
            port,
            security,
            credentials,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

/// What went wrong with one message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth another try later: the network, a timeout, a 4xx reply.
    #[error("{0}")]
    Temporary(String),
    /// Not worth another try: a 5xx reply, a message the server can never take.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    /// Sorts a lettre error: 5xx replies and client-side refusals are permanent, the rest
    /// (4xx replies, network, timeouts, TLS) temporary.
    pub fn from_smtp(e: &lettre::transport::smtp::Error) -> Self {
        let text = describe(e);
        if e.is_permanent() || e.is_client() {
            SendError::Permanent(text)
        } else {
            SendError::Temporary(text)
        }
    }
}

/// The error and its causes on one line, with nothing but what the server or system said.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Opens and checks SMTP connections for the pool.
pub struct Manager {
    settings: SmtpSettings,
    hello: ClientId,
    timeout: Duration,
}

impl Manager {
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let s = &self.settings;
        let network = |e: std::io::Error| {
            SendError::Temporary(format!(
                "cannot connect to {}:{}: {}",
                s.host,
                s.port,
                describe(&e)
            ))
        };
        let smtp = |e: lettre::transport::smtp::Error| SendError::from_smtp(&e);
        let tls = || {
            TlsParameters::new(s.host.clone())
                .map_err(|e| SendError::Permanent(format!("TLS: {}", describe(&e))))
        };
        let mut conn = if s.security == SmtpSecurity::Tls {
            AsyncSmtpConnection::connect_tokio1(
                (s.host.as_str(), s.port),
                Some(self.timeout),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(smtp)?
        } else {
            let stream = tokio::time::timeout(
                self.timeout,
                tokio::net::TcpStream::connect((s.host.as_str(), s.port)),
            )
            .await
            .map_err(|_| {
                SendError::Temporary(format!(
                    "cannot connect to {}:{}: timed out",
                    s.host, s.port
                ))
            })?
            .map_err(network)?;
            stream.set_nodelay(true).map_err(network)?;
            let mut conn = tokio::time::timeout(
                self.timeout,
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
            )
            .await
            .map_err(|_| SendError::Temporary("no greeting from the SMTP server".into()))?
            .map_err(smtp)?;
            if s.security == SmtpSecurity::StartTls {
                conn.starttls(tls()?, &self.hello).await.map_err(smtp)?;
            }
            conn
        };
        if let Some((user, password)) = &s.credentials {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), password.clone()),
            )
            .await
            .map_err(smtp)?;
        }
        Ok(conn)
    }
}

impl managed::Manager for Manager {
    type Type = AsyncSmtpConnection;
    type Error = SendError;

    async fn create(&self) -> Result<AsyncSmtpConnection, SendError> {
        self.connect().await
    }

    async fn recycle(
        &self,
        conn: &mut AsyncSmtpConnection,
        metrics: &Metrics,
    ) -> RecycleResult<SendError> {
        if conn.has_broken() {
            return Err(RecycleError::message("the connection broke"));
        }
        // A connection idle for a while may have been closed by the server: ask (NOOP).
        if metrics.last_used() > Duration::from_secs(20) && !conn.test_connected().await {
            return Err(RecycleError::message("the server closed the connection"));
        }
        Ok(())
    }
}

/// A pool of SMTP connections.
#[derive(Clone)]
pub struct SmtpPool {
    pool: managed::Pool<Manager>,
    timeout: Duration,
}

impl SmtpPool {
    pub fn new(settings: SmtpSettings, size: usize, timeout: Duration) -> Result<Self, String> {
        let manager = Manager {
            settings,
            hello: ClientId::default(),
            timeout,
        };
        let pool = managed::Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { pool, timeout })
    }

    /// Sends one message over a pooled connection. A connection that failed is dropped, not
    /// returned to the pool.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let mut conn = self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            other => SendError::Temporary(format!("no SMTP connection: {other}")),
        })?;
        let sent = tokio::time::timeout(self.timeout, conn.send(envelope, raw)).await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let error = SendError::from_smtp(&e);
                // lettre ends the session (QUIT) after any error: drop the connection.
                if conn.has_broken() {
                    let _ = managed::Object::take(conn);
                }
                Err(error)
            }
            Err(_) => {
                let _ = managed::Object::take(conn);
                Err(SendError::Temporary(
                    "the SMTP server did not answer in time".into(),
                ))
            }
        }
    }
}
