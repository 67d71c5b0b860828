//! Roles and what each may do: the access table of CONTRACT §2, in one `match`.
//!
//! Every HTTP route names the [`Action`] it needs; the table below is the only place that
//! decides. Service scopes (a secretary sees her own services only) are checked on the
//! resource itself, through `auth::Caller::may_access_service`.

use super::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Coordinator,
    Secretary,
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Coordinator, Role::Secretary, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
            Role::Secretary => "secretary",
            Role::Agent => "agent",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| Invalid("must be admin, coordinator, secretary or agent".into()))
    }

    /// Whether this role is bound to services (and sees only theirs).
    pub fn is_service_scoped(self) -> bool {
        self == Role::Secretary
    }

    pub fn may(self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match action {
            ManageUsers | ReadAudit => self == Admin,
            ManageSites | ManageIncidents | ManageCallCentre | Import => {
                matches!(self, Admin | Coordinator)
            }
            ReadPatients | ReadAppointments => true,
            CreateAppointments => matches!(self, Admin | Coordinator),
            CreatePatients => matches!(self, Admin | Coordinator | Agent),
            ChangeAppointments | ContactLists => matches!(self, Admin | Coordinator | Secretary),
            LogCalls | ReadCalls => matches!(self, Admin | Coordinator | Agent),
            ReadNotifications | Fhir => matches!(self, Admin | Coordinator),
        }
    }
}

/// Everything a route can ask permission for; one line of CONTRACT §2 each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ManageUsers,
    ReadAudit,
    /// Sites and services: list, create, reopen.
    ManageSites,
    ManageIncidents,
    ManageCallCentre,
    Import,
    /// Search and read; secretaries only for their services' patients.
    ReadPatients,
    CreatePatients,
    /// Secretaries only for their services.
    ReadAppointments,
    /// One by one; bulk creation is `Import`.
    CreateAppointments,
    /// Reschedule, cancel, contact attempts; secretaries only for their services.
    ChangeAppointments,
    ContactLists,
    LogCalls,
    ReadCalls,
    ReadNotifications,
    /// FHIR R4 reads, searches, exports and imports (CONTRACT §4.10).
    Fhir,
}

impl Action {
    /// Reads that return personal data: their requests spend the reads budget of
    /// `ratelimit` (whatever their method: a patient search is a POST).
    pub fn reads_personal_data(self) -> bool {
        matches!(
            self,
            Action::ReadPatients
                | Action::ReadAppointments
                | Action::ContactLists
                | Action::ReadCalls
                | Action::ReadNotifications
                | Action::Fhir
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert!(Role::parse("root").is_err());
        assert!(Role::parse("Admin").is_err());
    }

    #[test]
    fn only_admins_manage_users_and_read_the_audit_log() {
        for r in Role::ALL {
            assert_eq!(r.may(Action::ManageUsers), r == Role::Admin);
            assert_eq!(r.may(Action::ReadAudit), r == Role::Admin);
        }
    }

    #[test]
    fn agents_log_calls_but_never_touch_contact_lists() {
        assert!(Role::Agent.may(Action::LogCalls));
        assert!(!Role::Agent.may(Action::ContactLists));
        assert!(!Role::Agent.may(Action::ChangeAppointments));
        assert!(!Role::Secretary.may(Action::LogCalls));
        assert!(Role::Secretary.may(Action::ContactLists));
    }
}
