//! From a claimed notification to a MIME message: the template of its kind in the patient's
//! language (askama, checked at build time: `src/email/templates/{lang}/{template}.{txt,html}`),
//! a plain-text part and an HTML alternative, dates in Belgian form and Brussels time, and for a
//! new date an iCalendar attachment.

use std::ops::Deref;

use askama::Template;
use chrono::NaiveDateTime;
use icalendar::{Calendar, Component, EventLike};
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::db::notifications::{Care, Outgoing};
use crate::domain::appointment;
use crate::domain::contact::phone_text;
use crate::domain::patient::Language;
use crate::domain::time::brussels;

/// The three emails of CONTRACT §4.7.
pub use crate::domain::notification::Template as Kind;

/// What every template may say. Nothing here is looked up while rendering.
#[derive(Debug, Clone)]
pub struct View {
    pub lang: &'static str,
    pub subject: String,
    pub name: String,
    pub site: String,
    /// The date the email is about, in Belgian form.
    pub date: String,
    /// The appointment of a postponed or rescheduled email.
    pub one: Item,
    /// Every appointment still to rebook (site_reopened).
    pub care: Vec<Item>,
    /// Whether the email carries answer links.
    pub answers: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Item {
    pub kind: &'static str,
    pub service: String,
    /// The service's phone, written for people (`+32 61 23 45 67`).
    pub phone: Option<String>,
    /// The same for a `tel:` link.
    pub phone_uri: String,
    pub date: String,
    /// The date a committed plan proposes, at the original time of day.
    pub proposed: Option<String>,
    /// The page where the patient answers about this appointment.
    pub answer_url: Option<String>,
}

/// How the answer links of emails are written: under the service's public URL.
#[derive(Debug, Clone)]
pub struct Links {
    /// `REPRISE_PUBLIC_URL`.
    pub base: url::Url,
}

impl Links {
    /// `{public URL}/answer/{token}`: the link's secret, nothing about the patient.
    pub fn url(&self, token: &str) -> String {
        format!(
            "{}/answer/{token}",
            self.base.as_str().trim_end_matches('/')
        )
    }
}

/// `14/05/2022 à 09:30`, in Brussels time, with the language's word for "at".
pub fn belgian_date(lang: Language, at: NaiveDateTime) -> String {
    let at_word = match lang {
        Language::Fr => "à",
        Language::Nl => "om",
        Language::De => "um",
        Language::En => "at",
    };
    brussels(at)
        .format(&format!("%d/%m/%Y {at_word} %H:%M"))
        .to_string()
}

/// `operation` or `consultation` in the patient's language.
pub fn kind_word(lang: Language, kind: appointment::Kind) -> &'static str {
    let operation = kind == appointment::Kind::Operation;
    match (lang, operation) {
        (Language::Fr, true) => "opération",
        (Language::Fr, false) => "consultation",
        (Language::Nl, true) => "operatie",
        (Language::Nl, false) => "consultatie",
        (Language::De, true) => "Operation",
        (Language::De, false) => "Sprechstunde",
        (Language::En, true) => "operation",
        (Language::En, false) => "consultation",
    }
}

fn subject(lang: Language, kind: Kind, site: &str) -> String {
    match (lang, kind) {
        (Language::Fr, Kind::AppointmentPostponed) => "Votre rendez-vous est reporté".into(),
        (Language::Fr, Kind::SiteReopened) => format!("Reprise des activités : {site}"),
        (Language::Fr, Kind::AppointmentRescheduled) => {
            "Nouvelle date pour votre rendez-vous".into()
        }
        (Language::Nl, Kind::AppointmentPostponed) => "Uw afspraak wordt uitgesteld".into(),
        (Language::Nl, Kind::SiteReopened) => format!("Hervatting van de activiteiten: {site}"),
        (Language::Nl, Kind::AppointmentRescheduled) => "Nieuwe datum voor uw afspraak".into(),
        (Language::De, Kind::AppointmentPostponed) => "Ihr Termin wird verschoben".into(),
        (Language::De, Kind::SiteReopened) => format!("Wiederaufnahme des Betriebs: {site}"),
        (Language::De, Kind::AppointmentRescheduled) => "Ihr neuer Termin".into(),
        (Language::En, Kind::AppointmentPostponed) => "Your appointment is postponed".into(),
        (Language::En, Kind::SiteReopened) => format!("{site} has reopened"),
        (Language::En, Kind::AppointmentRescheduled) => "A new date for your appointment".into(),
    }
}

