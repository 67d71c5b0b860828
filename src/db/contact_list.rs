//! The contact list (CONTRACT §4.5): postponed appointments of a site that no attempt has
//! reached, and those whose patient asked by email to be called, in the order secretaries
//! call them back.
//!
//! The rule: the list is read row by row from one ordered query (a database cursor) and handed
//! to a callback, so memory does not grow with the list.

use diesel::prelude::*;

use super::schema::{appointments, patients};
use super::DbConnection;
use crate::domain::answer::Answer;
use crate::domain::appointment::{ContactOutcome, Kind, Status};
use crate::domain::patient::Language;

/// One line of the list, with the contract's columns.
#[derive(Debug, Clone, Queryable)]
pub struct ContactRow {
    pub appointment_id: String,
    pub priority: i32,
    pub kind: Kind,
    pub service: String,
    pub label: String,
    pub original_scheduled_at: chrono::NaiveDateTime,
    pub patient_last_name: String,
    pub patient_first_name: String,
    pub birth_date: chrono::NaiveDate,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Language,
    pub attempts: i32,
    pub last_outcome: Option<ContactOutcome>,
    pub last_attempt_at: Option<chrono::NaiveDateTime>,
    /// The day a committed plan proposes (not a CSV column: the contract fixes those).
    pub proposed_at: Option<chrono::NaiveDate>,
    /// What the patient asked by email (`other_date`, `call_back`), still to act on.
    pub patient_request: Option<Answer>,
    /// `postponed`, or `rescheduled` for a patient who asked for a call about the new date.
    pub status: Status,
    /// The date booked now (the original one while postponed).
    pub scheduled_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub site: String,
    pub service: Option<String>,
    pub kind: Option<Kind>,
    /// Only these services (a secretary's).
    pub services: Option<Vec<String>>,
    /// Only the rows whose patient asked something by email (the secretaries' page's filter).
    pub requests_only: bool,
}

/// The contract's order of postponed care (CONTRACT §4.5): priority, then the original date
/// (longest waiting first), then the folded names (case and accents aside, and the same byte
/// order on both backends), then the id. Contact lists and plans use it.
pub const CONTRACT_ORDER: (
    appointments::priority,
    appointments::original_scheduled_at,
    patients::last_name_key,
    patients::first_name_key,
    appointments::id,
) = (
    appointments::priority,
    appointments::original_scheduled_at,
    patients::last_name_key,
    patients::first_name_key,
    appointments::id,
);

/// Who is on the list: postponed care no attempt has reached (CONTRACT §4.5), and care whose
/// patient asked by email for another date or a call, until they are reached
/// (`appointments.patient_request`, docs/operations.md, "Patients answer by email").
///
/// Written as SQL, with its literal, as the partial index `appointments_to_contact` states it:
/// SQLite and PostgreSQL use a partial index only for a query whose condition implies the
/// index's, and a bound parameter proves nothing. The index keeps the list's order (site,
/// priority, original date): only rows of equal priority and date are sorted.
pub const TO_CONTACT: &str =
    "((appointments.status = 'postponed' AND appointments.reached_at IS NULL) \
     OR appointments.patient_request IS NOT NULL)";

pub(crate) fn to_contact() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(TO_CONTACT)
}

macro_rules! contact_query {
    ($f:expr) => {{
        let f: &ContactFilter = $f;
        let mut q = appointments::table
            .inner_join(patients::table)
            .filter(appointments::site_code.eq(f.site.clone()))
            .filter(to_contact())
            .order(CONTRACT_ORDER)
            .select((
                appointments::id,
                appointments::priority,
                appointments::kind,
                appointments::service_code,
                appointments::label,
                appointments::original_scheduled_at,
                patients::last_name,
                patients::first_name,
                patients::birth_date,
                patients::phone,
                patients::email,
                patients::language,
                appointments::attempts,
                appointments::last_outcome,
                appointments::last_attempt_at,
                appointments::proposed_at,
                appointments::patient_request,
                appointments::status,
                appointments::scheduled_at,
            ))
            .into_boxed();
        if let Some(service) = &f.service {
            q = q.filter(appointments::service_code.eq(service.clone()));
        }
        if let Some(kind) = &f.kind {
            q = q.filter(appointments::kind.eq(*kind));
        }
        if let Some(services) = &f.services {
            q = q.filter(appointments::service_code.eq_any(services.clone()));
        }
        if f.requests_only {
            q = q.filter(appointments::patient_request.is_not_null());
        }
        q
    }};
}

