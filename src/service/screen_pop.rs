//! The screen pop (issue 20): the call an agent has just answered, shown on the agents' page
//! with the patients whose phone is the caller's number. The rule that keeps it simple: the hub
//! (`pops`) carries only which call an account has now; what a page shows is read from the
//! database by the page's own request, as that account, disclosed and audited there.

use crate::auth::Caller;
use crate::db::appointments::AppointmentRow;
use crate::db::patients::PatientRow;
use crate::db::phone_calls::{Holder, PhoneCallRow};
use crate::db::{self, DbError};
use crate::domain::appointment::Status;
use crate::error::{AppError, AppResult};
use crate::pops::{Now, Ring};
use crate::state::AppState;

/// A call answered longer ago than this is not "current" any more, even without its hangup
/// (a PBX that lost it).
const ANSWERED_WITHIN: chrono::Duration = chrono::Duration::hours(4);
/// How long an ended call stays on the page, waiting for the agent to log it.
const ENDED_WITHIN: chrono::Duration = chrono::Duration::minutes(15);
/// Most patients one pop shows (a shared phone; never a list).
const MAX_PATIENTS: usize = 10;
/// How often each instance reads its listening accounts' current calls from the database:
/// the path of events another instance received.
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// A patient whose phone called, with the appointments still to be seen to.
#[derive(Debug, Clone)]
pub struct PopPatient {
    pub patient: PatientRow,
    /// Postponed and rescheduled ones.
    pub appointments: Vec<AppointmentRow>,
}

/// What the agent who answered is shown.
#[derive(Debug, Clone)]
pub struct Pop {
    pub call: PhoneCallRow,
    pub patients: Vec<PopPatient>,
    /// The account's hourly budget of patients is spent: the number only.
    pub withheld: bool,
}

impl Pop {
    pub fn ring(&self) -> Ring {
        Ring {
            phone_call_id: self.call.id.clone(),
            ended: self.call.ended_at.is_some(),
        }
    }
}

fn ring_of(h: &Holder) -> Ring {
    Ring {
        phone_call_id: h.id.clone(),
        ended: h.ended_at.is_some(),
    }
}

/// After a PBX event was committed (`telephony::receive`): tells the pages of the agent who
/// has the call, if it is theirs to log.
pub(super) fn announce(state: &AppState, holder: Holder, now: chrono::NaiveDateTime) {
    let recent = holder.ended_at.is_none_or(|e| e >= now - ENDED_WITHIN);
    let (Some(account), None, true) = (&holder.answered_by, &holder.call_id, recent) else {
        return;
    };
    // A late hangup of an earlier call does not take the page from the call going on now.
    if holder.ended_at.is_some() {
        if let Some(Now::Call(live)) = state.pops.now_of(account) {
            if live.phone_call_id != holder.id && !live.ended {
                return;
            }
        }
    }
    state.pops.publish(account, Now::Call(ring_of(&holder)));
}

/// The stream of `account`'s current call on this instance.
pub fn subscribe(state: &AppState, account: &str) -> tokio::sync::watch::Receiver<Now> {
    state.pops.subscribe(account)
}

/// One round of the database path: the current call of every account with a page open here,
/// in one read. Events another instance received arrive this way.
pub async fn poll(state: &AppState) -> AppResult<()> {
    let listening = state.pops.listening();
    if listening.is_empty() {
        return Ok(());
    }
    let accounts: Vec<String> = listening.iter().map(|(a, _)| a.clone()).collect();
    let now = crate::domain::now();
    let found = state
        .db
        .read(move |conn| {
            db::phone_calls::current_of(conn, &accounts, now - ANSWERED_WITHIN, now - ENDED_WITHIN)
                .map_err(DbError::from)
        })
        .await?;
    for (account, version) in listening {
        let now = found
            .iter()
            .find(|h| h.answered_by.as_deref() == Some(account.as_str()))
            .map_or(Now::Idle, |h| Now::Call(ring_of(h)));
        state.pops.publish_if_unchanged(&account, version, now);
    }
    Ok(())
}

