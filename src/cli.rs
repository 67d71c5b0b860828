//! The sub-commands of CONTRACT §1. Each parses its arguments, builds the settings, and calls
//! the same library code the HTTP service uses.
//!
//! Exit codes: 0 done, 1 failed while running, 2 bad command line or configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::auth::Caller;
use crate::config::{ConfigArgs, Settings};
use crate::db::Db;
use crate::service::database::BackupError;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "reprise",
    version,
    about = "Get patients back after a hospital IT shutdown",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default); applies pending migrations first
    Serve,
    /// Apply pending migrations and exit
    Migrate,
    /// Manage API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load the demo scenario (the Vivalia case of May 2022) into an empty database
    Demo {
        /// Same seed, same data
        #[arg(long, default_value_t = 2022)]
        seed: u64,
    },
    /// Export data without the HTTP service (for a machine cut off from the network)
    #[command(subcommand)]
    Export(ExportCommand),
    /// Import a CSV file (all or nothing)
    #[command(subcommand)]
    Import(ImportCommand),
    /// At the end of the crisis: remove the notes and callers' numbers of calls older than the
    /// retention period (the call centre must be deactivated; statistics are kept)
    PurgeCalls {
        /// Keep the calls of the last N days as they are
        #[arg(
            long = "retention-days",
            env = "REPRISE_CALL_RETENTION_DAYS",
            default_value_t = 30
        )]
        retention_days: u32,
    },
    /// Tokens of the telephone systems that push call events (CONTRACT §4.9)
    #[command(subcommand, name = "cti-token")]
    CtiToken(CtiTokenCommand),
    /// A consistent copy of the SQLite database, taken while the service runs
    Backup {
        /// The copy to write (must not exist yet)
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A site's contact list (CONTRACT §4.5)
    ContactList {
        /// Site code
        #[arg(long)]
        site: String,
        /// Only this service
        #[arg(long)]
        service: Option<String>,
        /// csv, excel, json, or xlsx (an Excel workbook, its column titles in French)
        #[arg(long, default_value = "csv")]
        format: String,
        /// File to write (default: standard output)
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Every FHIR R4 resource as NDJSON files, one per type (CONTRACT §4.10)
    Fhir {
        /// Folder to write `Patient.ndjson`, `Appointment.ndjson`… into (created 0700)
        #[arg(long)]
        out: std::path::PathBuf,
        /// Only what changed after this instant (`2022-05-14T00:00:00Z`), as `_since`
        #[arg(long)]
        since: Option<String>,
        /// Only these types, comma-separated, as `_type` (default: all five)
        #[arg(long = "type")]
        types: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Appointments, with the header of CONTRACT §4.4
    Appointments {
        /// The CSV file ("-" for standard input)
        file: std::path::PathBuf,
    },
    /// Calls, with the header of CONTRACT §4.6
    Calls {
        /// The CSV file ("-" for standard input)
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an account and print its API token alone on stdout
    Create {
        /// Display name of the account holder
        #[arg(long)]
        name: String,
        /// admin, coordinator, secretary or agent
        #[arg(long)]
        role: String,
        /// Service code a secretary works for (repeat for several)
        #[arg(long = "service")]
        services: Vec<String>,
        /// Days the token works (1 to 3650); without it, until the account is deleted
        #[arg(long = "expires-in")]
        expires_in: Option<i64>,
        /// The telephone extension the telephone system names when this person answers
        #[arg(long)]
        extension: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CtiTokenCommand {
    /// Create a token for a telephone system (PBX) and print it alone on stdout
    Create {
        /// Name of the telephone system
        #[arg(long)]
        name: String,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::from_args(&cli.config)
        .map_err(|e| e.to_string())
        .and_then(|s| crate::telemetry::init(s.log_format).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    exit_code(command(settings, cli.command.unwrap_or(Command::Serve)))
}

/// Runs one sub-command with the settings.
fn command(settings: Settings, command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve => serve(settings),
        Command::Migrate => open_database(&settings).map(|_| ()),
        Command::Token(TokenCommand::Create {
            name,
            role,
            services,
            expires_in,
            extension,
        }) => create_token(&settings, &name, &role, &services, expires_in, extension),
        Command::CtiToken(CtiTokenCommand::Create { name }) => create_cti_token(&settings, name),
        Command::Demo { seed } => demo(&settings, seed),
        Command::Export(ExportCommand::ContactList {
            site,
            service,
            format,
            out,
        }) => export_contact_list(&settings, site, service, &format, out.as_deref()),
        Command::Export(ExportCommand::Fhir { out, since, types }) => {
            export_fhir(&settings, &out, since.as_deref(), types.as_deref())
        }
        Command::Import(ImportCommand::Appointments { file }) => {
            import_file(&settings, &file, |db, input, caller| {
                crate::service::imports::import_appointments(db, input, caller)
                    .map(|r| serde_json::json!(r))
            })
        }
        Command::Backup { file } => backup(&settings, &file),
        Command::PurgeCalls { retention_days } => purge_calls(&settings, retention_days),
        Command::Import(ImportCommand::Calls { file }) => {
            import_file(&settings, &file, |db, input, caller| {
                crate::service::imports::import_calls(db, input, caller)
                    .map(|r| serde_json::json!(r))
            })
        }
    }
}

/// 0, 2 for what the operator typed wrong, 1 for a failure; the error on stderr.
fn exit_code(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum CliError {
    Usage(String),
    Failed(String),
}

/// Anonymises the calls older than the retention period, once the call centre is off; prints
/// `{"calls_purged": N, "before": "…"}`.
fn purge_calls(settings: &Settings, retention_days: u32) -> Result<(), CliError> {
    if retention_days > 36_500 {
        return Err(CliError::Usage(
            "--retention-days is at most 36500 (a hundred years)".into(),
        ));
    }
    let db = open_database(settings)?;
    let before = crate::domain::now() - chrono::Duration::days(i64::from(retention_days));
    let purged = db
        .write_blocking(move |conn| {
            crate::service::calls::purge(conn, &Caller::command_line(), before)
        })
        .map_err(failed)?;
    println!(
        "{}",
        serde_json::json!({ "calls_purged": purged, "before": crate::domain::time::utc(before) })
    );
    Ok(())
}

fn serve(settings: Settings) -> Result<(), CliError> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)
            .await
            .map_err(CliError::Failed)?;
        app.run_until_stopped()
            .await
            .map_err(|e| CliError::Failed(e.to_string()))
    })
}

/// Connects and applies pending migrations, as every command that touches data does first.
fn open_database(settings: &Settings) -> Result<Db, CliError> {
    let db = Db::connect(&settings.database, 2).map_err(|e| {
        CliError::Failed(format!("cannot open {}: {e}", settings.database.redacted()))
    })?;
    let legacy_key = settings.legacy_link_key.as_ref().map(|k| k.0.as_slice());
    let applied = db.migrate_with(legacy_key).map_err(CliError::Failed)?;
    tracing::info!(applied, backend = db.backend().name(), "migrations applied");
    Ok(db)
}

fn create_token(
    settings: &Settings,
    name: &str,
    role: &str,
    services: &[String],
    expires_in: Option<i64>,
    extension: Option<String>,
) -> Result<(), CliError> {
    let extension = extension
        .as_deref()
        .map(crate::domain::account::parse_extension)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--extension {e}")))?;
    let expires_in_days = expires_in
        .map(crate::domain::account::parse_expires_in)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--expires-in {e}")))?;
    let new = crate::domain::account::NewAccount::parse(name, role, services)
        .map_err(|faults| refused(faults.into()))?;
    let new = crate::domain::account::NewAccount {
        expires_in_days,
        extension,
        ..new
    };
    let db = open_database(settings)?;
    let created = db
        .write_blocking(move |conn| {
            crate::service::users::create_account(conn, &Caller::command_line(), new)
        })
        .map_err(refused)?;
    println!("{}", created.token);
    Ok(())
}

/// `reprise backup FILE`: SQLite's `VACUUM INTO` copies the database as one read
/// transaction sees it, without stopping the writer (WAL), into a temporary file (0600) beside
/// the target, which is checked and then renamed: a file at that name is always a whole backup.
/// The backup is audited (it holds every patient). On PostgreSQL: `pg_dump`.
fn backup(settings: &Settings, file: &std::path::Path) -> Result<(), CliError> {
    if settings.database.backend == crate::db::Backend::Postgres {
        return Err(CliError::Usage(
            "reprise backup copies a SQLite database; for PostgreSQL use pg_dump \
             (see docs/operations.md)"
                .into(),
        ));
    }
    if file.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists; a backup never overwrites a file",
            file.display()
        )));
    }
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Private from its creation (it holds every patient): VACUUM INTO fills an existing
    // file as long as it is empty, and the file keeps its mode through the rename.
    let partial = crate::files::private_tempfile_in(&folder, ".reprise-backup-")
        .map_err(|e| CliError::Usage(format!("cannot write in {}: {e}", folder.display())))?
        .into_temp_path();
    let target = partial.to_string_lossy().into_owned();
    let db = open_database(settings)?;
    crate::service::database::backup(&db, Caller::command_line(), target).map_err(|e| match e {
        BackupError::Audit(e) => failed(e),
        BackupError::Copy(e) => CliError::Failed(format!("the copy failed: {e}")),
    })?;
    crate::db::check_sqlite_file(&partial).map_err(CliError::Failed)?;
    partial
        .persist_noclobber(file)
        .map_err(|e| CliError::Failed(format!("cannot name the backup {}: {e}", file.display())))?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({"file": file.display().to_string(), "bytes": bytes})
    );
    Ok(())
}

