//! Synthetic people for the demo scenario and the benchmarks: Belgian names, valid national
//! numbers and phone numbers, from a seed (same seed, same people).
//!
//! The rule: everything comes from one seeded ChaCha stream, whose output is stable across
//! platforms and versions, so a seed names a data set.

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::patient::Language;

const LAST_NAMES: &[&str] = &[
    "Peeters",
    "Janssens",
    "Maes",
    "Jacobs",
    "Mertens",
    "Willems",
    "Claes",
    "Goossens",
    "Wouters",
    "De Smet",
    "Dubois",
    "Lambert",
    "Dupont",
    "Martin",
    "Simon",
    "Laurent",
    "Leroy",
    "Lejeune",
    "Renard",
    "Collard",
    "Thiry",
    "Hubert",
    "François",
    "Lemaire",
    "Gérard",
    "Michel",
    "Noël",
    "Mathieu",
    "Pirard",
    "Henrard",
    "Marchal",
    "Lecomte",
    "Gillet",
    "Schmitz",
    "Müller",
    "Schneider",
    "Weber",
    "Hoffmann",
    "Wagner",
    "Becker",
    "Van Damme",
    "Vandenberghe",
    "Desmet",
    "Lambotte",
    "Poncelet",
    "Collignon",
    "Jacquemin",
    "Magnée",
    "Rosière",
    "Mahy",
    "Gobert",
    "Lallemand",
    "Dethier",
    "Bodson",
    "Closset",
    "Dessy",
    "Lambinet",
    "Burnotte",
    "Rossignon",
    "Ansay",
    "Kaiser",
    "Thomas",
    "Wilmotte",
    "Zune",
    "Étienne",
    "Bastin",
    "Guillaume",
    "Louis",
    "Nicolay",
    "Pierret",
    "Lhoest",
    "Grandjean",
    "Boulanger",
    "Fourny",
    "Hardy",
    "Jadot",
];
const PARTICLES: &[&str] = &[
    "", "", "", "", "", "", "-Mertens", "-Dubois", "-Lambert", "-Schmitz",
];
const FIRST_NAMES: &[&str] = &[
    "Marie",
    "Anne",
    "Nathalie",
    "Isabelle",
    "Catherine",
    "Christine",
    "Sophie",
    "Julie",
    "Sarah",
    "Laura",
    "Emma",
    "Louise",
    "Léa",
    "Chloé",
    "Éloïse",
    "Manon",
    "Camille",
    "Lucie",
    "Hélène",
    "Françoise",
    "Monique",
    "Martine",
    "Jeanne",
    "Josée",
    "Jean",
    "Pierre",
    "Luc",
    "Marc",
    "Philippe",
    "Michel",
    "Alain",
    "Patrick",
    "Christian",
    "Éric",
    "Olivier",
    "Thomas",
    "Nicolas",
    "Julien",
    "Maxime",
    "Louis",
    "Lucas",
    "Hugo",
    "Noah",
    "Arthur",
    "Jules",
    "Théo",
    "Victor",
    "Jan",
    "Pieter",
    "Koen",
    "Bart",
    "Wim",
    "Els",
    "An",
    "Katrien",
    "Jürgen",
    "Klaus",
    "Anja",
    "Jean-Pierre",
    "Marie-Claire",
    "Anne-Sophie",
    "José",
    "Joseph",
    "André",
    "René",
    "Raymond",
];

/// One synthetic person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub national_number: String,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: NaiveDate,
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Language,
    pub email_consent: bool,
}

/// A seeded stream of people with distinct national numbers.
pub struct People {
    rng: ChaCha8Rng,
    serial: u32,
    /// Serials already given per birth date, so national numbers never repeat.
    serials: std::collections::HashMap<NaiveDate, u32>,
}

impl People {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            serial: 0,
            serials: std::collections::HashMap::new(),
        }
    }

    /// The random stream, for callers that draw more from the same seed.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    fn pick<'a>(&mut self, list: &'a [&'a str]) -> &'a str {
        list[self.rng.gen_range(0..list.len())]
    }
}

