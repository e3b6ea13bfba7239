//! One host's politeness state: live ([`LiveHost`]) and serialisable ([`HostState`]).
//!
//! `LiveHost` keeps the rate controller, token bucket, circuit breaker and any host-wide pause
//! together and in step, and answers "may I send now?". `HostState` is the same knowledge as a
//! plain serde struct: it moves with the host when a rank hands it over and is written back to
//! the servers table between runs. `Instant` is meaningless outside the process, so points in time
//! are stored as Unix milliseconds and converted with the `(Instant, SystemTime)` pair the caller
//! passes in. This module does not hold the URL queue, count in-flight requests or send anything.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::arrival::ArrivalGuard;
use super::rate::{KnownLimit, RateChange, RateConfig, RateController, TestStep, LIMIT_TRUST_AGE, MAX_PROBE_INTERVAL};
use super::retry::{Availability, BreakerPolicy, CircuitBreaker};
use super::token_bucket::{TokenBucket, DEFAULT_BURST};
use crate::host::outcome::Outcome;
use crate::host::retry::MAX_RETRY_AFTER;

/// Longest wait read back from a stored state. Nothing this crate stores lies further ahead:
/// `Retry-After` is capped at one hour and the longest default parking is 30 minutes.
const MAX_STORED_WAIT: Duration = MAX_RETRY_AFTER;

/// Rates are stored rounded to a millionth of a request per second: far below anything a server
/// notices, and it keeps the servers table readable (1.89, not 1.8900000000000001) and the JSON
/// round trip exact.
const RATE_RESOLUTION: f64 = 1e6;

/// What one host has taught us, in a form that survives a process.
///
/// Fields added after the first release carry `#[serde(default)]`, so a servers table written by
/// an earlier version still reads (and fields it no longer knows, like `success_streak`, are
/// ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// Requests per second the host was being served at.
    pub rate: f64,
    /// Lowest rate at which the host refused (a 429, or an error status with `Retry-After`).
    pub known_limit: Option<f64>,
    /// Refusals that taught `known_limit`, over all runs. A limit seen once is probed again soon.
    #[serde(default)]
    pub limit_refusals: u32,
    /// Unix time in ms the limit was last seen. An old limit is probed again soon.
    #[serde(default)]
    pub limit_seen_unix_ms: Option<u64>,
    /// Seconds without a refusal before the next probe above the held rate (it doubles with
    /// each refused probe); absent if never set.
    #[serde(default)]
    pub probe_interval_secs: Option<f64>,
    /// Most requests in flight to the host at once.
    pub max_in_flight: u32,
    /// Unix time in ms before which nothing may be sent (the server's `Retry-After`); absent if
    /// no such pause is pending.
    pub backoff_until_unix_ms: Option<u64>,
    /// Connect/DNS/timeout failures in a row not yet acted upon.
    pub consecutive_failures: u32,
    /// Parkings since the host last answered 2xx.
    pub parks: u32,
    /// End of the last parking (Unix ms) while the host has not answered since; may be past.
    pub parked_until_unix_ms: Option<u64>,
    /// Given up for the run that wrote this state.
    pub dead: bool,
    /// When the state was saved (Unix ms). A state saved by the same run (at the end of an
    /// earlier round) keeps its outage; one from an earlier run does not (see [`HostState::for_run`]).
    #[serde(default)]
    pub saved_unix_ms: Option<u64>,
    /// The memory test found that the host's limit judges each request only by the gap since
    /// the last one it let through (nginx `limit_req` without burst; `memory_test.rs`). Restored
    /// with its known limit: a late answer holds the next request back (`arrival.rs`) from the
    /// first request, until a refusal puts the verdict in doubt (`Spacing::Restored`).
    #[serde(default)]
    pub forgets: bool,
}

impl HostState {
    /// The state a new run starts from: what was learned about the rate is kept (and a pending
    /// `Retry-After` still counts, in wall-clock time), but an outage seen by an earlier run is
    /// forgotten, so a host that was down yesterday is tried again today.
    pub fn for_new_run(self) -> HostState {
        HostState { consecutive_failures: 0, parks: 0, parked_until_unix_ms: None, dead: false, ..self }
    }

