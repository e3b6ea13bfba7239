//! Whether and when to try a URL again, and when to stop speaking to a host altogether.
//!
//! [`classify`] is the one pure function that turns an attempt's outcome into a [`Decision`]:
//! done, retry after a wait, or give up with an error class. "Whether" comes from
//! `Outcome::is_retriable` and the retry budget; "when" is the server's `Retry-After` on a 429
//! or any error status that carries one, otherwise exponential backoff with full jitter.
//! [`CircuitBreaker`] watches a host rather than a URL: consecutive connect/DNS/timeout failures park the host for a growing while, and
//! after too many parkings declare it dead for the run.
//!
//! Nothing here sleeps, draws random numbers or reads a clock: the jitter value and the current
//! `Instant` are arguments. The host's rate is `rate.rs`'s business, not this module's.

use std::time::{Duration, Instant};

use crate::host::outcome::{ErrorClass, Outcome, TransportKind};

/// Longest wait a `Retry-After` can impose. Real maintenance windows and rate-limit resets are
/// seconds to minutes; a value of a day or a date years ahead is nearly always a misconfigured
/// server, and obeying it would freeze that host's queue for the rest of the run. One hour
/// honours any plausible request and still lets the retry budget settle the URL within the run.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// Retries per URL after its first attempt. Five retries with the default backoff span up to
/// about a minute, long enough to ride out a restarting server, short enough that a broken URL
/// does not hold its host's queue.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// Retries after a DNS failure. Resolvers do fail transiently, but a name that failed three
/// times is almost always gone; the circuit breaker then parks the whole host.
pub const DEFAULT_MAX_DNS_RETRIES: u32 = 2;

/// Answers that a host name does not exist (NXDOMAIN) tolerated before the host is given up:
/// one, since a zone being reloaded answers NXDOMAIN for a moment. The ServerActor counts them
/// per host (robots.txt and image requests alike); a second such answer is definitive, and the
/// host's remaining rows are recorded as `nxdomain` at once.
pub const NXDOMAIN_RETRIES: u32 = 1;

/// Ceiling of the first backoff. A transient 5xx (a Tomcat restart, a busy IIIF server) tends to
/// clear within seconds; 2 s doubles to 32 s by the fifth retry. The server itself is protected
/// by its host's rate (every retry waits for a token like any request, and clustered failures
/// cut the rate), so this wait only needs to outlast a hiccup. Longer, it mostly set the tail of
/// a host answering 503 at random: 5 s once made such a 60-URL host take a minute.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(2);

/// Longest backoff, reached only if `max_retries` is raised: beyond ten minutes a URL is better
/// recorded as a retriable error and picked up by `--retry-failed` in a later run.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(10 * 60);

/// Consecutive connect/DNS/timeout failures that park a host. One or two timeouts happen on a
/// healthy host serving 100 MB files; five in a row with no answer in between is an outage.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;

/// First parking. Long enough for a flapping link or a restarting server to come back.
pub const DEFAULT_FIRST_PARK: Duration = Duration::from_secs(30);

/// Each further parking lasts this many times the previous one: 30 s, 2 min, 8 min, 32 min.
pub const DEFAULT_PARK_GROWTH: u32 = 4;

/// Longest single parking. Half an hour lets a server's nightly maintenance pass.
pub const DEFAULT_MAX_PARK: Duration = Duration::from_secs(30 * 60);

/// Parkings before the host is declared dead: 30 s + 2 min + 8 min + 30 min, so a host is given
/// up only after about 40 minutes of not answering. Its remaining URLs are recorded `parked`,
/// which a later run can retry.
pub const DEFAULT_MAX_PARKS: u32 = 4;

/// How persistently to retry one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Retries after a DNS failure (the lower of this and `max_retries` applies).
    pub max_dns_retries: u32,
    /// Ceiling of the first backoff; it doubles with every attempt.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_cap: Duration,
    /// Longest `Retry-After` obeyed.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            max_dns_retries: DEFAULT_MAX_DNS_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
            retry_after_cap: MAX_RETRY_AFTER,
        }
    }
}

