//! Appointments: their kind, priority, and the status machine of CONTRACT §4.3.
//!
//! `scheduled` → `postponed` (by an incident only) | `rescheduled` | `cancelled`;
//! `postponed` → `rescheduled` | `cancelled`; `rescheduled` → `rescheduled` | `cancelled`;
//! `cancelled` is final. Every other move is refused, and the original date is never changed.

use std::fmt;

use super::Invalid;

text_enum!(
    /// How a patient was contacted.
    Channel {
        Phone => "phone",
        Email => "email",
        Letter => "letter",
    }
);

text_enum!(
    /// How a contact attempt ended.
    ContactOutcome {
        Reached => "reached",
        NoAnswer => "no_answer",
        Voicemail => "voicemail",
        WrongNumber => "wrong_number",
        Declined => "declined",
    }
);

text_enum!(
    /// Why an appointment was cancelled.
    CancelReason {
        PatientRequest => "patient_request",
        ClinicalDecision => "clinical_decision",
        Duplicate => "duplicate",
        Other => "other",
    }
);

text_enum!(
    /// How much a reopened site works: `moderate` (a reduced programme, as Arlon's four
    /// rooms first did) or `full`.
    Programme {
        Moderate => "moderate",
        Full => "full",
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Scheduled,
    Postponed,
    Rescheduled,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Scheduled,
        Status::Postponed,
        Status::Rescheduled,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Postponed => "postponed",
            Status::Rescheduled => "rescheduled",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Invalid("must be scheduled, postponed, rescheduled or cancelled".into()))
    }

    /// The status after `transition`, or why it is not allowed from here.
    pub fn apply(self, transition: Transition) -> Result<Status, IllegalMove> {
        use Status::*;
        use Transition::*;
        match (self, transition) {
            (Scheduled, Postpone) => Ok(Postponed),
            (Scheduled | Postponed | Rescheduled, Reschedule) => Ok(Rescheduled),
            (Scheduled | Postponed | Rescheduled, Cancel) => Ok(Cancelled),
            (from, transition) => Err(IllegalMove { from, transition }),
        }
    }
}

/// What can happen to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// By an incident only.
    Postpone,
    Reschedule,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalMove {
    pub from: Status,
    pub transition: Transition,
}

impl fmt::Display for IllegalMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.transition {
            Transition::Postpone => "postponed",
            Transition::Reschedule => "rescheduled",
            Transition::Cancel => "cancelled",
        };
        write!(f, "a {} appointment cannot be {verb}", self.from)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Operation,
    Consultation,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Operation => "operation",
            Kind::Consultation => "consultation",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "operation" => Ok(Kind::Operation),
            "consultation" => Ok(Kind::Consultation),
            _ => Err(Invalid("must be operation or consultation".into())),
        }
    }
}

/// Clinical priority of non-urgent care: 1 is the most pressing, 4 the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    pub fn new(n: i64) -> Result<Self, Invalid> {
        u8::try_from(n)
            .ok()
            .filter(|n| (1..=4).contains(n))
            .map(Priority)
            .ok_or_else(|| Invalid("must be 1, 2, 3 or 4".into()))
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        raw.trim()
            .parse::<i64>()
            .map_err(|_| Invalid("must be 1, 2, 3 or 4".into()))
            .and_then(Self::new)
    }

    pub fn get(self) -> i32 {
        i32::from(self.0)
    }
}

/// A short free text (an appointment label, an incident title): trimmed, 1 to `max` characters.
/// An appointment to create, every field checked (what it names is checked when it is
/// stored: the patient, the service and its site are data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAppointment {
    pub patient_id: String,
    pub site: super::SiteCode,
    pub service: super::ServiceCode,
    pub kind: Kind,
    pub label: String,
    pub scheduled_at: chrono::NaiveDateTime,
    pub priority: Priority,
    pub urgent: bool,
    pub essential: bool,
}

/// An appointment as a client sends it (the API's body).
#[derive(Debug, Clone, Copy)]
pub struct AppointmentInput<'a> {
    pub patient_id: &'a str,
    pub site: &'a str,
    pub service: &'a str,
    pub kind: &'a str,
    pub label: &'a str,
    pub scheduled_at: &'a str,
    pub priority: i64,
    pub urgent: bool,
    pub essential: bool,
}

