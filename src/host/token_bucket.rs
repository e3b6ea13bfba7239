//! A token bucket in requests per second: what spaces requests to a host (a late answer from a
//! host that forgets adds a wait on top, `arrival.rs`, which the gate in `state.rs` checks first).
//!
//! Tokens accrue at `rate` per second up to `burst`; a request takes one. With the default burst
//! of 1, requests are spaced at least `1/rate` apart, evenly, however long the host was idle.
//! The bucket owns only that arithmetic. It does not choose the rate (`rate.rs` does), count
//! requests in flight, or hold a clock: every call takes `now`.

use std::time::{Duration, Instant};

/// Slowest rate a host is ever cut to, one request every 30 s. No server can call that load, and
/// a host with a thousand URLs still finishes within a working day.
pub const MIN_RATE: f64 = 1.0 / 30.0;

/// Default burst capacity. One token means even spacing: an idle host never receives two
/// requests back to back, which is what small museum servers cope with best.
pub const DEFAULT_BURST: u32 = 1;

/// Token shortfall treated as zero. Waits are rounded up to whole nanoseconds, and float
/// arithmetic can still leave a token at 0.999_999_999; a millionth of a token is 0.1 µs at the
/// highest rates we use, far below anything a server can measure.
const TOKEN_EPSILON: f64 = 1e-6;

/// How early a token may be taken, owed and paid back by the next one: a timer fires up to a
/// millisecond after the instant asked for (tokio's wheel ticks in ms), and the actor wakes a
/// little later still. Without this, every wait ends late and a host held at 20 req/s is sent
/// 2–3% less than its rate (seen against real nginx: held 0.93 of the limit at a learned 0.96).
/// A request taken early leaves the next one waiting that much longer, so the rate over any two
/// requests is never above the bucket's, and no two leave closer than `1/rate` less this.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// `TIMER_SLACK` is at most this share of a spacing: at 40 req/s, half a millisecond.
const TIMER_SLACK_SHARE: f64 = 0.02;

/// Spaces requests at a rate, with a small burst capacity.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Requests per second, always positive and finite. It may be below `MIN_RATE`: a host split
    /// into shares gives each share a fraction of its rate.
    rate: f64,
    /// Most tokens that can be saved up by idling.
    burst: u32,
    /// Tokens available at `last`.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
    /// When a whole token became available and has not been taken since (see `lateness`).
    ready_since: Option<Instant>,
}

impl TokenBucket {
    /// A bucket holding one token, so a new host's first request goes at once and any further
    /// burst is earned by idling. A rate that is not a positive finite number is taken as
    /// `MIN_RATE` (the most cautious reading); a burst of 0 is taken as 1.
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { rate: sanitize(rate), burst: burst.max(1), tokens: 1.0, last: now, ready_since: Some(now) }
    }

    /// A bucket with no token, for a host handed over from another owner: its last request may
    /// have been a moment ago, so the first one here waits a full `1/rate`.
    pub fn new_empty(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: 0.0, ready_since: None, ..TokenBucket::new(rate, burst, now) }
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Burst capacity in requests.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes a token if one is available at `now`; otherwise returns how long until one is.
    /// A token ready within `TIMER_SLACK` is taken now and owed: the bucket goes below zero by
    /// that much and the next request waits for it.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let owed = self.slack_tokens();
        if self.tokens >= 1.0 - owed - TOKEN_EPSILON {
            self.tokens -= 1.0;
            if self.tokens < 1.0 - TOKEN_EPSILON {
                self.ready_since = None;
            }
            return Ok(());
        }
        let secs = (1.0 - owed - self.tokens) / self.rate;
        Err(Duration::from_nanos((secs * 1e9).ceil() as u64))
    }

    /// The share of a token `TIMER_SLACK` is worth at this rate.
    fn slack_tokens(&self) -> f64 {
        (TIMER_SLACK.as_secs_f64() * self.rate).min(TIMER_SLACK_SHARE)
    }

    /// How long a token has been ready and unused at `now` (zero if none is ready yet): a
    /// request that leaves late was held by something other than the rate, such as the in-flight
    /// cap or an empty queue. A change of rate does not reset it.
    pub fn lateness(&self, now: Instant) -> Duration {
        match self.ready_since {
            Some(ready) => now.saturating_duration_since(ready),
            None => {
                let missing = (1.0 - self.tokens) / self.rate;
                now.saturating_duration_since(self.last).saturating_sub(Duration::from_secs_f64(missing.max(0.0)))
            }
        }
    }

    /// Changes the rate from `now` on. Tokens earned so far were earned at the old rate and stay
    /// capped by `burst`, so raising the rate never releases a burst: the next request comes
    /// when the remaining shortfall is earned at the new rate.
    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        self.refill(now);
        self.rate = sanitize(rate);
    }

    fn refill(&mut self, now: Instant) {
        // `now` earlier than `last` (a caller passing a stale instant) earns nothing.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let before = self.tokens;
        self.tokens = (self.tokens + elapsed * self.rate).min(f64::from(self.burst));
        if self.ready_since.is_none() && self.tokens >= 1.0 - TOKEN_EPSILON {
            let to_one = ((1.0 - before) / self.rate).max(0.0);
            self.ready_since = Some(self.last + Duration::from_secs_f64(to_one.min(elapsed)));
        }
        self.last = self.last.max(now);
    }
}

