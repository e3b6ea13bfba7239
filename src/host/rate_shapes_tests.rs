//! The goals against nginx `limit_req` shapes and a token bucket, in the virtual time of
//! the simulator (`rate_sim_tests.rs`): refusals, held share, wall against the floor, peak per
//! second, delay mode's queue and the learned rate, shape by shape.
//!
//! # Figures of `rate.rs`'s rules (the simulation: virtual time, 5 ms
//! latency, arrivals jittered by up to 3 ms, default settings, 40 req/s ceiling)
//! - Sliding windows of 0.5–50 req/s: 1–2 refusals, held at 97%. nginx with no burst (spacing)
//!   0.5–12.5 req/s: 1–2 refusals, 92–97%; at 30 and 50 req/s the 3 ms of jitter is 9–15% of a
//!   spacing, and the hold is 89% and 84%. 6 h at a window of 8: 2 refusals, then 5 refused
//!   probes 20 to 160 minutes apart.
//! - 41 nginx `limit_req` shapes (0.5, 2, 8, 20 req/s; burst 0, 1, 4, 10; `nodelay`, delay mode,
//!   `Retry-After`; a 5-token bucket), 40 s of URLs each: 62 refusals of 52,307 requests; at most
//!   2 per host, except 3 where the burst is larger than half the requests sent before the first
//!   refusal (0.5 req/s with burst 4 or 10, the bucket at 0.5) and at 20 with burst 1 (2 with
//!   burst 10 had 3 until the memory test; 8 without burst now has 2, the test's, and 93%, not
//!   1 and 97%); held at 90–100%, except 0.5 req/s with burst 4 and `Retry-After` (80% over the last 20 s,
//!   90% from the first minute on). Delay mode: the server's queue never longer than the
//!   in-flight cap, learned rate 0.92–0.99 of the limit. Wall time 0.48–1.14× the floor at
//!   0.5–2 req/s and 1.10–1.32× at 8 and 20, where slow start from 1 req/s costs 3–6 s. With
//!   12–60 ms of latency, 2 req/s with a burst of 4 refuses twice close together, as against
//!   real nginx, and is held at 97% (87% below the lower of the two islands of whole bursts it
//!   leaves, 78% before whole bursts were read).
//! - A spacing limit of 8 req/s reached by requests one in 40 of which arrives 15 ms late (a busy
//!   machine): with the late answers read (`arrival.rs`), 2 refusals in 4 minutes, held at 95%;
//!   without, 5, held at 88% (45% when an unexplained refusal halved it for good).
//! - 84 `nodelay` shapes between those (0.7–12 req/s, bursts 0–8, 5 and 12 ms): 64 meet both
//!   goals; slow hosts with a burst of 3 to 8 are held at 70–88% or refused 3 times, and 12 req/s
//!   with a burst of 1 is refused 3 times.

use super::*;

/// A floor of this many seconds per shape, as `make bench-politeness` runs real nginx.
const FLOOR_SECS: f64 = 40.0;

/// What the goals measure on one simulated host with `FLOOR_SECS` of URLs.
struct ShapeRun {
    refusals: u32,
    /// Time to serve every URL, over the floor.
    wall: f64,
    /// Served per second over the last 20 s of the host's run and from the first minute on to
    /// the third, as shares of the limit.
    held_end: f64,
    held_late: f64,
    peak: usize,
    max_held: Duration,
    /// The rate at the end of three minutes (what the next run starts from), over the limit.
    learned: f64,
    requests: u32,
}

fn run_shape(limiter: Limiter, retry_after: Option<Duration>) -> ShapeRun {
    let limit = limiter.limit();
    let urls = (limit * FLOOR_SECS).round() as usize;
    let r = simulate_with(limiter, retry_after, RateController::new(config(40.0)), LAN, 180.0);
    let done = r.served.get(urls - 1).copied().unwrap_or(f64::INFINITY);
    let out = ShapeRun {
        refusals: r.refusals,
        wall: done / FLOOR_SECS,
        held_end: r.served_rate(done - 20.0, done) / limit,
        held_late: r.served_rate(60.0, 180.0) / limit,
        peak: r.peak_per_second(),
        max_held: r.max_held,
        learned: r.controller.rate() / limit,
        requests: r.requests,
    };
    println!(
        "{limiter:?} RA {retry_after:?}: {} refused, wall {:.2}x floor, held {:.0}% (last 20 s) {:.0}% (1-3 min), \
         peak {}/s, queue {:?}, learned {:.2}x",
        out.refusals,
        out.wall,
        100.0 * out.held_end,
        100.0 * out.held_late,
        out.peak,
        out.max_held,
        out.learned
    );
    out
}

