//! Patients answer by email: the link an email carries, the choices its page offers,
//! and what each answer does to the appointment. See docs/operations.md, "Patients answer by email".
//!
//! A link names one appointment of one email. Its URL holds a random secret of 256 bits and
//! nothing about the patient; only the secret's SHA-256 is stored, so no copy of the database
//! can make a link (as for API tokens). The first answer uses the link up; after its expiry, or once the appointment has moved on from
//! what the email said, the page says so and offers nothing.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::appointment::{ContactOutcome, Status};
use super::Invalid;

text_enum!(
    /// What a patient may answer.
    Answer {
        Keep => "keep",
        OtherDate => "other_date",
        CallBack => "call_back",
        Withdraw => "withdraw",
    }
);

impl Answer {
    /// Whether the answer asks a secretary to act (another date, a call): it keeps the
    /// appointment on the contact list until the patient is reached.
    pub fn is_request(self) -> bool {
        matches!(self, Answer::OtherDate | Answer::CallBack)
    }
}

/// A link's secret: 32 random bytes, as the 64 lower-case hex digits of its URL.
const TOKEN_BYTES: usize = 32;

/// A new link secret for an email's URL. Only its [`link_token_hash`] is stored: nothing kept
/// in the database (or a backup of it) is enough to make a valid link.
pub fn new_link_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 (hex) under which a link is stored, for a token of the right shape (64
/// lower-case hex digits); `None` for anything else, which is then looked up nowhere.
pub fn link_token_hash(token: &str) -> Option<String> {
    let shaped = token.len() == 2 * TOKEN_BYTES
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    shaped.then(|| hex::encode(Sha256::digest(token.as_bytes())))
}

/// The token of a link made before links had their own secret: its id (32 hex digits) and
/// the first 16 bytes of HMAC-SHA256 under the key that was kept in `link_keys`. Used once, by
/// the migration that stores these links' hashes and deletes the key (`db::answers::rehash`).
pub fn legacy_token(key: &[u8], id: &str) -> Option<String> {
    const PURPOSE: &[u8] = b"reprise answer link v1:";
    let raw = hex::decode(id).ok().filter(|b| b.len() == 16)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(PURPOSE);
    mac.update(&raw);
    let tag = mac.finalize().into_bytes();
    Some(format!("{id}{}", hex::encode(&tag[..16])))
}

/// Which email a link came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Email {
    /// `site_reopened`: the appointment is still to rebook, perhaps with a proposed day.
    SiteReopened,
    /// `appointment_rescheduled`, about this new date.
    Rescheduled(NaiveDateTime),
}

/// The appointment as it is when its link is opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Situation {
    pub email: Email,
    pub status: Status,
    pub scheduled_at: NaiveDateTime,
    pub original_scheduled_at: NaiveDateTime,
    pub proposed_at: Option<NaiveDate>,
    /// The date the email offered to keep (`site_reopened`: the proposed day then, at the
    /// original time of day).
    pub offered: Option<NaiveDateTime>,
    /// Whether the site is open (a day is kept only at an open site).
    pub site_open: bool,
    pub expires_at: NaiveDateTime,
    pub used: Option<(Answer, NaiveDateTime)>,
}

/// What the page can do with a link.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// The patient may answer; these are the choices, and the date they would keep.
    Open {
        choices: Vec<Answer>,
        date: Option<NaiveDateTime>,
    },
    /// Already answered, then.
    Used(Answer, NaiveDateTime),
    Expired,
    /// The appointment has moved on since the email (a new date, a cancellation): this link
    /// no longer applies.
    Stale,
}

impl Situation {
    /// The date "keep" would keep: the new date of a rescheduled appointment, or the proposed
    /// day of a postponed one at its original time of day (Brussels), if it is still the one
    /// the email offered and the site is open.
    pub fn date(&self) -> Option<NaiveDateTime> {
        match (self.email, self.status) {
            (Email::Rescheduled(_), Status::Rescheduled) => Some(self.scheduled_at),
            (Email::SiteReopened, Status::Postponed) if self.site_open => self
                .proposed_at
                .and_then(|day| same_time_on(day, self.original_scheduled_at))
                .filter(|date| Some(*date) == self.offered),
            _ => None,
        }
    }

