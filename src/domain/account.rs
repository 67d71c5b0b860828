//! An account to create: a name, a role, and for secretaries the services they work for.

use super::{Faults, Invalid, Role, ServiceCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub name: String,
    pub role: Role,
    pub services: Vec<ServiceCode>,
    /// Days the token works from its creation; `None`: until the account is deleted.
    pub expires_in_days: Option<u32>,
    /// The telephone extension the telephone system names when this person answers.
    pub extension: Option<String>,
}

/// A telephone extension: 1 to 32 visible characters (`201`, `agent-3`).
pub fn parse_extension(raw: &str) -> Result<String, Invalid> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().count() > 32 || !raw.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Invalid("must be 1 to 32 visible characters".into()));
    }
    Ok(raw.to_string())
}

/// The longest life a token may be given: ten years.
pub const EXPIRES_IN_DAYS_MAX: u32 = 3650;

/// Days a token works: 1 to [`EXPIRES_IN_DAYS_MAX`].
pub fn parse_expires_in(days: i64) -> Result<u32, Invalid> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=EXPIRES_IN_DAYS_MAX).contains(d))
        .ok_or_else(|| {
            Invalid(format!(
                "must be a number of days from 1 to {EXPIRES_IN_DAYS_MAX}"
            ))
        })
}

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Invalid("must not be empty".into()));
    }
    if name.chars().count() > 200 {
        return Err(Invalid("must be at most 200 characters".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid("must not contain control characters".into()));
    }
    Ok(name.to_string())
}

impl NewAccount {
    /// Checks every field and returns all the faults at once, by field name.
    pub fn parse(name: &str, role: &str, services: &[String]) -> Result<Self, Faults> {
        let mut faults = Faults::default();
        let name = faults.check("name", parse_name(name));
        let role = faults.check("role", Role::parse(role));
        let mut codes = Vec::with_capacity(services.len());
        for raw in services {
            match ServiceCode::parse(raw) {
                Ok(code) if !codes.contains(&code) => codes.push(code),
                Ok(_) => faults.push("services", format!("{raw} is listed twice")),
                Err(e) => faults.push("services", format!("{raw}: {e}")),
            }
        }
        match role {
            Some(r) if r.is_service_scoped() && services.is_empty() => {
                faults.push("services", "a secretary needs at least one service")
            }
            Some(r) if !r.is_service_scoped() && !services.is_empty() => {
                faults.push("services", "only secretaries are bound to services")
            }
            _ => {}
        }
        let account = name.zip(role).map(|(name, role)| Self {
            name,
            role,
            services: codes,
            expires_in_days: None,
            extension: None,
        });
        faults.finish(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secretaries_need_services_and_others_have_none() {
        assert!(NewAccount::parse("Anne", "secretary", &["ARL-CHIR".into()]).is_ok());
        assert!(NewAccount::parse("Anne", "secretary", &[]).is_err());
        assert!(NewAccount::parse("Bob", "agent", &["ARL-CHIR".into()]).is_err());
        assert!(NewAccount::parse("Bob", "agent", &[]).is_ok());
    }

    #[test]
    fn every_fault_is_reported() {
        let faults = NewAccount::parse("  ", "boss", &["x".into()]).expect_err("bad");
        let fields: Vec<_> = faults.iter().map(|(f, _)| f.as_ref()).collect();
        assert_eq!(fields, ["name", "role", "services"]);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Marie Dupont ").as_deref(), Ok("Marie Dupont"));
        assert!(parse_name(&"é".repeat(201)).is_err());
        assert!(parse_name("a\u{0}b").is_err());
    }
}