/// How many rows the list has now.
pub fn count(conn: &mut DbConnection, filter: &ContactFilter) -> QueryResult<i64> {
    let mut q = appointments::table
        .filter(appointments::site_code.eq(filter.site.clone()))
        .filter(to_contact())
        .count()
        .into_boxed();
    if let Some(service) = &filter.service {
        q = q.filter(appointments::service_code.eq(service.clone()));
    }
    if let Some(kind) = &filter.kind {
        q = q.filter(appointments::kind.eq(*kind));
    }
    if filter.requests_only {
        q = q.filter(appointments::patient_request.is_not_null());
    }
    if let Some(services) = &filter.services {
        q = q.filter(appointments::service_code.eq_any(services.clone()));
    }
    q.get_result(conn)
}

/// Calls `each` with every row of the list, in order, reading them one at a time (SQLite
/// steps its statement; PostgreSQL uses row-by-row mode). Stops at the first error of `each`.
/// Returns how many rows were handed over.
pub fn for_each<E: From<diesel::result::Error>>(
    conn: &mut DbConnection,
    filter: &ContactFilter,
    mut each: impl FnMut(ContactRow) -> Result<(), E>,
) -> Result<u64, E> {
    let mut n = 0u64;
    match conn {
        DbConnection::Sqlite(c) => {
            for row in contact_query!(filter)
                .load_iter::<ContactRow, diesel::connection::DefaultLoadingMode>(c)?
            {
                each(row?)?;
                n += 1;
            }
        }
        DbConnection::Pg(c) => {
            for row in contact_query!(filter)
                .load_iter::<ContactRow, diesel::pg::PgRowByRowLoadingMode>(c)?
            {
                each(row?)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// One page of the list, in its order: `limit` rows after the first `offset` (the
/// secretaries' page; exports stream the whole list with [`for_each`]).
pub fn page(
    conn: &mut DbConnection,
    filter: &ContactFilter,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<ContactRow>> {
    contact_query!(filter)
        .limit(limit)
        .offset(offset)
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::Text;

    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    /// The list reads `appointments_to_contact` in the list's order on SQLite: the partial
    /// index is used only while `TO_CONTACT` states its condition.
    #[test]
    fn the_list_reads_its_partial_index_in_order() {
        let dir = tempfile::tempdir().expect("folder");
        let url =
            crate::db::DatabaseUrl::parse(&format!("sqlite://{}/plan.db", dir.path().display()))
                .expect("url");
        let db = crate::db::Db::connect(&url, 1).expect("opens");
        db.migrate().expect("migrates");
        let mut conn = url.connect().expect("connects");
        let DbConnection::Sqlite(c) = &mut conn else {
            panic!("a SQLite connection")
        };
        for filter in [
            ContactFilter {
                site: "ARL".into(),
                ..Default::default()
            },
            ContactFilter {
                site: "ARL".into(),
                kind: Some(Kind::Operation),
                services: Some(vec!["ARL-ORTHO".into()]),
                ..Default::default()
            },
        ] {
            let query = contact_query!(&filter);
            let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
            let sql = sql.split(" -- binds:").next().expect("the SQL");
            let plan: Vec<String> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                .load::<Step>(c)
                .expect("a plan")
                .into_iter()
                .map(|s| s.detail)
                .collect();
            let plan = plan.join(" | ");
            assert!(
                plan.contains("USING INDEX appointments_to_contact"),
                "{plan}"
            );
            // Sorted only within equal (priority, date): never the whole list.
            assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{plan}");
        }
    }
}