    pub fn standing(&self, now: NaiveDateTime) -> Standing {
        if let Some((answer, at)) = self.used {
            return Standing::Used(answer, at);
        }
        if now >= self.expires_at {
            return Standing::Expired;
        }
        let current = match self.email {
            Email::SiteReopened => self.status == Status::Postponed,
            Email::Rescheduled(date) => {
                self.status == Status::Rescheduled && self.scheduled_at == date
            }
        };
        // A date already past is nothing to keep; a new date already past, nothing to answer.
        let date = self.date().filter(|d| *d > now);
        if !current || (date.is_none() && matches!(self.email, Email::Rescheduled(_))) {
            return Standing::Stale;
        }
        let choices = if date.is_some() {
            vec![
                Answer::Keep,
                Answer::OtherDate,
                Answer::CallBack,
                Answer::Withdraw,
            ]
        } else {
            // Nothing to keep or to trade for another date: the service calls.
            vec![Answer::CallBack, Answer::Withdraw]
        };
        Standing::Open { choices, date }
    }
}

/// What an answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The contact attempt is the whole record.
    Nothing,
    /// The patient takes the proposed day: the appointment is rescheduled to it.
    RescheduleTo(NaiveDateTime),
    /// The patient refuses the proposed day: the proposal goes.
    DropProposal,
    /// The patient withdraws: the appointment is cancelled (`patient_request`).
    Cancel,
}

/// The contact attempt an answer records, and its effect. `keep` reaches the patient and ends
/// the contact; every other answer is `declined` (the patient declined what the email
/// offered), which leaves a postponed appointment on the contact list for a secretary.
pub fn effect(situation: &Situation, answer: Answer) -> (ContactOutcome, Then) {
    match answer {
        Answer::Keep => {
            let then = match (situation.status, situation.date()) {
                (Status::Postponed, Some(date)) => Then::RescheduleTo(date),
                _ => Then::Nothing,
            };
            (ContactOutcome::Reached, then)
        }
        Answer::OtherDate if situation.proposed_at.is_some() => {
            (ContactOutcome::Declined, Then::DropProposal)
        }
        Answer::OtherDate | Answer::CallBack => (ContactOutcome::Declined, Then::Nothing),
        Answer::Withdraw => (ContactOutcome::Declined, Then::Cancel),
    }
}

