//! Settings, from flags and `REPRISE_*` variables (flags win), checked once at start-up.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `REPRISE_DATABASE_URL` | `--database` (no password) | `sqlite://data/reprise.db` |
//! | `REPRISE_DATABASE_URL_FILE` | `--database-file` | none: a file holding the database URL |
//! | `REPRISE_DB_POOL` | `--db-pool` | twice the cores, from 4 to 32 |
//! | `REPRISE_DB_PREPARED_STATEMENTS` | `--db-prepared-statements` | `on` (`off` behind PgBouncer in transaction mode) |
//! | `REPRISE_BIND` | `--bind` | `127.0.0.1:8080` |
//! | `REPRISE_SMTP_URL` | `--smtp` (no password) | none: `.eml` files in the outbox folder |
//! | `REPRISE_SMTP_URL_FILE` | `--smtp-file` | none: a file holding the SMTP URL |
//! | `REPRISE_OUTBOX_DIR` | `--outbox-dir` | `data/outbox` |
//! | `REPRISE_MAIL_FROM` | `--mail-from` | `Reprise <no-reply@localhost>` |
//! | `REPRISE_PUBLIC_URL` | `--public-url` | `http://` and the bound address (`http://127.0.0.1:8080`) |
//! | `REPRISE_LOG_FORMAT` | `--log-format` | `pretty` (or `json`) |
//! | `REPRISE_RATE_WRITES` | `--rate-writes` | `1200` per account and minute (`0`: none) |
//! | `REPRISE_RATE_READS` | `--rate-reads` | `600` per account and minute (`0`: none) |
//! | `REPRISE_MODERATE_FRACTION` | `--moderate-fraction` | `0.5` |
//! | `REPRISE_PRIORITY_DEADLINES` | `--priority-deadlines` | `14,28,91,182` days |
//! | `REPRISE_ANSWER_LINK_DAYS` | `--answer-link-days` | `30` days an email's answer link lasts |
//! | `REPRISE_ANSWER_LINK_KEY` | (none) | none: only read by the migration to v2's answer links |
//! | `REPRISE_TRUSTED_PROXIES` | `--trusted-proxies` | none: the peer's address is the client's |
//! | `REPRISE_RATE_ANONYMOUS` | `--rate-anonymous` | `60` requests without a valid credential per address and minute (`0`: none) |
//! | `REPRISE_PATIENTS_PER_HOUR` | `--patients-per-hour` | `400` distinct patients per account and hour (`0`: none) |
//! | `REPRISE_SESSION_IDLE_MINUTES` | `--session-idle-minutes` | `30` |
//! | `REPRISE_CALLBACK_ATTEMPTS` | `--callback-attempts` | `5` failed attempts before a callback ends `unreachable` (1 to 100) |
//! | `RUST_LOG` | | `info` |
//!
//! Secrets (the database and SMTP URLs with a password) are never taken as flags: a flag is
//! visible to every user of the machine (`ps`). They come from the variable, or from the file
//! its `_FILE` variable names (Docker and Kubernetes secrets: the content, trimmed), never
//! both. A URL is printed only redacted (`secrets.rs`).
//!
//! The rule: a value is parsed into its real type here, or start-up stops with one line that
//! names the variable and the flag. Nothing else in the crate reads the environment, except
//! `telemetry.rs` for `RUST_LOG` (the tracing convention).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};

use crate::db::DatabaseUrl;
pub use crate::email::smtp::{SmtpSecurity, SmtpSettings};

/// The settings as given, with where each URL that may hold a secret came from (a flag, a
/// variable, the default), which the values alone do not say. Built by clap only.
#[derive(Clone)]
pub struct ConfigArgs {
    values: ConfigValues,
    database_source: Option<ValueSource>,
    smtp_source: Option<ValueSource>,
}

// By hand around the derived `ConfigValues`, to keep clap's `ArgMatches` long enough to ask
// where the URLs came from: `Cli::parse()` and every other parser then note it.
impl FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self {
            values: ConfigValues::from_arg_matches(matches)?,
            database_source: matches.value_source("database"),
            smtp_source: matches.value_source("smtp"),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.values.update_from_arg_matches(matches)?;
        if let Some(source) = matches.value_source("database") {
            self.database_source = Some(source);
        }
        if let Some(source) = matches.value_source("smtp") {
            self.smtp_source = Some(source);
        }
        Ok(())
    }
}

