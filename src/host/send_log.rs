//! What was sent to one host and how it was answered: the evidence the rate controller reads.
//!
//! Owns the recent sends (when, at which rate, whether the bucket was what held them, how long
//! the answer took), the smoothed latency, and the readings taken from them: after a refusal,
//! how many requests the host accepted in the window before it and the rate of the last
//! accepted pressed request; the sends as answered, for the leaky-bucket fit
//! (`leaky_fit.rs`); and whether the host is queueing our requests (its answers taking longer
//! and longer), with the rate it answers them at. It does not decide anything about the rate;
//! `rate.rs` does. Time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::leaky_fit::Answered;
use super::token_bucket::MIN_RATE;

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

/// Sends kept for the estimate and the fit: the fit reads from before the first refusal's ramp
/// to the second refusal, up to a minute at 20 req/s; about 40 KB per busy host (a host that
/// sent less keeps less).
const HISTORY_LEN: usize = 1024;

/// Accepted answers whose quickest is taken as the host's latency without a queue.
const BASE_ANSWERS: usize = 32;

/// Accepted answers in a row that must each have waited in a queue (see `QUEUE_SPACINGS`)
/// before the host counts as queueing. Four answers queued and none quicker than the one before
/// is a queue that grows or stays; fewer could be a few large files in a row.
const QUEUE_ANSWERS: usize = 4;

/// Answers with rising latency before a refusal that give the rate a queue was served at (see
/// `SendLog::served_while_queued`): three are two intervals between releases, and a burst of
/// one in delay mode lets no more than three build up before refusing.
const QUEUED_RUN: usize = 3;

