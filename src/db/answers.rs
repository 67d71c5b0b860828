//! Answer links (`domain::answer`): one link per email and appointment, stored under the
//! SHA-256 of its secret, and what a link's page reads and writes.

use std::collections::HashMap;

use diesel::prelude::*;

use super::appointments::AppointmentRow;
use super::schema::{answer_links, appointments, notifications, services, sites};
use super::DbConnection;
use crate::domain::answer::{Answer, Email, Situation};
use crate::domain::notification::Template;
use crate::domain::patient::Language;
use crate::domain::site::SiteStatus;

/// Stores the hash of every link of v1 still in use, computed from the key that signed it: the
/// configured one if the service had `REPRISE_ANSWER_LINK_KEY`, else the one in `link_keys`
/// (made at the first start). Runs once, in the migration step before `link_keys` is dropped;
/// returns how many links it kept. Without a key no link of v1 was ever sent.
pub fn rehash(
    conn: &mut DbConnection,
    configured: Option<&[u8]>,
    now: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        secret: String,
    }
    let key = match configured {
        Some(key) => Some(key.to_vec()),
        None => diesel::sql_query("SELECT secret FROM link_keys WHERE name = 'answer_links'")
            .load::<Key>(conn)?
            .into_iter()
            .next()
            .and_then(|k| hex::decode(k.secret).ok()),
    };
    let Some(key) = key else { return Ok(0) };
    let ids: Vec<String> = answer_links::table
        .filter(answer_links::token_hash.is_null())
        .filter(answer_links::expires_at.gt(now))
        .select(answer_links::id)
        .load(conn)?;
    let mut kept = 0;
    for id in ids {
        let Some(hash) = crate::domain::answer::legacy_token(&key, &id)
            .as_deref()
            .and_then(crate::domain::answer::link_token_hash)
        else {
            continue;
        };
        kept += diesel::update(answer_links::table.find(&id))
            .set(answer_links::token_hash.eq(hash))
            .execute(conn)?;
    }
    Ok(kept)
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
    token_hash: String,
}

/// One link to make: the email, the appointment, and the date the email offers to keep.
pub struct Wanted {
    pub notification_id: String,
    pub appointment_id: String,
    pub proposed_for: Option<chrono::NaiveDateTime>,
}

/// A link ready for its email: the secret of its URL and the date it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub token: String,
    pub offered: Option<chrono::NaiveDateTime>,
}

/// The link of each wanted `(notification, appointment)`, with a fresh secret, and the date it
/// keeps. A link made for an earlier try of the same email (a retry after a failure) keeps its
/// row, its first expiry and its date, and gets the new secret: only the hash of a secret is
/// stored, so the one of the first try cannot be written again, and an email that never
/// arrived leaves no working link behind.
pub fn ensure(
    conn: &mut DbConnection,
    wanted: &[Wanted],
    now: chrono::NaiveDateTime,
    expires_at: chrono::NaiveDateTime,
) -> QueryResult<HashMap<(String, String), Made>> {
    use diesel::upsert::excluded;
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let tokens: Vec<String> = wanted
        .iter()
        .map(|_| crate::domain::answer::new_link_token())
        .collect();
    let rows: Vec<NewLink<'_>> = wanted
        .iter()
        .zip(&tokens)
        .map(|(w, token)| NewLink {
            id: uuid::Uuid::new_v4().simple().to_string(),
            notification_id: &w.notification_id,
            appointment_id: &w.appointment_id,
            created_at: now,
            expires_at,
            proposed_for: w.proposed_for,
            token_hash: crate::domain::answer::link_token_hash(token)
                .expect("a fresh token has the shape of one"),
        })
        .collect();
    let conflict = (answer_links::notification_id, answer_links::appointment_id);
    let rehash = answer_links::token_hash.eq(excluded(answer_links::token_hash));
    match &mut *conn {
        // Diesel writes no multi-row upsert for SQLite; one prepared statement per row on the
        // single writer costs microseconds.
        DbConnection::Sqlite(c) => {
            for row in &rows {
                diesel::insert_into(answer_links::table)
                    .values(row)
                    .on_conflict(conflict)
                    .do_update()
                    .set(rehash)
                    .execute(c)?;
            }
        }
        DbConnection::Pg(c) => {
            for chunk in rows.chunks(1000) {
                diesel::insert_into(answer_links::table)
                    .values(chunk)
                    .on_conflict(conflict)
                    .do_update()
                    .set(rehash)
                    .execute(c)?;
            }
        }
    }
    let mut notifications: Vec<&str> = wanted.iter().map(|w| w.notification_id.as_str()).collect();
    notifications.dedup();
    let offered: HashMap<(String, String), Option<chrono::NaiveDateTime>> = answer_links::table
        .filter(answer_links::notification_id.eq_any(notifications))
        .select((
            answer_links::notification_id,
            answer_links::appointment_id,
            answer_links::proposed_for,
        ))
        .load::<(String, String, Option<chrono::NaiveDateTime>)>(conn)?
        .into_iter()
        .map(|(n, a, offered)| ((n, a), offered))
        .collect();
    Ok(wanted
        .iter()
        .zip(tokens)
        .map(|(w, token)| {
            let key = (w.notification_id.clone(), w.appointment_id.clone());
            let offered = offered.get(&key).copied().flatten();
            (key, Made { token, offered })
        })
        .collect())
}

/// A link with the email it came in and its appointment as it is now.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: String,
    pub expires_at: chrono::NaiveDateTime,
    pub proposed_for: Option<chrono::NaiveDateTime>,
    pub used_at: Option<chrono::NaiveDateTime>,
    pub answer: Option<Answer>,
    pub template: Template,
    /// The date the email spoke of (a rescheduled email's new date).
    pub email_date: Option<chrono::NaiveDateTime>,
    /// The patient's language when the email was queued.
    pub language: Language,
    pub appointment: AppointmentRow,
    pub service: String,
    pub service_phone: Option<String>,
    pub site: String,
    pub site_status: SiteStatus,
}

type FoundRow = (
    (
        String,
        chrono::NaiveDateTime,
        Option<chrono::NaiveDateTime>,
        Option<chrono::NaiveDateTime>,
        Option<Answer>,
    ),
    (Template, Option<chrono::NaiveDateTime>, Language),
    AppointmentRow,
    (String, Option<String>, String, SiteStatus),
);

impl Found {
    /// The link's appointment as `domain::answer` judges it; `None` when the row holds what
    /// no email of links speaks of.
    pub fn situation(&self) -> Option<Situation> {
        let email = match self.template {
            Template::SiteReopened => Email::SiteReopened,
            Template::AppointmentRescheduled => Email::Rescheduled(self.email_date?),
            Template::AppointmentPostponed => return None,
        };
        let used = self.answer.zip(self.used_at);
        Some(Situation {
            email,
            status: self.appointment.status,
            scheduled_at: self.appointment.scheduled_at,
            original_scheduled_at: self.appointment.original_scheduled_at,
            proposed_at: self.appointment.proposed_at,
            offered: self.proposed_for,
            site_open: self.site_status == SiteStatus::Open,
            expires_at: self.expires_at,
            used,
        })
    }
}

/// The link whose secret has this hash (`domain::answer::link_token_hash`).
pub fn find(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<Found>> {
    let row: Option<FoundRow> = answer_links::table
        .inner_join(notifications::table)
        .inner_join(
            appointments::table
                .inner_join(services::table)
                .inner_join(sites::table),
        )
        .filter(answer_links::token_hash.eq(token_hash))
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
    answer: Answer,
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
