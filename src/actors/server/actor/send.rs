//! Sending: as many requests as the host's gate (token bucket, in-flight cap, pauses, parking)
//! and the rank's request slots and body memory allow, robots.txt first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};

use super::robots::RobotsStep;
use super::ServerActor;
use crate::actors::server::row::Task;
use crate::fetch::client::{fetch_from, not_a_url, Hop, OtherServers};
use crate::host::outcome::ErrorClass;
use crate::host::state::{Gate, HostPhase};
use crate::telemetry::events::{HostGauges, Revalidation};

/// How soon a host whose next request waits for body memory looks again: short next to a
/// body's processing time, long next to the cost of a look.
const BUDGET_RECHECK: Duration = Duration::from_millis(50);

impl ServerActor {
    /// Sends as many requests as the host's gate and the rank's slots allow.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        let gauges = (self.in_flight, self.feed.queue.len(), self.live.rate().known_limit().map(|k| k.rate));
        if gauges != self.gauges {
            self.gauges = gauges;
            HostGauges { host: &self.host, in_flight: gauges.0, queued: gauges.1, known_limit: gauges.2 }.emit();
        }
        loop {
            if self.stopping {
                break;
            }
            self.feed_more(ctx);
            if self.feed.queue.is_empty() {
                break;
            }
            if self.given_up.is_some() {
                self.record_given_up(ctx);
                break;
            }
            let robots_url = match self.robots_step(ctx) {
                RobotsStep::Continue => continue,
                RobotsStep::Stop => break,
                RobotsStep::Send(url) => url,
            };
            let addr = ctx.address().recipient();
            let got_slot = self.engine.slots.lock().expect("slots lock").try_take(&self.host, || addr);
            if !got_slot {
                break;
            }
            if self.engine.body_budget.exhausted() {
                // Every byte of CPU_QUEUE_MB is held by bodies read or being processed: a new
                // request's body could only wait. Look again shortly.
                self.engine.give_back_slot();
                self.schedule_wake(BUDGET_RECHECK, ctx);
                break;
            }
            let now = Instant::now();
            match self.live.try_send(self.in_flight, now) {
                Gate::Send if robots_url.is_some() => {
                    self.set_phase(HostPhase::Active, "");
                    self.ask_robots(robots_url.expect("checked"), now, ctx);
                }
                Gate::Send => {
                    let task = self.feed.queue.pop_front().expect("queue checked non-empty");
                    self.set_phase(HostPhase::Active, "");
                    self.start_request(task, now, ctx);
                }
                Gate::AtCapacity => {
                    self.engine.give_back_slot();
                    break;
                }
                Gate::Wait { until } => {
                    self.engine.give_back_slot();
                    if self.live.breaker().parked_until().is_some_and(|p| p > now) {
                        self.set_phase(HostPhase::Parked, "connection failures");
                    } else if until.saturating_duration_since(now) > Duration::from_secs(1) {
                        self.set_phase(HostPhase::BackingOff, "");
                    }
                    self.schedule_wake(until.saturating_duration_since(now), ctx);
                    break;
                }
                Gate::Dead => {
                    self.engine.give_back_slot();
                    let why =
                        format!("{} stayed unreachable; `download --retry-failed` tries the row again", self.host);
                    self.give_up(ErrorClass::Parked, why, ctx);
                    break;
                }
            }
        }
        self.maybe_finish(ctx);
    }

    /// Sends `task`'s request; `sent_at` is the instant the host's gate let it go.
    pub(super) fn start_request(&mut self, task: Task, sent_at: Instant, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let conditions = task.conditions();
        if task.stale.is_some() && task.attempts == 0 {
            Revalidation::Sent { conditional: conditions.any() }.emit(&self.host, &self.engine.counters);
        }
        let engine = Arc::clone(&self.engine);
        let url = task.url.clone();
        let mut cut = self.engine.cut.clone();
        let fut = async move {
            let Some(hop) = Hop::first(&url).map(|hop| Hop { conditions, ..hop }) else {
                return Some(Err(not_a_url(&url)));
            };
            tokio::select! {
                result = fetch_from(&engine.client, hop, OtherServers::Stop, &engine.http, &engine.body_budget) => Some(result),
                // A closed channel (the run is ending anyway) never cuts.
                Ok(_) = cut.wait_for(|cut| *cut) => None,
            }
        };
        ctx.spawn(wrap_future(fut).map(move |result, act: &mut Self, ctx| match result {
            Some(result) => act.on_response(task, sent_at, result, ctx),
            None => act.on_cut(ctx),
        }));
    }
}
