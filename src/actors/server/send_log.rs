//! What was sent to one host and how it was answered: the evidence the rate controller reads.
//!
//! Owns the recent sends (when, at which rate, whether the bucket was what held them), the
//! smoothed latency, and the two readings taken after a refusal: how many requests the host
//! accepted in the window before it, and the rate of the last accepted pressed request. It does
//! not decide anything about the rate; `rate.rs` does. Time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rate::MIN_RATE;

/// A request counts as pressed if it left at most this many spacings (1/rate) after the previous
/// one, and the last `LATENESS_SENDS` requests together left at most `PRESSED_SLACK - 1`
/// spacings after their tokens were ready. Timers fire a little late and one step of growth
/// changes the spacing by up to 35%; 1.5 tells "the bucket held it" from "the in-flight cap or
/// an empty queue held it".
pub const PRESSED_SLACK: f64 = 1.5;

/// Requests whose lateness is summed to tell whether the host is pressed. One late request in a
/// pair (the in-flight cap holding every other one) shows within four.
const LATENESS_SENDS: usize = 4;

/// Weight of the newest answer in the smoothed latency: about the last ten answers count.
const LATENCY_SMOOTHING: f64 = 0.2;

/// The window over which a limiter is assumed to count, for the estimate after a refusal. One
/// second is what rate limits are stated in (nginx `limit_req`, most API gateways).
pub const ESTIMATE_WINDOW: Duration = Duration::from_secs(1);

/// The count reaches this fraction of a spacing (1/refused rate) further back than the window.
/// A window limiter refuses at the first moment its oldest request has not yet left, so that
/// request sits just inside the far edge (seen here 3 ms inside at 8 req/s) and network jitter
/// can push it just outside on our clock; the request before it left at least a spacing
/// earlier, so reaching a quarter spacing back counts the one and never the other.
const WINDOW_SLACK: f64 = 0.25;

/// Sends kept for the estimate: enough to cover a second at the highest rates and the answers
/// that are still in flight; about 8 KB per host.
const HISTORY_LEN: usize = 256;

/// How an answered send went, as far as the estimate cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Pending,
    Accepted,
    Refused,
    Other,
}

/// One request as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    pub at: Instant,
    /// The rate in force when it left.
    pub rate: f64,
    /// It left when the bucket allowed it (see `PRESSED_SLACK`).
    pub pressed: bool,
    pub answer: Answer,
}

/// The recent sends of one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendLog {
    sends: VecDeque<Sent>,
    /// How late each of the last `LATENESS_SENDS` requests left after its token was ready.
    lateness: VecDeque<f64>,
    /// Smoothed seconds from send to answer.
    latency: Option<f64>,
}

impl SendLog {
    /// A request leaves at `now` at `rate`; `lateness` is how long its token had been ready.
    pub fn record(&mut self, now: Instant, rate: f64, lateness: Duration) {
        let spacing = 1.0 / rate;
        self.lateness.push_back(lateness.as_secs_f64());
        if self.lateness.len() > LATENESS_SENDS {
            self.lateness.pop_front();
        }
        let on_time = self.lateness.iter().sum::<f64>() <= (PRESSED_SLACK - 1.0) * spacing;
        let pressed = on_time
            && self
                .sends
                .back()
                .is_some_and(|p| now.saturating_duration_since(p.at).as_secs_f64() <= PRESSED_SLACK * spacing);
        self.sends.push_back(Sent { at: now, rate, pressed, answer: Answer::Pending });
        if self.sends.len() > HISTORY_LEN {
            self.sends.pop_front();
        }
    }

    /// The request sent at `sent_at` was answered at `now`; returns it as sent, if remembered.
    pub fn answer(&mut self, sent_at: Instant, answer: Answer, now: Instant) -> Option<Sent> {
        let sent = self.sends.iter_mut().rev().find(|s| s.at == sent_at)?;
        sent.answer = answer;
        let took = now.saturating_duration_since(sent_at).as_secs_f64();
        self.latency = Some(self.latency.map_or(took, |l| l + LATENCY_SMOOTHING * (took - l)));
        Some(*sent)
    }

    /// Smoothed seconds from send to answer, once anything was answered.
    pub fn latency(&self) -> Option<f64> {
        self.latency
    }

    /// The rate in force at `at` (the earliest remembered if `at` is before every send); `None`
    /// when nothing was sent.
    pub fn rate_at(&self, at: Option<Instant>) -> Option<f64> {
        let before = at.and_then(|at| self.sends.iter().rev().find(|s| s.at <= at));
        before.or(self.sends.front()).map(|s| s.rate)
    }

    /// Whether a request sent before `t` still waits for its answer.
    pub fn unanswered_before(&self, t: Instant) -> bool {
        self.sends.iter().any(|s| s.at < t && s.answer == Answer::Pending)
    }

    /// What the host accepted before a request sent at `refused_at` at `refused_rate` was
    /// refused: the lower of the accepted requests in the window before it (at least two) and
    /// the rate of the last accepted pressed request; `None` with no such evidence.
    pub fn accepted_before(&self, refused_at: Instant, refused_rate: f64) -> Option<f64> {
        let slack = Duration::from_secs_f64(WINDOW_SLACK / refused_rate.max(MIN_RATE));
        let from = refused_at.checked_sub(ESTIMATE_WINDOW + slack);
        let accepted = || self.sends.iter().filter(|s| s.at < refused_at && s.answer == Answer::Accepted);
        let counted = accepted().filter(|s| from.is_none_or(|f| s.at >= f)).count();
        let by_count = (counted >= 2).then(|| counted as f64 / ESTIMATE_WINDOW.as_secs_f64());
        let by_spacing = accepted().rev().find(|s| s.pressed).map(|s| s.rate);
        match (by_count, by_spacing) {
            (Some(c), Some(s)) => Some(c.min(s)),
            (c, s) => c.or(s),
        }
    }
}
