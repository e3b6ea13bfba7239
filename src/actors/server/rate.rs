//! The adaptive rate of one host: additive increase, multiplicative decrease, with memory.
//!
//! A host starts at a gentle rate. Every `SUCCESSES_PER_STEP` answers in a row raise it by
//! `INCREASE_STEP`, up to a ceiling. A 429 or 503 halves it and records the rate at which the
//! refusal happened as a *known limit*; from then on the rate never goes above
//! `KNOWN_LIMIT_SAFETY` times the lowest known limit. Plain AIMD would probe past the limit again
//! and again (a 429 every few minutes, forever); holding just below it means a host that allows
//! 2 req/s is served at about 1.9 req/s after at most one refusal. The in-flight cap lives here
//! too, as the other half of "how hard we press on this host".
//!
//! This module owns the numbers only. It does not space requests (`token_bucket.rs`), decide
//! retries or park hosts (`retry.rs`), or serialise itself (`state.rs`).

use std::time::Instant;

use crate::config::DEFAULT_INITIAL_RATE_LIMIT;
use crate::fetch::outcome::Outcome;

/// Slowest rate a host is ever cut to, one request every 30 s. No server can call that load, and
/// a host with a thousand URLs still finishes within a working day.
pub const MIN_RATE: f64 = 1.0 / 30.0;

/// Default ceiling in requests per second. Even a large institutional server should not see more
/// than ten image downloads a second from one research crawl; operators can raise it.
pub const DEFAULT_MAX_RATE: f64 = 10.0;

/// Default number of requests in flight to one host. Two lets one slow 100 MB herbarium sheet
/// overlap with the next request without ever looking like a parallel scraper.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 2;

/// Answers in a row needed before each increase. Twenty is enough evidence at the current rate
/// that one refusal or error is not being ignored, and still climbs from 1 to 2 req/s in about
/// 2.5 minutes.
pub const SUCCESSES_PER_STEP: u32 = 20;

/// Additive increase in requests per second. Small, so that the first refusal happens at most
/// 0.1 req/s above a host's true limit and the remembered limit is accurate.
pub const INCREASE_STEP: f64 = 0.1;

/// Multiplicative decrease on a refusal: halving is the classic AIMD cut and gives a loaded
/// server immediate relief.
pub const DECREASE_FACTOR: f64 = 0.5;

/// Fraction of the lowest known limit the rate may climb back to. With steps of 0.1 a refusal is
/// seen at most one step above the true limit, so 0.9x of it sits below the true limit for any
/// limit of 1 req/s or more, without giving away much throughput.
pub const KNOWN_LIMIT_SAFETY: f64 = 0.9;

/// Per-host rate settings that come from configuration rather than from the host.
#[derive(Debug, Clone, PartialEq)]
pub struct RateConfig {
    /// Requests per second before anything is learned (`INITIAL_RATE_LIMIT`).
    pub initial_rate: f64,
    /// Highest rate a host is ever raised to.
    pub max_rate: f64,
    /// Most requests in flight to the host at once.
    pub max_in_flight: u32,
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            initial_rate: DEFAULT_INITIAL_RATE_LIMIT,
            max_rate: DEFAULT_MAX_RATE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The learned rate of one host. Rates are in requests per second.
#[derive(Debug, Clone, PartialEq)]
pub struct RateController {
    config: RateConfig,
    rate: f64,
    /// Lowest rate at which the host has refused (429/503), if it ever has.
    known_limit: Option<f64>,
    /// Answers in a row since the last increase, refusal or error.
    streak: u32,
    /// Most requests in flight; starts from the config and is restored with the host's state.
    max_in_flight: u32,
    /// When the rate was last cut. A refusal of a request sent before that reflects the old
    /// rate, which has already been paid for, so it does not cut again.
    last_cut: Option<Instant>,
}

impl RateController {
    /// A host nothing is known about yet. Config values out of range are clamped: `config.rs`
    /// is where the user is told about bad values, not the engine.
    pub fn new(config: RateConfig) -> RateController {
        let initial = config.initial_rate;
        let in_flight = config.max_in_flight;
        RateController::from_learned(config, initial, None, 0, in_flight)
    }

