//! Patients: insert (one or in bulk), read, and the indexed search.

use diesel::prelude::*;

use super::schema::{appointments, patients};
use super::{DbBackend, DbConnection};
use crate::domain::patient::{search_key, Language, NameProbe, NewPatient, PatientQuery};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = patients)]
#[diesel(treat_none_as_default_value = false)]
pub struct PatientRow {
    pub id: String,
    pub national_number: Option<String>,
    pub last_name: String,
    pub first_name: String,
    pub birth_date: chrono::NaiveDate,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Language,
    pub email_consent: bool,
    pub last_name_key: String,
    pub first_name_key: String,
    pub import_id: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

impl PatientRow {
    /// The row of a checked new patient, with its search keys.
    pub fn from_new(
        p: &NewPatient,
        id: String,
        import_id: Option<String>,
        now: chrono::NaiveDateTime,
    ) -> Self {
        Self {
            id,
            national_number: p.national_number.as_ref().map(|n| n.as_str().to_string()),
            last_name_key: search_key(&p.last_name),
            first_name_key: search_key(&p.first_name),
            last_name: p.last_name.clone(),
            first_name: p.first_name.clone(),
            birth_date: p.birth_date,
            phone: p.phone.as_ref().map(|x| x.as_str().to_string()),
            email: p.email.as_ref().map(|x| x.as_str().to_string()),
            language: p.language,
            email_consent: p.email_consent,
            import_id,
            created_at: now,
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &PatientRow) -> QueryResult<()> {
    diesel::insert_into(patients::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Multi-row inserts, in chunks that stay under SQLite's bound-parameter limit.
pub fn insert_many(conn: &mut DbConnection, rows: &[PatientRow]) -> QueryResult<()> {
    for chunk in rows.chunks(super::BULK_ROWS) {
        per_backend!(&mut *conn, |c| diesel::insert_into(patients::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<PatientRow>> {
    patients::table
        .find(id)
        .select(PatientRow::as_select())
        .first(conn)
        .optional()
}

pub fn national_number_taken(conn: &mut DbConnection, nn: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        patients::table.filter(patients::national_number.eq(nn)),
    ))
    .get_result(conn)
}

/// `(national_number, id)` of the known patients among these numbers.
pub fn ids_by_national_number(
    conn: &mut DbConnection,
    numbers: &[String],
) -> QueryResult<Vec<(String, String)>> {
    let mut found = Vec::new();
    for chunk in numbers.chunks(500) {
        let rows: Vec<(Option<String>, String)> = patients::table
            .filter(patients::national_number.eq_any(chunk))
            .select((patients::national_number, patients::id))
            .load(conn)?;
        found.extend(
            rows.into_iter()
                .filter_map(|(nn, id)| nn.map(|nn| (nn, id))),
        );
    }
    Ok(found)
}

type Condition =
    Box<dyn BoxableExpression<patients::table, DbBackend, SqlType = diesel::sql_types::Bool>>;

/// `column` starts with `prefix`, as an index range (`>= prefix AND < prefix+1`), which both
/// backends answer from a B-tree (the key columns are byte-ordered: `COLLATE "C"` on PostgreSQL).
macro_rules! starts_with {
    ($column:expr, $prefix:expr) => {{
        let prefix: &str = $prefix;
        let condition: Condition = match next_prefix(prefix) {
            Some(upper) => Box::new($column.ge(prefix.to_string()).and($column.lt(upper))),
            None => Box::new($column.ge(prefix.to_string())),
        };
        condition
    }};
}

/// The smallest string greater than every string starting with `prefix`.
fn next_prefix(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

/// Patients matching the query (at most `limit`); `services` restricts to patients with an
/// appointment there (secretaries). A name query runs its probes in order, each an index range
/// read in index order with a LIMIT, so namesakes never make it slow.
pub fn search(
    conn: &mut DbConnection,
    query: &PatientQuery,
    services: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<PatientRow>> {
    let exact: Condition = match query {
        PatientQuery::NationalNumber(nn) => Box::new(
            patients::national_number
                .assume_not_null()
                .eq(nn.as_str().to_string()),
        ),
        PatientQuery::Phone(phone) => Box::new(
            patients::phone
                .assume_not_null()
                .eq(phone.as_str().to_string()),
        ),
        PatientQuery::Name(words) => {
            let mut found: Vec<PatientRow> = Vec::new();
            for probe in PatientQuery::name_probes(words) {
                let room = limit - found.len() as i64;
                if room <= 0 {
                    break;
                }
                for row in name_probe(conn, &probe, services, limit)? {
                    if !found.iter().any(|f| f.id == row.id) {
                        found.push(row);
                    }
                }
            }
            found.truncate(usize::try_from(limit).unwrap_or(0));
            return Ok(found);
        }
    };
    scoped(
        patients::table
            .select(PatientRow::as_select())
            .filter(exact)
            .order((
                patients::last_name_key,
                patients::first_name_key,
                patients::id,
            ))
            .limit(limit)
            .into_boxed(),
        services,
    )
    .load(conn)
}

type BoxedPatients<'a> = diesel::dsl::IntoBoxed<
    'a,
    diesel::dsl::Limit<
        diesel::dsl::Select<patients::table, diesel::dsl::AsSelect<PatientRow, DbBackend>>,
    >,
    DbBackend,
>;

fn scoped<'a>(q: BoxedPatients<'a>, services: Option<&[String]>) -> BoxedPatients<'a> {
    match services {
        None => q,
        Some(services) => q.filter(
            patients::id.eq_any(
                appointments::table
                    .filter(appointments::service_code.eq_any(services.to_vec()))
                    .select(appointments::patient_id),
            ),
        ),
    }
}

fn name_probe(
    conn: &mut DbConnection,
    probe: &NameProbe,
    services: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<PatientRow>> {
    let mut q = patients::table
        .select(PatientRow::as_select())
        .limit(limit)
        .into_boxed();
    if let Some(last) = &probe.last {
        q = q.filter(starts_with!(patients::last_name_key, last));
    }
    if let Some(first) = &probe.first {
        q = q.filter(starts_with!(patients::first_name_key, first));
    }
    // Read along the index of the name the probe fixes first.
    q = if probe.last.is_some() {
        q.order((
            patients::last_name_key,
            patients::first_name_key,
            patients::id,
        ))
    } else {
        q.order((
            patients::first_name_key,
            patients::last_name_key,
            patients::id,
        ))
    };
    scoped(q, services).load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_end_after_the_last_match() {
        assert_eq!(next_prefix("dup").as_deref(), Some("duq"));
        assert_eq!(next_prefix("jean ").as_deref(), Some("jean!"));
        assert_eq!(next_prefix("").as_deref(), None);
    }
}