impl Args for ConfigArgs {
    fn group_id() -> Option<clap::Id> {
        ConfigValues::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        ConfigValues::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        ConfigValues::augment_args_for_update(cmd)
    }
}

impl fmt::Debug for ConfigArgs {
    // The URLs may carry passwords: printed redacted, and the rest is of no interest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigArgs")
            .field(
                "database",
                &crate::secrets::redact_url(&self.values.database),
            )
            .field(
                "smtp",
                &self.values.smtp.as_deref().map(crate::secrets::redact_url),
            )
            .finish_non_exhaustive()
    }
}

/// The raw values, as clap collects them from flags and environment.
#[derive(Clone, Args)]
pub struct ConfigValues {
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB (a password only in the
    /// variable or its _FILE, never in this flag)
    #[arg(
        long = "database",
        env = "REPRISE_DATABASE_URL",
        default_value = "sqlite://data/reprise.db",
        hide_env_values = true,
        global = true
    )]
    pub database: String,

    /// File holding the database URL (a Docker or Kubernetes secret); not with --database
    #[arg(
        long = "database-file",
        env = "REPRISE_DATABASE_URL_FILE",
        global = true
    )]
    pub database_file: Option<PathBuf>,

    /// Size of the database connection pool
    #[arg(long = "db-pool", env = "REPRISE_DB_POOL", global = true)]
    pub db_pool: Option<String>,

    /// PostgreSQL: keep named prepared statements per connection (on), or send every query
    /// unnamed (off: behind PgBouncer in transaction mode)
    #[arg(
        long = "db-prepared-statements",
        env = "REPRISE_DB_PREPARED_STATEMENTS",
        default_value = "on",
        global = true
    )]
    pub db_prepared_statements: String,

    /// Address and port to listen on (port 0 picks a free one)
    #[arg(
        long = "bind",
        env = "REPRISE_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,

    /// SMTP server: smtp://host:port, smtp://host:port?tls=starttls, smtps://user:pass@host:port
    /// (a password only in the variable or its _FILE, never in this flag)
    #[arg(
        long = "smtp",
        env = "REPRISE_SMTP_URL",
        hide_env_values = true,
        global = true
    )]
    pub smtp: Option<String>,

    /// File holding the SMTP URL (a Docker or Kubernetes secret); not with --smtp
    #[arg(long = "smtp-file", env = "REPRISE_SMTP_URL_FILE", global = true)]
    pub smtp_file: Option<PathBuf>,

    /// Folder where emails are written as .eml files when no SMTP server is configured
    #[arg(
        long = "outbox-dir",
        env = "REPRISE_OUTBOX_DIR",
        default_value = "data/outbox",
        global = true
    )]
    pub outbox_dir: PathBuf,

    /// Sender of patient emails
    #[arg(
        long = "mail-from",
        env = "REPRISE_MAIL_FROM",
        default_value = "Reprise <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,

    /// Base URL of links written in emails (default: http:// and the bound address)
    #[arg(long = "public-url", env = "REPRISE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Log format: pretty or json
    #[arg(
        long = "log-format",
        env = "REPRISE_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: String,

    /// Requests that change data, per account and minute (0: no limit)
    #[arg(
        long = "rate-writes",
        env = "REPRISE_RATE_WRITES",
        default_value = "1200",
        global = true
    )]
    pub rate_writes: String,

    /// Requests that read personal data (patients, appointments, calls, contact lists,
    /// notifications), per account and minute (0: no limit)
    #[arg(
        long = "rate-reads",
        env = "REPRISE_RATE_READS",
        default_value = "600",
        global = true
    )]
    pub rate_reads: String,

    /// Share of operating-room time a site on the `moderate` programme uses when planning
    #[arg(
        long = "moderate-fraction",
        env = "REPRISE_MODERATE_FRACTION",
        default_value = "0.5",
        global = true
    )]
    pub moderate_fraction: String,

    /// Days after the original date by which priorities 1, 2, 3 and 4 are due
    #[arg(
        long = "priority-deadlines",
        env = "REPRISE_PRIORITY_DEADLINES",
        default_value = "14,28,91,182",
        global = true
    )]
    pub priority_deadlines: String,

    /// Days an answer link in a patient's email stays usable (1 to 365)
    #[arg(
        long = "answer-link-days",
        env = "REPRISE_ANSWER_LINK_DAYS",
        default_value = "30",
        global = true
    )]
    pub answer_link_days: String,

    /// Reverse proxies whose X-Forwarded-For is believed: addresses or networks, comma-separated
    /// (none by default: the peer's address is the client's)
    #[arg(
        long = "trusted-proxies",
        env = "REPRISE_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    pub trusted_proxies: String,

    /// Requests without a valid credential (unknown tokens, failed sign-ins, forged links), per
    /// client address and minute, before the address is refused without any lookup (0: no limit)
    #[arg(
        long = "rate-anonymous",
        env = "REPRISE_RATE_ANONYMOUS",
        default_value = "60",
        global = true
    )]
    pub rate_anonymous: String,

    /// Distinct patients one account may be shown per hour, across instances (0: no limit)
    #[arg(
        long = "patients-per-hour",
        env = "REPRISE_PATIENTS_PER_HOUR",
        default_value = "400",
        global = true
    )]
    pub patients_per_hour: String,

    /// Minutes without a request after which a page session ends (1 to 720)
    #[arg(
        long = "session-idle-minutes",
        env = "REPRISE_SESSION_IDLE_MINUTES",
        default_value = "30",
        global = true
    )]
    pub session_idle_minutes: String,

    /// Failed attempts before a callback ends unreachable (1 to 100)
    #[arg(
        long = "callback-attempts",
        env = "REPRISE_CALLBACK_ATTEMPTS",
        default_value = "5",
        global = true
    )]
    pub callback_attempts: String,
}

