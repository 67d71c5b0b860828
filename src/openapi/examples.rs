//! Examples of the API document, drawn from the demo: its first hospital and service, and a
//! person from its seeded generator (`demo::People`), so that no example is a real-looking
//! person invented by hand. Response examples are the API's own response types, serialized:
//! they cannot drift from their schemas.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::RefOr;

use crate::demo::{self, Patients, People, Person};
use crate::routes::{self, Page};

/// The seed of the examples' person.
const SEED: u64 = 18;

/// An instant of May 2022 in UTC (Brussels summer time is UTC+2): the demo's story, the
/// shutdown of the night of 13 to 14 May 2022.
fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    on(5, d, h, m)
}

fn on(month: u32, d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, month, d, h, m, 0)
        .single()
        .unwrap_or_default()
}

const PATIENT_ID: &str = "0180c6b5-5a2e-7c4e-9d8a-3f1b2c4d5e6f";
const APPOINTMENT_ID: &str = "0180c6b6-1f40-7a10-8b3c-5d6e7f809a1b";
const CALL_ID: &str = "0180fb1e-8c20-7d55-a1b2-c3d4e5f60718";
const INCIDENT_ID: &str = "0180c2e3-0a00-7b00-9c00-d1e2f3a4b5c6";
const AGENT_ID: &str = "0180c0aa-0000-7000-8000-0000000000a1";

/// What the examples are made of.
struct Story {
    site: &'static demo::SiteSpec,
    service_code: String,
    service: &'static demo::ServiceSpec,
    person: Person,
}

impl Story {
    fn new() -> Self {
        let site = &demo::SITES[0];
        let service = &demo::HOSPITAL_SERVICES[0];
        Self {
            site,
            service_code: format!("{}-{}", site.code, service.suffix),
            service,
            person: People::new(SEED).person(Some(Patients::Adults)),
        }
    }

    fn label(&self) -> &'static str {
        self.service
            .operations
            .first()
            .copied()
            .unwrap_or("Opération")
    }

    fn site(&self) -> routes::sites::SiteResponse {
        routes::sites::SiteResponse {
            code: self.site.code.into(),
            name: self.site.name.into(),
            kind: self.site.kind.to_string(),
            operating_rooms: self.site.rooms,
            status: "closed".into(),
            programme: None,
            reopened_at: None,
            reopening_rank: self.site.rank,
            operating_rooms_open: None,
            postponed_to_contact: 412,
        }
    }

    fn service(&self) -> routes::sites::ServiceResponse {
        routes::sites::ServiceResponse {
            code: self.service_code.clone(),
            name: self.service.name.into(),
            site: self.site.code.into(),
            secretariat_email: Some(format!("{}@example.be", self.service_code.to_lowercase())),
            secretariat_phone: Some(format!("+32{}211111", self.site.phone_zone)),
        }
    }

    fn patient(&self) -> routes::patients::PatientResponse {
        let row = self
            .person
            .patient_row(PATIENT_ID.into(), at(2, 8, 12).naive_utc());
        routes::patients::PatientResponse::from(row)
    }

    fn appointment(&self) -> routes::appointments::AppointmentResponse {
        routes::appointments::AppointmentResponse {
            id: APPOINTMENT_ID.into(),
            patient_id: PATIENT_ID.into(),
            site: self.site.code.into(),
            service: self.service_code.clone(),
            kind: "operation".into(),
            label: self.label().into(),
            scheduled_at: at(16, 6, 30),
            original_scheduled_at: at(16, 6, 30),
            priority: 2,
            urgent: false,
            essential: false,
            status: "scheduled".into(),
            incident_id: None,
            created_at: at(2, 8, 15),
            updated_at: at(2, 8, 15),
            reached_at: None,
            proposed_at: None,
        }
    }

    fn call(&self) -> routes::calls::CallResponse {
        routes::calls::CallResponse {
            id: CALL_ID.into(),
            received_at: at(16, 7, 4),
            caller_phone: self.person.phone.clone(),
            patient_id: Some(PATIENT_ID.into()),
            appointment_id: Some(APPOINTMENT_ID.into()),
            reason: "appointment_status".into(),
            outcome: "informed".into(),
            duration_seconds: Some(184),
            notes: Some("Opération reportée, sera rappelé·e par le secrétariat".into()),
            callback_requested: false,
            agent_id: Some(AGENT_ID.into()),
            created_at: at(16, 7, 7),
        }
    }

    fn csv_appointments(&self) -> String {
        let p = &self.person;
        format!(
            "national_number,last_name,first_name,birth_date,phone,email,language,email_consent,site,service,kind,label,scheduled_at,priority,urgent,essential\n\
             {},{},{},{},{},{},{},{},{},{},operation,{},2022-05-16 08:30,2,false,false\n",
            p.national_number,
            p.last_name,
            p.first_name,
            p.birth_date,
            p.phone.as_deref().unwrap_or_default(),
            p.email.as_deref().unwrap_or_default(),
            p.language.as_str(),
            p.email_consent,
            self.site.code,
            self.service_code,
            self.label(),
        )
    }

    fn csv_calls(&self) -> String {
        format!(
            "received_at,caller_phone,national_number,reason,outcome,duration_seconds,notes\n\
             2022-05-16 09:04,{},{},appointment_status,informed,184,\n",
            self.person.phone.as_deref().unwrap_or_default(),
            self.person.national_number,
        )
    }

    fn contact_list_item(&self) -> Value {
        let p = &self.person;
        json!({
            "appointment_id": APPOINTMENT_ID,
            "priority": 2,
            "kind": "operation",
            "service": self.service_code,
            "label": self.label(),
            "original_scheduled_at": "2022-05-16T08:30:00+02:00",
            "patient_last_name": p.last_name,
            "patient_first_name": p.first_name,
            "birth_date": p.birth_date.to_string(),
            "phone": p.phone,
            "email": p.email,
            "language": p.language.as_str(),
            "attempts": 1,
            "last_outcome": "no_answer",
            "last_attempt_at": "2022-06-07T10:12:00+02:00",
            "proposed_at": null,
            "status": "postponed",
            "scheduled_at": "2022-05-16T08:30:00+02:00",
            "patient_request": null
        })
    }
}

