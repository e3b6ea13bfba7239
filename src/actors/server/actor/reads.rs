//! The feed's reads: a batch opened (its committed shards scanned, the writer told where its next
//! shard starts) and its windows of rows, read on the blocking pool so the event loop never
//! touches a file.

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};

use super::ServerActor;
use crate::actors::messages::{BatchOpened, HostFailure};
use crate::actors::server::feed::{perform, ReadDone};

impl ServerActor {
    /// Starts the feed's next read, if it wants one, on the blocking pool.
    pub(super) fn feed_more(&mut self, ctx: &mut Context<Self>) {
        let Some(read) = self.feed.next_read() else { return };
        let (out, host, retry) = (self.engine.out.clone(), self.host.clone(), self.engine.again());
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

    pub(super) fn on_read(&mut self, done: ReadDone, ctx: &mut Context<Self>) {
        match done {
            ReadDone::Opened { partition, rows, mut ledger, batch_id } => {
                if ledger.leftovers_removed > 0 {
                    crate::telemetry::events::log(
                        "INFO",
                        &format!(
                            "{}/{partition}: removed {} file(s) left by an interrupted run (unfinished or already merged shards)",
                            self.host, ledger.leftovers_removed
                        ),
                    );
                }
                let stale = std::mem::take(&mut ledger.to_revalidate);
                self.feed.opened(partition, rows, &ledger.done, &ledger.to_retry_classes, stale);
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
}
