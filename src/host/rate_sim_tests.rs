//! The simulator the rate tests drive `rate.rs`'s rules with: a host behind one of the
//! limiters servers run (`Limiter`), requests reaching it after a `Lag`, answers after a
//! latency, all in virtual time, and what the server saw (`SimResult`).

// The parent's imports: `rate.rs`'s items, and the host's gate (`LiveHost`, `Gate`).
use super::*;
use test_origin::rng::SplitMix64;

/// How a simulated host decides whether to serve a request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Limiter {
    /// At most `limit` served in any sliding window of 1 s (below 1 req/s: one per 1/limit s),
    /// like the test origin's `ratelimit:` hosts.
    Window(f64),
    /// Refuses a request arriving less than 1/limit after the last one served (nginx
    /// `limit_req` without burst).
    Spacing(f64),
    /// Serves everything, but answers 500 to a random `p` of requests.
    Random5xx(f64),
    /// nginx `limit_req` with `rate`, `burst` and `nodelay`: a leaky bucket counted in ms, that
    /// lets `burst` requests through at once and then one per 1/rate.
    Leaky { rate: f64, burst: u32 },
    /// nginx `limit_req` without `nodelay`: the same bucket, but requests over the rate wait in
    /// the server's queue (up to `burst`) and are answered at the rate.
    Queued { rate: f64, burst: u32 },
    /// A token bucket (CDNs, API gateways): `capacity` tokens refilled continuously at `rate`.
    Tokens { rate: f64, capacity: f64 },
}

impl Limiter {
    pub(super) fn limit(self) -> f64 {
        match self {
            Limiter::Window(l) | Limiter::Spacing(l) | Limiter::Random5xx(l) => l,
            Limiter::Leaky { rate, .. } | Limiter::Queued { rate, .. } | Limiter::Tokens { rate, .. } => rate,
        }
    }

    /// Requests the limiter lets through at once on top of the rate.
    pub(super) fn burst(self) -> f64 {
        match self {
            Limiter::Leaky { burst, .. } | Limiter::Queued { burst, .. } => f64::from(burst),
            Limiter::Tokens { capacity, .. } => capacity - 1.0,
            Limiter::Window(_) | Limiter::Spacing(_) | Limiter::Random5xx(_) => 0.0,
        }
    }
}

/// A host with a limiter; requests take `latency` to answer.
pub(super) struct SimHost {
    pub(super) limiter: Limiter,
    pub(super) served: VecDeque<Instant>,
    pub(super) rng: SplitMix64,
    /// nginx's state of a `limit_req` key: the excess (in requests) and when it was last updated.
    pub(super) excess: f64,
    pub(super) last: Option<Instant>,
}

impl SimHost {
    pub(super) fn new(limiter: Limiter) -> SimHost {
        SimHost { limiter, served: VecDeque::new(), rng: SplitMix64(42), excess: 0.0, last: None }
    }

    /// nginx's `ngx_http_limit_req_lookup`: the excess left after the time since the last
    /// accepted request leaks at `rate` (in whole ms), plus this request; over `burst`, refused
    /// (and nothing is updated). Returns the excess of an accepted request.
    pub(super) fn leaky(&mut self, t: Instant, rate: f64, burst: u32) -> Option<f64> {
        let Some(last) = self.last else {
            self.last = Some(t);
            self.excess = 0.0;
            return Some(0.0);
        };
        let ms = t.saturating_duration_since(last).as_millis() as f64;
        let excess = (self.excess - rate * ms / 1000.0 + 1.0).max(0.0);
        if excess > f64::from(burst) + 1e-9 {
            return None;
        }
        self.excess = excess;
        self.last = Some(t);
        Some(excess)
    }

    /// The answer to a request arriving at `t`, and how long the server holds it before
    /// answering (delay mode's queue).
    pub(super) fn answer(&mut self, t: Instant) -> (Outcome, Duration) {
        match self.limiter {
            Limiter::Leaky { rate, burst } => {
                (Outcome::Status(if self.leaky(t, rate, burst).is_some() { 200 } else { 429 }), Duration::ZERO)
            }
            Limiter::Queued { rate, burst } => match self.leaky(t, rate, burst) {
                Some(excess) => (Outcome::Status(200), Duration::from_secs_f64(excess / rate)),
                None => (Outcome::Status(429), Duration::ZERO),
            },
            _ => (self.arrive(t), Duration::ZERO),
        }
    }

