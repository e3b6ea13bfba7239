//! The actor's life: built from its plan (its share of the host's rates and cap, and what earlier
//! runs learned), its phase as the metrics show it, its wake-ups, and its end, which reports the
//! host's learned state to the coordinator.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::{ActorContext, AsyncContext, Context};

use super::ServerActor;
use crate::actors::engine::Engine;
use crate::actors::messages::{HostEvent, HostPlan};
use crate::actors::server::feed::Feed;
use crate::host::state::{HostPhase, HostState, LiveHost};
use crate::robots::gate::RobotsGate;
use crate::robots::RobotsPolicy;
use crate::telemetry::events::HostStateChanged;

impl ServerActor {
    pub fn new(plan: HostPlan, engine: Arc<Engine>) -> ServerActor {
        let shares = plan.shares.max(1);
        let k = f64::from(shares);
        let mut rate = engine.rate.clone();
        rate.initial_rate = plan.initial_rate / k;
        rate.max_rate = plan.max_rate / k;
        // The planner never splits a host into more shares than its in-flight cap.
        rate.max_in_flight = (plan.max_in_flight / shares).max(1);
        let learned = plan.learned.as_ref().map(|s| HostState {
            rate: s.rate / k,
            known_limit: s.known_limit.map(|l| l / k),
            max_in_flight: (s.max_in_flight / shares).max(1),
            // A share sees only its own gaps, not the host's: the verdict that the host's limit
            // judges gaps holds for a host in one share.
            forgets: s.forgets && shares == 1,
            ..s.clone()
        });
        let robots = RobotsGate::new(engine.robots == RobotsPolicy::Obey, plan.asks_robots);
        let now = Instant::now();
        let live = match &learned {
            Some(state) => LiveHost::restore(state, rate, engine.breaker.clone(), now, SystemTime::now()),
            None => LiveHost::new(rate, engine.breaker.clone(), now),
        };
        ServerActor {
            host: plan.host,
            engine,
            live,
            feed: Feed::new(plan.partitions, plan.batch_ids),
            outstanding: HashMap::new(),
            read_to_end: HashSet::new(),
            given_up: None,
            no_such_name: 0,
            robots,
            in_flight: 0,
            processing: 0,
            in_flight_writes: 0,
            waiting_retries: 0,
            wake: None,
            shares,
            stopping: false,
            finished: false,
            phase: HostPhase::Active,
            gauges: (0, 0, None),
        }
    }

    /// Runs `pump` again after `after`, replacing any wake-up already scheduled.
    pub(super) fn schedule_wake(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if let Some(h) = self.wake.take() {
            ctx.cancel_future(h);
        }
        self.wake = Some(ctx.run_later(after, |act, ctx| {
            act.wake = None;
            act.pump(ctx);
        }));
    }

    /// Ends the actor once nothing is in flight, processing or being written and the feed is
    /// exhausted (or it was told to stop), reporting the host's state to the coordinator.
    pub(super) fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        let busy = self.in_flight > 0 || self.processing > 0 || self.in_flight_writes > 0 || self.feed.is_reading();
        if self.finished || busy {
            return;
        }
        let idle = self.feed.is_exhausted() && self.waiting_retries == 0;
        if !(idle || self.stopping) {
            return;
        }
        self.finished = true;
        let detail = if idle { "" } else { "stopped with rows left for the next round or run" };
        self.set_phase(HostPhase::Done, detail);
        let state = self.live.export(Instant::now(), SystemTime::now());
        // Fails only once the coordinator has stopped listening (the run or round is over): the
        // state is then not needed, and the shards already hold every row.
        let _ = self.engine.events.send(HostEvent::Finished { host: self.host.clone(), state });
        ctx.stop();
    }

    /// Moves the host to phase `to` (a metric and a log line), if it is not there already.
    pub(super) fn set_phase(&mut self, to: HostPhase, detail: &str) {
        if self.phase != to {
            HostStateChanged { host: &self.host, from: Some(self.phase), to, detail }.emit(&self.engine.counters);
            self.phase = to;
        }
    }
}
