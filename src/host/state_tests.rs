//! Tests of `state.rs`: saving and restoring a host, the gate, and what a new run or round keeps.

use super::*;
use crate::host::outcome::TransportKind;
use crate::host::rate::{Phase, CAREFUL_PROBE_INTERVAL};

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
    // Halved with no evidence and held at 97% (1.1155), then carried at 97% of that while the
    // climb back toward it has not confirmed it.
    assert_eq!(saved.rate, 1.082035, "halved with no evidence, carried below the unconfirmed estimate");
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

    // A host with no pause: the first request waits a full 1/rate after the handover (less the
    // timer's slack, see `TIMER_SLACK`).
    let mut old_owner = LiveHost::new(RateConfig::default(), BreakerPolicy::default(), t0);
    assert_eq!(old_owner.try_send(0, t0), Gate::Send);
    let saved = old_owner.export(t0, wall());
    let mut host = LiveHost::restore(&saved, RateConfig::default(), BreakerPolicy::default(), t0, wall());
    let slack = crate::host::token_bucket::TIMER_SLACK;
    assert_eq!(host.try_send(0, t0), Gate::Wait { until: t0 + secs(1) - slack });
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
    assert!(!host.rate().forgets(), "a state from before the memory test's verdict was stored");
}

#[test]
fn the_verdict_that_a_host_forgets_is_carried_with_its_limit() {
    let now = Instant::now();
    let base = LiveHost::new(RateConfig::default(), BreakerPolicy::default(), now).export(now, wall());
    assert!(!base.forgets, "a new host's limit is not known to judge gaps");
    let learned = HostState { rate: 7.74, known_limit: Some(8.35), limit_refusals: 2, forgets: true, ..base.clone() };
    let read: HostState = serde_json::from_str(&serde_json::to_string(&learned).unwrap()).unwrap();
    let host = LiveHost::restore(&read, RateConfig::default(), BreakerPolicy::default(), now, wall());
    assert!(host.rate().forgets(), "restored: late answers hold the next request back");
    assert!(host.export(now, wall()).forgets, "and written back by the next run");
    let without_limit = HostState { forgets: true, ..base };
    let host = LiveHost::restore(&without_limit, RateConfig::default(), BreakerPolicy::default(), now, wall());
    assert!(!host.rate().forgets(), "a verdict without the limit it came with is not trusted");
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
        LiveHost::restore(&state, RateConfig::default(), BreakerPolicy::default(), t0, wall()).rate().probe_interval()
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
        ..LiveHost::new(RateConfig::default(), BreakerPolicy::default(), Instant::now()).export(Instant::now(), wall())
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
