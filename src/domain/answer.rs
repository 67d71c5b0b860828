//! Patients answer by email: the signed link an email carries, the choices its page offers,
//! and what each answer does to the appointment. See docs/operations.md, "Patients answer by email".
//!
//! A link names one appointment of one email. Its URL holds a random link id and the id's
//! signature (HMAC-SHA256 under a key kept in the database), nothing about the patient. The
//! first answer uses the link up; after its expiry, or once the appointment has moved on from
//! what the email said, the page says so and offers nothing.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use hmac::{Hmac, Mac};
use sha2::Sha256;

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

/// The link's id and its signature, each 16 bytes, as 64 lower-case hex digits.
const ID_BYTES: usize = 16;
const MAC_BYTES: usize = 16;
/// Binds the signature to this one use of the key.
const PURPOSE: &[u8] = b"reprise answer link v1:";

/// Signs and checks link tokens.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(…)")
    }
}

impl Signer {
    /// A signer with a key of at least 32 bytes.
    pub fn new(key: Vec<u8>) -> Result<Self, Invalid> {
        if key.len() < 32 {
            return Err(Invalid("a link key has at least 32 bytes".into()));
        }
        Ok(Self { key })
    }

    fn mac(&self, id: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(PURPOSE);
        mac.update(id);
        mac
    }

    /// A new random link id (32 hex digits).
    pub fn new_id() -> String {
        let mut id = [0u8; ID_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        hex::encode(id)
    }

    /// The token of a link id, for its URL. `None` if `id` is not a link id.
    pub fn token(&self, id: &str) -> Option<String> {
        let raw = hex::decode(id).ok().filter(|b| b.len() == ID_BYTES)?;
        let tag = self.mac(&raw).finalize().into_bytes();
        Some(format!("{id}{}", hex::encode(&tag[..MAC_BYTES])))
    }

    /// The link id of a token whose signature holds (checked in constant time).
    pub fn verify(&self, token: &str) -> Option<String> {
        if token.len() != 2 * (ID_BYTES + MAC_BYTES)
            || !token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let (id, tag) = token.split_at(2 * ID_BYTES);
        let raw = hex::decode(id).ok()?;
        let tag = hex::decode(tag).ok()?;
        self.mac(&raw).verify_truncated_left(&tag).ok()?;
        Some(id.to_string())
    }
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

    fn signer() -> Signer {
        Signer::new(vec![7; 32]).expect("a key")
    }

    #[test]
    fn a_token_verifies_and_any_change_breaks_it() {
        let s = signer();
        let id = Signer::new_id();
        let token = s.token(&id).expect("a token");
        assert_eq!(token.len(), 64);
        assert_eq!(s.verify(&token).as_deref(), Some(id.as_str()));
        // Each digit changed, one at a time.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let forged = String::from_utf8(bytes).expect("ascii");
            assert_eq!(s.verify(&forged), None, "digit {i}");
        }
        // Another key, another length, upper case, not hex.
        let other = Signer::new(vec![8; 32]).expect("a key");
        assert_eq!(other.verify(&token), None);
        assert_eq!(s.verify(&token[..63]), None);
        assert_eq!(s.verify(&token.to_uppercase()), None);
        assert_eq!(s.verify(&"z".repeat(64)), None);
        assert_eq!(s.verify(""), None);
        assert!(Signer::new(vec![1; 31]).is_err());
        assert_eq!(s.token("not hex"), None);
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
