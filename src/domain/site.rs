//! What kind of place a site is.

use super::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteKind {
    Hospital,
    NursingHome,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Hospital => "hospital",
            SiteKind::NursingHome => "nursing_home",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "hospital" => Ok(SiteKind::Hospital),
            "nursing_home" => Ok(SiteKind::NursingHome),
            _ => Err(Invalid("must be hospital or nursing_home".into())),
        }
    }
}

text_enum!(
    /// Whether a site is working (`open`) or shut by an incident (`closed`).
    SiteStatus {
        Open => "open",
        Closed => "closed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in [SiteKind::Hospital, SiteKind::NursingHome] {
            assert_eq!(SiteKind::parse(k.as_str()), Ok(k));
        }
        assert!(SiteKind::parse("clinic").is_err());
    }
}