/// What to do with a URL after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A 2xx: the bytes go on to decoding. Nothing to retry.
    Done,
    /// Put the URL back in its host's queue, not to be sent before `after` from now.
    Retry { after: Duration },
    /// Record an error of this class.
    GiveUp { class: ErrorClass },
}

/// Decides what follows an attempt.
///
/// `attempt` is the 0-based number of the attempt that produced `outcome` (0 for the first
/// try). `retry_after` is the parsed header, if any; it is obeyed on any refusal (a 429, or an error
/// status with the header), exactly
/// (capped at `policy.retry_after_cap`), with no jitter. `jitter` is a uniform draw in `[0, 1]`
/// used for full-jitter backoff; a value outside is clamped, NaN counts as 1 (the longest wait).
pub fn classify(
    outcome: &Outcome,
    attempt: u32,
    retry_after: Option<Duration>,
    policy: &RetryPolicy,
    jitter: f64,
) -> Decision {
    let Some(class) = outcome.class() else {
        return Decision::Done;
    };
    if !outcome.is_retriable() {
        return Decision::GiveUp { class };
    }
    let budget = match outcome {
        Outcome::Transport(TransportKind::Dns) => policy.max_retries.min(policy.max_dns_retries),
        _ => policy.max_retries,
    };
    if attempt >= budget {
        return Decision::GiveUp { class };
    }
    let after = match retry_after {
        Some(wait) if outcome.is_refusal(true) => wait.min(policy.retry_after_cap),
        _ => backoff(attempt, policy, jitter),
    };
    Decision::Retry { after }
}

/// Full-jitter exponential backoff: `jitter × min(cap, base × 2^attempt)`.
pub fn backoff(attempt: u32, policy: &RetryPolicy, jitter: f64) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    let ceiling = policy.backoff_base.saturating_mul(factor).min(policy.backoff_cap);
    let jitter = if jitter.is_nan() { 1.0 } else { jitter.clamp(0.0, 1.0) };
    ceiling.mul_f64(jitter)
}

/// When the circuit breaker trips and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive connect/DNS/timeout failures that park the host.
    pub threshold: u32,
    /// Length of the first parking.
    pub first_park: Duration,
    /// Factor by which each further parking is longer.
    pub growth: u32,
    /// Longest parking.
    pub max_park: Duration,
    /// Parkings after which the next trip declares the host dead.
    pub max_parks: u32,
}

impl Default for BreakerPolicy {
    fn default() -> BreakerPolicy {
        BreakerPolicy {
            threshold: DEFAULT_BREAKER_THRESHOLD,
            first_park: DEFAULT_FIRST_PARK,
            growth: DEFAULT_PARK_GROWTH,
            max_park: DEFAULT_MAX_PARK,
            max_parks: DEFAULT_MAX_PARKS,
        }
    }
}

impl BreakerPolicy {
    /// Length of the `n`-th parking (1-based).
    pub fn park_duration(&self, n: u32) -> Duration {
        let factor = self.growth.max(1).saturating_pow(n.saturating_sub(1));
        self.first_park.saturating_mul(factor).min(self.max_park)
    }
}

/// Whether a host may be sent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Up,
    /// Send nothing before `until`.
    Parked {
        until: Instant,
    },
    /// Give up on the host for this run; its remaining URLs are recorded as `parked`.
    Dead,
}

/// Parks a host that stopped answering.
///
/// After a parking ends the host is on probation: the next unreachability failure parks it again
/// at once, without waiting for `threshold` failures; any HTTP answer ends the probation. Only a
/// 2xx resets the count of parkings, since a host that answers only errors may still be sick.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    consecutive: u32,
    parks: u32,
    /// When the current parking began; failures of requests sent up to then are stale.
    parked_at: Option<Instant>,
    /// End of the last parking, kept until the host answers again (probation).
    parked_until: Option<Instant>,
    dead: bool,
}

impl CircuitBreaker {
    /// A breaker for a host with no history.
    pub fn new(policy: BreakerPolicy) -> CircuitBreaker {
        CircuitBreaker::from_parts(policy, 0, 0, None, false)
    }

