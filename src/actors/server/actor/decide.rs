//! What a row's answer means for the row: stored (the body goes to the CPU pool), retried
//! after a wait, or recorded as a failure. The host's own rate has already learned from the
//! answer (`on_response`), or must not (an answer of another server, `guest.rs`).

use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};

use super::ServerActor;
use crate::actors::messages::Record;
use crate::actors::server::row::Task;
use crate::fetch::budget::BodyPermit;
use crate::fetch::client::{FetchFailure, Fetched};
use crate::host::outcome::{ErrorClass, Outcome};
use crate::host::retry::{classify, Decision};
use crate::imaging::process;
use crate::store::shards::revalidation::Answer;
use crate::telemetry::events::{ImageStored, RetryScheduled, Revalidation};

impl ServerActor {
    /// Decides about `task` from its answer: `outcome` (with its `retry_after` and the `result`
    /// it came from), `detail` for a failure record. Holds the rank slot until it is decided.
    pub(super) fn decide(
        &mut self,
        mut task: Task,
        outcome: Outcome,
        retry_after: Option<Duration>,
        result: Result<Fetched, FetchFailure>,
        mut detail: String,
        ctx: &mut Context<Self>,
    ) {
        if let Ok(Fetched { final_url: Some(url), redirects, .. }) = &result {
            // A stored image keeps these in its own columns; a failure says them here.
            detail = format!("{detail} at {url}, after {redirects} redirect(s)");
        }
        if outcome == Outcome::Status(304) {
            if let Some(confirmed) = task.revalidated(Answer::NotModified) {
                // The server confirmed the stored bytes: no body was read, nothing to process.
                self.engine.give_back_slot();
                Revalidation::NotModified.emit(&self.host, &self.engine.counters);
                self.hand_to_writer(task.partition, Record::Revalidated(confirmed), None, ctx);
                return self.pump(ctx);
            }
        }
        let decision = classify(&outcome, task.attempts - 1, retry_after, &self.engine.retry, rand::random::<f64>());
        match decision {
            Decision::Done => match result {
                Ok(fetched) => {
                    task.final_url = fetched.final_url.clone();
                    task.redirects = fetched.redirects;
                    task.etag = fetched.etag.clone();
                    task.last_modified = fetched.last_modified.clone();
                    let tags = &self.engine.opt_out_tags;
                    match crate::robots::opt_out(&fetched.robots_tags, crate::robots::PRODUCT_TOKEN, tags) {
                        Some(tag) => {
                            // The operator opted out: the body is dropped (and its budget with it).
                            drop(fetched);
                            self.engine.give_back_slot();
                            let detail = format!("the response's X-Robots-Tag says `{tag}`; the image was not stored");
                            self.record_failure(task, ErrorClass::OptedOut, detail, false, ctx);
                        }
                        None => self.process_body(task, fetched.body, fetched.permit, ctx),
                    }
                }
                Err(_) => {
                    self.engine.give_back_slot();
                    self.record_failure(task, ErrorClass::Other, detail, false, ctx);
                }
            },
            Decision::Retry { after } => {
                self.engine.give_back_slot();
                let class = outcome.class().unwrap_or(ErrorClass::Other);
                RetryScheduled { host: &self.host, class }.emit(&self.engine.counters);
                self.waiting_retries += 1;
                ctx.run_later(after, move |act, ctx| {
                    act.waiting_retries -= 1;
                    act.feed.queue.push_back(task);
                    act.pump(ctx);
                });
            }
            Decision::GiveUp { class } => {
                self.engine.give_back_slot();
                self.record_failure(task, class, detail, outcome.is_retriable(), ctx);
            }
        }
        self.pump(ctx);
    }

    /// Decodes, resizes, encodes and hashes on the CPU pool, then hands the row to the writer.
    /// The body's share of the budget (`permit`) is given back once it has been processed.
    fn process_body(&mut self, task: Task, body: Vec<u8>, permit: Option<BodyPermit>, ctx: &mut Context<Self>) {
        self.processing += 1;
        let engine = Arc::clone(&self.engine);
        let host = self.host.clone();
        let fut = async move {
            let settings = engine.image.clone();
            let result = engine.cpu.submit(move || process(&body, &settings)).await;
            drop(permit);
            let record = match result {
                Ok(Ok(p)) => {
                    let timings = p.timings;
                    Ok((task.success(&host, p), timings))
                }
                Ok(Err(e)) => Err((e.class(), e.to_string())),
                Err(_) => Err((ErrorClass::Decode, "the decoder panicked on this image".to_string())),
            };
            (task, record)
        };
        ctx.spawn(wrap_future(fut).map(|(task, record), act: &mut Self, ctx| {
            act.processing -= 1;
            act.engine.give_back_slot();
            match record {
                Ok((success, timings)) if task.stale.is_some() => {
                    let same = task.stale.as_ref().is_some_and(|s| s.sha256 == success.sha256);
                    let result = if same { Revalidation::SameBytes } else { Revalidation::Changed };
                    result.emit(&act.host, &act.engine.counters);
                    if !same {
                        ImageStored { stored_bytes: success.data.len() as u64, timings }.emit(&act.engine.counters);
                    }
                    let revalidated = task.revalidated(Answer::Served(Box::new(success))).expect("a revalidation");
                    act.hand_to_writer(task.partition, Record::Revalidated(revalidated), None, ctx);
                }
                Ok((success, timings)) => {
                    ImageStored { stored_bytes: success.data.len() as u64, timings }.emit(&act.engine.counters);
                    act.hand_to_writer(task.partition, Record::Success(Box::new(success)), task.replaces, ctx);
                }
                Err((class, detail)) => act.record_failure(task, class, detail, false, ctx),
            }
            act.pump(ctx);
        }));
    }
}