fn value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Examples by operation id: the request body's (by media type) and the answers' (by status
/// and media type).
struct Examples {
    request: Option<(&'static str, Value)>,
    responses: Vec<(&'static str, &'static str, Value)>,
}

fn examples(operation_id: &str, s: &Story) -> Option<Examples> {
    const JSON: &str = "application/json";
    let p = &s.person;
    let page = |items: Value| json!({"items": items, "next_cursor": null});
    Some(match operation_id {
        "sites_create" => Examples {
            request: Some((
                JSON,
                json!({"code": s.site.code, "name": s.site.name, "kind": s.site.kind,
                       "operating_rooms": s.site.rooms, "reopening_rank": s.site.rank}),
            )),
            responses: vec![("201", JSON, value(s.site()))],
        },
        "sites_list" => Examples {
            request: None,
            responses: vec![("200", JSON, page(json!([value(s.site())])))],
        },
        "services_create" => Examples {
            request: Some((
                JSON,
                json!({"code": s.service_code, "name": s.service.name, "site": s.site.code,
                       "secretariat_phone": format!("0{} 21 11 11", s.site.phone_zone)}),
            )),
            responses: vec![("201", JSON, value(s.service()))],
        },
        "services_list" => Examples {
            request: None,
            responses: vec![("200", JSON, page(json!([value(s.service())])))],
        },
        "patients_create" => Examples {
            request: Some((
                JSON,
                json!({"national_number": p.national_number, "last_name": p.last_name,
                       "first_name": p.first_name, "birth_date": p.birth_date.to_string(),
                       "phone": p.phone, "email": p.email, "language": p.language.as_str(),
                       "email_consent": p.email_consent}),
            )),
            responses: vec![
                ("201", JSON, value(s.patient())),
                (
                    "422",
                    crate::error::PROBLEM_JSON,
                    value(crate::error::Problem {
                        kind: "urn:reprise:problem:validation".into(),
                        title: "Unprocessable Entity".into(),
                        status: 422,
                        detail: "national_number: does not agree with birth_date".into(),
                        errors: Some(vec![crate::error::FieldError::new(
                            "national_number",
                            "does not agree with birth_date",
                        )]),
                    }),
                ),
            ],
        },
        "patients_search" => Examples {
            request: Some((JSON, json!({"q": p.last_name}))),
            responses: vec![("200", JSON, json!({"items": [value(s.patient())]}))],
        },
        "appointments_create" => Examples {
            request: Some((
                JSON,
                json!({"patient_id": PATIENT_ID, "site": s.site.code, "service": s.service_code,
                       "kind": "operation", "label": s.label(),
                       "scheduled_at": "2022-05-16T08:30:00+02:00", "priority": 2,
                       "urgent": false, "essential": false}),
            )),
            responses: vec![("201", JSON, value(s.appointment()))],
        },
        "appointments_list" => Examples {
            request: None,
            responses: vec![("200", JSON, value(page_of(s.appointment())))],
        },
        "appointments_import" => Examples {
            request: Some(("text/csv", Value::String(s.csv_appointments()))),
            responses: vec![("200", JSON, json!({"imported": 1, "patients_created": 1}))],
        },
        "incidents_create" => Examples {
            request: Some((
                JSON,
                json!({"title": "Cyberattaque : arrêt du système informatique",
                       "started_at": "2022-05-14T00:00:00+02:00",
                       "postpone_until": "2022-06-06T00:00:00+02:00",
                       "sites": demo::SITES.iter().map(|s| s.code).collect::<Vec<_>>()}),
            )),
            responses: vec![(
                "201",
                JSON,
                value(routes::incidents::IncidentResponse {
                    id: INCIDENT_ID.into(),
                    title: "Cyberattaque : arrêt du système informatique".into(),
                    started_at: at(13, 22, 0),
                    postpone_until: on(6, 5, 22, 0),
                    sites: demo::SITES.iter().map(|s| s.code.to_string()).collect(),
                    postponed: 9_214,
                    kept_urgent: 311,
                    kept_essential: 1_027,
                    notifications_queued: 4_870,
                }),
            )],
        },
        "calls_create" => Examples {
            request: Some((
                JSON,
                json!({"received_at": "2022-05-16T09:04:00+02:00", "caller_phone": p.phone,
                       "patient_id": PATIENT_ID, "appointment_id": APPOINTMENT_ID,
                       "reason": "appointment_status", "outcome": "informed",
                       "duration_seconds": 184,
                       "notes": "Opération reportée, sera rappelé·e par le secrétariat",
                       "callback_requested": false}),
            )),
            responses: vec![
                ("201", JSON, value(s.call())),
                ("200", JSON, value(s.call())),
            ],
        },
        "calls_list" => Examples {
            request: None,
            responses: vec![("200", JSON, value(page_of(s.call())))],
        },
        "calls_import" => Examples {
            request: Some(("text/csv", Value::String(s.csv_calls()))),
            responses: vec![("200", JSON, json!({"imported": 1, "matched_patients": 1}))],
        },
        "calls_stats" => Examples {
            request: None,
            responses: vec![(
                "200",
                JSON,
                value(routes::calls::CallStats {
                    total: 1_873,
                    avg_duration_seconds: Some(171.4),
                    by_reason: [
                        ("appointment_status".to_string(), 1_120),
                        ("reschedule_request".to_string(), 503),
                        ("other".to_string(), 250),
                    ]
                    .into(),
                    by_outcome: [
                        ("informed".to_string(), 1_402),
                        ("callback_scheduled".to_string(), 471),
                    ]
                    .into(),
                    series: vec![
                        routes::calls::SeriesPoint {
                            start: "2022-05-16T00:00:00+02:00".into(),
                            count: 1_011,
                        },
                        routes::calls::SeriesPoint {
                            start: "2022-05-17T00:00:00+02:00".into(),
                            count: 862,
                        },
                    ],
                }),
            )],
        },
        "contact_list_export" => Examples {
            request: None,
            responses: vec![
                ("200", JSON, json!({"items": [s.contact_list_item()]})),
                ("200", "text/csv", Value::String(contact_list_csv(s))),
            ],
        },
        _ => return None,
    })
}

fn page_of<T>(item: T) -> Page<T> {
    Page {
        items: vec![item],
        next_cursor: None,
    }
}

/// The example item as the CSV export writes it.
fn contact_list_csv(s: &Story) -> String {
    let item = s.contact_list_item();
    let header = crate::service::contact_lists::HEADER;
    let cells: Vec<String> = header
        .iter()
        .map(|name| match &item[*name] {
            Value::String(v) => v.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        })
        .collect();
    format!("{}\n{}\n", header.join(","), cells.join(","))
}

/// Puts the examples on their operations.
pub fn add(spec: &mut utoipa::openapi::OpenApi) {
    let story = Story::new();
    for item in spec.paths.paths.values_mut() {
        for (_, operation) in super::operations(item) {
            let Some(id) = operation.operation_id.clone() else {
                continue;
            };
            let Some(examples) = examples(&id, &story) else {
                continue;
            };
            if let (Some((media, example)), Some(body)) =
                (examples.request, operation.request_body.as_mut())
            {
                if let Some(content) = body.content.get_mut(media) {
                    content.example = Some(example);
                }
            }
            for (status, media, example) in examples.responses {
                let response = operation.responses.responses.get_mut(status);
                if let Some(RefOr::T(response)) = response {
                    if let Some(content) = response.content.get_mut(media) {
                        content.example = Some(example);
                    }
                }
            }
        }
    }
}