/// Runs an import on a file; prints its report as JSON, or every bad line on stderr (exit 1,
/// nothing stored).
fn import_file(
    settings: &Settings,
    file: &std::path::Path,
    import: impl FnOnce(
        &Db,
        &mut dyn std::io::Read,
        &Caller,
    ) -> Result<serde_json::Value, crate::error::AppError>,
) -> Result<(), CliError> {
    let input: Box<dyn std::io::Read> = if file == std::path::Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?,
        )
    };
    let db = open_database(settings)?;
    match import(
        &db,
        &mut std::io::BufReader::new(input),
        &Caller::command_line(),
    ) {
        Ok(report) => {
            println!("{}", serde_json::json!(report));
            Ok(())
        }
        Err(crate::error::AppError::Validation(errors)) => {
            for e in &errors {
                match e.line {
                    Some(line) => eprintln!("line {line}: {}: {}", e.field, e.message),
                    None => eprintln!("{}: {}", e.field, e.message),
                }
            }
            Err(CliError::Failed(format!(
                "{} errors; nothing was imported",
                errors.len()
            )))
        }
        Err(other) => Err(failed(other)),
    }
}

/// An error of the library as the operator should read it: with its cause.
fn failed(e: crate::error::AppError) -> CliError {
    match e {
        crate::error::AppError::Internal(cause) | crate::error::AppError::Unavailable(cause) => {
            CliError::Failed(cause)
        }
        other => CliError::Failed(other.to_string()),
    }
}

