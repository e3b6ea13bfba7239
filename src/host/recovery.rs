//! The cuts and the climb back: where a host restarts after a refusal (or a queue), what it
//! climbs to, and how a second refusal pins its rate. A child of `rate.rs`, whose
//! `RateController` it extends; its header has the rule as a whole and the figures.
//!
//! It reads the send log (`send_log.rs`) and the leaky-bucket fit (`leaky_fit.rs`); it does not
//! grow the rate in slow start, probe, or handle failures (`rate.rs`). Time is passed in.

use std::time::{Duration, Instant};

use super::super::leaky_fit::LeakyFit;
use super::{
    ChangeReason, KnownLimit, Phase, RateController, DECREASE_FACTOR, HOLD_FRACTION, MAX_PROBE_INTERVAL, MIN_RATE,
};

/// What is known of whether the host forgets what it was sent (the memory test's verdict,
/// `memory_test.rs`): the refusal rules below read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// Nothing: no memory test found it, or a refusal put a restored verdict in doubt.
    Unknown,
    /// An earlier run's memory test found it (`HostState::forgets`), and nothing in this run
    /// has been refused since: late answers hold the next request back (`arrival.rs`), but the
    /// first refusal is read as from a host nothing is known about (the server may have changed
    /// its limiter: a window, a bucket, a slower spacing, each read as a spacing limit, was
    /// refused again and again or held at 60–70% in the simulation).
    Restored,
    /// This run's memory test found it.
    Found,
}

/// A refusal this soon after the last cut belongs to the same episode: the estimate did not hold.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// The burst a host is assumed to have at most when choosing where to restart after a first
/// refusal: the rate is cut to what the host must allow if its burst is no larger. nginx
/// examples and most configurations use 5 to 20; a larger burst costs one more refusal.
pub const DRAIN_BURST: f64 = 10.0;

/// Sends per request of burst assumed: with few sends, the burst cannot be told from the rate,
/// and a burst of half of what was sent is assumed at most (a host that refused the fifth
/// request after a pause lets 2 through on top of its rate, not 10).
pub const DRAIN_EVIDENCE: f64 = 2.0;

/// Growth per second (natural log) while recovering from the cut after a first refusal toward
/// the estimate, at full pace far from it; it slows to a quarter of this near the estimate.
/// ×1.16 a second crosses a limit slowly enough that the refusal which ends the recovery finds
/// the host's bucket refilled by a steady excess, which is what pins its rate.
pub const RECOVERY_GAIN: f64 = 0.15;

/// Largest step of the climb after a first refusal, per request, once within a factor of two of
/// the estimate. Below 1 req/s the climb's pace per second would make single steps of 30% or
/// more; a spacing limit is then crossed by at most 10%, and the spacing accepted before it is
/// within 10% of the limit.
pub const RECOVERY_MAX_STEP: f64 = 0.1;

/// Growth per second, per request per second of the rate, of the climb after a memory test
/// found a bucket (`memory_test.rs`): 0.09 a second at 2 req/s, up to `RECOVERY_GAIN`. A
/// bucket's rate is pinned by the time between two refusals that each found it full, to about
/// one request over that time; crossing the rate this slowly puts 5 s or more between them at
/// 2 req/s, which pins the rate to within about 10%, and to one whole burst.
pub const PIN_PACE: f64 = 0.045;

/// How much a gap between two requests may change on its way to the server: each may be
/// delayed by up to this (timers, the scheduler, the network). A spacing seen accepted may have
/// been accepted only thanks to it, so the hold after a spacing limit allows for it twice
/// (`memory_test.rs`), and a lone refusal in a steady hold widens the spacing by it.
pub const ARRIVAL_JITTER: Duration = Duration::from_millis(3);

/// Requests let through in a row at the held rate before a refusal that makes it a lone one, at
/// a host the memory test found to be a spacing limit: a delay spike on our side (one request
/// reaching the server late, the next too close behind it), not a limit that changed. A limit
/// that changed refuses again within a few requests; on a busy machine a spike refuses about
/// one request in several hundred. (A bucket held a little above its rate also refuses now and
/// then, when its burst is used up: that is why the rule waits for the test's verdict.)
pub const STEADY_ANSWERS: usize = 50;

