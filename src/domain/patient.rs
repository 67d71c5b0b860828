//! Patients: language, names and their search keys, and a new patient checked as a whole.

use chrono::{Datelike, NaiveDate};

use super::account::parse_name;
use super::{Email, Faults, Invalid, NationalNumber, PhoneE164};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Fr,
    Nl,
    De,
    En,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Fr, Language::Nl, Language::De, Language::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::Nl => "nl",
            Language::De => "de",
            Language::En => "en",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim().to_ascii_lowercase();
        Language::ALL
            .into_iter()
            .find(|l| l.as_str() == raw)
            .ok_or_else(|| Invalid("must be fr, nl, de or en".into()))
    }
}

/// The form of a name that searches compare: ASCII (accents transliterated), lower case, words
/// separated by one space. `Prénom-Éloïse d'Ath` → `prenom eloise d ath`.
pub fn search_key(name: &str) -> String {
    let ascii = deunicode::deunicode(name).to_ascii_lowercase();
    let mut key = String::with_capacity(ascii.len());
    for word in ascii.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !word.is_empty() {
            if !key.is_empty() {
                key.push(' ');
            }
            key.push_str(word);
        }
    }
    key
}

/// What a patient search looks for, decided from the text typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientQuery {
    NationalNumber(NationalNumber),
    Phone(PhoneE164),
    /// Search-key words (see [`search_key`]), matched as name prefixes.
    Name(Vec<String>),
}

impl PatientQuery {
    /// A valid national number, else a phone number, else name words. Short queries are
    /// refused, so that no search returns a slice of the patient file by a letter or two: a
    /// name needs [`NAME_LETTERS_MIN`] letters or more, a phone number [`PHONE_DIGITS_MIN`]
    /// digits, a national number all 11.
    pub fn parse(q: &str) -> Result<Self, Invalid> {
        let q = q.trim();
        if q.chars().count() > 100 {
            return Err(Invalid("must be at most 100 characters".into()));
        }
        let digits = q.chars().filter(char::is_ascii_digit).count();
        if digits >= PHONE_DIGITS_MIN {
            if let Ok(nn) = NationalNumber::parse(q) {
                return Ok(PatientQuery::NationalNumber(nn));
            }
            if let Ok(phone) = PhoneE164::parse(q) {
                return Ok(PatientQuery::Phone(phone));
            }
        }
        let key = search_key(q);
        if key.is_empty() {
            return Err(Invalid(
                "type a name, a phone number or a national number".into(),
            ));
        }
        if !key.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(Invalid(format!(
                "a phone number needs {PHONE_DIGITS_MIN} digits or more, a national number all \
                 11 (with valid check digits)"
            )));
        }
        if key.chars().filter(char::is_ascii_alphanumeric).count() < NAME_LETTERS_MIN {
            return Err(Invalid(format!(
                "a name needs {NAME_LETTERS_MIN} letters or more"
            )));
        }
        Ok(PatientQuery::Name(
            key.split(' ').map(str::to_string).collect(),
        ))
    }
}

/// The fewest letters a name search takes (spaces and punctuation not counted).
pub const NAME_LETTERS_MIN: usize = 3;
/// The fewest digits a phone search takes.
pub const PHONE_DIGITS_MIN: usize = 6;

/// One index probe of a name search: names starting with these prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameProbe {
    pub last: Option<String>,
    pub first: Option<String>,
}

impl PatientQuery {
    /// For a name query, the probes to run in order; results come in that order (each probe
    /// sorted by the name it fixes), without repeats. Last names first: that is what people
    /// are asked for on the phone.
    pub fn name_probes(words: &[String]) -> Vec<NameProbe> {
        let probe = |last: Option<&str>, first: Option<&str>| NameProbe {
            last: last.map(str::to_string),
            first: first.map(str::to_string),
        };
        let whole = words.join(" ");
        let mut probes = Vec::new();
        // Every split of the words into a last name and a first name, both ways round:
        // "van damme jean pierre" is (van damme, jean pierre) among others.
        let words = &words[..words.len().min(6)];
        for k in 1..words.len() {
            let (head, tail) = (words[..k].join(" "), words[k..].join(" "));
            probes.push(probe(Some(&head), Some(&tail)));
            probes.push(probe(Some(&tail), Some(&head)));
        }
        probes.push(probe(Some(&whole), None));
        probes.push(probe(None, Some(&whole)));
        probes
    }
}

