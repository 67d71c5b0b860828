//! Calls to the call centre: why people call and how the call ended (CONTRACT §4.6).

use super::{Faults, Invalid, PhoneE164};

text_enum!(
    /// Why the patient called.
    Reason {
        AppointmentStatus => "appointment_status",
        RescheduleRequest => "reschedule_request",
        Cancellation => "cancellation",
        MedicalQuestion => "medical_question",
        Prescription => "prescription",
        Results => "results",
        Administrative => "administrative",
        Other => "other",
    }
);

text_enum!(
    /// How the call ended.
    Outcome {
        Informed => "informed",
        ForwardedToService => "forwarded_to_service",
        CallbackScheduled => "callback_scheduled",
        AppointmentCancelled => "appointment_cancelled",
        Abandoned => "abandoned",
    }
);

text_enum!(
    /// Whether the call centre is taking calls.
    CentreStatus {
        Active => "active",
        Deactivated => "deactivated",
    }
);

/// Longest notes kept with a call.
pub const MAX_NOTES: usize = 2000;
/// Longest call accepted: a whole day.
pub const MAX_DURATION_SECONDS: i64 = 86_400;

pub fn parse_duration(seconds: i64) -> Result<i32, Invalid> {
    if (0..=MAX_DURATION_SECONDS).contains(&seconds) {
        i32::try_from(seconds).map_err(|_| Invalid("is too long".into()))
    } else {
        Err(Invalid(format!(
            "must be between 0 and {MAX_DURATION_SECONDS} seconds"
        )))
    }
}

/// Free-text notes: at most 2,000 characters; blank is none.
pub fn parse_notes(raw: &str) -> Result<Option<String>, Invalid> {
    let text = raw.trim();
    if text.chars().count() > MAX_NOTES {
        return Err(Invalid(format!("must be at most {MAX_NOTES} characters")));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Invalid("must not contain control characters".into()));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// A call as a client sends it: the API's body, the agents' form.
#[derive(Debug, Clone, Default)]
pub struct CallInput<'a> {
    /// RFC 3339; none: now.
    pub received_at: Option<&'a str>,
    pub caller_phone: Option<&'a str>,
    pub patient_id: Option<&'a str>,
    pub appointment_id: Option<&'a str>,
    pub reason: &'a str,
    pub outcome: &'a str,
    pub duration_seconds: Option<i64>,
    pub notes: Option<&'a str>,
    pub callback_requested: bool,
    /// The PBX call this is (`phone_calls.id`): its time, number and duration win.
    pub phone_call_id: Option<&'a str>,
    /// RFC 3339: when a `callback_scheduled` call's callback is due; none: now.
    pub callback_due_at: Option<&'a str>,
}

/// A call to log, every field checked (the references it names are checked when it is
/// stored: they are data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    /// `None`: when it is logged.
    pub received_at: Option<chrono::NaiveDateTime>,
    pub caller_phone: Option<PhoneE164>,
    pub patient_id: Option<String>,
    pub appointment_id: Option<String>,
    pub reason: Reason,
    pub outcome: Outcome,
    pub duration_seconds: Option<i32>,
    pub notes: Option<String>,
    pub callback_requested: bool,
    /// The PBX call this is, checked when it is stored.
    pub phone_call_id: Option<String>,
    /// When its callback is due (outcome `callback_scheduled` only); `None`: when logged.
    pub callback_due_at: Option<chrono::NaiveDateTime>,
}

impl NewCall {
    /// Checks every field; all the faults at once.
    pub fn parse(input: &CallInput<'_>, now: chrono::NaiveDateTime) -> Result<Self, Faults> {
        let mut f = Faults::default();
        let received_at = f.check_opt("received_at", input.received_at, |raw| {
            super::time::parse_instant(raw).and_then(|t| not_future(t, now))
        });
        let phone = f.check_opt(
            "caller_phone",
            input.caller_phone.filter(|s| !s.trim().is_empty()),
            PhoneE164::parse,
        );
        let reason = f.check("reason", Reason::parse(input.reason));
        let outcome = f.check("outcome", Outcome::parse(input.outcome));
        let duration = f.check_opt("duration_seconds", input.duration_seconds, parse_duration);
        let notes = f.check_opt("notes", input.notes, parse_notes);
        let due = f.check_opt("callback_due_at", input.callback_due_at, |raw| {
            super::callback::parse_due(raw, now)
        });
        if input.callback_due_at.is_some() && outcome != Some(Outcome::CallbackScheduled) {
            f.push(
                "callback_due_at",
                "is only for a call with outcome callback_scheduled",
            );
        }
        f.finish((|| {
            Some(NewCall {
                received_at: received_at?,
                caller_phone: phone?,
                patient_id: input.patient_id.map(str::to_string),
                appointment_id: input.appointment_id.map(str::to_string),
                reason: reason?,
                outcome: outcome?,
                duration_seconds: duration?,
                notes: notes?.flatten(),
                callback_requested: input.callback_requested,
                phone_call_id: input.phone_call_id.map(str::to_string),
                callback_due_at: due?,
            })
        })())
    }
}