    /// A breaker with restored history (see `state.rs`).
    pub fn from_parts(
        policy: BreakerPolicy,
        consecutive_failures: u32,
        parks: u32,
        parked_until: Option<Instant>,
        dead: bool,
    ) -> CircuitBreaker {
        CircuitBreaker { policy, consecutive: consecutive_failures, parks, parked_at: None, parked_until, dead }
    }

    /// Feeds a finished request sent at `sent_at`, and says whether the host is usable now.
    pub fn record(&mut self, outcome: &Outcome, sent_at: Instant, now: Instant) -> Availability {
        if self.dead {
            return Availability::Dead;
        }
        if let Outcome::Status(_) = outcome {
            self.consecutive = 0;
            if outcome.is_success() {
                self.parks = 0;
            }
            if self.parked_until.is_some_and(|until| now >= until) {
                self.parked_until = None;
            }
        } else if outcome.suggests_host_down() && self.parked_at.is_none_or(|at| sent_at > at) {
            self.consecutive += 1;
            if self.consecutive >= self.policy.threshold.max(1) || self.parked_until.is_some() {
                self.trip(now);
            }
        }
        self.availability(now)
    }

    fn trip(&mut self, now: Instant) {
        self.consecutive = 0;
        self.parks += 1;
        if self.parks > self.policy.max_parks {
            self.dead = true;
        } else {
            self.parked_at = Some(now);
            self.parked_until = Some(now + self.policy.park_duration(self.parks));
        }
    }

    /// Whether the host may be sent requests at `now`.
    pub fn availability(&self, now: Instant) -> Availability {
        match self.parked_until {
            _ if self.dead => Availability::Dead,
            Some(until) if now < until => Availability::Parked { until },
            _ => Availability::Up,
        }
    }

    /// Unreachability failures in a row not yet acted upon.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Parkings since the last 2xx.
    pub fn parks(&self) -> u32 {
        self.parks
    }

    /// End of the last parking while the host has not answered since (past or future).
    pub fn parked_until(&self) -> Option<Instant> {
        self.parked_until
    }

