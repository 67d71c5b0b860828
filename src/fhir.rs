//! The FHIR R4 format of CONTRACT §4.10: reprise's rows as FHIR resources (JSON values), and
//! the codes that map each way. docs/fhir.md gives the mapping field by field.
//!
//! Identifier and code systems of reprise's own are URNs under `urn:reprise:`; the patient's
//! national number uses the Belgian eHealth system and the patient the `be-patient` profile.

use chrono::NaiveDateTime;
use serde_json::{json, Map, Value};

use crate::db::appointments::{AppointmentRow, AttemptRow};
use crate::db::notifications::NotificationRow;
use crate::db::patients::PatientRow;
use crate::db::sites::{ServiceRow, SiteRow};
use crate::domain::appointment::{CancelReason, Channel, ContactOutcome, Kind, Status};
use crate::domain::site::SiteStatus;

/// The media type of every FHIR answer.
pub const FHIR_JSON: &str = "application/fhir+json";
/// The media type of a bulk export's files.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// The Belgian national register number (INSZ / NISS).
pub const SSIN_SYSTEM: &str = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
/// The Belgian core profile of a patient.
pub const BE_PATIENT: &str =
    "https://www.ehealth.fgov.be/standards/fhir/core/StructureDefinition/be-patient";
/// reprise's own id of an appointment.
pub const APPOINTMENT_SYSTEM: &str = "urn:reprise:appointment";
/// reprise's own id of a patient.
pub const PATIENT_SYSTEM: &str = "urn:reprise:patient";
/// A site's code (a Location).
pub const SITE_SYSTEM: &str = "urn:reprise:site";
/// A service's code (a HealthcareService).
pub const SERVICE_SYSTEM: &str = "urn:reprise:service";
/// `operation` | `consultation` (Appointment.appointmentType).
pub const KIND_SYSTEM: &str = "urn:reprise:appointment-kind";
/// reprise's status (`scheduled`, `postponed`, `rescheduled`, `cancelled`), kept beside FHIR's.
pub const STATUS_SYSTEM: &str = "urn:reprise:appointment-status";
/// Why an appointment was cancelled (Appointment.cancelationReason).
pub const CANCEL_SYSTEM: &str = "urn:reprise:cancel-reason";
/// How a contact attempt ended (Communication.statusReason).
pub const OUTCOME_SYSTEM: &str = "urn:reprise:contact-outcome";
/// Which email was sent (Communication.category).
pub const EMAIL_SYSTEM: &str = "urn:reprise:email-template";
/// The date an appointment had before the shutdown (an extension of Appointment).
pub const ORIGINAL_START: &str = "urn:reprise:fhir:original-start";
/// HL7's participation modes (Communication.medium).
const MODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode";
/// BCP 47 language tags (Patient.communication).
const LANGUAGE_SYSTEM: &str = "urn:ietf:bcp:47";

/// How long reprise reports a consultation to last: it knows no consultation's length, and FHIR
/// wants an end to every booked appointment.
pub const CONSULTATION_MINUTES: i32 = 30;

/// The resource types of an export, in the order their files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Patient,
    Appointment,
    Communication,
    Location,
    HealthcareService,
}

impl ResourceType {
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Patient,
        ResourceType::Appointment,
        ResourceType::Communication,
        ResourceType::Location,
        ResourceType::HealthcareService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Patient => "Patient",
            ResourceType::Appointment => "Appointment",
            ResourceType::Communication => "Communication",
            ResourceType::Location => "Location",
            ResourceType::HealthcareService => "HealthcareService",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// `_type=Patient,Appointment`: the types named, in export order, each once; all of them
    /// when the list is empty. `Err` names the first unknown type.
    pub fn parse_list(raw: Option<&str>) -> Result<Vec<Self>, String> {
        let mut types = Vec::new();
        for name in raw.unwrap_or_default().split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            types.push(Self::parse(name).ok_or_else(|| name.to_string())?);
        }
        if types.is_empty() {
            return Ok(Self::ALL.to_vec());
        }
        types.sort();
        types.dedup();
        Ok(types)
    }
}

