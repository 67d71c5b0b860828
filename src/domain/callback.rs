//! Callbacks (CONTRACT §4.9): the patients to call back, after a missed call or when an agent
//! promised it; who holds one (a claim that lapses), and when an unanswered one comes back.
//!
//! The one rule: time is a parameter (`now`), never read here, so the schedule is tested alone.

use chrono::{Datelike, Duration, NaiveDateTime, TimeZone, Weekday};
use chrono_tz::Europe::Brussels;

use super::{Invalid, PhoneE164};

text_enum!(
    /// Why a callback exists.
    Source {
        MissedCall => "missed_call",
        Requested => "requested",
    }
);

text_enum!(
    /// Where a callback stands. Stored: `open`, `done`, `unreachable`; `claimed` is an open
    /// callback whose claim is younger than [`CLAIM_LEASE`], derived by [`Status::of`].
    Status {
        Open => "open",
        Claimed => "claimed",
        Done => "done",
        Unreachable => "unreachable",
    }
);

text_enum!(
    /// How a callback attempt ended.
    Outcome {
        Reached => "reached",
        NoAnswer => "no_answer",
        Voicemail => "voicemail",
        WrongNumber => "wrong_number",
    }
);

/// How long a claim keeps other agents off a callback.
pub const CLAIM_LEASE: Duration = Duration::minutes(15);

/// Failed attempts before a callback ends `unreachable`, unless configured
/// (`REPRISE_CALLBACK_ATTEMPTS`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Where the working day starts, Brussels time, for attempts put off to the next one.
pub const WORKDAY_START_HOUR: u32 = 8;

impl Status {
    /// The status a reader sees: a stored `open` with a live claim is `claimed`.
    pub fn of(stored: Status, claimed_at: Option<NaiveDateTime>, now: NaiveDateTime) -> Status {
        match (stored, claimed_at) {
            (Status::Open, Some(at)) if at > now - CLAIM_LEASE => Status::Claimed,
            (stored, _) => stored,
        }
    }

    /// Done or unreachable: nothing more happens to it.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Done | Status::Unreachable)
    }
}

impl Outcome {
    /// `reached` and `wrong_number` end the callback; the others bring it back later.
    pub fn closes(self) -> bool {
        matches!(self, Outcome::Reached | Outcome::WrongNumber)
    }
}

/// The number a callback calls: a telephone number the PBX reported, in E.164. `anonymous`,
/// an extension or an empty number has no callback (there is nobody to call).
pub fn callable(number: &str) -> Option<PhoneE164> {
    if !number.starts_with('+') {
        return None;
    }
    PhoneE164::parse(number).ok()
}

/// The first Monday-to-Friday day after `now`'s Brussels date, at [`WORKDAY_START_HOUR`]
/// Brussels time, as UTC. Public holidays are not known: they count as working days.
pub fn next_working_day(now: NaiveDateTime) -> NaiveDateTime {
    let mut day = Brussels.from_utc_datetime(&now).date_naive();
    loop {
        day = day.succ_opt().unwrap_or(day);
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            break;
        }
    }
    let local = day
        .and_hms_opt(WORKDAY_START_HOUR, 0, 0)
        .unwrap_or_else(|| day.and_time(chrono::NaiveTime::MIN));
    Brussels
        .from_local_datetime(&local)
        .earliest()
        .map_or(now + Duration::days(1), |t| t.naive_utc())
}

/// When a callback comes back after its `failed`-th failed attempt (1-based): 30 minutes
/// after the first, 2 hours after the second, the next working day at 8:00 after the others.
pub fn next_due(failed: i32, now: NaiveDateTime) -> NaiveDateTime {
    match failed {
        i32::MIN..=1 => now + Duration::minutes(30),
        2 => now + Duration::hours(2),
        _ => next_working_day(now),
    }
}

/// What an attempt does to an open callback that had `attempts` failed attempts before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Reached, or the wrong number: done.
    Done,
    /// The last failed attempt allowed.
    Unreachable { attempts: i32 },
    /// Back on the worklist, unclaimed, due then.
    Retry {
        attempts: i32,
        due_at: NaiveDateTime,
    },
}

pub fn after_attempt(
    outcome: Outcome,
    attempts: i32,
    max_attempts: u32,
    now: NaiveDateTime,
) -> Next {
    if outcome.closes() {
        return Next::Done;
    }
    let attempts = attempts.saturating_add(1);
    if i64::from(attempts) >= i64::from(max_attempts) {
        Next::Unreachable { attempts }
    } else {
        Next::Retry {
            attempts,
            due_at: next_due(attempts, now),
        }
    }
}

