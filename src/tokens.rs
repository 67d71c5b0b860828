//! API tokens: made random (256 bits), shown once, stored only as their SHA-256, and the
//! accounts recently found by them ([`TokenCache`]).
//!
//! The rule: a token's account is looked up in the database at most once a second per
//! instance: a deleted account fails at once on the instance that deleted it, and within a
//! second on the others.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::users::Account;

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
    pub fn get(&self, hash: &str) -> Result<Account, u64> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .accounts
            .get(hash)
            .filter(|(at, _)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(_, account)| account.clone())
            .ok_or(entries.generation)
    }

    /// Remembers an account looked up since `generation`, unless it was forgotten meanwhile.
    pub fn put(&self, hash: String, account: Account, generation: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

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

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.len() >= TOKEN_PREFIX.len() + 32, "at least 128 bits");
        assert_eq!(hash_a, token_hash(&a));
        assert!(!hash_a.contains(&a[TOKEN_PREFIX.len()..]));
    }
}