/// A configuration value that cannot be used; its `Display` is the one line printed.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}{}: {reason}", flag_of(flag))]
pub struct ConfigError {
    pub variable: &'static str,
    pub flag: &'static str,
    pub reason: String,
}

/// ` (--flag)`, or nothing for a variable that has no flag.
fn flag_of(flag: &str) -> String {
    if flag.is_empty() {
        String::new()
    } else {
        format!(" (--{flag})")
    }
}

fn bad(variable: &'static str, flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        flag,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A setting whose value may hold a secret: its variable and flag, and the `_FILE` variable
/// (and flag) that names a file holding it instead.
struct SecretSetting {
    variable: &'static str,
    flag: &'static str,
    file_variable: &'static str,
    file_flag: &'static str,
}

const DATABASE: SecretSetting = SecretSetting {
    variable: "REPRISE_DATABASE_URL",
    flag: "database",
    file_variable: "REPRISE_DATABASE_URL_FILE",
    file_flag: "database-file",
};

const SMTP: SecretSetting = SecretSetting {
    variable: "REPRISE_SMTP_URL",
    flag: "smtp",
    file_variable: "REPRISE_SMTP_URL_FILE",
    file_flag: "smtp-file",
};

/// A secret setting's value, with the variable and flag that gave it (named in its errors).
struct Given {
    value: String,
    variable: &'static str,
    flag: &'static str,
}

impl SecretSetting {
    /// The value from the file, the variable or the flag (or the default). Refused: both a
    /// value and a file, a file that cannot be read (its content is never printed), and a
    /// secret given as a flag.
    fn value(
        &self,
        value: Option<&str>,
        source: Option<ValueSource>,
        file: Option<&Path>,
    ) -> Result<Option<Given>, ConfigError> {
        let given = matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if let Some(path) = file {
            if given {
                return Err(bad(
                    self.file_variable,
                    self.file_flag,
                    format!(
                        "{} (--{}) is set too: give one or the other",
                        self.variable, self.flag
                    ),
                ));
            }
            let content = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    self.file_variable,
                    self.file_flag,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let value = content.trim();
            if value.is_empty() {
                return Err(bad(
                    self.file_variable,
                    self.file_flag,
                    format!("{} is empty", path.display()),
                ));
            }
            return Ok(Some(Given {
                value: value.to_string(),
                variable: self.file_variable,
                flag: self.file_flag,
            }));
        }
        let Some(value) = value else {
            return Ok(None);
        };
        if source == Some(ValueSource::CommandLine) && crate::secrets::carries_secret(value) {
            return Err(bad(
                self.variable,
                self.flag,
                format!(
                    "a password or key in a flag is visible to every user of the machine \
                     (ps): set it in {} or in a file named by {} instead",
                    self.variable, self.file_variable
                ),
            ));
        }
        Ok(Some(Given {
            value: value.to_string(),
            variable: self.variable,
            flag: self.flag,
        }))
    }
}

/// A rate per minute; 0 turns the limit off.
fn per_minute(
    raw: &str,
    variable: &'static str,
    flag: &'static str,
) -> Result<Option<u32>, ConfigError> {
    match raw.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= 1_000_000 => Ok(Some(n)),
        _ => Err(bad(
            variable,
            flag,
            format!("{raw:?} is not a number of requests per minute from 0 (no limit) to 1000000"),
        )),
    }
}

