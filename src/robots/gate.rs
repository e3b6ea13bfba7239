//! One host's robots.txt during a download, as a plain state machine (no I/O, no clock).
//!
//! A host's first image request waits until its rules are known. The ServerActor asks
//! [`RobotsGate::next`] before each request and does what it says: read the cache entry, ask
//! the host for robots.txt (through the host's token bucket and in-flight cap, like any other
//! request), wait, or go on with the rules. What an answer means follows RFC 9309 §2.3.1:
//!
//! | answer | meaning |
//! |---|---|
//! | 2xx | these rules |
//! | 4xx other than 429, a redirect loop | no rules: everything is allowed |
//! | 429, 5xx, no answer | "not now": no image request; robots.txt is asked again after a backoff |
//!
//! A host whose robots.txt never answers within the retry budget is given up for the run: its
//! rows are recorded as retriable `robots` failures. On a host split over ranks only the share
//! that holds the host's first batch asks; the others wait for its answer in the cache, looking
//! at it less and less often (every [`FOLLOW_POLL`], doubling up to [`FOLLOW_POLL_MAX`]). A
//! share that has waited [`FOLLOW_LIMIT`] without an answer (the asking share stuck behind a
//! parked host, or gone) asks robots.txt itself: one more request to the host at most, and the
//! wait is bounded.

use std::time::{Duration, Instant};

use super::rules::{Robots, PRODUCT_TOKEN};
use crate::host::outcome::{Outcome, TransportKind};

/// How often a share that does not ask looks for the asking share's answer: a small file read,
/// and only shares of split hosts do it, so it can be often enough not to delay them.
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Longest time between two looks at the cache while following.
pub const FOLLOW_POLL_MAX: Duration = Duration::from_secs(5);

/// Longest a share follows before it asks robots.txt itself. The asking share's own budget (a
/// few retries with backoff) is well inside it, so this only fires when that share is stuck.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(5 * 60);

/// What an answer to robots.txt means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Rules to obey (a 2xx), or none (`Robots::allow_all`, for a 4xx).
    Rules(Robots),
    /// Not now: nothing may be fetched from the host yet.
    NotNow,
}

/// The verdict on an answer: `outcome` and, for a status, the body read.
pub fn verdict(outcome: &Outcome, body: &[u8]) -> Verdict {
    match outcome {
        Outcome::Status(s) if (200..300).contains(s) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(super::MAX_BYTES)]);
            Verdict::Rules(Robots::parse(&text, PRODUCT_TOKEN))
        }
        Outcome::Status(429) => Verdict::NotNow,
        // A 3xx left over means a redirect the client would not follow: unavailable, like a 4xx.
        Outcome::Status(s) if (300..500).contains(s) => Verdict::Rules(Robots::allow_all()),
        Outcome::Transport(TransportKind::TooManyRedirects) => Verdict::Rules(Robots::allow_all()),
        _ => Verdict::NotNow,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// `ROBOTS=ignore`.
    Off,
    /// The cache has not been looked at.
    Unread,
    /// The cache is being read.
    Reading,
    /// Ask robots.txt at or after this instant.
    Due(Instant),
    /// robots.txt is being asked.
    Asking,
    /// Another share asks; look at the cache again at this instant.
    Following(Instant),
    Known(Robots),
    /// robots.txt never answered: every row is recorded as a retriable `robots` failure.
    GaveUp(String),
}

