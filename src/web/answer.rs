//! `/answer/{token}`: the page where a patient answers an email about a date (issue 9). The
//! token is the link's random secret, looked up by its SHA-256 (`domain::answer`); it is the only credential,
//! names one appointment, and is used up by the first answer. Reading the page changes
//! nothing (mail scanners open links); only the form's POST answers. The page is in the
//! patient's language, shows no name, and every reading and answer is audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{render, PageError};
use crate::auth::Caller;
use crate::db;
use crate::domain::answer::{Answer, Standing};
use crate::domain::appointment::Status;
use crate::domain::notification::Template as Email;
use crate::domain::patient::Language;
use crate::email::render::{belgian_date, kind_word};
use crate::error::AppError;
use crate::service::appointments::{self, Answered};
use crate::state::AppState;

/// The words of the answer page, for patients.
pub struct AnswerTexts {
    pub lang: &'static str,
    pub title: &'static str,
    /// `{kind}`, `{service}`, `{site}`, `{date}`.
    pub care: &'static str,
    pub proposed: &'static str,
    pub new_date: &'static str,
    pub question: &'static str,
    pub keep: &'static str,
    pub other_date: &'static str,
    pub call_back: &'static str,
    pub withdraw: &'static str,
    pub once: &'static str,
    pub send: &'static str,
    /// `{date}`.
    pub done_rebooked: &'static str,
    pub done_confirmed: &'static str,
    pub done_call: &'static str,
    pub done_withdrawn: &'static str,
    /// `{date}`, `{answer}`.
    pub used: &'static str,
    pub expired: &'static str,
    pub stale: &'static str,
    /// Before the service's phone.
    pub call_us: &'static str,
    pub invalid: &'static str,
    pub choose: &'static str,
    pub changed: &'static str,
    pub confirm_withdraw: &'static str,
    pub confirm_yes: &'static str,
    pub confirm_no: &'static str,
    /// Short words for an answer already given.
    pub said: [(&'static str, &'static str); 4],
}

static FR: AnswerTexts = AnswerTexts {
    lang: "fr",
    title: "Votre rendez-vous",
    care: "Votre {kind} au service {service}, {site}, prévue initialement le {date}.",
    proposed: "Date proposée\u{a0}:",
    new_date: "Nouvelle date\u{a0}:",
    question: "Votre réponse",
    keep: "Je garde cette date",
    other_date: "Je souhaite une autre date (le service m'appellera)",
    call_back: "Je souhaite que le service me rappelle",
    withdraw: "Je renonce à ce rendez-vous (il sera annulé)",
    once: "Ce lien ne sert qu'une fois.",
    send: "Envoyer ma réponse",
    done_rebooked: "Merci. Votre rendez-vous est fixé au {date}. Vous recevrez un email de confirmation.",
    done_confirmed: "Merci. Votre rendez-vous du {date} est confirmé.",
    done_call: "Merci. Le service vous appellera pour convenir d'une date.",
    done_withdrawn: "Votre rendez-vous est annulé. S'il s'agit d'une erreur, appelez le service.",
    used: "Vous avez déjà répondu par ce lien le {date} : « {answer} ».",
    expired: "Ce lien a expiré : il ne permet plus de répondre.",
    stale: "Ce lien ne s'applique plus : votre rendez-vous a changé depuis cet email. Voyez le dernier email reçu.",
    call_us: "Pour toute question, appelez le service\u{a0}:",
    invalid: "Ce lien n'est pas valide.",
    choose: "Choisissez une réponse.",
    changed: "Cette réponse n'est plus possible : votre rendez-vous a changé. Voici ce que vous pouvez répondre maintenant.",
    confirm_withdraw: "Voulez-vous vraiment renoncer à ce rendez-vous ? Il sera annulé.",
    confirm_yes: "Oui, annuler mon rendez-vous",
    confirm_no: "Non, revenir aux choix",
    said: [
        ("keep", "je garde cette date"),
        ("other_date", "une autre date"),
        ("call_back", "être rappelé"),
        ("withdraw", "je renonce"),
    ],
};

