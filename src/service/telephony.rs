//! The telephone system (CONTRACT §4.9): PBX tokens, the call events a PBX pushes, and the
//! caller log built from them.

use crate::auth::{token_hash, Caller};
use crate::db::phone_calls::{PbxRow, PhoneCallFilter, PhoneCallRow};
use crate::db::{self, Db};
use crate::domain::cti::Event;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Makes a PBX token (stored as its hash, audited as `pbx_token.create`); returns the token,
/// to be shown once.
pub fn create_pbx_token(db: &Db, caller: Caller, name: String) -> AppResult<String> {
    let name =
        crate::domain::account::parse_name(&name).map_err(|e| AppError::validation("name", e.0))?;
    let (token, hash) = crate::tokens::new_token();
    db.write_blocking(move |conn| {
        let row = PbxRow {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            token_hash: hash,
            created_at: crate::domain::now(),
            revoked_at: None,
        };
        db::phone_calls::insert_pbx(conn, &row)?;
        crate::audit::record(
            conn,
            &caller,
            "pbx_token.create",
            Some(&format!("pbx:{}", row.id)),
            serde_json::json!({}),
        )?;
        Ok::<_, AppError>(())
    })?;
    Ok(token)
}

/// Records a PBX's event in one short write (the PBX waits for the answer while the phone
/// rings), with the callback a missed call opens: false, and nothing written, when no live
/// PBX token is `token`.
pub async fn receive(state: &AppState, token: &str, event: Event) -> AppResult<bool> {
    let hash = token_hash(token);
    let now = crate::domain::now();
    state
        .db
        .write(move |conn| {
            let Some(pbx) = db::phone_calls::pbx_by_token_hash(conn, &hash)? else {
                return Ok(false);
            };
            let agent = db::phone_calls::account_of_extension(conn, &event.answered_by)?;
            let call = db::phone_calls::record(conn, &pbx, &event, agent, now)?;
            // In the same write: a missed call opens (or joins) its number's callback.
            super::callbacks::after_pbx_event(conn, &call, now)?;
            Ok(true)
        })
        .await
}

/// A PBX call with the patients whose phone is its caller's number.
#[derive(Debug, Clone)]
pub struct Listed {
    pub call: PhoneCallRow,
    pub patient_ids: Vec<String>,
}

/// The caller log, newest first (audited as `phone_call.list`: it holds callers' numbers).
pub async fn list(
    state: &AppState,
    caller: Caller,
    filter: PhoneCallFilter,
    fetch: i64,
) -> AppResult<Vec<Listed>> {
    state
        .db
        .write(move |conn| {
            let rows = db::phone_calls::list(conn, &filter, fetch)?;
            let numbers: Vec<String> = rows.iter().map(|r| r.from_number.clone()).collect();
            let matches = db::phone_calls::patients_with_phones(conn, &numbers)?;
            crate::audit::record(
                conn,
                &caller,
                "phone_call.list",
                None,
                serde_json::json!({ "missed": filter.missed, "rows": rows.len() }),
            )?;
            Ok(rows
                .into_iter()
                .map(|call| Listed {
                    patient_ids: matches
                        .iter()
                        .filter(|m| m.phone.as_deref() == Some(call.from_number.as_str()))
                        .map(|m| m.patient_id.clone())
                        .collect(),
                    call,
                })
                .collect())
        })
        .await
}

/// Whether a live PBX holds this token (to tell a bad event from an unknown token).
pub async fn is_pbx_token(state: &AppState, token: &str) -> AppResult<bool> {
    let hash = token_hash(token);
    state
        .db
        .read(move |conn| Ok(db::phone_calls::pbx_by_token_hash(conn, &hash)?.is_some()))
        .await
}