/// A FHIR `instant` (UTC, to the microsecond, as stored).
pub fn instant(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An instant as FHIR search and `_since` give it: a full date-time with its zone (`Z` or an
/// offset), or a date alone (midnight UTC).
pub fn parse_instant(raw: &str) -> Option<NaiveDateTime> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Some(at.naive_utc());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn coding(system: &str, code: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code }] })
}

/// A patient, with the Belgian core profile and the national number as identifier, then
/// reprise's id and those an import brought (`imported`).
pub fn patient(row: &PatientRow, imported: &[(String, String)]) -> Value {
    serde_json::to_value(PatientOut::new(row, imported)).unwrap_or_default()
}

/// [`patient`] written as JSON at the end of `out` (the exports).
pub fn write_patient(out: &mut Vec<u8>, row: &PatientRow, imported: &[(String, String)]) {
    let _ = serde_json::to_writer(out, &PatientOut::new(row, imported));
}

#[derive(serde::Serialize)]
struct ProfiledMeta {
    #[serde(rename = "lastUpdated")]
    last_updated: Instant,
    profile: [&'static str; 1],
}

#[derive(serde::Serialize)]
struct UsedIdentifier<'a> {
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    used: Option<&'static str>,
    system: &'a str,
    value: &'a str,
}

#[derive(serde::Serialize)]
struct NameOut<'a> {
    #[serde(rename = "use")]
    used: &'static str,
    family: &'a str,
    given: [&'a str; 1],
}

#[derive(serde::Serialize)]
struct Telecom<'a> {
    system: &'static str,
    value: &'a str,
}

#[derive(serde::Serialize)]
struct LanguageOut<'a> {
    language: Concept<'a>,
    preferred: bool,
}

/// The Patient resource (`be-patient`), field by field (docs/fhir.md).
#[derive(serde::Serialize)]
struct PatientOut<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    id: &'a str,
    meta: ProfiledMeta,
    identifier: Vec<UsedIdentifier<'a>>,
    name: [NameOut<'a>; 1],
    #[serde(rename = "birthDate")]
    birth_date: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    telecom: Vec<Telecom<'a>>,
    communication: [LanguageOut<'a>; 1],
}

impl<'a> PatientOut<'a> {
    fn new(row: &'a PatientRow, imported: &'a [(String, String)]) -> Self {
        let mut identifier = Vec::with_capacity(2 + imported.len());
        if let Some(nn) = &row.national_number {
            identifier.push(UsedIdentifier {
                used: Some("official"),
                system: SSIN_SYSTEM,
                value: nn,
            });
        }
        identifier.push(UsedIdentifier {
            used: None,
            system: PATIENT_SYSTEM,
            value: &row.id,
        });
        identifier.extend(imported.iter().map(|(system, value)| UsedIdentifier {
            used: None,
            system,
            value,
        }));
        let mut telecom = Vec::with_capacity(2);
        if let Some(phone) = &row.phone {
            telecom.push(Telecom {
                system: "phone",
                value: phone,
            });
        }
        if let Some(email) = &row.email {
            telecom.push(Telecom {
                system: "email",
                value: email,
            });
        }
        Self {
            resource_type: "Patient",
            id: &row.id,
            meta: ProfiledMeta {
                last_updated: Instant(row.created_at),
                profile: [BE_PATIENT],
            },
            identifier,
            name: [NameOut {
                used: "official",
                family: &row.last_name,
                given: [&row.first_name],
            }],
            birth_date: row.birth_date.format("%Y-%m-%d").to_string(),
            telecom,
            communication: [LanguageOut {
                language: Concept::of(LANGUAGE_SYSTEM, row.language.as_str()),
                preferred: true,
            }],
        }
    }
}

/// FHIR's status of an appointment in each of reprise's statuses (docs/fhir.md).
pub fn appointment_status(status: Status) -> &'static str {
    match status {
        Status::Scheduled | Status::Rescheduled => "booked",
        Status::Postponed => "waitlist",
        Status::Cancelled => "cancelled",
    }
}

