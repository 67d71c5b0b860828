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

/// How much of the scenario to load: the whole Vivalia case, or a small one for tests.
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

struct SiteSpec {
    code: &'static str,
    name: &'static str,
    kind: &'static str,
    rooms: i32,
    rank: Option<i32>,
    phone_zone: &'static str,
}

const SITES: &[SiteSpec] = &[
    SiteSpec {
        code: "ARL",
        name: "Clinique du Sud-Luxembourg (Arlon)",
        kind: "hospital",
        rooms: 4,
        rank: Some(1),
        phone_zone: "63",
    },
    SiteSpec {
        code: "MAR",
        name: "Centre hospitalier de Marche",
        kind: "hospital",
        rooms: 5,
        rank: Some(2),
        phone_zone: "84",
    },
    SiteSpec {
        code: "LIB",
        name: "Centre hospitalier du Centre-Ardenne (Libramont)",
        kind: "hospital",
        rooms: 6,
        rank: Some(3),
        phone_zone: "61",
    },
    SiteSpec {
        code: "BAS",
        name: "Centre hospitalier de Bastogne",
        kind: "hospital",
        rooms: 3,
        rank: Some(4),
        phone_zone: "61",
    },
    SiteSpec {
        code: "MR-SOD",
        name: "Maison de repos de Sainte-Ode",
        kind: "nursing_home",
        rooms: 0,
        rank: None,
        phone_zone: "61",
    },
    SiteSpec {
        code: "MR-HOU",
        name: "Maison de repos de Houffalize",
        kind: "nursing_home",
        rooms: 0,
        rank: None,
        phone_zone: "61",
    },
    SiteSpec {
        code: "MR-VIE",
        name: "Maison de repos de Vielsalm",
        kind: "nursing_home",
        rooms: 0,
        rank: None,
        phone_zone: "80",
    },
];

/// (code suffix, name, share of operations among its appointments)
const HOSPITAL_SERVICES: &[(&str, &str, u32)] = &[
    ("CHIR", "Chirurgie générale", 60),
    ("ORTHO", "Orthopédie", 55),
    ("CARDIO", "Cardiologie", 15),
    ("GASTRO", "Gastro-entérologie", 35),
    ("OPHTA", "Ophtalmologie", 40),
    ("GYN", "Gynécologie-obstétrique", 25),
    ("ORL", "Oto-rhino-laryngologie", 30),
    ("PED", "Pédiatrie", 5),
];

