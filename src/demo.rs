//! Synthetic people for the demo scenario and the benchmarks: Belgian names, valid national
//! numbers and phone numbers, from a seed (same seed, same people).
//!
//! The rule: everything comes from one seeded ChaCha stream, whose output is stable across
//! platforms and versions, so a seed names a data set.

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::appointment::{Kind, Status};
use crate::domain::call::{Outcome, Reason};
use crate::domain::patient::Language;
use crate::domain::site::{SiteKind, SiteStatus};

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
const WOMEN_NAMES: &[&str] = &[
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
    "Els",
    "An",
    "Katrien",
    "Anja",
    "Marie-Claire",
    "Anne-Sophie",
];
const MEN_NAMES: &[&str] = &[
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
    "Jürgen",
    "Klaus",
    "Jean-Pierre",
    "José",
    "Joseph",
    "André",
    "René",
    "Raymond",
];

/// As the national register records it: its serial is odd for men, even for women.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
}

/// Who a service's patients are, by their age on the day of their appointment (and, for
/// obstetrics, their sex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patients {
    /// Paediatrics: under 18.
    Children,
    /// Obstetrics: women from 18 to 45.
    WomenOfChildbearingAge,
    /// Geriatrics: 75 and over.
    Elderly,
    /// Every other service: 18 and over.
    Adults,
}

impl Patients {
    pub const ALL: [Patients; 4] = [
        Patients::Children,
        Patients::WomenOfChildbearingAge,
        Patients::Elderly,
        Patients::Adults,
    ];

    /// Ages in full years, both ends included.
    pub fn ages(self) -> (u32, u32) {
        match self {
            Patients::Children => (0, 17),
            Patients::WomenOfChildbearingAge => (18, 45),
            Patients::Elderly => (75, 100),
            Patients::Adults => (18, 100),
        }
    }

    /// Whether a person born on `birth` is one of these patients on `on`.
    pub fn admits(self, birth: NaiveDate, sex: Sex, on: NaiveDate) -> bool {
        let (low, high) = self.ages();
        let age = on.years_since(birth).unwrap_or(0);
        (low..=high).contains(&age)
            && (self != Patients::WomenOfChildbearingAge || sex == Sex::Female)
    }
}

/// One synthetic person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub national_number: String,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Language,
    pub email_consent: bool,
}

impl Person {
    /// The person as a patient row, with its search keys.
    pub fn patient_row(
        &self,
        id: String,
        created_at: chrono::NaiveDateTime,
    ) -> crate::db::patients::PatientRow {
        use crate::domain::patient::search_key;
        crate::db::patients::PatientRow {
            id,
            national_number: Some(self.national_number.clone()),
            last_name: self.last_name.clone(),
            first_name: self.first_name.clone(),
            birth_date: self.birth_date,
            phone: self.phone.clone(),
            email: self.email.clone(),
            language: self.language,
            email_consent: self.email_consent,
            last_name_key: search_key(&self.last_name),
            first_name_key: search_key(&self.first_name),
            import_id: None,
            created_at,
        }
    }
}