/// Everything the service needs to start, already checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseUrl,
    pub db_pool: u32,
    pub bind: SocketAddr,
    pub smtp: Option<SmtpSettings>,
    pub outbox_dir: PathBuf,
    pub mail_from: lettre::message::Mailbox,
    /// The base of links in emails (`REPRISE_PUBLIC_URL`); without one, the bound address
    /// ([`public_url_of`], with the port actually bound when it was 0).
    pub public_url: url::Url,
    /// Whether `public_url` was given, rather than taken from the bound address.
    pub public_url_given: bool,
    pub log_format: LogFormat,
    /// The outbox worker's settings; `None` runs no worker (tests that look at the queue).
    pub delivery: Option<crate::email::DeliverySettings>,
    /// Per-account limits, per minute; `None`: no limit.
    pub rate_writes: Option<u32>,
    pub rate_reads: Option<u32>,
    /// How plans count capacity and deadlines.
    pub planning: crate::domain::plan::Planning,
    /// How long the answer link of an email lasts.
    pub answer_link_ttl: chrono::Duration,
    /// `REPRISE_ANSWER_LINK_KEY`, the key that signed answer links before they had secrets of
    /// their own: read only so that the migration keeps the links it signed (`db::answers::rehash`).
    pub legacy_link_key: Option<LegacyKey>,
    /// Proxies whose `X-Forwarded-For` names the client (`client`).
    pub trusted_proxies: crate::client::TrustedProxies,
    /// Requests without a valid credential per client address and minute; `None`: no limit.
    pub rate_anonymous: Option<u32>,
    /// Distinct patients an account may be shown per hour; `None`: no limit.
    pub patients_per_hour: Option<u32>,
    /// How long a page session lasts without a request.
    pub session_idle: chrono::Duration,
    /// Failed attempts after which a callback ends `unreachable`.
    pub callback_attempts: u32,
}

/// A key that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct LegacyKey(pub Vec<u8>);

impl fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LegacyKey(…)")
    }
}

/// `REPRISE_ANSWER_LINK_KEY`, from the environment only (a secret is never a flag).
fn legacy_link_key() -> Result<Option<LegacyKey>, ConfigError> {
    let Some(raw) = std::env::var_os("REPRISE_ANSWER_LINK_KEY") else {
        return Ok(None);
    };
    raw.to_str()
        .and_then(|raw| hex::decode(raw.trim()).ok())
        .filter(|key| key.len() >= 32)
        .map(|key| Some(LegacyKey(key)))
        .ok_or_else(|| {
            bad(
                "REPRISE_ANSWER_LINK_KEY",
                "",
                "must be 64 or more hex digits (32 bytes or more)",
            )
        })
}

impl Settings {
    /// For the tests and benches only (not the service: it reads [`Settings::from_args`]):
    /// the service on `127.0.0.1:0` against `database`, emails written to `outbox_dir`, with no
    /// SMTP server, no outbox worker and none of the per-account, anonymous or disclosure
    /// limits. A test or bench changes what it needs afterwards (`delivery`, `rate_*`…).
    #[doc(hidden)]
    pub fn for_local(database: DatabaseUrl, outbox_dir: impl Into<PathBuf>) -> Self {
        Self {
            database,
            db_pool: 8,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            smtp: None,
            outbox_dir: outbox_dir.into(),
            mail_from: "Reprise <no-reply@localhost>"
                .parse()
                .expect("a literal mailbox parses"),
            public_url: url::Url::parse("http://127.0.0.1:8080").expect("a literal URL parses"),
            // As given: tests that follow the bound address say so (tests/api/answers.rs).
            public_url_given: true,
            log_format: LogFormat::Pretty,
            delivery: None,
            rate_writes: None,
            rate_reads: None,
            planning: Default::default(),
            answer_link_ttl: chrono::Duration::days(30),
            legacy_link_key: None,
            trusted_proxies: Default::default(),
            rate_anonymous: None,
            patients_per_hour: None,
            session_idle: chrono::Duration::minutes(30),
            callback_attempts: crate::domain::callback::DEFAULT_MAX_ATTEMPTS,
        }
    }

