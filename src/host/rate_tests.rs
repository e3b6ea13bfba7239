//! The rate rules of `rate.rs`, driven in virtual time against simulated limiters (the
//! simulator is `rate_sim_tests.rs`).

use super::super::retry::BreakerPolicy;
use super::super::state::{Gate, LiveHost};
use super::*;
use std::time::Duration;

#[path = "rate_sim_tests.rs"]
mod sim;
use sim::*;

#[test]
fn slow_start_reaches_the_ceiling_within_seconds_and_stops_there() {
    let r = simulate(Limiter::Random5xx(0.0), RateController::new(config(40.0)), LAN, 60.0);
    let at = r.reached(40.0).expect("an unlimited host reaches the ceiling");
    println!("unlimited host: 40 req/s reached after {at:.1} s");
    assert!(at <= 12.0, "took {at:.1} s to reach 40 req/s");
    assert!(r.rates.iter().all(|(_, rate)| *rate <= 40.0), "never above the ceiling");
    assert!(r.served_rate(30.0, 60.0) >= 39.0, "served at the ceiling: {}", r.served_rate(30.0, 60.0));
    let r = simulate(Limiter::Random5xx(0.0), RateController::new(config(10.0)), LAN, 20.0);
    assert!(r.reached(10.0).is_some_and(|t| t <= 8.0), "the default ceiling is reached in seconds: {:?}", r.rates);
}

#[test]
fn at_most_two_refusals_land_close_below_limits_from_half_to_fifty_per_second() {
    // A window limiter counts whole requests, so its limits are whole numbers above 1 req/s.
    let windows = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 50.0].map(Limiter::Window);
    let spacings = [0.5, 1.0, 1.5, 2.5, 4.0, 8.0, 12.5, 30.0, 50.0].map(Limiter::Spacing);
    for limiter in windows.into_iter().chain(spacings) {
        let limit = limiter.limit();
        {
            // Shorter than PROBE_INTERVAL: this is about the first refusal, not the probes.
            let secs = (400.0 / limit).clamp(120.0, 590.0);
            let r = simulate(limiter, RateController::new(config(60.0)), LAN, secs);
            let late = r.served_rate(secs / 2.0, secs);
            println!(
                "{limiter:?}: {} refusals of {} requests, served {late:.3} req/s late ({:.0}% of the limit), rate {:.3}",
                r.refusals,
                r.requests,
                100.0 * late / limit,
                r.controller.rate()
            );
            // Two, not one: a climb that ends a little above a limit pays a second refusal to
            // pin the rate (the goal is at most 2 per limited host).
            assert!(r.refusals <= 2, "{limiter:?}: the operator saw {} refusals", r.refusals);
            // The estimate is the lower of the requests accepted in the last second and the last
            // accepted step. A window limiter's count is exact; against a spacing limiter the
            // count still holds the ramp, which is safe but low (documented in rate.rs), and the
            // sends' jitter takes its share of every spacing: 9% at 30 req/s with 3 ms.
            let floor = match limiter {
                Limiter::Spacing(_) => 0.9 * (1.0 - JITTER.as_secs_f64() * limit),
                _ => 0.95,
            };
            assert!(late >= floor * limit, "{limiter:?}: served at only {late:.3} req/s");
            assert!(r.controller.rate() < limit, "{limiter:?}: holds below the limit at {}", r.controller.rate());
            assert_eq!(r.controller.phase(), Phase::Hold);
        }
    }
}

#[test]
fn a_host_allowing_8_per_second_is_served_at_7_within_15_seconds() {
    let r = simulate(Limiter::Window(8.0), RateController::new(RateConfig::default()), LAN, 60.0);
    let best = (0..=140).map(|i| r.served_rate(i as f64 / 10.0, i as f64 / 10.0 + 1.0)).fold(0.0, f64::max);
    assert!(best >= 7.0, "best 1 s window in the first 15 s served {best}");
    assert!(r.served_rate(15.0, 60.0) >= 7.0, "and it stays there: {}", r.served_rate(15.0, 60.0));
    assert!(r.refusals <= 2, "{} refusals", r.refusals);
}

#[test]
fn random_5xx_below_a_majority_never_cut_the_rate_and_a_majority_does() {
    for p in [0.01, 0.15] {
        let r = simulate(Limiter::Random5xx(p), RateController::new(config(10.0)), LAN, 600.0);
        assert!(r.min_rate() >= 1.0, "{p}: the rate went below where it started: {}", r.min_rate());
        assert_eq!(r.controller.known_limit(), None, "{p}: failures taught a limit");
        assert_eq!(r.controller.rate(), 10.0, "{p}: a host failing at random still reaches its ceiling");
    }
    let r = simulate(Limiter::Random5xx(0.5), RateController::new(config(10.0)), LAN, 600.0);
    let cuts = r.rates.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert!(cuts >= 3, "half the answers failing slows the host down, again and again: {cuts} cuts");
    assert_eq!(r.controller.known_limit(), None, "failures are not a limit");
}