/// reprise's statuses that a FHIR status code stands for; `None` for a code FHIR does not
/// define (a search answers 400); empty for a FHIR code reprise never uses.
pub fn statuses_of(code: &str) -> Option<&'static [Status]> {
    match code {
        "booked" => Some(&[Status::Scheduled, Status::Rescheduled]),
        "waitlist" => Some(&[Status::Postponed]),
        "cancelled" => Some(&[Status::Cancelled]),
        "proposed" | "pending" | "arrived" | "fulfilled" | "noshow" | "entered-in-error"
        | "checked-in" => Some(&[]),
        _ => None,
    }
}

/// What an appointment's resource needs beyond its row.
#[derive(Debug, Clone, Default)]
pub struct AppointmentExtras {
    /// Why it was cancelled (its last cancellation).
    pub cancel_reason: Option<CancelReason>,
    /// The planned length of its service's operations, in minutes.
    pub operation_minutes: Option<i32>,
    /// The identifiers an import brought, after reprise's own.
    pub identifiers: Vec<(String, String)>,
}

/// An appointment: its FHIR status, the patient, the site (Location) and the service
/// (HealthcareService) as participants, the original date as an extension.
pub fn appointment(row: &AppointmentRow, extras: &AppointmentExtras) -> Value {
    serde_json::to_value(AppointmentOut::new(row, extras)).unwrap_or_default()
}

/// [`appointment`] written as JSON at the end of `out` (the exports: no JSON tree built).
pub fn write_appointment(out: &mut Vec<u8>, row: &AppointmentRow, extras: &AppointmentExtras) {
    // Writing to a Vec cannot fail, and the types serialize infallibly.
    let _ = serde_json::to_writer(out, &AppointmentOut::new(row, extras));
}

/// An instant as FHIR writes it, `2022-05-14T06:00:00.000000Z`, formatted without a format
/// string (an export writes five per appointment).
#[derive(Debug, Clone, Copy)]
struct Instant(NaiveDateTime);

impl serde::Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use chrono::{Datelike, Timelike};
        let (d, t) = (self.0.date(), self.0.time());
        let mut buf = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, u32::try_from(d.year()).unwrap_or(0));
        put(5, 2, d.month());
        put(8, 2, d.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 6, t.nanosecond() / 1000);
        s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

/// `{prefix}/{id}`, written without building the string.
struct Reference<'a>(&'static str, &'a str);

impl serde::Serialize for Reference<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.0, self.1))
    }
}

#[derive(serde::Serialize)]
struct Meta {
    #[serde(rename = "lastUpdated")]
    last_updated: Instant,
}

#[derive(serde::Serialize)]
struct IdentifierOut<'a> {
    system: &'a str,
    value: &'a str,
}

#[derive(serde::Serialize)]
struct CodingOut<'a> {
    system: &'static str,
    code: &'a str,
}

#[derive(serde::Serialize)]
struct Concept<'a> {
    coding: [CodingOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

impl<'a> Concept<'a> {
    fn of(system: &'static str, code: &'a str) -> Self {
        Self {
            coding: [CodingOut { system, code }],
            text: None,
        }
    }
}

#[derive(serde::Serialize)]
struct ExtensionOut {
    url: &'static str,
    #[serde(rename = "valueInstant")]
    value_instant: Instant,
}

#[derive(serde::Serialize)]
struct Actor<'a> {
    reference: Reference<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<IdentifierOut<'a>>,
}

#[derive(serde::Serialize)]
struct Participant<'a> {
    actor: Actor<'a>,
    required: &'static str,
    status: &'static str,
}

