//! The adaptive rate of one host: find the rate it allows in seconds, then hold just below it.
//!
//! # The rule, and why
//! **Slow start.** A host with no learned limit starts at `INITIAL_RATE_LIMIT`. Every answered
//! request that was *pressed* (sent when the token bucket allowed it, not late because the
//! in-flight cap or an empty queue held it back) multiplies the rate by `1 + SLOW_START_GAIN / r`
//! (for `r` ≥ 1 req/s): about ×1.42 a second, 1 → 10 req/s in 6.6 s, each step at 8 req/s 4%.
//! A host whose in-flight cap binds, or whose queue ran dry, does not climb on paper.
//!
//! **The first refusal ends slow start** (`recovery.rs`). The send log is what the server
//! counted, and three readings of it bound the limit from above: the rate of the last accepted
//! pressed request (a spacing limit lets nothing faster through), the highest rate at which a
//! leaky bucket fits the log (`leaky_fit.rs` replays nginx's `limit_req` arithmetic), and the
//! requests accepted in the second before the refused one (a sliding window lets exactly L
//! through). The lowest, at `HOLD_FRACTION`, is the *estimate*. The host is not held there at
//! once: a limiter with a burst has a full bucket when it refuses, and refuses again anything
//! above its rate. It restarts where the host must let the bucket drain if its burst is at most
//! `DRAIN_BURST` (and half the requests sent), no lower than a quarter of the estimate, and
//! climbs back, ×1.16 a second and slower near the estimate, no step above 10% near it. When the
//! log also fits a limit with *no* burst, that limit lies between the fastest accepted spacing
//! and the refused one: the restart is no lower than half the estimate (a short ramp fits any
//! rate with a burst), and if the estimate is below `CREEP_GAP` (90%) of just below the refused
//! rate, once at the estimate the climb creeps on toward that. The estimate is made again once
//! the answers in flight at the refusal have landed (it only rises).
//!
//! **A memory test tells the commonest pair apart** (`memory_test.rs`): a spacing limit near
//! the refused rate, or a slower bucket whose burst the ramp used up. After a pause that drains
//! such a bucket by three requests, three go, the last half the refused spacing behind the one
//! before. A bucket lets all through: the climb starts where it must drain and crosses its rate
//! at `PIN_PACE`, slowly enough that the second refusal pins it. A spacing limit refuses one and
//! is held a jitter clear of the widest gap it can have seen before the last it let through. The
//! test runs only where it can tell the two apart (`RateController::start_memory_test`).
//!
//! **A second refusal pins the rate.** A refused creep is held at `HOLD_FRACTION` of the fastest
//! rate accepted since the cut, but no higher than two holds below the refused rate (a window
//! limiter lets jittered sends a little above its limit through for a while), and no lower than
//! the estimate. Otherwise, if the fit is now bounded below (refused, drained, refused again),
//! the host is held at `HOLD_FRACTION` of the lowest rate it fits with a whole burst, one
//! `WHOLE_MARGIN` or more above the least it needs (nginx's `burst=` is a whole number; two
//! refusals close together leave a few islands where it is whole: the lowest holding a round
//! rate is taken, `likeliest_whole`, and a refusal there is the fit's to read again); if the
//! log still fits no burst, at the fastest rate accepted since the cut; if the log now needs a
//! burst, the first refusal's rule runs again. Refused again within `REPEAT_WINDOW` of a cut
//! from the fit: halve, then climb back to `HOLD_FRACTION` of the refused rate (a request
//! brought in close behind the one before by a delay spike is refused by a spacing limit at any
//! steady rate; halving for good held one at 45% of its limit).
//!
//! **Delay mode.** A server that queues instead of refusing (nginx without `nodelay`) answers
//! later and later: four accepted answers in a row, each half a spacing slower than the quickest
//! recent one, none quicker than the one before, the newest slower than the oldest, none sent
//! after a pause nor before the last cut (`SendLog::queueing`), hold the host at
//! `HOLD_FRACTION` of the rate they came back at. A queue draining after its cut says nothing. That
//! ends slow start and counts as a cut. A small queue (`burst=1`) refuses before four answers
//! show it: then the answers that came back slower and slower before the refusal are a fourth
//! reading of the estimate, the rate the server released them at (`served_while_queued`), and
//! no creep follows. A request still unanswered when a later one was refused was held, so the
//! fit reads it as let through.
//!
//! **Hold.** Rates stay put. After `PROBE_INTERVAL` without a refusal, one pressed success
//! raises the rate by `PROBE_STEP` (+5%), so a raised limit is found again. A refused probe goes
//! back to the rate before it and doubles the quiet time, up to `MAX_PROBE_INTERVAL`. A spacing
//! limit (the memory test's verdict) refused after `STEADY_ANSWERS` let through in a row was hit
//! by a delay spike on our side: its spacing widens by `ARRIVAL_JITTER`, with no other cut; so
//! once when refused sooner, and never is it held at a rate the fit allows only with a burst.
//! Most spikes are never refused: a late answer from such a host holds the next request back
//! by its lateness (`arrival.rs`, in `state.rs`'s gate).
//!
//! **Failures are not refusals.** Only a 429, or an error status with a `Retry-After`, speaks
//! about the rate (`retry.rs` honours the `Retry-After`). A 5xx without one, a 408 or a timeout
//! is a failure: it does not grow the rate, and cuts (halving) only when failures are 60% of the
//! last `FAILURE_WINDOW` answers; random 5xx at 15% essentially never do. A failure cut never
//! touches the remembered limit, and healthy answers regrow the rate to where it was.
//!
//! **Memory.** The lowest refused rate is remembered with how often and when it was seen
//! ([`KnownLimit`]); `state.rs` stores it with the held rate, which is never above the limit
//! (delay mode included). A host restored with a limit starts in hold at its learned rate and
//! probes soon (`CAREFUL_PROBE_INTERVAL`) if the limit was seen once or long ago; without one it
//! slow-starts from its learned rate, never below `INITIAL_RATE_LIMIT`.
//!
//! # Figures
//! What these rules hold each limiter at, in the simulation: the header of `rate_shapes_tests.rs`.
//!
//! This module owns the numbers only. It does not space requests (`token_bucket.rs`), decide
//! retries or park hosts (`retry.rs`), or serialise itself (`state.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::send_log::{Answer, SendLog};
use crate::host::outcome::Outcome;

