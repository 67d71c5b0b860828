//! Plain-Rust rules of the trade: types that are valid once they exist, and the decisions
//! (who may do what) that do not depend on HTTP or SQL.
//!
//! The one rule: nothing here knows about actix or diesel, so all of it is unit-tested alone.

/// An enum written as fixed lower-case names (`as_str`, `parse`, `ALL`), as the contract
/// spells them.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                match raw {
                    $($text => Ok($name::$variant),)*
                    _ => Err(Invalid(format!(
                        "must be one of {}",
                        [$($text),*].join(", ")
                    ))),
                }
            }
        }

        serialized_by_name!($name);
    };
}

/// Serializes an enum with an `as_str` as that name (in JSON answers and audit details).
macro_rules! serialized_by_name {
    ($($name:ty),*) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

pub mod account;
pub mod answer;
pub mod appointment;
pub mod call;
pub mod callback;
pub mod code;
pub mod contact;
pub mod cti;
pub mod export;
pub mod incident;
pub mod national_number;
pub mod notification;
pub mod patient;
pub mod plan;
pub mod role;
pub mod site;
pub mod time;

pub use code::{ServiceCode, SiteCode};
pub use contact::{Email, PhoneE164};
pub use national_number::NationalNumber;
pub use role::{Action, Role};
pub use site::SiteKind;

serialized_by_name!(
    appointment::Status,
    appointment::Kind,
    site::SiteKind,
    patient::Language,
    role::Role
);

use std::fmt;

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// The faults found while checking a whole input, by field name, so that one answer lists
/// them all.
#[derive(Debug, Default)]
pub struct Faults(pub Vec<(Field, Invalid)>);

/// A field's name as the client wrote it: fixed (`name`) or built (`days[3].date`).
pub type Field = std::borrow::Cow<'static, str>;

impl Faults {
    /// Keeps the value, or records why `field` was refused.
    pub fn check<T>(&mut self, field: impl Into<Field>, result: Result<T, Invalid>) -> Option<T> {
        result.map_err(|e| self.0.push((field.into(), e))).ok()
    }

    pub fn push(&mut self, field: impl Into<Field>, message: impl Into<String>) {
        self.0.push((field.into(), Invalid(message.into())));
    }

    /// Checks a value that may be absent: `Some(None)` when it is.
    pub fn check_opt<I, T>(
        &mut self,
        field: impl Into<Field>,
        raw: Option<I>,
        parse: impl FnOnce(I) -> Result<T, Invalid>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(raw) => self.check(field, parse(raw)).map(Some),
        }
    }

    /// Keeps the value of a parse that collects its own faults, or records all of them.
    pub fn include<T>(&mut self, result: Result<T, Faults>) -> Option<T> {
        result.map_err(|faults| self.0.extend(faults.0)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Field, Invalid)> {
        self.0.iter()
    }

    /// The value when every check passed (then it is `Some`), else the faults.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Faults> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ if self.0.is_empty() => Err(Faults(vec![(
                "input".into(),
                Invalid("was refused without a reason".into()),
            )])),
            _ => Err(self),
        }
    }
}

impl IntoIterator for Faults {
    type Item = (Field, Invalid);
    type IntoIter = std::vec::IntoIter<(Field, Invalid)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The current time in UTC, truncated to microseconds: the precision both backends keep, so
/// a value read back equals the value written.
pub fn now() -> chrono::NaiveDateTime {
    truncate_to_micros(chrono::Utc::now().naive_utc())
}

pub fn truncate_to_micros(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let micros = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(micros).unwrap_or(t)
}

/// The median of these values (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_no_sub_microsecond_part() {
        use chrono::Timelike;
        assert_eq!(now().nanosecond() % 1_000, 0);
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![30.0, 10.0, 20.0]), Some(20.0));
        assert_eq!(median(vec![40.0, 10.0, 20.0, 30.0]), Some(25.0));
    }
}