    /// The state a round of the run that started at `run_started` starts from: as saved when an
    /// earlier round of that run saved it (parking and death move with the host from round to
    /// round, whichever rank owns it next), else [`HostState::for_new_run`].
    pub fn for_run(self, run_started: SystemTime) -> HostState {
        let started_ms = run_started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        match self.saved_unix_ms {
            Some(saved) if saved >= started_ms => self,
            _ => self.for_new_run(),
        }
    }
}

/// Where a host is in its run, as the progress line and the `hosts` gauge count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPhase {
    /// Sending, or ready to send.
    Active,
    /// Waiting out a server's `Retry-After` or a wait of more than a second.
    BackingOff,
    /// Parked by the circuit breaker, or given up for the run.
    Parked,
    /// Nothing left in flight: finished, or stopped for the next round or run.
    Done,
}

impl HostPhase {
    pub const ALL: [HostPhase; 4] = [HostPhase::Active, HostPhase::BackingOff, HostPhase::Parked, HostPhase::Done];

    /// The log word and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            HostPhase::Active => "active",
            HostPhase::BackingOff => "backing_off",
            HostPhase::Parked => "parked",
            HostPhase::Done => "done",
        }
    }
}

/// Whether a request may be sent to the host now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send one request; the token is already taken.
    Send,
    /// Nothing may be sent before `until` (rate spacing, a `Retry-After` or a parking).
    Wait { until: Instant },
    /// The in-flight cap is reached: wait for an answer.
    AtCapacity,
    /// The host was given up for this run.
    Dead,
}

/// The politeness state of one host while it is being served.
#[derive(Debug, Clone)]
pub struct LiveHost {
    rate: RateController,
    bucket: TokenBucket,
    breaker: CircuitBreaker,
    /// Host-wide pause asked for by the server (`Retry-After` on a refusal).
    backoff_until: Option<Instant>,
    /// When a restored limit was last seen (Unix ms), written back unchanged until it is seen
    /// again in this process.
    limit_seen_unix_ms: Option<u64>,
    /// Holds the next request back when an answer came late from a host that forgets.
    arrival: ArrivalGuard,
}

impl LiveHost {
    /// A host nothing is known about.
    pub fn new(config: RateConfig, breaker: BreakerPolicy, now: Instant) -> LiveHost {
        LiveHost::with_rate(RateController::new(config), breaker, now)
    }

    /// A host whose rate controller is already built (a test's, or a restored one).
    pub fn with_rate(rate: RateController, breaker: BreakerPolicy, now: Instant) -> LiveHost {
        let bucket = TokenBucket::new(rate.rate(), DEFAULT_BURST, now);
        LiveHost {
            rate,
            bucket,
            breaker: CircuitBreaker::new(breaker),
            backoff_until: None,
            limit_seen_unix_ms: None,
            arrival: ArrivalGuard::default(),
        }
    }

    /// Whether to send a request now, given how many are in flight. Takes a token on `Send`;
    /// the request must then be sent with `now` as its `sent_at`.
    pub fn try_send(&mut self, in_flight: u32, now: Instant) -> Gate {
        let parked_until = match self.breaker.availability(now) {
            Availability::Dead => return Gate::Dead,
            Availability::Parked { until } => Some(until),
            Availability::Up => None,
        };
        let backoff_until = self.backoff_until.filter(|until| now < *until);
        if let Some(until) = parked_until.max(backoff_until) {
            return Gate::Wait { until };
        }
        if in_flight >= self.rate.max_in_flight() {
            return Gate::AtCapacity;
        }
        // The memory test after a first refusal sends its requests at its own times
        // (`memory_test.rs`).
        match self.rate.memory_step(now) {
            Some(TestStep::Wait(until)) => return Gate::Wait { until },
            Some(TestStep::Answering) if in_flight > 0 => return Gate::AtCapacity,
            // Its answers were lost (the requests cancelled): read as a host that remembers.
            Some(TestStep::Answering) => self.rate.abandon_memory_test(now),
            Some(TestStep::Send) => {
                self.rate.on_send(now, Duration::ZERO);
                return Gate::Send;
            }
            None => {}
        }
        if let Some(until) = self.arrival.hold(now) {
            return Gate::Wait { until };
        }
        let lateness = self.bucket.lateness(now);
        match self.bucket.try_take(now) {
            Ok(()) => {
                self.rate.on_send(now, lateness);
                Gate::Send
            }
            Err(wait) => Gate::Wait { until: now + wait },
        }
    }

