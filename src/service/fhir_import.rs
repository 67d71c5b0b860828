//! `POST /api/v1/fhir`: a Bundle of Patients and Appointments imported (CONTRACT §4.10) with
//! the checks of the CSV import (national number and birth date, phones, addresses, sites and
//! services known, kinds, priorities, dates). A `transaction` or a `collection` stores all or
//! nothing; a `batch` stores each good entry and answers each entry. An Appointment must carry
//! an identifier: the same Bundle again finds it and creates nothing more (`fhir_identifiers`).
//! Statuses come back as exported (docs/fhir.md), so an export imported into an empty database
//! exports the same resources again.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::db::{self, appointments::AppointmentRow, fhir::Identifier, Db};
use crate::domain::appointment::{CancelReason, Kind, Priority, Status};
use crate::domain::patient::{NewPatient, PatientInput};
use crate::error::{AppError, FieldError};
use crate::fhir;

/// The Bundle's types this server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleType {
    Transaction,
    Batch,
    Collection,
}

/// A patient entry, checked.
#[derive(Debug, Clone)]
struct PatientEntry {
    patient: NewPatient,
    /// Identifiers other than the national number and reprise's own.
    identifiers: Vec<(String, String)>,
}

/// Who an appointment is for.
#[derive(Debug, Clone)]
enum PatientRef {
    /// An entry of the Bundle, by index.
    Entry(usize),
    /// A patient already stored.
    Stored(String),
}

/// An appointment entry, checked.
#[derive(Debug, Clone)]
struct AppointmentEntry {
    patient: PatientRef,
    site: String,
    service: String,
    kind: Kind,
    label: String,
    scheduled_at: NaiveDateTime,
    original_scheduled_at: NaiveDateTime,
    priority: Priority,
    status: Status,
    cancel_reason: Option<CancelReason>,
    identifiers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum Checked {
    Patient(PatientEntry),
    Appointment(AppointmentEntry),
}

/// What became of one entry: `(type, id, created)` for a stored (or already known) record,
/// or its faults.
pub type EntryOutcome = Result<(&'static str, String, bool), Vec<FieldError>>;

/// An entry read and checked, or its faults.
type CheckedEntry = Result<Checked, Vec<FieldError>>;

/// What an import did, entry by entry.
#[derive(Debug)]
pub struct ImportReport {
    pub bundle_type: BundleType,
    pub entries: Vec<EntryOutcome>,
}

/// Paths of the faults a domain parse names (`birth_date`) as FHIR paths of the entry.
fn patient_path(field: &str) -> &'static str {
    match field {
        "national_number" => "identifier",
        "last_name" => "name[0].family",
        "first_name" => "name[0].given[0]",
        "birth_date" => "birthDate",
        "phone" | "email" => "telecom",
        "language" => "communication[0].language",
        _ => "",
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Longest identifier system or value kept (an index key must stay small on PostgreSQL).
const IDENTIFIER_MAX: usize = 1024;

/// The `(system, value)` pairs of a resource's `identifier`, each once; an identifier
/// without a system or a value, or longer than [`IDENTIFIER_MAX`], is a fault.
fn identifiers(resource: &Value, faults: &mut Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, i) in resource["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let part = |key: &str| {
            str_at(i, key)
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= IDENTIFIER_MAX)
        };
        match (part("system"), part("value")) {
            (Some(system), Some(value)) => {
                let pair = (system.to_string(), value.to_string());
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
            _ => faults.push((
                format!("identifier[{k}]"),
                format!("needs a system and a value, each of 1 to {IDENTIFIER_MAX} characters"),
            )),
        }
    }
    out
}

fn read_patient(
    resource: &Value,
    today: chrono::NaiveDate,
    faults: &mut Vec<(String, String)>,
) -> Option<PatientEntry> {
    let ids = identifiers(resource, faults);
    let ssin = ids
        .iter()
        .find(|(system, _)| system == fhir::SSIN_SYSTEM)
        .map(|(_, v)| v.as_str());
    let name = &resource["name"][0];
    let given: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let given = given.join(" ");
    let telecom = |system: &str| {
        resource["telecom"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| str_at(t, "system") == Some(system))
            .and_then(|t| str_at(t, "value"))
    };
    let language = resource["communication"][0]["language"]["coding"][0]["code"].as_str();
    let input = PatientInput {
        national_number: ssin,
        last_name: str_at(name, "family").unwrap_or_default(),
        first_name: &given,
        birth_date: str_at(resource, "birthDate").unwrap_or_default(),
        phone: telecom("phone"),
        email: telecom("email"),
        language,
        email_consent: false,
    };
    match NewPatient::parse(&input, today) {
        Ok(patient) => Some(PatientEntry {
            patient,
            identifiers: ids
                .into_iter()
                .filter(|(s, _)| s != fhir::SSIN_SYSTEM)
                .collect(),
        }),
        Err(f) => {
            for (field, e) in f {
                faults.push((patient_path(&field).to_string(), e.0));
            }
            None
        }
    }
}

/// What an actor of the participants may name: a site or a service, by reference
/// (`Location/ARL`, `HealthcareService/ARL-ORTH`), by identifier of reprise's systems, or by a
/// bare identifier value (then whichever of the two the code is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Site,
    Service,
    Either,
}

