//! The Belgian national register number (numéro de registre national, rijksregisternummer).
//!
//! `YYMMDD SSS CC`: birth date, a serial, and check digits `97 - (YYMMDDSSS mod 97)`, computed
//! with a leading `2` (`2YYMMDDSSS`) for people born from 2000 on. Bis numbers (for people not
//! in the register) add 20 or 40 to the month. A date component may be `00` when unknown.
//! The check digits therefore tell the century, and a number is only accepted together with a
//! birth date it agrees with (see [`NationalNumber::agrees_with`]).

use std::fmt;

use chrono::Datelike;

use super::Invalid;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NationalNumber {
    digits: String,
    /// The century the check digits point to: 1900 or 2000.
    century: i32,
}

// Never print the number itself: Debug output can end up in logs.
impl fmt::Debug for NationalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NationalNumber(***)")
    }
}

fn check_digits(first_nine: u64, born_from_2000: bool) -> u64 {
    let base = if born_from_2000 {
        2_000_000_000 + first_nine
    } else {
        first_nine
    };
    97 - base % 97
}

impl NationalNumber {
    /// Accepts 11 digits with any of the usual separators (`.`, `-`, `/`, spaces).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.len() > 40 {
            return Err(Invalid("is not a national number (11 digits)".into()));
        }
        let mut digits = String::with_capacity(11);
        for c in raw.chars() {
            match c {
                '0'..='9' => digits.push(c),
                '.' | '-' | '/' | ' ' => {}
                _ => return Err(Invalid("is not a national number (11 digits)".into())),
            }
        }
        if digits.len() != 11 {
            return Err(Invalid("must have 11 digits".into()));
        }
        let number = |range: std::ops::Range<usize>| digits[range].parse::<u64>().unwrap_or(0);
        let (month, day) = (number(2..4), number(4..6));
        let month_of_year = month % 20;
        if month > 52 || month_of_year > 12 || day > 31 {
            return Err(Invalid("does not start with a birth date".into()));
        }
        let first_nine = number(0..9);
        let given = number(9..11);
        let century = if check_digits(first_nine, false) == given {
            1900
        } else if check_digits(first_nine, true) == given {
            2000
        } else {
            return Err(Invalid("has wrong check digits".into()));
        };
        Ok(Self { digits, century })
    }

    /// Checks the number against a birth date: same year, month and day where the number knows
    /// them, and the century its check digits point to.
    pub fn agrees_with(&self, birth_date: chrono::NaiveDate) -> Result<(), Invalid> {
        let part = |range: std::ops::Range<usize>| self.digits[range].parse::<u32>().unwrap_or(0);
        let (yy, mm, dd) = (part(0..2), part(2..4) % 20, part(4..6));
        let year = birth_date.year();
        let same_year = i64::from(yy) == i64::from(year.rem_euclid(100));
        let same_month = mm == 0 || mm == birth_date.month();
        let same_day = dd == 0 || dd == birth_date.day();
        if !(same_year && same_month && same_day) {
            return Err(Invalid("does not match the birth date".into()));
        }
        let born_century = if year >= 2000 { 2000 } else { 1900 };
        if born_century != self.century {
            return Err(Invalid(
                "has check digits of a person born in another century than the birth date".into(),
            ));
        }
        Ok(())
    }

    /// The 11 digits.
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// `YY.MM.DD-SSS.CC`, as printed on Belgian identity cards.
    pub fn formatted(&self) -> String {
        let d = &self.digits;
        format!(
            "{}.{}.{}-{}.{}",
            &d[0..2],
            &d[2..4],
            &d[4..6],
            &d[6..9],
            &d[9..11]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn make(date: chrono::NaiveDate, serial: u32, bis_offset: u32) -> String {
        let nine = format!(
            "{:02}{:02}{:02}{:03}",
            date.year() % 100,
            date.month() + bis_offset,
            date.day(),
            serial
        );
        let cc = check_digits(nine.parse().unwrap_or(0), date.year() >= 2000);
        format!("{nine}{cc:02}")
    }

    fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn known_numbers_parse() {
        // 85.07.30-033.28: born 30 July 1985 (the classic example).
        let n = NationalNumber::parse("85.07.30-033.28").expect("valid");
        assert_eq!(n.as_str(), "85073003328");
        assert_eq!(n.formatted(), "85.07.30-033.28");
        assert!(n.agrees_with(date(1985, 7, 30)).is_ok());
        // Born 1 February 2017: check digits with the leading 2.
        let n = NationalNumber::parse("17020100178").expect("valid");
        assert!(n.agrees_with(date(2017, 2, 1)).is_ok());
    }

    #[test]
    fn a_wrong_check_digit_is_refused() {
        assert!(NationalNumber::parse("85073003327").is_err());
        assert!(NationalNumber::parse("85073003329").is_err());
    }

    #[test]
    fn the_century_must_match_the_birth_date() {
        // Valid digits for 2017; the same six first digits for 1917 do not agree.
        let n = NationalNumber::parse("17020100178").expect("valid");
        assert!(n.agrees_with(date(1917, 2, 1)).is_err());
        let old = make(date(1917, 2, 1), 1, 0);
        let old = NationalNumber::parse(&old).expect("valid");
        assert!(old.agrees_with(date(1917, 2, 1)).is_ok());
        assert!(old.agrees_with(date(2017, 2, 1)).is_err());
    }

    #[test]
    fn bis_numbers_add_20_or_40_to_the_month() {
        for offset in [20, 40] {
            let raw = make(date(1990, 3, 12), 123, offset);
            let n = NationalNumber::parse(&raw).expect("bis number");
            assert!(n.agrees_with(date(1990, 3, 12)).is_ok());
        }
    }

    #[test]
    fn the_birth_date_must_match() {
        let n = NationalNumber::parse("85.07.30-033.28").expect("valid");
        assert!(n.agrees_with(date(1985, 7, 31)).is_err());
        assert!(n.agrees_with(date(1985, 8, 30)).is_err());
        assert!(n.agrees_with(date(1986, 7, 30)).is_err());
    }

    #[test]
    fn junk_is_refused() {
        for bad in [
            "",
            "8507300332",
            "850730033288",
            "85O73003328",
            "85.13.30-033.xx",
            "99999999999",
        ] {
            assert!(NationalNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_number() {
        let n = NationalNumber::parse("85073003328").expect("valid");
        assert!(!format!("{n:?}").contains("850730"));
    }

    proptest! {
        #[test]
        fn every_generated_number_parses_in_any_punctuation(
            days in 0i64..(365 * 120), serial in 1u32..998, bis in prop::sample::select(vec![0u32, 20, 40]),
            sep in prop::sample::select(vec!["", ".", " ", "-"]),
        ) {
            let born = date(1905, 1, 1) + chrono::Duration::days(days);
            let raw = make(born, serial, bis);
            let punctuated = format!("{}{sep}{}{sep}{}{sep}{}{sep}{}", &raw[0..2], &raw[2..4], &raw[4..6], &raw[6..9], &raw[9..11]);
            let n = NationalNumber::parse(&punctuated).expect("generated numbers are valid");
            prop_assert_eq!(n.as_str(), raw.as_str());
            prop_assert!(n.agrees_with(born).is_ok());
        }

        #[test]
        fn changing_the_check_digits_breaks_it(days in 0i64..(365 * 120), serial in 1u32..998, delta in 1u64..96) {
            let born = date(1905, 1, 1) + chrono::Duration::days(days);
            let raw = make(born, serial, 0);
            let cc: u64 = raw[9..].parse().unwrap_or(0);
            let wrong = format!("{}{:02}", &raw[..9], (cc + delta - 1) % 97 + 1);
            if let Ok(n) = NationalNumber::parse(&wrong) {
                // The other century's digits can be valid, but never for this birth date.
                prop_assert!(n.agrees_with(born).is_err());
            }
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,64}") {
            let _ = NationalNumber::parse(&s);
        }
    }
}
