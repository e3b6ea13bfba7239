//! The ServerActor's robots.txt side: reading the cache entry, asking the host, and obeying
//! the answer. The decisions are `robots::gate`'s; this file does the I/O and the logging.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext, Context};

use super::ServerActor;
use crate::fetch::client::{fetch, FetchFailure};
use crate::fetch::retry_after::parse_retry_after;
use crate::host::outcome::{ErrorClass, Outcome, TransportKind};
use crate::host::retry::{classify, Decision};
use crate::host::state::HostPhase;
use crate::robots::cache::{self, Cached, CachedRobots};
use crate::robots::gate::{verdict, Next, Verdict};
use crate::robots::{robots_url, Robots};
use crate::telemetry::events::{log, AnswerClass, RateChanged, RequestCompleted};

/// What `pump` does after asking the host's robots.txt gate.
pub(super) enum RobotsStep {
    /// Look at the queue again (disallowed rows were just recorded, or the rules changed).
    Continue,
    /// Send nothing now: a read, a request or a wait is under way, or the host was given up.
    Stop,
    /// Send the next request: robots.txt at this URL, or (`None`) the next image.
    Send(Option<String>),
}

impl ServerActor {
    /// Asks the robots.txt gate what comes before the next request, and starts what it says
    /// (a cache read, a wake at the end of a wait, giving the host up).
    pub(super) fn robots_step(&mut self, ctx: &mut Context<Self>) -> RobotsStep {
        let now = Instant::now();
        match self.robots.next(now) {
            Next::Go(_) => {
                if self.skip_disallowed(ctx) {
                    RobotsStep::Continue
                } else {
                    RobotsStep::Send(None)
                }
            }
            Next::Ask => {
                let first = self.feed.queue.front().map(|t| t.url.clone()).unwrap_or_default();
                match robots_url(&first) {
                    Some(url) => RobotsStep::Send(Some(url)),
                    None => {
                        // Not a URL: no origin to ask. The row fails on its own request.
                        self.robots.known(Robots::allow_all());
                        RobotsStep::Continue
                    }
                }
            }
            Next::ReadCache => {
                self.read_robots_cache(ctx);
                RobotsStep::Stop
            }
            Next::WaitUntil(at) => {
                let wait = at.saturating_duration_since(now);
                if wait > Duration::from_secs(1) {
                    self.set_phase(HostPhase::BackingOff, "waiting for robots.txt");
                }
                self.schedule_wake(wait, ctx);
                RobotsStep::Stop
            }
            Next::Busy => RobotsStep::Stop,
            Next::GiveUp(why) => {
                let why = why.to_string();
                self.give_up(ErrorClass::Robots, why, ctx);
                RobotsStep::Stop
            }
        }
    }

    /// Reads the host's robots.txt cache entry on the blocking pool.
    pub(super) fn read_robots_cache(&mut self, ctx: &mut Context<Self>) {
        self.robots.reading();
        let (out, host) = (self.engine.out.clone(), self.host.clone());
        let job = tokio::task::spawn_blocking(move || cache::read(&out, &host));
        ctx.spawn(wrap_future(job).map(|entry, act: &mut Self, ctx| {
            let e = &act.engine;
            let entry = entry.ok().flatten();
            let (gone, parked) = entry.as_ref().map_or((false, false), |c| (c.no_such_name, c.parked));
            let found = entry.and_then(|c| c.usable(e.run_started, SystemTime::now(), e.robots_cache));
            if let Some(Cached::Unreachable(why)) = &found {
                // The asking share of this split host gave it up: its rows go the same way.
                if gone {
                    act.give_up_no_such_name(format!("another share of this host found: {why}"), ctx);
                    return act.pump(ctx);
                }
                if parked {
                    let why = format!(
                        "another share of this host found it unreachable ({why}); `download --retry-failed` tries the row again"
                    );
                    act.give_up(ErrorClass::Parked, why, ctx);
                    act.maybe_finish(ctx);
                    return act.pump(ctx);
                }
            }
            act.robots.cache_read(found, Instant::now());
            if let Some(rules) = act.robots.rules().cloned() {
                act.obey(&rules, "kept from an earlier answer");
            }
            act.pump(ctx);
        }));
    }

    /// Asks the host for robots.txt; the gate already let the request go at `sent_at` (a slot
    /// and a token are taken, like any image request's).
    pub(super) fn ask_robots(&mut self, url: String, sent_at: Instant, ctx: &mut Context<Self>) {
        self.robots.asking();
        self.in_flight += 1;
        let engine = Arc::clone(&self.engine);
        let target = url.clone();
        let fut = async move { fetch(&engine.client, &target, &engine.http, &engine.body_budget).await };
        ctx.spawn(wrap_future(fut).map(move |result, act: &mut Self, ctx| {
            act.in_flight -= 1;
            act.engine.give_back_slot();
            act.on_robots(url, sent_at, result, ctx);
            act.pump(ctx);
        }));
    }