    pub fn from_args(config: &ConfigArgs) -> Result<Self, ConfigError> {
        let args = &config.values;
        let database = DATABASE
            .value(
                Some(&args.database),
                config.database_source,
                args.database_file.as_deref(),
            )?
            .map(|given| {
                DatabaseUrl::parse(&given.value).map_err(|e| bad(given.variable, given.flag, e))
            })
            .transpose()?
            .ok_or_else(|| bad(DATABASE.variable, DATABASE.flag, "is required"))?
            .with_prepared_statements(match args.db_prepared_statements.trim() {
                "on" => true,
                "off" => false,
                other => {
                    return Err(bad(
                        "REPRISE_DB_PREPARED_STATEMENTS",
                        "db-prepared-statements",
                        format!("{other:?} is not on or off"),
                    ))
                }
            });
        let db_pool = match &args.db_pool {
            None => default_pool_size(),
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    bad(
                        "REPRISE_DB_POOL",
                        "db-pool",
                        format!("{raw:?} is not a number from 1 to 1024"),
                    )
                })?,
        };
        let bind = args
            .bind
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                bad(
                    "REPRISE_BIND",
                    "bind",
                    format!(
                        "{:?} is not an address and port such as 127.0.0.1:8080",
                        args.bind
                    ),
                )
            })?;
        let smtp = SMTP
            .value(
                args.smtp.as_deref(),
                config.smtp_source,
                args.smtp_file.as_deref(),
            )?
            .map(|given| {
                SmtpSettings::parse(&given.value).map_err(|e| bad(given.variable, given.flag, e))
            })
            .transpose()?;
        if args.outbox_dir.as_os_str().is_empty() {
            return Err(bad("REPRISE_OUTBOX_DIR", "outbox-dir", "must not be empty"));
        }
        let mail_from = args.mail_from.parse().map_err(|e| {
            bad(
                "REPRISE_MAIL_FROM",
                "mail-from",
                format!("{:?} is not an address ({e})", args.mail_from),
            )
        })?;
        let public_url = match &args.public_url {
            None => None,
            Some(raw) => Some(
                url::Url::parse(raw)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                    .ok_or_else(|| {
                        bad(
                            "REPRISE_PUBLIC_URL",
                            "public-url",
                            format!("{raw:?} is not an http(s) URL"),
                        )
                    })?,
            ),
        };
        let public_url_given = public_url.is_some();
        let public_url = public_url.unwrap_or_else(|| public_url_of(bind));
        let log_format = match args.log_format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "REPRISE_LOG_FORMAT",
                    "log-format",
                    format!("{other:?} is not pretty or json"),
                ))
            }
        };
        Ok(Self {
            database,
            db_pool,
            bind,
            smtp,
            outbox_dir: args.outbox_dir.clone(),
            mail_from,
            public_url,
            public_url_given,
            log_format,
            delivery: Some(crate::email::DeliverySettings::default()),
            rate_writes: per_minute(&args.rate_writes, "REPRISE_RATE_WRITES", "rate-writes")?,
            rate_reads: per_minute(&args.rate_reads, "REPRISE_RATE_READS", "rate-reads")?,
            planning: crate::domain::plan::Planning {
                moderate_fraction: crate::domain::plan::parse_fraction(&args.moderate_fraction)
                    .map_err(|e| bad("REPRISE_MODERATE_FRACTION", "moderate-fraction", e.0))?,
                deadlines: crate::domain::plan::Deadlines::parse(&args.priority_deadlines)
                    .map_err(|e| bad("REPRISE_PRIORITY_DEADLINES", "priority-deadlines", e.0))?,
            },
            answer_link_ttl: args
                .answer_link_days
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|d| (1..=365).contains(d))
                .map(chrono::Duration::days)
                .ok_or_else(|| {
                    bad(
                        "REPRISE_ANSWER_LINK_DAYS",
                        "answer-link-days",
                        format!(
                            "{:?} is not a number of days from 1 to 365",
                            args.answer_link_days
                        ),
                    )
                })?,
            legacy_link_key: legacy_link_key()?,
            trusted_proxies: crate::client::TrustedProxies::parse(&args.trusted_proxies)
                .map_err(|e| bad("REPRISE_TRUSTED_PROXIES", "trusted-proxies", e))?,
            rate_anonymous: per_minute(
                &args.rate_anonymous,
                "REPRISE_RATE_ANONYMOUS",
                "rate-anonymous",
            )?,
            patients_per_hour: match args.patients_per_hour.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(n) if n <= 1_000_000 => Some(n),
                _ => {
                    return Err(bad(
                        "REPRISE_PATIENTS_PER_HOUR",
                        "patients-per-hour",
                        format!(
                            "{:?} is not a number of patients from 0 (no limit) to 1000000",
                            args.patients_per_hour
                        ),
                    ))
                }
            },
            session_idle: args
                .session_idle_minutes
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|m| (1..=720).contains(m))
                .map(chrono::Duration::minutes)
                .ok_or_else(|| {
                    bad(
                        "REPRISE_SESSION_IDLE_MINUTES",
                        "session-idle-minutes",
                        format!(
                            "{:?} is not a number of minutes from 1 to 720",
                            args.session_idle_minutes
                        ),
                    )
                })?,
            callback_attempts: args
                .callback_attempts
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    bad(
                        "REPRISE_CALLBACK_ATTEMPTS",
                        "callback-attempts",
                        format!(
                            "{:?} is not a number of attempts from 1 to 100",
                            args.callback_attempts
                        ),
                    )
                })?,
        })
    }
}

