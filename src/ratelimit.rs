//! Request limits: per account, so that a leaked token cannot change or read the whole
//! database in seconds, and per client address for requests without a valid credential
//! ([`AnonymousLimits`]). Two budgets, decided in one place from the permission a route requires
//! (`Action::reads_personal_data`) and its method: requests that read personal data, and
//! requests that change data. Checked in `Granted<P>` once the caller is known and allowed,
//! before the body is read; over budget is a 429 with `Retry-After`.
//!
//! The limits are per process: with several instances behind a load balancer, an account may
//! make up to that many times the requests. The state is one counter per account (GCRA, the
//! `governor` crate), so memory grows with accounts, not with requests or forged tokens.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Which budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Writes,
    Reads,
}

pub struct RateLimits {
    writes: Option<DefaultKeyedRateLimiter<String>>,
    reads: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

/// `per_minute` requests a minute, in bursts of up to a sixth of it (ten seconds' worth).
fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_minute: Option<u32>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_minute?)?;
    let burst = NonZeroU32::new((rate.get() / 6).max(1))?;
    Some(RateLimiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    ))
}

impl RateLimits {
    pub fn new(writes_per_minute: Option<u32>, reads_per_minute: Option<u32>) -> Self {
        Self {
            writes: limiter(writes_per_minute),
            reads: limiter(reads_per_minute),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one request of `account`'s budget; over it, how long until the next is allowed.
    pub fn check(&self, budget: Budget, account: &str) -> Result<(), Duration> {
        let limiter = match budget {
            Budget::Writes => &self.writes,
            Budget::Reads => &self.reads,
        };
        match limiter {
            None => Ok(()),
            Some(l) => l
                .check_key(&account.to_string())
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }
}

/// Requests without a valid credential, per client address (`REPRISE_RATE_ANONYMOUS`): an
/// unknown token, a failed sign-in, a forged link or session cookie each spend one. Once an
/// address has spent its budget, its requests are refused ([`AnonymousLimits::blocked`]) before
/// any token, session or link is looked up, until the budget comes back: a flood of made-up
/// credentials then costs neither a database read nor an audit write per request. Requests
/// with a valid credential spend nothing. IPv6 addresses count by /64, what one host is given.
pub struct AnonymousLimits {
    limiter: Option<governor::DefaultKeyedRateLimiter<IpAddr>>,
    /// Until when each address over its budget is refused. Read by every request, written
    /// only when an address goes over: a read lock, skipped while no address ever went over.
    blocked: RwLock<HashMap<IpAddr, Instant>>,
    any_blocked: AtomicBool,
    clock: DefaultClock,
}

/// Addresses remembered before the ones whose wait is over are forgotten.
const ADDRESSES_MAX: usize = 100_000;

/// The key an address counts under: itself, or its /64 for IPv6.
fn bucket(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

impl AnonymousLimits {
    pub fn new(per_minute: Option<u32>) -> Self {
        Self {
            limiter: limiter(per_minute),
            blocked: RwLock::default(),
            any_blocked: AtomicBool::new(false),
            clock: DefaultClock::default(),
        }
    }

    /// How long `address` is still refused, if it is over its budget.
    pub fn blocked(&self, address: IpAddr) -> Option<Duration> {
        self.limiter.as_ref()?;
        if !self.any_blocked.load(Ordering::Relaxed) {
            return None;
        }
        let blocked = self.blocked.read().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&bucket(address))?;
        until.checked_duration_since(Instant::now())
    }

    /// Spends one request of `address`'s budget (it carried no valid credential).
    pub fn refused(&self, address: IpAddr) {
        let Some(limiter) = &self.limiter else { return };
        let key = bucket(address);
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(self.clock.now());
            let mut blocked = self.blocked.write().unwrap_or_else(|e| e.into_inner());
            if blocked.len() >= ADDRESSES_MAX {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
                limiter.retain_recent();
            }
            blocked.insert(key, Instant::now() + wait);
            self.any_blocked.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_budget_is_refused_until_it_comes_back() {
        let limits = AnonymousLimits::new(Some(60));
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        let b: IpAddr = "203.0.113.8".parse().expect("ip");
        // A burst of ten refusals is allowed; the eleventh blocks the address.
        for _ in 0..10 {
            limits.refused(a);
            assert_eq!(limits.blocked(a), None);
        }
        limits.refused(a);
        let wait = limits.blocked(a).expect("blocked");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(limits.blocked(b), None, "another address is not");
        std::thread::sleep(wait + Duration::from_millis(20));
        assert_eq!(limits.blocked(a), None, "the budget comes back");
        // No limit configured: never blocked.
        let none = AnonymousLimits::new(None);
        for _ in 0..100 {
            none.refused(a);
        }
        assert_eq!(none.blocked(a), None);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let limits = AnonymousLimits::new(Some(6));
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        limits.refused(one);
        limits.refused(other);
        assert!(limits.blocked(one).is_some(), "the same /64");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(limits.blocked(elsewhere), None);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().expect("ip");
        assert_eq!(bucket(mapped), "203.0.113.7".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn a_burst_then_refusals_with_a_wait_per_account() {
        let limits = RateLimits::new(Some(60), None);
        // 60 a minute: bursts of 10.
        for _ in 0..10 {
            assert_eq!(limits.check(Budget::Writes, "a"), Ok(()));
        }
        let wait = limits
            .check(Budget::Writes, "a")
            .expect_err("the 11th is refused");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another account, and the other budget, are untouched.
        assert_eq!(limits.check(Budget::Writes, "b"), Ok(()));
        for _ in 0..1000 {
            assert_eq!(limits.check(Budget::Reads, "a"), Ok(()));
        }
    }
}