/// A call cannot have been received more than a few minutes in the future (clock skew).
pub fn not_future(
    t: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> Result<chrono::NaiveDateTime, Invalid> {
    if t > now + chrono::Duration::minutes(5) {
        Err(Invalid("is in the future".into()))
    } else {
        Ok(t)
    }
}

/// A client's key for one call (the `Idempotency-Key` header, or the call form's hidden
/// field): 1 to 200 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let key = raw.trim();
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid("must be 1 to 200 visible ASCII characters".into()));
        }
        Ok(Self(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Size of the buckets of a calls-per-time series, in Brussels local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            _ => Err(Invalid("must be hour or day".into())),
        }
    }
}

/// Most buckets in one series.
pub const MAX_BUCKETS: usize = 10_000;

/// Folds calls per UTC hour into Brussels-local buckets from the bucket holding `from` to the
/// one holding the last instant before `to`, empty buckets included. A Brussels day is 23, 24
/// or 25 UTC hours; a Brussels hour is always one UTC hour.
pub fn local_series(
    hours: &[(chrono::NaiveDateTime, i64)],
    bucket: Bucket,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> Result<Vec<(chrono::DateTime<chrono_tz::Tz>, i64)>, Invalid> {
    use chrono::{Duration, TimeZone, Timelike};
    use chrono_tz::Europe::Brussels;

    let start_of = |utc: chrono::NaiveDateTime| -> chrono::NaiveDateTime {
        let local = Brussels.from_utc_datetime(&utc);
        match bucket {
            Bucket::Hour => utc
                .with_minute(0)
                .and_then(|t| t.with_second(0))
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(utc),
            Bucket::Day => {
                let midnight = local.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
                Brussels
                    .from_local_datetime(&midnight)
                    .earliest()
                    .map(|t| t.naive_utc())
                    .unwrap_or(utc)
            }
        }
    };
    let next = |start: chrono::NaiveDateTime| -> chrono::NaiveDateTime {
        match bucket {
            Bucket::Hour => start + Duration::hours(1),
            // Past the longest day, then back to its local midnight.
            Bucket::Day => start_of(start + Duration::hours(26)),
        }
    };
    if to <= from {
        return Ok(Vec::new());
    }
    let mut series = Vec::new();
    let mut start = start_of(from);
    let mut hours = hours.iter().peekable();
    while start < to {
        if series.len() >= MAX_BUCKETS {
            return Err(Invalid(format!(
                "asks for more than {MAX_BUCKETS} buckets; narrow from and to, or use bucket=day"
            )));
        }
        let end = next(start);
        let mut count = 0;
        while let Some((hour, n)) = hours.peek() {
            if *hour >= end {
                break;
            }
            if *hour >= start {
                count += n;
            }
            hours.next();
        }
        series.push((Brussels.from_utc_datetime(&start), count));
        start = end;
    }
    Ok(series)
}

/// Calls per Brussels day, from calls per UTC hour.
pub fn per_day(
    hours: &[(chrono::NaiveDateTime, i64)],
) -> std::collections::BTreeMap<chrono::NaiveDate, i64> {
    let mut days = std::collections::BTreeMap::new();
    for (hour, calls) in hours {
        *days
            .entry(super::time::brussels(*hour).date_naive())
            .or_insert(0) += calls;
    }
    days
}

/// The days to chart when nobody chose any: the `width` days in a row that hold the most
/// calls (the latest of equal ones), trimmed to the days that have calls. A call logged with
/// a wrong year, or the first call of a quiet day long after the crisis, holds one call: it
/// never moves the window away from the thousands of the crisis.
pub fn busiest_days(
    days: &std::collections::BTreeMap<chrono::NaiveDate, i64>,
    width: i64,
) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
    let list: Vec<(chrono::NaiveDate, i64)> = days.iter().map(|(d, n)| (*d, *n)).collect();
    let mut best: Option<(i64, usize, usize)> = None;
    let (mut end, mut sum) = (0usize, 0i64);
    // A best window can always start on a day with calls: slide its start over those.
    for start in 0..list.len() {
        let last_day = list[start].0 + chrono::Duration::days(width.max(1) - 1);
        while end < list.len() && list[end].0 <= last_day {
            sum += list[end].1;
            end += 1;
        }
        if best.is_none_or(|(most, _, _)| sum >= most) {
            best = Some((sum, start, end - 1));
        }
        sum -= list[start].1;
    }
    best.map(|(_, first, last)| (list[first].0, list[last].0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(raw: &str) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn the_chart_keeps_the_crisis_whatever_one_call_says() {
        let mut days = std::collections::BTreeMap::new();
        // Three weeks of May 2022, thousands a day.
        for d in 0..21 {
            days.insert(
                day("2022-05-14") + chrono::Duration::days(d),
                2_000 - 50 * d,
            );
        }
        assert_eq!(
            busiest_days(&days, 92),
            Some((day("2022-05-14"), day("2022-06-03")))
        );
        // One call today, one with a wrong year each way: the window does not move.
        days.insert(day("2026-12-04"), 1);
        days.insert(day("2202-05-20"), 1);
        days.insert(day("2002-05-20"), 1);
        assert_eq!(
            busiest_days(&days, 92),
            Some((day("2022-05-14"), day("2022-06-03")))
        );
        assert_eq!(busiest_days(&std::collections::BTreeMap::new(), 92), None);
        // A single day of calls is a window of one day.
        let one = std::collections::BTreeMap::from([(day("2026-12-04"), 3)]);
        assert_eq!(
            busiest_days(&one, 92),
            Some((day("2026-12-04"), day("2026-12-04")))
        );
    }

    #[test]
    fn hours_are_counted_on_their_brussels_day() {
        let hour = |raw: &str| {
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M").expect("a time")
        };
        // 22:00 UTC on 14 May is midnight in Brussels (summer time): the 15th.
        let days = per_day(&[(hour("2022-05-14 21:00"), 5), (hour("2022-05-14 22:00"), 7)]);
        assert_eq!(days.get(&day("2022-05-14")), Some(&5));
        assert_eq!(days.get(&day("2022-05-15")), Some(&7));
    }

    fn utc(raw: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M").unwrap_or_default()
    }

    #[test]
    fn days_are_belgian_days_summer_time_included() {
        // 13 May 2022 23:30 UTC is already 14 May in Brussels (UTC+2).
        let hours = [
            (utc("2022-05-13 21:00"), 2),
            (utc("2022-05-13 22:00"), 3),
            (utc("2022-05-14 22:00"), 5),
        ];
        let series = local_series(
            &hours,
            Bucket::Day,
            utc("2022-05-13 00:00"),
            utc("2022-05-15 00:00"),
        )
        .expect("ok");
        let shown: Vec<(String, i64)> = series.iter().map(|(t, n)| (t.to_rfc3339(), *n)).collect();
        assert_eq!(
            shown,
            [
                ("2022-05-13T00:00:00+02:00".to_string(), 2),
                ("2022-05-14T00:00:00+02:00".to_string(), 3),
                ("2022-05-15T00:00:00+02:00".to_string(), 5),
            ]
        );
    }

    #[test]
    fn the_day_summer_time_starts_has_23_hours() {
        // 27 March 2022: 00:00 local is 23:00 UTC the day before; the next midnight is 22:00 UTC.
        let hours = [
            (utc("2022-03-26 23:00"), 1),
            (utc("2022-03-27 21:00"), 4),
            (utc("2022-03-27 22:00"), 7),
        ];
        let series = local_series(
            &hours,
            Bucket::Day,
            utc("2022-03-26 23:00"),
            utc("2022-03-28 22:00"),
        )
        .expect("ok");
        let counts: Vec<i64> = series.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [5, 7]);
        assert_eq!(series[1].0.to_rfc3339(), "2022-03-28T00:00:00+02:00");
    }

    #[test]
    fn hour_buckets_include_empty_hours() {
        let hours = [(utc("2022-05-14 08:00"), 3), (utc("2022-05-14 10:00"), 1)];
        let series = local_series(
            &hours,
            Bucket::Hour,
            utc("2022-05-14 08:00"),
            utc("2022-05-14 11:00"),
        )
        .expect("ok");
        let counts: Vec<i64> = series.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [3, 0, 1]);
        assert_eq!(series[0].0.to_rfc3339(), "2022-05-14T10:00:00+02:00");
    }

    #[test]
    fn huge_series_are_refused() {
        assert!(local_series(
            &[],
            Bucket::Hour,
            utc("2000-01-01 00:00"),
            utc("2022-01-01 00:00")
        )
        .is_err());
        assert!(local_series(
            &[],
            Bucket::Day,
            utc("2000-01-01 00:00"),
            utc("2022-01-01 00:00")
        )
        .is_ok());
    }

    #[test]
    fn every_contract_name_round_trips() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Ok(*r));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Ok(*o));
        }
        assert_eq!(Reason::ALL.len(), 8);
        assert_eq!(Outcome::ALL.len(), 5);
        assert!(Reason::parse("complaint").is_err());
    }

    #[test]
    fn notes_and_durations_have_limits() {
        assert_eq!(parse_notes("  "), Ok(None));
        assert!(parse_notes(&"é".repeat(2000)).is_ok());
        assert!(parse_notes(&"é".repeat(2001)).is_err());
        assert!(parse_duration(-1).is_err());
        assert_eq!(parse_duration(90), Ok(90));
        assert!(parse_duration(86_401).is_err());
    }

    proptest! {
        #[test]
        fn only_contract_names_parse(s in "\\\\PC{0,24}") {
            prop_assert_eq!(Reason::parse(&s).is_ok(), Reason::ALL.iter().any(|r| r.as_str() == s));
            prop_assert_eq!(Outcome::parse(&s).is_ok(), Outcome::ALL.iter().any(|o| o.as_str() == s));
        }
    }
}
