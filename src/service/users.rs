//! Accounts: creating one with its token (the API's `POST /users`, the command line's
//! `token create`, the tests' fixtures).

use crate::auth::{new_token, Caller};
use crate::db::{self, DbConnection};
use crate::domain::account::NewAccount;
use crate::error::{AppError, FieldError};

/// An account just created, with its token (shown this once).
#[derive(Debug)]
pub struct CreatedAccount {
    pub account: db::users::Account,
    pub token: String,
}

/// Creates an account and its audit entry, inside the caller's transaction.
pub fn create_account(
    conn: &mut DbConnection,
    actor: &Caller,
    new: NewAccount,
) -> Result<CreatedAccount, AppError> {
    let unknown = db::users::unknown_services(conn, &new.services)?;
    if !unknown.is_empty() {
        return Err(AppError::Validation(
            unknown
                .into_iter()
                .map(|code| FieldError::new("services", format!("unknown service {code}")))
                .collect(),
        ));
    }
    // The telephone system names one person by an extension: two would make its calls ambiguous.
    if let Some(extension) = &new.extension {
        if db::phone_calls::account_of_extension(conn, std::slice::from_ref(extension))?.is_some() {
            return Err(AppError::Conflict(format!(
                "extension {extension} belongs to another account"
            )));
        }
    }
    let (token, hash) = new_token();
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::domain::now();
    let account = db::users::insert(
        conn,
        &db::users::NewUser {
            id: &id,
            name: &new.name,
            role: new.role,
            services: &new.services,
            token_hash: &hash,
            expires_at: new
                .expires_in_days
                .map(|days| now + chrono::Duration::days(i64::from(days))),
            extension: new.extension.as_deref(),
        },
        now,
    )?;
    crate::audit::record(
        conn,
        actor,
        "user.create",
        Some(&format!("user:{id}")),
        serde_json::json!({
            "role": new.role.as_str(),
            "services": account.services,
            "expires_at": account.expires_at.map(crate::domain::time::utc),
        }),
    )?;
    Ok(CreatedAccount { account, token })
}