static NL: AnswerTexts = AnswerTexts {
    lang: "nl",
    title: "Uw afspraak",
    care: "Uw {kind} bij de dienst {service}, {site}, oorspronkelijk gepland op {date}.",
    proposed: "Voorgestelde datum:",
    new_date: "Nieuwe datum:",
    question: "Uw antwoord",
    keep: "Ik behoud deze datum",
    other_date: "Ik wil een andere datum (de dienst belt mij)",
    call_back: "Ik wil dat de dienst mij terugbelt",
    withdraw: "Ik zie af van deze afspraak (ze wordt geannuleerd)",
    once: "Deze link werkt één keer.",
    send: "Mijn antwoord versturen",
    done_rebooked: "Dank u. Uw afspraak is vastgelegd op {date}. U ontvangt een bevestiging per e-mail.",
    done_confirmed: "Dank u. Uw afspraak van {date} is bevestigd.",
    done_call: "Dank u. De dienst belt u om een datum af te spreken.",
    done_withdrawn: "Uw afspraak is geannuleerd. Is dit een vergissing, bel dan de dienst.",
    used: "U hebt via deze link al geantwoord op {date}: \u{201c}{answer}\u{201d}.",
    expired: "Deze link is verlopen: u kunt er niet meer mee antwoorden.",
    stale: "Deze link geldt niet meer: uw afspraak is sinds deze e-mail gewijzigd. Zie de laatste e-mail die u ontving.",
    call_us: "Voor vragen belt u de dienst:",
    invalid: "Deze link is niet geldig.",
    choose: "Kies een antwoord.",
    changed: "Dit antwoord is niet meer mogelijk: uw afspraak is gewijzigd. Dit kunt u nu antwoorden.",
    confirm_withdraw: "Wilt u echt afzien van deze afspraak? Ze wordt geannuleerd.",
    confirm_yes: "Ja, mijn afspraak annuleren",
    confirm_no: "Nee, terug naar de keuzes",
    said: [
        ("keep", "ik behoud deze datum"),
        ("other_date", "een andere datum"),
        ("call_back", "teruggebeld worden"),
        ("withdraw", "ik zie af"),
    ],
};

static DE: AnswerTexts = AnswerTexts {
    lang: "de",
    title: "Ihr Termin",
    care: "Ihre {kind} in der Abteilung {service}, {site}, ursprünglich geplant am {date}.",
    proposed: "Vorgeschlagener Termin:",
    new_date: "Neuer Termin:",
    question: "Ihre Antwort",
    keep: "Ich behalte diesen Termin",
    other_date: "Ich möchte einen anderen Termin (die Abteilung ruft mich an)",
    call_back: "Ich möchte, dass die Abteilung mich zurückruft",
    withdraw: "Ich verzichte auf diesen Termin (er wird abgesagt)",
    once: "Dieser Link gilt nur einmal.",
    send: "Antwort senden",
    done_rebooked: "Danke. Ihr Termin ist am {date}. Sie erhalten eine Bestätigung per E-Mail.",
    done_confirmed: "Danke. Ihr Termin am {date} ist bestätigt.",
    done_call: "Danke. Die Abteilung ruft Sie an, um einen Termin zu vereinbaren.",
    done_withdrawn: "Ihr Termin ist abgesagt. Falls dies ein Irrtum ist, rufen Sie die Abteilung an.",
    used: "Sie haben über diesen Link bereits am {date} geantwortet: \u{201e}{answer}\u{201c}.",
    expired: "Dieser Link ist abgelaufen: Sie können damit nicht mehr antworten.",
    stale: "Dieser Link gilt nicht mehr: Ihr Termin hat sich seit dieser E-Mail geändert. Siehe die letzte E-Mail, die Sie erhalten haben.",
    call_us: "Bei Fragen rufen Sie die Abteilung an:",
    invalid: "Dieser Link ist nicht gültig.",
    choose: "Bitte wählen Sie eine Antwort.",
    changed: "Diese Antwort ist nicht mehr möglich: Ihr Termin hat sich geändert. Das können Sie jetzt antworten.",
    confirm_withdraw: "Möchten Sie wirklich auf diesen Termin verzichten? Er wird abgesagt.",
    confirm_yes: "Ja, meinen Termin absagen",
    confirm_no: "Nein, zurück zu den Antworten",
    said: [
        ("keep", "ich behalte diesen Termin"),
        ("other_date", "ein anderer Termin"),
        ("call_back", "Rückruf"),
        ("withdraw", "ich verzichte"),
    ],
};

