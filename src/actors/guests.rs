//! Servers reached by a redirect from another server ("guests"): their robots.txt and their
//! rate, on this rank.
//!
//! An image fetch stops at a redirect to another server (`fetch::client::OtherServers::Stop`).
//! The ServerActor of the server that redirected hands the row here, and the rank asks the
//! other server the way it asks any host:
//! - its robots.txt first (the shared cache in `<output>/robots/`, so once per run whichever
//!   rank asks), and no request for a path it disallows; its Crawl-delay is obeyed;
//! - one request at a time, spaced by at least `ranks / INITIAL_RATE_LIMIT`, so that all ranks
//!   together ask a guest no faster than a new host starts;
//! - a refusal (429, or any answer with `Retry-After`) doubles the spacing, and a Retry-After
//!   pauses the guest for as long as it says;
//! - when the chain started at a public host, through a client whose resolver refuses names
//!   that resolve only to local addresses (`fetch::dns`).
//!
//! The redirect answer itself was a request to the first server and is charged to it there.
//! A guest that is also a host of the run keeps its own ServerActor: the two are not shared, so
//! such a server may see its own rate plus the guest rate (the docs say so).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::fetch::budget::BodyBudget;
use crate::fetch::client::{fetch, fetch_from, FetchFailure, Fetched, Hop, HttpSettings, OtherServers};
use crate::fetch::retry_after::parse_retry_after;
use crate::host::outcome::Outcome;
use crate::robots::cache::{self, Cached, CachedRobots};
use crate::robots::gate::{verdict, Verdict};
use crate::robots::{robots_url, url_path, Robots, RobotsPolicy, PRODUCT_TOKEN};
use crate::telemetry::events::{log, AnswerClass, RequestCompleted};
use crate::telemetry::Counters;

/// How long a guest whose robots.txt did not answer is left alone before it is asked again;
/// its rows meanwhile are recorded as retriable `robots` failures without a request.
const ROBOTS_RETRY: Duration = Duration::from_secs(60);

/// Longest spacing a guest's refusals double up to.
const MAX_SPACING: Duration = Duration::from_secs(60);

/// How a handed-over row ended.
#[derive(Debug)]
pub enum GuestEnd {
    /// The answer of the server the redirects ended at (`server`, its key).
    Answered { server: String, result: Box<Result<Fetched, FetchFailure>> },
    /// robots.txt of the guest disallows the URL: nothing was sent.
    Disallowed(String),
    /// robots.txt of the guest did not answer: nothing was sent; retriable.
    RobotsNotNow(String),
}

/// What the guests share with the rest of the rank, given once when the rank starts.
pub struct GuestSetup {
    /// The output folder, whose `robots/` cache the guests' answers join.
    pub out: PathBuf,
    /// The rank's client, for chains that started at a local origin.
    pub client: reqwest::Client,
    /// The client whose resolver refuses names that resolve only to local addresses, for
    /// chains that started at a public host.
    pub public_client: reqwest::Client,
    pub http: HttpSettings,
    pub body_budget: BodyBudget,
    pub counters: Arc<Counters>,
    pub robots: RobotsPolicy,
    /// How long a cached robots.txt answer from an earlier run is reused.
    pub robots_cache: Duration,
    pub run_started: SystemTime,
    /// Requests per second each guest gets from this rank at most (`INITIAL_RATE_LIMIT / ranks`).
    pub rate: f64,
}

/// The guests of one rank.
pub struct Guests {
    servers: Mutex<HashMap<String, Arc<Guest>>>,
    /// Between two requests to one guest from this rank, at least.
    spacing: Duration,
    rank: GuestSetup,
}

struct Guest {
    key: String,
    /// Held across a guest's request: one at a time per guest and rank.
    turn: tokio::sync::Mutex<Turn>,
}

/// A guest's spacing and robots.txt: plain state, no clock of its own.
#[derive(Debug)]
struct Turn {
    /// No request before this instant.
    next: Option<Instant>,
    spacing: Duration,
    robots: GuestRobots,
}

#[derive(Debug, Clone)]
enum GuestRobots {
    Unknown,
    Known(Arc<Robots>),
    NotNow { until: Instant, why: String },
}

impl Turn {
    fn new(spacing: Duration) -> Turn {
        Turn { next: None, spacing, robots: GuestRobots::Unknown }
    }

    /// A request leaves at `now`: the next waits a spacing.
    fn sent(&mut self, now: Instant) {
        self.next = Some(self.next.map_or(now, |n| n.max(now)) + self.spacing);
    }

    /// The answer to a request: a refusal doubles the spacing (up to [`MAX_SPACING`]) and a
    /// Retry-After pauses the guest for as long as it asks.
    fn answered(&mut self, outcome: &Outcome, retry_after: Option<Duration>, now: Instant) {
        if outcome.is_refusal(retry_after.is_some()) {
            self.spacing = (self.spacing * 2).min(MAX_SPACING);
            let pause = now + retry_after.unwrap_or(self.spacing);
            self.next = Some(self.next.map_or(pause, |n| n.max(pause)));
        }
    }