    fn on_robots(
        &mut self,
        url: String,
        sent_at: Instant,
        result: Result<crate::fetch::client::Fetched, FetchFailure>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        let (outcome, retry_after, body, detail) = match result {
            Ok(f) => {
                let ra = f.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()));
                (Outcome::Status(f.status), ra, f.body, format!("HTTP {}", f.status))
            }
            Err(FetchFailure::Transport { kind, detail }) => (Outcome::Transport(kind), None, Vec::new(), detail),
            // The host answered, with something larger than MAX_BODY_MB: no rules a crawler could
            // read, so none (an empty 200).
            Err(FetchFailure::TooLarge { .. }) => (Outcome::Status(200), None, Vec::new(), "too large to read".into()),
        };
        RequestCompleted {
            host: &self.host,
            class: AnswerClass::of(&outcome),
            bytes: body.len() as u64,
            seconds: now.duration_since(sent_at).as_secs_f64(),
            head_seconds: None,
            refusal: outcome.is_refusal(retry_after.is_some()),
        }
        .emit(&self.engine.counters);
        // The answer teaches the host's state like any other: a Retry-After pauses the host, a
        // host that does not answer is parked and, in the end, given up.
        if let Some(c) = self.live.observe(&outcome, retry_after, sent_at, now) {
            RateChanged { host: &self.host, from: c.from, to: c.to, reason: c.reason, verbose: self.engine.verbose }
                .emit(&self.engine.counters);
        }
        let status = match outcome {
            Outcome::Status(s) => Some(s),
            Outcome::Transport(_) => None,
        };
        match verdict(&outcome, &body) {
            Verdict::Rules(rules) => {
                let what = match status {
                    Some(s) if (200..300).contains(&s) => format!("answered {s}"),
                    _ => format!("is unavailable ({detail}): everything is allowed"),
                };
                self.obey(&rules, &format!("{url} {what}"));
                self.robots.known(rules);
                self.write_robots_cache(CachedRobots::answered(&url, status, &body, &detail), ctx);
            }
            Verdict::NotNow => {
                let attempt = self.robots.failures();
                if outcome == Outcome::Transport(TransportKind::NoSuchName) && self.name_is_gone() {
                    // The DNS said twice that the name does not exist: no request can reach it.
                    let why = format!("{detail}, asked {} times", self.no_such_name);
                    self.write_robots_cache(CachedRobots::no_such_name(&url, &why), ctx);
                    self.robots.not_now(None, why.clone(), now);
                    self.give_up_no_such_name(why, ctx);
                    return;
                }
                // A host that does not answer at all is the circuit breaker's to judge (parked,
                // then given up with its rows `parked`); only its statuses use up the budget.
                let counted = if matches!(outcome, Outcome::Transport(_)) { 0 } else { attempt };
                let jitter = rand::random::<f64>();
                let wait = match classify(&outcome, counted, retry_after, &self.engine.retry, jitter) {
                    Decision::Retry { after } => Some(after),
                    Decision::Done | Decision::GiveUp { .. } => None,
                };
                let why = format!("{url} did not answer ({detail}) after {} attempt(s)", attempt + 1);
                match wait {
                    Some(after) => log(
                        "INFO",
                        &format!(
                            "{}: {url} {} {detail}: no image is fetched until it answers; asking again in {:.1} s",
                            self.host,
                            if status.is_some() { "answered" } else { "failed:" },
                            after.as_secs_f64()
                        ),
                    ),
                    None => {
                        log(
                            "WARN",
                            &format!("{}: {why}; its rows are recorded as retriable `robots` failures", self.host),
                        );
                        self.write_robots_cache(CachedRobots::unreachable(&url, &why), ctx);
                    }
                }
                self.robots.not_now(wait, why, now);
            }
        }
    }

    /// Applies the rules' Crawl-delay to the host's rate and says what the rules are.
    pub(super) fn obey(&mut self, rules: &Robots, source: &str) {
        let delay = rules.crawl_delay();
        let mut said = format!("{}: robots.txt {source}", self.host);
        if let Some(d) = delay {
            // Each share of a split host gets its part of the host's ceiling.
            let ceiling = 1.0 / d / f64::from(self.shares);
            said.push_str(&format!("; Crawl-delay {d} s: at most {ceiling:.3} req/s"));
            if let Some(c) = self.live.cap_rate(ceiling, Instant::now()) {
                RateChanged {
                    host: &self.host,
                    from: c.from,
                    to: c.to,
                    reason: c.reason,
                    verbose: self.engine.verbose,
                }
                .emit(&self.engine.counters);
            }
        }
        log("INFO", &said);
    }

    pub(super) fn write_robots_cache(&mut self, entry: CachedRobots, ctx: &mut Context<Self>) {
        let (out, host) = (self.engine.out.clone(), self.host.clone());
        let job = tokio::task::spawn_blocking(move || cache::write(&out, &host, &entry));
        ctx.spawn(wrap_future(job).map(|written, act: &mut Self, _| {
            if let Ok(Err(e)) = written {
                log(
                    "WARN",
                    &format!("{}: cannot keep its robots.txt answer: {e:#}; the next run asks again", act.host),
                );
            }
        }));
    }

    /// Records rows the rules disallow as `robots` failures, without a request, while they are
    /// at the front of the queue. Returns whether any was.
    pub(super) fn skip_disallowed(&mut self, ctx: &mut Context<Self>) -> bool {
        let mut skipped = false;
        while let Some(task) = self.feed.queue.front() {
            let Some(rules) = self.robots.rules() else { break };
            let allowed = crate::robots::url_path(&task.url).is_none_or(|p| rules.allows(&p));
            if allowed {
                break;
            }
            let task = self.feed.queue.pop_front().expect("front checked");
            let detail = format!(
                "robots.txt of {} disallows this path for {}; no request was sent",
                self.host,
                crate::robots::PRODUCT_TOKEN
            );
            self.record_failure(task, ErrorClass::Robots, detail, false, ctx);
            skipped = true;
        }
        skipped
    }
}
