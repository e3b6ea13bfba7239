//! The start-rate rule: the rate a server's download starts at, from what `profile` saw.
//!
//! Plain arithmetic on a summary of the samples ([`Evidence`]); no clock, no I/O. The runner
//! (`run.rs`) gathers the evidence, `samples.rs` reduces the raw samples to it.
//!
//! # The rule
//! 1. **A refusal wins.** A sample that was refused (a 429, or an error status with
//!    `Retry-After`) means the server already found one request every `spacing` too much: start
//!    at half that sampling rate, `0.5 / spacing_secs`. This is checked before anything else,
//!    so a server that refuses its very first sample is not started at `INITIAL_RATE_LIMIT`,
//!    which may be faster than what it just refused.
//! 2. **Nothing learned.** No sample answered 2xx (all 403, all 404, unreachable, robots.txt
//!    said "not now", or nothing was sent): start at `INITIAL_RATE_LIMIT`, as without a profile.
//! 3. **Otherwise, from the latency.** `MAX_IN_FLIGHT_PER_HOST / (4 × median response time)`:
//!    the rate at which the host's in-flight cap would be a quarter used, given how long a whole
//!    response (head and body) took, but never above `INITIAL_RATE_LIMIT` (nor `MAX_RATE_LIMIT`)
//!    and never below `MIN_RATE` (one request every 30 s). A profile starts a slow server gentler
//!    than the default and a fast one at the default: samples one a second say nothing about a
//!    limit above one a second, and starting a fast host higher was measured to cost a
//!    rate-limited host three refusals where slow start from the default costs one. The
//!    download's slow start finds a fast host's limit from there.
//! 4. **Crawl-delay caps it.** A robots.txt `Crawl-delay: d` caps the result at `1/d` req/s,
//!    below the floor if need be: the operator's word beats our defaults.

use std::time::Duration;

use crate::host::rate::MIN_RATE;

/// The shortest median response time the rule divides by. Loopback and cached answers come
/// back in well under a millisecond; dividing by that would only be clamped by the ceiling
/// anyway, and a zero would be a division by zero.
pub const MIN_LATENCY: Duration = Duration::from_millis(1);

/// A host is started so its in-flight cap is used to this fraction: room for answers to slow
/// down fourfold before requests queue behind the cap.
pub const IN_FLIGHT_SHARE: f64 = 4.0;

/// What the samples of one server showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Sample requests sent.
    pub sent: usize,
    /// Samples answered 2xx.
    pub successes: usize,
    /// The answer that refused a sample ("429", "503 with Retry-After"), if one did.
    pub refused: Option<String>,
    /// Median full response time of the samples that were answered (any status).
    pub median_latency: Option<Duration>,
    /// Start-to-start spacing the samples were sent at.
    pub spacing: Duration,
    /// robots.txt's Crawl-delay, seconds.
    pub crawl_delay: Option<f64>,
}

/// The configured bounds the rule works within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `INITIAL_RATE_LIMIT`: the start without evidence, and the floor of a healthy host.
    pub initial: f64,
    /// `MAX_RATE_LIMIT`: the ceiling.
    pub max: f64,
    /// `MAX_IN_FLIGHT_PER_HOST`.
    pub max_in_flight: u32,
}

impl Limits {
    pub fn from_settings(s: &crate::config::Settings) -> Limits {
        Limits { initial: s.initial_rate_limit, max: s.max_rate_limit, max_in_flight: s.max_in_flight_per_host }
    }
}

/// The rule's answer: the start rate (req/s) and why, in words a user reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub rate: f64,
    pub notes: Vec<String>,
}

/// The start rate for one server; see the module docs for the rule.
pub fn start_rate(e: &Evidence, l: &Limits) -> Start {
    let mut notes = Vec::new();
    let rate = if let Some(refusal) = &e.refused {
        let sampling = 1.0 / e.spacing.as_secs_f64().max(f64::EPSILON);
        notes.push(format!(
            "refused a sample ({refusal}): start at half the sampling rate, {} req/s",
            rate_text(0.5 * sampling)
        ));
        0.5 * sampling
    } else if e.successes == 0 {
        if e.sent > 0 {
            notes.push("nothing learned (no 2xx): start at INITIAL_RATE_LIMIT".into());
        }
        l.initial
    } else {
        let latency = e.median_latency.unwrap_or(MIN_LATENCY).max(MIN_LATENCY).as_secs_f64();
        let raw = f64::from(l.max_in_flight) / (IN_FLIGHT_SHARE * latency);
        let start = raw.min(l.initial).min(l.max).max(MIN_RATE);
        if start < l.initial.min(l.max) {
            notes.push(format!(
                "slow answers ({:.0} ms): start at {} req/s, below INITIAL_RATE_LIMIT",
                latency * 1e3,
                rate_text(start)
            ));
        }
        start
    };
    match e.crawl_delay.filter(|d| d.is_finite() && *d > 0.0) {
        Some(d) => {
            let cap = 1.0 / d;
            notes.push(format!("Crawl-delay {d} s caps the rate at {} req/s", rate_text(cap)));
            Start { rate: rate.min(cap), notes }
        }
        None => Start { rate, notes },
    }
}