/// `day` at the Brussels time of day of `like`, in UTC (the first reading in the autumn
/// overlap, an hour later in the spring gap).
pub fn same_time_on(day: NaiveDate, like: NaiveDateTime) -> Option<NaiveDateTime> {
    let tz = chrono_tz::Europe::Brussels;
    let local = day.and_time(super::time::brussels(like).time());
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M").expect("a date")
    }

    #[test]
    fn a_link_token_is_random_and_only_its_shape_is_looked_up() {
        let a = new_link_token();
        let b = new_link_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64, "256 bits");
        let hash = link_token_hash(&a).expect("well formed");
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a), "the hash does not hold the token");
        assert_ne!(link_token_hash(&b), Some(hash));
        // Another length, upper case, not hex: never looked up.
        assert_eq!(link_token_hash(&a[..63]), None);
        assert_eq!(
            link_token_hash(&a.to_uppercase().replace(char::is_numeric, "A")),
            None
        );
        assert_eq!(link_token_hash(&"z".repeat(64)), None);
        assert_eq!(link_token_hash(""), None);
    }

    #[test]
    fn a_legacy_token_is_the_id_and_its_signature() {
        let id = "00112233445566778899aabbccddeeff";
        let token = legacy_token(&[7; 32], id).expect("a token");
        assert_eq!(token.len(), 64);
        assert!(token.starts_with(id));
        assert_ne!(
            legacy_token(&[8; 32], id),
            Some(token.clone()),
            "another key"
        );
        assert!(
            link_token_hash(&token).is_some(),
            "the same shape as new tokens"
        );
        assert_eq!(legacy_token(&[7; 32], "not hex"), None);
    }

    fn reopened(proposed: Option<NaiveDate>) -> Situation {
        let original = at("2022-05-16 07:30");
        Situation {
            email: Email::SiteReopened,
            status: Status::Postponed,
            scheduled_at: original,
            original_scheduled_at: original,
            proposed_at: proposed,
            offered: proposed.and_then(|day| same_time_on(day, original)),
            site_open: true,
            expires_at: at("2022-07-01 00:00"),
            used: None,
        }
    }

    #[test]
    fn keep_takes_the_proposed_day_at_the_original_time() {
        // 09:30 in Brussels (summer) on 16 May; the proposal is in winter time: still 09:30.
        let s = reopened(NaiveDate::from_ymd_opt(2022, 11, 7));
        let now = at("2022-06-01 10:00");
        let Standing::Open { choices, date } = s.standing(now) else {
            panic!("open")
        };
        assert_eq!(choices.len(), 4);
        assert_eq!(date, Some(at("2022-11-07 08:30")));
        assert_eq!(
            effect(&s, Answer::Keep),
            (
                ContactOutcome::Reached,
                Then::RescheduleTo(at("2022-11-07 08:30"))
            )
        );
        assert_eq!(
            effect(&s, Answer::OtherDate),
            (ContactOutcome::Declined, Then::DropProposal)
        );
        assert_eq!(
            effect(&s, Answer::CallBack),
            (ContactOutcome::Declined, Then::Nothing)
        );
        assert_eq!(
            effect(&s, Answer::Withdraw),
            (ContactOutcome::Declined, Then::Cancel)
        );
    }

    #[test]
    fn without_a_date_the_page_offers_a_call_or_withdrawal() {
        let s = reopened(None);
        assert_eq!(
            s.standing(at("2022-06-01 10:00")),
            Standing::Open {
                choices: vec![Answer::CallBack, Answer::Withdraw],
                date: None
            }
        );
    }

    #[test]
    fn used_expired_and_stale_links_offer_nothing() {
        let now = at("2022-06-01 10:00");
        let mut s = reopened(None);
        s.used = Some((Answer::CallBack, at("2022-05-30 12:00")));
        assert_eq!(
            s.standing(now),
            Standing::Used(Answer::CallBack, at("2022-05-30 12:00"))
        );
        let mut s = reopened(None);
        s.expires_at = now;
        assert_eq!(s.standing(now), Standing::Expired);
        let mut s = reopened(None);
        s.status = Status::Rescheduled;
        assert_eq!(s.standing(now), Standing::Stale);
        // A rescheduled email about an older date.
        let s = Situation {
            email: Email::Rescheduled(at("2022-06-10 08:00")),
            status: Status::Rescheduled,
            scheduled_at: at("2022-06-12 08:00"),
            ..reopened(None)
        };
        assert_eq!(s.standing(now), Standing::Stale);
        let s = Situation {
            scheduled_at: at("2022-06-10 08:00"),
            ..s
        };
        assert_eq!(
            s.standing(now),
            Standing::Open {
                choices: vec![
                    Answer::Keep,
                    Answer::OtherDate,
                    Answer::CallBack,
                    Answer::Withdraw
                ],
                date: Some(at("2022-06-10 08:00"))
            }
        );
        assert_eq!(
            effect(&s, Answer::Keep),
            (ContactOutcome::Reached, Then::Nothing)
        );
        assert_eq!(
            effect(&s, Answer::OtherDate),
            (ContactOutcome::Declined, Then::Nothing)
        );
    }

    #[test]
    fn past_dates_are_not_offered() {
        let s = reopened(NaiveDate::from_ymd_opt(2022, 5, 20));
        assert_eq!(
            s.standing(at("2022-05-25 10:00")),
            Standing::Open {
                choices: vec![Answer::CallBack, Answer::Withdraw],
                date: None
            }
        );
        let s = Situation {
            email: Email::Rescheduled(at("2022-05-20 08:00")),
            status: Status::Rescheduled,
            scheduled_at: at("2022-05-20 08:00"),
            ..reopened(None)
        };
        assert_eq!(s.standing(at("2022-05-25 10:00")), Standing::Stale);
    }

    #[test]
    fn only_the_day_the_email_offered_is_kept_and_only_at_an_open_site() {
        let now = at("2022-06-01 10:00");
        let only_a_call = Standing::Open {
            choices: vec![Answer::CallBack, Answer::Withdraw],
            date: None,
        };
        // A new plan proposed another day after the email.
        let mut s = reopened(NaiveDate::from_ymd_opt(2022, 11, 7));
        s.proposed_at = NaiveDate::from_ymd_opt(2022, 11, 14);
        assert_eq!(s.standing(now), only_a_call);
        assert_eq!(effect(&s, Answer::Keep).1, Then::Nothing);
        // The email offered no day; a plan proposed one since.
        let mut s = reopened(None);
        s.proposed_at = NaiveDate::from_ymd_opt(2022, 11, 7);
        assert_eq!(s.standing(now), only_a_call);
        // The site closed again.
        let mut s = reopened(NaiveDate::from_ymd_opt(2022, 11, 7));
        s.site_open = false;
        assert_eq!(s.standing(now), only_a_call);
    }

    #[test]
    fn the_spring_gap_moves_an_hour_later() {
        // 02:30 local does not exist on 27 March 2022.
        let like = at("2022-01-10 01:30"); // 02:30 in Brussels (winter)
        let day = NaiveDate::from_ymd_opt(2022, 3, 27).expect("day");
        assert_eq!(same_time_on(day, like), Some(at("2022-03-27 01:30")));
    }
}
