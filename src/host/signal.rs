//! What the rate controller is told and what it reports: an answer classified as a [`Signal`],
//! and a [`RateChange`] with its [`ChangeReason`] (whose `as_str()` log lines and metric labels
//! carry). Plain data, kept apart from the rule in `rate.rs`.

use crate::host::outcome::{Outcome, TransportKind};

/// What one answer says about the host's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The server handled the request (2xx, 3xx, 4xx other than 408/429).
    Success,
    /// The server asked us to send less: a 429, or an error status with `Retry-After`.
    Refusal,
    /// The server or the connection failed: 5xx without `Retry-After`, 408, a timeout or a body
    /// cut short. Counts toward a cut only when failures cluster.
    Failure,
    /// Says nothing about the rate (DNS, connect, TLS: the circuit breaker's business).
    Neutral,
}

impl Signal {
    /// Classifies an answer; `has_retry_after` is whether a parseable `Retry-After` came with it.
    pub fn of(outcome: &Outcome, has_retry_after: bool) -> Signal {
        if outcome.is_refusal(has_retry_after) {
            return Signal::Refusal;
        }
        match *outcome {
            Outcome::Status(408) => Signal::Failure,
            Outcome::Status(code) if code < 500 => Signal::Success,
            Outcome::Status(_) => Signal::Failure,
            Outcome::Transport(TransportKind::Timeout | TransportKind::Body | TransportKind::Other) => Signal::Failure,
            Outcome::Transport(_) => Signal::Neutral,
        }
    }
}

/// Why the rate changed; `as_str()` is what log lines and metric labels carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    SlowStart,
    Probe,
    Refused,
    /// Climbing back toward the estimate after a first refusal.
    Recover,
    /// The host's answers queue up: held just below the rate it answers at.
    Queueing,
    Failures,
    /// Healthy answers after a failure cut.
    Regrow,
    /// Another share of the same host was refused.
    PeerShare,
    /// The host's robots.txt asks for a `Crawl-delay`: the rate is held at or below 1/delay.
    CrawlDelay,
}

impl ChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::SlowStart => "slow_start",
            ChangeReason::Probe => "probe",
            ChangeReason::Refused => "refused",
            ChangeReason::Recover => "recover_after_refusal",
            ChangeReason::Queueing => "server_queueing",
            ChangeReason::Failures => "clustered_failures",
            ChangeReason::Regrow => "regrow_after_failures",
            ChangeReason::PeerShare => "peer_share_refused",
            ChangeReason::CrawlDelay => "crawl_delay",
        }
    }
}

/// A change of rate, for the token bucket and the log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateChange {
    pub from: f64,
    pub to: f64,
    pub reason: ChangeReason,
}