/// A birth date: not in the future, not before 1890.
pub fn parse_birth_date(raw: &str, today: NaiveDate) -> Result<NaiveDate, Invalid> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| Invalid("must be a real date as YYYY-MM-DD".into()))?;
    check_birth_date(date, today)
}

pub fn check_birth_date(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, Invalid> {
    if date > today {
        return Err(Invalid("is in the future".into()));
    }
    if date.year() < 1890 {
        return Err(Invalid("is before 1890".into()));
    }
    Ok(date)
}

/// A patient to create, every field checked, the national number agreeing with the birth date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub national_number: Option<NationalNumber>,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: NaiveDate,
    pub phone: Option<PhoneE164>,
    pub email: Option<Email>,
    pub language: Language,
    pub email_consent: bool,
}

/// The raw fields of a patient, from JSON or a CSV line (empty strings mean absent).
#[derive(Debug, Clone, Default)]
pub struct PatientInput<'a> {
    pub national_number: Option<&'a str>,
    pub last_name: &'a str,
    pub first_name: &'a str,
    pub birth_date: &'a str,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub language: Option<&'a str>,
    pub email_consent: bool,
}

fn present(raw: Option<&str>) -> Option<&str> {
    raw.filter(|s| !s.trim().is_empty())
}

impl NewPatient {
    /// Checks every field; returns all faults by field name.
    pub fn parse(input: &PatientInput<'_>, today: NaiveDate) -> Result<Self, Faults> {
        let mut f = Faults::default();
        let national_number = present(input.national_number)
            .map(|raw| f.check("national_number", NationalNumber::parse(raw)));
        let last_name = f.check("last_name", parse_name(input.last_name));
        let first_name = f.check("first_name", parse_name(input.first_name));
        let birth_date = f.check("birth_date", parse_birth_date(input.birth_date, today));
        let phone = present(input.phone).map(|raw| f.check("phone", PhoneE164::parse(raw)));
        let email = present(input.email).map(|raw| f.check("email", Email::parse(raw)));
        let language = match present(input.language) {
            None => Some(Language::Fr),
            Some(raw) => f.check("language", Language::parse(raw)),
        };
        if let (Some(Some(nn)), Some(born)) = (&national_number, birth_date) {
            f.check("national_number", nn.agrees_with(born));
        }
        let complete = match (last_name, first_name, birth_date, language) {
            (Some(last_name), Some(first_name), Some(birth_date), Some(language)) => Some(Self {
                national_number: national_number.flatten(),
                last_name,
                first_name,
                birth_date,
                phone: phone.flatten(),
                email: email.flatten(),
                language,
                email_consent: input.email_consent,
            }),
            _ => None,
        };
        f.finish(complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2022, 5, 14).unwrap_or_default()
    }

    #[test]
    fn search_keys_ignore_case_accents_and_punctuation() {
        assert_eq!(search_key("Prénom"), "prenom");
        assert_eq!(search_key("  Jean-Pierre  D'Ath "), "jean pierre d ath");
        assert_eq!(search_key("MÜLLER"), "muller");
        assert_eq!(search_key("Ørsted"), "orsted");
    }

    #[test]
    fn a_national_number_must_agree_with_the_birth_date() {
        let input = PatientInput {
            national_number: Some("85.07.30-033.28"),
            last_name: "Dupont",
            first_name: "Marie",
            birth_date: "1985-07-31",
            ..Default::default()
        };
        let faults = NewPatient::parse(&input, today()).expect_err("mismatch");
        assert_eq!(faults.0[0].0, "national_number");
        let ok = PatientInput {
            birth_date: "1985-07-30",
            ..input
        };
        let patient = NewPatient::parse(&ok, today()).expect("agrees");
        assert_eq!(patient.language, Language::Fr);
    }

