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

use super::rate::{KnownLimit, RateChange, RateConfig, RateController, LIMIT_TRUST_AGE, MAX_PROBE_INTERVAL};
use super::retry::{Availability, BreakerPolicy, CircuitBreaker};
use super::token_bucket::{TokenBucket, DEFAULT_BURST};
use crate::fetch::outcome::Outcome;
use crate::fetch::retry_after::MAX_RETRY_AFTER;

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
}

impl LiveHost {
    /// A host nothing is known about.
    pub fn new(config: RateConfig, breaker: BreakerPolicy, now: Instant) -> LiveHost {
        LiveHost::with_rate(RateController::new(config), breaker, now)
    }

    /// A host whose rate controller is already built (a test's, or a restored one).
    pub fn with_rate(rate: RateController, breaker: BreakerPolicy, now: Instant) -> LiveHost {
        let bucket = TokenBucket::new(rate.rate(), DEFAULT_BURST, now);
        LiveHost { rate, bucket, breaker: CircuitBreaker::new(breaker), backoff_until: None, limit_seen_unix_ms: None }
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
        let change = self.rate.observe(outcome, retry_after.is_some(), sent_at, now);
        if let Some(c) = change {
            self.bucket.set_rate(c.to, now);
        }
        self.breaker.record(outcome, sent_at, now);
        if let Some(wait) = retry_after.filter(|_| outcome.is_refusal(true)) {
            self.pause(wait, now);
        }
        change
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
            rate: round_rate(self.rate.rate()),
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
mod tests {
    use super::*;
    use crate::actors::server::rate::{Phase, CAREFUL_PROBE_INTERVAL};
    use crate::fetch::outcome::TransportKind;

    const TIMEOUT: Outcome = Outcome::Transport(TransportKind::Timeout);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A wall clock with a sub-millisecond part, to exercise the rounding.
    fn wall() -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789)
    }

    /// A host that refused once with Retry-After (pause until t0 + 120 s), then stopped
    /// answering (parked until t0 + 39 s), then answered seven earlier requests with 404.
    fn eventful_host(t0: Instant) -> LiveHost {
        let mut host =
            LiveHost::new(RateConfig { initial_rate: 2.3, ..RateConfig::default() }, BreakerPolicy::default(), t0);
        host.observe(&Outcome::Status(429), Some(secs(120)), t0, t0);
        for _ in 0..5 {
            host.observe(&TIMEOUT, None, t0 + secs(8), t0 + secs(9));
        }
        for _ in 0..7 {
            host.observe(&Outcome::Status(404), None, t0 + secs(8), t0 + secs(9));
        }
        host
    }

    #[test]
    fn state_round_trips_through_json() {
        let t0 = Instant::now();
        let now = t0 + secs(10);
        let saved = eventful_host(t0).export(now, wall());
        assert_eq!(saved.rate, 1.1155, "halved with no evidence, held at 97%");
        assert_eq!((saved.known_limit, saved.limit_refusals), (Some(2.3), 1));
        assert!(saved.limit_seen_unix_ms.is_some());
        assert_eq!(saved.parks, 1);
        assert!(saved.backoff_until_unix_ms.is_some() && saved.parked_until_unix_ms.is_some());

        let json = serde_json::to_string(&saved).unwrap();
        let read: HostState = serde_json::from_str(&json).unwrap();
        assert_eq!(read, saved);
        let restored = LiveHost::restore(&read, RateConfig::default(), BreakerPolicy::default(), now, wall());
        // Everything survives the round trip, except that a limit seen once is probed soon.
        let expected = HostState { probe_interval_secs: Some(CAREFUL_PROBE_INTERVAL.as_secs_f64()), ..saved };
        assert_eq!(restored.export(now, wall()), expected, "export after restore must give the same state");
    }