    /// A host with learned values (see `state.rs`). The rate is clamped to the ceiling implied by
    /// `config` and `known_limit`, the in-flight cap to the configured one.
    pub fn from_learned(
        config: RateConfig,
        rate: f64,
        known_limit: Option<f64>,
        streak: u32,
        max_in_flight: u32,
    ) -> RateController {
        let config = RateConfig {
            max_rate: if config.max_rate.is_finite() { config.max_rate.max(MIN_RATE) } else { DEFAULT_MAX_RATE },
            max_in_flight: config.max_in_flight.max(1),
            ..config
        };
        let known_limit = known_limit.filter(|l| l.is_finite() && *l > 0.0);
        let rate =
            [rate, config.initial_rate].into_iter().find(|r| r.is_finite()).unwrap_or(DEFAULT_INITIAL_RATE_LIMIT);
        let mut controller = RateController {
            max_in_flight: max_in_flight.clamp(1, config.max_in_flight),
            config,
            rate,
            known_limit,
            streak,
            last_cut: None,
        };
        controller.rate = controller.rate.clamp(MIN_RATE, controller.ceiling());
        controller
    }

    /// Current rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Lowest rate at which the host refused, if it ever did.
    pub fn known_limit(&self) -> Option<f64> {
        self.known_limit
    }

    /// Highest rate the controller will climb to: the configured maximum, or the safety
    /// fraction of the known limit if that is lower, never below `MIN_RATE`.
    pub fn ceiling(&self) -> f64 {
        let learned = self.known_limit.map_or(f64::INFINITY, |l| l * KNOWN_LIMIT_SAFETY);
        self.config.max_rate.min(learned).max(MIN_RATE)
    }

    /// Answers in a row since the last change.
    pub fn success_streak(&self) -> u32 {
        self.streak
    }

    /// Most requests to have in flight to this host.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// The configuration this controller was built with (after clamping).
    pub fn config(&self) -> &RateConfig {
        &self.config
    }

    /// Feeds one finished request. `sent_at` is when it was issued. Returns the new rate if it
    /// changed, so the caller can pass it to the token bucket.
    ///
    /// 429/503 are refusals. Any other status below 500 (404 included) is an answer the server
    /// handled fine and counts toward the next increase, except 408. Other 5xx and transport
    /// failures reset the streak without cutting: a struggling host is not probed faster, but
    /// only an explicit refusal is taken as a statement about its limit.
    pub fn observe(&mut self, outcome: &Outcome, sent_at: Instant, now: Instant) -> Option<f64> {
        match *outcome {
            _ if outcome.is_refusal() => self.on_refusal(sent_at, now),
            Outcome::Status(code) if code < 500 && code != 408 => self.on_success(),
            _ => {
                self.streak = 0;
                None
            }
        }
    }

    /// One more answer in a row; raises the rate by a step when the streak is long enough.
    pub fn on_success(&mut self) -> Option<f64> {
        self.streak += 1;
        if self.streak < SUCCESSES_PER_STEP {
            return None;
        }
        self.streak = 0;
        let raised = (self.rate + INCREASE_STEP).min(self.ceiling());
        (raised > self.rate).then(|| {
            self.rate = raised;
            raised
        })
    }

