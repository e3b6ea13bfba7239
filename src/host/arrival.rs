//! Late arrivals at a host that forgets: a limit that judges each request only by the gap since
//! the last one it let through (nginx `limit_req` without burst, the memory test's verdict in
//! `rate.rs`) refuses a request that left on time when the one before reached it late, because
//! the gap the server sees is the spacing less that lateness. The hold keeps `ARRIVAL_JITTER`
//! clear of the limit on each side; a machine that pauses for 15 ms (a busy node, a virtual
//! machine's stolen time) eats that. Against real nginx at 8 req/s, about one run in eight had
//! a refusal of this kind (one came after a request 15 ms late: gaps of 146 ms, then 117).
//!
//! A request that reached the server late is answered late by as much, so the answer tells.
//! Its head came back later than the quickest of the host's recent heads: whatever of that is
//! more than `ARRIVAL_JITTER` is taken as lateness, and the next request waits that much beyond
//! its spacing, so the gap the server sees stays the hold's. Only for a host that forgets: a
//! bucket with a burst takes a short gap from its burst, and a window does not count gaps, so
//! there a slow answer costs nothing. The wait is at most `MAX_WAIT_SHARE` of a spacing: a host
//! whose answers are slow for reasons of its own (a large file, a busy disk) loses no more.
//! An answer that comes after the next request has left cannot help; nothing is waited then.
//!
//! A leaf like the rest of `host`: time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::rate::ARRIVAL_JITTER;

/// Heads whose quickest is taken as the host's answer time when nothing was late: a few
/// seconds' worth at the rates where a spacing limit is found.
const HEADS_KEPT: usize = 32;

/// Most a late answer holds the next request back, as a share of a spacing (1/rate).
pub const MAX_WAIT_SHARE: f64 = 0.5;

/// The answer times of one host's recent requests, and the instant the next may leave if an
/// answer came late.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArrivalGuard {
    /// From leaving to the answer's head, newest last.
    heads: VecDeque<Duration>,
    /// The next request leaves no earlier than this.
    not_before: Option<Instant>,
}

impl ArrivalGuard {
    /// The request that left at `sent_at` was answered (its head) at `head_at`; `spacing` is the
    /// host's spacing now, and `forgets` whether its limit judges gaps alone. Returns how much
    /// later than the quickest recent head this one came (`None` for the first heard), which
    /// bounds how late the request reached the server.
    pub fn heard(&mut self, sent_at: Instant, head_at: Instant, spacing: Duration, forgets: bool) -> Option<Duration> {
        let took = head_at.saturating_duration_since(sent_at);
        let quickest = self.heads.iter().min().copied();
        self.heads.push_back(took);
        if self.heads.len() > HEADS_KEPT {
            self.heads.pop_front();
        }
        let behind = took.saturating_sub(quickest?);
        let late = behind.saturating_sub(ARRIVAL_JITTER).min(spacing.mul_f64(MAX_WAIT_SHARE));
        if forgets && late > Duration::ZERO {
            let until = sent_at + spacing + late;
            self.not_before = Some(self.not_before.map_or(until, |n| n.max(until)));
        }
        Some(behind)
    }

    /// When the next request may leave, if a late answer holds it back at `now`.
    pub fn hold(&self, now: Instant) -> Option<Instant> {
        self.not_before.filter(|until| *until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Duration = Duration::from_millis(134);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A guard that has heard `n` answers 5 ms after each left, `SPACING` apart, from `t0` on;
    /// returns when the last one left.
    fn steady(guard: &mut ArrivalGuard, t0: Instant, n: u32) -> Instant {
        let mut sent = t0;
        for i in 0..n {
            sent = t0 + SPACING * i;
            guard.heard(sent, sent + ms(5), SPACING, true);
        }
        sent
    }

    #[test]
    fn an_answer_15_ms_late_holds_the_next_request_back_by_what_the_jitter_does_not_cover() {
        let t0 = Instant::now();
        let mut guard = ArrivalGuard::default();
        let last = steady(&mut guard, t0, 10);
        assert_eq!(guard.hold(last + ms(5)), None, "answers on time hold nothing back");
        let late = last + SPACING;
        guard.heard(late, late + ms(20), SPACING, true);
        let due = late + SPACING;
        // 15 ms late, of which ARRIVAL_JITTER (3 ms) the hold's margin already covers.
        assert_eq!(guard.hold(late + ms(20)), Some(due + ms(12)));
        assert_eq!(guard.hold(due + ms(12)), None, "and then it goes");
    }

    #[test]
    fn a_host_whose_limit_has_a_burst_or_a_window_is_not_held_back() {
        let t0 = Instant::now();
        let mut guard = ArrivalGuard::default();
        for i in 0..10 {
            let sent = t0 + SPACING * i;
            guard.heard(sent, sent + ms(5 + 15 * u64::from(i % 2)), SPACING, false);
        }
        assert_eq!(guard.hold(t0 + SPACING * 9), None);
    }

    #[test]
    fn a_very_slow_answer_holds_the_next_back_by_half_a_spacing_at_most() {
        let t0 = Instant::now();
        let mut guard = ArrivalGuard::default();
        let last = steady(&mut guard, t0, 5);
        let slow = last + SPACING;
        guard.heard(slow, slow + ms(900), SPACING, true);
        assert_eq!(guard.hold(slow + ms(900)), None, "by the time it came, the wait is over");
        let hold = guard.hold(slow + ms(10)).expect("held back");
        assert_eq!(hold, slow + SPACING + SPACING / 2);
    }

    #[test]
    fn the_first_answer_sets_the_pace_and_holds_nothing_back() {
        let t0 = Instant::now();
        let mut guard = ArrivalGuard::default();
        guard.heard(t0, t0 + ms(400), SPACING, true);
        assert_eq!(guard.hold(t0 + ms(400)), None);
    }
}
