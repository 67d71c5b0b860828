//! The domain's enums stored as TEXT, by their contract names (`as_str` / `parse`): one
//! conversion for all, so rows carry enums and no code compares a status string. A value the
//! domain does not know (typed into the database by hand) is a read error naming the column's
//! type, never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain;

/// For each `Proxy => Type`: `AsExpression<Text>` and `FromSqlRow` (diesel's foreign derive
/// through the proxy), `FromSql` through `Type::parse` and `ToSql` through `Type::as_str`, on
/// every backend.
macro_rules! stored_as_text {
    ($($proxy:ident => $ty:ty),* $(,)?) => {$(
        #[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(foreign_derive, sql_type = Text)]
        #[allow(dead_code)]
        struct $proxy($ty);

        impl<DB: Backend> FromSql<Text, DB> for $ty
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                <$ty>::parse(&text).map_err(|e| {
                    format!("{} stored as {text:?}: {e}", stringify!($ty)).into()
                })
            }
        }

        impl<DB: Backend> ToSql<Text, DB> for $ty
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }
    )*};
}

stored_as_text! {
    AppointmentStatus => domain::appointment::Status,
    AppointmentKind => domain::appointment::Kind,
    Channel => domain::appointment::Channel,
    ContactOutcome => domain::appointment::ContactOutcome,
    CancelReason => domain::appointment::CancelReason,
    Programme => domain::appointment::Programme,
    SiteKind => domain::site::SiteKind,
    SiteStatus => domain::site::SiteStatus,
    Language => domain::patient::Language,
    Role => domain::role::Role,
    CallReason => domain::call::Reason,
    CallOutcome => domain::call::Outcome,
    CentreStatus => domain::call::CentreStatus,
    Answer => domain::answer::Answer,
    Template => domain::notification::Template,
    NotificationStatus => domain::notification::NotificationStatus,
    CtiDirection => domain::cti::Direction,
    CtiCause => domain::cti::Cause,
    CallbackSource => domain::callback::Source,
    CallbackStatus => domain::callback::Status,
    CallbackOutcome => domain::callback::Outcome,
    ExportStatus => domain::export::ExportStatus,
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use crate::domain::appointment::Status;

    #[test]
    fn enums_go_in_and_come_back_by_their_names_and_unknown_text_is_an_error() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        let read: Status = diesel::select(Status::Rescheduled.into_sql::<Text>())
            .get_result(&mut conn)
            .expect("read back");
        assert_eq!(read, Status::Rescheduled);
        let text: String = diesel::select(Status::Cancelled.into_sql::<Text>())
            .get_result(&mut conn)
            .expect("stored as text");
        assert_eq!(text, "cancelled");
        let wrong: QueryResult<Status> =
            diesel::select(diesel::dsl::sql::<Text>("'closed'")).get_result(&mut conn);
        // diesel names the field; its source says what was wrong.
        let error = wrong.expect_err("'closed' is no appointment status");
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            message.push_str(&format!(": {e}"));
            source = e.source();
        }
        assert!(message.contains("Status stored as \"closed\""), "{message}");
    }
}
