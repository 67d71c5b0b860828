//! The email outbox. Notifications are queued set-based, in the transaction of the change that
//! causes them, only for patients with an address and their consent; the unique `dedup_key`
//! makes a second copy of one email impossible, so queueing again changes nothing.

use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

use super::schema::notifications;
use super::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub template: String,
    pub language: String,
    pub to_address: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: chrono::NaiveDateTime,
    pub sent_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
}

enum Bind {
    Text(String),
    Time(chrono::NaiveDateTime),
}

/// Runs an `INSERT … SELECT … ON CONFLICT (dedup_key) DO NOTHING` written once with `$n`
/// placeholders (SQLite reads them as `?n`) and `{id}` for a new random TEXT id; returns how
/// many notifications it queued.
fn queue(conn: &mut DbConnection, sql: &str, binds: Vec<Bind>) -> QueryResult<usize> {
    macro_rules! run {
        ($c:expr, $text:expr) => {{
            let mut q = diesel::sql_query($text).into_boxed();
            for value in binds {
                q = match value {
                    Bind::Text(v) => q.bind::<Text, _>(v),
                    Bind::Time(v) => q.bind::<Timestamp, _>(v),
                };
            }
            q.execute($c)
        }};
    }
    match conn {
        DbConnection::Sqlite(c) => run!(
            c,
            sql.replace("{id}", "lower(hex(randomblob(16)))")
                .replace('$', "?")
        ),
        DbConnection::Pg(c) => run!(c, sql.replace("{id}", "gen_random_uuid()::text")),
    }
}

const INSERT: &str =
    "INSERT INTO notifications (id, patient_id, appointment_id, template, language, \
    to_address, status, attempts, next_attempt_at, created_at, dedup_key) ";

/// One `appointment_postponed` email per appointment an incident postponed just now
/// (`postponed_at = at`), keyed by appointment and original date.
pub fn queue_postponed(
    conn: &mut DbConnection,
    incident_id: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let sql = format!(
        "{INSERT} SELECT {{id}}, p.id, a.id, 'appointment_postponed', p.language, p.email, 'queued', 0, $1, $1, \
         'appointment_postponed:' || a.id || ':' || CAST(a.original_scheduled_at AS TEXT) \
         FROM appointments a JOIN patients p ON p.id = a.patient_id \
         WHERE a.incident_id = $2 AND a.postponed_at = $1 AND p.email IS NOT NULL AND p.email_consent \
         ON CONFLICT (dedup_key) DO NOTHING"
    );
    queue(
        conn,
        &sql,
        vec![Bind::Time(at), Bind::Text(incident_id.into())],
    )
}

/// One `site_reopened` email per patient with a postponed appointment still to contact at the
/// site, keyed by patient, site and reopening day (Brussels).
pub fn queue_reopened(
    conn: &mut DbConnection,
    site: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let day = crate::domain::time::brussels(at).date_naive().to_string();
    let sql = format!(
        "{INSERT} SELECT {{id}}, p.id, NULL, 'site_reopened', p.language, p.email, 'queued', 0, $1, $1, \
         'site_reopened:' || p.id || ':' || $2 || ':' || $3 \
         FROM patients p WHERE p.email IS NOT NULL AND p.email_consent AND p.id IN \
         (SELECT a.patient_id FROM appointments a WHERE a.site_code = $2 \
          AND a.status = 'postponed' AND a.reached_at IS NULL) \
         ON CONFLICT (dedup_key) DO NOTHING"
    );
    queue(
        conn,
        &sql,
        vec![Bind::Time(at), Bind::Text(site.into()), Bind::Text(day)],
    )
}

/// One `appointment_rescheduled` email for the appointment's new date, if the patient has an
/// address and consent.
pub fn queue_rescheduled(
    conn: &mut DbConnection,
    appointment_id: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let sql = format!(
        "{INSERT} SELECT {{id}}, p.id, a.id, 'appointment_rescheduled', p.language, p.email, 'queued', 0, $1, $1, \
         'appointment_rescheduled:' || a.id || ':' || CAST(a.scheduled_at AS TEXT) \
         FROM appointments a JOIN patients p ON p.id = a.patient_id \
         WHERE a.id = $2 AND p.email IS NOT NULL AND p.email_consent \
         ON CONFLICT (dedup_key) DO NOTHING"
    );
    queue(
        conn,
        &sql,
        vec![Bind::Time(at), Bind::Text(appointment_id.into())],
    )
}

#[derive(Debug, Default, Clone)]
pub struct NotificationFilter {
    pub status: Option<String>,
    pub patient_id: Option<String>,
    /// Keyset cursor: ids after this one.
    pub after_id: Option<String>,
}

pub fn list(
    conn: &mut DbConnection,
    f: &NotificationFilter,
    limit: i64,
) -> QueryResult<Vec<NotificationRow>> {
    let mut q = notifications::table
        .select(NotificationRow::as_select())
        .order(notifications::id)
        .limit(limit)
        .into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(notifications::status.eq(s.clone()));
    }
    if let Some(p) = &f.patient_id {
        q = q.filter(notifications::patient_id.eq(p.clone()));
    }
    if let Some(a) = &f.after_id {
        q = q.filter(notifications::id.gt(a.clone()));
    }
    q.load(conn)
}