/// The codes the participants name, each with what it names; patients left aside.
fn actor_codes(resource: &Value) -> Vec<(String, Actor)> {
    resource["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["actor"])
        .filter_map(|actor| {
            let reference = str_at(actor, "reference");
            if let Some(code) = reference.and_then(|r| r.strip_prefix("Location/")) {
                return Some((code.to_string(), Actor::Site));
            }
            if let Some(code) = reference.and_then(|r| r.strip_prefix("HealthcareService/")) {
                return Some((code.to_string(), Actor::Service));
            }
            if reference.is_some() {
                return None;
            }
            let value = actor["identifier"]["value"].as_str()?;
            let named = match actor["identifier"]["system"].as_str() {
                Some(fhir::SITE_SYSTEM) => Actor::Site,
                Some(fhir::SERVICE_SYSTEM) => Actor::Service,
                _ => Actor::Either,
            };
            Some((value.to_string(), named))
        })
        .collect()
}

/// The site and the service the participants name, among those known.
fn site_and_service(
    actors: &[(String, Actor)],
    service_sites: &HashMap<String, String>,
) -> Result<(String, String), String> {
    let service = actors
        .iter()
        .find(|(code, named)| *named != Actor::Site && service_sites.contains_key(code))
        .map(|(code, _)| code.clone())
        .ok_or_else(|| match actors.iter().find(|(_, n)| *n == Actor::Service) {
            Some((code, _)) => format!("unknown service {code:?}"),
            None => "names no known service (an actor HealthcareService/{code}, or an identifier whose value is the service's code)".to_string(),
        })?;
    let site = &service_sites[&service];
    let named_site = actors
        .iter()
        .find(|(code, named)| *named == Actor::Site || (*named == Actor::Either && code != &service && service_sites.values().any(|s| s == code)))
        .map(|(code, _)| code.clone())
        .ok_or("names no site (an actor Location/{code}, or an identifier whose value is the site's code)")?;
    if &named_site != site {
        return Err(format!(
            "service {service} belongs to site {site}, not {named_site}"
        ));
    }
    Ok((named_site, service))
}

fn read_appointment(
    resource: &Value,
    entries: &HashMap<String, usize>,
    service_sites: &HashMap<String, String>,
    faults: &mut Vec<(String, String)>,
) -> Option<AppointmentEntry> {
    let ids = identifiers(resource, faults);
    let mut bad = |path: &str, why: &str| faults.push((path.to_string(), why.to_string()));
    if ids.is_empty() {
        bad("identifier", "is required: it makes the import idempotent");
    }
    let patient = resource["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| str_at(&p["actor"], "reference"))
        .find_map(|r| {
            entries.get(r).map(|&i| PatientRef::Entry(i)).or_else(|| {
                r.strip_prefix("Patient/")
                    .map(|id| PatientRef::Stored(id.to_string()))
            })
        });
    if patient.is_none() {
        bad(
            "participant",
            "names no patient (a reference to a Patient of the Bundle, or Patient/{id})",
        );
    }
    let place = site_and_service(&actor_codes(resource), service_sites)
        .map_err(|why| bad("participant", &why))
        .ok();
    let kind = resource["appointmentType"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| str_at(c, "code").and_then(|code| Kind::parse(code).ok()));
    if kind.is_none() {
        bad(
            "appointmentType",
            "must have a coding operation or consultation",
        );
    }
    let label = crate::domain::appointment::parse_text(
        str_at(resource, "description").unwrap_or_default(),
        200,
    )
    .map_err(|e| bad("description", &e.0))
    .ok();
    // A date FHIR can write back: 1900 to 2200.
    let sane = |at: &NaiveDateTime| (1900..=2200).contains(&chrono::Datelike::year(at));
    let instant = |key: &str| {
        str_at(resource, key)
            .and_then(fhir::parse_instant)
            .filter(sane)
    };
    let start = instant("start");
    if start.is_none() {
        bad(
            "start",
            "must be an instant with its zone, between 1900 and 2200",
        );
    }
    let original = resource["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| str_at(e, "url") == Some(fhir::ORIGINAL_START))
        .and_then(|e| str_at(e, "valueInstant").and_then(fhir::parse_instant))
        .filter(sane);
    let priority = resource["priority"]
        .as_i64()
        .and_then(|p| Priority::new(p).ok());
    if priority.is_none() {
        bad("priority", "must be 1, 2, 3 or 4");
    }
    let ours = resource["serviceCategory"][0]["coding"][0]["code"]
        .as_str()
        .and_then(|c| Status::parse(c).ok());
    let status = match str_at(resource, "status") {
        Some("booked") => Some(match ours {
            Some(Status::Rescheduled) => Status::Rescheduled,
            _ if original.is_some_and(|o| Some(o) != start) => Status::Rescheduled,
            _ => Status::Scheduled,
        }),
        Some("waitlist") => Some(Status::Postponed),
        Some("cancelled") => Some(Status::Cancelled),
        _ => {
            bad("status", "must be booked, waitlist or cancelled");
            None
        }
    };
    let cancel_reason = resource["cancelationReason"]["coding"][0]["code"]
        .as_str()
        .and_then(|c| CancelReason::parse(c).ok());
    Some(AppointmentEntry {
        patient: patient?,
        site: place.clone()?.0,
        service: place?.1,
        kind: kind?,
        label: label?,
        scheduled_at: start?,
        original_scheduled_at: original.or(start)?,
        priority: priority?,
        status: status?,
        cancel_reason: cancel_reason.filter(|_| status == Some(Status::Cancelled)),
        identifiers: ids,
    })
    .filter(|_| faults.is_empty())
}

/// Reads and checks a Bundle: its type and each entry (`Err` for the Bundle itself: not a
/// Bundle, a type it does not take, no entries).
fn check_bundle(
    bundle: &Value,
    service_sites: &HashMap<String, String>,
    today: chrono::NaiveDate,
) -> Result<(BundleType, Vec<CheckedEntry>), AppError> {
    if str_at(bundle, "resourceType") != Some("Bundle") {
        return Err(AppError::validation("resourceType", "must be Bundle"));
    }
    let kind = match str_at(bundle, "type") {
        Some("transaction") => BundleType::Transaction,
        Some("batch") => BundleType::Batch,
        Some("collection") => BundleType::Collection,
        _ => {
            return Err(AppError::validation(
                "Bundle.type",
                "must be transaction, batch or collection",
            ))
        }
    };
    let none = Vec::new();
    let entries = bundle["entry"].as_array().unwrap_or(&none);
    if entries.is_empty() {
        return Err(AppError::validation("Bundle.entry", "is empty"));
    }
    // Each Patient entry by the names an Appointment may use for it.
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        if str_at(r, "resourceType") == Some("Patient") {
            if let Some(url) = str_at(e, "fullUrl") {
                names.insert(url.to_string(), i);
            }
            if let Some(id) = str_at(r, "id") {
                names.insert(format!("Patient/{id}"), i);
            }
        }
    }
    let mut checked = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        let mut faults = Vec::new();
        let one = match str_at(r, "resourceType") {
            Some("Patient") => read_patient(r, today, &mut faults).map(Checked::Patient),
            Some("Appointment") => {
                read_appointment(r, &names, service_sites, &mut faults).map(Checked::Appointment)
            }
            _ => {
                faults.push((
                    "resourceType".into(),
                    "must be Patient or Appointment".into(),
                ));
                None
            }
        };
        checked.push(match one {
            Some(c) if faults.is_empty() => Ok(c),
            _ => Err(faults
                .into_iter()
                .map(|(path, why)| {
                    let field = if path.is_empty() {
                        format!("Bundle.entry[{i}].resource")
                    } else {
                        format!("Bundle.entry[{i}].resource.{path}")
                    };
                    FieldError::new(field, why)
                })
                .collect()),
        });
    }
    // A patient nothing identifies must be named by an appointment of the Bundle: else the
    // same Bundle again would create it again.
    let named: HashSet<usize> = checked
        .iter()
        .filter_map(|c| match c {
            Ok(Checked::Appointment(AppointmentEntry {
                patient: PatientRef::Entry(p),
                ..
            })) => Some(*p),
            _ => None,
        })
        .collect();
    for (i, c) in checked.iter_mut().enumerate() {
        if let Ok(Checked::Patient(p)) = c {
            if p.patient.national_number.is_none()
                && p.identifiers.is_empty()
                && !named.contains(&i)
            {
                *c = Err(vec![FieldError::new(
                    format!("Bundle.entry[{i}].resource.identifier"),
                    "a patient needs a national number or an identifier, unless an appointment of the Bundle names it",
                )]);
            }
        }
    }
    // An appointment whose patient entry is refused is refused too.
    let refused: HashSet<usize> = checked
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_err())
        .map(|(i, _)| i)
        .collect();
    for (i, c) in checked.iter_mut().enumerate() {
        if let Ok(Checked::Appointment(a)) = c {
            if let PatientRef::Entry(p) = a.patient {
                if refused.contains(&p) {
                    *c = Err(vec![FieldError::new(
                        format!("Bundle.entry[{i}].resource.participant"),
                        format!("its patient, Bundle.entry[{p}], is refused"),
                    )]);
                }
            }
        }
    }
    Ok((kind, checked))
}

