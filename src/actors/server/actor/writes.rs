//! The ServerActor's side towards the writer: finished rows handed over, batches committed,
//! and a given-up host's rows recorded a window at a time.

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};

use super::ServerActor;
use crate::actors::messages::{BatchDone, Record, Store};
use crate::actors::messages::{HostEvent, HostFailure};
use crate::actors::server::row::Task;
use crate::host::outcome::ErrorClass;
use crate::host::retry::NXDOMAIN_RETRIES;
use crate::host::state::HostPhase;
use crate::robots::cache::CachedRobots;
use crate::store::shards::revalidation::Answer;
use crate::telemetry::events::{log, Revalidation, RowFailed};

/// Rows of a given-up host with the writer at once: enough to keep it busy, little memory.
const GIVEN_UP_WRITES: u32 = 256;

impl ServerActor {
    /// Commits a batch once it has been read to its end and its last row written.
    pub(super) fn maybe_commit_batch(&mut self, partition: u64, ctx: &mut Context<Self>) {
        if self.read_to_end.contains(&partition) && self.outstanding.get(&partition).is_none_or(|n| *n == 0) {
            self.read_to_end.remove(&partition);
            self.outstanding.remove(&partition);
            self.commit_batch(partition, ctx);
        }
    }

    pub(super) fn record_failure(
        &mut self,
        task: Task,
        class: ErrorClass,
        detail: String,
        retriable: bool,
        ctx: &mut Context<Self>,
    ) {
        if let Some(kept) = task.revalidated(Answer::Failed { class: class.as_str().to_string() }) {
            // A revalidation that failed keeps the stored image (`store::shards::revalidation`).
            Revalidation::Failed.emit(&self.host, &self.engine.counters);
            return self.hand_to_writer(task.partition, Record::Revalidated(kept), None, ctx);
        }
        RowFailed { host: &self.host, class }.emit(&self.engine.counters);
        let (partition, replaces) = (task.partition, task.replaces.clone());
        let record = task.failure(&self.host, class, detail, retriable);
        self.hand_to_writer(partition, Record::Failure(record), replaces, ctx);
    }

    /// Sends one finished row to the writer; when it was the batch's last, tells the writer to
    /// commit the batch. Rows in the writer's hands count as in flight until acknowledged.
    pub(super) fn hand_to_writer(
        &mut self,
        partition: u64,
        record: Record,
        replaces: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight_writes += 1;
        let writer = self.engine.writer.clone();
        let server = self.host.clone();
        let fut = async move { writer.send(Store { server, partition, record, replaces }).await };
        ctx.spawn(wrap_future(fut).map(move |reply, act: &mut Self, ctx| {
            act.in_flight_writes -= 1;
            if let Err(error) = reply.map_err(HostFailure::from).and_then(|r| r.map_err(HostFailure::from)) {
                act.stop_run(error);
            }
            if let Some(left) = act.outstanding.get_mut(&partition) {
                *left = left.saturating_sub(1);
            }
            act.maybe_commit_batch(partition, ctx);
            if act.given_up.is_some() {
                // Record the next rows of a given-up host now that the writer has taken these.
                act.pump(ctx);
            } else {
                act.maybe_finish(ctx);
            }
        }));
    }

    /// A failure that stops the run: the coordinator hears of it, and this host starts nothing
    /// more. The send fails only once the coordinator has stopped listening (the run is already
    /// ending), so there is nobody left to tell.
    pub(super) fn stop_run(&mut self, error: HostFailure) {
        // Ignored on purpose: it fails only when the coordinator has stopped listening (above).
        let _ = self.engine.events.send(HostEvent::Fatal { host: self.host.clone(), error });
        self.stopping = true;
    }

    /// Tells the writer a batch is complete; its commit counts as a write in flight, and a
    /// failed commit stops the run like any other.
    pub(super) fn commit_batch(&mut self, partition: u64, ctx: &mut Context<Self>) {
        self.in_flight_writes += 1;
        let writer = self.engine.writer.clone();
        let server = self.host.clone();
        let fut = async move { writer.send(BatchDone { server, partition }).await };
        ctx.spawn(wrap_future(fut).map(move |reply, act: &mut Self, ctx| {
            act.in_flight_writes -= 1;
            if let Err(error) = reply.map_err(HostFailure::from).and_then(|r| r.map_err(HostFailure::from)) {
                act.stop_run(error);
            }
            act.maybe_finish(ctx);
        }));
    }

    /// Gives the host up for the run: every row still queued or in unread batches ends as a
    /// retriable failure of `class` (`parked` for a host that stayed unreachable, `robots` for
    /// one whose robots.txt never answered, `nxdomain` for a name that does not exist), with
    /// `detail`.
    pub(super) fn give_up(&mut self, class: ErrorClass, detail: String, ctx: &mut Context<Self>) {
        if self.given_up.is_none() {
            let why = match class {
                ErrorClass::Robots => {
                    "robots.txt never answered; remaining rows recorded as retriable `robots` failures"
                }
                // Said once by `give_up_no_such_name`; the host is not parked, it finishes.
                ErrorClass::Nxdomain => "",
                _ => "host unreachable after repeated parking; remaining rows recorded as `parked`",
            };
            if !why.is_empty() {
                self.set_phase(HostPhase::Parked, why);
            }
            let robots = self.feed.queue.front().and_then(|t| crate::robots::robots_url(&t.url));
            if let (ErrorClass::Parked, true, Some(url)) = (class, self.robots.unanswered_asker(), robots) {
                // The other shares of a split host wait for this share's robots.txt answer.
                self.write_robots_cache(CachedRobots::parked(&url, &detail), ctx);
            }
            self.given_up = Some((class, detail));
        }
        self.record_given_up(ctx);
    }

    /// Counts one more answer that the host's name does not exist; true once there have been
    /// more than `NXDOMAIN_RETRIES` (the name is gone for this run).
    pub(super) fn name_is_gone(&mut self) -> bool {
        self.no_such_name += 1;
        self.no_such_name > NXDOMAIN_RETRIES
    }

    /// The DNS answered twice that the host's name does not exist (`why` says what it answered):
    /// the host is given up at once, its rows `nxdomain`, retried by `download --retry-failed`.
    pub(super) fn give_up_no_such_name(&mut self, why: String, ctx: &mut Context<Self>) {
        if self.given_up.is_some() {
            // Said already; an answer still in flight only ends its own row.
            return;
        }
        log(
            "WARN",
            &format!(
                "{}: {why}; its rows are recorded as `nxdomain` (`download --retry-failed` asks again)",
                self.host
            ),
        );
        let detail = format!("{why}; `download --retry-failed` tries the row again");
        self.give_up(ErrorClass::Nxdomain, detail, ctx);
        self.maybe_finish(ctx);
    }

    /// Records the next rows of a given-up host. At most [`GIVEN_UP_WRITES`] rows are with the
    /// writer at once; the rest follow as it acknowledges them and as the feed reads on, so even
    /// a million-row host takes little memory.
    pub(super) fn record_given_up(&mut self, ctx: &mut Context<Self>) {
        let Some((class, detail)) = self.given_up.clone() else { return };
        while self.in_flight_writes < GIVEN_UP_WRITES {
            let Some(task) = self.feed.queue.pop_front() else { break };
            self.record_failure(task, class, detail.clone(), true, ctx);
        }
    }
}