/// `http://` and the bound address, as a link can use it: an unspecified address (`0.0.0.0`,
/// `::`) becomes the loopback one (start-up then warns: see `startup::warn_about_links`).
pub fn public_url_of(bind: SocketAddr) -> url::Url {
    let ip = match bind.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let address = SocketAddr::new(ip, bind.port());
    url::Url::parse(&format!("http://{address}"))
        .unwrap_or_else(|_| url::Url::parse("http://127.0.0.1:8080").expect("a literal URL parses"))
}

/// Enough connections for every core to have a reader waiting and a writer going.
fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(16).clamp(4, 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        config: ConfigArgs,
    }

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        let probe = Probe::try_parse_from(std::iter::once("reprise").chain(args.iter().copied()))
            .expect("clap accepts the flags");
        Settings::from_args(&probe.config)
    }

    #[test]
    fn defaults_are_the_contract_defaults() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(
            s.database,
            DatabaseUrl::parse("sqlite://data/reprise.db").expect("ok")
        );
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert!(s.smtp.is_none());
        assert_eq!(s.outbox_dir, PathBuf::from("data/outbox"));
        assert_eq!(s.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(!s.public_url_given);
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.db_pool >= 4);
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.rate_anonymous, Some(60));
        assert_eq!(s.patients_per_hour, Some(400));
        assert_eq!(s.session_idle, chrono::Duration::minutes(30));
        assert_eq!(s.callback_attempts, 5);
    }

    #[test]
    fn prepared_statements_are_on_unless_turned_off() {
        let url = "postgres://me@db/reprise";
        let on = DatabaseUrl::parse(url).expect("ok");
        let off = on.clone().with_prepared_statements(false);
        assert_ne!(on, off);
        assert_eq!(settings(&["--database", url]).expect("valid").database, on);
        for (value, expected) in [("on", &on), ("off", &off), (" off ", &off)] {
            let s = settings(&["--database", url, "--db-prepared-statements", value]);
            assert_eq!(&s.expect("valid").database, expected, "{value:?}");
        }
    }

    #[test]
    fn without_a_public_url_links_follow_the_bound_address() {
        let s = settings(&["--bind", "10.1.2.3:9000"]).expect("valid");
        assert_eq!(s.public_url.as_str(), "http://10.1.2.3:9000/");
        let s = settings(&["--bind", "[::1]:9000"]).expect("valid");
        assert_eq!(s.public_url.as_str(), "http://[::1]:9000/");
        let s = settings(&["--bind", "0.0.0.0:9000"]).expect("valid");
        assert_eq!(s.public_url.as_str(), "http://127.0.0.1:9000/");
        let s = settings(&[
            "--bind",
            "0.0.0.0:9000",
            "--public-url",
            "https://r.example",
        ])
        .expect("valid");
        assert_eq!(s.public_url.as_str(), "https://r.example/");
        assert!(s.public_url_given);
    }

    #[test]
    fn bad_values_are_named_in_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bind", "nowhere"], "REPRISE_BIND"),
            (&["--db-pool", "0"], "REPRISE_DB_POOL"),
            (&["--db-pool", "many"], "REPRISE_DB_POOL"),
            (
                &["--db-prepared-statements", "no"],
                "REPRISE_DB_PREPARED_STATEMENTS",
            ),
            (&["--database", "mysql://x/y"], "REPRISE_DATABASE_URL"),
            (&["--smtp", "http://mail"], "REPRISE_SMTP_URL"),
            (&["--smtp", "smtp://mail?tls=maybe"], "REPRISE_SMTP_URL"),
            (&["--mail-from", "not an address"], "REPRISE_MAIL_FROM"),
            (&["--public-url", "ftp://x"], "REPRISE_PUBLIC_URL"),
            (&["--log-format", "xml"], "REPRISE_LOG_FORMAT"),
            (&["--answer-link-days", "0"], "REPRISE_ANSWER_LINK_DAYS"),
            (&["--answer-link-days", "366"], "REPRISE_ANSWER_LINK_DAYS"),
            (
                &["--trusted-proxies", "10.0.0.0/99"],
                "REPRISE_TRUSTED_PROXIES",
            ),
            (
                &["--trusted-proxies", "proxy.local"],
                "REPRISE_TRUSTED_PROXIES",
            ),
            (&["--rate-anonymous", "many"], "REPRISE_RATE_ANONYMOUS"),
            (
                &["--patients-per-hour", "lots"],
                "REPRISE_PATIENTS_PER_HOUR",
            ),
            (
                &["--session-idle-minutes", "0"],
                "REPRISE_SESSION_IDLE_MINUTES",
            ),
            (
                &["--session-idle-minutes", "721"],
                "REPRISE_SESSION_IDLE_MINUTES",
            ),
            (&["--callback-attempts", "0"], "REPRISE_CALLBACK_ATTEMPTS"),
            (
                &["--callback-attempts", "five"],
                "REPRISE_CALLBACK_ATTEMPTS",
            ),
        ];
        for (args, variable) in cases {
            let err = settings(args).expect_err("must be refused").to_string();
            assert!(err.contains(variable), "{err} should name {variable}");
            assert!(!err.contains('\n'), "{err} should be one line");
        }
    }

    #[test]
    fn a_secret_is_refused_as_a_flag_and_never_printed() {
        for (args, variable) in [
            (
                ["--database", "postgres://me:s3cret@db/reprise"],
                "REPRISE_DATABASE_URL",
            ),
            (
                [
                    "--database",
                    "postgres://me@db/reprise?sslmode=require&password=s3cret",
                ],
                "REPRISE_DATABASE_URL",
            ),
            (
                ["--database", "postgres://me@db/reprise?SSLPassword=s3cret"],
                "REPRISE_DATABASE_URL",
            ),
            (
                ["--smtp", "smtps://me:s3cret@mail.example:465"],
                "REPRISE_SMTP_URL",
            ),
            (
                ["--smtp", "smtp://relay:25?password=s3cret"],
                "REPRISE_SMTP_URL",
            ),
        ] {
            let err = settings(&args).expect_err("refused").to_string();
            assert!(err.starts_with(&format!("invalid {variable} (--")), "{err}");
            assert!(err.contains(&format!("{variable}_FILE")), "{err}");
            assert!(!err.contains("s3cret") && !err.contains('\n'), "{err}");
        }
        // Without a password, the flags work as the README shows.
        let s = settings(&["--database", "sqlite://data/demo.db"]).expect("no secret");
        assert_eq!(
            s.database,
            DatabaseUrl::parse("sqlite://data/demo.db").expect("ok")
        );
        let s = settings(&[
            "--database",
            "postgres://me@db/reprise?sslmode=require",
            "--smtp",
            "smtps://me@mail.example:465",
        ])
        .expect("no secret");
        assert_eq!(s.database.backend, crate::db::Backend::Postgres);
        assert_eq!(
            s.smtp.and_then(|smtp| smtp.credentials),
            Some(("me".to_string(), String::new()))
        );
    }

    /// A file in a folder of its own, with this content.
    fn secret_file(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("folder");
        let file = dir.path().join("secret");
        std::fs::write(&file, content).expect("written");
        (dir, file)
    }

    #[test]
    fn urls_are_read_from_the_files_their_file_variables_name_trimmed() {
        let (_d1, database) = secret_file(b"postgres://me:s3cret@db:5432/reprise\n");
        let (_d2, smtp) = secret_file(b"  smtps://me:p%40ss@mail.example:465\r\n");
        let s = settings(&[
            "--database-file",
            &database.to_string_lossy(),
            "--smtp-file",
            &smtp.to_string_lossy(),
        ])
        .expect("the files are read");
        assert_eq!(
            s.database,
            DatabaseUrl::parse("postgres://me:s3cret@db:5432/reprise").expect("ok")
        );
        let smtp = s.smtp.clone().expect("SMTP");
        assert_eq!((smtp.host.as_str(), smtp.port), ("mail.example", 465));
        assert_eq!(
            smtp.credentials,
            Some(("me".to_string(), "p@ss".to_string()))
        );
        assert!(!format!("{s:?}").contains("s3cret") && !format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn a_file_variable_that_cannot_be_used_is_named_and_its_content_never_printed() {
        let (_d1, readable) = secret_file(b"postgres://me:s3cret@db/reprise");
        let (_d2, not_a_url) = secret_file(b"oracle://me:s3cret@db/reprise\n");
        let (_d3, empty) = secret_file(b" \n");
        let (_d4, not_text) = secret_file(b"postgres://me:s3cret\xff@db/reprise");
        let folder = tempfile::tempdir().expect("folder");
        let folder = folder.path().to_string_lossy().into_owned();
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        let cases: Vec<(Vec<String>, &str)> = vec![
            // Both the value and a file.
            (
                vec![
                    "--database".into(),
                    "sqlite://x.db".into(),
                    "--database-file".into(),
                    path(&readable),
                ],
                "REPRISE_DATABASE_URL_FILE",
            ),
            (
                vec![
                    "--smtp".into(),
                    "smtp://relay:25".into(),
                    "--smtp-file".into(),
                    path(&readable),
                ],
                "REPRISE_SMTP_URL_FILE",
            ),
            // Missing, a folder, not UTF-8, empty.
            (
                vec!["--database-file".into(), format!("{folder}/missing")],
                "REPRISE_DATABASE_URL_FILE",
            ),
            (
                vec!["--smtp-file".into(), folder.clone()],
                "REPRISE_SMTP_URL_FILE",
            ),
            (
                vec!["--database-file".into(), path(&not_text)],
                "REPRISE_DATABASE_URL_FILE",
            ),
            (
                vec!["--database-file".into(), path(&empty)],
                "REPRISE_DATABASE_URL_FILE",
            ),
            // Read, but not a URL of the right kind.
            (
                vec!["--database-file".into(), path(&not_a_url)],
                "REPRISE_DATABASE_URL_FILE",
            ),
            (
                vec!["--smtp-file".into(), path(&readable)],
                "REPRISE_SMTP_URL_FILE",
            ),
        ];
        for (args, variable) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let err = settings(&args).expect_err("refused").to_string();
            assert!(err.starts_with(&format!("invalid {variable} (--")), "{err}");
            assert!(!err.contains("s3cret") && !err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn smtp_urls_of_the_contract_parse() {
        let plain = SmtpSettings::parse("smtp://relay:2525").expect("ok");
        assert_eq!((plain.port, plain.security), (2525, SmtpSecurity::Plain));
        let starttls = SmtpSettings::parse("smtp://relay:587?tls=starttls").expect("ok");
        assert_eq!(starttls.security, SmtpSecurity::StartTls);
        let tls = SmtpSettings::parse("smtps://me:p%40ss@mail.example:465").expect("ok");
        assert_eq!(tls.security, SmtpSecurity::Tls);
        assert_eq!(
            tls.credentials,
            Some(("me".to_string(), "p@ss".to_string()))
        );
        assert!(!format!("{tls:?}").contains("p@ss"));
    }
}
