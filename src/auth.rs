//! Who is calling, and whether they may: bearer tokens, the [`Caller`] extractor, and
//! [`Granted`], the extractor that checks a route's [`Action`] against the caller's role.
//!
//! The rule: a handler states the permission it needs in its signature (`Granted<perm::X>`)
//! and the decision is taken by `Role::may`, the single access table. Service scopes are checked
//! with [`Caller::may_access_service`]. Tokens are random (256 bits), shown once, and stored
//! only as their SHA-256 hash, looked up in the database at most once a second per instance
//! ([`TokenCache`]): a deleted account fails at once on the instance that deleted it, and
//! within a second on the others.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::audit::Refusal;
use crate::db::users::Account;
use crate::db::{self, DbConnection, DbError};
use crate::domain::account::NewAccount;
use crate::domain::{Action, Role};
use crate::error::{AppError, FieldError};
use crate::ratelimit::Budget;
use crate::startup::AppState;

const TOKEN_PREFIX: &str = "rp_";

/// How long an account found by its token is trusted without asking the database again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Most tokens remembered at once (live accounts of a hospital: a few thousand at most).
const TOKEN_CACHE_MAX: usize = 10_000;

/// Accounts recently found by their token hash. Without it every request, however many a
/// token sends each second, costs a lookup on the blocking pool before its own work: a third
/// of the call-logging capacity (docs/performance.md). Only live accounts are remembered (an
/// unknown token is looked up every time), for [`TOKEN_CACHE_TTL`]; deleting an account
/// empties the cache of the instance that deleted it once the deletion has committed.
#[derive(Default)]
pub struct TokenCache {
    entries: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    accounts: HashMap<String, (Instant, Account)>,
    /// Bumped by every [`TokenCache::forget_all`]: a lookup that began before it may have read
    /// the account just deleted, and must not put it back.
    generation: u64,
}

impl TokenCache {
    /// The account of this token hash if it was found less than a second ago, else the
    /// generation to hand to [`TokenCache::put`] after looking it up.
    fn get(&self, hash: &str) -> Result<Account, u64> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .accounts
            .get(hash)
            .filter(|(at, _)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(_, account)| account.clone())
            .ok_or(entries.generation)
    }

    /// Remembers an account looked up since `generation`, unless it was forgotten meanwhile.
    fn put(&self, hash: String, account: Account, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.generation != generation {
            return;
        }
        if entries.accounts.len() >= TOKEN_CACHE_MAX {
            entries
                .accounts
                .retain(|_, (at, _)| at.elapsed() < TOKEN_CACHE_TTL);
            if entries.accounts.len() >= TOKEN_CACHE_MAX {
                entries.accounts.clear();
            }
        }
        entries.accounts.insert(hash, (Instant::now(), account));
    }

    /// Forgets every account: the next request of each token asks the database.
    pub fn forget_all(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.accounts.clear();
        entries.generation += 1;
    }
}

/// A fresh token and the hash to store.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What the tracing middleware learns of each request, kept for the audit log: its id, and
/// where it came from (`client`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: String,
    /// The client's address (`client::Client`).
    pub address: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

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

/// An account just created, with its token (shown this once).
#[derive(Debug)]
pub struct CreatedAccount {
    pub account: db::users::Account,
    pub token: String,
}

/// Creates an account and its audit entry, inside the caller's transaction.
pub fn create_account(
    conn: &mut DbConnection,
    actor: &Caller,
    new: NewAccount,
) -> Result<CreatedAccount, AppError> {
    let unknown = db::users::unknown_services(conn, &new.services)?;
    if !unknown.is_empty() {
        return Err(AppError::Validation(
            unknown
                .into_iter()
                .map(|code| FieldError::new("services", format!("unknown service {code}")))
                .collect(),
        ));
    }
    let (token, hash) = new_token();
    let id = uuid::Uuid::now_v7().to_string();
    let now = crate::domain::now();
    let account = db::users::insert(
        conn,
        &db::users::NewUser {
            id: &id,
            name: &new.name,
            role: new.role,
            services: &new.services,
            token_hash: &hash,
            expires_at: new
                .expires_in_days
                .map(|days| now + chrono::Duration::days(i64::from(days))),
        },
        now,
    )?;
    crate::audit::record(
        conn,
        actor,
        "user.create",
        Some(&format!("user:{id}")),
        serde_json::json!({
            "role": new.role.as_str(),
            "services": account.services,
            "expires_at": account.expires_at.map(crate::routes::utc),
        }),
    )?;
    Ok(CreatedAccount { account, token })
}

#[cfg(test)]
mod tests {

    fn account(name: &str) -> Account {
        Account {
            id: format!("id-{name}"),
            name: name.into(),
            role: Role::Agent,
            services: vec![],
            created_at: chrono::NaiveDateTime::default(),
            expires_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn the_token_cache_remembers_for_a_second() {
        let cache = TokenCache::default();
        let generation = cache.get("h").expect_err("empty");
        cache.put("h".into(), account("a"), generation);
        assert_eq!(cache.get("h").map(|a| a.name), Ok("a".to_string()));
        assert!(cache.get("other").is_err());
        std::thread::sleep(TOKEN_CACHE_TTL + Duration::from_millis(50));
        assert!(cache.get("h").is_err(), "expired after the TTL");
    }

    #[test]
    fn a_lookup_that_began_before_a_deletion_is_not_remembered() {
        let cache = TokenCache::default();
        let generation = cache.get("h").expect_err("empty");
        cache.put("h".into(), account("a"), generation);
        let stale = cache.get("g").expect_err("not there");
        cache.forget_all();
        assert!(cache.get("h").is_err(), "forgotten");
        // A lookup that read the account before the deletion committed comes back late.
        cache.put("g".into(), account("g"), stale);
        assert!(cache.get("g").is_err(), "not put back");
        let fresh = cache.get("g").expect_err("not there");
        cache.put("g".into(), account("g"), fresh);
        assert!(cache.get("g").is_ok());
    }

    #[test]
    fn the_token_cache_is_bounded() {
        let cache = TokenCache::default();
        for i in 0..TOKEN_CACHE_MAX + 10 {
            let generation = cache.get("x").expect_err("never put");
            cache.put(format!("h{i}"), account("a"), generation);
        }
        let held = cache
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .accounts
            .len();
        assert!(held <= TOKEN_CACHE_MAX, "{held}");
        assert!(cache.get(&format!("h{}", TOKEN_CACHE_MAX + 9)).is_ok());
    }

    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.len() >= TOKEN_PREFIX.len() + 32, "at least 128 bits");
        assert_eq!(hash_a, token_hash(&a));
        assert!(!hash_a.contains(&a[TOKEN_PREFIX.len()..]));
    }

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
