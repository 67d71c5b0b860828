//! The email outbox. Notifications are queued set-based, in the transaction of the change that
//! causes them, only for patients with an address and their consent; the unique `dedup_key`
//! makes a second copy of one email impossible, so queueing again changes nothing.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

use super::schema::notifications;
use super::DbConnection;
use crate::domain::appointment::{Kind, Status};
use crate::domain::notification::{NotificationStatus, Template};
use crate::domain::patient::Language;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub template: Template,
    pub language: Language,
    pub to_address: String,
    pub status: NotificationStatus,
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
    to_address, status, attempts, next_attempt_at, created_at, dedup_key, site_code, scheduled_for) ";

/// One `appointment_postponed` email per appointment an incident postponed just now
/// (`postponed_at = at`), keyed by appointment and original date.
pub fn queue_postponed(
    conn: &mut DbConnection,
    incident_id: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    let sql = format!(
        "{INSERT} SELECT {{id}}, p.id, a.id, 'appointment_postponed', p.language, p.email, 'queued', 0, $1, $1, \
         'appointment_postponed:' || a.id || ':' || CAST(a.original_scheduled_at AS TEXT), \
         a.site_code, a.original_scheduled_at \
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

/// Records the `appointment_postponed` emails of an incident that are still queued as sent at
/// `at`, once each (`attempts = 1`): for an incident loaded as history (the demo's May 2022),
/// whose emails went out back then and must not go out again when the service starts. Their
/// rows and `dedup_key`s stay, so applying the incident again queues nothing.
pub fn record_postponed_as_sent(
    conn: &mut DbConnection,
    incident_id: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    use super::schema::appointments;
    diesel::update(
        notifications::table
            .filter(notifications::template.eq(Template::AppointmentPostponed))
            .filter(notifications::status.eq(NotificationStatus::Queued))
            .filter(
                notifications::appointment_id.eq_any(
                    appointments::table
                        .filter(appointments::incident_id.eq(incident_id))
                        .select(appointments::id.nullable()),
                ),
            ),
    )
    .set((
        notifications::status.eq(NotificationStatus::Sent),
        notifications::sent_at.eq(Some(at)),
        notifications::attempts.eq(1),
        notifications::last_error.eq(None::<String>),
    ))
    .execute(conn)
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
         'site_reopened:' || p.id || ':' || $2 || ':' || $3, $2, CAST(NULL AS TIMESTAMP) \
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

/// How many `site_reopened` emails [`queue_reopened`] would queue for `site` now: the patients
/// with an address and consent who have an appointment there still to rebook (the same
/// condition), for the reopening's confirmation.
pub fn count_reopened(conn: &mut DbConnection, site: &str) -> QueryResult<i64> {
    use super::schema::{appointments as a, patients as p};
    p::table
        .filter(p::email.is_not_null())
        .filter(p::email_consent.eq(true))
        .filter(
            p::id.eq_any(
                a::table
                    .filter(a::site_code.eq(site))
                    .filter(a::status.eq(Status::Postponed))
                    .filter(a::reached_at.is_null())
                    .select(a::patient_id),
            ),
        )
        .count()
        .get_result(conn)
}

/// One `appointment_rescheduled` email for the appointment's new date, if the patient has an
/// address and consent.
pub fn queue_rescheduled(
    conn: &mut DbConnection,
    appointment_id: &str,
    at: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    // An email not yet sent about an older date would now be wrong: it is not sent.
    diesel::update(
        notifications::table
            .filter(notifications::appointment_id.eq(appointment_id))
            .filter(notifications::template.eq(Template::AppointmentRescheduled))
            .filter(notifications::status.eq(NotificationStatus::Queued))
            .filter(
                notifications::scheduled_for.ne(super::schema::appointments::table
                    .filter(super::schema::appointments::id.eq(appointment_id))
                    .select(super::schema::appointments::scheduled_at)
                    .single_value()),
            ),
    )
    .set((
        notifications::status.eq(NotificationStatus::Failed),
        notifications::last_error.eq("superseded: the appointment moved again before it was sent"),
    ))
    .execute(conn)?;
    let sql = format!(
        "{INSERT} SELECT {{id}}, p.id, a.id, 'appointment_rescheduled', p.language, p.email, 'queued', 0, $1, $1, \
         'appointment_rescheduled:' || a.id || ':' || CAST(a.scheduled_at AS TEXT), \
         a.site_code, a.scheduled_at \
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
    pub status: Option<NotificationStatus>,
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
        q = q.filter(notifications::status.eq(*s));
    }
    if let Some(p) = &f.patient_id {
        q = q.filter(notifications::patient_id.eq(p.clone()));
    }
    if let Some(a) = &f.after_id {
        q = q.filter(notifications::id.gt(a.clone()));
    }
    q.load(conn)
}

/// A worker takes up to `limit` due notifications for itself: it writes its name on them and
/// the end of its lease, so that no other worker takes them unless this one dies. (No indexed
/// column changes: on PostgreSQL the claim can update the row in place.) On PostgreSQL, rows another worker is claiming at that moment are skipped, not waited
/// for (`FOR UPDATE SKIP LOCKED`); SQLite has one writer, so claims never overlap.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    now: chrono::NaiveDateTime,
    lease_until: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Claimed {
        #[diesel(sql_type = Text)]
        id: String,
    }
    const SQL: &str = "UPDATE notifications SET claimed_by = $1, claimed_until = $2 \
        WHERE id IN (SELECT id FROM notifications WHERE status = 'queued' AND next_attempt_at <= $3 \
        AND (claimed_until IS NULL OR claimed_until <= $3) \
        ORDER BY next_attempt_at, id LIMIT $4 {lock}) RETURNING id";
    macro_rules! run {
        ($c:expr, $sql:expr) => {
            diesel::sql_query($sql)
                .bind::<Text, _>(owner)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<diesel::sql_types::BigInt, _>(limit)
                .load::<Claimed>($c)
        };
    }
    let rows = match conn {
        DbConnection::Sqlite(c) => run!(c, SQL.replace("{lock}", "").replace('$', "?")),
        DbConnection::Pg(c) => run!(c, SQL.replace("{lock}", "FOR UPDATE SKIP LOCKED")),
    }?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// One appointment an email speaks of.
#[derive(Debug, Clone, PartialEq)]
pub struct Care {
    pub appointment_id: String,
    pub service: String,
    pub service_phone: Option<String>,
    pub kind: Kind,
    pub label: String,
    pub original_scheduled_at: chrono::NaiveDateTime,
    /// The day a committed plan proposes.
    pub proposed_at: Option<chrono::NaiveDate>,
    /// The date the email offers to keep: that day at the original time of day (Brussels),
    /// or, once the email has its answer link, the date the link keeps (an email sent again
    /// after a new plan says what its link does).
    pub offered: Option<chrono::NaiveDateTime>,
    /// The secret of the answer link the email carries for this appointment (`db::answers`).
    pub link: Option<String>,
}

/// When the answer links of a batch of emails are made, and when they expire.
#[derive(Debug, Clone, Copy)]
pub struct LinkTerms {
    pub now: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
}

/// Whether emails of this template carry answer links: those that ask the patient about a
/// date (`site_reopened`, `appointment_rescheduled`).
pub fn carries_links(template: Template) -> bool {
    matches!(
        template,
        Template::SiteReopened | Template::AppointmentRescheduled
    )
}

/// A claimed notification with everything its email says.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    pub template: Template,
    pub language: Language,
    pub to_address: String,
    pub attempts: i32,
    pub first_name: String,
    pub last_name: String,
    pub site: Option<String>,
    /// The date the email is about: the original one when postponed, the new one when
    /// rescheduled.
    pub scheduled_for: Option<chrono::NaiveDateTime>,
    /// The appointment of a postponed or rescheduled email; every appointment still to rebook
    /// at the site for a `site_reopened` one.
    pub care: Vec<Care>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::appointments)]
struct CareRow {
    id: String,
    patient_id: String,
    site_code: String,
    #[diesel(select_expression = super::schema::services::name)]
    service: String,
    #[diesel(select_expression = super::schema::services::secretariat_phone)]
    service_phone: Option<String>,
    kind: Kind,
    label: String,
    original_scheduled_at: chrono::NaiveDateTime,
    proposed_at: Option<chrono::NaiveDate>,
}

impl From<CareRow> for Care {
    fn from(r: CareRow) -> Self {
        Care {
            appointment_id: r.id,
            service: r.service,
            service_phone: r.service_phone,
            kind: r.kind,
            label: r.label,
            original_scheduled_at: r.original_scheduled_at,
            offered: r
                .proposed_at
                .and_then(|day| crate::domain::answer::same_time_on(day, r.original_scheduled_at)),
            proposed_at: r.proposed_at,
            link: None,
        }
    }
}

/// The appointments of postponed and rescheduled emails, by id.
fn care_by_id(conn: &mut DbConnection, ids: Vec<String>) -> QueryResult<Vec<CareRow>> {
    use super::schema::{appointments as a, services as s};
    per_backend!(conn, |c| a::table
        .inner_join(s::table)
        .filter(a::id.eq_any(ids))
        .select(CareRow::as_select())
        .load::<CareRow>(c))
}

/// The appointments still to rebook of these patients at these sites, for `site_reopened`.
fn care_to_rebook(
    conn: &mut DbConnection,
    patients: Vec<String>,
    sites: Vec<String>,
) -> QueryResult<Vec<CareRow>> {
    use super::schema::{appointments as a, services as s};
    per_backend!(conn, |c| a::table
        .inner_join(s::table)
        .filter(a::patient_id.eq_any(patients))
        .filter(a::site_code.eq_any(sites))
        .filter(a::status.eq(Status::Postponed))
        .filter(a::reached_at.is_null())
        .select(CareRow::as_select())
        .order((a::original_scheduled_at, a::id))
        .load::<CareRow>(c))
}

#[derive(Queryable)]
struct Head {
    id: String,
    template: Template,
    language: Language,
    to_address: String,
    attempts: i32,
    first_name: String,
    last_name: String,
    site_code: Option<String>,
    site: Option<String>,
    scheduled_for: Option<chrono::NaiveDateTime>,
    appointment_id: Option<String>,
    patient_id: String,
}

/// The emails of claimed notifications, in the order of `ids`; with `links`, each appointment
/// of a `site_reopened` or `appointment_rescheduled` email gets its answer link.
pub fn outgoing(
    conn: &mut DbConnection,
    ids: &[String],
    links: Option<LinkTerms>,
) -> QueryResult<Vec<Outgoing>> {
    use super::schema::{patients as p, sites as s};
    let heads: Vec<Head> = per_backend!(&mut *conn, |c| notifications::table
        .inner_join(p::table)
        .left_join(s::table.on(notifications::site_code.eq(s::code.nullable())))
        .filter(notifications::id.eq_any(ids))
        .select((
            notifications::id,
            notifications::template,
            notifications::language,
            notifications::to_address,
            notifications::attempts,
            p::first_name,
            p::last_name,
            notifications::site_code,
            s::name.nullable(),
            notifications::scheduled_for,
            notifications::appointment_id,
            notifications::patient_id,
        ))
        .load(c))?;
    let by_id: HashMap<String, Care> = care_by_id(
        conn,
        heads
            .iter()
            .filter_map(|h| h.appointment_id.clone())
            .collect(),
    )?
    .into_iter()
    .map(|r| (r.id.clone(), Care::from(r)))
    .collect();
    // site_reopened: the patient's appointments still to rebook at the site.
    let reopened: Vec<&Head> = heads
        .iter()
        .filter(|h| h.appointment_id.is_none())
        .collect();
    let to_rebook = if reopened.is_empty() {
        Vec::new()
    } else {
        care_to_rebook(
            conn,
            reopened.iter().map(|h| h.patient_id.clone()).collect(),
            reopened
                .iter()
                .filter_map(|h| h.site_code.clone())
                .collect(),
        )?
    };
    let mut heads: HashMap<String, Head> = heads.into_iter().map(|h| (h.id.clone(), h)).collect();
    let mut emails: Vec<Outgoing> = ids
        .iter()
        .filter_map(|id| heads.remove(id))
        .map(|h| {
            let care = match &h.appointment_id {
                Some(a) => by_id.get(a).cloned().into_iter().collect(),
                None => to_rebook
                    .iter()
                    .filter(|r| {
                        r.patient_id == h.patient_id && Some(&r.site_code) == h.site_code.as_ref()
                    })
                    .cloned()
                    .map(Care::from)
                    .collect(),
            };
            Outgoing {
                id: h.id,
                template: h.template,
                language: h.language,
                to_address: h.to_address,
                attempts: h.attempts,
                first_name: h.first_name,
                last_name: h.last_name,
                site: h.site,
                scheduled_for: h.scheduled_for,
                care,
            }
        })
        .collect();
    if let Some(terms) = links {
        let wanted: Vec<super::answers::Wanted> = emails
            .iter()
            .filter(|n| carries_links(n.template))
            .flat_map(|n| {
                n.care.iter().map(|c| super::answers::Wanted {
                    notification_id: n.id.clone(),
                    appointment_id: c.appointment_id.clone(),
                    proposed_for: c.offered,
                })
            })
            .collect();
        let mut made = super::answers::ensure(conn, &wanted, terms.now, terms.expires_at)?;
        for n in emails.iter_mut() {
            for c in n.care.iter_mut() {
                if let Some(made) = made.remove(&(n.id.clone(), c.appointment_id.clone())) {
                    c.link = Some(made.token);
                    c.offered = made.offered;
                }
            }
        }
    }
    Ok(emails)
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent,
    /// A temporary failure: try again at this time.
    Retry {
        at: chrono::NaiveDateTime,
        error: String,
    },
    /// A permanent failure, or too many temporary ones.
    Failed {
        error: String,
    },
}

/// Records an attempt on a notification this worker still holds; false when it no longer
/// does (its lease ran out and another worker took it, or it was superseded).
pub fn record(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    delivery: &Delivery,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    use notifications::dsl as n;
    let held = n::notifications
        .filter(n::id.eq(id))
        .filter(n::claimed_by.eq(owner))
        .filter(n::status.eq(NotificationStatus::Queued));
    let attempts = n::attempts.eq(n::attempts + 1);
    let released = (
        n::claimed_by.eq(None::<String>),
        n::claimed_until.eq(None::<chrono::NaiveDateTime>),
    );
    let changed = per_backend!(conn, |c| match delivery {
        Delivery::Sent => diesel::update(held)
            .set((
                n::status.eq(NotificationStatus::Sent),
                n::sent_at.eq(Some(now)),
                attempts,
                released,
                n::last_error.eq(None::<String>),
            ))
            .execute(c),
        Delivery::Retry { at, error } => diesel::update(held)
            .set((
                n::next_attempt_at.eq(*at),
                n::last_error.eq(Some(error.as_str())),
                attempts,
                released,
            ))
            .execute(c),
        Delivery::Failed { error } => diesel::update(held)
            .set((
                n::status.eq(NotificationStatus::Failed),
                n::last_error.eq(Some(error.as_str())),
                attempts,
                released,
            ))
            .execute(c),
    })?;
    Ok(changed == 1)
}

/// Records many sent emails at once (one statement); returns how many this worker still held.
/// Unlike [`record`], it does not ask for `status = 'queued'`: an email superseded while it was
/// being sent did go out, and is recorded so. (The status condition would also lead SQLite's
/// planner to the status index, a scan of the whole queue, instead of the primary key.)
pub fn record_sent(
    conn: &mut DbConnection,
    ids: &[String],
    owner: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    use notifications::dsl as n;
    let held = n::notifications
        .filter(n::id.eq_any(ids))
        .filter(n::claimed_by.eq(owner));
    per_backend!(conn, |c| diesel::update(held)
        .set((
            n::status.eq(NotificationStatus::Sent),
            n::sent_at.eq(Some(now)),
            n::attempts.eq(n::attempts + 1),
            n::claimed_by.eq(None::<String>),
            n::claimed_until.eq(None::<chrono::NaiveDateTime>),
            n::last_error.eq(None::<String>),
        ))
        .execute(c))
}

/// Gives back every claim of `owner` on notifications still queued: due again at once.
pub fn release(conn: &mut DbConnection, owner: &str) -> QueryResult<usize> {
    use notifications::dsl as n;
    let held = n::notifications
        .filter(n::claimed_by.eq(owner))
        .filter(n::status.eq(NotificationStatus::Queued));
    per_backend!(conn, |c| diesel::update(held)
        .set((
            n::claimed_by.eq(None::<String>),
            n::claimed_until.eq(None::<chrono::NaiveDateTime>),
        ))
        .execute(c))
}

/// Notifications by status, and when the oldest queued one was queued.
pub type Census = (Vec<(String, i64)>, Option<chrono::NaiveDateTime>);

/// The outbox at a glance, for `/metrics`.
pub fn census(conn: &mut DbConnection) -> QueryResult<Census> {
    use notifications::dsl as n;
    per_backend!(conn, |c| {
        let by_status = n::notifications
            .group_by(n::status)
            .select((n::status, diesel::dsl::count_star()))
            .load(c)?;
        let oldest = n::notifications
            .filter(n::status.eq(NotificationStatus::Queued))
            .select(diesel::dsl::min(n::created_at))
            .first(c)?;
        Ok((by_status, oldest))
    })
}