/// What a shape is held to: the goals, or where a goal is not reached yet, the weaker
/// bound it does reach (each named in `bounds`).
struct Bounds {
    refusals: u32,
    held: f64,
    wall: f64,
}

/// The goals (at most 2 refusals, held at 90% of the limit, every URL within 1.1× a
/// 40 s floor), and the gaps left:
/// - Wall above 1.1× at 8 and 20 req/s: slow start from `INITIAL_RATE_LIMIT` (1 req/s) to the
///   limit costs 3–6 s, 8–15% of a 40 s floor, before any refusal. The goal is judged on the
///   run's slowest host; these shapes are held at 94–98%, so with a floor of their own as long
///   as the slowest host's they finish within its 1.1× only when their share of URLs is smaller.
/// - A third refusal where the burst is larger than half the requests sent before the first
///   refusal (0.5 req/s with burst 4 or 10, a 5-token bucket at 0.5), and at 20 req/s with
///   burst 1: the ramp cannot tell that burst from a faster rate, so the point the climb
///   restarts from is still above the limit, and a third refusal pins the rate. (2 req/s with a
///   burst of 10 was one of them until the memory test told it from a spacing limit.)
/// - 0.5 req/s, burst 4, `Retry-After: 2`: the second refusal comes after two accepted requests
///   and the fit is bounded below only loosely; held at the lowest rate a whole burst fits,
///   80% over the last 20 s (which hold only 10 requests) and 90% from the first minute on.
/// - 2 req/s without burst: one refusal, held at 98%, but the climb back from half the refused
///   rate costs 1.14× the floor.
fn bounds(limiter: Limiter, retry_after: Option<Duration>) -> Bounds {
    let limit = limiter.limit();
    let mut b = Bounds { refusals: 2, held: 0.9, wall: if limit >= 8.0 { 1.35 } else { 1.1 } };
    match (limiter, retry_after) {
        (Limiter::Leaky { rate, burst: 4 }, Some(_)) if rate < 1.0 => b.held = 0.8,
        (Limiter::Leaky { rate, burst: 4 | 10 }, None) | (Limiter::Tokens { rate, .. }, None) if rate < 1.0 => {
            b.refusals = 3
        }
        (Limiter::Leaky { rate: 20.0, burst: 1 }, None) => b.refusals = 3,
        (Limiter::Leaky { rate: 2.0, burst: 0 } | Limiter::Queued { rate: 2.0, burst: 0 }, None) => b.wall = 1.2,
        _ => {}
    }
    b
}

/// The goals on nginx `limit_req` shapes (rate × burst, `nodelay` and delay mode, with
/// and without `Retry-After`) and on a token bucket, each with a 40 s floor: refusals, wall and
/// held share within `bounds`; never more in a second than the limiter lets through; delay
/// mode's queue within the in-flight cap; a learned rate not above the limit; and refusals at
/// most 1% of all requests.
#[test]
fn limit_req_shapes_are_held_near_their_limit_with_at_most_two_refusals() {
    let mut shapes = Vec::new();
    for rate in [0.5, 2.0, 8.0, 20.0] {
        for burst in [0, 1, 4, 10] {
            shapes.push((Limiter::Leaky { rate, burst }, None));
            shapes.push((Limiter::Queued { rate, burst }, None));
        }
        shapes.push((Limiter::Leaky { rate, burst: 4 }, Some(Duration::from_secs(2))));
        shapes.push((Limiter::Tokens { rate, capacity: 5.0 }, None));
    }
    shapes.push((Limiter::Leaky { rate: 8.0, burst: 0 }, Some(Duration::from_secs(1))));
    let cap = f64::from(RateConfig::default().max_in_flight);
    let mut failed = Vec::new();
    let (mut refused, mut requests) = (0, 0);
    for (limiter, ra) in shapes {
        let r = run_shape(limiter, ra);
        let limit = limiter.limit();
        let allowed = (limit + limiter.burst() + 1.0).floor() as usize;
        let b = bounds(limiter, ra);
        let mut check = |ok: bool, what: &str| {
            if !ok {
                failed.push(format!("{limiter:?} RA {ra:?}: {what}"));
            }
        };
        check(r.refusals <= b.refusals, "more refusals than its bound");
        check(r.wall <= b.wall, "wall above its bound");
        check(r.held_end >= b.held && r.held_late >= b.held, "held below its bound");
        check(r.peak <= allowed, "more in a second than the limiter lets through");
        check(r.max_held.as_secs_f64() <= cap / limit + 1e-3, "queued past the in-flight cap");
        check(r.learned <= 1.0, "learned above the limit");
        refused += r.refusals;
        requests += r.requests;
    }
    println!("{refused} refusals of {requests} requests");
    check_share(refused, requests, &mut failed);
    assert!(failed.is_empty(), "{} goals missed:\n{}", failed.len(), failed.join("\n"));
}