fn item(lang: Language, care: &Care, links: Option<&Links>) -> Item {
    let phone = care.service_phone.as_deref().and_then(phone_text);
    Item {
        proposed: care.offered.map(|at| belgian_date(lang, at)),
        answer_url: links
            .zip(care.link.as_deref())
            .map(|(l, token)| l.url(token)),
        kind: kind_word(lang, care.kind),
        service: care.service.clone(),
        phone_uri: phone
            .as_ref()
            .map(|(_, uri)| uri.clone())
            .unwrap_or_default(),
        phone: phone.map(|(text, _)| text),
        date: belgian_date(lang, care.original_scheduled_at),
    }
}

impl View {
    pub fn new(n: &Outgoing, kind: Kind, links: Option<&Links>) -> Self {
        let lang = n.language;
        let site = n.site.clone().unwrap_or_default();
        let care: Vec<Item> = n.care.iter().map(|c| item(lang, c, links)).collect();
        Self {
            answers: care.iter().any(|c| c.answer_url.is_some()),
            lang: lang.as_str(),
            subject: subject(lang, kind, &site),
            name: format!("{} {}", n.first_name, n.last_name),
            date: n
                .scheduled_for
                .map(|d| belgian_date(lang, d))
                .unwrap_or_default(),
            one: care.first().cloned().unwrap_or_default(),
            site,
            care,
        }
    }
}

/// One askama template per language, email and part, each reading a [`View`].
macro_rules! templates {
    ($($lang:ident $kind:ident => $text:ident $text_path:literal, $html:ident $html_path:literal;)*) => {
        $(
            #[derive(Template)]
            #[template(path = $text_path, config = "src/email/askama.toml")]
            struct $text<'a>(&'a View);
            #[derive(Template)]
            #[template(path = $html_path, config = "src/email/askama.toml")]
            struct $html<'a>(&'a View);
            impl Deref for $text<'_> {
                type Target = View;
                fn deref(&self) -> &View {
                    self.0
                }
            }
            impl Deref for $html<'_> {
                type Target = View;
                fn deref(&self) -> &View {
                    self.0
                }
            }
        )*

        /// The plain-text and HTML parts of `kind` in `lang`.
        pub fn bodies(lang: Language, kind: Kind, view: &View) -> askama::Result<(String, String)> {
            match (lang, kind) {
                $(
                    (Language::$lang, Kind::$kind) => Ok(($text(view).render()?, $html(view).render()?)),
                )*
            }
        }
    };
}

templates! {
    Fr AppointmentPostponed => FrPostponedText "fr/appointment_postponed.txt", FrPostponedHtml "fr/appointment_postponed.html";
    Fr SiteReopened => FrReopenedText "fr/site_reopened.txt", FrReopenedHtml "fr/site_reopened.html";
    Fr AppointmentRescheduled => FrRescheduledText "fr/appointment_rescheduled.txt", FrRescheduledHtml "fr/appointment_rescheduled.html";
    Nl AppointmentPostponed => NlPostponedText "nl/appointment_postponed.txt", NlPostponedHtml "nl/appointment_postponed.html";
    Nl SiteReopened => NlReopenedText "nl/site_reopened.txt", NlReopenedHtml "nl/site_reopened.html";
    Nl AppointmentRescheduled => NlRescheduledText "nl/appointment_rescheduled.txt", NlRescheduledHtml "nl/appointment_rescheduled.html";
    De AppointmentPostponed => DePostponedText "de/appointment_postponed.txt", DePostponedHtml "de/appointment_postponed.html";
    De SiteReopened => DeReopenedText "de/site_reopened.txt", DeReopenedHtml "de/site_reopened.html";
    De AppointmentRescheduled => DeRescheduledText "de/appointment_rescheduled.txt", DeRescheduledHtml "de/appointment_rescheduled.html";
    En AppointmentPostponed => EnPostponedText "en/appointment_postponed.txt", EnPostponedHtml "en/appointment_postponed.html";
    En SiteReopened => EnReopenedText "en/site_reopened.txt", EnReopenedHtml "en/site_reopened.html";
    En AppointmentRescheduled => EnRescheduledText "en/appointment_rescheduled.txt", EnRescheduledHtml "en/appointment_rescheduled.html";
}