/// A seeded stream of people with distinct national numbers.
pub struct People {
    rng: ChaCha8Rng,
    serial: u32,
    /// Serials already given per birth date (men's, women's), so national numbers never repeat.
    serials: std::collections::HashMap<NaiveDate, [u32; 2]>,
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

/// The days the demo's appointments fall on (2 May to 15 July 2022): a patient of a service
/// is of its age on each of them.
const CARE_DAYS: (NaiveDate, NaiveDate) = (
    match NaiveDate::from_ymd_opt(2022, 5, 2) {
        Some(d) => d,
        None => NaiveDate::MIN,
    },
    match NaiveDate::from_ymd_opt(2022, 7, 15) {
        Some(d) => d,
        None => NaiveDate::MIN,
    },
);

/// The day the demo's patients are registered: nobody is born after it.
const REGISTERED: NaiveDate = match NaiveDate::from_ymd_opt(2022, 4, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

impl People {
    /// The next person: of `patients`' age on every day of the demo's care (and sex), or,
    /// without it, anyone from 0 to 99 years old, more of them old (hospital patients).
    pub fn person(&mut self, patients: Option<Patients>) -> Person {
        self.serial += 1;
        let sex = match patients {
            Some(Patients::WomenOfChildbearingAge) => Sex::Female,
            _ if self.rng.gen_bool(0.5) => Sex::Female,
            _ => Sex::Male,
        };
        let last = format!("{}{}", self.pick(LAST_NAMES), self.pick(PARTICLES));
        let first = match sex {
            Sex::Female => self.pick(WOMEN_NAMES),
            Sex::Male => self.pick(MEN_NAMES),
        }
        .to_string();
        let a: f64 = self.rng.gen();
        let mut birth = match patients {
            None => {
                let age_days = (a.sqrt() * 99.0 * 365.25) as i64;
                NaiveDate::from_ymd_opt(2022, 5, 13).unwrap_or_default()
                    - chrono::Duration::days(age_days)
            }
            Some(patients) => {
                // Born at the latest `low` years before the first day of care (and before
                // registration), at the earliest the day after `high + 1` years before its
                // last day.
                let (low, high) = patients.ages();
                let latest = CARE_DAYS
                    .0
                    .checked_sub_months(chrono::Months::new(12 * low))
                    .unwrap_or_default()
                    .min(REGISTERED - chrono::Duration::days(1));
                let earliest = CARE_DAYS
                    .1
                    .checked_sub_months(chrono::Months::new(12 * (high + 1)))
                    .unwrap_or_default()
                    + chrono::Duration::days(1);
                let span = (latest - earliest).num_days().max(0) as f64;
                // Adults are more often old; the other groups are even.
                let share = if patients == Patients::Adults {
                    a.powf(0.75)
                } else {
                    a
                };
                latest - chrono::Duration::days((share * span) as i64)
            }
        };
        // Serials per birth date: 1, 3 … 997 for men, 2, 4 … 998 for women (the register's
        // rule); a full date passes to the day before.
        let index = usize::from(sex == Sex::Female);
        let serial = loop {
            let used = &mut self.serials.entry(birth).or_insert([0, 0])[index];
            if *used < 499 {
                *used += 1;
                break 2 * *used - 1 + index as u32;
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
        Person {
            national_number,
            last_name: last,
            first_name: first,
            birth_date: birth,
            sex,
            phone,
            email,
            language,
            email_consent,
        }
    }
}

impl Iterator for People {
    type Item = Person;

    fn next(&mut self) -> Option<Person> {
        Some(self.person(None))
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
        let mut people = People::new(1);
        let groups = Patients::ALL.into_iter().map(Some).chain([None]).cycle();
        for group in groups.take(4000) {
            let p = people.person(group);
            let nn = NationalNumber::parse(&p.national_number).expect("valid national number");
            assert!(
                nn.agrees_with(p.birth_date).is_ok(),
                "{}",
                p.national_number
            );
            let serial: u32 = p.national_number[6..9].parse().expect("digits");
            assert_eq!(
                serial.is_multiple_of(2),
                p.sex == Sex::Female,
                "{}",
                p.national_number
            );
            assert!((1..=998).contains(&serial));
            let names = match p.sex {
                Sex::Female => WOMEN_NAMES,
                Sex::Male => MEN_NAMES,
            };
            assert!(names.contains(&p.first_name.as_str()));
            if let Some(group) = group {
                for day in [CARE_DAYS.0, CARE_DAYS.1] {
                    assert!(group.admits(p.birth_date, p.sex, day), "{group:?} {p:?}");
                }
                assert!(p.birth_date < REGISTERED);
            }
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

/// How much of the scenario to load: the whole Vivalia case, or a small one for tests (with
/// appointments, four patients or more: one of each group of [`Patients`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    pub patients: usize,
    pub appointments: usize,
    pub calls: usize,
}

impl DemoSize {
    pub const FULL: DemoSize = DemoSize {
        patients: 30_000,
        appointments: 60_000,
        calls: 42_000,
    };
}

/// What `reprise demo` loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DemoReport {
    pub sites: usize,
    pub services: usize,
    pub patients: usize,
    pub appointments: usize,
    pub postponed: i64,
    pub calls: usize,
    /// Tokens of one demo account per role, to try the service with.
    pub tokens: std::collections::BTreeMap<String, String>,
}

/// One site of the demo (also the examples of the API document, `openapi::examples`).
pub struct SiteSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub kind: SiteKind,
    pub rooms: i32,
    pub rank: Option<i32>,
    pub phone_zone: &'static str,
}

/// The demo's sites: four hospitals, then nursing homes.
pub const SITES: &[SiteSpec] = &[
    SiteSpec {
        code: "ARL",
        name: "Clinique du Sud-Luxembourg (Arlon)",
        kind: SiteKind::Hospital,
        rooms: 4,
        rank: Some(1),
        phone_zone: "63",
    },
    SiteSpec {
        code: "MAR",
        name: "Centre hospitalier de Marche",
        kind: SiteKind::Hospital,
        rooms: 5,
        rank: Some(2),
        phone_zone: "84",
    },
    SiteSpec {
        code: "LIB",
        name: "Centre hospitalier du Centre-Ardenne (Libramont)",
        kind: SiteKind::Hospital,
        rooms: 6,
        rank: Some(3),
        phone_zone: "61",
    },
    SiteSpec {
        code: "BAS",
        name: "Centre hospitalier de Bastogne",
        kind: SiteKind::Hospital,
        rooms: 3,
        rank: Some(4),
        phone_zone: "61",
    },
    SiteSpec {
        code: "MR-SOD",
        name: "Maison de repos de Sainte-Ode",
        kind: SiteKind::NursingHome,
        rooms: 0,
        rank: None,
        phone_zone: "61",
    },
    SiteSpec {
        code: "MR-HOU",
        name: "Maison de repos de Houffalize",
        kind: SiteKind::NursingHome,
        rooms: 0,
        rank: None,
        phone_zone: "61",
    },
    SiteSpec {
        code: "MR-VIE",
        name: "Maison de repos de Vielsalm",
        kind: SiteKind::NursingHome,
        rooms: 0,
        rank: None,
        phone_zone: "80",
    },
];

/// One kind of service of the demo's sites: what it does, in French as the rest of the demo,
/// and who its patients are.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The code's end: `ARL-ORTHO` is orthopaedics at Arlon.
    pub suffix: &'static str,
    pub name: &'static str,
    /// Percentage of its appointments that are operations.
    pub operation_share: u32,
    pub operations: &'static [&'static str],
    pub consultations: &'static [&'static str],
    pub patients: Patients,
}

/// The services of each hospital.
pub const HOSPITAL_SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        suffix: "CHIR",
        name: "Chirurgie générale",
        operation_share: 60,
        operations: &[
            "Cholécystectomie",
            "Cure de hernie inguinale",
            "Cure de hernie ombilicale",
            "Cure d'éventration",
            "Exérèse de lipome",
            "Thyroïdectomie",
            "Hémorroïdectomie",
        ],
        consultations: &[
            "Consultation de chirurgie",
            "Première consultation",
            "Bilan pré-opératoire",
            "Suivi post-opératoire",
            "Consultation de contrôle",
        ],
        patients: Patients::Adults,
    },
    ServiceSpec {
        suffix: "ORTHO",
        name: "Orthopédie",
        operation_share: 55,
        operations: &[
            "Prothèse de hanche",
            "Prothèse de genou",
            "Arthroscopie du genou",
            "Canal carpien",
            "Hallux valgus",
            "Réparation de la coiffe des rotateurs",
            "Ablation de matériel d'ostéosynthèse",
        ],
        consultations: &[
            "Consultation d'orthopédie",
            "Contrôle radiologique",
            "Bilan pré-opératoire",
            "Suivi post-opératoire",
            "Infiltration",
        ],
        patients: Patients::Adults,
    },
    ServiceSpec {
        suffix: "CARDIO",
        name: "Cardiologie",
        operation_share: 15,
        operations: &[
            "Pose de pacemaker",
            "Coronarographie",
            "Ablation par cathéter",
            "Cardioversion électrique",
        ],
        consultations: &[
            "Consultation de cardiologie",
            "Électrocardiogramme",
            "Échographie cardiaque",
            "Épreuve d'effort",
            "Holter ECG de 24 heures",
            "Consultation de contrôle",
        ],
        patients: Patients::Adults,
    },
    ServiceSpec {
        suffix: "GASTRO",
        name: "Gastro-entérologie",
        operation_share: 35,
        operations: &[
            "Coloscopie",
            "Gastroscopie",
            "Polypectomie endoscopique",
            "Ligature de varices œsophagiennes",
        ],
        consultations: &[
            "Consultation de gastro-entérologie",
            "Échographie abdominale",
            "Suivi de maladie de Crohn",
            "Consultation de contrôle",
        ],
        patients: Patients::Adults,
    },
    ServiceSpec {
        suffix: "OPHTA",
        name: "Ophtalmologie",
        operation_share: 40,
        operations: &[
            "Cataracte",
            "Injection intravitréenne",
            "Chirurgie du glaucome",
            "Chirurgie des paupières",
        ],
        consultations: &[
            "Consultation d'ophtalmologie",
            "Fond d'œil",
            "Champ visuel",
            "Contrôle de la tension oculaire",
            "Suivi post-opératoire",
        ],
        patients: Patients::Adults,
    },
    ServiceSpec {
        suffix: "GYN",
        name: "Gynécologie-obstétrique",
        operation_share: 25,
        operations: &[
            "Hystéroscopie",
            "Cœlioscopie",
            "Conisation du col",
            "Myomectomie",
            "Ligature des trompes",
        ],
        consultations: &[
            "Consultation prénatale",
            "Échographie obstétricale",
            "Échographie pelvienne",
            "Consultation de gynécologie",
            "Frottis de dépistage",
            "Consultation post-natale",
        ],
        patients: Patients::WomenOfChildbearingAge,
    },
    ServiceSpec {
        suffix: "ORL",
        name: "Oto-rhino-laryngologie",
        operation_share: 30,
        operations: &[
            "Amygdalectomie",
            "Septoplastie",
            "Chirurgie des sinus",
            "Microchirurgie laryngée",
        ],
        consultations: &[
            "Consultation d'ORL",
            "Audiogramme",
            "Nasofibroscopie",
            "Suivi post-opératoire",
        ],
        patients: Patients::Adults,
    },
    ServiceSpec {
        suffix: "PED",
        name: "Pédiatrie",
        operation_share: 5,
        operations: &[
            "Pose d'aérateurs transtympaniques",
            "Amygdalectomie",
            "Cure de phimosis",
            "Cure de hernie inguinale",
        ],
        consultations: &[
            "Consultation de pédiatrie",
            "Bilan de croissance",
            "Suivi de l'asthme",
            "Bilan allergologique",
            "Suivi du diabète",
        ],
        patients: Patients::Children,
    },
];

