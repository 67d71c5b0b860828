//! Sessions of the web pages: a cookie's SHA-256, its account, the CSRF secret of its forms,
//! the language of its pages, and when it ends.

use diesel::prelude::*;

use super::schema::{users, web_sessions};
use super::users::{with_services, Account, UserRow};
use super::DbConnection;
use crate::domain::patient::Language;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = web_sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub csrf: String,
    pub language: Language,
    pub created_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
    /// The last request of the session, as written at most once a minute ([`touch`]).
    pub last_seen_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(web_sessions::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The session of this cookie hash and its live account, unless it has expired, has seen no
/// request since `idle_since`, or its account's token has expired.
pub fn find(
    conn: &mut DbConnection,
    id: &str,
    now: chrono::NaiveDateTime,
    idle_since: chrono::NaiveDateTime,
) -> QueryResult<Option<(SessionRow, Account)>> {
    let found: Option<(SessionRow, UserRow)> = web_sessions::table
        .inner_join(users::table)
        .filter(web_sessions::id.eq(id))
        .filter(web_sessions::expires_at.gt(now))
        .filter(web_sessions::last_seen_at.gt(idle_since))
        .filter(users::deleted_at.is_null())
        .filter(users::expires_at.is_null().or(users::expires_at.gt(now)))
        .select((SessionRow::as_select(), UserRow::as_select()))
        .first(conn)
        .optional()?;
    let Some((session, user)) = found else {
        return Ok(None);
    };
    Ok(with_services(conn, Some(user))?.map(|account| (session, account)))
}

/// How stale `last_seen_at` may be before a request writes it again.
pub const SEEN_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// Notes a request of the session at `now`.
pub fn touch(conn: &mut DbConnection, id: &str, now: chrono::NaiveDateTime) -> QueryResult<()> {
    diesel::update(web_sessions::table.filter(web_sessions::id.eq(id)))
        .set(web_sessions::last_seen_at.eq(now))
        .execute(conn)
        .map(drop)
}

pub fn set_language(conn: &mut DbConnection, id: &str, language: Language) -> QueryResult<()> {
    diesel::update(web_sessions::table.filter(web_sessions::id.eq(id)))
        .set(web_sessions::language.eq(language))
        .execute(conn)
        .map(drop)
}

/// Ends a session (sign-out); whether there was one.
pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(web_sessions::table.filter(web_sessions::id.eq(id)))
        .execute(conn)
        .map(|n| n > 0)
}

/// Removes sessions that ended before `now` or were idle since `idle_since`; run at each
/// sign-in, so the table stays small.
pub fn purge_expired(
    conn: &mut DbConnection,
    now: chrono::NaiveDateTime,
    idle_since: chrono::NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        web_sessions::table.filter(
            web_sessions::expires_at
                .le(now)
                .or(web_sessions::last_seen_at.le(idle_since)),
        ),
    )
    .execute(conn)
}