    #[test]
    fn every_faulty_field_is_named() {
        let input = PatientInput {
            national_number: Some("123"),
            last_name: "",
            first_name: "Marie",
            birth_date: "2022-02-30",
            phone: Some("call me"),
            email: Some("nope"),
            language: Some("it"),
            email_consent: true,
        };
        let faults = NewPatient::parse(&input, today()).expect_err("bad");
        let fields: Vec<_> = faults.iter().map(|(f, _)| f.as_ref()).collect();
        assert_eq!(
            fields,
            [
                "national_number",
                "last_name",
                "birth_date",
                "phone",
                "email",
                "language"
            ]
        );
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn languages_parse_in_any_case_and_nothing_else(s in "\\PC{0,6}") {
            let expected = ["fr", "nl", "de", "en"].contains(&s.trim().to_ascii_lowercase().as_str());
            prop_assert_eq!(Language::parse(&s).is_ok(), expected);
        }

        #[test]
        fn search_keys_are_lower_ascii_words(s in "\\PC{0,40}") {
            let key = search_key(&s);
            prop_assert!(key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b' '));
            prop_assert!(!key.starts_with(' ') && !key.ends_with(' ') && !key.contains("  "));
            prop_assert_eq!(search_key(&key), key.clone(), "folding twice changes nothing");
        }

        #[test]
        fn any_query_text_parses_or_is_refused_without_panic(s in "\\PC{0,120}") {
            let _ = PatientQuery::parse(&s);
        }
    }

    #[test]
    fn queries_are_told_apart() {
        assert!(matches!(
            PatientQuery::parse("85.07.30-033.28"),
            Ok(PatientQuery::NationalNumber(_))
        ));
        assert!(matches!(
            PatientQuery::parse("0470 12 34 56"),
            Ok(PatientQuery::Phone(_))
        ));
        assert_eq!(
            PatientQuery::parse(" Prénom "),
            Ok(PatientQuery::Name(vec!["prenom".into()]))
        );
        assert_eq!(
            PatientQuery::parse("Dupont Marie"),
            Ok(PatientQuery::Name(vec!["dupont".into(), "marie".into()]))
        );
        assert!(PatientQuery::parse("  ").is_err());
        assert!(PatientQuery::parse("!!!").is_err());
    }

    #[test]
    fn short_queries_are_refused() {
        // Names: three letters or more, however they are spread over words.
        for short in ["d", "du", "d m", "D-u", "é è"] {
            assert!(PatientQuery::parse(short).is_err(), "{short}");
        }
        for enough in ["dup", "du m", "d u p", "Éve"] {
            assert!(PatientQuery::parse(enough).is_ok(), "{enough}");
        }
        // Numbers: a phone number of six digits or more, or a whole national number.
        for short in [
            "1",
            "12345",
            "0470",
            "85.07.30",
            "8507300332",
            "85.07.30-033.29",
        ] {
            let e = PatientQuery::parse(short).expect_err(short);
            assert!(e.0.contains("11"), "{short}: {e:?}");
        }
    }

    #[test]
    fn name_probes_try_both_orders_then_whole_names() {
        let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let probes = PatientQuery::name_probes(&words("dupont marie"));
        let shown: Vec<(Option<&str>, Option<&str>)> = probes
            .iter()
            .map(|p| (p.last.as_deref(), p.first.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                (Some("dupont"), Some("marie")),
                (Some("marie"), Some("dupont")),
                (Some("dupont marie"), None),
                (None, Some("dupont marie"))
            ]
        );
        assert_eq!(PatientQuery::name_probes(&words("dup")).len(), 2);
        let probes = PatientQuery::name_probes(&words("van damme jean pierre"));
        assert!(probes
            .iter()
            .any(|p| p.last.as_deref() == Some("van damme")
                && p.first.as_deref() == Some("jean pierre")));
    }

    #[test]
    fn birth_dates_are_real_and_past() {
        assert!(parse_birth_date("2022-05-15", today()).is_err());
        assert!(parse_birth_date("1850-01-01", today()).is_err());
        assert!(parse_birth_date("14/05/1980", today()).is_err());
        assert!(parse_birth_date("1980-05-14", today()).is_ok());
    }
}
