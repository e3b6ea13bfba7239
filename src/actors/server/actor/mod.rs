//! The ServerActor: one per host, the only thing that talks to that host (a server that a
//! redirect leads to is asked by the rank's guests, `guest.rs`).
//!
//! It owns the host's [`Feed`] (its queue, filled in windows read on the blocking pool) and its
//! [`LiveHost`] (token bucket, adaptive rate, in-flight cap, Retry-After backoff, circuit
//! breaker). Handlers stay thin: the decisions are made by the plain logic in `feed.rs`,
//! `state.rs`, `rate.rs` and `retry.rs`; this file only moves rows between the feed, the network,
//! the CPU pool and the writer; `decide.rs` turns an answer into a stored image, a retry or a
//! failure record. A row that needs a retry goes back to the end of
//! the queue after its wait; it is never retried in a loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod decide;
mod guest;
mod handlers;
mod robots;
use robots::RobotsStep;
mod writes;

use actix::fut::wrap_future;
use actix::{ActorContext, ActorFutureExt, AsyncContext, Context, SpawnHandle};

use super::feed::{perform, Feed, ReadDone};
use super::messages::HostPlan;
use super::rate::ChangeReason;
use super::row::Task;
use super::state::{Gate, HostPhase, HostState, LiveHost};
use crate::actors::writer::messages::BatchOpened;
use crate::download::engine::{Engine, HostEvent, HostFailure};
use crate::fetch::client::{fetch_from, not_a_url, FetchFailure, Fetched, Hop, OtherServers};
use crate::fetch::outcome::{ErrorClass, Outcome, TransportKind};
use crate::fetch::retry_after::parse_retry_after;
use crate::robots::gate::RobotsGate;
use crate::robots::RobotsPolicy;
use crate::telemetry::events::{AnswerClass, HostGauges, HostStateChanged, RateChanged, RequestCompleted};

/// Rows of a given-up host with the writer at once: enough to keep it busy, little memory.
const GIVEN_UP_WRITES: u32 = 256;

/// How soon a host whose next request waits for body memory looks again: short next to a
/// body's processing time, long next to the cost of a look.
const BUDGET_RECHECK: Duration = Duration::from_millis(50);

