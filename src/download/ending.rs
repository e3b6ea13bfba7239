//! How a rank's run ends by itself: the deadline's margin and cut, and giving up on parked hosts
//! when nothing else moves.
//!
//! - **Deadline.** New requests stop [`deadline_margin`] before the deadline (60 s at defaults):
//!   the requests in flight get up to [`MAX_DRAIN`] to finish, then transfers still running are
//!   cut and their rows stay pending, and the last [`COMMIT_MARGIN`] is the final commit's.
//! - **Parked hosts.** A host that stops answering is parked on a growing schedule (30 s, 2 min,
//!   8 min, 30 min: about 40 minutes before it is declared dead). While other hosts work, that
//!   schedule costs nothing. Once the rank has made no progress at all for [`STALL_LIMIT`] (no
//!   image stored, no row recorded, no byte answered) while some host is parked, the parked
//!   hosts record their rows as retriable `parked` failures and finish, so the run ends within
//!   minutes instead of idling an allocation. `download --retry-failed` asks them again.
//!
//! Owns the numbers and the stall rule; `run.rs` reads the clock and sends the messages.

use std::time::{Duration, Instant, SystemTime};

use crate::telemetry::counters::Snapshot;

/// Time kept before the deadline for the writer's final commit: transfers still running then
/// are cut. Committing a 512 MB shard with fsync takes a few seconds on a parallel file system;
/// 30 s is generous.
pub const COMMIT_MARGIN: Duration = Duration::from_secs(30);

/// Most time given to the requests in flight to finish between the stop of new requests and the
/// cut. Most images take seconds; a transfer longer than this is cut, and its row stays
/// pending for the next run, which is cheaper than idling every job for a whole request timeout.
pub const MAX_DRAIN: Duration = Duration::from_secs(30);

/// How long a rank with a parked host may go without any progress before its parked hosts are
/// given up for the run. Longer than a first parking (30 s), so a host that was only flapping is
/// tried once more; short enough that a job's last minutes are not spent waiting.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// How long before the deadline new requests stop: the drain (`REQUEST_TIMEOUT_SECS`, at most
/// [`MAX_DRAIN`]) and the commit margin. 60 s at default settings.
pub fn deadline_margin(request_timeout: Duration) -> Duration {
    request_timeout.min(MAX_DRAIN) + COMMIT_MARGIN
}

/// When to stop new requests and when to cut transfers, for a run starting `now` (`wall_now` on
/// the wall clock) with `deadline`; `Err(left)` when the deadline is within the margin, so the
/// run should start nothing.
pub fn deadline_stops(
    deadline: SystemTime,
    request_timeout: Duration,
    now: Instant,
    wall_now: SystemTime,
) -> Result<(Instant, Instant), Duration> {
    let left = deadline.duration_since(wall_now).unwrap_or(Duration::ZERO);
    let margin = deadline_margin(request_timeout);
    if left <= margin {
        return Err(left);
    }
    Ok((now + (left - margin), now + (left - COMMIT_MARGIN)))
}

/// Watches a rank's counters for the stall that gives up parked hosts.
#[derive(Debug, Default)]
pub struct Stall {
    /// The progress last seen: images stored, rows failed, bytes answered.
    last: (u64, u64, u64),
    since: Option<Instant>,
}

impl Stall {
    /// Feeds the counters at `now`; true when parked hosts should be given up, and again every
    /// [`STALL_LIMIT`] while the stall lasts (a host that was probing when it was told is parked
    /// again soon).
    pub fn check(&mut self, s: &Snapshot, now: Instant) -> bool {
        let progress = (s.images_stored, s.rows_failed, s.response_bytes);
        if progress != self.last || s.hosts_parked <= 0 {
            // The stall is counted from the last progress (or the last moment none was parked).
            self.last = progress;
            self.since = Some(now);
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < STALL_LIMIT {
            return false;
        }
        self.since = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_keeps_a_minute_at_defaults_and_a_short_timeout_shortens_the_drain() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let in_3_min = wall + Duration::from_secs(180);
        let (stop, cut) = deadline_stops(in_3_min, Duration::from_secs(600), now, wall).unwrap();
        assert_eq!((stop - now, cut - now), (Duration::from_secs(120), Duration::from_secs(150)));
        let (stop, _) = deadline_stops(in_3_min, Duration::from_secs(5), now, wall).unwrap();
        assert_eq!(stop - now, Duration::from_secs(145), "5 s of drain, 30 s of commit");
        let near = deadline_stops(wall + Duration::from_secs(50), Duration::from_secs(600), now, wall);
        assert_eq!(near, Err(Duration::from_secs(50)), "within the margin: start nothing");
    }

    #[test]
    fn parked_hosts_are_given_up_after_a_minute_without_progress_and_only_then() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        let snap =
            |stored: u64, parked: i64| Snapshot { images_stored: stored, hosts_parked: parked, ..Default::default() };
        let mut stall = Stall::default();
        assert!(!stall.check(&snap(5, 1), at(0)));
        assert!(!stall.check(&snap(5, 1), at(59)), "not before a minute");
        assert!(!stall.check(&snap(6, 1), at(60)), "an image stored: progress");
        assert!(!stall.check(&snap(6, 1), at(100)));
        assert!(stall.check(&snap(6, 1), at(121)), "a minute with a parked host and no progress");
        assert!(!stall.check(&snap(6, 1), at(130)), "not at every tick");
        assert!(stall.check(&snap(6, 1), at(181)), "again a minute later while the stall lasts");
        let mut idle = Stall::default();
        assert!(!idle.check(&snap(0, 0), at(0)));
        assert!(!idle.check(&snap(0, 0), at(600)), "no parked host: waiting (a Retry-After) is not a stall");
    }
}