/// The creep on past the estimate toward the refused spacing runs only when the estimate is
/// below this share of it. Closer, the creep gains less than the 10% the hold may lie below a
/// limit, and the refused rate it creeps toward can be a window's limit plus one step, which
/// jittered sends get through for a while.
pub const CREEP_GAP: f64 = 0.9;

/// The climb back after a first refusal: from the cut toward the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Recovery {
    /// The rate cut to.
    pub(super) from: f64,
    /// The estimate climbed to; reaching it ends the recovery.
    pub(super) to: f64,
    /// The refused send and its rate, while answers sent before it are still in flight: the
    /// estimate is made again once they have landed.
    pub(super) unsettled: Option<(Instant, f64)>,
    /// Where the climb creeps on to after `to`, slowly: just below the refused spacing when the
    /// log fits a limit with no burst and the estimate is under `CREEP_GAP` of that, else `to`.
    /// A refusal during the creep holds a step below the highest rate accepted since the cut and
    /// two steps below the refused rate.
    pub(super) upper: f64,
    /// The log fitted a limit with no burst at the first refusal.
    pub(super) spaced: bool,
    /// The highest rate a pressed request was accepted at since the cut.
    pub(super) accepted: Option<f64>,
    /// Climbing at `PIN_PACE` (after a memory test found a bucket), not `RECOVERY_GAIN`.
    pub(super) slow: bool,
}

impl Recovery {
    /// A climb from `from` to `to` that ends there: nothing in flight to settle, no creep past
    /// `to`, no spacing limit fitted, nothing accepted yet, at `RECOVERY_GAIN`.
    pub(super) fn toward(from: f64, to: f64) -> Recovery {
        Recovery { from, to, unsettled: None, upper: to, spaced: false, accepted: None, slow: false }
    }
}

impl RateController {
    /// One pressed success while climbing back after a first refusal: full pace far below the
    /// estimate, a quarter of it close by, then (once settled) a creep at that quarter pace on
    /// toward `upper`.
    pub(super) fn climb(&mut self, r: Recovery, now: Instant) -> Option<ChangeReason> {
        let left = (r.to / self.rate).ln() / (r.to / r.from).ln().max(f64::EPSILON);
        let creeping = self.rate >= r.to;
        if creeping && r.unsettled.is_some() {
            return None;
        }
        let full = if r.slow { RECOVERY_GAIN.min(PIN_PACE * self.rate) } else { RECOVERY_GAIN };
        let gain = match creeping {
            true => RECOVERY_GAIN / 4.0,
            false => full * left.clamp(0.25, 1.0),
        };
        // Per request, so below 1 req/s each step is larger than in slow start (a host cut to a
        // thirtieth of a request per second is back within minutes, not an hour); within a
        // factor of two of the estimate, up to RECOVERY_MAX_STEP.
        let step = gain / self.rate.max(0.25);
        let step = if self.rate * 2.0 > r.to { step.min(RECOVERY_MAX_STEP) } else { step };
        let top = if creeping { r.upper } else { r.to };
        self.rate = (self.rate * (1.0 + step)).min(top).min(self.config.max_rate);
        if self.rate >= r.upper.min(self.config.max_rate) && r.unsettled.is_none() {
            self.recovery = None;
            self.quiet_since = Some(now);
            self.unconfirmed_above = (r.upper > r.to).then_some(r.to * HOLD_FRACTION);
        }
        Some(ChangeReason::Recover)
    }