/// An answer counts as queued when it took this many spacings (1/rate) longer than the host's
/// quickest recent answer. nginx in delay mode holds a request `excess / rate`, so at a rate 5%
/// above its limit the delay passes half a spacing after ten requests, while the in-flight cap
/// of two keeps it under two spacings.
const QUEUE_SPACINGS: f64 = 0.5;

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
    /// Seconds from send to answer, once answered.
    pub took: f64,
    /// How far behind the host's quickest recent head its answer's head came, once heard.
    pub head_late: Option<Duration>,
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
        self.sends.push_back(Sent { at: now, rate, pressed, answer: Answer::Pending, took: 0.0, head_late: None });
        if self.sends.len() > HISTORY_LEN {
            self.sends.pop_front();
        }
    }

    /// The request sent at `sent_at` was answered at `now`; returns it as sent, if remembered.
    pub fn answer(&mut self, sent_at: Instant, answer: Answer, now: Instant) -> Option<Sent> {
        let sent = self.sends.iter_mut().rev().find(|s| s.at == sent_at)?;
        let took = now.saturating_duration_since(sent_at).as_secs_f64();
        sent.answer = answer;
        sent.took = took;
        self.latency = Some(self.latency.map_or(took, |l| l + LATENCY_SMOOTHING * (took - l)));
        Some(*sent)
    }

    /// The head of the answer to the request sent at `sent_at` came `late` behind the host's
    /// quickest recent head.
    pub fn heard(&mut self, sent_at: Instant, late: Duration) {
        if let Some(sent) = self.sends.iter_mut().rev().find(|s| s.at == sent_at) {
            sent.head_late = Some(late);
        }
    }

    /// How far behind the host's quickest recent head the answer to the request sent at
    /// `sent_at` began, if it was heard.
    pub fn head_late(&self, sent_at: Instant) -> Option<Duration> {
        self.sends.iter().rev().find(|s| s.at == sent_at)?.head_late
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

    /// Requests per second the host accepted in the window before a request sent at
    /// `refused_at` at `refused_rate` was refused (a sliding-window limit of L lets exactly L
    /// through); `None` with fewer than two.
    pub fn accepted_in_window(&self, refused_at: Instant, refused_rate: f64) -> Option<f64> {
        let slack = Duration::from_secs_f64(WINDOW_SLACK / refused_rate.max(MIN_RATE));
        let from = refused_at.checked_sub(ESTIMATE_WINDOW + slack);
        let accepted = self.sends.iter().filter(|s| s.at < refused_at && s.answer == Answer::Accepted);
        let counted = accepted.filter(|s| from.is_none_or(|f| s.at >= f)).count();
        (counted >= 2).then(|| counted as f64 / ESTIMATE_WINDOW.as_secs_f64())
    }

    /// The rate of the last accepted pressed request sent before `refused_at` (a spacing limit
    /// lets nothing faster through).
    pub fn last_accepted_pressed(&self, refused_at: Instant) -> Option<f64> {
        self.last_accepted_pressed_index(refused_at).map(|i| self.sends[i].rate)
    }

    /// Where in the log the request `last_accepted_pressed` reads is.
    fn last_accepted_pressed_index(&self, refused_at: Instant) -> Option<usize> {
        self.sends.iter().rposition(|s| s.at < refused_at && s.answer == Answer::Accepted && s.pressed)
    }

    /// The request `last_accepted_pressed` reads, and the send before it if that was accepted
    /// too: how long after it the first left, and how far behind the quickest its head came.
    /// The server saw them at most that much further apart. `None` if the head was not heard.
    pub fn last_accepted_gap(&self, refused_at: Instant) -> Option<(Duration, Duration)> {
        let i = self.last_accepted_pressed_index(refused_at)?;
        let (before, last) = (self.sends.get(i.checked_sub(1)?)?, self.sends.get(i)?);
        (before.answer == Answer::Accepted).then_some((last.at.saturating_duration_since(before.at), last.head_late?))
    }

    /// The rate at which the host answered a queue it was building before `refused_at`: the
    /// newest accepted answers before it, each of which took longer than the one sent before
    /// (by a twentieth of a spacing), at least `QUEUED_RUN` of them and the last half a spacing
    /// slower than the first. A server in delay mode (nginx's `limit_req` without `nodelay`)
    /// releases what it holds at exactly its rate, so their answers come back 1/rate apart
    /// however fast they were sent; a burst that let them through says nothing about that.
    /// Unanswered sends are skipped.
    pub fn served_while_queued(&self, refused_at: Instant) -> Option<f64> {
        let answered = self.sends.iter().rev().filter(|s| s.at < refused_at && s.answer == Answer::Accepted);
        let mut run: Vec<&Sent> = Vec::new();
        for s in answered {
            match run.last() {
                Some(newer) if newer.took < s.took + 0.05 / newer.rate => break,
                _ => run.push(s),
            }
        }
        let (newest, oldest) = (run.first()?, run.last()?);
        if run.len() < QUEUED_RUN || newest.took - oldest.took < QUEUE_SPACINGS / newest.rate {
            return None;
        }
        answered_rate(&run)
    }

    /// The answered sends, oldest first, as the leaky-bucket fit reads them: an accepted request
    /// passed the limiter, a refused one did not; failures say nothing. A send still unanswered
    /// when one sent after it was refused is taken as accepted: a limiter answers a refusal at
    /// once, so an answer that takes longer is one a server in delay mode holds, having let it
    /// through. Other unanswered sends say nothing.
    pub fn answered(&self) -> Vec<Answered> {
        let last_refused = self.sends.iter().rev().find(|s| s.answer == Answer::Refused).map(|s| s.at);
        let held = |s: &Sent| s.answer == Answer::Pending && last_refused.is_some_and(|r| s.at < r);
        let known = self.sends.iter().filter(|s| matches!(s.answer, Answer::Accepted | Answer::Refused) || held(s));
        known.map(|s| Answered { at: s.at, accepted: s.answer != Answer::Refused }).collect()
    }

    /// How many requests sent before the one at `refused_at` were let through in a row, back to
    /// the last one refused (failures and unanswered ones neither count nor break the run).
    pub fn accepted_in_a_row(&self, refused_at: Instant) -> usize {
        let before = self.sends.iter().rev().skip_while(|s| s.at >= refused_at);
        before.take_while(|s| s.answer != Answer::Refused).filter(|s| s.answer == Answer::Accepted).count()
    }

    /// The highest rate any remembered request was sent at.
    pub fn highest_rate(&self) -> Option<f64> {
        self.sends.iter().map(|s| s.rate).reduce(f64::max)
    }

    /// Whether the host holds our requests in a queue: the last `QUEUE_ANSWERS` accepted answers,
    /// sent without a pause between them, each took `QUEUE_SPACINGS` spacings longer than the
    /// quickest of the last `BASE_ANSWERS`,
    /// and none came back quicker than the one before. Returns the rate at which the host
    /// answered them, which is the rate it serves at while it queues.
    /// Only requests sent at or after `since` count (the last cut: answers to requests sent
    /// before it came from the old rate's queue, which the cut has already paid for).
    pub fn queueing(&self, since: Option<Instant>) -> Option<f64> {
        let mut accepted = self.sends.iter().rev().filter(|s| s.answer == Answer::Accepted);
        let recent: Vec<&Sent> = accepted.by_ref().take(BASE_ANSWERS).collect();
        if recent.len() < QUEUE_ANSWERS + 1 {
            return None;
        }
        let base = recent.iter().map(|s| s.took).fold(f64::INFINITY, f64::min);
        let queued = &recent[..QUEUE_ANSWERS];
        let waited = queued.iter().all(|s| s.took >= base + QUEUE_SPACINGS / s.rate);
        // Each sent when the bucket or the in-flight cap let it go (within `PRESSED_SLACK`
        // spacings of the one before, or no later than that one's answer): answers that straddle
        // a pause (a `Retry-After`, an empty queue) come back slowly because they left slowly.
        let paced = queued.windows(2).all(|w| {
            let gap = w[0].at.saturating_duration_since(w[1].at).as_secs_f64();
            gap <= (PRESSED_SLACK / w[0].rate).max(w[1].took)
        });
        // Newest first: each answer took no less than the one sent before it (to a tenth of a
        // spacing, the ms a timer may be early).
        let growing = queued.windows(2).all(|w| w[0].took >= w[1].took - 0.1 / w[0].rate);
        // And the newest took longer than the oldest: a queue that drains (after the rate was
        // cut below the server's) answers quicker and quicker, and says nothing new.
        let grew = queued[0].took > queued[QUEUE_ANSWERS - 1].took;
        let current = since.is_none_or(|cut| queued.iter().all(|s| s.at >= cut));
        if !(waited && paced && growing && grew && current) {
            return None;
        }
        answered_rate(queued)
    }
}

