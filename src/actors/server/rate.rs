//! The adaptive rate of one host: find the rate it allows in seconds, then hold just below it.
//!
//! # The rule, and why
//! A host moves through two phases.
//!
//! **Slow start.** A host with no learned limit starts at `INITIAL_RATE_LIMIT`. Every answered
//! request that was *pressed* (sent when the token bucket allowed it, not late because the
//! in-flight cap or an empty queue held it back) multiplies the rate by `1 + SLOW_START_GAIN / r`
//! (for `r` ≥ 1 req/s). At `r` requests a second that is a growth of `SLOW_START_GAIN` per second
//! in time (about ×1.42 a second), so 1 → 10 req/s takes about 6.6 s and 1 → 40 about 10.5 s,
//! while each single step near a limit of 8 is only 4%. Growth per request rather than per
//! second means the steps are finest where a host answers fastest. A host whose in-flight cap
//! binds (rate × its smoothed latency above the cap), or whose requests leave late because the
//! queue ran dry, does not climb on paper.
//!
//! **The first refusal ends slow start.** By then the rate has overshot the limit (a limiter
//! counts over a window, which lags the ramp), so "halve" or "the rate before the refusal" are
//! both wrong by tens of percent. Instead the controller reads its own send history, which is
//! exactly what the server counted: the requests the host *accepted* in the second before the
//! refused one (a sliding-window limit of L lets exactly L through), and the rate of the last
//! accepted pressed request (a spacing limit lets nothing faster through). The lower of the two
//! is the estimate; the host is held at `HOLD_FRACTION` of it, never above `HOLD_FRACTION` of
//! the refused rate. For the first window after the cut the host is sent no faster than it was
//! a window before the refusal: the limiter still counts the ramp, whose oldest requests leave
//! its window at that slower pace. After that window, once the answers that were in flight at
//! the refusal have landed, the estimate is made again with them (*settled*) and held. With
//! fewer than two accepted requests there is no evidence, and the rate is halved. Simulated
//! against strict sliding-window limiters of 0.5 to 50 req/s (what rate limits are usually
//! stated as), this holds at 97% of the limit after exactly one refusal. Against a limiter that
//! refuses any two requests closer than 1/L (nginx `limit_req` with no burst) it also pays one
//! refusal but holds lower, at 73–97%: the count of the last second still contains the slower
//! ramp. Probing (below) wins the rest back over hours.
//!
//! **Hold.** Rates stay put. After `PROBE_INTERVAL` without a refusal, one pressed success
//! raises the rate by `PROBE_STEP` (+5%), so a host whose limit was raised is found again. A
//! refusal while holding (usually a probe that went too far) goes back through the estimate and
//! doubles the quiet time before the next probe, up to `MAX_PROBE_INTERVAL`: a long run pays a
//! refusal every few hours at most. A second refusal within `REPEAT_WINDOW` of a cut means the
//! estimate was wrong or the server is struggling, and the rate is halved.
//!
//! **Failures are not refusals.** Only a 429, or an error status with a `Retry-After`, speaks
//! about the rate. A 5xx without `Retry-After`, a 408 or a timeout is a failure: it does not
//! grow the rate, and it cuts (halving) only when failures are 60% of the last
//! `FAILURE_WINDOW` answers. Random 5xx at 15% essentially never reach that; at 50% they do
//! within a few hundred answers. A failure cut is relief, not knowledge: it never touches the
//! remembered limit or ends slow start, and healthy answers regrow the rate at slow-start pace
//! to where it was.
//!
//! **Memory.** The lowest refused rate is remembered with how often and when it was seen
//! ([`KnownLimit`]); `state.rs` stores it. A host restored with a limit starts in hold at its
//! learned rate, and probes soon (`CAREFUL_PROBE_INTERVAL`) if the limit was seen once or long
//! ago. A host restored without one starts a new slow start from its learned rate, but never
//! below `INITIAL_RATE_LIMIT`: a low rate learned from failures alone is not carried over.
//!
//! This module owns the numbers only. It does not space requests (`token_bucket.rs`), decide
//! retries or park hosts (`retry.rs`), or serialise itself (`state.rs`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::send_log::{Answer, SendLog, ESTIMATE_WINDOW};
use crate::config::DEFAULT_INITIAL_RATE_LIMIT;
use crate::fetch::outcome::Outcome;

pub use super::signal::{ChangeReason, RateChange, Signal};

/// Slowest rate a host is ever cut to, one request every 30 s. No server can call that load, and
/// a host with a thousand URLs still finishes within a working day.
pub const MIN_RATE: f64 = 1.0 / 30.0;

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

/// Cut applied when there is no evidence to estimate from, after a refusal soon after a cut, or
/// on clustered failures: the classic multiplicative decrease, immediate relief for a server.
pub const DECREASE_FACTOR: f64 = 0.5;

