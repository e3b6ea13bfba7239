//! An answer from the host, in three steps: `report` it (a log line and the counters, whatever
//! it was), let the host `learn` from it (rate, pauses, parking; a refusal passed on to the
//! host's other shares), then `route` the row: a name that does not exist gives the host up, a
//! redirect to another server goes to the guests, anything else to `decide`.

use std::time::{Duration, Instant, SystemTime};

use actix::Context;

use super::ServerActor;
use crate::actors::messages::HostEvent;
use crate::actors::server::row::Task;
use crate::fetch::client::{FetchFailure, Fetched, Hop};
use crate::fetch::retry_after::parse_retry_after;
use crate::host::outcome::{ErrorClass, Outcome, TransportKind};
use crate::host::rate::ChangeReason;
use crate::telemetry::events::{AnswerClass, RateChanged, RequestCompleted};

/// What an answer was: its outcome (`None` for a body over `MAX_BODY_MB`, which says nothing
/// about the server), the wait a `Retry-After` asked for, and the detail a failure record gets.
struct Answer {
    outcome: Option<Outcome>,
    retry_after: Option<Duration>,
    detail: String,
}

impl ServerActor {
    /// The answer to the request sent at `sent_at` for `task`.
    pub(super) fn on_response(
        &mut self,
        mut task: Task,
        sent_at: Instant,
        result: Result<Fetched, FetchFailure>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight -= 1;
        task.attempts += 1;
        let now = Instant::now();
        if let Ok(f) = &result {
            self.live.heard(sent_at, f.head_at);
        }
        let Answer { outcome, retry_after, detail } = self.report(&mut task, sent_at, now, &result);
        let Some(outcome) = outcome else {
            // Too large: the server answered fine, the URL is simply not for us.
            self.live.observe(&Outcome::Status(200), None, sent_at, now);
            self.engine.give_back_slot();
            self.record_failure(task, ErrorClass::TooLarge, detail, false, ctx);
            return self.pump(ctx);
        };
        self.learn(&outcome, retry_after, sent_at, now);
        self.route(task, outcome, retry_after, result, detail, ctx);
    }

    /// Logs and counts the answer, and reads what it was.
    fn report(
        &self,
        task: &mut Task,
        sent_at: Instant,
        now: Instant,
        result: &Result<Fetched, FetchFailure>,
    ) -> Answer {
        let seconds = now.duration_since(sent_at).as_secs_f64();
        let completed = |class, bytes, head_seconds, refusal| RequestCompleted {
            host: &self.host,
            class,
            bytes,
            seconds,
            head_seconds,
            refusal,
        };
        match result {
            Ok(f) => {
                let outcome = Outcome::Status(f.status);
                let refusal = outcome.is_refusal(f.retry_after.is_some());
                completed(AnswerClass::of(&outcome), f.body.len() as u64, Some(f.head_after.as_secs_f64()), refusal)
                    .emit(&self.engine.counters);
                task.last_status = f.status;
                let retry_after = f.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()));
                Answer { outcome: Some(outcome), retry_after, detail: format!("HTTP {}", f.status) }
            }
            Err(FetchFailure::Transport { kind, detail }) => {
                let outcome = Outcome::Transport(*kind);
                completed(AnswerClass::of(&outcome), 0, None, false).emit(&self.engine.counters);
                Answer { outcome: Some(outcome), retry_after: None, detail: detail.clone() }
            }
            Err(FetchFailure::TooLarge { limit, announced }) => {
                completed(AnswerClass::Status2xx, 0, None, false).emit(&self.engine.counters);
                let what =
                    announced.map(|n| format!("{n} bytes announced")).unwrap_or_else(|| "body kept growing".into());
                Answer {
                    outcome: None,
                    retry_after: None,
                    detail: format!("{what}; limit is {limit} bytes (MAX_BODY_MB)"),
                }
            }
        }
    }

    /// The host's rate, pauses and parking learn from the answer; a refusal of a split host's
    /// share is passed on to its other shares through the coordinator.
    fn learn(&mut self, outcome: &Outcome, retry_after: Option<Duration>, sent_at: Instant, now: Instant) {
        let change = self.live.observe(outcome, retry_after, sent_at, now);
        if let Some(c) = change {
            RateChanged { host: &self.host, from: c.from, to: c.to, reason: c.reason, verbose: self.engine.verbose }
                .emit(&self.engine.counters);
        }
        let refused = matches!(change, Some(c) if c.reason == ChangeReason::Refused);
        if self.shares > 1 && (refused || (retry_after.is_some() && outcome.is_refusal(true))) {
            // Only fails once the coordinator has stopped listening, at the end of the run or
            // round, when there is no running share left to tell.
            let _ = self.engine.events.send(HostEvent::Refused {
                host: self.host.clone(),
                share_rate: self.live.rate().rate(),
                pause: self.live.pause_left(now),
            });
        }
    }

    /// Where the row goes: the host given up (its name does not exist), the guests (a redirect
    /// to another server), or `decide` (stored, retried or recorded).
    fn route(
        &mut self,
        task: Task,
        outcome: Outcome,
        retry_after: Option<Duration>,
        result: Result<Fetched, FetchFailure>,
        detail: String,
        ctx: &mut Context<Self>,
    ) {
        if outcome == Outcome::Transport(TransportKind::NoSuchName) && self.name_is_gone() {
            // Whichever rows asked, the name does not exist for any of them.
            self.engine.give_back_slot();
            let why = format!("{detail}, asked {} times", self.no_such_name);
            self.record_failure(task, ErrorClass::Nxdomain, detail, true, ctx);
            self.give_up_no_such_name(why, ctx);
            return self.pump(ctx);
        }
        if let Ok(Fetched { moved_to: Some(to), redirects, .. }) = &result {
            // Another server: asked under its own robots.txt and rate (`actors::guests`).
            let hop = Hop {
                url: to.clone(),
                origin: Hop::first(&task.url).map(|h| h.origin).unwrap_or(to.clone()),
                redirects: redirects + 1,
                conditions: task.conditions(),
            };
            return self.hand_to_guest(task, hop, ctx);
        }
        self.decide(task, outcome, retry_after, result, detail, ctx);
    }
}