/// The Appointment resource, field by field (docs/fhir.md).
#[derive(serde::Serialize)]
struct AppointmentOut<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    id: &'a str,
    meta: Meta,
    identifier: Vec<IdentifierOut<'a>>,
    status: &'static str,
    #[serde(rename = "appointmentType")]
    appointment_type: Concept<'a>,
    priority: i32,
    description: &'a str,
    start: Instant,
    end: Instant,
    #[serde(rename = "minutesDuration")]
    minutes_duration: i32,
    created: Instant,
    extension: [ExtensionOut; 1],
    #[serde(rename = "serviceCategory")]
    service_category: [Concept<'a>; 1],
    participant: [Participant<'a>; 3],
    #[serde(rename = "cancelationReason", skip_serializing_if = "Option::is_none")]
    cancelation_reason: Option<Concept<'a>>,
}

impl<'a> AppointmentOut<'a> {
    fn new(row: &'a AppointmentRow, extras: &'a AppointmentExtras) -> Self {
        let accepted = if row.status == Status::Postponed {
            "needs-action"
        } else {
            "accepted"
        };
        let minutes = match row.kind {
            Kind::Operation => extras.operation_minutes.unwrap_or(120),
            Kind::Consultation => CONSULTATION_MINUTES,
        }
        .max(1);
        let end = row.scheduled_at + chrono::Duration::minutes(i64::from(minutes));
        let participant =
            |reference: Reference<'a>, identifier: Option<IdentifierOut<'a>>| Participant {
                actor: Actor {
                    reference,
                    identifier,
                },
                required: "required",
                status: accepted,
            };
        let mut identifier = vec![IdentifierOut {
            system: APPOINTMENT_SYSTEM,
            value: &row.id,
        }];
        identifier.extend(
            extras
                .identifiers
                .iter()
                .map(|(system, value)| IdentifierOut { system, value }),
        );
        Self {
            resource_type: "Appointment",
            id: &row.id,
            meta: Meta {
                last_updated: Instant(row.updated_at),
            },
            identifier,
            status: appointment_status(row.status),
            appointment_type: Concept {
                text: Some(row.kind.as_str()),
                ..Concept::of(KIND_SYSTEM, row.kind.as_str())
            },
            priority: row.priority,
            description: &row.label,
            start: Instant(row.scheduled_at),
            end: Instant(end),
            minutes_duration: minutes,
            created: Instant(row.created_at),
            extension: [ExtensionOut {
                url: ORIGINAL_START,
                value_instant: Instant(row.original_scheduled_at),
            }],
            service_category: [Concept::of(STATUS_SYSTEM, row.status.as_str())],
            participant: [
                participant(Reference("Patient", &row.patient_id), None),
                participant(
                    Reference("Location", &row.site_code),
                    Some(IdentifierOut {
                        system: SITE_SYSTEM,
                        value: &row.site_code,
                    }),
                ),
                participant(
                    Reference("HealthcareService", &row.service_code),
                    Some(IdentifierOut {
                        system: SERVICE_SYSTEM,
                        value: &row.service_code,
                    }),
                ),
            ],
            cancelation_reason: (row.status == Status::Cancelled).then(|| {
                Concept::of(
                    CANCEL_SYSTEM,
                    extras.cancel_reason.map_or("other", CancelReason::as_str),
                )
            }),
        }
    }
}

fn medium(channel: Channel) -> Value {
    let (code, display) = match channel {
        Channel::Phone => ("PHONE", "telephone"),
        Channel::Email => ("EMAILWRIT", "email"),
        Channel::Letter => ("MAILWRIT", "mail"),
    };
    json!({ "coding": [{ "system": MODE_SYSTEM, "code": code, "display": display }] })
}

/// A contact attempt: a Communication about its Appointment, sent to the patient. An attempt
/// that did not get through (no answer, a wrong number) is `not-done`; the outcome is its
/// `statusReason` either way.
pub fn attempt(row: &AttemptRow, patient_id: &str) -> Value {
    let status = match row.outcome {
        ContactOutcome::NoAnswer | ContactOutcome::WrongNumber => "not-done",
        ContactOutcome::Reached | ContactOutcome::Voicemail | ContactOutcome::Declined => {
            "completed"
        }
    };
    let mut c = json!({
        "resourceType": "Communication",
        "id": row.id,
        "meta": { "lastUpdated": instant(row.at) },
        "status": status,
        "statusReason": coding(OUTCOME_SYSTEM, row.outcome.as_str()),
        "medium": [medium(row.channel)],
        "subject": { "reference": format!("Patient/{patient_id}") },
        "about": [{ "reference": format!("Appointment/{}", row.appointment_id) }],
        "recipient": [{ "reference": format!("Patient/{patient_id}") }],
        "sent": instant(row.at),
    });
    if let Some(note) = &row.note {
        c["note"] = json!([{ "text": note }]);
    }
    c
}

/// An email the outbox sent: a Communication about its Appointment (or, for a site's
/// reopening, about the patient only).
pub fn email(row: &NotificationRow) -> Option<Value> {
    let sent = row.sent_at?;
    let mut c = json!({
        "resourceType": "Communication",
        "id": row.id,
        "meta": { "lastUpdated": instant(sent) },
        "status": "completed",
        "category": [coding(EMAIL_SYSTEM, row.template.as_str())],
        "medium": [medium(Channel::Email)],
        "subject": { "reference": format!("Patient/{}", row.patient_id) },
        "recipient": [{ "reference": format!("Patient/{}", row.patient_id) }],
        "sent": instant(sent),
    });
    if let Some(appointment) = &row.appointment_id {
        c["about"] = json!([{ "reference": format!("Appointment/{appointment}") }]);
    }
    Some(c)
}

/// A site as a Location: `active` while open, `suspended` while closed; last updated when it
/// last opened or closed.
pub fn location(row: &SiteRow, updated_at: Option<NaiveDateTime>) -> Value {
    let status = match row.status {
        SiteStatus::Open => "active",
        SiteStatus::Closed => "suspended",
    };
    json!({
        "resourceType": "Location",
        "id": row.code,
        "meta": { "lastUpdated": instant(updated_at.unwrap_or(row.created_at)) },
        "identifier": [{ "system": SITE_SYSTEM, "value": row.code }],
        "status": status,
        "name": row.name,
        "mode": "instance",
        "type": [coding(SITE_SYSTEM, row.kind.as_str())],
    })
}

/// A service as a HealthcareService at its site's Location, with its secretariat's contacts.
pub fn healthcare_service(row: &ServiceRow) -> Value {
    let mut telecom = Vec::new();
    if let Some(phone) = &row.secretariat_phone {
        telecom.push(json!({ "system": "phone", "value": phone, "use": "work" }));
    }
    if let Some(email) = &row.secretariat_email {
        telecom.push(json!({ "system": "email", "value": email, "use": "work" }));
    }
    let mut s = json!({
        "resourceType": "HealthcareService",
        "id": row.code,
        "meta": { "lastUpdated": instant(row.created_at) },
        "identifier": [{ "system": SERVICE_SYSTEM, "value": row.code }],
        "active": true,
        "name": row.name,
        "location": [{ "reference": format!("Location/{}", row.site_code) }],
    });
    if !telecom.is_empty() {
        s["telecom"] = Value::Array(telecom);
    }
    s
}

/// An issue of an OperationOutcome: what went wrong, and where (a FHIRPath expression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub code: &'static str,
    pub diagnostics: String,
    pub expression: Option<String>,
}