/// What the ServerActor should do next for this host.
#[derive(Debug, Clone, PartialEq)]
pub enum Next<'a> {
    /// Send image requests; a URL must be allowed by the rules, if any.
    Go(Option<&'a Robots>),
    /// Read the host's cache entry, then call [`RobotsGate::cache_read`].
    ReadCache,
    /// Ask robots.txt (when the host's gate lets a request go), then call `asking`.
    Ask,
    /// Nothing before this instant.
    WaitUntil(Instant),
    /// A read or a request is under way: wait for it.
    Busy,
    /// Record every row as a retriable `robots` failure, for this reason.
    GiveUp(&'a str),
}

/// One host's robots.txt state.
#[derive(Debug, Clone, PartialEq)]
pub struct RobotsGate {
    state: State,
    /// Whether this share asks (else it follows the share that does).
    asks: bool,
    /// Answers of robots.txt that were "not now".
    failures: u32,
    /// While following: since when, and the wait before the next look.
    following: Option<(Instant, Duration)>,
}

impl RobotsGate {
    /// `obey`: whether robots.txt is obeyed at all; `asks`: whether this share asks.
    pub fn new(obey: bool, asks: bool) -> RobotsGate {
        RobotsGate { state: if obey { State::Unread } else { State::Off }, asks, failures: 0, following: None }
    }

    pub fn next(&self, now: Instant) -> Next<'_> {
        match &self.state {
            State::Off => Next::Go(None),
            State::Known(r) => Next::Go(Some(r)),
            State::Unread => Next::ReadCache,
            State::Reading | State::Asking => Next::Busy,
            State::Due(at) if *at <= now => Next::Ask,
            State::Due(at) => Next::WaitUntil(*at),
            State::Following(at) if *at <= now => Next::ReadCache,
            State::Following(at) => Next::WaitUntil(*at),
            State::GaveUp(why) => Next::GiveUp(why),
        }
    }

    pub fn reading(&mut self) {
        self.state = State::Reading;
    }

    /// The cache entry was read: `found` is what it says for this run, if anything usable.
    pub fn cache_read(&mut self, found: Option<super::cache::Cached>, now: Instant) {
        use super::cache::Cached;
        self.state = match found {
            Some(Cached::Rules(r)) => State::Known(r),
            Some(Cached::Unreachable(why)) => State::GaveUp(why),
            None if self.asks => State::Due(now),
            None => {
                let (since, poll) = match self.following {
                    None => (now, FOLLOW_POLL),
                    Some((since, poll)) => (since, (poll * 2).min(FOLLOW_POLL_MAX)),
                };
                if now.saturating_duration_since(since) >= FOLLOW_LIMIT {
                    // The asking share has not answered for the host: this share asks.
                    self.asks = true;
                    self.following = None;
                    State::Due(now)
                } else {
                    self.following = Some((since, poll));
                    State::Following(now + poll)
                }
            }
        };
    }

    pub fn asking(&mut self) {
        self.state = State::Asking;
    }

    /// robots.txt answered with rules (or none).
    pub fn known(&mut self, rules: Robots) {
        self.state = State::Known(rules);
    }

    /// robots.txt answered "not now": ask again after `retry_in`, or give up (`None`) with `why`.
    pub fn not_now(&mut self, retry_in: Option<Duration>, why: String, now: Instant) {
        self.failures += 1;
        self.state = match retry_in {
            Some(wait) => State::Due(now + wait),
            None => State::GaveUp(why),
        };
    }

    /// "Not now" answers so far (the attempt number of the next retry).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// This share asks robots.txt for the host and has no answer yet: if it gives the host up,
    /// the other shares must hear of it from the cache.
    pub fn unanswered_asker(&self) -> bool {
        self.asks && !matches!(self.state, State::Off | State::Known(_) | State::GaveUp(_))
    }

    /// The rules, once known.
    pub fn rules(&self) -> Option<&Robots> {
        match &self.state {
            State::Known(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robots::cache::Cached;

    #[test]
    fn answers_mean_what_rfc_9309_says() {
        let rules = verdict(&Outcome::Status(200), b"User-agent: *\nDisallow: /x\n");
        assert!(matches!(rules, Verdict::Rules(r) if !r.allows("/x/1.jpg")));
        for s in [401, 403, 404, 410] {
            assert_eq!(verdict(&Outcome::Status(s), b""), Verdict::Rules(Robots::allow_all()), "{s}");
        }
        for s in [429, 500, 503] {
            assert_eq!(verdict(&Outcome::Status(s), b""), Verdict::NotNow, "{s}");
        }
        assert_eq!(verdict(&Outcome::Transport(TransportKind::Connect), b""), Verdict::NotNow);
        assert_eq!(
            verdict(&Outcome::Transport(TransportKind::TooManyRedirects), b""),
            Verdict::Rules(Robots::allow_all())
        );
    }

    #[test]
    fn nothing_is_sent_until_the_rules_are_known_and_a_503_is_asked_again_later() {
        let t0 = Instant::now();
        let mut gate = RobotsGate::new(true, true);
        assert_eq!(gate.next(t0), Next::ReadCache);
        gate.reading();
        assert_eq!(gate.next(t0), Next::Busy);
        gate.cache_read(None, t0);
        assert_eq!(gate.next(t0), Next::Ask);
        gate.asking();
        assert_eq!(gate.next(t0), Next::Busy);
        gate.not_now(Some(Duration::from_secs(4)), "HTTP 503".into(), t0);
        assert_eq!(gate.next(t0 + Duration::from_secs(1)), Next::WaitUntil(t0 + Duration::from_secs(4)));
        assert_eq!(gate.next(t0 + Duration::from_secs(4)), Next::Ask);
        gate.asking();
        gate.not_now(None, "HTTP 503".into(), t0);
        assert_eq!(gate.next(t0), Next::GiveUp("HTTP 503"));
        assert_eq!(gate.failures(), 2);
        gate.known(Robots::allow_all());
        assert_eq!(gate.next(t0), Next::Go(Some(&Robots::allow_all())));
    }

    #[test]
    fn a_share_that_does_not_ask_follows_the_cache_and_ignore_skips_it_all() {
        let t0 = Instant::now();
        let mut follower = RobotsGate::new(true, false);
        follower.reading();
        follower.cache_read(None, t0);
        assert_eq!(follower.next(t0), Next::WaitUntil(t0 + FOLLOW_POLL), "does not ask itself");
        assert_eq!(follower.next(t0 + FOLLOW_POLL), Next::ReadCache);
        follower.cache_read(Some(Cached::Unreachable("HTTP 503".into())), t0);
        assert_eq!(follower.next(t0), Next::GiveUp("HTTP 503"));
        assert_eq!(RobotsGate::new(false, true).next(t0), Next::Go(None));
    }

    #[test]
    fn a_follower_looks_less_often_and_asks_itself_once_the_asking_share_is_silent_too_long() {
        let t0 = Instant::now();
        let mut follower = RobotsGate::new(true, false);
        let (mut now, mut looks, mut gaps) = (t0, 0, Vec::new());
        loop {
            follower.reading();
            follower.cache_read(None, now);
            match follower.next(now) {
                Next::WaitUntil(at) => {
                    gaps.push(at - now);
                    now = at;
                    looks += 1;
                }
                Next::Ask => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            now - t0 >= FOLLOW_LIMIT && now - t0 < FOLLOW_LIMIT + FOLLOW_POLL_MAX,
            "asks at the limit: {:?}",
            now - t0
        );
        assert_eq!(gaps[..4], [250, 500, 1000, 2000].map(Duration::from_millis), "the looks spread out");
        assert!(gaps.iter().all(|g| *g <= FOLLOW_POLL_MAX) && looks < 70, "{looks} looks in 5 minutes, not 1,200");
    }
}
