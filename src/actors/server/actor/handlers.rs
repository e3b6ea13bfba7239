//! The messages a ServerActor answers (its start, a free slot, another share's refusal, the
//! coordinator's stop, cut and give-up) and the transitions they cause. Thin: each hands over
//! to the actor's own methods in `mod.rs` and `writes.rs`.

use std::time::Instant;

use actix::{Actor, Context, Handler};

use super::ServerActor;
use crate::actors::messages::{GiveUpParked, PeerRefusal, StopIssuing, Wake};
use crate::host::outcome::ErrorClass;
use crate::host::state::HostPhase;
use crate::telemetry::events::{HostStateChanged, RateChanged};

impl ServerActor {
    /// A transfer cut at the deadline: nothing is recorded, so its row stays pending for the
    /// next run, and the host learns nothing from it.
    pub(super) fn on_cut(&mut self, ctx: &mut Context<Self>) {
        self.in_flight -= 1;
        self.engine.give_back_slot();
        self.maybe_finish(ctx);
    }
}

impl Actor for ServerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        HostStateChanged { host: &self.host, from: None, to: HostPhase::Active, detail: "" }
            .emit(&self.engine.counters);
        self.pump(ctx);
    }
}

impl Handler<Wake> for ServerActor {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.pump(ctx);
        // Woken for a free slot: if it is still free, this host did not need it; pass it on.
        self.engine.pass_on_slot();
    }
}

impl Handler<PeerRefusal> for ServerActor {
    type Result = ();

    fn handle(&mut self, msg: PeerRefusal, ctx: &mut Self::Context) {
        let now = Instant::now();
        let pause = msg.pause.map(|p| format!(", pausing {:.1} s", p.as_secs_f64())).unwrap_or_default();
        crate::telemetry::events::log(
            "INFO",
            &format!(
                "{}: another share of this host was refused; following it to {:.2} req/s{pause}",
                self.host, msg.share_rate
            ),
        );
        if let Some(c) = self.live.on_peer_refusal(msg.share_rate, msg.pause, now) {
            RateChanged { host: &self.host, from: c.from, to: c.to, reason: c.reason, verbose: self.engine.verbose }
                .emit(&self.engine.counters);
        }
        // A pending wake may be earlier than the new spacing or pause; the gate decides again.
        self.pump(ctx);
    }
}

impl Handler<StopIssuing> for ServerActor {
    type Result = ();

    fn handle(&mut self, _: StopIssuing, ctx: &mut Self::Context) {
        self.stopping = true;
        self.maybe_finish(ctx);
    }
}

impl Handler<GiveUpParked> for ServerActor {
    type Result = ();

    fn handle(&mut self, msg: GiveUpParked, ctx: &mut Self::Context) {
        if self.phase != HostPhase::Parked || self.given_up.is_some() || self.finished {
            return;
        }
        let why = format!(
            "{} stayed unreachable while the rank had nothing else to do for {} s; `download --retry-failed` tries the row again",
            self.host,
            msg.after.as_secs()
        );
        self.give_up(ErrorClass::Parked, why, ctx);
        self.maybe_finish(ctx);
    }
}
