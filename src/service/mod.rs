//! The use cases, one file per resource, that every front door calls: the HTTP API
//! (`routes`), the pages (`web`) and the command line (`cli`).
//!
//! The rule: a use case takes the database, the caller and values already parsed, and returns
//! domain values or named rows, never an HTTP or page type; it owns its transaction, the
//! access decision that depends on data, its audit entry and its outbox row.

pub mod appointments;
pub mod audit;
pub mod callbacks;
pub mod calls;
pub mod contact_lists;
pub mod database;
pub mod fhir;
pub mod fhir_import;
pub mod imports;
pub mod incidents;
pub mod patients;
pub mod planning;
pub mod screen_pop;
pub mod sessions;
pub mod sites;
pub mod telephony;
pub mod users;