pub use super::signal::{ChangeReason, RateChange, Signal};
use memory_test::MemoryTest;
pub use memory_test::{TestStep, MAX_TEST_PAUSE, TEST_MIN_HOLD};
use recovery::{Recovery, Spacing};
pub use recovery::{
    ARRIVAL_JITTER, CREEP_GAP, DRAIN_BURST, DRAIN_EVIDENCE, PIN_PACE, RECOVERY_GAIN, RECOVERY_MAX_STEP, REPEAT_WINDOW,
    STEADY_ANSWERS,
};

#[path = "memory_test.rs"]
mod memory_test;
#[path = "recovery.rs"]
mod recovery;

pub use super::token_bucket::MIN_RATE;

/// Requests per second a server starts at before anything is learned about it. Small museum
/// servers are common in GBIF, so the start is gentle; the engine raises it on success.
pub const DEFAULT_INITIAL_RATE_LIMIT: f64 = 1.0;

/// Default ceiling in requests per second. Even a large institutional server should not see more
/// than ten image downloads a second from one research crawl; operators can raise it.
pub const DEFAULT_MAX_RATE: f64 = 10.0;

/// Default number of requests in flight to one host. Two lets one slow 100 MB herbarium sheet
/// overlap with the next request without ever looking like a parallel scraper.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 2;

/// Slow-start growth per second at full pace (the natural log of the factor): e^0.35 ≈ ×1.42 a
/// second reaches the default ceiling of 10 req/s from 1 in about 6.6 s and 40 req/s in about
/// 10.5 s, inside the 15 s an operator-visible ramp should take, while a single step at 8 req/s
/// is 4.4%, fine enough for the refusal to land close to the limit.
pub const SLOW_START_GAIN: f64 = 0.35;

/// Fraction of the estimated limit a host is held at. Requests leave evenly spaced at this
/// fraction, so jitter of up to 3% of a spacing never makes two land in one limiter slot.
pub const HOLD_FRACTION: f64 = 0.97;

/// Cut applied when there is no evidence to estimate from, after a refusal soon after a cut the
/// fit could not explain, or on clustered failures: immediate relief for a server.
pub const DECREASE_FACTOR: f64 = 0.5;

/// Quiet time in hold before the first probe above the held rate. Ten minutes of a GBIF run is
/// thousands of requests on a fast host, and one refused probe in ten minutes is far under 1%.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Quiet time before probing a limit that was seen only once or long ago (see
/// `LIMIT_TRUST_AGE`): it may be an under-estimate, so it is checked within minutes.
pub const CAREFUL_PROBE_INTERVAL: Duration = Duration::from_secs(2 * 60);