    pub(super) fn arrive(&mut self, t: Instant) -> Outcome {
        let admit = |served: &mut VecDeque<Instant>, window: Duration, cap: usize| {
            while served.front().is_some_and(|a| t.duration_since(*a) >= window) {
                served.pop_front();
            }
            let ok = served.len() < cap;
            if ok {
                served.push_back(t);
            }
            ok
        };
        let ok = match self.limiter {
            Limiter::Window(l) if l >= 1.0 => admit(&mut self.served, Duration::from_secs(1), l.floor() as usize),
            Limiter::Window(l) | Limiter::Spacing(l) => admit(&mut self.served, Duration::from_secs_f64(1.0 / l), 1),
            Limiter::Random5xx(p) => {
                let draw = (self.rng.next_u64() % 1_000_000) as f64 / 1e6;
                return Outcome::Status(if draw < p { 500 } else { 200 });
            }
            Limiter::Tokens { rate, capacity } => {
                let idle = self.last.map_or(capacity, |l| t.saturating_duration_since(l).as_secs_f64() * rate);
                let tokens = (self.excess + idle).min(capacity);
                self.last = Some(t);
                self.excess = if tokens >= 1.0 { tokens - 1.0 } else { tokens };
                tokens >= 1.0
            }
            Limiter::Leaky { .. } | Limiter::Queued { .. } => unreachable!("answered by `answer`"),
        };
        Outcome::Status(if ok { 200 } else { 429 })
    }
}

#[derive(Debug)]
pub(super) struct SimResult {
    pub(super) refusals: u32,
    pub(super) requests: u32,
    /// (seconds since the first request, rate) after every change.
    pub(super) rates: Vec<(f64, f64)>,
    /// Arrival times of served requests, seconds since the first request.
    pub(super) served: Vec<f64>,
    /// Arrival times of all requests, refused ones included.
    pub(super) arrived: Vec<f64>,
    /// Arrival times of refused requests.
    pub(super) refused: Vec<f64>,
    /// Longest a request waited in the server's queue (delay mode).
    pub(super) max_held: Duration,
    pub(super) controller: RateController,
}

impl SimResult {
    /// Served requests per second between `from` and `to` seconds.
    pub(super) fn served_rate(&self, from: f64, to: f64) -> f64 {
        self.served.iter().filter(|t| **t >= from && **t < to).count() as f64 / (to - from)
    }

    /// First second at which the rate reached `r`.
    pub(super) fn reached(&self, r: f64) -> Option<f64> {
        self.rates.iter().find(|(_, rate)| *rate >= r - 1e-9).map(|(t, _)| *t)
    }

    /// Most requests (refused ones included) that arrived in any 1 s, less the arrivals' jitter:
    /// two sends a second apart may arrive a little less than a second apart.
    pub(super) fn peak_per_second(&self) -> usize {
        let a = &self.arrived;
        let span = 1.0 - JITTER.as_secs_f64();
        (0..a.len()).map(|i| a[i..].iter().take_while(|t| **t < a[i] + span).count()).max().unwrap_or(0)
    }

    pub(super) fn min_rate(&self) -> f64 {
        self.rates.iter().map(|(_, r)| *r).fold(f64::INFINITY, f64::min)
    }
}

/// Drives a `LiveHost` (gate, bucket, controller) against `host` in virtual time, with a queue
/// that never empties, for `secs` seconds. Answers come back in order after `latency`.
pub(super) fn simulate(limiter: Limiter, controller: RateController, latency: Duration, secs: f64) -> SimResult {
    simulate_with(limiter, None, controller, latency, secs)
}

/// `simulate`, with a `Retry-After` of `retry_after` on every refusal.
pub(super) fn simulate_with(
    limiter: Limiter,
    retry_after: Option<Duration>,
    controller: RateController,
    latency: Duration,
    secs: f64,
) -> SimResult {
    simulate_lagged(limiter, retry_after, controller, latency, Lag::spread(JITTER), secs)
}