/// The one service of each nursing home: a visiting geriatrician, consultations only.
pub const GERIATRICS: ServiceSpec = ServiceSpec {
    suffix: "GERIA",
    name: "Gériatrie",
    operation_share: 0,
    operations: &[],
    consultations: &[
        "Bilan gériatrique",
        "Consultation mémoire",
        "Bilan de chute",
        "Évaluation nutritionnelle",
        "Révision des traitements",
    ],
    patients: Patients::Elderly,
};

/// What a demo service does, from its code (`ARL-PED`, `MR-SOD-GERIA`).
pub fn service_spec(code: &str) -> Option<&'static ServiceSpec> {
    let (_, suffix) = code.rsplit_once('-')?;
    HOSPITAL_SERVICES
        .iter()
        .chain(std::iter::once(&GERIATRICS))
        .find(|s| s.suffix == suffix)
}

/// An index into `weights`, drawn in proportion to them.
fn weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut roll = rng.gen_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if roll < *w {
            return i;
        }
        roll -= w;
    }
    0
}

/// Deterministic, time-ordered ids: a UUIDv7 whose time is `at` and whose random bits come
/// from the seeded stream, so the same seed gives the same ids.
fn seeded_id(rng: &mut ChaCha8Rng, at: chrono::NaiveDateTime) -> String {
    let mut bytes = [0u8; 10];
    rng.fill(&mut bytes);
    let millis = u64::try_from(at.and_utc().timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes)
        .into_uuid()
        .to_string()
}