fn sanitize(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        MIN_RATE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Takes every token it can at each instant of a fine grid over `span`, returning send times.
    fn drive(bucket: &mut TokenBucket, start: Instant, span: f64) -> Vec<f64> {
        let mut sent = Vec::new();
        let mut t = start;
        while t < start + secs(span) {
            match bucket.try_take(t) {
                Ok(()) => sent.push((t - start).as_secs_f64()),
                Err(wait) => t += wait,
            }
        }
        sent
    }

    #[test]
    fn requests_are_evenly_spaced_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, DEFAULT_BURST, t0);
        let sent = drive(&mut bucket, t0, 9.9);
        assert_eq!(sent.len(), 20, "2 req/s for 10 s: {sent:?}");
        let slack = TIMER_SLACK.as_secs_f64();
        for pair in sent.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= 0.5 - slack - 1e-9 && gap <= 0.5 + 1e-6, "a server sees gaps of 1/rate, got {gap}");
        }
        for three in sent.windows(3) {
            assert!(three[2] - three[0] >= 1.0 - slack - 1e-9, "two gaps are never both short: {three:?}");
        }
    }

    /// Drives the bucket the way the server actor does: it sleeps for the wait it is given, and
    /// its timer rounds the wake-up up to the next whole millisecond and adds `late` seconds.
    fn drive_with_timer(bucket: &mut TokenBucket, start: Instant, span: f64, late: f64) -> Vec<f64> {
        let mut sent = Vec::new();
        let mut t = 0.0_f64;
        while t < span {
            match bucket.try_take(start + secs(t)) {
                Ok(()) => sent.push(t),
                Err(wait) => t = ((t + wait.as_secs_f64()) * 1000.0).ceil() / 1000.0 + late,
            }
        }
        sent
    }

    #[test]
    fn a_timer_that_wakes_late_costs_no_rate_and_never_sends_two_too_close() {
        let t0 = Instant::now();
        for rate in [8.0, 20.0] {
            let mut bucket = TokenBucket::new(rate, DEFAULT_BURST, t0);
            let sent = drive_with_timer(&mut bucket, t0, 30.0, 0.0003);
            let held = (sent.len() - 1) as f64 / (sent[sent.len() - 1] - sent[0]);
            assert!(held >= 0.995 * rate, "{rate} req/s held at {held:.3}");
            let closest = sent.windows(2).map(|p| p[1] - p[0]).fold(f64::INFINITY, f64::min);
            assert!(closest >= 1.0 / rate - TIMER_SLACK.as_secs_f64() - 1e-9, "{rate} req/s: two {closest} s apart");
        }
    }

    #[test]
    fn an_idle_host_gets_no_burst_with_default_capacity() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, DEFAULT_BURST, t0);
        let later = t0 + secs(3600.0);
        assert!(bucket.try_take(later).is_ok());
        let wait = bucket.try_take(later).expect_err("an hour of idling must not save up tokens");
        assert!(wait >= secs(0.999) - TIMER_SLACK, "{wait:?}");
    }

    #[test]
    fn burst_capacity_allows_that_many_then_spacing() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 3, t0);
        let idle = t0 + secs(60.0);
        for _ in 0..3 {
            assert!(bucket.try_take(idle).is_ok());
        }
        assert!(bucket.try_take(idle).is_err(), "a 4th immediate request exceeds the burst of 3");
    }

    #[test]
    fn raising_the_rate_releases_no_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, DEFAULT_BURST, t0);
        bucket.try_take(t0).unwrap();
        bucket.set_rate(100.0, t0 + secs(0.5));
        // Half a token was earned at 1/s; the other half takes 5 ms at 100/s (less the timer's
        // slack, 2% of a token at 100/s).
        let wait = bucket.try_take(t0 + secs(0.5)).expect_err("raising the rate must not grant a token");
        assert!((wait.as_secs_f64() - 0.0048).abs() < 1e-6, "{wait:?}");
        let sent = drive(&mut bucket, t0 + secs(0.5), 1.0);
        assert!(sent.len() <= 100, "at most 100 in the first second at 100/s, got {}", sent.len());
    }

    #[test]
    fn lowering_the_rate_slows_the_next_request() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, DEFAULT_BURST, t0);
        bucket.try_take(t0).unwrap();
        bucket.set_rate(0.5, t0);
        let wait = bucket.try_take(t0).unwrap_err();
        let gap = wait.as_secs_f64() + TIMER_SLACK.as_secs_f64();
        assert!((gap - 2.0).abs() < 1e-6, "after a cut to 0.5/s the gap is 2 s: {wait:?}");
    }

    #[test]
    fn lateness_tells_how_long_a_token_waited() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, DEFAULT_BURST, t0);
        bucket.try_take(t0).unwrap();
        assert_eq!(bucket.lateness(t0 + secs(0.25)), Duration::ZERO, "the next token is not ready yet");
        assert!((bucket.lateness(t0 + secs(0.8)).as_secs_f64() - 0.3).abs() < 1e-9, "ready at 0.5 s, used at 0.8 s");
    }

    #[test]
    fn a_handed_over_host_waits_a_full_interval() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new_empty(0.5, DEFAULT_BURST, t0);
        assert!(bucket.try_take(t0).is_err());
        assert!(bucket.try_take(t0 + secs(1.9)).is_err());
        assert!(bucket.try_take(t0 + secs(2.0)).is_ok());
    }

    #[test]
    fn nonsense_rates_fall_back_to_the_slowest_rate() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut bucket = TokenBucket::new(rate, 0, t0);
            assert_eq!(bucket.rate(), MIN_RATE);
            assert_eq!(bucket.burst(), 1);
            bucket.try_take(t0).unwrap();
            assert!(bucket.try_take(t0 + secs(1.0)).is_err(), "rate {rate} must not mean unlimited");
        }
    }
}