/// The iCalendar file of a new date: one event, its UID the appointment's, so that a calendar
/// updates the same event when the date moves again.
pub fn ics(view: &View, appointment_id: &str, start: NaiveDateTime, operation: bool) -> String {
    let start = start.and_utc();
    // The length of a slot is not known; an hour for an operation, half for a consultation.
    let length = chrono::Duration::minutes(if operation { 60 } else { 30 });
    let event = icalendar::Event::new()
        .uid(&format!("{appointment_id}@reprise"))
        // Later versions of the event carry a higher sequence.
        .sequence(u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(u32::MAX))
        .summary(&format!("{} — {}", view.one.kind, view.one.service))
        .location(&view.site)
        .starts(start)
        .ends(start + length)
        .timestamp(chrono::Utc::now())
        .done();
    let mut calendar = Calendar::new();
    calendar.append_property(("METHOD", "PUBLISH"));
    calendar.push(event);
    calendar.done().to_string()
}

/// Why a notification cannot become an email (a permanent failure).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the appointment of this email no longer exists")]
    NoAppointment,
    #[error("the address is not valid: {0}")]
    Address(String),
    #[error("cannot render: {0}")]
    Render(String),
}

/// The whole message of a notification. Its Message-ID is derived from the notification, so a
/// receiver that sees it twice (after a crash between sending and recording) can tell.
pub fn message(
    n: &Outgoing,
    from: &Mailbox,
    domain: &str,
    links: Option<&Links>,
) -> Result<Message, RenderError> {
    let kind = n.template;
    if kind != Kind::SiteReopened && n.care.is_empty() {
        return Err(RenderError::NoAppointment);
    }
    let lang = n.language;
    let view = View::new(n, kind, links);
    let (text, html) = bodies(lang, kind, &view).map_err(|e| RenderError::Render(e.to_string()))?;
    let to: Mailbox = n
        .to_address
        .parse()
        .map_err(|e: lettre::address::AddressError| RenderError::Address(e.to_string()))?;
    let alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(text))
        .singlepart(SinglePart::html(html));
    let body = match (kind, n.care.first(), n.scheduled_for) {
        (Kind::AppointmentRescheduled, Some(care), Some(start)) => {
            let calendar = ics(
                &view,
                &care.appointment_id,
                start,
                care.kind == appointment::Kind::Operation,
            );
            let name = match lang {
                Language::Fr => "rendez-vous.ics",
                Language::Nl => "afspraak.ics",
                Language::De => "termin.ics",
                Language::En => "appointment.ics",
            };
            MultiPart::mixed().multipart(alternative).singlepart(
                Attachment::new(name.to_string()).body(
                    calendar,
                    ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                        .map_err(|e| RenderError::Render(e.to_string()))?,
                ),
            )
        }
        _ => alternative,
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(view.subject.clone())
        .message_id(Some(format!("<{}@{domain}>", n.id)))
        .multipart(body)
        .map_err(|e| RenderError::Render(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .expect("a valid date")
    }

    fn outgoing(template: Kind, language: Language) -> Outgoing {
        Outgoing {
            id: "n1".into(),
            template,
            language,
            to_address: "marie.dubois@example.be".into(),
            attempts: 0,
            first_name: "Marie".into(),
            last_name: "Dubois".into(),
            site: Some("Arlon".into()),
            scheduled_for: Some(at(2022, 5, 14, 7, 30)),
            care: vec![Care {
                appointment_id: "a1".into(),
                service: "Orthopédie".into(),
                service_phone: Some("+3263553000".into()),
                kind: appointment::Kind::Operation,
                label: "Prothèse de hanche".into(),
                original_scheduled_at: at(2022, 5, 14, 7, 30),
                proposed_at: None,
                offered: None,
                link: None,
            }],
        }
    }

    #[test]
    fn belgian_dates_follow_brussels_summer_and_winter_time() {
        // 08:30 UTC is 09:30 in Brussels in winter (CET) and 10:30 in summer (CEST).
        let cases = [
            (Language::Fr, at(2022, 3, 26, 8, 30), "26/03/2022 à 09:30"),
            (Language::Fr, at(2022, 3, 28, 8, 30), "28/03/2022 à 10:30"),
            (Language::Nl, at(2022, 10, 29, 8, 30), "29/10/2022 om 10:30"),
            (Language::De, at(2022, 10, 31, 8, 30), "31/10/2022 um 09:30"),
            (Language::En, at(2022, 5, 13, 22, 15), "14/05/2022 at 00:15"),
        ];
        for (lang, utc, local) in cases {
            assert_eq!(belgian_date(lang, utc), local);
        }
    }

    #[test]
    fn every_email_renders_in_every_language_with_its_facts() {
        let greeting = [
            ("fr", "Bonjour"),
            ("nl", "Beste"),
            ("de", "Guten Tag"),
            ("en", "Dear"),
        ];
        for template in [
            "appointment_postponed",
            "site_reopened",
            "appointment_rescheduled",
        ] {
            for (lang, hello) in greeting {
                let kind = Kind::parse(template).expect("known");
                let n = outgoing(kind, Language::parse(lang).expect("lang"));
                let view = View::new(&n, kind, None);
                let (text, html) =
                    bodies(Language::parse(lang).expect("lang"), kind, &view).expect("renders");
                for body in [&text, &html] {
                    assert!(body.contains(hello), "{template}/{lang}: {body}");
                    assert!(body.contains("Marie Dubois"), "{template}/{lang}");
                    assert!(body.contains("Orthopédie"), "{template}/{lang}");
                    assert!(body.contains("14/05/2022"), "{template}/{lang}");
                    assert!(body.contains("09:30"), "{template}/{lang}: {body}");
                    assert!(
                        body.contains("+32 63 55 30 00"),
                        "{template}/{lang}: {body}"
                    );
                    // The label may name a diagnosis: it stays out of emails.
                    assert!(!body.contains("Prothèse"), "{template}/{lang}");
                }
                assert!(html.contains("<html lang=\"") && html.contains("tel:+3263553000"));
            }
        }
    }

    #[test]
    fn html_escapes_what_comes_from_the_database() {
        let mut n = outgoing(Kind::AppointmentPostponed, Language::En);
        n.last_name = "<script>alert(1)</script>".into();
        let view = View::new(&n, Kind::AppointmentPostponed, None);
        let (text, html) =
            bodies(Language::En, Kind::AppointmentPostponed, &view).expect("renders");
        assert!(!html.contains("<script>"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(text.contains("<script>"), "the text part is not HTML");
    }

    #[test]
    fn a_rescheduled_email_carries_the_new_date_as_icalendar() {
        let mut n = outgoing(Kind::AppointmentRescheduled, Language::Nl);
        n.scheduled_for = Some(at(2022, 6, 20, 12, 0));
        let message = message(
            &n,
            &"Reprise <no-reply@vivalia.be>".parse().expect("from"),
            "vivalia.be",
            None,
        )
        .expect("builds");
        let raw = String::from_utf8(message.formatted()).expect("utf-8");
        assert!(raw.contains("Message-ID: <n1@vivalia.be>"), "{raw}");
        assert!(raw.contains("multipart/mixed"));
        assert!(raw.contains("text/calendar"));
        assert!(raw.contains("afspraak.ics"));
        assert!(raw.contains("DTSTART:20220620T120000Z"), "{raw}");
        assert!(raw.contains("UID:a1@reprise"));
    }

    #[test]
    fn a_postponed_email_has_no_attachment_and_a_missing_appointment_is_refused() {
        let n = outgoing(Kind::AppointmentPostponed, Language::Fr);
        let from: Mailbox = "Reprise <no-reply@localhost>".parse().expect("from");
        let raw = String::from_utf8(
            message(&n, &from, "localhost", None)
                .expect("builds")
                .formatted(),
        )
        .expect("utf-8");
        assert!(raw.contains("multipart/alternative") && !raw.contains("text/calendar"));
        let mut gone = n;
        gone.care.clear();
        assert!(matches!(
            message(&gone, &from, "localhost", None),
            Err(RenderError::NoAppointment)
        ));
    }
}