fn brussels(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::NaiveDateTime {
    use chrono::TimeZone;
    let local = NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, min, 0))
        .unwrap_or_default();
    chrono_tz::Europe::Brussels
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.naive_utc())
        .unwrap_or(local)
}

/// The central number patients called.
const CENTRAL: &str = "+3263553000";

/// The telephone system's history of those weeks: each logged call was a PBX call that an
/// agent answered after a wait (long in the first days), and beside them the calls nobody
/// answered. On the first days there were more of those than answered ones; a patient who
/// could not get through called again, up to five times a day.
fn pbx_history(
    rng: &mut ChaCha8Rng,
    pbx_id: &str,
    calls: &[crate::db::calls::CallRow],
    phones: &[String],
) -> Vec<crate::db::phone_calls::NewPhoneCall> {
    use crate::db::phone_calls::NewPhoneCall;
    use crate::domain::cti::{Cause, Direction};
    let first = NaiveDate::from_ymd_opt(2022, 5, 14).unwrap_or_default();
    let day_of = |at: chrono::NaiveDateTime| {
        (crate::domain::time::brussels(at).date_naive() - first)
            .num_days()
            .max(0)
    };
    let mut serial = 0u64;
    let mut pbx_call_id = |at: chrono::NaiveDateTime| {
        serial += 1;
        format!("{}.{serial}", at.and_utc().timestamp())
    };
    let mut rows = Vec::with_capacity(calls.len() * 2);
    let mut answered_per_day = std::collections::BTreeMap::<i64, usize>::new();
    for call in calls {
        let day = day_of(call.received_at);
        *answered_per_day.entry(day).or_default() += 1;
        // Minutes of waiting the first days, seconds three weeks later.
        let longest = (600.0 * (-(day as f64) / 4.0).exp()).max(20.0) as i64;
        let started = call.received_at - chrono::Duration::seconds(rng.gen_range(3..=longest));
        rows.push(NewPhoneCall {
            id: seeded_id(rng, started),
            pbx_id: pbx_id.to_string(),
            pbx_call_id: pbx_call_id(started),
            direction: Direction::In,
            from_number: call
                .caller_phone
                .clone()
                .unwrap_or_else(|| "anonymous".into()),
            to_number: CENTRAL.into(),
            queue: Some("accueil".into()),
            started_at: started,
            answered_at: Some(call.received_at),
            ended_at: Some(
                call.received_at
                    + chrono::Duration::seconds(call.duration_seconds.unwrap_or(60).into()),
            ),
            cause: Some(Cause::NormalClearing),
            answered_by: None,
            answering_number: None,
            call_id: Some(call.id.clone()),
            callback_id: None,
        });
    }
    for (day, answered) in answered_per_day {
        // 1.6 missed per answered call on the first day, a few percent after two weeks.
        let missed =
            (answered as f64 * (1.6 * (-(day as f64) / 3.0).exp() + 0.04)).round() as usize;
        let date = first + chrono::Duration::days(day);
        let mut made = 0;
        while made < missed {
            let hour = if rng.gen_bool(0.7) {
                rng.gen_range(8..12)
            } else {
                rng.gen_range(12..19)
            };
            let mut at = brussels(
                date.year(),
                date.month(),
                date.day(),
                hour,
                rng.gen_range(0..60),
            );
            let from = match phones.len() {
                n if n > 0 && rng.gen_bool(0.85) => phones[rng.gen_range(0..n)].clone(),
                _ => "anonymous".to_string(),
            };
            // Callers who do not get through try again a few minutes later.
            let tries = if from == "anonymous" {
                1
            } else {
                weighted(rng, &[50, 25, 12, 8, 5]) + 1
            };
            for _ in 0..tries.min(missed - made) {
                let rang = rng.gen_range(15..180);
                rows.push(NewPhoneCall {
                    id: seeded_id(rng, at),
                    pbx_id: pbx_id.to_string(),
                    pbx_call_id: pbx_call_id(at),
                    direction: Direction::In,
                    from_number: from.clone(),
                    to_number: CENTRAL.into(),
                    queue: Some("accueil".into()),
                    started_at: at,
                    answered_at: None,
                    ended_at: Some(at + chrono::Duration::seconds(rang)),
                    cause: Some(if rang > 120 {
                        Cause::NoAnswer
                    } else {
                        Cause::Cancel
                    }),
                    answered_by: None,
                    answering_number: None,
                    call_id: None,
                    callback_id: None,
                });
                made += 1;
                at += chrono::Duration::minutes(rng.gen_range(2..40));
            }
        }
    }
    rows
}