#[test]
fn a_host_bound_by_its_in_flight_cap_does_not_climb_on_paper() {
    // Two requests in flight, each taking a second: the host sees at most 2 req/s whatever the
    // rate says, so the rate must not run off to the ceiling.
    let r = simulate(Limiter::Random5xx(0.0), RateController::new(config(40.0)), Duration::from_secs(1), 120.0);
    assert!(r.controller.rate() <= 3.0, "the rate climbed to {} on paper", r.controller.rate());
}

#[test]
fn a_long_run_at_a_limit_pays_a_refusal_every_few_hours_at_most() {
    let r = simulate(Limiter::Window(8.0), RateController::new(RateConfig::default()), LAN, 6.0 * 3600.0);
    println!("6 h at 8 req/s: {} refusals of {} requests, at {:?} s", r.refusals, r.requests, r.refused);
    // Finding the limit pays up to 2 (the goal); after that only refused probes, whose
    // quiet time doubles from 10 minutes: 20, 40, 80 and 160 minutes apart, 5 in 6 hours.
    let finding = r.refused.iter().filter(|t| **t < 60.0).count();
    assert!(finding <= 2, "{finding} refusals finding the limit");
    assert!(r.refusals as usize - finding <= 5, "{} refusals in 6 hours", r.refusals);
    let last_hours = r.served_rate(3.0 * 3600.0, 6.0 * 3600.0);
    assert!(last_hours >= 7.4, "served {last_hours} req/s");
    assert!(r.controller.probe_interval() >= Duration::from_secs(3600), "probes become rare");
}

#[test]
fn a_raised_limit_is_found_again_by_probing() {
    // Learned at 4 req/s (trusted), the host now allows 8: probes climb back within the hour.
    let limit = KnownLimit { rate: 4.2, refusals: 3, seen_at: None };
    let start = RateController::from_learned(RateConfig::default(), 3.9, Some(limit), 2, true);
    let r = simulate(Limiter::Window(8.0), start, LAN, 3.0 * 3600.0);
    assert!(r.controller.rate() >= 6.0, "still at {} after 3 h", r.controller.rate());
    assert!(r.refusals <= 3, "{}", r.refusals);
}

#[test]
fn refusals_of_requests_sent_before_the_cut_do_not_cut_again() {
    // Two requests in flight both come back 429: the host was overloaded once, and cutting
    // twice would punish it for a single episode.
    let t0 = Instant::now();
    let mut rate = RateController::new(RateConfig { initial_rate: 4.0, ..RateConfig::default() });
    let (a, b) = (t0, t0 + Duration::from_millis(50));
    rate.on_send(a, Duration::ZERO);
    rate.on_send(b, Duration::ZERO);
    let later = t0 + Duration::from_millis(100);
    let first = rate.observe(&Outcome::Status(429), false, a, later).expect("cuts");
    assert_eq!(first.reason, ChangeReason::Refused);
    assert_eq!(first.to, 2.0 * HOLD_FRACTION, "no evidence to estimate from: halve");
    assert_eq!(rate.observe(&Outcome::Status(429), false, b, later), None);
    // Refused again soon after the cut, by a request sent after it: halve again.
    let c = later + Duration::from_millis(600);
    rate.on_send(c, Duration::ZERO);
    let again = rate.observe(&Outcome::Status(429), false, c, c + LAN).expect("cuts again");
    assert_eq!(again.to, first.to / 2.0);
    let limit = rate.known_limit().expect("the limit is remembered");
    assert_eq!((limit.rate, limit.refusals), (first.to, 2), "the lowest refused rate and how often");
}

#[test]
fn a_503_with_retry_after_is_a_refusal_and_without_it_a_failure() {
    let t0 = Instant::now();
    let mut rate = RateController::new(RateConfig { initial_rate: 4.0, ..RateConfig::default() });
    rate.on_send(t0, Duration::ZERO);
    assert_eq!(rate.observe(&Outcome::Status(503), false, t0, t0 + LAN), None, "a bare 503 does not cut");
    assert_eq!(rate.known_limit(), None);
    let t1 = t0 + Duration::from_secs(1);
    rate.on_send(t1, Duration::ZERO);
    let cut = rate.observe(&Outcome::Status(503), true, t1, t1 + LAN).expect("a 503 with Retry-After cuts");
    assert!(cut.to < 4.0);
    assert_eq!(rate.phase(), Phase::Hold);
}

