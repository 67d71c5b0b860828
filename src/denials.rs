//! Refused requests: why each was refused ([`Refusal`]), and their audit entries aggregated,
//! one per address, account, route, reason and minute with a count ([`Denials`]).
//!
//! The rule: the first refusal of an entry is written at once; the others are counted in
//! memory and added to it every few seconds, so a flood of refusals costs a few writes a
//! minute, not one each.

use crate::client::Origin;
use crate::db::{self, DbConnection};

/// Why a request was refused: the reason of its aggregated audit entry, and whether it counts
/// against the anonymous limit (`ratelimit::AnonymousLimits`). Set in the request's (or the
/// response's) extensions where the decision is taken; [`refusal_of_status`] covers the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No token, or a token of the wrong shape.
    NoToken,
    /// A token no live account holds (unknown, deleted or expired), at the API or the sign-in.
    UnknownToken,
    /// A session cookie that opens no session (ended, idle, forged).
    UnknownSession,
    /// An answer link that is not one.
    UnknownLink,
    /// A known caller whose role or services do not allow it.
    Forbidden,
    /// Refused before any lookup: the address is over `REPRISE_RATE_ANONYMOUS`.
    RateLimited,
    /// The account was shown `REPRISE_PATIENTS_PER_HOUR` distinct patients this hour.
    DisclosureLimit,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::UnknownToken => "unknown_token",
            Refusal::UnknownSession => "unknown_session",
            Refusal::UnknownLink => "unknown_link",
            Refusal::Forbidden => "forbidden",
            Refusal::RateLimited => "rate_limited",
            Refusal::DisclosureLimit => "disclosure_limit",
        }
    }

    /// Whether the request carried no valid credential: those are what an address may send
    /// only so many of.
    pub fn is_anonymous(self) -> bool {
        matches!(
            self,
            Refusal::NoToken
                | Refusal::UnknownToken
                | Refusal::UnknownSession
                | Refusal::UnknownLink
        )
    }

    /// The audit action of the entry.
    pub fn action(self) -> &'static str {
        match self {
            Refusal::DisclosureLimit => "patient.disclosure_limit",
            _ => "auth.denied",
        }
    }
}

/// The refusal a status stands for when nothing more precise was said.
pub fn refusal_of_status(status: u16) -> Option<Refusal> {
    match status {
        401 => Some(Refusal::UnknownToken),
        403 => Some(Refusal::Forbidden),
        _ => None,
    }
}

/// One refused request, as the middleware saw it.
#[derive(Debug, Clone)]
pub struct Refused {
    pub refusal: Refusal,
    pub at: chrono::NaiveDateTime,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    /// The route pattern, never the URL (it may hold a token).
    pub route: String,
    pub method: String,
    pub status: u16,
    pub origin: Option<Origin>,
}

/// Most distinct entries held between two flushes; beyond, refusals are counted under one
/// entry without address or route (a flood from very many addresses).
const DENIALS_MAX: usize = 10_000;

/// An aggregated entry to write: how many occurrences to add to its key's row.
#[derive(Debug, Clone)]
pub struct Flush {
    key: String,
    first: Refused,
    occurrences: i32,
}

#[derive(Debug)]
struct Pending {
    first: Refused,
    minute: chrono::NaiveDateTime,
    /// Occurrences not written yet.
    unwritten: i32,
}

/// Refusals aggregated: one audit entry per address, account, route, reason and minute, whose
/// count grows (`db::audit::add_aggregated`). The first refusal of an entry is written at once
/// by the request that meets it (so that a single refusal is in the log when its answer
/// leaves); later ones are counted here and added by [`Denials::take`] every few seconds. A
/// flood of refusals thus costs a few writes a minute, not one each.
#[derive(Debug, Default)]
pub struct Denials {
    pending: std::sync::Mutex<std::collections::HashMap<String, Pending>>,
}

