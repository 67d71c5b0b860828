//! The screen pop's hub: for each account with an agents' page open on this instance, the
//! telephone call it has now, as a `tokio::sync::watch` value that each of its event streams
//! waits on. The rule that keeps it simple: it holds ids only (no number, no name), one value
//! per account, overwritten — a slow or vanished page never blocks the PBX's request and never
//! makes anything grow.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// What an account's pages should show, as far as they need to know to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now {
    /// Not known yet on this instance: the first poll of the database tells.
    Unknown,
    /// No current call.
    Idle,
    Call(Ring),
}

impl Now {
    /// The event id of the pop that shows this state: what a page says it shows when its
    /// stream opens (`?since=`, `Last-Event-ID`).
    pub fn key(&self) -> Option<String> {
        match self {
            Now::Unknown => None,
            Now::Idle => Some(IDLE.to_string()),
            Now::Call(ring) => Some(ring.key()),
        }
    }
}

/// The key of "no current call".
pub const IDLE: &str = "none";

/// The call an account has now: which call, and whether it has ended (then its duration is
/// known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub phone_call_id: String,
    pub ended: bool,
}

impl Ring {
    /// `{id}:live` or `{id}:ended`.
    pub fn key(&self) -> String {
        let state = if self.ended { "ended" } else { "live" };
        format!("{}:{state}", self.phone_call_id)
    }
}

struct Slot {
    tx: watch::Sender<Now>,
    /// Bumped by every publication, so that a poll that read the database before a PBX event
    /// does not overwrite what that event published after (`publish_if_unchanged`).
    version: u64,
}

/// Accounts → their current call. Entries exist only while a stream of theirs is open (those
/// whose streams all closed are dropped at the next subscription or poll).
#[derive(Default)]
pub struct Pops {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Pops {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding this lock leaves nothing half-done (each step is one insert
        // or one send): the map is still usable.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A stream of `account`'s calls; the value it starts with is the last one known here.
    pub fn subscribe(&self, account: &str) -> watch::Receiver<Now> {
        let mut slots = self.slots();
        slots.retain(|_, s| s.tx.receiver_count() > 0);
        slots
            .entry(account.to_string())
            .or_insert_with(|| Slot {
                tx: watch::channel(Now::Unknown).0,
                version: 0,
            })
            .tx
            .subscribe()
    }

    /// Tells `account`'s open pages (if any) which call it has now. Streams wake only when
    /// that changes.
    pub fn publish(&self, account: &str, ring: Now) {
        if let Some(slot) = self.slots().get_mut(account) {
            slot.version += 1;
            slot.tx.send_if_modified(|now| {
                let changed = *now != ring;
                *now = ring;
                changed
            });
        }
    }

    /// What `account`'s pages show now, if one is open here.
    pub fn now_of(&self, account: &str) -> Option<Now> {
        self.slots().get(account).map(|s| s.tx.borrow().clone())
    }

    /// The accounts with a page open here, and the version of each one's value.
    pub fn listening(&self) -> Vec<(String, u64)> {
        let mut slots = self.slots();
        slots.retain(|_, s| s.tx.receiver_count() > 0);
        slots
            .iter()
            .map(|(account, s)| (account.clone(), s.version))
            .collect()
    }

    /// Publishes what a poll of the database found, unless a PBX event was published for that
    /// account since the poll began (its value is newer than the poll's).
    pub fn publish_if_unchanged(&self, account: &str, version: u64, ring: Now) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(account).filter(|s| s.version == version) {
            slot.tx.send_if_modified(|now| {
                let changed = *now != ring;
                *now = ring;
                changed
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str, ended: bool) -> Now {
        Now::Call(Ring {
            phone_call_id: id.into(),
            ended,
        })
    }

    #[test]
    fn only_subscribed_accounts_are_kept_and_told_of_changes_only() {
        let pops = Pops::default();
        pops.publish("nobody", ring("c0", false));
        assert!(pops.listening().is_empty(), "no page, no entry");
        let mut rx = pops.subscribe("a");
        assert_eq!(*rx.borrow_and_update(), Now::Unknown);
        pops.publish("a", ring("c1", false));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(*rx.borrow_and_update(), ring("c1", false));
        pops.publish("a", ring("c1", false));
        assert!(
            !rx.has_changed().unwrap_or(true),
            "the same value wakes no one"
        );
        drop(rx);
        assert!(pops.listening().is_empty(), "a closed page leaves no entry");
    }

    #[test]
    fn a_poll_does_not_overwrite_an_event_published_after_it_began() {
        let pops = Pops::default();
        let rx = pops.subscribe("a");
        let (_, version) = pops.listening()[0].clone();
        pops.publish("a", ring("c2", false));
        pops.publish_if_unchanged("a", version, Now::Idle);
        assert_eq!(*rx.borrow(), ring("c2", false));
        let (_, version) = pops.listening()[0].clone();
        pops.publish_if_unchanged("a", version, ring("c2", true));
        assert_eq!(*rx.borrow(), ring("c2", true));
    }
}