fn check_share(refused: u32, requests: u32, failed: &mut Vec<String>) {
    if f64::from(refused) > 0.01 * f64::from(requests) {
        failed.push(format!("{refused} refusals of {requests} requests: more than 1%"));
    }
}

#[test]
fn a_retry_after_pause_is_not_taken_for_an_accepted_spacing() {
    // Started at 4 req/s against nginx at 1 req/s without burst that answers `Retry-After: 2`
    // (the real-nginx test's first host): the request after the pause is accepted because of the
    // pause, not its spacing, so a second refusal must not send the host back to that spacing.
    let start = RateController::new(RateConfig { initial_rate: 4.0, ..config(40.0) });
    let r = simulate_with(Limiter::Leaky { rate: 1.0, burst: 0 }, Some(Duration::from_secs(2)), start, LAN, 180.0);
    assert!(r.refusals <= 2, "{} refusals", r.refusals);
    let held = r.served_rate(60.0, 180.0);
    assert!(held >= 0.9, "held at {held} req/s");
}

/// Real nginx's miss on 2 req/s with a burst of 4 (`docs/benchmarks.md`: held at 0.78–0.88),
/// reproduced: from 12 ms of latency on, a first refusal in the ramp at 5.55 req/s leaves one
/// more answer in flight and the estimate is 3.88, not 4.85, so the climb restarts at 1.94, just
/// below the limit. It crosses 2 req/s within a second, the bucket never drains, and the second
/// refusal comes 2.3 s after the first: two refusals that close bound a leaky bucket's rate from
/// below only to within about one request of excess over the time between them. Of the rates
/// at which the burst can be a whole number, two islands remain: a burst of 5 at 1.80–1.82
/// req/s and of 4 at 2.01 (1.8 req/s with a burst of 5 leaves the same two). Held below the
/// lowest, the host was at 88% of its limit; held below the one holding a round rate
/// (`LeakyFit::likeliest_whole`), at 97%. At 5 ms the restart is at 2.42, refused at once, and
/// the climb back from 0.91 holds 97%.
#[test]
fn limit_req_two_per_second_burst_four_is_held_at_95_percent_whatever_the_latency() {
    for (ms, held) in [(5, 0.95), (12, 0.95), (25, 0.95), (60, 0.95)] {
        let limiter = Limiter::Leaky { rate: 2.0, burst: 4 };
        let r = simulate_with(limiter, None, RateController::new(config(40.0)), Duration::from_millis(ms), 120.0);
        let share = r.served_rate(30.0, 120.0) / limiter.limit();
        println!("{ms} ms: {} refused at {:?}, held {share:.2}", r.refusals, r.refused);
        assert!(r.refusals <= 2, "{ms} ms: {} refusals", r.refusals);
        assert!(share >= held, "{ms} ms: held at {share:.2} of the limit");
    }
}