/// The rate at which `sends` (newest first) were answered: one over the median time between
/// one answer and the next. A queue's answers leave at the rate it is served at; an answer we
/// read late (a rank busy for 20 ms) lengthens one interval and shortens the next, and the
/// median reads neither. Over the span from the oldest answer to the newest, one such answer
/// read a 8 req/s queue as 7.6 against real nginx, and the host was held at 92% of its limit.
fn answered_rate(sends: &[&Sent]) -> Option<f64> {
    let done = |s: &Sent| s.at + Duration::from_secs_f64(s.took);
    let mut gaps: Vec<f64> =
        sends.windows(2).map(|w| done(w[0]).saturating_duration_since(done(w[1])).as_secs_f64()).collect();
    gaps.sort_by(f64::total_cmp);
    let median = match gaps.len() {
        0 => return None,
        n if n % 2 == 1 => gaps[n / 2],
        n => (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0,
    };
    (median > 0.0).then(|| 1.0 / median)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What real nginx at 2 req/s, `burst=1`, delay mode did to a ramp (seconds from the first
    /// request: sent, answered, accepted): answers held 10, 90, 215 and 365 ms, released 0.5 s
    /// apart, and the next request refused at once while the last was still held.
    fn delay_mode_ramp() -> (SendLog, Instant, Instant) {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut log = SendLog::default();
        let sends = [(0.0, 1.0, 0.0), (1.0, 1.35, 0.0), (1.74, 1.7, 0.0), (2.33, 2.05, 0.0)];
        let queued = [(2.82, 2.4, 0.010), (3.24, 2.75, 0.090), (3.615, 2.75, 0.215), (3.964, 3.1, 0.365)];
        for (sent, rate, took) in sends.into_iter().chain(queued) {
            log.record(at(sent), rate, Duration::ZERO);
            if sent < 3.9 {
                log.answer(at(sent), Answer::Accepted, at(sent + took));
            }
        }
        let refused = at(4.289);
        log.record(refused, 3.1, Duration::ZERO);
        log.answer(refused, Answer::Refused, refused);
        (log, at(3.964), refused)
    }

    #[test]
    fn a_delay_mode_queue_is_read_at_the_rate_its_answers_were_released() {
        let (mut log, held, refused) = delay_mode_ramp();
        let rate = log.served_while_queued(refused).expect("three answers slower and slower");
        assert!((rate - 2.0).abs() < 0.05, "released 0.5 s apart: {rate}");
        log.answer(held, Answer::Accepted, held + Duration::from_secs_f64(0.365));
        let rate = log.served_while_queued(refused).unwrap();
        assert!((rate - 2.0).abs() < 0.05, "and still once the held answer landed: {rate}");
    }

    #[test]
    fn answers_of_even_latency_are_not_a_queue() {
        let t0 = Instant::now();
        let mut log = SendLog::default();
        for i in 0..8 {
            let sent = t0 + Duration::from_millis(300 * i);
            log.record(sent, 3.3, Duration::ZERO);
            log.answer(sent, Answer::Accepted, sent + Duration::from_millis(40 + 3 * (i % 2)));
        }
        assert_eq!(log.served_while_queued(t0 + Duration::from_secs(3)), None);
    }

    #[test]
    fn a_send_still_held_when_a_later_one_was_refused_counts_as_let_through() {
        let (log, held, _) = delay_mode_ramp();
        let answered = log.answered();
        assert_eq!(answered.len(), 9, "the held send is read too");
        let read = answered.iter().find(|a| a.at == held).expect("held send in the fit's input");
        assert!(read.accepted);
        assert!(!answered.last().unwrap().accepted, "the refused one is a refusal");
    }

    #[test]
    fn the_ramps_last_gap_is_read_with_how_late_its_answer_began() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut log = SendLog::default();
        // A ramp's last three, 137 and 131 ms apart, answered 5 ms after each left.
        for (sent, rate) in [(0, 7.3), (137, 7.65), (268, 8.0)] {
            let sent = t0 + ms(sent);
            log.record(sent, rate, Duration::ZERO);
            log.answer(sent, Answer::Accepted, sent + ms(5));
        }
        let refused = t0 + ms(393);
        log.record(refused, 8.0, Duration::ZERO);
        log.answer(refused, Answer::Refused, refused);
        assert_eq!(log.last_accepted_gap(refused), None, "no head heard: nothing measured");
        log.heard(t0 + ms(268), ms(2));
        assert_eq!(log.last_accepted_gap(refused), Some((ms(131), ms(2))));
    }

    #[test]
    fn a_queued_answer_read_late_does_not_slow_the_rate_the_queue_is_served_at() {
        // nginx in delay mode at 8 req/s, our requests 10 req/s: its answers leave 125 ms apart,
        // each 25 ms later than the one before, and the newest is read 21 ms late.
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut log = SendLog::default();
        for i in 0..8u64 {
            let sent = t0 + ms(100 * i);
            log.record(sent, 10.0, Duration::ZERO);
            let queued = ms(if i < 4 { 5 } else { 80 + 25 * (i - 4) });
            let read_late = ms(if i == 7 { 21 } else { 0 });
            log.answer(sent, Answer::Accepted, sent + queued + read_late);
        }
        let rate = log.queueing(None).expect("four answers queued and slower and slower");
        assert!((rate - 8.0).abs() < 0.1, "served at 8 req/s, read as {rate:.2}");
    }
}