/// How long a request takes to reach the server after it leaves.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lag {
    /// Up to this, at random.
    pub(super) spread: Duration,
    /// And one request in `.0`, this much more (a busy machine's scheduler, a GC pause).
    pub(super) spike: Option<(u64, Duration)>,
    /// And the first request sent `.0` s or more into the run, this much more.
    pub(super) late: Option<(f64, Duration)>,
    /// Whether the host is told when each answer's head came (`LiveHost::heard`), so that a
    /// late one holds the next request back (`arrival.rs`). Off, the late requests' refusals
    /// test the controller's own rules for the refusals that guard cannot prevent (a late
    /// request answered only after the next one left).
    pub(super) heads_read: bool,
}

impl Lag {
    /// Up to `spread`, at random, with every answer's head read.
    pub(super) fn spread(spread: Duration) -> Lag {
        Lag { spread, spike: None, late: None, heads_read: true }
    }
}

/// `simulate_with`, requests reaching the server after a `lag`.
pub(super) fn simulate_lagged(
    limiter: Limiter,
    retry_after: Option<Duration>,
    controller: RateController,
    latency: Duration,
    lag: Lag,
    secs: f64,
) -> SimResult {
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let mut host = SimHost::new(limiter);
    let mut result = SimResult {
        refusals: 0,
        requests: 0,
        rates: vec![(0.0, controller.rate())],
        served: Vec::new(),
        arrived: Vec::new(),
        refused: Vec::new(),
        max_held: Duration::ZERO,
        controller: controller.clone(),
    };
    let mut live = LiveHost::with_rate(controller, BreakerPolicy::default(), t0);
    let mut in_flight: VecDeque<(Instant, Instant, Outcome)> = VecDeque::new();
    let mut t = t0;
    // Requests reach the server up to JITTER after they leave, at random: timers fire late,
    // connections and the network add their own. A rate exactly at a window's limit is refused
    // now and then, as it is on a real server.
    let mut jitter = SplitMix64(7);
    let mut late_done = false;
    while t < end {
        while let Some(&(sent, done, outcome)) = in_flight.front().filter(|r| r.1 <= t) {
            in_flight.pop_front();
            let ra = retry_after.filter(|_| outcome == Outcome::Status(429));
            if lag.heads_read {
                live.heard(sent, done);
            }
            if let Some(change) = live.observe(&outcome, ra, sent, done) {
                result.rates.push(((done - t0).as_secs_f64(), change.to));
            }
        }
        let answer = in_flight.front().map(|r| r.1);
        match live.try_send(in_flight.len() as u32, t) {
            Gate::Send => {
                let spike =
                    lag.spike.filter(|(every, _)| jitter.next_u64() % every == 0).map_or(Duration::ZERO, |s| s.1);
                let late = lag.late.filter(|(at, _)| (t - t0).as_secs_f64() >= *at && !late_done);
                late_done |= late.is_some();
                let lag = Duration::from_micros(jitter.next_u64() % lag.spread.as_micros() as u64)
                    + spike
                    + late.map_or(Duration::ZERO, |l| l.1);
                let at = t + lag;
                let (outcome, held) = host.answer(at);
                result.requests += 1;
                result.arrived.push((at - t0).as_secs_f64());
                match outcome {
                    Outcome::Status(429) => {
                        result.refusals += 1;
                        result.refused.push((at - t0).as_secs_f64());
                    }
                    Outcome::Status(200) => result.served.push((at - t0).as_secs_f64()),
                    _ => {}
                }
                result.max_held = result.max_held.max(held);
                // Answers come back in the order they were sent (one connection's worth), as
                // late as their requests arrived.
                let done = (at + held + latency).max(in_flight.back().map_or(t, |r| r.1));
                in_flight.push_back((t, done, outcome));
                continue;
            }
            Gate::Wait { until } => t = answer.map_or(until, |a| a.min(until)),
            Gate::AtCapacity => t = answer.expect("at capacity means a request is in flight"),
            Gate::Dead => panic!("a simulated host never stops answering"),
        }
    }
    result.controller = live.rate().clone();
    result
}

pub(super) fn config(max_rate: f64) -> RateConfig {
    RateConfig { max_rate, ..RateConfig::default() }
}

pub(super) const LAN: Duration = Duration::from_millis(5);

/// Most a request's arrival at the server lags its departure (see `simulate_with`).
pub(super) const JITTER: Duration = Duration::from_millis(3);