/// Imports a Bundle; for a `transaction` or a `collection` with a bad entry, a 422 naming
/// every bad entry and nothing stored. Audited as `fhir.import`.
pub fn import_bundle(db: &Db, caller: &Caller, bundle: &Value) -> Result<ImportReport, AppError> {
    let service_sites: HashMap<String, String> = db
        .read_blocking(|conn| db::sites::all_service_sites(conn).map_err(AppError::from))?
        .into_iter()
        .collect();
    let now = crate::domain::now();
    let (kind, mut checked) = check_bundle(bundle, &service_sites, now.date())?;
    // Stored patients the appointments name must exist: said with the other faults.
    let named: Vec<String> = checked
        .iter()
        .filter_map(|c| match c {
            Ok(Checked::Appointment(AppointmentEntry {
                patient: PatientRef::Stored(id),
                ..
            })) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let existing = db.read_blocking(move |conn| {
        db::fhir::existing_patients(conn, &named).map_err(AppError::from)
    })?;
    for (i, c) in checked.iter_mut().enumerate() {
        if let Ok(Checked::Appointment(AppointmentEntry {
            patient: PatientRef::Stored(id),
            ..
        })) = c
        {
            if !existing.contains(id.as_str()) {
                *c = Err(vec![FieldError::new(
                    format!("Bundle.entry[{i}].resource.participant"),
                    "names a patient that does not exist",
                )]);
            }
        }
    }
    if kind != BundleType::Batch && checked.iter().any(Result::is_err) {
        return Err(AppError::Validation(
            checked
                .into_iter()
                .filter_map(Result::err)
                .flatten()
                .collect(),
        ));
    }
    let caller = caller.clone();
    db.write_blocking(move |conn| store(conn, &caller, kind, checked, now))
}

/// Stores the good entries in the caller's transaction: patients matched on national number
/// or on an identifier an earlier import brought, appointments skipped when one of their
/// identifiers is already known.
fn store(
    conn: &mut db::DbConnection,
    caller: &Caller,
    kind: BundleType,
    checked: Vec<CheckedEntry>,
    now: NaiveDateTime,
) -> Result<ImportReport, AppError> {
    let import_id = uuid::Uuid::now_v7().to_string();
    let numbers: Vec<String> = checked
        .iter()
        .filter_map(|c| match c {
            Ok(Checked::Patient(p)) => p
                .patient
                .national_number
                .as_ref()
                .map(|n| n.as_str().to_string()),
            _ => None,
        })
        .collect();
    let by_number: HashMap<String, String> = db::patients::ids_by_national_number(conn, &numbers)?
        .into_iter()
        .collect();
    let keys = |of: &str| -> Vec<(String, String)> {
        checked
            .iter()
            .filter_map(|c| match (c, of) {
                (Ok(Checked::Patient(p)), "Patient") => Some(p.identifiers.clone()),
                (Ok(Checked::Appointment(a)), "Appointment") => Some(a.identifiers.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    // What the identifiers name here: an earlier import's, or reprise's own ids of this
    // database (an export imported back).
    let own = |keys: &[(String, String)], system: &str| -> Vec<String> {
        keys.iter()
            .filter(|(s, _)| s == system)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let (patient_ids, appointment_ids) = (keys("Patient"), keys("Appointment"));
    let mut patient_keys = db::fhir::identified(conn, "Patient", &patient_ids)?;
    for id in db::fhir::existing_patients(conn, &own(&patient_ids, fhir::PATIENT_SYSTEM))? {
        patient_keys.insert((fhir::PATIENT_SYSTEM.to_string(), id.clone()), id);
    }
    let mut appointment_keys = db::fhir::identified(conn, "Appointment", &appointment_ids)?;
    let own_appointments = own(&appointment_ids, fhir::APPOINTMENT_SYSTEM);
    for id in db::fhir::appointment_patients(conn, &own_appointments)?.into_keys() {
        appointment_keys.insert((fhir::APPOINTMENT_SYSTEM.to_string(), id.clone()), id);
    }
    // A patient entry that nothing identifies and that only appointments already imported
    // name is their patient: the same Bundle again creates no one.
    let known_appointment = |a: &AppointmentEntry| {
        a.identifiers
            .iter()
            .find_map(|k| appointment_keys.get(k))
            .cloned()
    };
    let mut naming: HashMap<usize, Vec<Option<String>>> = HashMap::new();
    for c in &checked {
        if let Ok(Checked::Appointment(a)) = c {
            if let PatientRef::Entry(p) = a.patient {
                naming.entry(p).or_default().push(known_appointment(a));
            }
        }
    }
    let imported: Vec<String> = naming
        .values()
        .filter(|known| known.iter().all(Option::is_some))
        .filter_map(|known| known.first().cloned().flatten())
        .collect();
    let patient_of_imported = db::fhir::appointment_patients(conn, &imported)?;
    let mut entries: Vec<EntryOutcome> = Vec::with_capacity(checked.len());
    let mut patient_of_entry: HashMap<usize, String> = HashMap::new();
    let mut new_patients = Vec::new();
    let mut new_appointments = Vec::new();
    let mut new_identifiers = Vec::new();
    let mut seen_numbers: HashMap<String, String> = HashMap::new();
    let mut seen_patient_keys: HashMap<(String, String), String> = HashMap::new();
    for (i, c) in checked.iter().enumerate() {
        let Ok(Checked::Patient(p)) = c else { continue };
        let nn = p
            .patient
            .national_number
            .as_ref()
            .map(|n| n.as_str().to_string());
        let known = nn
            .as_ref()
            .and_then(|n| by_number.get(n).or_else(|| seen_numbers.get(n)))
            .or_else(|| {
                p.identifiers
                    .iter()
                    .find_map(|k| patient_keys.get(k).or_else(|| seen_patient_keys.get(k)))
            })
            .or_else(|| {
                let known = naming.get(&i)?;
                if !known.iter().all(Option::is_some) {
                    return None;
                }
                patient_of_imported.get(known.first()?.as_ref()?)
            })
            .cloned();
        let id = match known {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                new_patients.push(db::patients::PatientRow::from_new(
                    &p.patient,
                    id.clone(),
                    Some(import_id.clone()),
                    now,
                ));
                for (system, value) in &p.identifiers {
                    seen_patient_keys.insert((system.clone(), value.clone()), id.clone());
                    new_identifiers.push(Identifier {
                        resource_type: "Patient".into(),
                        system: system.clone(),
                        value: value.clone(),
                        resource_id: id.clone(),
                    });
                }
                if let Some(n) = nn {
                    seen_numbers.insert(n, id.clone());
                }
                id
            }
        };
        patient_of_entry.insert(i, id);
    }
    let created_patients: HashSet<String> = new_patients.iter().map(|p| p.id.clone()).collect();
    let mut seen_keys: HashMap<(String, String), String> = HashMap::new();
    for (i, c) in checked.into_iter().enumerate() {
        let outcome = match c {
            Err(faults) => Err(faults),
            Ok(Checked::Patient(_)) => {
                let id = patient_of_entry.get(&i).cloned().unwrap_or_default();
                let created = created_patients.contains(&id);
                Ok(("Patient", id, created))
            }
            Ok(Checked::Appointment(a)) => {
                // A stored patient was found to exist by `import_bundle` (patients are never
                // removed); a patient entry's id was just settled.
                let patient = match &a.patient {
                    PatientRef::Entry(p) => patient_of_entry.get(p).cloned(),
                    PatientRef::Stored(id) => Some(id.clone()),
                };
                let known = a
                    .identifiers
                    .iter()
                    .find_map(|k| appointment_keys.get(k).or_else(|| seen_keys.get(k)))
                    .cloned();
                match (patient, known) {
                    (_, Some(id)) => Ok(("Appointment", id, false)),
                    (None, None) => Err(vec![FieldError::new(
                        format!("Bundle.entry[{i}].resource.participant"),
                        "names a patient that does not exist",
                    )]),
                    (Some(patient_id), None) => {
                        let id = uuid::Uuid::now_v7().to_string();
                        for (system, value) in &a.identifiers {
                            seen_keys.insert((system.clone(), value.clone()), id.clone());
                            new_identifiers.push(Identifier {
                                resource_type: "Appointment".into(),
                                system: system.clone(),
                                value: value.clone(),
                                resource_id: id.clone(),
                            });
                        }
                        new_appointments.push((
                            AppointmentRow {
                                id: id.clone(),
                                patient_id,
                                site_code: a.site,
                                service_code: a.service,
                                kind: a.kind,
                                label: a.label,
                                original_scheduled_at: a.original_scheduled_at,
                                scheduled_at: a.scheduled_at,
                                priority: a.priority.get(),
                                urgent: false,
                                essential: false,
                                status: a.status,
                                incident_id: None,
                                postponed_at: (a.status == Status::Postponed).then_some(now),
                                import_id: Some(import_id.clone()),
                                created_at: now,
                                updated_at: now,
                                reached_at: None,
                                proposed_at: None,
                            },
                            a.cancel_reason,
                        ));
                        Ok(("Appointment", id, true))
                    }
                }
            }
        };
        entries.push(outcome);
    }
    if kind != BundleType::Batch && entries.iter().any(Result::is_err) {
        return Err(AppError::Validation(
            entries
                .into_iter()
                .filter_map(Result::err)
                .flatten()
                .collect(),
        ));
    }
    db::patients::insert_many(conn, &new_patients)?;
    let rows: Vec<AppointmentRow> = new_appointments.iter().map(|(r, _)| r.clone()).collect();
    db::appointments::insert_many(conn, &rows)?;
    // A cancellation's reason is its event's, as for a cancellation made here.
    for (row, reason) in &new_appointments {
        if row.status == Status::Cancelled {
            db::appointments::insert_event(
                conn,
                &db::appointments::NewEvent {
                    appointment_id: &row.id,
                    at: now,
                    from_status: Status::Scheduled,
                    to_status: Status::Cancelled,
                    scheduled_at: None,
                    reason: Some(reason.unwrap_or(CancelReason::Other).as_str()),
                    note: None,
                    actor_id: caller.id.as_deref(),
                },
            )?;
        }
    }
    db::fhir::insert_identifiers(conn, &new_identifiers)?;
    let created = entries
        .iter()
        .filter(|e| matches!(e, Ok((_, _, true))))
        .count();
    crate::audit::record(
        conn,
        caller,
        "fhir.import",
        Some(&format!("import:{import_id}")),
        json!({
            "entries": entries.len(),
            "appointments_created": rows.len(),
            "patients_created": new_patients.len(),
            "refused": entries.iter().filter(|e| e.is_err()).count(),
            "created": created,
        }),
    )?;
    Ok(ImportReport {
        bundle_type: kind,
        entries,
    })
}

/// The answer Bundle of an import: `transaction-response` (or `batch-response`) with each
/// entry's status and location, or, in a batch, its OperationOutcome.
pub fn response_bundle(report: &ImportReport) -> Value {
    let entries: Vec<Value> = report
        .entries
        .iter()
        .map(|e| match e {
            Ok((kind, id, created)) => json!({ "response": {
                "status": if *created { "201 Created" } else { "200 OK" },
                "location": format!("{kind}/{id}"),
            }}),
            Err(faults) => json!({ "response": {
                "status": "422 Unprocessable Entity",
                "outcome": fhir::operation_outcome(&faults.iter().map(|f| fhir::Issue {
                    code: "invalid",
                    diagnostics: f.message.clone(),
                    expression: Some(f.field.clone()),
                }).collect::<Vec<_>>()),
            }}),
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": if report.bundle_type == BundleType::Batch { "batch-response" } else { "transaction-response" },
        "entry": entries,
    })
}