    /// A refusal of the request sent at `sent_at` at `refused_rate`: the rules of `rate.rs`'s
    /// header, "The first refusal" and "A second refusal", in the order they are tried.
    pub(super) fn on_refusal(&mut self, sent_at: Instant, refused_rate: f64, now: Instant) -> Option<ChangeReason> {
        if self.last_cut.is_some_and(|cut| sent_at < cut) {
            return None;
        }
        self.note_refusal(refused_rate, now);
        // A verdict from an earlier run is doubted at the first refusal: the server may have
        // changed its limiter since, and the rules below read this run's log alone.
        if self.spacing_known == Spacing::Restored {
            self.spacing_known = Spacing::Unknown;
        }
        let repeated = self.last_cut.is_some_and(|cut| now.saturating_duration_since(cut) < REPEAT_WINDOW);
        let probe = self.before_probe.take();
        let holding = self.phase == Phase::Hold && self.recovery.is_none();
        let held = holding && !repeated;
        let at_hold = self.spacing_known == Spacing::Found && holding && refused_rate <= self.rate * 1.01;
        let steady = at_hold && self.sends.accepted_in_a_row(sent_at) >= STEADY_ANSWERS;
        // A refused probe waits twice as long for the next; a delay spike is not a probe.
        if held && !(steady && probe.is_none()) {
            self.probe_interval = (self.probe_interval * 2).min(MAX_PROBE_INTERVAL);
        }
        let fitted_before = std::mem::replace(&mut self.fitted_cut, false);
        let ramping = self.phase == Phase::SlowStart;
        let climbing = self.recovery.take();
        self.unconfirmed_above = None;
        self.cut_at(now);
        self.regrow_to = None;
        let ceiling = (refused_rate * HOLD_FRACTION).max(MIN_RATE);
        if let Some(before) = probe.filter(|_| held) {
            // A refused probe: back to the rate held without refusal before it.
            self.rate = before.min(ceiling);
            return Some(ChangeReason::Refused);
        }
        if at_hold && probe.is_none() && (steady || !fitted_before) {
            // A lone refusal in a steady hold: a request that reached the server late brought the
            // next one in too close. The limit has not moved: the spacing widens by the jitter
            // (at least 1%), not by a cut, and keeps widening only as long as spikes refuse.
            // Sooner after the memory test's verdict (or the last widening), once: a second such
            // refusal within `REPEAT_WINDOW` is pinned by the fit below.
            let widened = 1.0 / (1.0 / self.rate + ARRIVAL_JITTER.as_secs_f64());
            self.rate = widened.min(self.rate * 0.99).max(MIN_RATE);
            self.fitted_cut = !steady;
            return Some(ChangeReason::Refused);
        }
        if repeated && fitted_before && self.spacing_known != Spacing::Found {
            // The fit did not describe this host: classic relief, then climb back to a step
            // below the rate refused. Not for good: a spacing limit held for minutes is refused
            // by one request that a delay spike brought in close behind the one before.
            let back = (self.rate.min(ceiling) * HOLD_FRACTION).max(MIN_RATE);
            self.rate = (self.rate * DECREASE_FACTOR).max(MIN_RATE);
            let to = back.max(self.rate);
            self.recovery = Some(Recovery::toward(self.rate, to));
            return Some(ChangeReason::Refused);
        }
        let fit = self.fit(refused_rate);
        let spaced = |c: &Recovery| c.spaced && fit.burst_free().is_some();
        if let Some(climb) = climbing.filter(|c| spaced(c) && self.rate > c.to) {
            // The creep above the estimate was refused and the log still fits a limit with no
            // burst: the estimate held, and the limit lies just below the refused rate. Held a
            // step below the fastest rate accepted since the cut, and two holds below the refused
            // rate: a window limiter lets a rate a little above its limit through for a while
            // when the sends jitter, so the fastest accepted may itself be over the limit.
            let accepted = climb.accepted.unwrap_or(climb.to) * HOLD_FRACTION;
            let held = accepted.min(ceiling * HOLD_FRACTION);
            self.rate = held.max(climb.to).min(ceiling).max(MIN_RATE);
            return Some(ChangeReason::Refused);
        }
        // A host the memory test found to forget what it was sent is no bucket, whatever rates
        // the fit allows (against real nginx at 8 req/s, a request 4 ms early after the verdict
        // put the host at 0.83 req/s, a slow bucket's rate the fit allowed): only the rates that
        // need no burst.
        let lowest = match self.spacing_known == Spacing::Found {
            true => fit.burst_free().and_then(|(low, _)| low),
            false => fit.likeliest_whole(),
        };
        if let Some(low) = lowest {
            // Refused and drained before: the host's rate is pinned from both sides, and between
            // them, to the rates at which its burst can be a whole number of requests (for a
            // spacing limit, none); of several islands of those, to one holding a round rate.
            self.rate = (low * HOLD_FRACTION).clamp(MIN_RATE, self.config.max_rate).min(ceiling);
            // A round island above the lowest is a guess: a refusal there rules it out, and is
            // the fit's to read again, not a sign that the fit does not describe the host.
            self.fitted_cut = self.spacing_known == Spacing::Found || fit.lowest_whole().is_none_or(|l| low <= l);
            return Some(ChangeReason::Refused);
        }
        if let Some(climb) = climbing.filter(spaced) {
            // The climb from half a spacing limit was refused before the estimate, the log still
            // fits a limit with no burst, and the fit cannot pin the rate: back to the fastest
            // spacing accepted since the cut, or with none (a `Retry-After` pause came between)
            // half the rate. A log that now needs a burst has a full bucket to drain: the first
            // refusal's rule below.
            let back = climb.accepted.unwrap_or(self.rate.min(climb.from) * DECREASE_FACTOR);
            self.rate = back.min(ceiling).max(MIN_RATE);
            return Some(ChangeReason::Refused);
        }
        // A first refusal: climb back toward the estimate from what the host allows for sure
        // (if its burst is at most DRAIN_BURST), so its bucket drains before the climb crosses
        // its rate and a second refusal, if any, pins that rate.
        let to = match repeated {
            // The fit explains nothing (no leaky bucket): what a sliding window let through.
            true => self
                .sends
                .accepted_in_window(sent_at, refused_rate)
                .map_or(self.rate * DECREASE_FACTOR, |c| (c * HOLD_FRACTION).min(ceiling)),
            false => self.estimate(sent_at, refused_rate, &fit),
        };
        let burst = DRAIN_BURST.min(self.sends.answered().len() as f64 / DRAIN_EVIDENCE);
        let mut from = fit.lowest_with_burst(burst).map_or(to, |r| (r * HOLD_FRACTION).min(to));
        // A log that fits a limit with no burst also bounds it from above by the refused
        // spacing: once at the estimate, creep on toward just below that.
        let spaced = fit.burst_free().filter(|_| !repeated).map(|(_, high)| high.min(refused_rate) * HOLD_FRACTION);
        // Within CREEP_GAP of that, the creep would buy less than the goal's margin and risk a
        // rate above a window's limit: the estimate is where the climb ends.
        // A queue the host served at its rate measured that rate: nothing to creep toward.
        let queued = self.sends.served_while_queued(sent_at).is_some();
        let creep = spaced.filter(|u| to < CREEP_GAP * u && !queued);
        if spaced.is_some() {
            // Too few sends to say how much burst the climb used (a ramp of a few requests fits
            // any rate): no deeper than the classic halving.
            from = from.max(to * DECREASE_FACTOR);
        } else if !repeated {
            // A burst the few sends cannot bound (three fast requests fit a burst of two at any
            // rate) would restart at `MIN_RATE`, a minute and more of climbing: no deeper than
            // halving twice.
            from = from.max(to * DECREASE_FACTOR * DECREASE_FACTOR);
        }
        let unsettled = self.sends.unanswered_before(sent_at).then_some((sent_at, refused_rate));
        if spaced.is_some() && ramping && !queued {
            // The ramp fits a spacing limit near its refused rate and a slower bucket with a
            // burst alike: the memory test tells them apart (`memory_test.rs`). Once: a refusal
            // in a later hold is not a ramp's.
            if self.start_memory_test(now, (sent_at, refused_rate), &fit, burst, (to, unsettled)) {
                return Some(ChangeReason::Refused);
            }
        }
        self.rate = from.clamp(MIN_RATE, self.config.max_rate);
        let to = to.min(self.config.max_rate).max(self.rate);
        self.recovery = Some(Recovery {
            unsettled,
            upper: creep.map_or(to, |u| u.min(self.config.max_rate).max(to)),
            spaced: spaced.is_some(),
            ..Recovery::toward(self.rate, to)
        });
        Some(ChangeReason::Refused)
    }

