//! The pages' sessions: signing in with a token.

use crate::auth::{token_hash, Caller, Origin};
use crate::db::{self, sessions::SessionRow};
use crate::error::AppResult;
use crate::state::AppState;

/// Opens `session` for the live account whose token this is, ending the browser's
/// `previous` session (the hash of its cookie) and purging expired ones, audited as
/// `auth.sign_in`; `None` (nothing written) for an unknown or expired token.
pub async fn sign_in(
    state: &AppState,
    token: String,
    session: SessionRow,
    previous: Option<String>,
    origin: Option<Origin>,
) -> AppResult<Option<Caller>> {
    let now = session.created_at;
    let idle_since = now - state.settings.session_idle;
    let hash = token_hash(&token);
    state
        .db
        .write(move |conn| {
            let Some(account) = db::users::find_by_token_hash(conn, &hash, now)? else {
                return Ok(None);
            };
            db::sessions::purge_expired(conn, now, idle_since)?;
            db::users::touch(conn, &account.id, now)?;
            if let Some(previous) = &previous {
                db::sessions::delete(conn, previous)?;
            }
            let language = session.language;
            db::sessions::insert(
                conn,
                &SessionRow {
                    user_id: account.id.clone(),
                    ..session
                },
            )?;
            let target = format!("user:{}", account.id);
            let caller = Caller::of(account, origin);
            crate::audit::record(
                conn,
                &caller,
                "auth.sign_in",
                Some(&target),
                serde_json::json!({ "language": language.as_str() }),
            )?;
            Ok(Some(caller))
        })
        .await
}
