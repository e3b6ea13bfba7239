//! Which leaky buckets could have given the answers a host gave: nginx's `limit_req` fitted to
//! the send log.
//!
//! nginx keeps per key an *excess* in requests and the time of the last accepted request. A
//! request at `t` has excess `max(0, excess - rate × (t - last) + 1)`; above `burst` it is
//! refused and nothing is updated, otherwise it is accepted and the state moves on. The first
//! request on a fresh key is free. A token bucket of `burst + 1` tokens refilled at `rate`
//! accepts exactly the same requests, and so do most API gateways' "rate and burst" limits.
//!
//! For a candidate rate `r`, the excess after each accepted request depends on the accepted
//! sends alone (a refused one changes nothing), not on the burst. One pass over the log gives,
//! for each `r`, the least burst that let every accepted request through (the largest excess an
//! accepted one had) and an upper bound (a refused one must have had more than the burst). `r`
//! is *consistent* when the first is below the second. Refusals only ever exclude rates above
//! the truth, and acceptances after a refusal exclude rates below it (the bucket was full when
//! it refused, so whatever it accepted since, it drained), so a few refusals pin the rate.
//! Between the two, each rate leaves a range of bursts that fits; where that range holds no
//! whole number the rate does not fit nginx, whose `burst=` is a whole number of requests
//! (`lowest_whole`). Of the islands of rates with a whole burst that remain, one holding a
//! round rate is the likeliest (`likeliest_whole`): `rate=` is written by people.
//!
//! Times are read on our clock, which differs from the server's by network and timer jitter:
//! an excess is trusted only to `JITTER` seconds of leak either way. A host that limits by some
//! other rule (a sliding window, a block after a burst) may have no consistent rate at all; the
//! caller then falls back on other evidence. This module owns the arithmetic only; `rate.rs`
//! decides what to do with it, and `send_log.rs` keeps the sends it reads. Time is passed in.

use std::time::{Duration, Instant};

/// Candidate rates are spaced by this factor: 1%, finer than the 3% held below an estimate.
const GRID_STEP: f64 = 1.01;

/// Most candidates looked at: 1% steps from 1/30 req/s to 60 req/s are 750.
const MAX_CANDIDATES: usize = 1200;

/// How far our clock's view of a request may be from the server's: timers fire a few ms late
/// and a request crosses the network in a varying time. Seen up to about 5 ms on loopback;
/// 10 ms keeps a 20 req/s limit fittable (its excess is then trusted to 0.2 requests per end).
pub const JITTER: Duration = Duration::from_millis(10);

/// How far above the least burst a candidate needs a whole number must lie to count
/// (`lowest_whole`), in requests. Both ends of the range already allow for `JITTER`; a range
/// that only grazes a whole number (4.98 to 5.03 requests at 1.875 req/s, seen for a host at
/// 2 req/s with a burst of 4) is an edge of that allowance, not evidence of the burst. In the
/// simulation it holds 0.5 req/s with a burst of 4 and `Retry-After` at 90% of its limit instead
/// of 88%, and 2 req/s with a burst of 4 and `Retry-After` at 97% instead of 95%.
pub const WHOLE_MARGIN: f64 = 0.035;

/// A send the host answered, in the order they were sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answered {
    pub at: Instant,
    pub accepted: bool,
}

/// A rate consistent with the log, and the least burst that goes with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub rate: f64,
    /// The largest excess an accepted request had at this rate: the host's burst is at least this.
    pub burst: f64,
    /// The smallest excess a refused request had at this rate: the host's burst is below this.
    pub room: f64,
}

impl Candidate {
    /// The whole number of requests of burst this candidate fits, one `WHOLE_MARGIN` or more
    /// above the least it needs; `None` for a rate that needs no burst, or fits none.
    pub fn whole_burst(&self) -> Option<f64> {
        let whole = (self.burst + WHOLE_MARGIN).ceil();
        (self.burst > 0.0 && whole < self.room).then_some(whole)
    }
}

