//! How many distinct patients each account was shown in each clock hour (searches and reads),
//! for `REPRISE_PATIENTS_PER_HOUR`. The database is what several instances share, so the count
//! holds across them; it is written in the transaction of the search or read it counts (which
//! is written anyway, for its audit entry): no round trip of its own on SQLite's writer, one
//! statement on PostgreSQL.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};

use super::schema::{disclosure_counts, disclosures};
use super::DbConnection;

/// The start of the clock hour of `at`: the window the budget counts in.
pub fn hour_of(at: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    at.date().and_hms_opt(at.hour(), 0, 0).unwrap_or(at)
}

#[derive(QueryableByName)]
struct Shown {
    #[diesel(sql_type = BigInt)]
    shown: i64,
}

/// Counts `patients` as shown to `account` in `hour`. Returns the number of distinct patients
/// the account has been shown in that hour once these are counted, or `None` when none of them
/// is new (patients already shown cost nothing more). On PostgreSQL the row of the hour's count
/// is locked by the upsert, so two requests of one account on two instances count one after
/// the other.
pub fn count(
    conn: &mut DbConnection,
    account: &str,
    hour: chrono::NaiveDateTime,
    patients: &[String],
) -> QueryResult<Option<i64>> {
    if patients.is_empty() {
        return Ok(None);
    }
    match conn {
        DbConnection::Pg(c) => {
            let shown: Option<Shown> = diesel::sql_query(
                "WITH new AS (
                     INSERT INTO disclosures (account_id, hour, patient_id)
                     SELECT $1, $2, p FROM unnest($3::text[]) AS p
                     ON CONFLICT DO NOTHING
                     RETURNING 1)
                 INSERT INTO disclosure_counts (account_id, hour, shown)
                 SELECT $1, $2, count(*) FROM new HAVING count(*) > 0
                 ON CONFLICT (account_id, hour)
                 DO UPDATE SET shown = disclosure_counts.shown + excluded.shown
                 RETURNING shown::bigint AS shown",
            )
            .bind::<Text, _>(account)
            .bind::<Timestamp, _>(hour)
            .bind::<Array<Text>, _>(patients)
            .get_result(c)
            .optional()?;
            Ok(shown.map(|s| s.shown))
        }
        DbConnection::Sqlite(c) => {
            // The writer runs this transaction alone; each statement is a call, not a trip.
            let mut new = 0i64;
            for patient in patients {
                new += diesel::insert_or_ignore_into(disclosures::table)
                    .values((
                        disclosures::account_id.eq(account),
                        disclosures::hour.eq(hour),
                        disclosures::patient_id.eq(patient),
                    ))
                    .execute(c)? as i64;
            }
            if new == 0 {
                return Ok(None);
            }
            let shown: i32 = diesel::insert_into(disclosure_counts::table)
                .values((
                    disclosure_counts::account_id.eq(account),
                    disclosure_counts::hour.eq(hour),
                    disclosure_counts::shown.eq(new as i32),
                ))
                .on_conflict((disclosure_counts::account_id, disclosure_counts::hour))
                .do_update()
                .set(disclosure_counts::shown.eq(disclosure_counts::shown + new as i32))
                .returning(disclosure_counts::shown)
                .get_result(c)?;
            Ok(Some(i64::from(shown)))
        }
    }
}

/// Forgets the hours before `hour` (the budget only looks at the current one).
pub fn purge_before(conn: &mut DbConnection, hour: chrono::NaiveDateTime) -> QueryResult<usize> {
    let a = diesel::delete(disclosures::table.filter(disclosures::hour.lt(hour))).execute(conn)?;
    let b = diesel::delete(disclosure_counts::table.filter(disclosure_counts::hour.lt(hour)))
        .execute(conn)?;
    Ok(a + b)
}