static EN: AnswerTexts = AnswerTexts {
    lang: "en",
    title: "Your appointment",
    care: "Your {kind} with the {service} department, {site}, first planned on {date}.",
    proposed: "Proposed date:",
    new_date: "New date:",
    question: "Your answer",
    keep: "I keep this date",
    other_date: "I would like another date (the department will call me)",
    call_back: "I would like the department to call me back",
    withdraw: "I withdraw from this appointment (it will be cancelled)",
    once: "This link works once.",
    send: "Send my answer",
    done_rebooked: "Thank you. Your appointment is set for {date}. You will receive a confirmation email.",
    done_confirmed: "Thank you. Your appointment on {date} is confirmed.",
    done_call: "Thank you. The department will call you to agree on a date.",
    done_withdrawn: "Your appointment is cancelled. If this is a mistake, please call the department.",
    used: "You already answered through this link on {date}: \u{201c}{answer}\u{201d}.",
    expired: "This link has expired: it can no longer be used to answer.",
    stale: "This link no longer applies: your appointment has changed since this email. See the latest email you received.",
    call_us: "For any question, call the department:",
    invalid: "This link is not valid.",
    choose: "Please choose an answer.",
    changed: "This answer is no longer possible: your appointment has changed. Here is what you can answer now.",
    confirm_withdraw: "Do you really want to withdraw from this appointment? It will be cancelled.",
    confirm_yes: "Yes, cancel my appointment",
    confirm_no: "No, back to the choices",
    said: [
        ("keep", "I keep this date"),
        ("other_date", "another date"),
        ("call_back", "call me back"),
        ("withdraw", "I withdraw"),
    ],
};

fn answer_texts(lang: Language) -> &'static AnswerTexts {
    match lang {
        Language::Fr => &FR,
        Language::Nl => &NL,
        Language::De => &DE,
        Language::En => &EN,
    }
}

impl AnswerTexts {
    fn choice(&self, a: Answer) -> &'static str {
        match a {
            Answer::Keep => self.keep,
            Answer::OtherDate => self.other_date,
            Answer::CallBack => self.call_back,
            Answer::Withdraw => self.withdraw,
        }
    }

    fn said(&self, a: Answer) -> &'static str {
        self.said
            .iter()
            .find(|(code, _)| *code == a.as_str())
            .map_or("", |(_, w)| w)
    }
}

/// What the page shows below the appointment.
enum Shown {
    /// The form, with its choices `(code, label)`.
    Form(Vec<(&'static str, &'static str)>),
    /// A sentence: thanks, or why the link does nothing more.
    Message { text: String, alert: bool },
    /// Are you sure? (a withdrawal cancels the appointment).
    ConfirmWithdraw,
}

