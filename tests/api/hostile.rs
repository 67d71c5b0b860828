//! Hostile CSV files: property tests feed both imports arbitrary bytes and near-valid files
//! whose fields are drawn from valid values, garbage, formula payloads and SQL. No input may
//! panic; a refused file stores nothing.

use proptest::prelude::*;
use reprise::auth::Caller;
use reprise::db::Db;
use reprise::error::AppError;

use crate::helpers::TestDb;

/// One migrated database (SQLite, or PostgreSQL when configured) for all the cases.
fn database() -> (TestDb, Db) {
    let (holder, url) = TestDb::create();
    let db = Db::connect(&url, 2).expect("connects");
    db.migrate().expect("migrates");
    db.write_blocking(|conn| {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(
            "INSERT INTO sites (code, name, kind, operating_rooms, status, created_at) \
             VALUES ('ARL', 'Arlon', 'hospital', 4, 'open', '2022-05-01 00:00:00'); \
             INSERT INTO services (code, name, site_code, created_at) \
             VALUES ('ARL-ORTHO', 'Orthopédie', 'ARL', '2022-05-01 00:00:00');",
        )
        .map_err(AppError::from)
    })
    .expect("a site and a service");
    (holder, db)
}

fn counts(db: &Db) -> (i64, i64) {
    use diesel::prelude::*;
    use reprise::db::schema::{appointments, calls};
    db.read_blocking(|conn| {
        let counted = match conn {
            reprise::db::DbConnection::Sqlite(c) => (
                appointments::table.count().get_result(c)?,
                calls::table.count().get_result(c)?,
            ),
            reprise::db::DbConnection::Pg(c) => (
                appointments::table.count().get_result(c)?,
                calls::table.count().get_result(c)?,
            ),
        };
        Ok::<_, AppError>(counted)
    })
    .expect("counts")
}

/// A field: mostly plausible, sometimes hostile.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("ARL".to_string()),
        Just("ARL-ORTHO".to_string()),
        Just("85.07.30-033.28".to_string()),
        Just("0471 99 88 77".to_string()),
        Just("2022-05-16 09:30".to_string()),
        Just("2022-05-16T09:30:00+02:00".to_string()),
        Just("operation".to_string()),
        Just("true".to_string()),
        Just("2".to_string()),
        Just("=cmd|' /C calc'!A0".to_string()),
        Just("'; DROP TABLE patients; --".to_string()),
        Just("\"unclosed".to_string()),
        Just("9".repeat(400)),
        "\\PC{0,24}",
    ]
}

fn csv_file(header: &'static [&'static str]) -> impl Strategy<Value = String> {
    let width = header.len();
    prop::collection::vec(prop::collection::vec(field(), width - 1..=width + 1), 0..6).prop_map(
        move |rows| {
            let mut text = header.join(",");
            text.push('\n');
            for row in rows {
                text.push_str(&row.join(","));
                text.push('\n');
            }
            text
        },
    )
}

#[test]
fn no_csv_file_panics_either_import_and_a_refused_one_stores_nothing() {
    let (_holder, db) = database();
    let caller = Caller::command_line();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    let files = prop_oneof![
        csv_file(&reprise::service::imports::APPOINTMENT_HEADER).prop_map(|s| s.into_bytes()),
        csv_file(&reprise::service::imports::CALL_HEADER).prop_map(|s| s.into_bytes()),
        prop::collection::vec(any::<u8>(), 0..512),
    ];
    runner
        .run(&files, |bytes| {
            for appointments in [true, false] {
                let before = counts(&db);
                let result = if appointments {
                    reprise::service::imports::import_appointments(&db, bytes.as_slice(), &caller)
                        .map(|_| ())
                } else {
                    reprise::service::imports::import_calls(&db, bytes.as_slice(), &caller)
                        .map(|_| ())
                };
                match result {
                    Ok(()) => {}
                    Err(AppError::Validation(_) | AppError::BadRequest(_)) => {
                        prop_assert_eq!(counts(&db), before, "a refused file stored something");
                    }
                    Err(other) => prop_assert!(false, "not a 4xx: {other:?}"),
                }
            }
            Ok(())
        })
        .expect("no failing case");
}