    #[test]
    fn a_handed_over_host_keeps_its_pause_and_its_spacing() {
        // The new owner must not send while the server's Retry-After is still running, nor send
        // a request right after the previous owner's last one.
        let t0 = Instant::now();
        let saved = eventful_host(t0).export(t0 + secs(10), wall());
        let (now, new_wall) = (t0 + secs(1000), wall() + secs(5));
        let mut host = LiveHost::restore(&saved, RateConfig::default(), BreakerPolicy::default(), now, new_wall);
        // 120 s from t0, 10 s of which had passed at export, 5 s more by the wall clock since.
        match host.try_send(0, now) {
            Gate::Wait { until } => {
                let left = (until - now).as_secs_f64();
                assert!((left - 105.0).abs() < 0.01, "{left}");
            }
            other => panic!("expected a wait, got {other:?}"),
        }
        assert_eq!(host.try_send(0, now + secs(106)), Gate::Send);

        // A host with no pause: the first request waits a full 1/rate after the handover.
        let mut old_owner = LiveHost::new(RateConfig::default(), BreakerPolicy::default(), t0);
        assert_eq!(old_owner.try_send(0, t0), Gate::Send);
        let saved = old_owner.export(t0, wall());
        let mut host = LiveHost::restore(&saved, RateConfig::default(), BreakerPolicy::default(), t0, wall());
        assert_eq!(host.try_send(0, t0), Gate::Wait { until: t0 + secs(1) });
    }

    #[test]
    fn a_new_run_forgets_old_outages_and_expired_pauses_but_not_the_limit() {
        let t0 = Instant::now();
        let saved = eventful_host(t0).export(t0 + secs(10), wall());
        let next_day = wall() + secs(24 * 3600);
        let now = Instant::now();
        let state = saved.for_new_run();
        let mut host = LiveHost::restore(&state, RateConfig::default(), BreakerPolicy::default(), now, next_day);
        assert_eq!(host.export(now, next_day).backoff_until_unix_ms, None);
        assert!(matches!(host.try_send(0, now), Gate::Wait { .. } | Gate::Send));
        assert_eq!(host.breaker().parks(), 0);
        assert_eq!(host.rate().known_limit().map(|l| l.rate), Some(2.3), "the host's limit is still known");
        // Probation is over too: a single timeout does not park it.
        host.observe(&TIMEOUT, None, now, now);
        assert_eq!(host.breaker().availability(now), Availability::Up);
    }