    /// A host whose answers queue up (nginx without `nodelay`, or a server at its capacity) is
    /// held just below the rate it answers at, and stops growing.
    pub(super) fn on_queue(&mut self, now: Instant) -> Option<ChangeReason> {
        let service = self.sends.queueing(self.last_cut)?;
        let held = (service * HOLD_FRACTION).clamp(MIN_RATE, self.config.max_rate);
        if self.rate <= held {
            return None;
        }
        self.rate = held;
        // A cut like a refusal's: a refusal of a request sent before it was sent too fast for
        // the queue, and is paid for already.
        self.cut_at(now);
        self.recovery = None;
        self.regrow_to = None;
        self.before_probe = None;
        Some(ChangeReason::Queueing)
    }

    /// What every cut does (a refusal's, a queue's, a peer share's, the memory test's verdict):
    /// the host holds from `now`, answers to requests sent before it do not cut again, and the
    /// quiet time before a probe starts over.
    pub(super) fn cut_at(&mut self, now: Instant) {
        self.phase = Phase::Hold;
        self.last_cut = Some(now);
        self.quiet_since = Some(now);
    }

    /// A refusal taught the known limit (see `KnownLimit`).
    pub(super) fn note_refusal(&mut self, refused_rate: f64, now: Instant) {
        self.limit = Some(match self.limit {
            Some(l) => KnownLimit { rate: l.rate.min(refused_rate), refusals: l.refusals + 1, seen_at: Some(now) },
            None => KnownLimit { rate: refused_rate, refusals: 1, seen_at: Some(now) },
        });
    }