/// Longest quiet time between probes; each refused probe doubles it up to here, so a host held
/// at its limit pays a refusal every four hours at most.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// Size of one probe above the held rate.
pub const PROBE_STEP: f64 = 1.05;

/// A remembered limit older than this is probed carefully again in a new run: servers get
/// upgraded and limits change, and a monthly GBIF job should not inherit last season's guess.
pub const LIMIT_TRUST_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// Answers looked at to tell clustered failures from random ones.
pub const FAILURE_WINDOW: usize = 40;

/// Failures among the last `FAILURE_WINDOW` answers that cut the rate: 60%. With failures at a
/// random 15% the chance of a window this bad is about 10^-10; at 50% it comes within a few
/// hundred answers, and at 100% (a broken server) after 24.
pub const FAILURE_CLUSTER: usize = 24;

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

/// Where a host is in finding its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Growing until the first refusal, a queue at the server, or the ceiling.
    SlowStart,
    /// Recovering toward the estimate after a refusal, or holding with a rare probe upwards.
    Hold,
}

/// The lowest rate at which the host refused, and how much to trust it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnownLimit {
    /// Requests per second at which a request was refused (the lowest such rate seen).
    pub rate: f64,
    /// Refusals that taught it, over all runs.
    pub refusals: u32,
    /// When it was last seen in this process, if it was.
    pub seen_at: Option<Instant>,
}

/// The learned rate of one host. Rates are in requests per second.
#[derive(Debug, Clone, PartialEq)]
pub struct RateController {
    config: RateConfig,
    rate: f64,
    phase: Phase,
    limit: Option<KnownLimit>,
    /// Most requests in flight; starts from the config and is restored with the host's state.
    max_in_flight: u32,
    /// When the rate was last cut. A refusal of a request sent before that reflects the old
    /// rate, which has already been paid for, so it does not cut again.
    last_cut: Option<Instant>,
    /// Whether the last cut came from the leaky-bucket fit: refused again soon after, the fit
    /// was wrong for this host and the rate is halved.
    fitted_cut: bool,
    /// Start of the current quiet period in hold (the last cut or probe); set at the first send.
    quiet_since: Option<Instant>,
    probe_interval: Duration,
    /// The rate before the last probe: where a refused probe goes back to.
    before_probe: Option<f64>,
    /// What was sent and how it was answered: the evidence for growth and for the estimate.
    sends: SendLog,
    /// Whether each of the last `FAILURE_WINDOW` answers was a failure.
    answers: VecDeque<bool>,
    recovery: Option<Recovery>,
    /// The memory test after a first refusal, while it runs (`memory_test.rs`), and whether one
    /// found a limit that remembers nothing (a spacing limit).
    memory: Option<MemoryTest>,
    spacing_known: Spacing,
    /// Set when a climb back crept past its estimate to the refused spacing without a second
    /// refusal: the most a later round or run is taught (see [`RateController::learned_rate`]).
    unconfirmed_above: Option<f64>,
    /// The rate before a failure cut, regrown to at slow-start pace by pressed successes.
    regrow_to: Option<f64>,
    /// A ceiling the host itself set (robots.txt `Crawl-delay`), which nothing learned
    /// overrides. Unlike the configured ceiling it may lie below `MIN_RATE`.
    ceiling: Option<f64>,
}

impl RateController {
    /// A host nothing is known about yet. Config values out of range are clamped: `config.rs`
    /// is where the user is told about bad values, not the engine.
    pub fn new(config: RateConfig) -> RateController {
        let initial = config.initial_rate;
        let in_flight = config.max_in_flight;
        RateController::from_learned(config, initial, None, in_flight, true)
    }