/// When a requested callback is due: at most a year ahead; a past time is due now.
pub fn parse_due(raw: &str, now: NaiveDateTime) -> Result<NaiveDateTime, Invalid> {
    let t = super::time::parse_instant(raw)?;
    if t > now + Duration::days(366) {
        return Err(Invalid("must be within a year".into()));
    }
    Ok(t.max(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(raw: &str) -> NaiveDateTime {
        super::super::time::parse_instant(raw).expect("instant")
    }

    #[test]
    fn a_claim_is_live_for_fifteen_minutes() {
        let now = utc("2026-12-07T10:00:00Z");
        let claimed = |ago| Status::of(Status::Open, Some(now - Duration::minutes(ago)), now);
        assert_eq!(claimed(14), Status::Claimed);
        assert_eq!(claimed(15), Status::Open, "lapsed at fifteen minutes");
        assert_eq!(Status::of(Status::Open, None, now), Status::Open);
        assert_eq!(
            Status::of(Status::Done, Some(now), now),
            Status::Done,
            "a closed callback stays closed"
        );
    }

    #[test]
    fn failed_attempts_come_back_after_30_minutes_2_hours_then_the_next_working_day() {
        // A Thursday, 14:00 in Brussels (winter: UTC+1).
        let thursday = utc("2026-12-10T13:00:00Z");
        assert_eq!(next_due(1, thursday), utc("2026-12-10T13:30:00Z"));
        assert_eq!(next_due(2, thursday), utc("2026-12-10T15:00:00Z"));
        assert_eq!(
            next_due(3, thursday),
            utc("2026-12-11T07:00:00Z"),
            "Friday 8:00 Brussels"
        );
        // Friday evening and Saturday go to Monday 8:00.
        assert_eq!(
            next_working_day(utc("2026-12-11T18:00:00Z")),
            utc("2026-12-14T07:00:00Z")
        );
        assert_eq!(
            next_working_day(utc("2026-12-12T09:00:00Z")),
            utc("2026-12-14T07:00:00Z")
        );
        // Late on a Sunday in UTC is already Monday in Brussels: Tuesday.
        assert_eq!(
            next_working_day(utc("2026-12-13T23:30:00Z")),
            utc("2026-12-15T07:00:00Z")
        );
        // Summer time: 8:00 Brussels is 6:00 UTC.
        assert_eq!(
            next_working_day(utc("2026-06-10T12:00:00Z")),
            utc("2026-06-11T06:00:00Z")
        );
    }

    #[test]
    fn reached_and_wrong_number_close_and_the_fifth_failure_is_unreachable() {
        let now = utc("2026-12-10T13:00:00Z");
        assert_eq!(after_attempt(Outcome::Reached, 3, 5, now), Next::Done);
        assert_eq!(after_attempt(Outcome::WrongNumber, 0, 5, now), Next::Done);
        assert_eq!(
            after_attempt(Outcome::NoAnswer, 0, 5, now),
            Next::Retry {
                attempts: 1,
                due_at: now + Duration::minutes(30)
            }
        );
        assert!(matches!(
            after_attempt(Outcome::Voicemail, 3, 5, now),
            Next::Retry { attempts: 4, .. }
        ));
        assert_eq!(
            after_attempt(Outcome::NoAnswer, 4, 5, now),
            Next::Unreachable { attempts: 5 }
        );
        assert_eq!(
            after_attempt(Outcome::NoAnswer, 0, 1, now),
            Next::Unreachable { attempts: 1 }
        );
    }

    #[test]
    fn only_telephone_numbers_are_called_back() {
        assert!(callable("+3261234567").is_some());
        assert!(callable("anonymous").is_none());
        assert!(callable("201").is_none());
        assert!(callable("").is_none());
    }

    #[test]
    fn a_requested_time_in_the_past_is_due_now() {
        let now = utc("2026-12-10T13:00:00Z");
        assert_eq!(parse_due("0000-01-01T00:00:00Z", now).ok(), Some(now));
        assert_eq!(parse_due("2026-12-10T12:00:00Z", now).ok(), Some(now));
    }

    #[test]
    fn a_requested_time_is_at_most_a_year_ahead() {
        let now = utc("2026-12-10T13:00:00Z");
        assert!(parse_due("2026-12-11T09:00:00+01:00", now).is_ok());
        assert!(parse_due("2028-01-01T09:00:00Z", now).is_err());
        assert!(parse_due("tomorrow", now).is_err());
    }
}