/// Prints a new PBX token alone on stdout (stored as its hash).
fn create_cti_token(settings: &Settings, name: String) -> Result<(), CliError> {
    let db = open_database(settings)?;
    let token = crate::service::telephony::create_pbx_token(&db, Caller::command_line(), name)
        .map_err(refused)?;
    println!("{token}");
    Ok(())
}

/// A refusal of what the operator typed (exit code 2: an unknown record, invalid values),
/// else [`failed`].
fn refused(e: crate::error::AppError) -> CliError {
    match e {
        crate::error::AppError::NotFound(m) => CliError::Usage(m),
        crate::error::AppError::Validation(errors) => CliError::Usage(
            errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => failed(other),
    }
}

/// Loads the demo scenario and prints what it loaded (with one token per role) as JSON.
fn demo(settings: &Settings, seed: u64) -> Result<(), CliError> {
    let db = open_database(settings)?;
    let started = std::time::Instant::now();
    let report = crate::demo::load(&db, seed, crate::demo::DemoSize::FULL).map_err(failed)?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "demo loaded");
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    Ok(())
}

/// `reprise export fhir`: one NDJSON file per type in `out` (0700), each written whole under
/// a temporary name (0600) and then renamed, from one snapshot of the database; audited as
/// `fhir.export`. Prints `{transactionTime, output: [{type, file, count}]}`.
fn export_fhir(
    settings: &Settings,
    out: &std::path::Path,
    since: Option<&str>,
    types: Option<&str>,
) -> Result<(), CliError> {
    use crate::fhir::ResourceType;
    let types = ResourceType::parse_list(types)
        .map_err(|t| CliError::Usage(format!("--type: {t:?} is not a type reprise exports")))?;
    let since = since
        .map(|raw| {
            crate::fhir::parse_instant(raw).ok_or_else(|| {
                CliError::Usage(format!(
                    "--since {raw:?} is not an instant with its zone (2022-05-14T00:00:00Z)"
                ))
            })
        })
        .transpose()?;
    crate::files::create_private_dir(out)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", out.display())))?;
    let mut files = Vec::new();
    for t in &types {
        let file = crate::files::private_tempfile_in(out, &format!(".{}-", t.as_str()))
            .map_err(|e| CliError::Usage(format!("cannot write in {}: {e}", out.display())))?;
        files.push((*t, std::io::BufWriter::new(file)));
    }
    let db = open_database(settings)?;
    let request = crate::service::fhir::ExportRequest {
        types: types.clone(),
        since,
    };
    let mut sink = Files(files);
    let summary = crate::service::fhir::export(&db, &Caller::command_line(), &request, &mut sink)
        .map_err(|e| match e {
        crate::service::fhir::ExportError::Failed(e) => failed(e),
        crate::service::fhir::ExportError::Sink(e) => {
            CliError::Failed(format!("cannot write the export: {e}"))
        }
    })?;
    let mut output = Vec::new();
    for ((t, file), (_, count)) in sink.0.into_iter().zip(&summary.counts) {
        let target = out.join(format!("{}.ndjson", t.as_str()));
        file.into_inner()
            .map_err(|e| CliError::Failed(format!("cannot write the export: {e}")))?
            .persist(&target)
            .map_err(|e| CliError::Failed(format!("cannot name {}: {e}", target.display())))?;
        output.push(serde_json::json!({
            "type": t.as_str(), "file": target.display().to_string(), "count": count,
        }));
    }
    println!(
        "{}",
        serde_json::json!({
            "transactionTime": crate::fhir::instant(summary.transaction_time),
            "output": output,
        })
    );
    Ok(())
}