    /// Feeds a finished request sent at `sent_at` to the rate, the bucket and the breaker, and
    /// returns the change of rate, if any. A `Retry-After` on a refusal pauses the whole host,
    /// since it speaks for the server.
    pub fn observe(
        &mut self,
        outcome: &Outcome,
        retry_after: Option<Duration>,
        sent_at: Instant,
        now: Instant,
    ) -> Option<RateChange> {
        let testing = self.rate.memory_testing();
        let change = self.rate.observe(outcome, retry_after.is_some(), sent_at, now);
        if testing && !self.rate.memory_testing() {
            // The memory test is over: the next request keeps a whole spacing from its last.
            self.bucket = TokenBucket::new_empty(self.rate.rate(), DEFAULT_BURST, now);
        } else if let Some(c) = change {
            self.bucket.set_rate(c.to, now);
        }
        self.breaker.record(outcome, sent_at, now);
        if let Some(wait) = retry_after.filter(|_| outcome.is_refusal(true)) {
            self.pause(wait, now);
        }
        change
    }

    /// The head of the answer to the request sent at `sent_at` came at `head_at`: a late one
    /// from a host that forgets holds the next request back (`arrival.rs`). Called before
    /// `observe` for the same answer, for every answer with a status. The memory test reads
    /// from it how late its requests arrived (`memory_test.rs`).
    pub fn heard(&mut self, sent_at: Instant, head_at: Instant) {
        let spacing = Duration::from_secs_f64(1.0 / self.bucket.rate());
        if let Some(late) = self.arrival.heard(sent_at, head_at, spacing, self.rate.forgets()) {
            self.rate.heard(sent_at, late);
        }
    }

    /// Another share of this host was refused: follow its rate down and honour its pause.
    pub fn on_peer_refusal(&mut self, share_rate: f64, pause: Option<Duration>, now: Instant) -> Option<RateChange> {
        let change = self.rate.on_peer_refusal(share_rate, now);
        if let Some(c) = change {
            self.bucket.set_rate(c.to, now);
        }
        if let Some(wait) = pause {
            self.pause(wait, now);
        }
        change
    }

    /// Holds the host at `ceiling` requests per second at most (its robots.txt `Crawl-delay`),
    /// whatever it learns later; the bucket follows at once.
    pub fn cap_rate(&mut self, ceiling: f64, now: Instant) -> Option<RateChange> {
        let change = self.rate.cap(ceiling);
        if let Some(c) = change {
            self.bucket.set_rate(c.to, now);
        }
        change
    }

    fn pause(&mut self, wait: Duration, now: Instant) {
        let until = now + wait.min(MAX_RETRY_AFTER);
        self.backoff_until = Some(self.backoff_until.map_or(until, |old| old.max(until)));
    }

