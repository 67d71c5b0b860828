//! Who is calling, and whether they may: bearer tokens, the [`Caller`] extractor, and
//! [`Granted`], the extractor that checks a route's [`Action`] against the caller's role.
//!
//! The rule: a handler states the permission it needs in its signature (`Granted<perm::X>`)
//! and the decision is taken by `Role::may`, the single access table. Service scopes are checked
//! with [`Caller::may_access_service`]. Tokens are random (256 bits), shown once, and stored
//! only as their SHA-256 hash, looked up in the database at most once a second per instance
//! ([`TokenCache`]): a deleted account fails at once on the instance that deleted it, and
//! within a second on the others.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

pub use crate::client::Origin;
use crate::db::users::Account;
use crate::db::{self, DbError};
use crate::denials::Refusal;
use crate::domain::{Action, Role};
use crate::error::AppError;
use crate::ratelimit::Budget;
use crate::state::AppState;
pub use crate::tokens::{new_token, token_hash, TokenCache};

/// The origin the tracing middleware gave this request.
pub fn origin(req: &HttpRequest) -> Option<Origin> {
    req.extensions().get::<Origin>().cloned()
}

/// The audit log's actor for what is done through an email's answer link.
pub const ANSWER_LINK_ACTOR: &str = "answer link";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` for the command line, which acts without an account.
    pub id: Option<String>,
    pub name: String,
    pub role: Role,
    pub services: Vec<String>,
    /// The request acting, for the audit log; `None` for the command line.
    pub origin: Option<Origin>,
}

impl Caller {
    /// The operator at the machine, running a `reprise` sub-command.
    pub fn command_line() -> Self {
        Self {
            id: None,
            name: "command line".into(),
            role: Role::Admin,
            services: Vec::new(),
            origin: None,
        }
    }

    /// Whoever holds an email's answer link (`/answer/{token}`): the patient, or a mail filter
    /// opening the link. No account: the link is the credential and names one appointment.
    /// The narrowest role that may change an appointment, bound to that appointment's service.
    pub fn answer_link(origin: Option<Origin>, service: &str) -> Self {
        Self {
            id: None,
            name: ANSWER_LINK_ACTOR.into(),
            role: Role::Secretary,
            services: vec![service.to_string()],
            origin,
        }
    }

    /// The account acting in a request (its token, or a page's session), with the request's
    /// [`origin`] for the audit log.
    pub fn of(account: Account, origin: Option<Origin>) -> Self {
        Self {
            id: Some(account.id),
            name: account.name,
            role: account.role,
            services: account.services,
            origin,
        }
    }

    pub fn may(&self, action: Action) -> bool {
        self.role.may(action)
    }

    /// Whether the caller may see records of this service: everyone but secretaries, and
    /// secretaries for their own services.
    pub fn may_access_service(&self, service_code: &str) -> bool {
        !self.role.is_service_scoped() || self.services.iter().any(|s| s == service_code)
    }
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?;
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then(|| token.to_string())
}

impl FromRequest for Caller {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            if let Some(caller) = req.extensions().get::<Caller>() {
                return Ok(caller.clone());
            }
            let Some(token) = bearer_token(&req) else {
                req.extensions_mut().insert(Refusal::NoToken);
                return Err(AppError::Unauthorized);
            };
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| AppError::Internal("application state missing".into()))?;
            let hash = token_hash(&token);
            let now = crate::domain::now();
            let account = match state.tokens.get(&hash) {
                Ok(account) => Some(account),
                Err(generation) => {
                    let key = hash.clone();
                    let found = state
                        .db
                        .read(move |conn| {
                            db::users::find_by_token_hash(conn, &key, now).map_err(DbError::from)
                        })
                        .await?;
                    if let Some(found) = &found {
                        state.tokens.put(hash, found.clone(), generation);
                        note_use(&state, found, now);
                    }
                    found
                }
            };
            // Expired while in the cache: refused as soon as its time is up.
            let Some(account) = account.filter(|a| a.is_live_at(now)) else {
                req.extensions_mut().insert(Refusal::UnknownToken);
                return Err(AppError::Unauthorized);
            };
            let caller = Caller::of(account, origin(&req));
            req.extensions_mut().insert(caller.clone());
            Ok(caller)
        })
    }
}

/// Writes the account's `last_used_at` if what the database said of it (read at most once a
/// second per process, [`TokenCache`]) is older than `db::users::LAST_USED_EVERY`: at most
/// about one write a minute per account, off the request's path.
pub fn note_use(state: &web::Data<AppState>, account: &Account, now: chrono::NaiveDateTime) {
    let stale = account
        .last_used_at
        .is_none_or(|at| at <= now - db::users::LAST_USED_EVERY);
    if !stale {
        return;
    }
    let (db, id) = (state.db.clone(), account.id.clone());
    actix_web::rt::spawn(async move {
        let written = db
            .write(move |conn| db::users::touch(conn, &id, now).map_err(DbError::from))
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not note when a token was used");
        }
    });
}

/// A permission a route can require; see [`perm`].
pub trait Permission {
    const ACTION: Action;
}

/// Marker types, one per [`Action`], for `Granted<perm::X>`.
pub mod perm {
    use super::{Action, Permission};

    macro_rules! permissions {
        ($($name:ident),* $(,)?) => {$(
            #[derive(Debug)]
            pub struct $name;
            impl Permission for $name {
                const ACTION: Action = Action::$name;
            }
        )*};
    }

    permissions!(
        ManageUsers,
        ReadAudit,
        ManageSites,
        ManageIncidents,
        ManageCallCentre,
        Import,
        ReadPatients,
        CreatePatients,
        ReadAppointments,
        CreateAppointments,
        ChangeAppointments,
        ContactLists,
        LogCalls,
        ReadCalls,
        ReadNotifications,
        Fhir,
    );
}

/// A caller whose role allows `P`; extracting it answers 401 or 403 otherwise, before the
/// body is even read.
#[derive(Debug)]
pub struct Granted<P: Permission> {
    pub caller: Caller,
    _permission: PhantomData<P>,
}

impl<P: Permission> Deref for Granted<P> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<P: Permission + 'static> FromRequest for Granted<P> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        let budget = if P::ACTION.reads_personal_data() {
            Some(Budget::Reads)
        } else if req.method().is_safe() {
            None
        } else {
            Some(Budget::Writes)
        };
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let caller = caller.await?;
            if caller.may(P::ACTION) {
                if let (Some(budget), Some(state), Some(account)) =
                    (budget, state, caller.id.as_deref())
                {
                    state.limits.check(budget, account).map_err(|wait| {
                        AppError::TooManyRequests(wait.as_secs_f64().ceil().max(1.0) as u64)
                    })?;
                }
                Ok(Granted {
                    caller,
                    _permission: PhantomData,
                })
            } else {
                Err(AppError::Forbidden(format!(
                    "the {} role may not do this",
                    caller.role.as_str()
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secretaries_only_reach_their_services() {
        let mut caller = Caller::command_line();
        caller.role = Role::Secretary;
        caller.services = vec!["ARL-CHIR".into()];
        assert!(caller.may_access_service("ARL-CHIR"));
        assert!(!caller.may_access_service("MAR-CHIR"));
        caller.role = Role::Agent;
        assert!(caller.may_access_service("MAR-CHIR"));
    }
}