/// The price of the round island: 1.8 req/s with a burst of 5 at 12 ms leaves the same two
/// islands as 2 req/s with a burst of 4, and is held below 2.01 for a while. That is refused
/// once more; the refusal rules the upper island out and the fit holds the host below its own
/// (not halved and climbed back to just under the refused rate, which was above its limit).
#[test]
fn a_limit_that_is_not_round_is_refused_once_more_and_then_held_below_it() {
    let limiter = Limiter::Leaky { rate: 1.8, burst: 5 };
    let r = simulate_with(limiter, None, RateController::new(config(40.0)), Duration::from_millis(12), 600.0);
    let held = r.served_rate(120.0, 600.0) / limiter.limit();
    let rate = r.controller.rate() / limiter.limit();
    println!("refused at {:?}, held {held:.3}, rate {rate:.3}", r.refused);
    assert_eq!(r.refusals, 3, "refused at {:?}", r.refused);
    assert!((0.93..=1.0).contains(&rate), "held at {rate:.3} of its limit");
    assert!(held >= 0.93, "served {held:.3} of its limit");
}

/// nginx in delay mode at 20 req/s with a burst of 4: the queue built in slow start is seen and
/// the rate cut below the server's. The answers to requests sent before the cut still come back
/// slower and slower, and after them the queue drains for seconds, its answers slow but quicker
/// each time: read as a queue, either cut the rate again (twice more, to 94%).
#[test]
fn a_queue_draining_after_its_cut_does_not_cut_the_rate_again() {
    for (rate, burst) in [(20.0, 4), (8.0, 10)] {
        let r = simulate(Limiter::Queued { rate, burst }, RateController::new(config(40.0)), LAN, 60.0);
        assert_eq!(r.refusals, 0);
        let held = r.controller.rate() / rate;
        assert!(held >= 0.96, "{rate} req/s, burst {burst}, delay mode: held at {held:.3} of it");
    }
}

/// A spacing limit (nginx at 8 req/s, no burst, `Retry-After: 1`) reached by requests of which
/// one in 40 arrives 15 ms late, as on a machine busy with other work: the next one then lands
/// less than 1/8 s behind it, and is refused even at 90% of the limit. Each refusal may cost a
/// step, but the host is never halved for good (it was, to 45% of the limit). The answers'
/// heads are not read, so the late requests are refused: as those answered only after the next
/// one left still are (`arrival.rs` prevents the rest, below).
#[test]
fn a_spacing_limit_refusing_delay_spikes_is_stepped_down_not_halved_for_good() {
    let limiter = Limiter::Leaky { rate: 8.0, burst: 0 };
    let lag = Lag { spike: Some((40, Duration::from_millis(15))), heads_read: false, ..Lag::spread(JITTER) };
    let ra = Some(Duration::from_secs(1));
    let r = simulate_lagged(limiter, ra, RateController::new(config(40.0)), LAN, lag, 240.0);
    let held = r.served_rate(60.0, 240.0) / limiter.limit();
    println!("refused at {:?}, held {held:.2}", r.refused);
    assert!(held >= 0.8, "held at {held:.2} of the limit");
    assert!(r.refusals <= 6, "{} refusals", r.refusals);
}

/// The same busy machine, seen as it is: a request that reached the server 15 ms late is
/// answered 15 ms late, and the host, which the memory test found to forget, holds the next one
/// back by as much (`arrival.rs`). Against real nginx at 8 req/s without burst, one run in eight
/// had a third refusal of this kind. Here none of the 45 or so late requests in 4 minutes brings
/// one: only the ramp's and the memory test's, and the host is held at 90% or more of its limit
/// (without the guard, as above: 5 refusals, held at 88%).
#[test]
fn a_late_answer_from_a_spacing_limit_holds_the_next_request_back_and_nothing_is_refused() {
    let limiter = Limiter::Leaky { rate: 8.0, burst: 0 };
    let lag = Lag { spike: Some((40, Duration::from_millis(15))), ..Lag::spread(JITTER) };
    let r = simulate_lagged(limiter, Some(Duration::from_secs(1)), RateController::new(config(40.0)), LAN, lag, 240.0);
    let held = r.served_rate(60.0, 240.0) / limiter.limit();
    println!("refused at {:?}, held {held:.2}", r.refused);
    assert!(r.controller.forgets(), "the memory test found a spacing limit");
    assert_eq!(r.refusals, 2, "refused at {:?}", r.refused);
    assert!(held >= 0.9, "held at {held:.2} of the limit");
}

