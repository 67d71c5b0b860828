//! An incident as declared (CONTRACT §4.4): its title, the window of care it postpones and
//! the sites it closes.

use chrono::NaiveDateTime;

use super::appointment::parse_text;
use super::time::parse_instant;
use super::{Faults, SiteCode};

/// An incident as typed (JSON body, form).
#[derive(Debug, Clone, Copy)]
pub struct IncidentInput<'a> {
    pub title: &'a str,
    pub started_at: &'a str,
    pub postpone_until: &'a str,
    pub sites: &'a [String],
}

/// A checked incident: a title of 1–200 characters, a window that ends after it starts, and
/// at least one site, each named once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub title: String,
    pub started_at: NaiveDateTime,
    pub postpone_until: NaiveDateTime,
    pub sites: Vec<SiteCode>,
}

impl NewIncident {
    /// Checks every field; returns all faults by field name.
    pub fn parse(input: IncidentInput<'_>) -> Result<Self, Faults> {
        let mut f = Faults::default();
        let title = f.check("title", parse_text(input.title, 200));
        let started = f.check("started_at", parse_instant(input.started_at));
        let until = f.check("postpone_until", parse_instant(input.postpone_until));
        if let (Some(s), Some(u)) = (started, until) {
            if u <= s {
                f.push("postpone_until", "must be after started_at");
            }
        }
        let mut sites: Vec<SiteCode> = Vec::new();
        for raw in input.sites {
            if let Some(code) = f.check("sites", SiteCode::parse(raw)) {
                if !sites.contains(&code) {
                    sites.push(code);
                }
            }
        }
        if input.sites.is_empty() {
            f.push("sites", "name at least one site");
        }
        let incident = match (title, started, until) {
            (Some(title), Some(started_at), Some(postpone_until)) => Some(Self {
                title,
                started_at,
                postpone_until,
                sites,
            }),
            _ => None,
        };
        f.finish(incident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(sites: &'a [String]) -> IncidentInput<'a> {
        IncidentInput {
            title: "Ransomware attack",
            started_at: "2022-05-14T02:00:00+02:00",
            postpone_until: "2022-06-04T00:00:00+02:00",
            sites,
        }
    }

    #[test]
    fn a_site_named_twice_counts_once() {
        let sites = ["ARL".to_string(), "MAR".to_string(), "ARL".to_string()];
        let incident = NewIncident::parse(input(&sites)).expect("valid");
        let codes: Vec<&str> = incident.sites.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, ["ARL", "MAR"]);
        assert!(incident.postpone_until > incident.started_at);
    }

    #[test]
    fn every_fault_is_named() {
        let sites = ["arl".to_string()];
        let faults = NewIncident::parse(IncidentInput {
            title: "",
            postpone_until: "2022-05-13T00:00:00Z",
            ..input(&sites)
        })
        .expect_err("bad");
        let fields: Vec<_> = faults.iter().map(|(f, _)| f.as_ref()).collect();
        assert_eq!(fields, ["title", "postpone_until", "sites"]);
        let none = NewIncident::parse(input(&[])).expect_err("no site");
        assert_eq!(
            none.iter().map(|(f, _)| f.as_ref()).collect::<Vec<_>>(),
            ["sites"]
        );
    }
}