/// A refusal this soon after the last cut means the estimate did not hold: halve.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

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
    /// Growing until the first refusal or the ceiling.
    SlowStart,
    /// Holding, with a rare probe upwards.
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
    /// Start of the current quiet period in hold (the last cut or probe); set at the first send.
    quiet_since: Option<Instant>,
    probe_interval: Duration,
    /// What was sent and how it was answered: the evidence for growth and for the estimate.
    sends: SendLog,
    /// Whether each of the last `FAILURE_WINDOW` answers was a failure.
    answers: VecDeque<bool>,
    /// A refusal whose estimate waits for answers still in flight: (refused send, refused rate).
    pending: Option<(Instant, f64)>,
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
            quiet_since: None,
            probe_interval: if trusted { PROBE_INTERVAL } else { CAREFUL_PROBE_INTERVAL },
            sends: SendLog::default(),
            answers: VecDeque::new(),
            pending: None,
            regrow_to: None,
            ceiling: None,
        }
    }

    /// Current rate.
    pub fn rate(&self) -> f64 {
        self.rate
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
        self.sends.record(now, self.rate, lateness);
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
        let mut reason = None;
        let answer = match signal {
            Signal::Success => Answer::Accepted,
            Signal::Refusal => Answer::Refused,
            _ => Answer::Other,
        };
        let sent = self.sends.answer(sent_at, answer, now);
        let pressed = sent.is_some_and(|s| s.pressed);
        let sent_rate = sent.map(|s| s.rate);
        match signal {
            Signal::Success => {
                self.record_answer(false);
                reason = self.on_success(pressed, now);
            }
            Signal::Refusal => reason = self.on_refusal(sent_at, sent_rate.unwrap_or(self.rate), now),
            Signal::Failure => {
                self.record_answer(true);
                reason = self.on_failure();
            }
            Signal::Neutral => {}
        }
        reason = self.settle(now).or(reason);
        self.rate = self.bounded(self.rate);
        (self.rate != from).then(|| RateChange { from, to: self.rate, reason: reason.unwrap_or(ChangeReason::Refused) })
    }

    /// Another share of the same host was refused and now runs at `share_rate`: follow it down
    /// (never up) and hold, as if the refusal had been seen here.
    pub fn on_peer_refusal(&mut self, share_rate: f64, now: Instant) -> Option<RateChange> {
        let from = self.rate;
        self.phase = Phase::Hold;
        self.last_cut = Some(now);
        self.quiet_since = Some(now);
        self.pending = None;
        self.regrow_to = None;
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

    fn on_success(&mut self, pressed: bool, now: Instant) -> Option<ChangeReason> {
        if !pressed || self.rate >= self.config.max_rate {
            return None;
        }
        // The in-flight cap already bounds the host: a higher rate would be on paper only.
        if self.sends.latency().is_some_and(|l| self.grown() * l > f64::from(self.max_in_flight)) {
            return None;
        }
        if let Some(target) = self.regrow_to {
            self.rate = self.grown().min(target);
            if self.rate >= target {
                self.regrow_to = None;
            }
            return Some(ChangeReason::Regrow);
        }
        match self.phase {
            Phase::SlowStart => {
                self.rate = self.grown();
                Some(ChangeReason::SlowStart)
            }
            Phase::Hold => {
                let quiet = self.quiet_since.is_some_and(|q| now.saturating_duration_since(q) >= self.probe_interval);
                if !quiet {
                    return None;
                }
                self.quiet_since = Some(now);
                self.rate = (self.rate * PROBE_STEP).min(self.config.max_rate);
                Some(ChangeReason::Probe)
            }
        }
    }

    /// The rate one slow-start step up.
    fn grown(&self) -> f64 {
        (self.rate * (1.0 + SLOW_START_GAIN / self.rate.max(1.0))).min(self.config.max_rate)
    }

    fn on_refusal(&mut self, sent_at: Instant, refused_rate: f64, now: Instant) -> Option<ChangeReason> {
        if self.last_cut.is_some_and(|cut| sent_at < cut) {
            return None;
        }
        self.limit = Some(match self.limit {
            Some(l) => KnownLimit { rate: l.rate.min(refused_rate), refusals: l.refusals + 1, seen_at: Some(now) },
            None => KnownLimit { rate: refused_rate, refusals: 1, seen_at: Some(now) },
        });
        let repeated = self.last_cut.is_some_and(|cut| now.saturating_duration_since(cut) < REPEAT_WINDOW);
        if self.phase == Phase::Hold && !repeated {
            self.probe_interval = (self.probe_interval * 2).min(MAX_PROBE_INTERVAL);
        }
        self.phase = Phase::Hold;
        self.last_cut = Some(now);
        self.quiet_since = Some(now);
        self.pending = None;
        self.regrow_to = None;
        if repeated {
            self.rate = (self.rate * DECREASE_FACTOR).max(MIN_RATE);
            return Some(ChangeReason::Refused);
        }
        // For one window the host is sent what left its window a window ago (the ramp was
        // slower then), so the limiter's count does not creep up while the old sends drain.
        let then = self.sends.rate_at(sent_at.checked_sub(ESTIMATE_WINDOW)).unwrap_or(self.rate);
        self.rate = self.estimate(sent_at, refused_rate).min(then.max(MIN_RATE));
        self.pending = Some((sent_at, refused_rate));
        Some(ChangeReason::Refused)
    }

    /// A window after the cut, once every send before the refused one has its answer, the
    /// estimate is made again with all of them and becomes the held rate.
    fn settle(&mut self, now: Instant) -> Option<ChangeReason> {
        let (sent_at, refused_rate) = self.pending?;
        let drained = self.last_cut.is_some_and(|cut| now.saturating_duration_since(cut) >= ESTIMATE_WINDOW);
        if !drained || self.sends.unanswered_before(sent_at) {
            return None;
        }
        self.pending = None;
        let settled = self.estimate(sent_at, refused_rate);
        (settled > self.rate).then(|| {
            self.rate = settled;
            ChangeReason::Settled
        })
    }

    /// The rate to hold at after a refusal of a request sent at `refused_at` at `refused_rate`
    /// (see the module header).
    fn estimate(&self, refused_at: Instant, refused_rate: f64) -> f64 {
        let accepted = self.sends.accepted_before(refused_at, refused_rate);
        let held = accepted.unwrap_or(refused_rate * DECREASE_FACTOR).min(refused_rate) * HOLD_FRACTION;
        held.clamp(MIN_RATE, self.config.max_rate)
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