/// A rate as people read it: at most three decimals, no trailing zeros (`0.5`, `0.333`, `10`).
pub fn rate_text(rate: f64) -> String {
    let s = format!("{rate:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { initial: 1.0, max: 10.0, max_in_flight: 2 };

    fn answered(successes: usize, median_ms: u64) -> Evidence {
        Evidence {
            sent: 3,
            successes,
            refused: None,
            median_latency: Some(Duration::from_millis(median_ms)),
            spacing: Duration::from_secs(1),
            crawl_delay: None,
        }
    }

    #[test]
    fn a_slow_host_starts_at_a_quarter_of_its_in_flight_cap_and_a_fast_one_at_the_default() {
        // 2 in flight / (4 × 1 s) = 0.5 req/s.
        let slow = start_rate(&answered(3, 1000), &LIMITS);
        assert_eq!(slow.rate, 0.5);
        assert_eq!(slow.notes, ["slow answers (1000 ms): start at 0.5 req/s, below INITIAL_RATE_LIMIT"]);
        assert_eq!(start_rate(&answered(3, 400), &LIMITS).rate, 1.0, "1.25 req/s is above the default: the default");
        assert!(start_rate(&answered(3, 400), &LIMITS).notes.is_empty());
        assert_eq!(
            start_rate(&answered(1, 2), &LIMITS).rate,
            1.0,
            "a fast host starts at the default, slow start does the rest"
        );
        assert_eq!(start_rate(&answered(3, 0), &LIMITS).rate, 1.0, "a zero latency is not a division by zero");
        assert_eq!(start_rate(&answered(3, 600_000), &LIMITS).rate, MIN_RATE, "never below one request every 30 s");
        let odd = Limits { initial: 5.0, max: 2.0, max_in_flight: 2 };
        assert_eq!(start_rate(&answered(3, 10), &odd).rate, 2.0, "a ceiling under the default wins, without a panic");
    }

    #[test]
    fn without_a_2xx_nothing_is_learned_and_the_configured_start_is_kept() {
        let forbidden = answered(0, 5);
        let s = start_rate(&forbidden, &LIMITS);
        assert_eq!(s.rate, 1.0);
        assert_eq!(s.notes, ["nothing learned (no 2xx): start at INITIAL_RATE_LIMIT"]);
        let unsent = Evidence { sent: 0, successes: 0, median_latency: None, ..forbidden };
        assert_eq!(
            start_rate(&unsent, &LIMITS),
            Start { rate: 1.0, notes: vec![] },
            "the runner says why none was sent"
        );
    }

    #[test]
    fn a_refusal_halves_the_sampling_rate_even_before_any_2xx() {
        let refused = Evidence { refused: Some("429".into()), ..answered(1, 5) };
        let s = start_rate(&refused, &LIMITS);
        assert_eq!(s.rate, 0.5, "sampled at 1 req/s");
        assert!(s.notes[0].starts_with("refused a sample (429)"), "{:?}", s.notes);
        let first = Evidence { successes: 0, spacing: Duration::from_secs(2), ..refused };
        assert_eq!(
            start_rate(&first, &LIMITS).rate,
            0.25,
            "refused at once, sampled every 2 s: not INITIAL_RATE_LIMIT"
        );
    }

    #[test]
    fn crawl_delay_caps_the_start_even_below_the_floor() {
        let delayed = Evidence { crawl_delay: Some(2.0), ..answered(3, 5) };
        let s = start_rate(&delayed, &LIMITS);
        assert_eq!(s.rate, 0.5);
        assert_eq!(s.notes, ["Crawl-delay 2 s caps the rate at 0.5 req/s"]);
        let nothing = Evidence { crawl_delay: Some(4.0), ..answered(0, 5) };
        assert_eq!(start_rate(&nothing, &LIMITS).rate, 0.25, "below INITIAL_RATE_LIMIT");
        let tiny = Evidence { crawl_delay: Some(0.5), ..answered(3, 400) };
        assert_eq!(start_rate(&tiny, &LIMITS).rate, 1.0, "a cap above the rate changes nothing");
        let bogus = Evidence { crawl_delay: Some(0.0), ..answered(3, 400) };
        assert_eq!(start_rate(&bogus, &LIMITS).rate, 1.0, "a zero Crawl-delay is no cap");
    }

    #[test]
    fn rates_read_without_noise() {
        assert_eq!(rate_text(0.5), "0.5");
        assert_eq!(rate_text(1.0 / 3.0), "0.333");
        assert_eq!(rate_text(10.0), "10");
        assert_eq!(rate_text(0.0001), "0");
    }
}