/// FHIR's issue type for an HTTP status.
pub fn issue_code(status: u16) -> &'static str {
    match status {
        400 | 415 => "structure",
        401 => "login",
        403 => "forbidden",
        404 | 410 => "not-found",
        405 => "not-supported",
        409 => "conflict",
        413 => "too-costly",
        422 => "invalid",
        429 => "throttled",
        503 => "transient",
        _ => "exception",
    }
}

/// The OperationOutcome of an error: one `error` issue each.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut issue = Map::new();
            issue.insert("severity".into(), json!("error"));
            issue.insert("code".into(), json!(i.code));
            issue.insert("diagnostics".into(), json!(i.diagnostics));
            if let Some(e) = &i.expression {
                issue.insert("expression".into(), json!([e]));
            }
            Value::Object(issue)
        })
        .collect();
    json!({ "resourceType": "OperationOutcome", "issue": issues })
}

/// The OperationOutcome of a problem+json body (`{status, detail, errors: [{field, message,
/// line?}]}`): one issue per field at fault, or one for the problem itself.
pub fn outcome_of_problem(problem: &Value) -> Value {
    let status = problem["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(500);
    let code = issue_code(status);
    let detail = problem["detail"].as_str().unwrap_or("error").to_string();
    let fields: Vec<Issue> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Issue {
            code,
            diagnostics: e["message"].as_str().unwrap_or_default().to_string(),
            expression: e["field"].as_str().map(str::to_string),
        })
        .collect();
    if fields.is_empty() {
        operation_outcome(&[Issue {
            code,
            diagnostics: detail,
            expression: None,
        }])
    } else {
        operation_outcome(&fields)
    }
}