/// A spacing limit the memory test found, refused soon after the verdict: at 8 req/s with
/// `Retry-After: 1`, one request of the hold reaches the server 8 ms late, 2 ms more than the
/// hold's margin, and the next comes in too close. The host forgets what it is sent, so the
/// fit's slow buckets with a large burst (it allowed about 0.75 req/s here, and 0.86 against
/// real nginx on 2026-12-03) are no answer: the spacing widens, and the host stays near its
/// limit. Under the rules before (held at the estimate, then the fit's lowest whole burst), it
/// was held at 9% of it for the rest of the run. (Heads not read, as above.)
#[test]
fn a_refusal_soon_after_the_memory_tests_verdict_never_holds_a_spacing_limit_at_a_buckets_rate() {
    let limiter = Limiter::Leaky { rate: 8.0, burst: 0 };
    let lag = Lag { late: Some((9.0, Duration::from_millis(8))), heads_read: false, ..Lag::spread(JITTER) };
    let r = simulate_lagged(limiter, Some(Duration::from_secs(1)), RateController::new(config(40.0)), LAN, lag, 120.0);
    println!("refused at {:?}, rates {:?}", r.refused, r.rates.iter().filter(|(t, _)| *t > 8.0).collect::<Vec<_>>());
    assert_eq!(r.refusals, 3, "the late request brought a third refusal: {:?}", r.refused);
    let lowest = r.rates.iter().filter(|(t, _)| *t > r.refused[1]).map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    assert!(lowest >= 0.85 * 8.0, "cut to {lowest:.2} req/s after the verdict");
    let held = r.served_rate(30.0, 120.0) / 8.0;
    assert!(held >= 0.9, "held at {held:.2} of the limit");
}

/// The memory test (its last two requests half a refused spacing apart) runs after the ramp's
/// refusal only. Against real nginx (8 req/s, no burst, 2026-12-03) a delay spike refused one
/// request of the hold minutes later, when the send log no longer held the ramp, and the test
/// ran again, which cost a refusal more. Here a rarer spike than above (one request in 1,500
/// arrives 20 ms late) refuses requests of the hold, the last one after nearly 7 minutes.
#[test]
fn a_refusal_in_the_hold_does_not_run_the_memory_test_again() {
    let r = rare_spikes_at_eight_per_second();
    println!("refused at {:?}", r.refused);
    let late_refusals = r.refused.iter().filter(|t| **t > 30.0).count();
    assert!(late_refusals >= 1, "no refusal in the hold, so nothing was tested: {:?}", r.refused);
    let late: Vec<f64> = r.arrived.iter().copied().filter(|t| *t > 30.0).collect();
    let closest = late.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    assert!(closest > 0.75 / 8.0, "two requests {:.0} ms apart after 30 s", closest * 1000.0);
}

/// Why the memory test (`memory_test.rs`) is there: until the first refusal, 2 req/s with a
/// burst of 10 gives the ramp from 1 req/s the very same answers as a spacing limit of 8.3 req/s
/// (nginx without burst): the same requests served, the same one refused at 4× the bucket's
/// rate. After it, the bucket is full and refuses anything above 2 req/s at once, while the
/// spacing limit lets 8 through. Without telling them apart, a restart low enough for the bucket
/// costs the spacing limit seconds of its floor climbing back, and one high enough for the
/// spacing limit costs the bucket a second refusal at once, too soon after the first to pin its
/// rate, and a third to pin it.
#[test]
fn a_slow_bucket_with_a_burst_answers_the_ramp_as_a_fast_spacing_limit_does() {
    let run = |limiter| simulate(limiter, RateController::new(config(40.0)), LAN, 20.0);
    let bucket = run(Limiter::Leaky { rate: 2.0, burst: 10 });
    let spacing = run(Limiter::Leaky { rate: 8.3, burst: 0 });
    let first = bucket.refused[0];
    assert!((spacing.refused[0] - first).abs() < 1e-6, "refused at {first} and at {}", spacing.refused[0]);
    let before = |r: &SimResult| -> Vec<f64> { r.served.iter().copied().filter(|t| *t < first).collect() };
    assert_eq!(before(&bucket), before(&spacing), "the same requests served before the first refusal");
    let at_refusal = bucket.rates.iter().rev().find(|(t, _)| *t <= first).map(|(_, r)| *r).unwrap();
    assert!(at_refusal >= 3.5 * 2.0, "the ramp was refused at {at_refusal} req/s");
}