    /// Whether the host was given up for this run.
    pub fn is_dead(&self) -> bool {
        self.dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Outcome = Outcome::Transport(TransportKind::Timeout);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn permanent_failures_give_up_on_the_first_attempt() {
        let p = RetryPolicy::default();
        assert_eq!(classify(&Outcome::Status(404), 0, None, &p, 0.5), Decision::GiveUp { class: ErrorClass::Http4xx });
        let tls = Outcome::Transport(TransportKind::Tls);
        assert_eq!(classify(&tls, 0, None, &p, 0.5), Decision::GiveUp { class: ErrorClass::Tls });
        assert_eq!(classify(&Outcome::Status(200), 0, None, &p, 0.5), Decision::Done);
    }

    #[test]
    fn retry_after_on_any_refusal_is_obeyed_exactly() {
        let p = RetryPolicy::default();
        for code in [429, 503, 500] {
            let d = classify(&Outcome::Status(code), 2, Some(secs(120)), &p, 0.01);
            assert_eq!(d, Decision::Retry { after: secs(120) }, "{code}");
        }
        let short = RetryPolicy { retry_after_cap: secs(60), ..p.clone() };
        assert_eq!(
            classify(&Outcome::Status(429), 0, Some(secs(120)), &short, 0.0),
            Decision::Retry { after: secs(60) }
        );
        // Without the header a 503 is a failure: ordinary backoff applies.
        assert_eq!(classify(&Outcome::Status(503), 0, None, &p, 1.0), Decision::Retry { after: secs(2) });
    }

    #[test]
    fn backoff_doubles_per_attempt_and_is_capped() {
        let p = RetryPolicy::default();
        let ceilings: Vec<u64> = (0..5).map(|a| backoff(a, &p, 1.0).as_secs()).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 32]);
        assert_eq!(backoff(12, &p, 1.0), DEFAULT_BACKOFF_CAP);
        assert_eq!(backoff(200, &p, 1.0), DEFAULT_BACKOFF_CAP, "huge attempt numbers must not overflow");
    }

    #[test]
    fn full_jitter_spreads_waits_over_the_whole_interval() {
        let p = RetryPolicy::default();
        assert_eq!(backoff(3, &p, 0.0), Duration::ZERO);
        assert_eq!(backoff(3, &p, 0.25), secs(4));
        assert_eq!(backoff(3, &p, 7.0), secs(16), "out-of-range jitter is clamped");
        assert_eq!(backoff(3, &p, f64::NAN), secs(16), "NaN jitter waits longest");
    }

    #[test]
    fn retriable_failures_stop_after_the_budget_with_their_own_class() {
        // The record must say "timeout", so `--retry-failed` can pick it up, not "other".
        let p = RetryPolicy::default();
        for attempt in 0..DEFAULT_MAX_RETRIES {
            assert!(matches!(classify(&TIMEOUT, attempt, None, &p, 0.5), Decision::Retry { .. }));
        }
        assert_eq!(
            classify(&TIMEOUT, DEFAULT_MAX_RETRIES, None, &p, 0.5),
            Decision::GiveUp { class: ErrorClass::Timeout }
        );
        let limited = Outcome::Status(429);
        assert_eq!(classify(&limited, 5, Some(secs(1)), &p, 0.5), Decision::GiveUp { class: ErrorClass::Http429 });
    }

    #[test]
    fn dns_failures_get_only_a_few_retries() {
        let p = RetryPolicy::default();
        let dns = Outcome::Transport(TransportKind::Dns);
        assert!(matches!(classify(&dns, DEFAULT_MAX_DNS_RETRIES - 1, None, &p, 0.5), Decision::Retry { .. }));
        assert_eq!(classify(&dns, DEFAULT_MAX_DNS_RETRIES, None, &p, 0.5), Decision::GiveUp { class: ErrorClass::Dns });
    }

    #[test]
    fn five_timeouts_in_a_row_park_the_host_for_30_seconds() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerPolicy::default());
        for _ in 0..DEFAULT_BREAKER_THRESHOLD - 1 {
            assert_eq!(b.record(&TIMEOUT, t0, t0), Availability::Up);
        }
        assert_eq!(b.record(&TIMEOUT, t0, t0), Availability::Parked { until: t0 + secs(30) });
        // The other in-flight request, sent before the parking, fails too: already counted.
        assert_eq!(b.record(&TIMEOUT, t0, t0 + secs(1)), Availability::Parked { until: t0 + secs(30) });
        assert_eq!(b.availability(t0 + secs(30)), Availability::Up);
    }

    #[test]
    fn an_answer_in_between_resets_the_count() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerPolicy::default());
        for i in 0..20 {
            let outcome = if i % 4 == 3 { Outcome::Status(500) } else { TIMEOUT };
            assert_eq!(b.record(&outcome, t0, t0), Availability::Up, "a host that answers is not down");
        }
    }

    #[test]
    fn parkings_grow_and_the_host_is_declared_dead_after_max_parks() {
        let mut t = Instant::now();
        let mut b = CircuitBreaker::new(BreakerPolicy::default());
        let mut parks = Vec::new();
        loop {
            // Failures of requests sent after the parking ended: a probe fails at once.
            match b.record(&TIMEOUT, t, t) {
                Availability::Up => {}
                Availability::Parked { until } => {
                    parks.push((until - t).as_secs());
                    t = until;
                }
                Availability::Dead => break,
            }
        }
        assert_eq!(parks, [30, 120, 480, 1800]);
        assert!(b.is_dead());
        assert_eq!(b.record(&Outcome::Status(200), t, t), Availability::Dead, "dead stays dead for the run");
    }

    #[test]
    fn a_success_after_parking_resets_the_breaker() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerPolicy::default());
        for _ in 0..DEFAULT_BREAKER_THRESHOLD {
            b.record(&TIMEOUT, t0, t0);
        }
        let after = t0 + secs(31);
        assert_eq!(b.record(&Outcome::Status(200), after, after), Availability::Up);
        assert_eq!((b.parks(), b.parked_until(), b.consecutive_failures()), (0, None, 0));
        // Probation is over: a single timeout no longer parks.
        assert_eq!(b.record(&TIMEOUT, after, after), Availability::Up);
    }
}