/// Whether a rate people configure lies between `from` and `to` req/s, give or take one
/// `GRID_STEP` (the truth may lie between two candidates): a whole number a second, or below
/// one a second a whole number a minute that divides 60 (one request every 2, 3, 4, 5, 6, 10,
/// 12, 15, 20, 30 or 60 s). nginx's `rate=` is written in requests a second or a minute.
pub fn holds_round_rate(from: f64, to: f64) -> bool {
    let (from, to) = (from / GRID_STEP, to * GRID_STEP);
    let whole_second = to >= 1.0 && from.max(1.0).ceil() <= to;
    let per_minute = [30.0, 20.0, 15.0, 12.0, 10.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0];
    whole_second || per_minute.iter().map(|m| m / 60.0).any(|r| from <= r && r <= to)
}

/// The rates between `low` and `high` that a leaky bucket could limit the host to.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakyFit {
    /// Consistent candidates, lowest rate first.
    candidates: Vec<Candidate>,
    /// The lowest rate looked at; a fit whose lowest candidate is this one is not bounded below.
    floor: f64,
}

impl LeakyFit {
    /// Fits rates from `low` to `high` (1% apart) to `log`, which must hold at least one refusal
    /// to exclude anything above the truth.
    pub fn new(log: &[Answered], low: f64, high: f64) -> LeakyFit {
        let mut candidates = Vec::new();
        // Without a refusal every rate fits, which says nothing.
        let refused = log.iter().any(|a| !a.accepted);
        let mut rate = if refused { low } else { f64::INFINITY };
        while rate <= high && candidates.len() < MAX_CANDIDATES {
            if let Some((burst, room)) = least_burst(log, rate) {
                candidates.push(Candidate { rate, burst, room });
            }
            rate *= GRID_STEP;
        }
        LeakyFit { candidates, floor: low }
    }

    /// The lowest consistent rate, if the log bounds it from below (a rate the host was seen to
    /// drain at after refusing). `None` with no consistent rate or none excluded below.
    pub fn lowest(&self) -> Option<f64> {
        self.candidates.first().filter(|c| c.rate > self.floor * GRID_STEP.sqrt()).map(|c| c.rate)
    }

    /// The lowest consistent rate whose burst can be a whole number of requests, if the log
    /// bounds the rate from below: one `WHOLE_MARGIN` or more above the least burst the
    /// candidate needs (a rate that needs no burst at all, a spacing limit, fits with 0: a
    /// request refused only a few ms too early leaves it a room of a hundredth of a request).
    /// nginx's `burst=` is a whole number, and so is the capacity of most token buckets: once
    /// two refusals pin the burst at each rate to less than a request, this rules out the rates
    /// between the whole ones. Where no whole burst fits (a limiter of another kind), the lowest
    /// consistent rate.
    pub fn lowest_whole(&self) -> Option<f64> {
        let low = self.lowest()?;
        let whole = |c: &&Candidate| c.burst <= 0.0 || c.whole_burst().is_some();
        Some(self.candidates.iter().find(whole).map_or(low, |c| c.rate.max(low)))
    }

    /// The rate to hold a bucket at once two refusals bound it: [`lowest_whole`], unless the
    /// log leaves more than one island of whole bursts (runs of rates sharing one whole burst)
    /// and the lowest holds no round rate while a higher one does ([`holds_round_rate`]): then
    /// the lowest rate of the lowest island that does. Two refusals close together can leave
    /// islands 10% apart that no request tells apart without being refused by one of them (2
    /// req/s with a burst of 4 and 1.8 with a burst of 5 leave the same two); people write round
    /// rates, so the round one is likelier. A host at a rate that is not round and lies on the
    /// lower island is refused once more, and then held by the fit of that refusal.
    ///
    /// [`lowest_whole`]: LeakyFit::lowest_whole
    pub fn likeliest_whole(&self) -> Option<f64> {
        let low = self.lowest_whole()?;
        let mut islands: Vec<(f64, f64, f64)> = Vec::new();
        for c in self.candidates.iter().filter(|c| c.rate >= low) {
            let Some(burst) = c.whole_burst() else { continue };
            match islands.last_mut() {
                Some(island) if island.0 == burst => island.2 = c.rate,
                _ => islands.push((burst, c.rate, c.rate)),
            }
        }
        let round = islands.iter().position(|&(_, from, to)| holds_round_rate(from, to));
        Some(match round {
            Some(i) if i > 0 => islands[i].1,
            _ => low,
        })
    }