/// The CapabilityStatement of `GET /fhir/metadata`: what this server reads, searches, exports
/// and imports.
pub fn capability_statement(version: &str, base: &str, date: NaiveDateTime) -> Value {
    // Exported only: no interaction of their own (FHIR's JSON has no empty arrays).
    let read_only = |kind: &str| json!({ "type": kind });
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(date),
        "publisher": "reprise",
        "kind": "instance",
        "software": { "name": "reprise", "version": version },
        "implementation": { "description": "reprise: patients rebooked after an IT shutdown", "url": base },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "OAuth",
                }], "text": "Bearer tokens of reprise accounts (admin, coordinator)" }],
            },
            "resource": [
                {
                    "type": "Patient",
                    "profile": BE_PATIENT,
                    "interaction": [{ "code": "read" }],
                },
                {
                    "type": "Appointment",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference" },
                        { "name": "status", "type": "token" },
                        { "name": "_lastUpdated", "type": "date" },
                        { "name": "_count", "type": "number" },
                    ],
                },
                read_only("Communication"),
                read_only("Location"),
                read_only("HealthcareService"),
            ],
            "interaction": [{ "code": "transaction" }, { "code": "batch" }],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_types_parse_in_order_once_each() {
        assert_eq!(
            ResourceType::parse_list(Some("Appointment,Patient,Appointment")),
            Ok(vec![ResourceType::Patient, ResourceType::Appointment])
        );
        assert_eq!(
            ResourceType::parse_list(None),
            Ok(ResourceType::ALL.to_vec())
        );
        assert_eq!(
            ResourceType::parse_list(Some("Patient,Observation")),
            Err("Observation".into())
        );
    }

    #[test]
    fn every_status_maps_to_fhir_and_back() {
        for status in Status::ALL {
            let code = appointment_status(status);
            assert!(
                statuses_of(code).is_some_and(|s| s.contains(&status)),
                "{status} → {code}"
            );
        }
        assert_eq!(statuses_of("noshow"), Some(&[][..]));
        assert_eq!(statuses_of("BOOKED"), None);
    }

    #[test]
    fn instants_keep_the_microsecond_and_read_back() {
        let at = chrono::NaiveDate::from_ymd_opt(2022, 5, 14)
            .and_then(|d| d.and_hms_micro_opt(1, 2, 3, 456_789))
            .expect("a time");
        assert_eq!(instant(at), "2022-05-14T01:02:03.456789Z");
        assert_eq!(parse_instant(&instant(at)), Some(at));
        assert_eq!(parse_instant("2022-05-14T03:02:03.456789+02:00"), Some(at));
        assert!(parse_instant("2022-05-14").is_some());
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(
            parse_instant("2022-05-14T01:02:03"),
            None,
            "a zone is required"
        );
    }

    #[test]
    fn the_fast_instant_writes_what_chrono_writes() {
        for (date, micros) in [
            ((2022, 5, 14), 456_789),
            ((1999, 12, 31), 0),
            ((2030, 1, 2), 7),
        ] {
            let at = chrono::NaiveDate::from_ymd_opt(date.0, date.1, date.2)
                .and_then(|d| d.and_hms_micro_opt(23, 9, 59, micros))
                .expect("a time");
            assert_eq!(
                serde_json::to_value(Instant(at)).ok(),
                Some(Value::String(instant(at)))
            );
        }
    }

    #[test]
    fn a_problem_becomes_an_outcome_naming_each_field() {
        let problem = json!({
            "status": 422, "detail": "2 fields are invalid",
            "errors": [{"field": "a", "message": "bad"}, {"field": "b", "message": "worse"}],
        });
        let outcome = outcome_of_problem(&problem);
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][1]["expression"][0], "b");
        assert_eq!(outcome["issue"][0]["code"], "invalid");
        let not_found = outcome_of_problem(&json!({"status": 404, "detail": "no such patient"}));
        assert_eq!(not_found["issue"][0]["code"], "not-found");
        assert_eq!(not_found["issue"][0]["diagnostics"], "no such patient");
    }
}