#[test]
fn learned_state_that_cannot_poison_a_later_run() {
    let config = RateConfig { max_rate: 5.0, max_in_flight: 3, ..RateConfig::default() };
    // A low rate learned from failures alone (no limit) is not carried: slow start from initial.
    let r = RateController::from_learned(config.clone(), 0.05, None, 3, true);
    assert_eq!((r.rate(), r.phase()), (1.0, Phase::SlowStart));
    // A rate above the ceiling is clamped; so is the in-flight cap.
    let r = RateController::from_learned(config.clone(), 8.0, None, 10, true);
    assert_eq!((r.rate(), r.max_in_flight()), (5.0, 3));
    // A limit seen once (or long ago) is probed again soon; a trusted one after the usual wait.
    let once = KnownLimit { rate: 2.0, refusals: 1, seen_at: None };
    let r = RateController::from_learned(config.clone(), 1.9, Some(once), 2, false);
    assert_eq!((r.rate(), r.phase(), r.probe_interval()), (1.9, Phase::Hold, CAREFUL_PROBE_INTERVAL));
    let r = RateController::from_learned(config, 1.9, Some(KnownLimit { refusals: 4, ..once }), 2, true);
    assert_eq!(r.probe_interval(), PROBE_INTERVAL);
}

#[test]
fn a_carefully_probed_single_refusal_limit_recovers_from_an_under_estimate() {
    // An earlier run halved blindly to 1 req/s on a host that allows 3: the next run probes
    // within minutes instead of keeping the guess.
    let once = KnownLimit { rate: 2.0, refusals: 1, seen_at: None };
    let start = RateController::from_learned(RateConfig::default(), 1.0, Some(once), 2, false);
    let r = simulate(Limiter::Window(3.0), start, LAN, 3600.0);
    assert!(r.controller.rate() >= 2.5, "after an hour the rate is {}", r.controller.rate());
    // +5% every 2 minutes reaches 3 req/s after about 45 minutes; each refused probe then
    // doubles the wait (4, 8 minutes).
    assert!(r.refusals <= 3, "{} refusals", r.refusals);
}

#[test]
fn a_peer_share_refusal_brings_this_share_down_and_ends_slow_start() {
    let t0 = Instant::now();
    let mut rate = RateController::new(RateConfig { initial_rate: 4.0, ..RateConfig::default() });
    let change = rate.on_peer_refusal(1.5, t0).expect("follows the peer down");
    assert_eq!((change.to, change.reason, rate.phase()), (1.5, ChangeReason::PeerShare, Phase::Hold));
    assert_eq!(rate.on_peer_refusal(3.0, t0), None, "never up");
}

#[test]
fn a_crawl_delay_ceiling_holds_whatever_the_host_teaches_even_below_the_floor() {
    let t0 = Instant::now();
    let mut host =
        LiveHost::new(RateConfig { initial_rate: 4.0, ..RateConfig::default() }, BreakerPolicy::default(), t0);
    let change = host.cap_rate(0.5, t0).expect("4 req/s is above a 2 s crawl delay");
    assert_eq!((change.from, change.to, change.reason), (4.0, 0.5, ChangeReason::CrawlDelay));
    // Fast, pressed successes for a minute: slow start may not pass the ceiling.
    let mut now = t0;
    for _ in 0..60 {
        if host.try_send(0, now) == Gate::Send {
            host.observe(&Outcome::Status(200), None, now, now + Duration::from_millis(10));
        }
        now += Duration::from_secs(1);
    }
    assert_eq!(host.rate().rate(), 0.5);
    // Two requests are never closer than the delay.
    let mut sent = Vec::new();
    for ms in (0..20_000).step_by(50) {
        let at = now + Duration::from_millis(ms);
        if host.try_send(0, at) == Gate::Send {
            sent.push(at);
            host.observe(&Outcome::Status(200), None, at, at);
        }
    }
    assert!(sent.windows(2).all(|w| w[1] - w[0] >= Duration::from_secs(2)), "{sent:?}");
    // A ceiling below MIN_RATE (Crawl-delay: 60) holds too, and a higher one later does not lift it.
    assert!(host.cap_rate(1.0 / 60.0, now).is_some());
    assert!(host.cap_rate(2.0, now).is_none());
    assert!((host.rate().rate() - 1.0 / 60.0).abs() < 1e-12);
    host.on_peer_refusal(0.02, None, now);
    assert!(host.rate().rate() <= 1.0 / 60.0, "a peer's cut is floored at MIN_RATE, the ceiling still wins");
}

#[path = "rate_shapes_tests.rs"]
mod shapes;
#[path = "rate_verdict_tests.rs"]
mod verdict;
