//! What to do after an attempt at a delivery: the retry policy as a pure
//! function, shared by rule targets and subscriptions.

use std::time::Duration;

/// How often and for how long a delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// A delivery older than this is dead-lettered instead of retried.
    pub max_age: Duration,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target has it.
    Delivered,
    /// It may work later (429, 5xx, timeouts, connection errors, an
    /// unavailable queue or orchestrator).
    Retry {
        /// Why it failed.
        reason: String,
        /// The response, if there was one.
        response: Option<String>,
    },
    /// It can never work (other 4xx, a missing queue, an input that cannot
    /// be rendered): dead-letter at once.
    Terminal {
        /// Why.
        reason: String,
        /// The response, if there was one.
        response: Option<String>,
    },
}

/// What to do with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Acknowledge it.
    Done,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Move it to the target's dead-letter queue (terminal: it could never
    /// have worked; otherwise the retry policy ran out).
    DeadLetter {
        /// Why.
        reason: String,
        /// Whether retrying could never have helped.
        terminal: bool,
    },
}

/// Exponential backoff with equal jitter: attempt `n` (1-based) waits
/// between half and all of `base × 2^(n-1)`, capped at `max`. `unit` is a
/// number in [0, 1) that picks the point in that range.
pub fn backoff(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
    let d = exp.min(max);
    d / 2 + d.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
}

/// Decides after attempt `attempt` (1-based) of a delivery that has existed
/// for `age`.
pub fn decide(
    outcome: &Outcome,
    attempt: u32,
    age: Duration,
    policy: &Retry,
    delay: Duration,
) -> Decision {
    match outcome {
        Outcome::Delivered => Decision::Done,
        Outcome::Terminal { reason, .. } => Decision::DeadLetter {
            reason: reason.clone(),
            terminal: true,
        },
        Outcome::Retry { reason, .. } => {
            let retries_done = attempt.saturating_sub(1);
            if retries_done >= policy.max_retries {
                Decision::DeadLetter {
                    reason: format!(
                        "{reason} (gave up after {attempt} attempts: maximum_retry_attempts is {})",
                        policy.max_retries
                    ),
                    terminal: false,
                }
            } else if age + delay > policy.max_age {
                Decision::DeadLetter {
                    reason: format!(
                        "{reason} (gave up after {attempt} attempts: the next one would pass maximum_event_age_seconds {})",
                        policy.max_age.as_secs()
                    ),
                    terminal: false,
                }
            } else {
                Decision::RetryAfter(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn retry() -> Outcome {
        Outcome::Retry {
            reason: "503".into(),
            response: None,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let max = Duration::from_secs(300);
        assert_eq!(backoff(1, S, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, S, max, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(4, S, max, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(40, S, max, 0.0), Duration::from_secs(150));
        assert!(backoff(40, S, max, 1.0) <= max);
    }

    #[test]
    fn retries_until_attempts_or_age_run_out() {
        let p = Retry {
            max_retries: 2,
            max_age: Duration::from_secs(60),
        };
        assert_eq!(decide(&retry(), 1, S, &p, S), Decision::RetryAfter(S));
        assert_eq!(decide(&retry(), 2, S, &p, S), Decision::RetryAfter(S));
        assert!(matches!(
            decide(&retry(), 3, S, &p, S),
            Decision::DeadLetter {
                terminal: false,
                ..
            }
        ));
        assert!(matches!(
            decide(
                &retry(),
                1,
                Duration::from_secs(59),
                &p,
                Duration::from_secs(2)
            ),
            Decision::DeadLetter {
                terminal: false,
                ..
            }
        ));
    }

    #[test]
    fn no_retries_means_one_attempt_and_terminal_failures_are_not_retried() {
        let p = Retry {
            max_retries: 0,
            max_age: Duration::from_secs(60),
        };
        assert!(matches!(
            decide(&retry(), 1, S, &p, S),
            Decision::DeadLetter { .. }
        ));
        let p = Retry {
            max_retries: 185,
            max_age: Duration::from_secs(86_400),
        };
        let t = Outcome::Terminal {
            reason: "400".into(),
            response: None,
        };
        assert!(matches!(
            decide(&t, 1, S, &p, S),
            Decision::DeadLetter { terminal: true, .. }
        ));
        assert_eq!(decide(&Outcome::Delivered, 9, S, &p, S), Decision::Done);
    }
}
