//! Per-account request limits, so that a leaked token cannot change or read the whole
//! database in seconds. Two budgets, decided in one place from the permission a route requires
//! (`Action::reads_personal_data`) and its method: requests that read personal data, and
//! requests that change data. Checked in `Granted<P>` once the caller is known and allowed,
//! before the body is read; over budget is a 429 with `Retry-After`.
//!
//! The limits are per process: with several instances behind a load balancer, an account may
//! make up to that many times the requests. The state is one counter per account (GCRA, the
//! `governor` crate), so memory grows with accounts, not with requests or forged tokens.

use std::num::NonZeroU32;
use std::time::Duration;

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
fn limiter(per_minute: Option<u32>) -> Option<DefaultKeyedRateLimiter<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
