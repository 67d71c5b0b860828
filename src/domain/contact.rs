//! Ways to reach someone: a phone number in E.164 and an email address, both valid once built.

use std::fmt;

use super::Invalid;

/// A phone number in E.164 (`+3261234567`), parsed by the `phonenumber` crate (libphonenumber's
/// metadata). National Belgian formats (`061 23 45 67`, `0470 12 34 56`) and international ones
/// (`+33 1 23 45 67 89`, `0033…`) are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

impl PhoneE164 {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        let refuse = || Invalid("is not a phone number".into());
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(refuse());
        }
        // Separators people type are dropped first (the crate stumbles on some of them right
        // after a country code); "00" is the international prefix from Belgium.
        let compact: String = trimmed
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '/' | '-' | '\u{a0}'))
            .collect();
        let normalised = match compact.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => compact,
        };
        let number = phonenumber::parse(Some(phonenumber::country::Id::BE), &normalised)
            .map_err(|_| refuse())?;
        if !phonenumber::is_valid(&number) {
            return Err(refuse());
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The international form people read (`+32 61 23 45 67`). Spreadsheets keep it as text,
    /// where a bare `+3261234567` would become the number 3261234567.
    pub fn international(&self) -> String {
        phonenumber::parse(None, &self.0)
            .map(|n| {
                n.format()
                    .mode(phonenumber::Mode::International)
                    .to_string()
            })
            .unwrap_or_else(|_| self.0.clone())
    }
}

/// A phone number in E.164 as people read it (`+32 63 55 30 00`), and for a `tel:` link;
/// `None` if it is not a phone number. Emails write their services' phones with it, and the
/// `.xlsx` contact list its patients'. Parsing and formatting a number takes about 25 µs
/// (libphonenumber's metadata), most of the cost of an email, and a hospital has a few dozen
/// services: the answers are kept, at most 10,000 of them.
pub fn phone_text(e164: &str) -> Option<(String, String)> {
    type Memo = std::sync::Mutex<std::collections::HashMap<String, Option<(String, String)>>>;
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = memo.get(e164) {
        return known.clone();
    }
    let text = PhoneE164::parse(e164)
        .ok()
        .map(|p| (p.international(), p.as_str().to_string()));
    if memo.len() >= 10_000 {
        memo.clear();
    }
    memo.insert(e164.to_string(), text.clone());
    text
}

impl fmt::Display for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address (RFC 5322 addr-spec, as checked by the `email_address` crate), trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        let refuse = || Invalid("is not an email address".into());
        // A display name ("Marie <m@x.be>") is not an address to store.
        if trimmed.len() > 254 || trimmed.contains(['<', '>', ' ']) {
            return Err(refuse());
        }
        let parsed: email_address::EmailAddress = trimmed.parse().map_err(|_| refuse())?;
        // A bare host name is legal but useless for patients' mail.
        if !parsed.domain().contains('.') {
            return Err(refuse());
        }
        Ok(Self(parsed.as_str().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn belgian_national_formats_become_e164() {
        assert_eq!(
            PhoneE164::parse("061 23 45 67").map(|p| p.0),
            Ok("+3261234567".into())
        );
        assert_eq!(
            PhoneE164::parse("0470 12 34 56").map(|p| p.0),
            Ok("+32470123456".into())
        );
        assert_eq!(
            PhoneE164::parse("+32 61 23 45 67").map(|p| p.0),
            Ok("+3261234567".into())
        );
        assert_eq!(
            PhoneE164::parse("0032 61/23.45.67").map(|p| p.0),
            Ok("+3261234567".into())
        );
    }

    #[test]
    fn the_international_form_is_spaced() {
        let phone = PhoneE164::parse("061 23 45 67").expect("valid");
        assert_eq!(phone.international(), "+32 61 23 45 67");
        assert_eq!(PhoneE164::parse(&phone.international()), Ok(phone));
    }

    #[test]
    fn international_numbers_are_kept() {
        assert_eq!(
            PhoneE164::parse("+33 1 23 45 67 89").map(|p| p.0),
            Ok("+33123456789".into())
        );
        assert_eq!(
            PhoneE164::parse("+352 621 123 456").map(|p| p.0),
            Ok("+352621123456".into())
        );
    }

    #[test]
    fn non_numbers_are_refused() {
        for bad in ["", "abc", "123", "+32 0", "061 23 45 67 89 10 11", "☎"] {
            assert!(PhoneE164::parse(bad).is_err(), "{bad}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn belgian_mobiles_parse_in_any_usual_form(
            operator in 60u32..=99, rest in 0u32..1_000_000,
            sep in prop::sample::select(vec![" ", ".", "/", "", "-"]),
            prefix in prop::sample::select(vec!["0", "+32 ", "0032 ", "+32"]),
        ) {
            let digits = format!("4{operator}{rest:06}");
            let typed = format!("{prefix}{}{sep}{}{sep}{}{sep}{}", &digits[0..3], &digits[3..5], &digits[5..7], &digits[7..9]);
            let parsed = PhoneE164::parse(&typed);
            prop_assert_eq!(parsed.map(|p| p.0), Ok(format!("+32{digits}")));
        }

        #[test]
        fn arbitrary_text_never_panics_the_parsers(s in "\\PC{0,60}") {
            let _ = PhoneE164::parse(&s);
            let _ = Email::parse(&s);
        }

        #[test]
        fn simple_addresses_are_accepted(local in "[a-z][a-z0-9.]{0,20}[a-z0-9]", domain in "[a-z]{2,12}", tld in "(be|lu|com|org)") {
            let raw = format!("{local}@{domain}.{tld}");
            prop_assume!(!raw.contains(".."));
            prop_assert_eq!(Email::parse(&raw).map(|e| e.0), Ok(raw));
        }
    }

    #[test]
    fn emails_are_checked() {
        assert_eq!(
            Email::parse(" marie@example.be ").map(|e| e.0),
            Ok("marie@example.be".into())
        );
        for bad in [
            "",
            "marie",
            "marie@",
            "@x.be",
            "Marie <marie@x.be>",
            "marie@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