const OPERATIONS: &[&str] = &[
    "Prothèse de hanche",
    "Prothèse de genou",
    "Arthroscopie du genou",
    "Cholécystectomie",
    "Hernie inguinale",
    "Cataracte",
    "Amygdalectomie",
    "Coloscopie",
    "Canal carpien",
    "Varices",
    "Hystéroscopie",
    "Pose de pacemaker",
];
const CONSULTATIONS: &[&str] = &[
    "Consultation de contrôle",
    "Première consultation",
    "Suivi post-opératoire",
    "Bilan pré-opératoire",
    "Échographie",
    "Électrocardiogramme",
    "Consultation de suivi",
];

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
    use crate::domain::patient::search_key;

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
    let mut people = People::new(seed);
    let persons: Vec<Person> = people.by_ref().take(size.patients).collect();
    let rng = people.rng();
    let created = brussels(2022, 4, 1, 8, 0);

    let sites: Vec<SiteRow> = SITES
        .iter()
        .map(|s| SiteRow {
            code: s.code.into(),
            name: s.name.into(),
            kind: s.kind.into(),
            operating_rooms: s.rooms,
            status: "open".into(),
            programme: None,
            reopened_at: None,
            reopening_rank: s.rank,
            created_at: created,
            operating_rooms_open: None,
        })
        .collect();
    let mut services: Vec<(ServiceRow, u32)> = Vec::new();
    for s in SITES {
        let specs: &[(&str, &str, u32)] = if s.kind == "hospital" {
            HOSPITAL_SERVICES
        } else {
            &[("GERIA", "Gériatrie", 0)]
        };
        for (suffix, name, operations) in specs {
            services.push((
                ServiceRow {
                    code: format!("{}-{suffix}", s.code),
                    name: (*name).into(),
                    site_code: s.code.into(),
                    secretariat_email: Some(format!(
                        "{}.{}@example.be",
                        suffix.to_lowercase(),
                        s.code.to_lowercase()
                    )),
                    secretariat_phone: Some(format!(
                        "+32{}{:06}",
                        s.phone_zone,
                        rng.gen_range(200_000..999_999)
                    )),
                    created_at: created,
                },
                *operations,
            ));
        }
    }

    let patients: Vec<PatientRow> = persons
        .iter()
        .map(|p| PatientRow {
            id: seeded_id(rng, created),
            national_number: Some(p.national_number.clone()),
            last_name: p.last_name.clone(),
            first_name: p.first_name.clone(),
            birth_date: p.birth_date,
            phone: p.phone.clone(),
            email: p.email.clone(),
            language: p.language.as_str().into(),
            email_consent: p.email_consent,
            last_name_key: search_key(&p.last_name),
            first_name_key: search_key(&p.first_name),
            import_id: None,
            created_at: created,
        })
        .collect();

    // Appointments from 2 May to 15 July 2022, working hours, mostly at the hospitals.
    let first_day = NaiveDate::from_ymd_opt(2022, 5, 2).unwrap_or_default();
    let mut appointments = Vec::with_capacity(size.appointments);
    for _ in 0..size.appointments {
        let (service, operations) = loop {
            let (s, ops) = &services[rng.gen_range(0..services.len())];
            // Nursing homes see a visiting geriatrician now and then.
            if !s.code.starts_with("MR-") || rng.gen_range(0..10) == 0 {
                break (s, *ops);
            }
        };
        let day = loop {
            let d = first_day + chrono::Duration::days(rng.gen_range(0..75));
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
        let operation = rng.gen_range(0..100) < operations;
        let label = if operation {
            OPERATIONS[rng.gen_range(0..OPERATIONS.len())]
        } else {
            CONSULTATIONS[rng.gen_range(0..CONSULTATIONS.len())]
        };
        let priority = match rng.gen_range(0..100) {
            0..=9 => 1,
            10..=34 => 2,
            35..=69 => 3,
            _ => 4,
        };
        let roll = rng.gen_range(0..100);
        appointments.push(AppointmentRow {
            id: seeded_id(rng, created),
            patient_id: patients[rng.gen_range(0..patients.len())].id.clone(),
            site_code: service.site_code.clone(),
            service_code: service.code.clone(),
            kind: if operation {
                "operation"
            } else {
                "consultation"
            }
            .into(),
            label: label.into(),
            original_scheduled_at: at,
            scheduled_at: at,
            priority,
            urgent: roll < 4,
            essential: (4..10).contains(&roll),
            status: "scheduled".into(),
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
        ("appointment_status", 40),
        ("reschedule_request", 20),
        ("cancellation", 5),
        ("medical_question", 10),
        ("prescription", 8),
        ("results", 7),
        ("administrative", 7),
        ("other", 3),
    ];
    let outcomes = [
        ("informed", 55),
        ("forwarded_to_service", 20),
        ("callback_scheduled", 15),
        ("appointment_cancelled", 3),
        ("abandoned", 7),
    ];
    let pick = |rng: &mut ChaCha8Rng, table: &[(&'static str, u32)]| -> &'static str {
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        let mut roll = rng.gen_range(0..total);
        for (name, w) in table {
            if roll < *w {
                return name;
            }
            roll -= w;
        }
        table[0].0
    };
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
                reason: reason.into(),
                outcome: outcome.into(),
                duration_seconds: Some(if outcome == "abandoned" {
                    rng.gen_range(0..40)
                } else {
                    rng.gen_range(45..600)
                }),
                notes: None,
                callback_requested: outcome == "callback_scheduled",
                agent_id: None,
                idempotency_key: None,
                request_hash: None,
                import_id: None,
                created_at: at,
            });
        }
    }

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
        let caller = crate::auth::Caller::command_line();
        let mut tokens = std::collections::BTreeMap::new();
        for (role, services) in accounts {
            let new = crate::domain::account::NewAccount::parse(&format!("Démo {role}"), role, &services)
                .map_err(|_| crate::error::AppError::Internal("demo account".into()))?;
            let created = crate::auth::create_account(conn, &caller, new)?;
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