pub struct ServerActor {
    host: String,
    engine: Arc<Engine>,
    live: LiveHost,
    /// The queue of rows to send, fed in windows.
    feed: Feed,
    /// Rows of each open batch queued and not yet acknowledged by the writer.
    outstanding: HashMap<u64, u64>,
    /// Open batches read to their end: committed once their last row is written.
    read_to_end: HashSet<u64>,
    /// The host was given up: every row left is recorded as a failure of this class (`parked`,
    /// `robots` when robots.txt never answered, `nxdomain` when the name does not exist),
    /// retriable, a window at a time.
    given_up: Option<(ErrorClass, String)>,
    /// Answers so far that the host's name does not exist (NXDOMAIN), from robots.txt or image
    /// requests alike; past `NXDOMAIN_RETRIES` the host is given up.
    no_such_name: u32,
    /// Its robots.txt: nothing is sent before the rules are known.
    robots: RobotsGate,
    in_flight: u32,
    /// Fetched rows on the CPU pool.
    processing: u32,
    /// Finished rows sent to the writer and not yet acknowledged.
    in_flight_writes: u32,
    /// Retries waiting out their delay before going back to the queue.
    waiting_retries: u32,
    wake: Option<SpawnHandle>,
    /// Shares of this host on other ranks (1 = none): refusals seen here are passed on to them.
    shares: u32,
    stopping: bool,
    finished: bool,
    phase: HostPhase,
    /// The host's gauges as last set (in flight, queued, known limit): `pump` runs for every
    /// event of the host, so they are set only when they change.
    gauges: (u32, usize, Option<f64>),
}

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

    fn set_phase(&mut self, to: HostPhase, detail: &str) {
        if self.phase != to {
            HostStateChanged { host: &self.host, from: Some(self.phase), to, detail }.emit(&self.engine.counters);
            self.phase = to;
        }
    }

    /// Starts the feed's next read, if it wants one, on the blocking pool.
    fn feed_more(&mut self, ctx: &mut Context<Self>) {
        let Some(read) = self.feed.next_read() else { return };
        let (out, host, retry) = (self.engine.out.clone(), self.host.clone(), self.engine.retry_failed);
        let known_id = self.feed.known_id(read);
        let job = tokio::task::spawn_blocking(move || perform(&out, &host, read, retry, known_id));
        ctx.spawn(wrap_future(job).map(|joined, act: &mut Self, ctx| {
            match joined.unwrap_or_else(|e| Err(HostFailure::ReadPanicked(e.to_string()))) {
                Ok(done) => act.on_read(done, ctx),
                Err(error) => {
                    act.feed.read_failed();
                    act.stop_run(error);
                }
            }
            act.pump(ctx);
        }));
    }

    fn on_read(&mut self, done: ReadDone, ctx: &mut Context<Self>) {
        match done {
            ReadDone::Opened { partition, rows, ledger, batch_id } => {
                if ledger.leftovers_removed > 0 {
                    crate::telemetry::events::log(
                        "INFO",
                        &format!(
                            "{}/{partition}: removed {} file(s) left by an interrupted run (unfinished or already merged shards)",
                            self.host, ledger.leftovers_removed
                        ),
                    );
                }
                self.feed.opened(partition, rows, &ledger.done, &ledger.to_retry_classes);
                self.engine.writer.do_send(BatchOpened {
                    server: self.host.clone(),
                    partition,
                    next_seq: ledger.next_seq,
                    batch_id,
                    summary: ledger.summary(),
                });
                self.outstanding.insert(partition, 0);
            }
            ReadDone::Window { partition, rows } => {
                let fed = self.feed.window(partition, rows);
                *self.outstanding.entry(partition).or_insert(0) += fed.queued;
                if fed.batch_read {
                    self.read_to_end.insert(partition);
                    self.maybe_commit_batch(partition, ctx);
                }
            }
        }
    }

    /// Sends as many requests as the host's gate and the rank's slots allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
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

    fn schedule_wake(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if let Some(h) = self.wake.take() {
            ctx.cancel_future(h);
        }
        self.wake = Some(ctx.run_later(after, |act, ctx| {
            act.wake = None;
            act.pump(ctx);
        }));
    }

    /// Sends `task`'s request; `sent_at` is the instant the host's gate let it go.
    fn start_request(&mut self, task: Task, sent_at: Instant, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let engine = Arc::clone(&self.engine);
        let url = task.url.clone();
        let mut cut = self.engine.cut.clone();
        let fut = async move {
            let Some(hop) = Hop::first(&url) else { return Some(Err(not_a_url(&url))) };
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

    fn on_response(
        &mut self,
        mut task: Task,
        sent_at: Instant,
        result: Result<Fetched, FetchFailure>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight -= 1;
        task.attempts += 1;
        let now = Instant::now();
        let counters = &self.engine.counters;
        let (outcome, retry_after, detail) = match &result {
            Ok(f) => {
                let class = AnswerClass::of(&Outcome::Status(f.status));
                RequestCompleted {
                    host: &self.host,
                    class,
                    bytes: f.body.len() as u64,
                    seconds: now.duration_since(sent_at).as_secs_f64(),
                    head_seconds: Some(f.head_after.as_secs_f64()),
                    refusal: Outcome::Status(f.status).is_refusal(f.retry_after.is_some()),
                }
                .emit(counters);
                task.last_status = f.status;
                let ra = f.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()));
                (Some(Outcome::Status(f.status)), ra, format!("HTTP {}", f.status))
            }
            Err(FetchFailure::Transport { kind, detail }) => {
                let o = Outcome::Transport(*kind);
                let seconds = now.duration_since(sent_at).as_secs_f64();
                RequestCompleted {
                    host: &self.host,
                    class: AnswerClass::of(&o),
                    bytes: 0,
                    seconds,
                    head_seconds: None,
                    refusal: false,
                }
                .emit(counters);
                (Some(o), None, detail.clone())
            }
            Err(FetchFailure::TooLarge { limit, announced }) => {
                let seconds = now.duration_since(sent_at).as_secs_f64();
                RequestCompleted {
                    host: &self.host,
                    class: AnswerClass::Status2xx,
                    bytes: 0,
                    seconds,
                    head_seconds: None,
                    refusal: false,
                }
                .emit(counters);
                let what =
                    announced.map(|n| format!("{n} bytes announced")).unwrap_or_else(|| "body kept growing".into());
                (None, None, format!("{what}; limit is {limit} bytes (MAX_BODY_MB)"))
            }
        };
        let Some(outcome) = outcome else {
            // Too large: the server answered fine, the URL is simply not for us.
            self.live.observe(&Outcome::Status(200), None, sent_at, now);
            self.engine.give_back_slot();
            self.record_failure(task, ErrorClass::TooLarge, detail, false, ctx);
            return self.pump(ctx);
        };
        let change = self.live.observe(&outcome, retry_after, sent_at, now);
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
        if outcome == Outcome::Transport(TransportKind::NoSuchName) && self.name_is_gone() {
            // Whichever rows asked, the name does not exist for any of them.
            self.engine.give_back_slot();
            let why = format!("{detail}, asked {} times", self.no_such_name);
            self.record_failure(task, ErrorClass::Nxdomain, detail, true, ctx);
            self.give_up_no_such_name(why, ctx);
            return self.pump(ctx);
        }
        if let Ok(Fetched { moved_to: Some(to), redirects, .. }) = &result {
            // Another server: asked under its own robots.txt and rate (`download::guests`).
            let hop = Hop {
                url: to.clone(),
                origin: Hop::first(&task.url).map(|h| h.origin).unwrap_or(to.clone()),
                redirects: redirects + 1,
            };
            return self.hand_to_guest(task, hop, ctx);
        }
        self.decide(task, outcome, retry_after, result, detail, ctx);
    }

    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
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
        let _ = self.engine.events.send(HostEvent::Finished { host: self.host.clone(), state });
        ctx.stop();
    }
}
