//! Per-principal token buckets (GCRA, via `governor`).

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// A token bucket per principal.
#[derive(Debug)]
pub struct Throttle {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Throttle {
    /// `rate` tokens per second, `burst` at most.
    pub fn new(rate: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes a token for `principal`, or says how long to wait.
    pub fn check(&self, principal: &str) -> Result<(), ApiError> {
        match self.limiter.check_key(&principal.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(ApiError::Throttled {
                    retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
        }
    }

    /// Forgets principals whose buckets are full again (bounded memory).
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_throttled_with_retry_after() {
        let t = Throttle::new(1, 3);
        for _ in 0..3 {
            assert!(t.check("a").is_ok());
        }
        match t.check("a") {
            Err(ApiError::Throttled { retry_after }) => assert!((1..=2).contains(&retry_after)),
            other => panic!("expected throttling, got {other:?}"),
        }
        // Buckets are per principal.
        assert!(t.check("b").is_ok());
    }
}
