//! robots.txt answers kept in `<output>/robots/<server>.json`.
//!
//! A definitive answer (2xx with its text, or a 4xx: no rules) is reused by any run within
//! `ROBOTS_CACHE_HOURS` of its fetch, and within the run that fetched it whatever its age: a host
//! is asked once per run, rounds and split hosts included, and `profile`'s answer serves the
//! download that follows. A host that never answered is written too, marked unreachable, so
//! the other shares of a split host stop waiting for it; that entry is never reused by a later
//! run. Files are replaced whole, so a reader sees an old entry or a new one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::rules::{Robots, MAX_BYTES, PRODUCT_TOKEN};

/// The folder under the output folder.
pub use crate::store::paths::ROBOTS_DIR;

/// One host's last answer to robots.txt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedRobots {
    /// The robots.txt URL that was asked.
    pub url: String,
    /// When the answer arrived (Unix ms).
    pub fetched_unix_ms: u64,
    /// The final HTTP status; `None` when the host never answered.
    pub status: Option<u16>,
    /// The text of a 2xx answer (at most `MAX_BYTES`), else empty.
    pub text: String,
    /// How the answer went, for a person (`HTTP 404`, the last error of an unreachable host).
    #[serde(default)]
    pub detail: String,
    /// robots.txt never answered (the asking share gave up on it): no rules, and not reused by
    /// a later run.
    #[serde(default)]
    pub unreachable: bool,
    /// Unreachable because the DNS said the name does not exist (NXDOMAIN): the other shares
    /// record their rows as `nxdomain` too, not `robots`.
    #[serde(default)]
    pub no_such_name: bool,
    /// Unreachable because the host stayed unreachable (parked, then given up): the other
    /// shares record their rows as `parked` too.
    #[serde(default)]
    pub parked: bool,
}

/// What a cache entry says for a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    /// The rules to obey.
    Rules(Robots),
    /// robots.txt never answered during this run (another share gave up on it).
    Unreachable(String),
}

impl CachedRobots {
    /// A definitive answer from `url` now: `status` (none for a redirect loop) and, for a 2xx,
    /// the `body` whose first `MAX_BYTES` are kept.
    pub fn answered(url: &str, status: Option<u16>, body: &[u8], detail: &str) -> CachedRobots {
        let text = match status {
            Some(s) if (200..300).contains(&s) => {
                String::from_utf8_lossy(&body[..body.len().min(MAX_BYTES)]).into_owned()
            }
            _ => String::new(),
        };
        CachedRobots {
            url: url.to_string(),
            fetched_unix_ms: unix_ms(SystemTime::now()),
            status,
            text,
            detail: detail.to_string(),
            unreachable: false,
            no_such_name: false,
            parked: false,
        }
    }

    /// `url` never answered in this run, for `detail`.
    pub fn unreachable(url: &str, detail: &str) -> CachedRobots {
        CachedRobots { unreachable: true, ..CachedRobots::answered(url, None, b"", detail) }
    }

    /// `url`'s host stayed unreachable and was given up, for `detail`.
    pub fn parked(url: &str, detail: &str) -> CachedRobots {
        CachedRobots { parked: true, ..CachedRobots::unreachable(url, detail) }
    }

    /// `url`'s host name does not exist (the DNS said so), for `detail`.
    pub fn no_such_name(url: &str, detail: &str) -> CachedRobots {
        CachedRobots { no_such_name: true, ..CachedRobots::unreachable(url, detail) }
    }

    /// The rules of a definitive answer, `None` for an unreachable entry.
    pub fn rules(&self) -> Option<Robots> {
        match self.status {
            _ if self.unreachable => None,
            Some(s) if (200..300).contains(&s) => Some(Robots::parse(&self.text, PRODUCT_TOKEN)),
            // Any other status, or a redirect loop: no rules.
            _ => Some(Robots::allow_all()),
        }
    }

