//! Instants and local time. Stored and exchanged in UTC (RFC 3339); shown to people and read
//! from hospital files in Belgian local time, Europe/Brussels, summer time included.

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Europe::Brussels;

use super::Invalid;

/// A strict RFC 3339 timestamp (`2022-05-16T09:30:00+02:00`), as UTC microseconds.
pub fn parse_instant(raw: &str) -> Result<NaiveDateTime, Invalid> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| super::truncate_to_micros(t.naive_utc()))
        .map_err(|_| {
            Invalid("must be an RFC 3339 timestamp such as 2022-05-16T09:30:00+02:00".into())
        })
}

/// An RFC 3339 timestamp, or a local Brussels time without offset (`2022-05-16 09:30`,
/// `2022-05-16T09:30:00`), as hospital exports write them. A time that falls in the spring
/// gap is refused; one in the autumn overlap takes the first (summer-time) reading.
pub fn parse_instant_or_local(raw: &str) -> Result<NaiveDateTime, Invalid> {
    let raw = raw.trim();
    if let Ok(t) = parse_instant(raw) {
        return Ok(t);
    }
    let local = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
    .ok_or_else(|| {
        Invalid(
            "must be a date and time such as 2022-05-16 09:30 (Brussels time) or RFC 3339".into(),
        )
    })?;
    Brussels
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.naive_utc())
        .ok_or_else(|| Invalid("does not exist in Brussels time (summer-time change)".into()))
}

/// A stored time (UTC, naive) as the instant it is, for answers (RFC 3339 with `Z`).
pub fn utc(t: NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

/// The instant (UTC) a Brussels day starts.
pub fn brussels_midnight(day: chrono::NaiveDate) -> NaiveDateTime {
    use chrono::TimeZone;
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    chrono_tz::Europe::Brussels
        .from_local_datetime(&midnight)
        .earliest()
        .map_or(midnight, |t| t.naive_utc())
}

/// `14/05/2022 à 09:30`-style parts: the Brussels local date and time of a UTC instant.
pub fn brussels(t: NaiveDateTime) -> chrono::DateTime<chrono_tz::Tz> {
    Brussels.from_utc_datetime(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(raw: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M").unwrap_or_default()
    }

    #[test]
    fn local_times_follow_brussels_summer_time() {
        // May: UTC+2. January: UTC+1.
        assert_eq!(
            parse_instant_or_local("2022-05-16 09:30"),
            Ok(utc("2022-05-16 07:30"))
        );
        assert_eq!(
            parse_instant_or_local("2022-01-16T09:30"),
            Ok(utc("2022-01-16 08:30"))
        );
        assert_eq!(
            parse_instant_or_local("2022-05-16T09:30:00Z"),
            Ok(utc("2022-05-16 09:30"))
        );
    }

    #[test]
    fn the_spring_gap_is_refused() {
        assert!(parse_instant_or_local("2022-03-27 02:30").is_err());
        assert!(parse_instant_or_local("2022-10-30 02:30").is_ok());
    }

    #[test]
    fn junk_is_refused() {
        for bad in [
            "",
            "tomorrow",
            "2022-02-30 10:00",
            "16/05/2022 09:30",
            "2022-05-16",
        ] {
            assert!(parse_instant_or_local(bad).is_err(), "{bad}");
        }
        assert!(
            parse_instant("2022-05-16 09:30").is_err(),
            "strict RFC 3339"
        );
    }

    #[test]
    fn brussels_shows_local_time() {
        assert_eq!(
            brussels(utc("2022-05-14 07:30"))
                .format("%d/%m/%Y %H:%M")
                .to_string(),
            "14/05/2022 09:30"
        );
    }
}