/// The memory test against the two limiters the ramp cannot tell apart (see above), as the
/// servers saw it. After the first refusal, a pause, then the test's requests. The spacing limit
/// refuses the second (which ends the test) or the third (half the refused spacing after the
/// second) and is held at 90% or more of its limit; the test costs it under 2.5 s. The bucket lets all three through, and the climb
/// back crosses its rate so slowly that the second refusal comes 4 s or more after the first and
/// pins the rate: held at 90% or more, where it had a third refusal before.
#[test]
fn a_memory_test_tells_a_fast_spacing_limit_from_a_slow_bucket_and_each_is_refused_twice() {
    let run = |limiter| simulate(limiter, RateController::new(config(40.0)), LAN, 120.0);
    let (spacing, bucket) = (run(Limiter::Leaky { rate: 8.3, burst: 0 }), run(Limiter::Leaky { rate: 2.0, burst: 10 }));
    for (name, r, limit) in [("spacing", &spacing, 8.3), ("bucket", &bucket, 2.0)] {
        let held = r.served_rate(60.0, 120.0) / limit;
        println!("{name}: refused at {:?}, held {held:.2}", r.refused);
        assert_eq!(r.refusals, 2, "{name}: refused at {:?}", r.refused);
        assert!(held >= 0.9, "{name}: held at {held:.2} of its limit");
    }
    let after = |r: &SimResult| -> Vec<f64> { r.arrived.iter().copied().filter(|t| *t > r.refused[0]).collect() };
    let test = after(&spacing);
    assert!(test[0] - spacing.refused[0] >= 1.0, "a pause before the test: {:?}", &test[..4]);
    // The third, or the second: that ends the test, and no third goes.
    let k = test.iter().position(|t| *t == spacing.refused[1]).expect("the second refusal is after the first");
    assert!(k == 1 || k == 2, "one of the test's requests refused: {:?}", &test[..4]);
    if k == 2 {
        assert!(test[2] - test[1] < 0.5 / 8.3 + 0.01, "half a refused spacing apart: {:?}", &test[..3]);
    }
    assert!(test[k] - spacing.refused[0] < 2.5, "the test took {:.2} s", test[k] - spacing.refused[0]);
    assert!(test[k + 1] - test[k] >= 1.0 / 8.3, "the next request keeps a spacing from the test: {:?}", &test[..4]);
    let test = after(&bucket);
    assert!(test[..3].iter().all(|t| bucket.served.contains(t)), "the bucket let all three through");
    assert!(bucket.refused[1] - bucket.refused[0] >= 4.0, "refused at {:?}", bucket.refused);
}

/// A memory test whose requests never come back (a stopping rank cancels them) does not leave
/// the host waiting for their answers: the next send is decided as for a host that remembers.
#[test]
fn a_memory_test_whose_answers_are_lost_does_not_stall_the_host() {
    let t0 = Instant::now();
    let mut host = SimHost::new(Limiter::Leaky { rate: 2.0, burst: 10 });
    let mut live = LiveHost::with_rate(RateController::new(config(40.0)), BreakerPolicy::default(), t0);
    let mut t = t0;
    for _ in 0..2000 {
        if live.rate().memory_step(t) == Some(TestStep::Answering) {
            break;
        }
        let testing = live.rate().memory_step(t).is_some();
        match live.try_send(0, t) {
            // The ramp's answers come back at once; the test's never do.
            Gate::Send if !testing => {
                let (outcome, _) = host.answer(t);
                t += LAN;
                live.observe(&outcome, None, t - LAN, t);
            }
            Gate::Send => {}
            Gate::Wait { until } => t = until,
            gate => panic!("{gate:?} with nothing in flight"),
        }
    }
    assert_eq!(live.rate().memory_step(t), Some(TestStep::Answering), "the test sent its three requests");
    assert!(matches!(live.try_send(0, t), Gate::Send | Gate::Wait { .. }), "the host goes on");
    assert_eq!(live.rate().memory_step(t), None);
    assert!(live.rate().rate() <= 2.0, "at the rate a bucket must allow: {}", live.rate().rate());
}

