//! The telephone system's call events (CONTRACT §4.9), in the generic CTI format PBXs speak for
//! Zammad: `newCall`, `answer` and `hangup`, each naming the PBX's call id.

use super::contact::PhoneE164;
use super::{Faults, Invalid};

text_enum!(
    /// What happened to the call.
    EventKind {
        NewCall => "newCall",
        Answer => "answer",
        Hangup => "hangup",
    }
);

text_enum!(
    /// `in`: a patient calling; `out`: an agent calling.
    Direction {
        In => "in",
        Out => "out",
    }
);

text_enum!(
    /// Why a call ended, as the PBX says.
    Cause {
        NormalClearing => "normalClearing",
        Busy => "busy",
        Cancel => "cancel",
        NoAnswer => "noAnswer",
        Congestion => "congestion",
        NotFound => "notFound",
        Forwarded => "forwarded",
    }
);

/// An event as the PBX sent it (form fields or JSON keys).
#[derive(Debug, Clone, Default)]
pub struct EventInput<'a> {
    pub event: &'a str,
    pub call_id: &'a str,
    pub direction: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub users: &'a [String],
    pub answering_number: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub cause: Option<&'a str>,
}

/// A checked event. Numbers are E.164 when they are telephone numbers (Belgian national forms
/// included), else kept as sent (`anonymous`, an extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub call_id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    /// The extensions or names that took the call (`answeringNumber`, then `user[]`).
    pub answered_by: Vec<String>,
    pub queue: Option<String>,
    pub cause: Option<Cause>,
}

/// A number as stored: E.164 if it is one, else the PBX's text (at most 40 characters).
pub fn number(raw: &str) -> Result<String, Invalid> {
    let raw = raw.trim();
    if raw.chars().count() > 40 || raw.chars().any(char::is_control) {
        return Err(Invalid(
            "must be at most 40 characters, without control characters".into(),
        ));
    }
    Ok(PhoneE164::parse(raw).map_or_else(|_| raw.to_string(), |p| p.as_str().to_string()))
}

fn short(raw: &str, max: usize) -> Result<String, Invalid> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().count() > max || raw.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "must be 1 to {max} characters, without control characters"
        )));
    }
    Ok(raw.to_string())
}

impl Event {
    /// Checks every field; returns all faults by field name. `direction` defaults to `in`.
    pub fn parse(input: &EventInput<'_>) -> Result<Self, Faults> {
        let mut f = Faults::default();
        let kind = f.check("event", EventKind::parse(input.event));
        let call_id = f.check("callId", short(input.call_id, 200));
        let direction = f.check_opt("direction", input.direction, Direction::parse);
        let from = f.check("from", number(input.from.unwrap_or_default()));
        let to = f.check("to", number(input.to.unwrap_or_default()));
        let answering = f.check_opt("answeringNumber", input.answering_number, |n| short(n, 100));
        let mut answered_by: Vec<String> = answering.flatten().into_iter().collect();
        for user in input.users.iter().take(20) {
            if let Some(user) = f.check("user", short(user, 100)) {
                answered_by.push(user);
            }
        }
        let queue = f.check_opt("queue", input.queue.filter(|q| !q.trim().is_empty()), |q| {
            short(q, 100)
        });
        let cause = f.check_opt("cause", input.cause.filter(|c| !c.is_empty()), Cause::parse);
        let event = match (kind, call_id, direction, from, to, queue, cause) {
            (
                Some(kind),
                Some(call_id),
                Some(direction),
                Some(from),
                Some(to),
                Some(queue),
                Some(cause),
            ) => Some(Self {
                kind,
                call_id,
                direction: direction.unwrap_or(Direction::In),
                from,
                to,
                answered_by,
                queue,
                cause,
            }),
            _ => None,
        };
        f.finish(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn belgian_numbers_become_e164_and_others_stay_as_sent() {
        assert_eq!(number("061 23 45 67"), Ok("+3261234567".to_string()));
        assert_eq!(number("+32 61 23 45 67"), Ok("+3261234567".to_string()));
        assert_eq!(number("anonymous"), Ok("anonymous".to_string()));
        assert_eq!(number("201"), Ok("201".to_string()));
        assert!(number(&"9".repeat(41)).is_err());
    }

    #[test]
    fn an_answer_names_who_took_it_and_faults_are_named() {
        let users = ["Anne".to_string()];
        let event = Event::parse(&EventInput {
            event: "answer",
            call_id: "c1",
            from: Some("061234567"),
            to: Some("+3261555555"),
            users: &users,
            answering_number: Some("201"),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(event.kind, EventKind::Answer);
        assert_eq!(event.direction, Direction::In);
        assert_eq!(event.answered_by, ["201", "Anne"]);
        let faults = Event::parse(&EventInput {
            event: "ring",
            call_id: "",
            cause: Some("lost"),
            ..Default::default()
        })
        .expect_err("bad");
        let fields: Vec<_> = faults.iter().map(|(f, _)| f.as_ref()).collect();
        assert_eq!(fields, ["event", "callId", "cause"]);
    }
}