    /// The host refused a request sent at `sent_at`: halve the rate and remember the limit.
    /// Ignored (returns `None`) if the request was sent before the last cut.
    pub fn on_refusal(&mut self, sent_at: Instant, now: Instant) -> Option<f64> {
        if self.last_cut.is_some_and(|cut| sent_at < cut) {
            return None;
        }
        self.known_limit = Some(self.known_limit.map_or(self.rate, |l| l.min(self.rate)));
        self.rate = (self.rate * DECREASE_FACTOR).max(MIN_RATE);
        self.streak = 0;
        self.last_cut = Some(now);
        Some(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::super::token_bucket::{TokenBucket, DEFAULT_BURST};
    use super::*;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// A host that refuses (429) any request arriving when more than `limit` requests, this one
    /// included, arrived in the last second. Requests take `latency` to answer.
    struct SimHost {
        limit: usize,
        arrivals: VecDeque<Instant>,
    }

    impl SimHost {
        fn arrive(&mut self, t: Instant) -> Outcome {
            while self.arrivals.front().is_some_and(|&a| a + Duration::from_secs(1) <= t) {
                self.arrivals.pop_front();
            }
            self.arrivals.push_back(t);
            Outcome::Status(if self.arrivals.len() > self.limit { 429 } else { 200 })
        }
    }

    struct SimResult {
        refusals: u32,
        /// Seconds into the run of the first refusal.
        first_refusal: Option<f64>,
        /// Successful requests per second over the second half of the run.
        late_rate: f64,
        final_rate: f64,
        known_limit: Option<f64>,
    }

    /// Drives a token bucket and a controller against `SimHost` in virtual time, with a queue
    /// that never empties, for `secs` seconds.
    fn simulate(limit: usize, config: RateConfig, secs: u64) -> SimResult {
        let latency = Duration::from_millis(150);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let half = t0 + Duration::from_secs(secs / 2);
        let mut host = SimHost { limit, arrivals: VecDeque::new() };
        let mut rate = RateController::new(config);
        let mut bucket = TokenBucket::new(rate.rate(), DEFAULT_BURST, t0);
        // (sent_at, answered_at, outcome), answered in order since latency is constant.
        let mut in_flight: VecDeque<(Instant, Instant, Outcome)> = VecDeque::new();
        let (mut refusals, mut late_ok, mut first_refusal) = (0u32, 0u32, None);
        let mut t = t0;
        while t < end {
            while let Some(&(sent, done, outcome)) = in_flight.front().filter(|r| r.1 <= t) {
                in_flight.pop_front();
                if outcome.is_refusal() {
                    refusals += 1;
                    first_refusal = first_refusal.or(Some((sent - t0).as_secs_f64()));
                } else if sent >= half {
                    late_ok += 1;
                }
                if let Some(new_rate) = rate.observe(&outcome, sent, done) {
                    bucket.set_rate(new_rate, done);
                }
            }
            let mut next = in_flight.front().map(|r| r.1);
            if in_flight.len() < rate.max_in_flight() as usize {
                match bucket.try_take(t) {
                    Ok(()) => {
                        in_flight.push_back((t, t + latency, host.arrive(t)));
                        continue;
                    }
                    Err(wait) => next = Some(next.map_or(t + wait, |n| n.min(t + wait))),
                }
            }
            t = next.expect("either a request is in flight or the bucket names a wait");
        }
        SimResult {
            refusals,
            first_refusal,
            late_rate: f64::from(late_ok) / (secs / 2) as f64,
            final_rate: rate.rate(),
            known_limit: rate.known_limit(),
        }
    }

    #[test]
    fn host_limited_to_2_per_second_is_served_near_2_with_at_most_one_429() {
        let config = RateConfig { initial_rate: 1.0, max_rate: 10.0, max_in_flight: 2 };
        let r = simulate(2, config, 600);
        println!(
            "2 req/s host, 600 s: refusals={} (first at {:.1?} s) achieved over last 300 s={:.3} req/s \
             final rate={:.3} known limit={:?}",
            r.refusals, r.first_refusal, r.late_rate, r.final_rate, r.known_limit
        );
        assert!(r.refusals <= 1, "the operator saw {} 429s", r.refusals);
        assert!(r.late_rate >= 1.6, "researcher got only {:.3} req/s", r.late_rate);
        assert!(r.final_rate < 2.0, "the rate must hold below the host's limit, is {}", r.final_rate);
    }

    #[test]
    fn unlimited_host_climbs_to_the_ceiling_and_no_further() {
        let config = RateConfig { initial_rate: 1.0, max_rate: 4.0, max_in_flight: 2 };
        let r = simulate(1000, config, 600);
        println!("unlimited host, ceiling 4: achieved over last 300 s={:.3} req/s", r.late_rate);
        assert_eq!(r.refusals, 0);
        assert_eq!(r.final_rate, 4.0);
        assert!(r.late_rate <= 4.0 + 1.0 / 300.0 && r.late_rate >= 3.9, "{}", r.late_rate);
    }

    #[test]
    fn refusal_halves_and_later_increases_stop_below_the_known_limit() {
        let t0 = Instant::now();
        let mut rate = RateController::from_learned(RateConfig::default(), 3.0, None, 0, 2);
        assert_eq!(rate.on_refusal(t0, t0), Some(1.5));
        assert_eq!(rate.known_limit(), Some(3.0));
        for _ in 0..SUCCESSES_PER_STEP * 100 {
            rate.on_success();
        }
        assert!((rate.rate() - 2.7).abs() < 1e-9, "holds at 0.9 x 3.0, got {}", rate.rate());
    }

    #[test]
    fn refusals_of_requests_sent_before_the_cut_do_not_cut_again() {
        // Two requests in flight at 2 req/s both come back 429: the host was overloaded once,
        // and halving twice (to a quarter) would punish it for a single episode.
        let t0 = Instant::now();
        let mut rate = RateController::from_learned(RateConfig::default(), 2.0, None, 0, 2);
        let later = t0 + Duration::from_millis(100);
        assert_eq!(rate.on_refusal(t0, later), Some(1.0));
        assert_eq!(rate.on_refusal(t0 + Duration::from_millis(50), later), None);
        assert_eq!(rate.rate(), 1.0);
        // A request sent after the cut that is refused again is news: cut again.
        assert_eq!(rate.on_refusal(later, later + Duration::from_secs(1)), Some(0.5));
        assert_eq!(rate.known_limit(), Some(1.0), "the lowest limit is kept");
    }

    #[test]
    fn repeated_refusals_stop_at_the_slowest_rate() {
        let t0 = Instant::now();
        let mut rate = RateController::new(RateConfig::default());
        for i in 0..20 {
            let t = t0 + Duration::from_secs(i);
            rate.on_refusal(t, t);
        }
        assert_eq!(rate.rate(), MIN_RATE);
    }

    #[test]
    fn errors_and_404s_affect_the_streak_as_documented() {
        let t0 = Instant::now();
        let mut rate = RateController::new(RateConfig::default());
        for _ in 0..SUCCESSES_PER_STEP - 1 {
            rate.observe(&Outcome::Status(404), t0, t0);
        }
        // A 500 just before the step: a struggling server is not pushed harder.
        assert_eq!(rate.observe(&Outcome::Status(500), t0, t0), None);
        assert_eq!(rate.success_streak(), 0);
        for _ in 0..SUCCESSES_PER_STEP - 1 {
            assert_eq!(rate.observe(&Outcome::Status(200), t0, t0), None);
        }
        assert_eq!(rate.observe(&Outcome::Status(404), t0, t0), Some(1.1), "a 404 is a healthy answer");
    }

    #[test]
    fn restored_rate_is_clamped_to_config_and_known_limit() {
        let config = RateConfig { max_rate: 5.0, max_in_flight: 3, ..RateConfig::default() };
        let rate = RateController::from_learned(config.clone(), 8.0, None, 0, 10);
        assert_eq!(rate.rate(), 5.0);
        assert_eq!(rate.max_in_flight(), 3);
        let rate = RateController::from_learned(config, 4.0, Some(2.0), 0, 2);
        assert!((rate.rate() - 1.8).abs() < 1e-9, "{}", rate.rate());
    }
}