    /// Once every send before the refused one has its answer, the estimate the recovery climbs
    /// to is made again with all of them (it only ever rises).
    pub(super) fn settle(&mut self) {
        let Some(Recovery { unsettled: Some((sent_at, refused_rate)), .. }) = self.recovery else { return };
        if self.sends.unanswered_before(sent_at) {
            return;
        }
        let to = self.estimate(sent_at, refused_rate, &self.fit(refused_rate));
        if let Some(r) = self.recovery.as_mut() {
            // Without a creep the climb ends at the estimate, so a risen estimate moves its end;
            // a queue now seen to be served at its rate ends any creep.
            if self.sends.served_while_queued(sent_at).is_some() {
                r.upper = r.to.max(to);
            } else if r.upper <= r.to {
                r.upper = r.upper.max(to);
            }
            r.to = r.to.max(to);
            r.unsettled = None;
        }
    }

    /// The leaky buckets that fit the send log, from `MIN_RATE` to half again the fastest send.
    pub(super) fn fit(&self, refused_rate: f64) -> LeakyFit {
        let high = self.sends.highest_rate().unwrap_or(refused_rate).max(refused_rate) * 1.5;
        LeakyFit::new(&self.sends.answered(), MIN_RATE, high)
    }

    /// The rate to climb back to after a refusal of a request sent at `refused_at` at
    /// `refused_rate`: the requests accepted in the second before it (what a sliding window
    /// lets through), or if higher the lowest rate a leaky bucket without burst fits (what a
    /// spacing limit lets through), but never above the rate of the last accepted pressed
    /// request; held at `HOLD_FRACTION`, and halved without evidence.
    pub(super) fn estimate(&self, refused_at: Instant, refused_rate: f64, fit: &LeakyFit) -> f64 {
        let readings = [
            self.sends.last_accepted_pressed(refused_at),
            fit.highest(),
            self.sends.accepted_in_window(refused_at, refused_rate),
            self.sends.served_while_queued(refused_at),
        ];
        let best = readings.into_iter().flatten().reduce(f64::min);
        let held = best.unwrap_or(refused_rate * DECREASE_FACTOR).min(refused_rate) * HOLD_FRACTION;
        held.clamp(MIN_RATE, self.config.max_rate)
    }
}