/// The files of `reprise export fhir`, one per type, each a line per resource.
type TypeFiles = Vec<(
    crate::fhir::ResourceType,
    std::io::BufWriter<tempfile::NamedTempFile>,
)>;

struct Files(TypeFiles);

impl crate::service::fhir::Sink for Files {
    fn resource(&mut self, kind: crate::fhir::ResourceType, json: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let (_, file) = self
            .0
            .iter_mut()
            .find(|(t, _)| *t == kind)
            .ok_or_else(|| std::io::Error::other("a type not asked for"))?;
        file.write_all(json)?;
        file.write_all(b"\n")
    }

    fn end(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.0.iter_mut().try_for_each(|(_, file)| file.flush())
    }
}

/// Writes a contact list to a file (0600, see `files.rs`) or stdout, audited like an export
/// over HTTP.
fn export_contact_list(
    settings: &Settings,
    site: String,
    service: Option<String>,
    format: &str,
    out: Option<&std::path::Path>,
) -> Result<(), CliError> {
    use std::io::Write;
    let format = crate::service::contact_lists::Format::parse(format)
        .map_err(|e| CliError::Usage(format!("--format {format:?} {e}")))?;
    let db = open_database(settings)?;
    let caller = Caller::command_line();
    let filter = db
        .read_blocking(|conn| {
            crate::service::contact_lists::checked_filter(conn, &caller, site, service, None)
        })
        .map_err(refused)?;
    let mut sink: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            crate::files::create_private(path)
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut write_error = None;
    let rows = crate::service::contact_lists::export(&db, &caller, filter, format, |chunk| {
        match sink.write_all(&chunk) {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        }
    })
    .map_err(failed)?;
    if let Some(e) = write_error {
        return Err(CliError::Failed(format!("cannot write the list: {e}")));
    }
    sink.flush()
        .map_err(|e| CliError::Failed(format!("cannot write the list: {e}")))?;
    tracing::info!(rows, "contact list exported");
    Ok(())
}