fn minute_of(at: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    at.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

impl Denials {
    /// Counts a refusal; the entry to write now if it is the first of its key.
    pub fn note(&self, refused: Refused) -> Option<Flush> {
        let minute = minute_of(refused.at);
        let address = refused
            .origin
            .as_ref()
            .and_then(|o| o.address)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = format!(
            "{}|{}|{}|{}|{}|{}",
            minute.format("%Y-%m-%dT%H:%M"),
            refused.refusal.action(),
            refused.refusal.reason(),
            refused.actor_id.as_deref().unwrap_or(""),
            address,
            refused.route,
        );
        let mut refused = refused;
        if pending.len() >= DENIALS_MAX && !pending.contains_key(&key) {
            key = format!(
                "{}|{}|{}|many",
                minute.format("%Y-%m-%dT%H:%M"),
                refused.refusal.action(),
                refused.refusal.reason()
            );
            refused.actor_id = None;
            refused.actor_name = None;
            refused.route = "(many)".into();
            refused.origin = None;
        }
        match pending.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.get_mut().unwritten += 1;
                None
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Pending {
                    first: refused.clone(),
                    minute,
                    unwritten: 0,
                });
                Some(Flush {
                    key,
                    first: refused,
                    occurrences: 1,
                })
            }
        }
    }

    /// The occurrences counted since the last call, to add to their entries; forgets the
    /// entries of minutes that are over.
    pub fn take(&self, now: chrono::NaiveDateTime) -> Vec<Flush> {
        let this_minute = minute_of(now);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let flushes = pending
            .iter_mut()
            .filter(|(_, p)| p.unwritten > 0)
            .map(|(key, p)| Flush {
                key: key.clone(),
                first: p.first.clone(),
                occurrences: std::mem::take(&mut p.unwritten),
            })
            .collect();
        pending.retain(|_, p| p.minute >= this_minute);
        flushes
    }
}

/// Writes aggregated entries (one statement each, in the caller's transaction).
pub fn write_denials(conn: &mut DbConnection, flushes: &[Flush]) -> diesel::QueryResult<()> {
    for f in flushes {
        let r = &f.first;
        let details = serde_json::json!({
            "method": r.method,
            "status": r.status,
            "reason": r.refusal.reason(),
        })
        .to_string();
        let origin = r.origin.as_ref();
        let address = origin.and_then(|o| o.address).map(|a| a.to_string());
        db::audit::add_aggregated(
            conn,
            &db::audit::AggregatedRow {
                row: db::audit::NewAuditRow {
                    at: r.at,
                    actor_id: r.actor_id.as_deref(),
                    actor_name: r.actor_name.as_deref(),
                    action: r.refusal.action(),
                    target: Some(&r.route),
                    details: &details,
                    request_id: origin.map(|o| o.request_id.as_str()),
                    address: address.as_deref(),
                    user_agent: origin.and_then(|o| o.user_agent.as_deref()),
                },
                occurrences: f.occurrences,
                aggregate_key: &f.key,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(at: &str, address: &str, refusal: Refusal) -> Refused {
        Refused {
            refusal,
            at: chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S").expect("time"),
            actor_id: None,
            actor_name: None,
            route: "/api/v1/calls".into(),
            method: "POST".into(),
            status: 401,
            origin: Some(Origin {
                request_id: "r".into(),
                address: address.parse().ok(),
                user_agent: None,
            }),
        }
    }

    #[test]
    fn refusals_of_one_address_route_reason_and_minute_make_one_entry() {
        let d = Denials::default();
        let first = d.note(refused(
            "2026-12-04 10:00:01",
            "203.0.113.7",
            Refusal::UnknownToken,
        ));
        assert!(first.is_some(), "the first is written at once");
        for _ in 0..999 {
            assert!(d
                .note(refused(
                    "2026-12-04 10:00:30",
                    "203.0.113.7",
                    Refusal::UnknownToken
                ))
                .is_none());
        }
        // Another address, another reason, another minute: entries of their own.
        assert!(d
            .note(refused(
                "2026-12-04 10:00:30",
                "203.0.113.8",
                Refusal::UnknownToken
            ))
            .is_some());
        assert!(d
            .note(refused(
                "2026-12-04 10:00:30",
                "203.0.113.7",
                Refusal::RateLimited
            ))
            .is_some());
        assert!(d
            .note(refused(
                "2026-12-04 10:01:00",
                "203.0.113.7",
                Refusal::UnknownToken
            ))
            .is_some());
        let now = chrono::NaiveDateTime::parse_from_str("2026-12-04 10:01:05", "%Y-%m-%d %H:%M:%S")
            .expect("time");
        let flushes = d.take(now);
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0].occurrences, 999);
        assert_eq!(Some(&flushes[0].key), first.as_ref().map(|f| &f.key));
        assert!(d.take(now).is_empty(), "nothing counted twice");
        // The minute that is over is forgotten; the current one is kept.
        assert_eq!(d.pending.lock().expect("lock").len(), 1);
    }

    #[test]
    fn a_flood_from_very_many_addresses_is_bounded() {
        let d = Denials::default();
        let mut written = 0;
        for i in 0..(DENIALS_MAX + 500) {
            let address = format!("2001:db8::{i:x}");
            if d.note(refused(
                "2026-12-04 10:00:01",
                &address,
                Refusal::UnknownToken,
            ))
            .is_some()
            {
                written += 1;
            }
        }
        assert_eq!(written, DENIALS_MAX + 1, "the rest share one entry");
    }
}
