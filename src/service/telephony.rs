//! The telephone system (CONTRACT §4.9): PBX tokens, the call events a PBX pushes, and the
//! caller log built from them.

use crate::auth::{token_hash, Caller};
use crate::db::phone_calls::{PbxRow, PhoneCallFilter, PhoneCallRow};
use crate::db::{self, Db};
use crate::domain::call::{local_series, Bucket};
use crate::domain::cti::{Event, EventKind};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use chrono::DurationRound;

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

/// The PBXs' tokens (their names and dates; the tokens themselves are not kept), oldest
/// first, after the id `after`.
pub async fn list_pbx_tokens(
    state: &AppState,
    after: Option<String>,
    fetch: i64,
) -> AppResult<Vec<PbxRow>> {
    state
        .db
        .read(move |conn| Ok(db::phone_calls::list_pbx(conn, after.as_deref(), fetch)?))
        .await
}

/// Revokes a PBX's token: its next event is refused as an unknown token (audited as
/// `pbx_token.revoke`).
pub async fn revoke_pbx_token(state: &AppState, caller: Caller, id: String) -> AppResult<()> {
    let now = crate::domain::now();
    state
        .db
        .write(move |conn| {
            if !db::phone_calls::revoke_pbx(conn, &id, now)? {
                return Err(AppError::NotFound("no such live PBX token".into()));
            }
            crate::audit::record(
                conn,
                &caller,
                "pbx_token.revoke",
                Some(&format!("pbx:{id}")),
                serde_json::json!({}),
            )?;
            Ok(())
        })
        .await
}

/// Records a PBX's event in one short write (the PBX waits for the answer while the phone
/// rings), with the callback a missed call opens: false, and nothing written, when no live
/// PBX token is `token`. Once an `answer` or
/// a `hangup` has committed, the pages of the agent who has the call are told (the screen
/// pop, `screen_pop::announce`: ids only, never waiting on a page).
pub async fn receive(state: &AppState, token: &str, event: Event) -> AppResult<bool> {
    let hash = token_hash(token);
    let now = crate::domain::now();
    let recorded = state
        .db
        .write(move |conn| {
            let Some(pbx) = db::phone_calls::pbx_by_token_hash(conn, &hash)? else {
                return Ok(None);
            };
            let agent = db::phone_calls::account_of_extension(conn, &event.answered_by)?;
            let call = db::phone_calls::record(conn, &pbx, &event, agent, now)?;
            // In the same write: a missed call opens (or joins) its number's callback.
            super::callbacks::after_pbx_event(conn, &call, now)?;
            let pops = matches!(event.kind, EventKind::Answer | EventKind::Hangup);
            let holder = pops.then(|| call.holder());
            Ok::<_, AppError>(Some(holder))
        })
        .await?;
    let Some(holder) = recorded else {
        return Ok(false);
    };
    if let Some(holder) = holder {
        super::screen_pop::announce(state, holder, now);
    }
    Ok(true)
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

/// The inbound calls the telephone system reported: how many rang, were answered and were
/// missed, the median wait before an answer, and the same per Brussels hour or day.
#[derive(Debug, Clone)]
pub struct Statistics {
    pub received: i64,
    pub answered: i64,
    pub missed: i64,
    pub median_wait_seconds: Option<f64>,
    pub series: Vec<SeriesPoint>,
}

#[derive(Debug, Clone)]
pub struct SeriesPoint {
    pub start: chrono::DateTime<chrono_tz::Tz>,
    pub received: i64,
    pub answered: i64,
    pub missed: i64,
}

/// [`Statistics`] of the inbound calls that started from `from` (default: the first) to `to`
/// (default: now).
pub async fn stats(
    state: &AppState,
    from: Option<chrono::NaiveDateTime>,
    to: Option<chrono::NaiveDateTime>,
    bucket: Bucket,
) -> AppResult<Statistics> {
    let end = to.unwrap_or_else(|| crate::domain::now() + chrono::Duration::seconds(1));
    let start = from.unwrap_or(chrono::DateTime::UNIX_EPOCH.naive_utc());
    // Too many buckets is refused before any row is read (a day is 23 to 25 hours).
    let span = match bucket {
        Bucket::Hour => (end - start).num_hours(),
        Bucket::Day => (end - start).num_hours() / 23,
    };
    if from.is_some() && span > crate::domain::call::MAX_BUCKETS as i64 + 1 {
        return Err(AppError::validation(
            "from",
            format!(
                "asks for more than {} buckets; narrow from and to, or use bucket=day",
                crate::domain::call::MAX_BUCKETS
            ),
        ));
    }
    let calls = state
        .db
        .read(move |conn| db::phone_calls::inbound_times(conn, start, end).map_err(AppError::from))
        .await?;
    let hour =
        |t: chrono::NaiveDateTime| t.duration_trunc(chrono::TimeDelta::hours(1)).unwrap_or(t);
    // Per UTC hour, oldest first: each measure's counts.
    let (mut received, mut answered, mut missed) = (Vec::new(), Vec::new(), Vec::new());
    let mut waits = Vec::new();
    for (started, answer, ended) in &calls {
        let h = hour(*started);
        count(&mut received, h);
        match (answer, ended) {
            (Some(answer), _) => {
                count(&mut answered, h);
                waits.push((*answer - *started).num_milliseconds().max(0) as f64 / 1000.0);
            }
            (None, Some(_)) => count(&mut missed, h),
            (None, None) => {}
        }
    }
    // Without `from` and `to`, the series spans the calls themselves.
    let series_from = from
        .or_else(|| received.first().map(|h| h.0))
        .unwrap_or(end);
    let series_to = match (to, received.last()) {
        (None, Some(last)) => last.0 + chrono::Duration::hours(1),
        _ => end,
    };
    let series = |hours: &[(chrono::NaiveDateTime, i64)]| {
        local_series(hours, bucket, series_from, series_to)
            .map_err(|e| AppError::validation("from", e.0))
    };
    let (r, a, m) = (series(&received)?, series(&answered)?, series(&missed)?);
    let total = |hours: &[(chrono::NaiveDateTime, i64)]| hours.iter().map(|h| h.1).sum();
    Ok(Statistics {
        received: total(&received),
        answered: total(&answered),
        missed: total(&missed),
        median_wait_seconds: crate::domain::median(waits),
        series: r
            .into_iter()
            .zip(a)
            .zip(m)
            .map(
                |(((start, received), (_, answered)), (_, missed))| SeriesPoint {
                    start,
                    received,
                    answered,
                    missed,
                },
            )
            .collect(),
    })
}

/// Adds one to the count of `hour`, the last one or a new one (`hour` never goes back).
fn count(hours: &mut Vec<(chrono::NaiveDateTime, i64)>, hour: chrono::NaiveDateTime) {
    match hours.last_mut() {
        Some((h, n)) if *h == hour => *n += 1,
        _ => hours.push((hour, 1)),
    }
}

/// Whether a live PBX holds this token (to tell a bad event from an unknown token).
pub async fn is_pbx_token(state: &AppState, token: &str) -> AppResult<bool> {
    let hash = token_hash(token);
    state
        .db
        .read(move |conn| Ok(db::phone_calls::pbx_by_token_hash(conn, &hash)?.is_some()))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_to_their_hour() {
        let h = |n| chrono::DateTime::UNIX_EPOCH.naive_utc() + chrono::Duration::hours(n);
        let mut hours = Vec::new();
        for at in [h(1), h(1), h(3)] {
            count(&mut hours, at);
        }
        assert_eq!(hours, vec![(h(1), 2), (h(3), 1)]);
    }
}