    /// The highest consistent rate.
    pub fn highest(&self) -> Option<f64> {
        self.candidates.last().map(|c| c.rate)
    }

    /// The lowest consistent rate whose burst is at most `burst` requests: what the host allows
    /// at least, if its burst is no larger.
    pub fn lowest_with_burst(&self, burst: f64) -> Option<f64> {
        self.candidates.iter().find(|c| c.burst <= burst).map(|c| c.rate)
    }

    /// The consistent rates that need no burst at all (a spacing limit, nginx with `burst=0`),
    /// as (lowest, if bounded below by an accepted spacing; highest). `None` when the log needs
    /// a burst at every rate: the host let a run through faster than it refused one.
    pub fn burst_free(&self) -> Option<(Option<f64>, f64)> {
        let mut free = self.candidates.iter().filter(|c| c.burst <= 0.0).map(|c| c.rate);
        let low = free.next()?;
        let high = free.next_back().unwrap_or(low);
        Some(((low > self.floor * GRID_STEP.sqrt()).then_some(low), high))
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }
}

/// Replays `log` through a bucket leaking at `rate` from empty; returns the least burst that
/// accepted every accepted request and the least excess a refused one had, if every refused
/// request would have exceeded that burst.
fn least_burst(log: &[Answered], rate: f64) -> Option<(f64, f64)> {
    let slack = rate * JITTER.as_secs_f64();
    let mut excess = 0.0_f64;
    let mut last: Option<Instant> = None;
    // Largest excess among accepted requests (read generously), smallest among refused ones
    // (read strictly).
    let (mut most_accepted, mut least_refused) = (0.0_f64, f64::INFINITY);
    for a in log {
        // The excess before nginx's clamp at zero; the first request on a key is free.
        let unclamped = match last {
            Some(l) => excess - rate * a.at.saturating_duration_since(l).as_secs_f64() + 1.0,
            None => 0.0,
        };
        if a.accepted {
            most_accepted = most_accepted.max(unclamped - slack);
            excess = unclamped.max(0.0);
            last = Some(a.at);
        } else {
            // Refusing the first request is no leaky bucket's doing: nothing fits.
            let jitter = if last.is_some() { slack } else { 0.0 };
            least_refused = least_refused.min(unclamped + jitter);
        }
    }
    // A burst is never negative, and a refused request had more excess than the burst.
    (most_accepted.max(0.0) < least_refused).then_some((most_accepted.max(0.0), least_refused))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(t0: Instant, sends: &[(f64, bool)]) -> Vec<Answered> {
        sends.iter().map(|&(s, accepted)| Answered { at: t0 + Duration::from_secs_f64(s), accepted }).collect()
    }

    #[test]
    fn a_refused_request_closer_than_the_spacing_bounds_the_rate_from_above() {
        // 2 req/s accepted, then one 0.4 s after: refused by a bucket of 2 req/s and no burst.
        let t0 = Instant::now();
        let fit = LeakyFit::new(&log(t0, &[(0.0, true), (0.5, true), (1.0, true), (1.4, false)]), 0.1, 10.0);
        let zero_burst = fit.candidates().iter().filter(|c| c.burst < 0.05).map(|c| c.rate);
        let (lo, hi) = zero_burst.fold((f64::MAX, 0.0_f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
        assert!((1.9..=2.1).contains(&lo) && hi < 2.6, "no burst: {lo}..{hi}");
        assert!(fit.highest().unwrap() < 2.6);
        assert_eq!(fit.lowest(), None, "one refusal says nothing from below: a slow bucket with a burst fits too");
    }

    #[test]
    fn acceptances_after_a_refusal_pin_the_rate_from_below() {
        // Refused at 0.4 s spacing, then 1 req/s accepted for 20 s, then refused at 1.2 req/s.
        let t0 = Instant::now();
        let mut sends = vec![(0.0, true), (0.5, true), (0.9, false)];
        sends.extend((0..20).map(|i| (2.0 + i as f64, true)));
        sends.push((21.8, false));
        let fit = LeakyFit::new(&log(t0, &sends), 0.1, 10.0);
        let lo = fit.lowest().expect("bounded below");
        assert!(lo > 0.85 && lo <= 1.0, "{lo}");
    }

    /// The answers of an nginx-like leaky bucket (`rate` per second, `burst` whole requests, no
    /// delay) to requests sent at `sends` seconds.
    fn nginx(t0: Instant, rate: f64, burst: f64, sends: &[f64]) -> Vec<Answered> {
        let (mut level, mut last) = (0.0_f64, 0.0_f64);
        let mut out = Vec::new();
        for &t in sends {
            let drained = (level - rate * (t - last)).max(0.0);
            let accepted = drained + 1.0 <= burst + 1.0 + 1e-9;
            if accepted {
                (level, last) = (drained + 1.0, t);
            }
            out.push(Answered { at: t0 + Duration::from_secs_f64(t), accepted });
        }
        out
    }

    /// A fit holding `islands` of (whole burst, first rate, last rate): candidates 1% apart
    /// whose least burst lies 0.1 below the whole one, with room up to 0.1 above it.
    fn islands(islands: &[(f64, f64, f64)]) -> LeakyFit {
        let mut candidates = Vec::new();
        for &(burst, from, to) in islands {
            let mut rate = from;
            while rate <= to * 1.0001 {
                candidates.push(Candidate { rate, burst: burst - 0.1, room: burst + 0.1 });
                rate *= GRID_STEP;
            }
        }
        LeakyFit { candidates, floor: 0.1 }
    }

    #[test]
    fn of_two_islands_of_whole_bursts_the_one_holding_a_round_rate_is_held() {
        // Two refusals close together at 2 req/s with a burst of 4 (or 1.8 with a burst of 5).
        let two = islands(&[(5.0, 1.80, 1.82), (4.0, 2.01, 2.01)]);
        assert_eq!(two.lowest_whole(), Some(1.80));
        assert_eq!(two.likeliest_whole(), Some(2.01), "2 req/s is written, 1.8 hardly ever");
        // The lowest island holds a round rate: it stays the one held.
        let low_round = islands(&[(5.0, 0.99, 1.02), (4.0, 1.21, 1.24)]);
        assert_eq!(low_round.likeliest_whole(), Some(0.99));
        // No island holds one: the lowest, as before.
        let none = islands(&[(3.0, 1.31, 1.34), (2.0, 1.49, 1.52)]);
        assert_eq!(none.likeliest_whole(), Some(1.31));
        // Below one a second, the round rates are a request every 2, 3, 4, 5, 6, 10, … s.
        assert!(holds_round_rate(0.49, 0.52) && holds_round_rate(0.2, 0.2) && !holds_round_rate(0.62, 0.64));
        assert!(holds_round_rate(2.01, 2.01) && !holds_round_rate(1.80, 1.82) && holds_round_rate(11.93, 11.93));
    }

    #[test]
    fn a_whole_burst_never_puts_the_held_rate_above_the_truth_and_moves_it_closer() {
        // 2 req/s with a burst of 4: a fast ramp refused, a stretch at the limit, then a creep
        // at 2.2 req/s refused again.
        let t0 = Instant::now();
        let mut sends: Vec<f64> = (0..15).map(|i| i as f64 * 0.2).collect();
        sends.extend((0..20).map(|i| 4.0 + i as f64 * 0.5));
        sends.extend((0..30).map(|i| 14.0 + i as f64 / 2.2));
        let answers = nginx(t0, 2.0, 4.0, &sends);
        assert!(answers.iter().filter(|a| !a.accepted).count() >= 2, "the bucket refused twice");
        let fit = LeakyFit::new(&answers, 0.1, 10.0);
        let (low, whole) = (fit.lowest().expect("bounded below"), fit.lowest_whole().expect("bounded below"));
        assert!(whole >= low, "{whole} below the lowest fit {low}");
        assert!(whole <= 2.0 * GRID_STEP, "a whole burst never reads above the true 2 req/s: {whole}");
        assert!((2.0 - whole).abs() <= (2.0 - low).abs(), "closer to the truth: {whole} against {low}");
        // Up to the first refusal nothing bounds the rate from below, and no rule applies.
        let first = answers.iter().position(|a| !a.accepted).unwrap();
        let first = LeakyFit::new(&answers[..=first], 0.1, 10.0);
        assert_eq!((first.lowest(), first.lowest_whole()), (None, None));
    }
}