    /// What is left of a server-requested pause at `now`.
    pub fn pause_left(&self, now: Instant) -> Option<Duration> {
        self.backoff_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// The rate controller (read only: changes go through `observe` so the bucket follows).
    pub fn rate(&self) -> &RateController {
        &self.rate
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The serialisable state at `now`; `wall` is the wall-clock time at the same moment.
    pub fn export(&self, now: Instant, wall: SystemTime) -> HostState {
        let limit = self.rate.known_limit();
        HostState {
            rate: round_rate(self.rate.learned_rate()),
            known_limit: limit.map(|l| round_rate(l.rate)),
            limit_refusals: limit.map_or(0, |l| l.refusals),
            limit_seen_unix_ms: limit
                .and_then(|l| l.seen_at.map(|at| to_unix_ms(at, now, wall)).or(self.limit_seen_unix_ms)),
            probe_interval_secs: Some(self.rate.probe_interval().as_secs_f64()),
            max_in_flight: self.rate.max_in_flight(),
            backoff_until_unix_ms: self.backoff_until.filter(|until| *until > now).map(|i| to_unix_ms(i, now, wall)),
            consecutive_failures: self.breaker.consecutive_failures(),
            parks: self.breaker.parks(),
            parked_until_unix_ms: self.breaker.parked_until().map(|i| to_unix_ms(i, now, wall)),
            dead: self.breaker.is_dead(),
            saved_unix_ms: Some(to_unix_ms(now, now, wall)),
            forgets: self.rate.forgets(),
        }
    }

    /// A live host from a saved state. Values are clamped to `config`. The token bucket starts
    /// empty: the previous owner may have sent a request a moment ago. A limit is trusted (its
    /// stored probe interval kept) when it was seen at least twice within `LIMIT_TRUST_AGE`;
    /// otherwise it is probed again after `CAREFUL_PROBE_INTERVAL`.
    pub fn restore(
        state: &HostState,
        config: RateConfig,
        breaker: BreakerPolicy,
        now: Instant,
        wall: SystemTime,
    ) -> LiveHost {
        let wall_ms = to_unix_ms(now, now, wall);
        let recent =
            state.limit_seen_unix_ms.is_some_and(|ms| wall_ms.saturating_sub(ms) <= LIMIT_TRUST_AGE.as_millis() as u64);
        let trusted = state.limit_refusals >= 2 && recent;
        let limit = state.known_limit.map(|rate| KnownLimit { rate, refusals: state.limit_refusals, seen_at: None });
        let mut rate = RateController::from_learned(config, state.rate, limit, state.max_in_flight, trusted);
        if let Some(secs) = state.probe_interval_secs.filter(|s| trusted && s.is_finite() && *s > 0.0) {
            rate.set_probe_interval(Duration::from_secs_f64(secs.min(MAX_PROBE_INTERVAL.as_secs_f64())));
        }
        if state.forgets {
            rate.restore_forgets();
        }
        let parked_until = state.parked_until_unix_ms.map(|ms| from_unix_ms(ms, now, wall));
        LiveHost {
            bucket: TokenBucket::new_empty(rate.rate(), DEFAULT_BURST, now),
            rate,
            breaker: CircuitBreaker::from_parts(
                breaker,
                state.consecutive_failures,
                state.parks,
                parked_until,
                state.dead,
            ),
            backoff_until: state.backoff_until_unix_ms.map(|ms| from_unix_ms(ms, now, wall)).filter(|u| *u > now),
            limit_seen_unix_ms: state.limit_seen_unix_ms,
            arrival: ArrivalGuard::default(),
        }
    }
}

fn round_rate(rate: f64) -> f64 {
    (rate * RATE_RESOLUTION).round() / RATE_RESOLUTION
}

/// `at` as Unix milliseconds, rounded up so that a stored wait is never shortened.
fn to_unix_ms(at: Instant, now: Instant, wall: SystemTime) -> u64 {
    let wall_at = if at >= now { wall.checked_add(at - now) } else { wall.checked_sub(now - at) };
    let since_epoch = wall_at.and_then(|w| w.duration_since(UNIX_EPOCH).ok()).unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The `Instant` of a Unix time in ms. A time further in the past than this process's clock can
/// express becomes `now`, which every caller treats as "already over". A time more than
/// `MAX_STORED_WAIT` ahead (a hand-edited table, a clock that was wrong when it was written)
/// is read as that much ahead, so a bad value cannot freeze a host for years.
fn from_unix_ms(ms: u64, now: Instant, wall: SystemTime) -> Instant {
    let wall_at = UNIX_EPOCH.checked_add(Duration::from_millis(ms)).unwrap_or(wall + MAX_STORED_WAIT);
    match wall_at.duration_since(wall) {
        Ok(ahead) => now + ahead.min(MAX_STORED_WAIT),
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