/// Check digits of a national number (see `domain::national_number`).
pub fn national_number(birth: NaiveDate, serial: u32) -> String {
    let nine = format!(
        "{:02}{:02}{:02}{:03}",
        birth.year() % 100,
        birth.month(),
        birth.day(),
        serial % 1000
    );
    let base: u64 = nine.parse().unwrap_or(0);
    let base = if birth.year() >= 2000 {
        2_000_000_000 + base
    } else {
        base
    };
    format!("{nine}{:02}", 97 - base % 97)
}

impl Iterator for People {
    type Item = Person;

    fn next(&mut self) -> Option<Person> {
        self.serial += 1;
        let last = format!("{}{}", self.pick(LAST_NAMES), self.pick(PARTICLES));
        let first = self.pick(FIRST_NAMES).to_string();
        // Ages 0 to 99, more of them old (hospital patients).
        let age_days: i64 = {
            let a: f64 = self.rng.gen();
            (a.sqrt() * 99.0 * 365.25) as i64
        };
        let mut birth = NaiveDate::from_ymd_opt(2022, 5, 13).unwrap_or_default()
            - chrono::Duration::days(age_days);
        // Serials 1..=997 per birth date; a full date passes to the day before.
        let serial = loop {
            let used = self.serials.entry(birth).or_insert(0);
            if *used < 997 {
                *used += 1;
                break *used;
            }
            birth -= chrono::Duration::days(1);
        };
        let national_number = national_number(birth, serial);
        let language = match self.rng.gen_range(0..100) {
            0..=84 => Language::Fr,
            85..=89 => Language::Nl,
            90..=96 => Language::De,
            _ => Language::En,
        };
        let phone = (self.rng.gen_range(0..100) < 92).then(|| {
            if self.rng.gen_bool(0.6) {
                format!(
                    "+324{}{:06}",
                    self.rng.gen_range(60..=99),
                    self.rng.gen_range(0..1_000_000)
                )
            } else {
                // Province of Luxembourg landlines: 061, 063, 084.
                let zone = ["61", "63", "84"][self.rng.gen_range(0..3)];
                format!("+32{zone}{:06}", self.rng.gen_range(200_000..999_999))
            }
        });
        let email = (self.rng.gen_range(0..100) < 55).then(|| {
            format!(
                "{}.{}{}@example.be",
                crate::domain::patient::search_key(&first).replace(' ', "-"),
                crate::domain::patient::search_key(&last).replace(' ', "-"),
                self.serial
            )
        });
        let email_consent = email.is_some() && self.rng.gen_range(0..100) < 80;
        Some(Person {
            national_number,
            last_name: last,
            first_name: first,
            birth_date: birth,
            phone,
            email,
            language,
            email_consent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, NationalNumber, PhoneE164};

    #[test]
    fn the_same_seed_gives_the_same_people() {
        let a: Vec<Person> = People::new(7).take(50).collect();
        let b: Vec<Person> = People::new(7).take(50).collect();
        let c: Vec<Person> = People::new(8).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn national_numbers_never_repeat() {
        let mut seen = std::collections::HashSet::new();
        for p in People::new(3).take(100_000) {
            assert!(seen.insert(p.national_number));
        }
    }

    #[test]
    fn generated_people_are_valid() {
        for p in People::new(1).take(2000) {
            let nn = NationalNumber::parse(&p.national_number).expect("valid national number");
            assert!(
                nn.agrees_with(p.birth_date).is_ok(),
                "{}",
                p.national_number
            );
            if let Some(phone) = &p.phone {
                assert_eq!(
                    PhoneE164::parse(phone)
                        .map(|x| x.as_str().to_string())
                        .as_deref(),
                    Ok(phone.as_str())
                );
            }
            if let Some(email) = &p.email {
                assert!(Email::parse(email).is_ok(), "{email}");
            }
        }
    }
}