/// The callbacks the missed calls opened and how agents worked them: one per number while it
/// is open (a patient who called five times has one), attempted hours after the missed call
/// in the first days and sooner later, retried as the service retries, most reached in the
/// end; those of the last two days are still open, for the worklist. The patient is named
/// when exactly one has that phone.
fn callback_history(
    rng: &mut ChaCha8Rng,
    phone_calls: &mut [crate::db::phone_calls::NewPhoneCall],
    patients_of: &std::collections::HashMap<String, Vec<String>>,
) -> (
    Vec<crate::db::callbacks::CallbackRow>,
    Vec<crate::db::callbacks::AttemptRow>,
) {
    use crate::db::callbacks::{AttemptRow, CallbackRow};
    use crate::domain::callback::{
        after_attempt, Next, Outcome as Attempt, Source, Status, DEFAULT_MAX_ATTEMPTS,
    };
    let first = brussels(2022, 5, 14, 0, 0);
    let still_open = brussels(2022, 6, 2, 0, 0);
    let mut missed: Vec<usize> = (0..phone_calls.len())
        .filter(|&i| {
            phone_calls[i].answered_at.is_none() && phone_calls[i].from_number.starts_with('+')
        })
        .collect();
    missed.sort_by_key(|&i| phone_calls[i].started_at);
    let (mut callbacks, mut attempts) = (Vec::<CallbackRow>::new(), Vec::new());
    let mut current = std::collections::HashMap::<String, usize>::new();
    for i in missed {
        let (from, started) = (
            phone_calls[i].from_number.clone(),
            phone_calls[i].started_at,
        );
        let ended = phone_calls[i].ended_at.unwrap_or(started);
        if let Some(&k) = current.get(&from) {
            if callbacks[k].done_at.is_none_or(|done| done > started) {
                phone_calls[i].callback_id = Some(callbacks[k].id.clone());
                continue;
            }
        }
        let patient = patients_of
            .get(&from)
            .filter(|ids| ids.len() == 1)
            .map(|ids| ids[0].clone());
        let mut cb = CallbackRow::open(from.clone(), patient, Source::MissedCall, ended, ended);
        cb.id = seeded_id(rng, ended);
        cb.missed_at = Some(started);
        if ended < still_open {
            // Hours of backlog the first days, under an hour three weeks later.
            let day = (ended - first).num_days() as f64;
            let backlog = (6.0 * 3600.0 * (-day / 4.0).exp()).max(1200.0) as i64;
            let mut at = cb.due_at + chrono::Duration::seconds(rng.gen_range(300..=backlog));
            loop {
                let outcome = [
                    Attempt::Reached,
                    Attempt::NoAnswer,
                    Attempt::Voicemail,
                    Attempt::WrongNumber,
                ][weighted(rng, &[55, 28, 12, 5])];
                attempts.push(AttemptRow {
                    id: seeded_id(rng, at),
                    callback_id: cb.id.clone(),
                    agent: None,
                    outcome,
                    note: None,
                    at,
                });
                match after_attempt(outcome, cb.attempts, DEFAULT_MAX_ATTEMPTS, at) {
                    Next::Done => {
                        cb.status = Status::Done;
                        cb.done_at = Some(at);
                        cb.reached_at = (outcome == Attempt::Reached).then_some(at);
                        break;
                    }
                    Next::Unreachable { attempts } => {
                        cb.status = Status::Unreachable;
                        cb.attempts = attempts;
                        cb.done_at = Some(at);
                        break;
                    }
                    Next::Retry { attempts, due_at } => {
                        cb.attempts = attempts;
                        cb.due_at = due_at;
                        at = due_at + chrono::Duration::seconds(rng.gen_range(0..1800));
                    }
                }
            }
        }
        phone_calls[i].callback_id = Some(cb.id.clone());
        current.insert(from, callbacks.len());
        callbacks.push(cb);
    }
    (callbacks, attempts)
}