    /// A host with learned values (see `state.rs`). With a known limit it starts holding at
    /// `rate`, probing after `CAREFUL_PROBE_INTERVAL` unless the limit is `trusted`; without one
    /// it starts a slow start from `rate`, never below the configured initial rate. The rate is
    /// clamped to the configured ceiling, the in-flight cap to the configured one.
    pub fn from_learned(
        config: RateConfig,
        rate: f64,
        limit: Option<KnownLimit>,
        max_in_flight: u32,
        trusted: bool,
    ) -> RateController {
        let config = RateConfig {
            max_rate: if config.max_rate.is_finite() { config.max_rate.max(MIN_RATE) } else { DEFAULT_MAX_RATE },
            max_in_flight: config.max_in_flight.max(1),
            initial_rate: if config.initial_rate.is_finite() && config.initial_rate > 0.0 {
                config.initial_rate
            } else {
                DEFAULT_INITIAL_RATE_LIMIT
            },
        };
        let limit = limit.filter(|l| l.rate.is_finite() && l.rate > 0.0);
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { config.initial_rate };
        let (phase, rate) = match limit {
            Some(_) => (Phase::Hold, rate),
            None => (Phase::SlowStart, rate.max(config.initial_rate)),
        };
        RateController {
            rate: rate.clamp(MIN_RATE, config.max_rate),
            max_in_flight: max_in_flight.clamp(1, config.max_in_flight),
            config,
            phase,
            limit,
            last_cut: None,
            fitted_cut: false,
            quiet_since: None,
            probe_interval: if trusted { PROBE_INTERVAL } else { CAREFUL_PROBE_INTERVAL },
            before_probe: None,
            sends: SendLog::default(),
            answers: VecDeque::new(),
            recovery: None,
            memory: None,
            spacing_known: Spacing::Unknown,
            unconfirmed_above: None,
            regrow_to: None,
            ceiling: None,
        }
    }

    /// Current rate.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The rate to carry to the next round or run: the current rate, but while climbing back
    /// after a refusal, at most `HOLD_FRACTION` of the lower of the rate and the estimate. Above
    /// the estimate the climb creeps toward the refused spacing until a second refusal pins the
    /// rate, and an estimate that no second refusal has confirmed can sit at the limit itself: a
    /// run that ends mid-climb must not teach the next one a rate nothing has confirmed.
    pub fn learned_rate(&self) -> f64 {
        let cap = self.recovery.map(|r| r.to * HOLD_FRACTION).or(self.unconfirmed_above);
        cap.map_or(self.rate, |c| self.rate.min(c).max(MIN_RATE))
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The lowest rate at which the host refused, if it ever did.
    pub fn known_limit(&self) -> Option<KnownLimit> {
        self.limit
    }

    /// Most requests to have in flight to this host.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// The configuration this controller was built with (after clamping).
    pub fn config(&self) -> &RateConfig {
        &self.config
    }

    /// Quiet time in hold before the next probe.
    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// Sets the quiet time before the next probe (a restored host's, see `state.rs`).
    pub fn set_probe_interval(&mut self, interval: Duration) {
        self.probe_interval = interval;
    }

    /// A request leaves now; `lateness` is how long its token had been ready (see
    /// `TokenBucket::lateness`). Whether it counts as pressed: see `PRESSED_SLACK`.
    pub fn on_send(&mut self, now: Instant, lateness: Duration) {
        self.quiet_since.get_or_insert(now);
        let rate = self.memory_sent(now).unwrap_or(self.rate);
        self.sends.record(now, rate, lateness);
    }

    /// Feeds one finished request sent at `sent_at` (the instant given to `on_send`).
    /// `has_retry_after` is whether the answer carried a `Retry-After`. Returns the change of
    /// rate, if any, so the caller can pass it to the token bucket and the log.
    pub fn observe(
        &mut self,
        outcome: &Outcome,
        has_retry_after: bool,
        sent_at: Instant,
        now: Instant,
    ) -> Option<RateChange> {
        let signal = Signal::of(outcome, has_retry_after);
        let from = self.rate;
        let answer = match signal {
            Signal::Success => Answer::Accepted,
            Signal::Refusal => Answer::Refused,
            _ => Answer::Other,
        };
        let sent = self.sends.answer(sent_at, answer, now);
        let pressed = sent.is_some_and(|s| s.pressed);
        let sent_rate = sent.map(|s| s.rate);
        let refused_rate = sent_rate.unwrap_or(self.rate);
        if matches!(signal, Signal::Success | Signal::Failure) {
            self.record_answer(signal == Signal::Failure);
        }
        let let_through = (signal != Signal::Failure).then_some(signal != Signal::Refusal);
        let reason = match self.memory_answer(sent_at, let_through, refused_rate, now) {
            Some(reason) => reason,
            None => match signal {
                Signal::Success => {
                    self.settle();
                    self.on_queue(now).or_else(|| self.on_success(pressed, sent_rate, now))
                }
                Signal::Refusal => self.on_refusal(sent_at, refused_rate, now),
                Signal::Failure => self.on_failure(),
                Signal::Neutral => None,
            },
        };
        self.rate = self.bounded(self.rate);
        (self.rate != from).then(|| RateChange { from, to: self.rate, reason: reason.unwrap_or(ChangeReason::Refused) })
    }

    /// Another share of the same host was refused and now runs at `share_rate`: follow it down
    /// (never up) and hold, as if the refusal had been seen here.
    pub fn on_peer_refusal(&mut self, share_rate: f64, now: Instant) -> Option<RateChange> {
        let from = self.rate;
        self.cut_at(now);
        self.recovery = None;
        self.memory = None;
        self.regrow_to = None;
        self.before_probe = None;
        if share_rate.is_finite() && share_rate > 0.0 {
            self.rate = self.bounded(self.rate.min(share_rate).max(MIN_RATE));
        }
        (self.rate != from).then_some(RateChange { from, to: self.rate, reason: ChangeReason::PeerShare })
    }

    /// Holds the host at `ceiling` requests per second at most from now on, whatever it learns
    /// (a robots.txt `Crawl-delay` of d seconds is a ceiling of 1/d). A lower ceiling replaces a
    /// higher one, never the other way round. Returns the change of rate, if any.
    pub fn cap(&mut self, ceiling: f64) -> Option<RateChange> {
        if !(ceiling.is_finite() && ceiling > 0.0) {
            return None;
        }
        let ceiling = self.ceiling.map_or(ceiling, |c| c.min(ceiling));
        self.ceiling = Some(ceiling);
        // Growth and probes stop at the configured ceiling; it may not go below MIN_RATE, the
        // host's ceiling is applied on top by `bounded`.
        self.config.max_rate = self.config.max_rate.min(ceiling).max(MIN_RATE);
        if let Some(target) = self.regrow_to {
            self.regrow_to = Some(target.min(ceiling));
        }
        let from = self.rate;
        self.rate = self.bounded(self.rate);
        (self.rate != from).then_some(RateChange { from, to: self.rate, reason: ChangeReason::CrawlDelay })
    }

    /// The ceiling set by the host, if any (see [`RateController::cap`]).
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }

    fn bounded(&self, rate: f64) -> f64 {
        self.ceiling.map_or(rate, |c| rate.min(c))
    }

    fn record_answer(&mut self, failed: bool) {
        self.answers.push_back(failed);
        if self.answers.len() > FAILURE_WINDOW {
            self.answers.pop_front();
        }
    }

    fn on_success(&mut self, pressed: bool, sent_rate: Option<f64>, now: Instant) -> Option<ChangeReason> {
        if let Some((r, sent)) = self.recovery.as_mut().zip(sent_rate.filter(|_| pressed)) {
            r.accepted = Some(r.accepted.map_or(sent, |a| a.max(sent)));
        }
        if !pressed || self.rate >= self.config.max_rate {
            return None;
        }
        // The in-flight cap already bounds the host: a higher rate would be on paper only.
        if self.sends.latency().is_some_and(|l| self.grown(SLOW_START_GAIN) * l > f64::from(self.max_in_flight)) {
            return None;
        }
        if let Some(target) = self.regrow_to {
            self.rate = self.grown(SLOW_START_GAIN).min(target);
            if self.rate >= target {
                self.regrow_to = None;
            }
            return Some(ChangeReason::Regrow);
        }
        if let Some(r) = self.recovery {
            return self.climb(r, now);
        }
        match self.phase {
            Phase::SlowStart => {
                self.rate = self.grown(SLOW_START_GAIN);
                Some(ChangeReason::SlowStart)
            }
            Phase::Hold => {
                let quiet = self.quiet_since.is_some_and(|q| now.saturating_duration_since(q) >= self.probe_interval);
                if !quiet {
                    return None;
                }
                self.quiet_since = Some(now);
                self.before_probe = Some(self.rate);
                self.rate = (self.rate * PROBE_STEP).min(self.config.max_rate);
                Some(ChangeReason::Probe)
            }
        }
    }

    /// The rate one growth step up at `gain` per second (see `SLOW_START_GAIN`).
    fn grown(&self, gain: f64) -> f64 {
        (self.rate * (1.0 + gain / self.rate.max(1.0))).min(self.config.max_rate)
    }

    fn on_failure(&mut self) -> Option<ChangeReason> {
        let failures = self.answers.iter().filter(|f| **f).count();
        if self.answers.len() < FAILURE_WINDOW || failures < FAILURE_CLUSTER {
            return None;
        }
        self.answers.clear();
        self.regrow_to = Some(self.regrow_to.unwrap_or(0.0).max(self.rate));
        self.rate = (self.rate * DECREASE_FACTOR).max(MIN_RATE);
        Some(ChangeReason::Failures)
    }
}

#[cfg(test)]
#[path = "rate_tests.rs"]
mod tests;
