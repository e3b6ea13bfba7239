//! A row whose server redirected it to another server: handed to the rank's guests
//! (`actors::guests`), which ask that server under its own robots.txt and spacing, and decided
//! here from what it answered. The other server's answer teaches this host's rate nothing: a
//! 429 from a CDN is not this server's limit.
//!
//! While the row is away it counts as one of this host's requests in flight (the host's
//! in-flight cap bounds what it hands over) and keeps its rank slot.

use std::sync::Arc;
use std::time::SystemTime;

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};

use super::ServerActor;
use crate::actors::guests::GuestEnd;
use crate::actors::server::row::Task;
use crate::fetch::client::{FetchFailure, Hop};
use crate::fetch::retry_after::parse_retry_after;
use crate::host::outcome::{ErrorClass, Outcome};

impl ServerActor {
    /// Hands `task` to the rank's guests at `hop` (a server other than this host).
    pub(super) fn hand_to_guest(&mut self, task: Task, hop: Hop, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let engine = Arc::clone(&self.engine);
        let mut cut = self.engine.cut.clone();
        let fut = async move {
            tokio::select! {
                end = engine.guests.fetch(hop) => Some(end),
                // A closed channel (the run is ending anyway) never cuts.
                Ok(_) = cut.wait_for(|cut| *cut) => None,
            }
        };
        ctx.spawn(wrap_future(fut).map(move |end, act: &mut Self, ctx| match end {
            Some(end) => act.on_guest(task, end, ctx),
            None => act.on_cut(ctx),
        }));
    }

    fn on_guest(&mut self, mut task: Task, end: GuestEnd, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        match end {
            GuestEnd::Disallowed(detail) => {
                self.engine.give_back_slot();
                self.record_failure(task, ErrorClass::Robots, detail, false, ctx);
            }
            GuestEnd::RobotsNotNow(detail) => {
                self.engine.give_back_slot();
                self.record_failure(task, ErrorClass::Robots, detail, true, ctx);
            }
            GuestEnd::Answered { server, result } => {
                let (outcome, retry_after, detail) = match result.as_ref() {
                    Ok(f) => {
                        task.last_status = f.status;
                        let ra = f.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()));
                        (
                            Outcome::Status(f.status),
                            ra,
                            format!("HTTP {} from {server}, reached by a redirect", f.status),
                        )
                    }
                    Err(FetchFailure::Transport { kind, detail }) => {
                        (Outcome::Transport(*kind), None, format!("{server}, reached by a redirect: {detail}"))
                    }
                    Err(FetchFailure::TooLarge { limit, announced }) => {
                        let what = announced
                            .map(|n| format!("{n} bytes announced"))
                            .unwrap_or_else(|| "body kept growing".into());
                        self.engine.give_back_slot();
                        let detail = format!("{what} by {server}; limit is {limit} bytes (MAX_BODY_MB)");
                        self.record_failure(task, ErrorClass::TooLarge, detail, false, ctx);
                        return self.pump(ctx);
                    }
                };
                // The same attempt as the redirect that led here (counted in `on_response`).
                return self.decide(task, outcome, retry_after, *result, detail, ctx);
            }
        }
        self.pump(ctx);
    }
}