impl NewAppointment {
    /// Checks every field; all the faults at once.
    pub fn parse(input: &AppointmentInput<'_>) -> Result<Self, super::Faults> {
        let mut f = super::Faults::default();
        let site = f.check("site", super::SiteCode::parse(input.site));
        let service = f.check("service", super::ServiceCode::parse(input.service));
        let kind = f.check("kind", Kind::parse(input.kind));
        let label = f.check("label", parse_text(input.label, 200));
        let at = f.check(
            "scheduled_at",
            super::time::parse_instant(input.scheduled_at),
        );
        let priority = f.check("priority", Priority::new(input.priority));
        f.finish((|| {
            Some(NewAppointment {
                patient_id: input.patient_id.to_string(),
                site: site?,
                service: service?,
                kind: kind?,
                label: label?,
                scheduled_at: at?,
                priority: priority?,
                urgent: input.urgent,
                essential: input.essential,
            })
        })())
    }
}

/// A new date given by a person (a secretary on the phone, the API): today or later, in
/// Brussels. A date in the past would be booked and emailed to the patient as their new date.
pub fn new_date(
    at: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> Result<chrono::NaiveDateTime, Invalid> {
    let today = super::time::brussels(now).date_naive();
    if super::time::brussels(at).date_naive() < today {
        return Err(Invalid(IN_THE_PAST.into()));
    }
    Ok(at)
}

/// Why [`new_date`] refuses a date (pages translate it).
pub const IN_THE_PAST: &str = "is in the past: a new date is today or later";

pub fn parse_text(raw: &str, max: usize) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid("must not be empty".into()));
    }
    if text.chars().count() > max {
        return Err(Invalid(format!("must be at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Invalid("must not contain control characters".into()));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_date_is_today_or_later_in_brussels() {
        let at = |raw: &str| {
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M").expect("a time")
        };
        // 4 December, 23:30 UTC is already 5 December in Brussels.
        let now = at("2026-12-04 23:30");
        assert!(new_date(at("2026-12-05 08:00"), now).is_ok());
        assert!(
            new_date(at("2026-12-04 23:00"), now).is_ok(),
            "earlier today, Brussels"
        );
        assert!(
            new_date(at("2026-12-04 22:00"), now).is_err(),
            "yesterday in Brussels"
        );
        assert!(new_date(at("2020-01-01 08:00"), now).is_err());
    }

    #[test]
    fn the_contract_moves_are_allowed() {
        use Status::*;
        use Transition::*;
        assert_eq!(Scheduled.apply(Postpone), Ok(Postponed));
        assert_eq!(Scheduled.apply(Reschedule), Ok(Rescheduled));
        assert_eq!(Scheduled.apply(Cancel), Ok(Cancelled));
        assert_eq!(Postponed.apply(Reschedule), Ok(Rescheduled));
        assert_eq!(Postponed.apply(Cancel), Ok(Cancelled));
        assert_eq!(Rescheduled.apply(Reschedule), Ok(Rescheduled));
        assert_eq!(Rescheduled.apply(Cancel), Ok(Cancelled));
    }

    #[test]
    fn every_other_move_is_illegal() {
        use Status::*;
        use Transition::*;
        for from in [Postponed, Rescheduled, Cancelled] {
            assert!(from.apply(Postpone).is_err(), "{from} → postponed");
        }
        for t in [Postpone, Reschedule, Cancel] {
            let err = Cancelled.apply(t).expect_err("cancelled is final");
            assert!(err.to_string().contains("cancelled"));
        }
    }

    #[test]
    fn priorities_are_one_to_four() {
        assert!(Priority::new(0).is_err());
        assert!(Priority::new(5).is_err());
        assert_eq!(Priority::parse(" 2 ").map(Priority::get), Ok(2));
        assert!(Priority::parse("high").is_err());
        assert!(Priority::new(1).ok() < Priority::new(4).ok());
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn priorities_outside_one_to_four_are_refused(n in any::<i64>()) {
            prop_assert_eq!(Priority::new(n).is_ok(), (1..=4).contains(&n));
        }

        #[test]
        fn only_exact_names_parse(s in "\\PC{0,20}") {
            prop_assert_eq!(Kind::parse(&s).is_ok(), s == "operation" || s == "consultation");
            prop_assert_eq!(Status::parse(&s).is_ok(), Status::ALL.iter().any(|x| x.as_str() == s));
        }

        #[test]
        fn no_move_leaves_cancelled(t in prop::sample::select(vec![Transition::Postpone, Transition::Reschedule, Transition::Cancel])) {
            prop_assert!(Status::Cancelled.apply(t).is_err());
        }
    }

    #[test]
    fn statuses_and_kinds_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Ok(s));
        }
        for k in [Kind::Operation, Kind::Consultation] {
            assert_eq!(Kind::parse(k.as_str()), Ok(k));
        }
        assert!(Kind::parse("surgery").is_err());
    }
}
