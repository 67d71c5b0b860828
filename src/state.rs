//! What every handler can reach: the application's state, built by `startup` and handed to
//! every request. Below `auth` and every front door: it names no handler.

use std::collections::HashMap;

use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    pub metrics: Metrics,
    pub settings: Settings,
    /// Per-account request budgets (`ratelimit`).
    pub limits: crate::ratelimit::RateLimits,
    /// Per-address budget of requests without a valid credential (`ratelimit`).
    pub anonymous: crate::ratelimit::AnonymousLimits,
    /// Refusals counted between two writes of their aggregated audit entries.
    pub denials: crate::denials::Denials,
    /// Accounts recently found by their token (`auth::TokenCache`).
    pub tokens: crate::tokens::TokenCache,
    /// Route pattern → the methods it answers, for the `Allow` header of a 405.
    pub allow: HashMap<String, String>,
    /// How answer links are written (`domain::answer`).
    pub links: crate::email::render::Links,
    /// The call each account with an agents' page open here has now (`pops`): what the
    /// PBX's events publish and the pages' event streams wait on.
    pub pops: crate::pops::Pops,
}
