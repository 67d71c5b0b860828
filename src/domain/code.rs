//! Codes of sites and services (`ARL`, `ARL-CHIR`): short, upper-case, safe in URLs and files.

use std::fmt;

use super::Invalid;

fn parse_code(raw: &str, max: usize) -> Result<String, Invalid> {
    let ok_len = (2..=max).contains(&raw.len());
    let ok_chars = raw
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok_len && ok_chars {
        Ok(raw.to_string())
    } else {
        Err(Invalid(format!(
            "must be 2 to {max} characters among A-Z, 0-9 and -"
        )))
    }
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                parse_code(raw, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    /// A site's code: 2–16 of `A-Z 0-9 -` (CONTRACT §4.1).
    SiteCode,
    16
);
code_type!(
    /// A service's code: the same alphabet, up to 32 so that `SITE-SPECIALTY` fits.
    ServiceCode,
    32
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_codes_follow_the_contract_pattern() {
        for ok in ["AR", "ARL", "ARL-2", "ABCDEFGHIJKLMNOP"] {
            assert!(SiteCode::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "arl",
            "AR L",
            "ARLÉ",
            "ABCDEFGHIJKLMNOPQ",
            "AR_L",
            "AR/L",
        ] {
            assert!(SiteCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_codes_may_be_longer() {
        assert!(ServiceCode::parse("MAR-GYNECOLOGIE-OBST").is_ok());
        assert!(ServiceCode::parse(&"A".repeat(33)).is_err());
    }
}
