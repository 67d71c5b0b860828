//! Answer links (`domain::answer`): the key that signs them, one link per email and
//! appointment, and what a link's page reads and writes.

use std::collections::HashMap;

use diesel::prelude::*;

use super::appointments::AppointmentRow;
use super::schema::{answer_links, appointments, link_keys, notifications, services, sites};
use super::DbConnection;
use crate::domain::answer::{Answer, Email, Situation};
use crate::domain::appointment::Status;

const KEY_NAME: &str = "answer_links";

/// The key that signs answer links (hex), made on first use. Every process on the database
/// reads the same one: the first insert wins, the others find it.
pub fn signing_key(conn: &mut DbConnection) -> QueryResult<String> {
    let mut fresh = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
    let row = (
        link_keys::name.eq(KEY_NAME),
        link_keys::secret.eq(hex::encode(fresh)),
        link_keys::created_at.eq(crate::domain::now()),
    );
    per_backend!(&mut *conn, |c| diesel::insert_into(link_keys::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(c))?;
    link_keys::table
        .find(KEY_NAME)
        .select(link_keys::secret)
        .first(conn)
}

#[derive(Insertable)]
#[diesel(table_name = answer_links)]
struct NewLink<'a> {
    id: String,
    notification_id: &'a str,
    appointment_id: &'a str,
    created_at: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
    proposed_for: Option<chrono::NaiveDateTime>,
}

/// One link to make: the email, the appointment, and the date the email offers to keep.
pub struct Wanted {
    pub notification_id: String,
    pub appointment_id: String,
    pub proposed_for: Option<chrono::NaiveDateTime>,
}

/// A link made (or found): its id and the date it keeps.
pub type Made = (String, Option<chrono::NaiveDateTime>);

/// The link of each wanted `(notification, appointment)` and the date it keeps, made if it
/// does not exist yet: an email sent again after a failure carries the same links, with their
/// first expiry and date.
pub fn ensure(
    conn: &mut DbConnection,
    wanted: &[Wanted],
    now: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
) -> QueryResult<HashMap<(String, String), Made>> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<NewLink<'_>> = wanted
        .iter()
        .map(|w| NewLink {
            id: crate::domain::answer::Signer::new_id(),
            notification_id: &w.notification_id,
            appointment_id: &w.appointment_id,
            created_at: now,
            expires_at,
            proposed_for: w.proposed_for,
        })
        .collect();
    match &mut *conn {
        // Diesel writes no multi-row insert with ON CONFLICT for SQLite; one prepared
        // statement per row on the single writer costs microseconds.
        DbConnection::Sqlite(c) => {
            for row in &rows {
                diesel::insert_into(answer_links::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
        }
        DbConnection::Pg(c) => {
            for chunk in rows.chunks(1000) {
                diesel::insert_into(answer_links::table)
                    .values(chunk)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
        }
    }
    let mut notifications: Vec<&str> = wanted.iter().map(|w| w.notification_id.as_str()).collect();
    notifications.dedup();
    type Row = (String, String, String, Option<chrono::NaiveDateTime>);
    let found: Vec<Row> = answer_links::table
        .filter(answer_links::notification_id.eq_any(notifications))
        .select((
            answer_links::notification_id,
            answer_links::appointment_id,
            answer_links::id,
            answer_links::proposed_for,
        ))
        .load(conn)?;
    Ok(found
        .into_iter()
        .map(|(n, a, id, offered)| ((n, a), (id, offered)))
        .collect())
}

/// A link with the email it came in and its appointment as it is now.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub expires_at: chrono::NaiveDateTime,
    pub proposed_for: Option<chrono::NaiveDateTime>,
    pub used_at: Option<chrono::NaiveDateTime>,
    pub answer: Option<String>,
    pub template: String,
    /// The date the email spoke of (a rescheduled email's new date).
    pub email_date: Option<chrono::NaiveDateTime>,
    /// The patient's language when the email was queued.
    pub language: String,
    pub appointment: AppointmentRow,
    pub service: String,
    pub service_phone: Option<String>,
    pub site: String,
    pub site_status: String,
}

type FoundRow = (
    (
        String,
        chrono::NaiveDateTime,
        Option<chrono::NaiveDateTime>,
        Option<chrono::NaiveDateTime>,
        Option<String>,
    ),
    (String, Option<chrono::NaiveDateTime>, String),
    AppointmentRow,
    (String, Option<String>, String, String),
);

impl Found {
    /// The link's appointment as `domain::answer` judges it; `None` when the row holds what
    /// no email of links speaks of.
    pub fn situation(&self) -> Option<Situation> {
        let email = match self.template.as_str() {
            "site_reopened" => Email::SiteReopened,
            "appointment_rescheduled" => Email::Rescheduled(self.email_date?),
            _ => return None,
        };
        let used = match (&self.answer, self.used_at) {
            (Some(answer), Some(at)) => Some((Answer::parse(answer).ok()?, at)),
            _ => None,
        };
        Some(Situation {
            email,
            status: Status::parse(&self.appointment.status).ok()?,
            scheduled_at: self.appointment.scheduled_at,
            original_scheduled_at: self.appointment.original_scheduled_at,
            proposed_at: self.appointment.proposed_at,
            offered: self.proposed_for,
            site_open: self.site_status == "open",
            expires_at: self.expires_at,
            used,
        })
    }
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<Found>> {
    let row: Option<FoundRow> = answer_links::table
        .inner_join(notifications::table)
        .inner_join(
            appointments::table
                .inner_join(services::table)
                .inner_join(sites::table),
        )
        .filter(answer_links::id.eq(id))
        .select((
            (
                answer_links::id,
                answer_links::expires_at,
                answer_links::proposed_for,
                answer_links::used_at,
                answer_links::answer,
            ),
            (
                notifications::template,
                notifications::scheduled_for,
                notifications::language,
            ),
            AppointmentRow::as_select(),
            (
                services::name,
                services::secretariat_phone,
                sites::name,
                sites::status,
            ),
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(
        |(
            (id, expires_at, proposed_for, used_at, answer),
            (template, email_date, language),
            a,
            (service, service_phone, site, site_status),
        )| Found {
            id,
            expires_at,
            proposed_for,
            used_at,
            answer,
            template,
            email_date,
            language,
            appointment: a,
            service,
            service_phone,
            site,
            site_status,
        },
    ))
}

/// Uses the link up with `answer`; false if it was already used or has expired (a second
/// answer sent at the same moment finds it used).
pub fn use_up(
    conn: &mut DbConnection,
    id: &str,
    answer: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        answer_links::table
            .find(id)
            .filter(answer_links::used_at.is_null())
            .filter(answer_links::expires_at.gt(now)),
    )
    .set((
        answer_links::used_at.eq(Some(now)),
        answer_links::answer.eq(Some(answer)),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}