    /// The rules' Crawl-delay widens the spacing.
    fn obey(&mut self, rules: &Robots) {
        if let Some(delay) = rules.crawl_delay().filter(|d| d.is_finite() && *d > 0.0) {
            self.spacing = self.spacing.max(Duration::from_secs_f64(delay.min(MAX_SPACING.as_secs_f64())));
        }
    }

    async fn wait(&self) {
        if let Some(at) = self.next {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

impl Guests {
    pub fn new(rank: GuestSetup) -> Guests {
        let rate = if rank.rate.is_finite() && rank.rate > 0.0 { rank.rate } else { 1.0 };
        Guests { servers: Mutex::new(HashMap::new()), spacing: Duration::from_secs_f64(1.0 / rate), rank }
    }

    fn guest(&self, key: &str) -> Arc<Guest> {
        let mut servers = self.servers.lock().expect("guests lock");
        let spacing = self.spacing;
        Arc::clone(servers.entry(key.to_string()).or_insert_with(|| {
            Arc::new(Guest { key: key.to_string(), turn: tokio::sync::Mutex::new(Turn::new(spacing)) })
        }))
    }

    /// Asks the server `hop` points at, under its robots.txt and spacing, and follows further
    /// redirects to other servers the same way (the chain's count and rules go on).
    pub async fn fetch(&self, mut hop: Hop) -> GuestEnd {
        let rank = &self.rank;
        let client = if crate::fetch::redirect::is_local(&hop.origin) { &rank.client } else { &rank.public_client };
        loop {
            let key = crate::prep::server_key::check_url(hop.url.as_str())
                .map(|c| c.server)
                .unwrap_or_else(|_| hop.url.host_str().unwrap_or_default().to_string());
            let guest = self.guest(&key);
            let mut turn = guest.turn.lock().await;
            if rank.robots == RobotsPolicy::Obey {
                let rules = match guest.rules(&mut turn, rank, client, &hop.url).await {
                    Ok(rules) => rules,
                    Err(end) => return end,
                };
                let allowed = url_path(hop.url.as_str()).is_none_or(|p| rules.allows(&p));
                if !allowed {
                    return GuestEnd::Disallowed(format!(
                        "redirected to {}, whose robots.txt disallows it for {PRODUCT_TOKEN}; no request was sent there",
                        hop.url
                    ));
                }
            }
            turn.wait().await;
            let sent = Instant::now();
            turn.sent(sent);
            let result = fetch_from(client, hop.clone(), OtherServers::Stop, &rank.http, &rank.body_budget).await;
            let (outcome, retry_after) = guest.completed(&result, sent, rank);
            turn.answered(&outcome, retry_after, Instant::now());
            drop(turn);
            match result {
                Ok(Fetched { moved_to: Some(to), redirects, .. }) => {
                    hop = Hop { url: to, origin: hop.origin, redirects: redirects + 1, conditions: hop.conditions };
                }
                result => return GuestEnd::Answered { server: key, result: Box::new(result) },
            }
        }
    }
}

impl Guest {
    /// The guest's rules: known, from the cache, or asked now (in the guest's turn).
    async fn rules(
        &self,
        turn: &mut Turn,
        rank: &GuestSetup,
        client: &reqwest::Client,
        url: &reqwest::Url,
    ) -> Result<Arc<Robots>, GuestEnd> {
        let now = Instant::now();
        match &turn.robots {
            GuestRobots::Known(rules) => return Ok(Arc::clone(rules)),
            GuestRobots::NotNow { until, why } if now < *until => return Err(GuestEnd::RobotsNotNow(why.clone())),
            _ => {}
        }
        let (out, key) = (rank.out.clone(), self.key.clone());
        let entry = tokio::task::spawn_blocking(move || cache::read(&out, &key)).await.ok().flatten();
        let cached = entry.and_then(|c| c.usable(rank.run_started, SystemTime::now(), rank.robots_cache));
        let robots = robots_url(url.as_str()).unwrap_or_default();
        match cached {
            Some(Cached::Rules(rules)) => {
                return Ok(self.know(turn, rules, &format!("{robots} kept from an earlier answer")))
            }
            Some(Cached::Unreachable(why)) => {
                let why = format!("robots.txt of {}, reached by a redirect, did not answer: {why}", self.key);
                turn.robots = GuestRobots::NotNow { until: now + ROBOTS_RETRY, why: why.clone() };
                return Err(GuestEnd::RobotsNotNow(why));
            }
            None => {}
        }
        turn.wait().await;
        let sent = Instant::now();
        turn.sent(sent);
        let result = fetch(client, &robots, &rank.http, &rank.body_budget).await;
        let (outcome, retry_after) = self.completed(&result, sent, rank);
        turn.answered(&outcome, retry_after, Instant::now());
        let (body, detail) = match &result {
            Ok(f) => (f.body.as_slice(), format!("HTTP {}", f.status)),
            Err(FetchFailure::Transport { detail, .. }) => (&[][..], detail.clone()),
            Err(FetchFailure::TooLarge { .. }) => (&[][..], "too large to read".to_string()),
        };
        match verdict(&outcome, body) {
            Verdict::Rules(rules) => {
                let status = match outcome {
                    Outcome::Status(s) => Some(s),
                    Outcome::Transport(_) => None,
                };
                // Only what the server said is kept for other ranks and runs; a refused redirect
                // (which means no rules) is this chain's business.
                if status.is_some() {
                    let entry = CachedRobots::answered(&robots, status, body, &detail);
                    let (out, key) = (rank.out.clone(), self.key.clone());
                    let written = tokio::task::spawn_blocking(move || cache::write(&out, &key, &entry)).await;
                    if let Ok(Err(e)) = written {
                        log(
                            "WARN",
                            &format!("{}: cannot keep its robots.txt answer: {e:#}; it is asked again", self.key),
                        );
                    }
                }
                let what = if status.is_some() { "answered" } else { "could not be read, so it sets no rules" };
                Ok(self.know(turn, rules, &format!("{robots} {what} ({detail})")))
            }
            Verdict::NotNow => {
                let why = format!(
                    "robots.txt of {}, reached by a redirect, did not answer ({detail}); asked again in {} s",
                    self.key,
                    ROBOTS_RETRY.as_secs()
                );
                turn.robots = GuestRobots::NotNow { until: Instant::now() + ROBOTS_RETRY, why: why.clone() };
                Err(GuestEnd::RobotsNotNow(why))
            }
        }
    }

    fn know(&self, turn: &mut Turn, rules: Robots, source: &str) -> Arc<Robots> {
        turn.obey(&rules);
        log(
            "INFO",
            &format!(
                "{}: reached by a redirect; robots.txt {source}; at most one request every {:.2} s from this rank",
                self.key,
                turn.spacing.as_secs_f64()
            ),
        );
        let rules = Arc::new(rules);
        turn.robots = GuestRobots::Known(Arc::clone(&rules));
        rules
    }

    /// Counts a finished request to this guest, as any host's, and returns what it said.
    fn completed(
        &self,
        result: &Result<Fetched, FetchFailure>,
        sent: Instant,
        rank: &GuestSetup,
    ) -> (Outcome, Option<Duration>) {
        let (outcome, retry_after, bytes, head) = match result {
            Ok(f) => {
                let ra = f.retry_after.as_deref().and_then(|v| parse_retry_after(v, SystemTime::now()));
                (Outcome::Status(f.status), ra, f.body.len() as u64, Some(f.head_after.as_secs_f64()))
            }
            Err(FetchFailure::Transport { kind, .. }) => (Outcome::Transport(*kind), None, 0, None),
            // The server answered; the body was more than we read.
            Err(FetchFailure::TooLarge { .. }) => (Outcome::Status(200), None, 0, None),
        };
        RequestCompleted {
            host: &self.key,
            class: AnswerClass::of(&outcome),
            bytes,
            seconds: sent.elapsed().as_secs_f64(),
            head_seconds: head,
            refusal: outcome.is_refusal(retry_after.is_some()),
        }
        .emit(&rank.counters);
        (outcome, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_is_asked_a_spacing_apart_and_a_refusal_doubles_it_and_pauses_for_retry_after() {
        let t0 = Instant::now();
        let mut turn = Turn::new(Duration::from_millis(500));
        assert_eq!(turn.next, None, "the first request goes at once");
        turn.sent(t0);
        assert_eq!(turn.next, Some(t0 + Duration::from_millis(500)));
        turn.answered(&Outcome::Status(200), None, t0);
        assert_eq!(turn.spacing, Duration::from_millis(500), "an answer changes nothing");
        turn.answered(&Outcome::Status(503), None, t0);
        assert_eq!(turn.spacing, Duration::from_millis(500), "a 503 without Retry-After is not a refusal");
        turn.sent(t0 + Duration::from_millis(500));
        turn.answered(&Outcome::Status(429), None, t0 + Duration::from_millis(600));
        assert_eq!(turn.spacing, Duration::from_secs(1));
        assert_eq!(turn.next, Some(t0 + Duration::from_millis(1600)), "paused a spacing from the refusal");
        turn.answered(&Outcome::Status(503), Some(Duration::from_secs(30)), t0 + Duration::from_secs(2));
        assert_eq!(turn.next, Some(t0 + Duration::from_secs(32)), "Retry-After wins");
        assert_eq!(turn.spacing, Duration::from_secs(2));
        for _ in 0..10 {
            turn.answered(&Outcome::Status(429), None, t0);
        }
        assert_eq!(turn.spacing, MAX_SPACING);
    }

    #[test]
    fn a_guests_crawl_delay_widens_its_spacing_and_never_narrows_it() {
        let mut turn = Turn::new(Duration::from_millis(500));
        turn.obey(&Robots::parse("User-agent: *\nCrawl-delay: 3\n", PRODUCT_TOKEN));
        assert_eq!(turn.spacing, Duration::from_secs(3));
        turn.obey(&Robots::parse("User-agent: *\nCrawl-delay: 0.1\n", PRODUCT_TOKEN));
        assert_eq!(turn.spacing, Duration::from_secs(3));
    }
}