/// Loads the Vivalia scenario into an empty database: sites, services, people and their care,
/// the incident of the night of 13 to 14 May 2022, and the calls of the three weeks after it.
/// Everything in one transaction; the same seed gives the same data.
pub fn load(
    db: &crate::db::Db,
    seed: u64,
    size: DemoSize,
) -> Result<DemoReport, crate::error::AppError> {
    use crate::db::{
        self,
        appointments::AppointmentRow,
        calls::CallRow,
        patients::PatientRow,
        sites::{ServiceRow, SiteRow},
    };
    use diesel::prelude::*;
    let is_empty = |conn: &mut crate::db::DbConnection| -> Result<(), crate::error::AppError> {
        let taken: i64 = db::schema::sites::table.count().get_result(conn)?;
        if taken > 0 {
            return Err(crate::error::AppError::Conflict(
                "the database already holds sites: load the demo into an empty database".into(),
            ));
        }
        Ok(())
    };
    db.read_blocking(is_empty)?;
    // How often a service is picked for an appointment: nursing homes see a visiting
    // geriatrician now and then.
    let specs_of = |site: &SiteSpec| -> (&'static [ServiceSpec], u32) {
        if site.kind == SiteKind::Hospital {
            (HOSPITAL_SERVICES, 10)
        } else {
            (std::slice::from_ref(&GERIATRICS), 1)
        }
    };
    // Patients are drawn by group (children, women of childbearing age…) as often as their
    // services are, so that no group has a few patients with all its appointments. The first
    // four are one of each, so that every service has someone to see.
    let demand: Vec<u32> = Patients::ALL
        .iter()
        .map(|group| {
            SITES
                .iter()
                .map(|site| {
                    let (specs, weight) = specs_of(site);
                    weight * specs.iter().filter(|s| s.patients == *group).count() as u32
                })
                .sum()
        })
        .collect();
    let mut people = People::new(seed);
    let persons: Vec<Person> = (0..size.patients)
        .map(|i| {
            let group = Patients::ALL
                .get(i)
                .copied()
                .unwrap_or_else(|| Patients::ALL[weighted(people.rng(), &demand)]);
            people.person(Some(group))
        })
        .collect();
    let rng = people.rng();
    let created = brussels(2022, 4, 1, 8, 0);

    let sites: Vec<SiteRow> = SITES
        .iter()
        .map(|s| SiteRow {
            code: s.code.into(),
            name: s.name.into(),
            kind: s.kind,
            operating_rooms: s.rooms,
            status: SiteStatus::Open,
            programme: None,
            reopened_at: None,
            reopening_rank: s.rank,
            created_at: created,
            operating_rooms_open: None,
        })
        .collect();
    let mut services: Vec<(ServiceRow, &'static ServiceSpec)> = Vec::new();
    let mut service_weights: Vec<u32> = Vec::new();
    for s in SITES {
        let (specs, weight) = specs_of(s);
        for spec in specs {
            services.push((
                ServiceRow {
                    code: format!("{}-{}", s.code, spec.suffix),
                    name: spec.name.into(),
                    site_code: s.code.into(),
                    secretariat_email: Some(format!(
                        "{}.{}@example.be",
                        spec.suffix.to_lowercase(),
                        s.code.to_lowercase()
                    )),
                    secretariat_phone: Some(format!(
                        "+32{}{:06}",
                        s.phone_zone,
                        rng.gen_range(200_000..999_999)
                    )),
                    created_at: created,
                },
                spec,
            ));
            service_weights.push(weight);
        }
    }

    let patients: Vec<PatientRow> = persons
        .iter()
        .map(|p| p.patient_row(seeded_id(rng, created), created))
        .collect();

    // Each group's patients: those of its age (and sex) on every day of care.
    let pools: Vec<Vec<usize>> = Patients::ALL
        .iter()
        .map(|group| {
            (0..persons.len())
                .filter(|&i| {
                    let p = &persons[i];
                    [CARE_DAYS.0, CARE_DAYS.1]
                        .iter()
                        .all(|day| group.admits(p.birth_date, p.sex, *day))
                })
                .collect()
        })
        .collect();

    // Appointments from 2 May to 15 July 2022, working hours, mostly at the hospitals, each
    // with care its service gives, for one of its patients.
    let first_day = CARE_DAYS.0;
    let days = (CARE_DAYS.1 - CARE_DAYS.0).num_days() + 1;
    let mut appointments = Vec::with_capacity(size.appointments);
    for _ in 0..size.appointments {
        let (service, spec) = &services[weighted(rng, &service_weights)];
        let pool = Patients::ALL
            .iter()
            .position(|g| *g == spec.patients)
            .map(|g| &pools[g])
            .filter(|pool| !pool.is_empty())
            .ok_or_else(|| {
                crate::error::AppError::Internal("the demo needs four patients or more".into())
            })?;
        let day = loop {
            let d = first_day + chrono::Duration::days(rng.gen_range(0..days));
            if d.weekday().number_from_monday() <= 5 {
                break d;
            }
        };
        let at = brussels(
            day.year(),
            day.month(),
            day.day(),
            rng.gen_range(8..17),
            [0, 15, 30, 45][rng.gen_range(0..4)],
        );
        let operation = rng.gen_range(0..100) < spec.operation_share;
        let labels = if operation {
            spec.operations
        } else {
            spec.consultations
        };
        let label = labels[rng.gen_range(0..labels.len())];
        let patient = pool[rng.gen_range(0..pool.len())];
        let priority = match rng.gen_range(0..100) {
            0..=9 => 1,
            10..=34 => 2,
            35..=69 => 3,
            _ => 4,
        };
        let roll = rng.gen_range(0..100);
        appointments.push(AppointmentRow {
            id: seeded_id(rng, created),
            patient_id: patients[patient].id.clone(),
            site_code: service.site_code.clone(),
            service_code: service.code.clone(),
            kind: if operation {
                Kind::Operation
            } else {
                Kind::Consultation
            },
            label: label.into(),
            original_scheduled_at: at,
            scheduled_at: at,
            priority,
            urgent: roll < 4,
            essential: (4..10).contains(&roll),
            status: Status::Scheduled,
            incident_id: None,
            postponed_at: None,
            import_id: None,
            created_at: created,
            updated_at: created,
            reached_at: None,
            proposed_at: None,
        });
    }

    // The calls: three weeks from 14 May, a peak in the first days, then a decline.
    let days = 21;
    let weights: Vec<f64> = (0..days).map(|d| (-(d as f64) / 6.0).exp()).collect();
    let sum: f64 = weights.iter().sum();
    let reasons = [
        (Reason::AppointmentStatus, 40),
        (Reason::RescheduleRequest, 20),
        (Reason::Cancellation, 5),
        (Reason::MedicalQuestion, 10),
        (Reason::Prescription, 8),
        (Reason::Results, 7),
        (Reason::Administrative, 7),
        (Reason::Other, 3),
    ];
    let outcomes = [
        (Outcome::Informed, 55),
        (Outcome::ForwardedToService, 20),
        (Outcome::CallbackScheduled, 15),
        (Outcome::AppointmentCancelled, 3),
        (Outcome::Abandoned, 7),
    ];
    fn pick<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, u32)]) -> T {
        let weights: Vec<u32> = table.iter().map(|(_, w)| *w).collect();
        table[weighted(rng, &weights)].0
    }
    let mut calls = Vec::with_capacity(size.calls);
    for (d, w) in weights.iter().enumerate() {
        let n = if d + 1 == days {
            size.calls - calls.len()
        } else {
            ((w / sum) * size.calls as f64).round() as usize
        };
        let day = NaiveDate::from_ymd_opt(2022, 5, 14).unwrap_or_default()
            + chrono::Duration::days(d as i64);
        for _ in 0..n.min(size.calls - calls.len()) {
            // Mornings are busiest.
            let hour = if rng.gen_bool(0.6) {
                rng.gen_range(8..12)
            } else {
                rng.gen_range(12..19)
            };
            let at = brussels(
                day.year(),
                day.month(),
                day.day(),
                hour,
                rng.gen_range(0..60),
            ) + chrono::Duration::seconds(rng.gen_range(0..60));
            let outcome = pick(rng, &outcomes);
            let reason = pick(rng, &reasons);
            let patient_index =
                (rng.gen_range(0..100) < 70).then(|| rng.gen_range(0..persons.len()));
            let patient = patient_index.map(|i| &persons[i]);
            calls.push(CallRow {
                id: seeded_id(rng, at),
                received_at: at,
                caller_phone: patient.and_then(|p| p.phone.clone()),
                patient_id: patient_index.map(|i| patients[i].id.clone()),
                appointment_id: None,
                reason,
                outcome,
                duration_seconds: Some(if outcome == Outcome::Abandoned {
                    rng.gen_range(0..40)
                } else {
                    rng.gen_range(45..600)
                }),
                notes: None,
                callback_requested: outcome == Outcome::CallbackScheduled,
                agent_id: None,
                idempotency_key: None,
                request_hash: None,
                import_id: None,
                created_at: at,
            });
        }
    }

    let pbx = crate::db::phone_calls::PbxRow {
        id: seeded_id(rng, brussels(2022, 5, 14, 6, 0)),
        name: "Standard téléphonique Vivalia (démo)".into(),
        // Nobody holds this token: `reprise cti-token create` makes one to try the events.
        token_hash: crate::tokens::new_token().1,
        created_at: brussels(2022, 5, 14, 6, 0),
        revoked_at: None,
    };
    let phones: Vec<String> = persons.iter().filter_map(|p| p.phone.clone()).collect();
    let mut phone_calls = pbx_history(rng, &pbx.id, &calls, &phones);
    let mut patients_of = std::collections::HashMap::<String, Vec<String>>::new();
    for (person, row) in persons.iter().zip(&patients) {
        if let Some(phone) = &person.phone {
            patients_of
                .entry(phone.clone())
                .or_default()
                .push(row.id.clone());
        }
    }
    let (callbacks, attempts) = callback_history(rng, &mut phone_calls, &patients_of);

    let report_sizes = (
        sites.len(),
        services.len(),
        patients.len(),
        appointments.len(),
        calls.len(),
    );
    let site_codes: Vec<String> = SITES.iter().map(|s| s.code.to_string()).collect();
    let incident_id = seeded_id(rng, brussels(2022, 5, 14, 2, 0));
    let accounts: Vec<(&'static str, Vec<String>)> = vec![
        ("admin", vec![]),
        ("coordinator", vec![]),
        ("secretary", vec!["ARL-CHIR".into(), "ARL-ORTHO".into()]),
        ("agent", vec![]),
    ];
    let (postponed, tokens) = db.write_blocking(move |conn| {
        is_empty(conn)?;
        for s in &sites {
            db::sites::insert_site(conn, s)?;
        }
        for (s, _) in &services {
            db::sites::insert_service(conn, s)?;
        }
        db::patients::insert_many(conn, &patients)?;
        db::appointments::insert_many(conn, &appointments)?;
        let incident = db::incidents::IncidentRow {
            id: incident_id,
            title: "Cyberattaque : arrêt informatique (nuit du 13 au 14 mai 2022)".into(),
            started_at: brussels(2022, 5, 14, 2, 0),
            postpone_until: brussels(2022, 6, 4, 0, 0),
            created_at: brussels(2022, 5, 14, 6, 0),
            created_by: None,
        };
        db::incidents::insert(conn, &incident, &site_codes)?;
        let done = db::incidents::apply(conn, &incident.id, &site_codes, incident.started_at, incident.postpone_until, incident.created_at)?;
        // Those emails went out in May 2022: recorded so, the first start of the service on
        // the demo sends none of them (until someone reopens a site or moves a date).
        db::notifications::record_postponed_as_sent(conn, &incident.id, incident.created_at)?;
        db::calls::insert_many(conn, &calls)?;
        db::phone_calls::insert_pbx(conn, &pbx)?;
        db::callbacks::insert_many(conn, &callbacks, &attempts)?;
        db::phone_calls::insert_many(conn, &phone_calls)?;
        let caller = crate::auth::Caller::command_line();
        let mut tokens = std::collections::BTreeMap::new();
        for (role, services) in accounts {
            let new = crate::domain::account::NewAccount::parse(&format!("Démo {role}"), role, &services)
                .map_err(|_| crate::error::AppError::Internal("demo account".into()))?;
            let created = crate::service::users::create_account(conn, &caller, new)?;
            tokens.insert(role.to_string(), created.token);
        }
        crate::audit::record(
            conn,
            &caller,
            "demo.load",
            None,
            serde_json::json!({ "seed": seed, "patients": patients.len(), "appointments": appointments.len(), "calls": calls.len(), "postponed": done.postponed }),
        )?;
        Ok::<_, crate::error::AppError>((done.postponed, tokens))
    })?;
    Ok(DemoReport {
        sites: report_sizes.0,
        services: report_sizes.1,
        patients: report_sizes.2,
        appointments: report_sizes.3,
        postponed,
        calls: report_sizes.4,
        tokens,
    })
}