    /// What this entry tells a run that started at `run_started`, at `now`, when answers are
    /// kept for `max_age`; `None` when it is too old (or unreachable from another run): ask again.
    pub fn usable(&self, run_started: SystemTime, now: SystemTime, max_age: Duration) -> Option<Cached> {
        let this_run = self.fetched_unix_ms >= unix_ms(run_started);
        let age = Duration::from_millis(unix_ms(now).saturating_sub(self.fetched_unix_ms));
        match self.rules() {
            Some(rules) if this_run || age <= max_age => Some(Cached::Rules(rules)),
            Some(_) => None,
            None if this_run => Some(Cached::Unreachable(self.detail.clone())),
            None => None,
        }
    }
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where `server`'s entry lives.
pub fn path(out: &Path, server: &str) -> PathBuf {
    out.join(ROBOTS_DIR).join(format!("{server}.json"))
}

/// `server`'s entry, if there is a readable one. An unreadable entry (a partial copy, an old
/// format) counts as none: the host is simply asked again.
pub fn read(out: &Path, server: &str) -> Option<CachedRobots> {
    let bytes = std::fs::read(path(out, server)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `server`'s entry, replacing any earlier one at once.
pub fn write(out: &Path, server: &str, entry: &CachedRobots) -> anyhow::Result<()> {
    crate::store::atomic::replace(&path(out, server), &serde_json::to_vec_pretty(entry).expect("serialises"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: Option<u16>, at: SystemTime) -> CachedRobots {
        let body = b"User-agent: *\nDisallow: /private\n";
        let e = match status {
            Some(_) => CachedRobots::answered("http://a.org/robots.txt", status, body, "HTTP 503"),
            None => CachedRobots::unreachable("http://a.org/robots.txt", "HTTP 503"),
        };
        CachedRobots { fetched_unix_ms: unix_ms(at), ..e }
    }

    #[test]
    fn an_answer_is_reused_within_its_age_or_within_the_run_that_fetched_it() {
        let day = Duration::from_secs(86_400);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let run = now - Duration::from_secs(600);
        let fresh = entry(Some(200), now - Duration::from_secs(3600));
        let Some(Cached::Rules(r)) = fresh.usable(run, now, day) else { panic!("an hour old, kept for a day") };
        assert!(!r.allows("/private/x.jpg"));
        assert_eq!(fresh.usable(run, now, Duration::ZERO), None, "ROBOTS_CACHE_HOURS=0, fetched before this run");
        let this_run = entry(Some(200), now - Duration::from_secs(60));
        assert!(this_run.usable(run, now, Duration::ZERO).is_some(), "asked once per run");
        let gone = entry(Some(404), now - Duration::from_secs(60));
        assert_eq!(gone.usable(run, now, day), Some(Cached::Rules(Robots::allow_all())), "4xx: no rules");
        let down = entry(None, now - Duration::from_secs(60));
        assert_eq!(down.usable(run, now, day), Some(Cached::Unreachable("HTTP 503".into())));
        let down_before = entry(None, run - Duration::from_secs(1));
        assert_eq!(down_before.usable(run, now, day), None, "an outage of an earlier run is not kept");
        let looped = CachedRobots {
            fetched_unix_ms: unix_ms(now - Duration::from_secs(60)),
            ..CachedRobots::answered("http://a.org/robots.txt", None, b"", "too many redirects")
        };
        assert_eq!(looped.usable(run, now, day), Some(Cached::Rules(Robots::allow_all())), "a redirect loop: no rules");
    }

    #[test]
    fn entries_round_trip_and_a_damaged_one_counts_as_none() {
        let out = tempfile::tempdir().unwrap();
        assert_eq!(read(out.path(), "a.org"), None);
        let e = entry(Some(200), SystemTime::now());
        write(out.path(), "a.org", &e).unwrap();
        assert_eq!(read(out.path(), "a.org"), Some(e));
        std::fs::write(path(out.path(), "a.org"), b"{\"url\":").unwrap();
        assert_eq!(read(out.path(), "a.org"), None);
    }
}