#[derive(Template)]
#[template(path = "answer.html", config = "src/web/askama.toml")]
struct AnswerPage {
    t: &'static AnswerTexts,
    care: String,
    /// `(label, date)` of the date the patient may keep.
    date: Option<(&'static str, String)>,
    shown: Shown,
    /// The service's phone, for people and for a `tel:` link.
    phone: Option<(String, String)>,
    /// Why the form came back.
    notice: Option<&'static str>,
    /// The hospital the patient knows, named at the top of the page (not the software).
    hospital: String,
}

#[derive(Template)]
#[template(path = "answer_invalid.html", config = "src/web/askama.toml")]
struct InvalidPage {
    t: &'static AnswerTexts,
    all: Vec<&'static AnswerTexts>,
}

fn with_status(res: Result<HttpResponse, PageError>, status: StatusCode) -> HttpResponse {
    match res {
        Ok(mut res) => {
            *res.status_mut() = status;
            res.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-robots-tag"),
                actix_web::http::header::HeaderValue::from_static("noindex"),
            );
            res
        }
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

/// A link that is not one (bad signature, unknown id): said in the four languages, since
/// nothing tells which the patient reads.
fn invalid() -> HttpResponse {
    with_status(
        render(&InvalidPage {
            t: &FR,
            all: vec![&FR, &NL, &DE, &EN],
        }),
        StatusCode::NOT_FOUND,
    )
}

fn page(found: &db::answers::Found, standing: &Standing, shown: Option<Shown>) -> AnswerPage {
    let lang = found.language;
    let t = answer_texts(lang);
    let a = &found.appointment;
    let care = t
        .care
        .replace("{kind}", kind_word(lang, a.kind))
        .replace("{service}", &found.service)
        .replace("{site}", &found.site)
        .replace("{date}", &belgian_date(lang, a.original_scheduled_at));
    let date_of = |at| belgian_date(lang, at);
    let date = match standing {
        Standing::Open { date: Some(at), .. } => Some((
            if a.status == Status::Rescheduled {
                t.new_date
            } else {
                t.proposed
            },
            date_of(*at),
        )),
        _ => None,
    };
    let shown = shown.unwrap_or_else(|| match standing {
        Standing::Open { choices, .. } => {
            Shown::Form(choices.iter().map(|c| (c.as_str(), t.choice(*c))).collect())
        }
        Standing::Used(answer, at) => Shown::Message {
            text: t
                .used
                .replace("{date}", &date_of(*at))
                .replace("{answer}", t.said(*answer)),
            alert: false,
        },
        Standing::Expired => Shown::Message {
            text: t.expired.into(),
            alert: true,
        },
        Standing::Stale => Shown::Message {
            text: t.stale.into(),
            alert: true,
        },
    });
    let phone = found
        .service_phone
        .as_deref()
        .and_then(|p| crate::domain::PhoneE164::parse(p).ok())
        .map(|p| (p.international(), p.as_str().to_string()));
    AnswerPage {
        t,
        care,
        date,
        shown,
        phone,
        notice: None,
        hospital: found.site.clone(),
    }
}

/// The status of the page a GET shows.
fn status_of(standing: &Standing) -> StatusCode {
    match standing {
        Standing::Open { .. } | Standing::Used(..) => StatusCode::OK,
        Standing::Expired | Standing::Stale => StatusCode::GONE,
    }
}

/// The status of an answer that could not be recorded: 409 when the link is used already.
fn refused(standing: &Standing) -> StatusCode {
    match standing {
        Standing::Used(..) => StatusCode::CONFLICT,
        other => status_of(other),
    }
}

/// The link and its appointment as they are now (a read: nothing audited).
async fn load(state: &AppState, hash: String) -> Result<Option<db::answers::Found>, AppError> {
    state
        .db
        .read(move |conn| db::answers::find(conn, &hash).map_err(AppError::from))
        .await
}

fn standing_of(found: &db::answers::Found, now: chrono::NaiveDateTime) -> Standing {
    found
        .situation()
        .map_or(Standing::Stale, |s| s.standing(now))
}

/// The page as it is now, with a sentence on top saying why the form came back.
async fn again(
    state: &AppState,
    hash: String,
    notice: fn(&AnswerTexts) -> &'static str,
    status: StatusCode,
) -> HttpResponse {
    match load(state, hash).await {
        Ok(Some(found)) => {
            let standing = standing_of(&found, crate::domain::now());
            let mut page = page(&found, &standing, None);
            page.notice = Some(notice(page.t));
            with_status(render(&page), status)
        }
        Ok(None) => invalid(),
        Err(e) => actix_web::ResponseError::error_response(&PageError::app(e)),
    }
}

/// `GET /answer/{token}`: the appointment and the choices, or why there are none. Audited as
/// `answer_link.read` (by whoever holds the link: mail filters open links too).
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    let Some(hash) = crate::domain::answer::link_token_hash(&token) else {
        return invalid();
    };
    let origin = crate::auth::origin(&req);
    let now = crate::domain::now();
    let found = state
        .db
        .write(move |conn| {
            let Some(found) = db::answers::find(conn, &hash)? else {
                return Ok(None);
            };
            crate::audit::record(
                conn,
                &Caller::answer_link(origin, &found.appointment.service_code),
                "answer_link.read",
                Some(&format!("appointment:{}", found.appointment.id)),
                serde_json::json!({ "link": found.id }),
            )?;
            Ok::<_, AppError>(Some(found))
        })
        .await;
    match found {
        Ok(Some(found)) => {
            let standing = standing_of(&found, now);
            with_status(render(&page(&found, &standing, None)), status_of(&standing))
        }
        Ok(None) => invalid(),
        Err(e) => actix_web::ResponseError::error_response(&PageError::app(e)),
    }
}

/// The most a patient's form may weigh: one choice and a confirmation.
const FORM_LIMIT: usize = 1024;

#[derive(Deserialize)]
pub struct AnswerForm {
    answer: String,
    /// `yes` confirms a withdrawal.
    confirm: Option<String>,
}

/// The page that asks to confirm a withdrawal, if the link still offers it.
async fn confirm_withdrawal(state: &AppState, hash: String) -> HttpResponse {
    match load(state, hash).await {
        Ok(Some(found)) => {
            let standing = standing_of(&found, crate::domain::now());
            let shown = matches!(&standing, Standing::Open { choices, .. } if choices.contains(&Answer::Withdraw))
                .then_some(Shown::ConfirmWithdraw);
            let status = if shown.is_some() {
                StatusCode::OK
            } else {
                refused(&standing)
            };
            with_status(render(&page(&found, &standing, shown)), status)
        }
        Ok(None) => invalid(),
        Err(e) => actix_web::ResponseError::error_response(&PageError::app(e)),
    }
}

/// What follows an answer, in the patient's words.
fn done_text(found: &db::answers::Found, chosen: Answer) -> String {
    let lang = found.language;
    let t = answer_texts(lang);
    let row = &found.appointment;
    let date = belgian_date(lang, row.scheduled_at);
    match chosen {
        Answer::Keep
            if row.status == Status::Rescheduled && found.template == Email::SiteReopened =>
        {
            t.done_rebooked.replace("{date}", &date)
        }
        Answer::Keep => t.done_confirmed.replace("{date}", &date),
        Answer::OtherDate | Answer::CallBack => t.done_call.into(),
        Answer::Withdraw => t.done_withdrawn.into(),
    }
}

/// `POST /answer/{token}` (`answer=keep|other_date|call_back|withdraw`; a withdrawal asks for
/// `confirm=yes` first): records the answer (`service::appointments::answer_by_link`) and says
/// what follows.
pub async fn answer(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Bytes,
) -> HttpResponse {
    if form.len() > FORM_LIMIT {
        return actix_web::ResponseError::error_response(&PageError::app(
            AppError::PayloadTooLarge(format!("the form is at most {FORM_LIMIT} bytes")),
        ));
    }
    let Some(hash) = crate::domain::answer::link_token_hash(&token) else {
        return invalid();
    };
    let form = serde_urlencoded::from_bytes::<AnswerForm>(&form).ok();
    let chosen = form.as_ref().and_then(|f| Answer::parse(&f.answer).ok());
    let Some(chosen) = chosen else {
        return again(&state, hash, |t| t.choose, StatusCode::UNPROCESSABLE_ENTITY).await;
    };
    let confirmed = form.and_then(|f| f.confirm).is_some_and(|c| c == "yes");
    if chosen == Answer::Withdraw && !confirmed {
        // A cancellation is final: one more step, nothing recorded yet.
        return confirm_withdrawal(&state, hash).await;
    }
    let now = crate::domain::now();
    let done = appointments::answer(&state, crate::auth::origin(&req), hash.clone(), chosen, now);
    let answered = match done.await {
        Ok(answered) => answered,
        Err(AppError::NotFound(_)) => return invalid(),
        // The choice is no longer offered (the page was open while things changed).
        Err(AppError::Validation(_)) => {
            return again(&state, hash, |t| t.changed, StatusCode::CONFLICT).await
        }
        Err(e) => return actix_web::ResponseError::error_response(&PageError::app(e)),
    };
    answered_page(answered, chosen, now)
}

/// What follows a recorded answer, or why it was not recorded.
fn answered_page(answered: Answered, chosen: Answer, now: chrono::NaiveDateTime) -> HttpResponse {
    match answered {
        Answered::Done(found) => {
            let text = done_text(&found, chosen);
            let standing = Standing::Used(chosen, now);
            with_status(
                render(&page(
                    &found,
                    &standing,
                    Some(Shown::Message { text, alert: false }),
                )),
                StatusCode::OK,
            )
        }
        Answered::Refused(standing, found) => {
            with_status(render(&page(&found, &standing, None)), refused(&standing))
        }
    }
}