/// The call `account` has now, from the database (a page shown without its stream).
pub async fn current(state: &AppState, account: String) -> AppResult<Now> {
    let now = crate::domain::now();
    let found = state
        .db
        .read(move |conn| {
            db::phone_calls::current_of(
                conn,
                std::slice::from_ref(&account),
                now - ANSWERED_WITHIN,
                now - ENDED_WITHIN,
            )
            .map_err(DbError::from)
        })
        .await?;
    Ok(found.first().map_or(Now::Idle, |h| Now::Call(ring_of(h))))
}

/// The patients whose phone called (at most [`MAX_PATIENTS`]), each with their postponed and
/// rescheduled appointments; for a secretary, only patients of their services.
fn patients_of(
    conn: &mut db::DbConnection,
    call: &PhoneCallRow,
    services: Option<&[String]>,
) -> AppResult<Vec<PopPatient>> {
    let mut patients = Vec::new();
    if !call.from_number.starts_with('+') {
        return Ok(patients);
    }
    let matches =
        db::phone_calls::patients_with_phones(conn, std::slice::from_ref(&call.from_number))?;
    for m in matches.into_iter().take(MAX_PATIENTS) {
        let Some(patient) = db::patients::find(conn, &m.patient_id)? else {
            continue;
        };
        let mut appointments = db::appointments::of_patient(conn, &m.patient_id)?;
        if let Some(services) = services {
            appointments.retain(|a| services.contains(&a.service_code));
            if appointments.is_empty() {
                continue; // Outside the caller's services: not shown at all.
            }
        }
        appointments.retain(|a| matches!(a.status, Status::Postponed | Status::Rescheduled));
        patients.push(PopPatient {
            patient,
            appointments,
        });
    }
    Ok(patients)
}

/// The pop of call `phone_call_id` for `caller`: `None` unless the caller is the one who
/// answered it. The patients shown count against `REPRISE_PATIENTS_PER_HOUR` (over it, the
/// number alone, `withheld`); audited as `phone_call.pop` (ids only).
pub async fn pop(
    state: &AppState,
    caller: Caller,
    phone_call_id: String,
) -> AppResult<Option<Pop>> {
    let Some(account) = caller.id.clone() else {
        return Ok(None);
    };
    let limit = state.settings.patients_per_hour;
    // The reading on a read connection, off the SQLite writer; the write is only the
    // disclosure and its audit entry (and what it shows is what was read).
    let scope = super::patients::scope(&caller);
    let read_id = phone_call_id.clone();
    let found = state
        .db
        .read(move |conn| {
            let mine = db::phone_calls::find(conn, &read_id)?
                .filter(|c| c.answered_by.as_deref() == Some(account.as_str()));
            let Some(call) = mine else {
                return Ok(None);
            };
            let patients = patients_of(conn, &call, scope.as_deref())?;
            Ok::<_, AppError>(Some((call, patients)))
        })
        .await?;
    let Some((call, patients)) = found else {
        return Ok(None);
    };
    let ids: Vec<String> = patients.iter().map(|p| p.patient.id.clone()).collect();
    let ended = call.ended_at.is_some();
    let (who, id) = (caller.clone(), phone_call_id.clone());
    let shown = state
        .db
        .write(move |conn| {
            super::patients::disclose(conn, &who, limit, &ids, crate::domain::now())?;
            crate::audit::record(
                conn,
                &who,
                "phone_call.pop",
                Some(&format!("phone_call:{id}")),
                serde_json::json!({ "patients": ids, "ended": ended }),
            )?;
            Ok(())
        })
        .await;
    match shown {
        Ok(()) => Ok(Some(Pop {
            call,
            patients,
            withheld: false,
        })),
        Err(AppError::TooManyPatients(_)) => {
            state
                .db
                .write(move |conn| {
                    crate::audit::record(
                        conn,
                        &caller,
                        "phone_call.pop",
                        Some(&format!("phone_call:{phone_call_id}")),
                        serde_json::json!({ "patients": [], "withheld": true, "ended": ended }),
                    )?;
                    Ok::<_, AppError>(())
                })
                .await?;
            Ok(Some(Pop {
                call,
                patients: Vec::new(),
                withheld: true,
            }))
        }
        Err(e) => Err(e),
    }
}