    #[test]
    fn stored_format_from_an_earlier_run_still_reads() {
        // Servers tables outlive releases; renaming a field silently drops what was learned.
        let json = r#"{"rate":1.89,"known_limit":2.1,"max_in_flight":2,"success_streak":3,
            "backoff_until_unix_ms":null,"consecutive_failures":0,"parks":0,
            "parked_until_unix_ms":null,"dead":false}"#;
        let state: HostState = serde_json::from_str(json).unwrap();
        let host = LiveHost::restore(&state, RateConfig::default(), BreakerPolicy::default(), Instant::now(), wall());
        assert_eq!(host.rate().rate(), 1.89);
        assert_eq!(host.rate().phase(), Phase::Hold, "a host with a known limit holds");
        assert_eq!(host.rate().probe_interval(), CAREFUL_PROBE_INTERVAL, "a limit of unknown age is probed soon");
    }

    #[test]
    fn only_a_limit_seen_twice_and_recently_is_trusted() {
        let t0 = Instant::now();
        let base = LiveHost::new(RateConfig::default(), BreakerPolicy::default(), t0).export(t0, wall());
        let day_ms = 24 * 3600 * 1000;
        let now_ms = to_unix_ms(t0, t0, wall());
        let with = |refusals, age_days: u64| HostState {
            rate: 3.0,
            known_limit: Some(3.3),
            limit_refusals: refusals,
            limit_seen_unix_ms: Some(now_ms - age_days * day_ms),
            probe_interval_secs: Some(7200.0),
            ..base.clone()
        };
        let interval = |state: HostState| {
            LiveHost::restore(&state, RateConfig::default(), BreakerPolicy::default(), t0, wall())
                .rate()
                .probe_interval()
        };
        assert_eq!(interval(with(3, 1)), Duration::from_secs(7200), "trusted: the stored interval is kept");
        assert_eq!(interval(with(1, 1)), CAREFUL_PROBE_INTERVAL, "seen once");
        assert_eq!(interval(with(3, 60)), CAREFUL_PROBE_INTERVAL, "seen two months ago");
    }

    #[test]
    fn a_retry_after_on_any_refusal_pauses_the_host_and_a_bare_503_does_not() {
        let t0 = Instant::now();
        let mut host = LiveHost::new(RateConfig::default(), BreakerPolicy::default(), t0);
        assert_eq!(host.try_send(0, t0), Gate::Send);
        host.observe(&Outcome::Status(503), None, t0, t0 + secs(1));
        assert_eq!(host.pause_left(t0 + secs(1)), None);
        assert_eq!(host.rate().known_limit(), None, "a bare 503 teaches no limit");
        host.observe(&Outcome::Status(500), Some(secs(30)), t0 + secs(1), t0 + secs(2));
        assert_eq!(host.pause_left(t0 + secs(2)), Some(secs(30)));
        assert!(matches!(host.try_send(0, t0 + secs(3)), Gate::Wait { until } if until == t0 + secs(32)));
    }

    #[test]
    fn a_later_round_of_the_same_run_keeps_the_outage_and_a_new_run_forgets_it() {
        let t0 = Instant::now();
        let started = wall();
        let saved = eventful_host(t0).export(t0 + secs(10), started + secs(10));
        assert!(saved.parks > 0 && saved.parked_until_unix_ms.is_some(), "{saved:?}");
        let next_round = saved.clone().for_run(started);
        assert_eq!(next_round, saved, "a round of the same run: parking moves with the host");
        let next_run = saved.clone().for_run(started + secs(3600));
        assert_eq!((next_run.parks, next_run.parked_until_unix_ms, next_run.dead), (0, None, false));
        assert_eq!(next_run.known_limit, saved.known_limit, "the limit is kept either way");
        let older = HostState { saved_unix_ms: None, ..saved };
        assert_eq!(older.for_run(started).parks, 0, "a state of an older version: a new run's");
    }

    #[test]
    fn a_corrupted_future_time_does_not_freeze_the_host_for_years() {
        let state = HostState {
            backoff_until_unix_ms: Some(u64::MAX),
            parked_until_unix_ms: Some(4_102_444_800_000), // 2100-01-01
            ..LiveHost::new(RateConfig::default(), BreakerPolicy::default(), Instant::now())
                .export(Instant::now(), wall())
        };
        let now = Instant::now();
        let mut host = LiveHost::restore(&state, RateConfig::default(), BreakerPolicy::default(), now, wall());
        let Gate::Wait { until } = host.try_send(0, now) else { panic!("a stored pause is honoured") };
        assert!(until - now <= MAX_STORED_WAIT, "{:?}", until - now);
        assert_eq!(host.try_send(0, now + MAX_STORED_WAIT), Gate::Send);
    }

    #[test]
    fn the_gate_enforces_in_flight_cap_parking_and_death() {
        let t0 = Instant::now();
        let mut host = LiveHost::new(RateConfig::default(), BreakerPolicy::default(), t0);
        assert_eq!(host.try_send(2, t0), Gate::AtCapacity, "default cap is 2");
        assert_eq!(host.try_send(1, t0), Gate::Send);
        for _ in 0..5 {
            host.observe(&TIMEOUT, None, t0, t0);
        }
        assert_eq!(host.try_send(0, t0 + secs(1)), Gate::Wait { until: t0 + secs(30) });
        let policy = BreakerPolicy { max_parks: 0, ..BreakerPolicy::default() };
        let mut doomed = LiveHost::new(RateConfig::default(), policy, t0);
        for _ in 0..5 {
            doomed.observe(&TIMEOUT, None, t0, t0);
        }
        assert_eq!(doomed.try_send(0, t0 + secs(3600)), Gate::Dead);
    }
}
