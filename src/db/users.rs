//! Accounts and the services secretaries are bound to.

use diesel::prelude::*;

use super::schema::{services, user_services, users, web_sessions};
use super::DbConnection;
use crate::domain::{Role, ServiceCode};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: chrono::NaiveDateTime,
    pub expires_at: Option<chrono::NaiveDateTime>,
    pub last_used_at: Option<chrono::NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_default_value = false)]
struct NewUserRow<'a> {
    id: &'a str,
    name: &'a str,
    role: Role,
    token_hash: Option<&'a str>,
    created_at: chrono::NaiveDateTime,
    expires_at: Option<chrono::NaiveDateTime>,
    extension: Option<&'a str>,
}

/// An account as the rest of the crate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub services: Vec<String>,
    pub created_at: chrono::NaiveDateTime,
    /// When its token stops working; `None`: when the account is deleted.
    pub expires_at: Option<chrono::NaiveDateTime>,
    /// When its token was last used (written at most once a minute, [`touch`]).
    pub last_used_at: Option<chrono::NaiveDateTime>,
}

impl Account {
    /// Whether its token still works at `now`.
    pub fn is_live_at(&self, now: chrono::NaiveDateTime) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

fn account(row: UserRow, services: Vec<String>) -> QueryResult<Account> {
    Ok(Account {
        role: row.role,
        id: row.id,
        name: row.name,
        services,
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    })
}

/// The service codes among `codes` that do not exist.
pub fn unknown_services(
    conn: &mut DbConnection,
    codes: &[ServiceCode],
) -> QueryResult<Vec<String>> {
    let wanted: Vec<&str> = codes.iter().map(ServiceCode::as_str).collect();
    let found: Vec<String> = services::table
        .filter(services::code.eq_any(&wanted))
        .select(services::code)
        .load(conn)?;
    Ok(wanted
        .into_iter()
        .filter(|c| !found.iter().any(|f| f == c))
        .map(str::to_string)
        .collect())
}

/// An account to write, its token already hashed.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub services: &'a [ServiceCode],
    pub token_hash: &'a str,
    pub expires_at: Option<chrono::NaiveDateTime>,
    pub extension: Option<&'a str>,
}

pub fn insert(
    conn: &mut DbConnection,
    new: &NewUser<'_>,
    now: chrono::NaiveDateTime,
) -> QueryResult<Account> {
    let NewUser {
        id,
        name,
        role,
        services: service_codes,
        token_hash,
        expires_at,
        extension,
    } = *new;
    diesel::insert_into(users::table)
        .values(NewUserRow {
            id,
            name,
            role,
            token_hash: Some(token_hash),
            created_at: now,
            expires_at,
            extension,
        })
        .execute(conn)?;
    for code in service_codes {
        diesel::insert_into(user_services::table)
            .values((
                user_services::user_id.eq(id),
                user_services::service_code.eq(code.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(Account {
        id: id.to_string(),
        name: name.to_string(),
        role,
        services: service_codes.iter().map(|c| c.to_string()).collect(),
        created_at: now,
        expires_at,
        last_used_at: None,
    })
}

/// The live account holding this token hash, if any: not deleted, not expired at `now`.
/// On every request: typed per backend so that its prepared statement is cached.
pub fn find_by_token_hash(
    conn: &mut DbConnection,
    hash: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<Option<Account>> {
    let row: Option<UserRow> = per_backend!(&mut *conn, |c| users::table
        .filter(users::token_hash.eq(hash))
        .filter(users::deleted_at.is_null())
        .filter(users::expires_at.is_null().or(users::expires_at.gt(now)))
        .select(UserRow::as_select())
        .first(c)
        .optional())?;
    with_services(conn, row)
}

/// How stale `last_used_at` may be before a use writes it again.
pub const LAST_USED_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// Notes that the account's token was used at `now`, unless that was noted less than
/// [`LAST_USED_EVERY`] ago (by this process or another).
pub fn touch(conn: &mut DbConnection, id: &str, now: chrono::NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        users::table.filter(users::id.eq(id)).filter(
            users::last_used_at
                .is_null()
                .or(users::last_used_at.le(now - LAST_USED_EVERY)),
        ),
    )
    .set(users::last_used_at.eq(Some(now)))
    .execute(conn)
    .map(drop)
}

/// The account of a live user row, with its services.
pub fn with_services(
    conn: &mut DbConnection,
    row: Option<UserRow>,
) -> QueryResult<Option<Account>> {
    match row {
        None => Ok(None),
        Some(row) => {
            // `=` rather than `IN (…)`: a cached statement, for every request.
            let services = per_backend!(&mut *conn, |c| user_services::table
                .filter(user_services::user_id.eq(&row.id))
                .select(user_services::service_code)
                .order(user_services::service_code)
                .load(c))?;
            account(row, services).map(Some)
        }
    }
}

fn services_of(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    per_backend!(conn, |c| user_services::table
        .filter(user_services::user_id.eq_any(ids))
        .select((user_services::user_id, user_services::service_code))
        .order((user_services::user_id, user_services::service_code))
        .load(c))
}

/// Live accounts in creation order (ids are UUIDv7), after the cursor id.
pub fn list(conn: &mut DbConnection, after: Option<&str>, limit: i64) -> QueryResult<Vec<Account>> {
    let mut query = users::table
        .filter(users::deleted_at.is_null())
        .select(UserRow::as_select())
        .order(users::id)
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::id.gt(after.to_string()));
    }
    let rows: Vec<UserRow> = query.load(conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let links = services_of(conn, &ids)?;
    rows.into_iter()
        .map(|row| {
            let services = links
                .iter()
                .filter(|(user, _)| *user == row.id)
                .map(|(_, code)| code.clone())
                .collect();
            account(row, services)
        })
        .collect()
}

pub fn find_live(conn: &mut DbConnection, id: &str) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::id.eq(id))
        .filter(users::deleted_at.is_null())
        .select(UserRow::as_select())
        .first(conn)
        .optional()
}

pub fn count_live_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::deleted_at.is_null())
        .filter(users::role.eq(Role::Admin))
        .count()
        .get_result(conn)
}

/// Marks the account deleted and forgets its token hash, so the token fails at once. The row
/// stays: the audit log refers to it.
pub fn soft_delete(
    conn: &mut DbConnection,
    id: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(
        users::table
            .filter(users::id.eq(id))
            .filter(users::deleted_at.is_null()),
    )
    .set((
        users::deleted_at.eq(Some(now)),
        users::token_hash.eq(None::<String>),
    ))
    .execute(conn)?;
    // Its web sessions end with it (the lookup also ignores deleted accounts).
    diesel::delete(web_sessions::table.filter(web_sessions::user_id.eq(id))).execute(conn)?;
    Ok(n == 1)
}