/// A lone refusal in the hold of a host the memory test found to be a spacing limit (50 or more
/// requests let through in a row before it) is a delay spike on our side: the spacing widens by
/// `ARRIVAL_JITTER`, never by a cut. Against real nginx (2026-12-03, 240 s at 8 req/s) such
/// refusals came every minute or two on a busy machine; each one sent the host back to half
/// its estimate or to the fit's jitter-generous low, and it ended at 0.87 of its limit.
#[test]
fn a_lone_refusal_in_a_spacing_limits_hold_widens_the_spacing_instead_of_cutting() {
    let r = rare_spikes_at_eight_per_second();
    let late: Vec<f64> = r.refused.iter().copied().filter(|t| *t > 30.0).collect();
    println!("refused at {:?}, rates {:?}", r.refused, r.rates.iter().filter(|(t, _)| *t > 30.0).collect::<Vec<_>>());
    assert!(late.len() >= 2, "spikes refused {late:?}: nothing was tested");
    for pair in r.rates.windows(2).filter(|w| w[1].0 > 30.0) {
        let step = pair[1].1 / pair[0].1;
        assert!(step >= 0.97, "cut from {:.2} to {:.2} req/s at {:.0} s", pair[0].1, pair[1].1, pair[1].0);
    }
    let held = r.served_rate(300.0, 600.0) / 8.0;
    assert!(held >= 0.9, "held at {held:.2} of the limit");
}

/// nginx at 8 req/s without burst for 10 minutes, reached by requests one in 1,500 of which
/// arrives 20 ms late: rare delay spikes that refuse requests of the hold (heads not read, as
/// above).
fn rare_spikes_at_eight_per_second() -> SimResult {
    let lag = Lag { spike: Some((1500, Duration::from_millis(20))), heads_read: false, ..Lag::spread(JITTER) };
    let limiter = Limiter::Leaky { rate: 8.0, burst: 0 };
    simulate_lagged(limiter, None, RateController::new(config(40.0)), LAN, lag, 600.0)
}

/// Beyond the shapes above, nginx `limit_req` with `nodelay` at rates and bursts between them:
/// 0.7 to 12 req/s, bursts 0 to 8, answers 5 and 12 ms away, 84 shapes, 150 s each. Where the
/// rules stand: 64 meet both goals (at most 2 refusals, held at 90% or more over the last
/// minute). The other 20 are slow hosts with a burst of 3 to 8 (0.7–1.8 req/s), held at 70–88%
/// or refused a third time, and 12 req/s with a burst of 1, refused a third time: a ramp of a
/// few requests cannot bound such a burst, so the climb back restarts above the rate and the
/// second refusal pins it loosely. Since the island holding a round rate is preferred, 1 req/s
/// with a burst of 5 is met (it was held at 82%) and 1.8 with a burst of 5 at 12 ms is refused
/// a third time (it was met): its log is 2 req/s with a burst of 4's. This holds that line: a
/// rule tuned on the shapes above must not take the others down.
#[test]
fn a_wider_grid_of_nodelay_shapes_keeps_its_line() {
    let (mut met, mut off) = (0, Vec::new());
    for rate in [0.7, 1.0, 1.5, 1.8, 3.0, 5.0, 12.0] {
        for burst in [0, 1, 2, 3, 5, 8] {
            for latency in [LAN, Duration::from_millis(12)] {
                let r = simulate(Limiter::Leaky { rate, burst }, RateController::new(config(40.0)), latency, 150.0);
                let held = r.served_rate(90.0, 150.0) / rate;
                let name = format!("{rate} req/s, burst {burst}, {} ms", latency.as_millis());
                assert!(r.refusals <= 3, "{name}: {} refusals at {:?}", r.refusals, r.refused);
                assert!(held >= 0.68, "{name}: held at {held:.2}");
                match r.refusals <= 2 && held >= 0.9 {
                    true => met += 1,
                    false => off.push(format!("{name}: {} refusals, held {held:.2}", r.refusals)),
                }
            }
        }
    }
    println!("{met} of 84 meet both goals; off: {off:#?}");
    assert!(met >= 64, "{met} of 84 meet both goals, 64 did; off: {off:#?}");
}
