//! When to give up on one request: limits that tell a slow transfer from a stuck one.
//!
//! One total deadline cannot serve both a 100 MB herbarium sheet from a museum server sending
//! 300 KB/s (about 6 minutes) and a server that stalls: set for the first, it lets the second hold
//! a slot for minutes; set for the second, it cuts the first off and retries it from scratch. So
//! a request is judged on four limits:
//!
//! - **head**: the response head (status and headers, connect included) must arrive within
//!   `head` of the send;
//! - **idle**: no body byte for `idle` means the transfer is stuck;
//! - **minimum rate**: once the body has had `idle` to get going, its average since the head must
//!   stay at or above `min_bytes_per_sec`, so a trickle of a few bytes a second ends too;
//! - **ceiling**: nothing takes longer than `ceiling`, however it progresses.
//!
//! Plain code with time passed in, so its tests run in virtual time; `client` applies it.

use std::time::Duration;

/// Default limit to the response head, connect included: a loaded server answers within
/// seconds; a minute leaves room for a slow one that generates the image on request.
pub const DEFAULT_HEAD_TIMEOUT_SECS: f64 = 60.0;
/// Default limit with no body byte: TCP keeps data flowing on any live connection; 30 s of
/// silence is a stuck server or a dead path.
pub const DEFAULT_IDLE_TIMEOUT_SECS: f64 = 30.0;
/// Default minimum average transfer rate in KB/s, judged after the idle limit: a tenth of the
/// slowest museum server we have seen (300 KB/s), and thousands of times a trickle.
pub const DEFAULT_MIN_TRANSFER_KB_PER_SEC: f64 = 32.0;
/// Default ceiling of one request: a 100 MB image at 300 KB/s (340 s) fits with room.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: f64 = 600.0;

/// The four limits of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadlines {
    pub head: Duration,
    pub idle: Duration,
    pub min_bytes_per_sec: f64,
    pub ceiling: Duration,
}

/// Which limit ended a request, with what a person needs to read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cut {
    Head { limit: Duration },
    Idle { limit: Duration, bytes: u64 },
    TooSlow { bytes_per_sec: f64, min: f64, bytes: u64 },
    Ceiling { limit: Duration, bytes: u64 },
}

impl Cut {
    /// The failure detail recorded for the row.
    pub fn detail(&self) -> String {
        match *self {
            Cut::Head { limit } => format!("no response head within {:.0} s", limit.as_secs_f64()),
            Cut::Idle { limit, bytes } => {
                format!("no body data for {:.0} s after {bytes} bytes (stalled)", limit.as_secs_f64())
            }
            Cut::TooSlow { bytes_per_sec, min, bytes } => format!(
                "body arriving at {:.1} KB/s on average after {bytes} bytes, below the {:.1} KB/s minimum",
                bytes_per_sec / 1e3,
                min / 1e3
            ),
            Cut::Ceiling { limit, bytes } => {
                format!("not complete within the {:.0} s ceiling ({bytes} bytes read)", limit.as_secs_f64())
            }
        }
    }
}

/// Where a body transfer stands, in time since the request was sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// When the response head arrived.
    pub head_at: Duration,
    /// Now.
    pub now: Duration,
    /// When the last body byte arrived (`head_at` before the first).
    pub last_byte_at: Duration,
    /// Body bytes so far.
    pub bytes: u64,
}

impl Deadlines {
    /// The limit that ends the body transfer now, if any. Checked whenever bytes arrive and at
    /// least every [`Deadlines::check_within`].
    pub fn body_cut(&self, p: Progress) -> Option<Cut> {
        if p.now >= self.ceiling {
            return Some(Cut::Ceiling { limit: self.ceiling, bytes: p.bytes });
        }
        if p.now.saturating_sub(p.last_byte_at) >= self.idle {
            return Some(Cut::Idle { limit: self.idle, bytes: p.bytes });
        }
        let body_time = p.now.saturating_sub(p.head_at);
        if body_time >= self.idle {
            let rate = p.bytes as f64 / body_time.as_secs_f64();
            if rate < self.min_bytes_per_sec {
                return Some(Cut::TooSlow { bytes_per_sec: rate, min: self.min_bytes_per_sec, bytes: p.bytes });
            }
        }
        None
    }

    /// How long a body read may wait before [`Deadlines::body_cut`] must be asked again: the
    /// earliest moment a limit could be crossed with no byte arriving, and at most 1 s, so the
    /// average rate is judged at least once a second.
    pub fn check_within(&self, p: Progress) -> Duration {
        let idle_left = (p.last_byte_at + self.idle).saturating_sub(p.now);
        let ceiling_left = self.ceiling.saturating_sub(p.now);
        idle_left.min(ceiling_left).min(Duration::from_secs(1)).max(Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Deadlines {
        Deadlines {
            head: Duration::from_secs_f64(DEFAULT_HEAD_TIMEOUT_SECS),
            idle: Duration::from_secs_f64(DEFAULT_IDLE_TIMEOUT_SECS),
            min_bytes_per_sec: DEFAULT_MIN_TRANSFER_KB_PER_SEC * 1e3,
            ceiling: Duration::from_secs_f64(DEFAULT_REQUEST_TIMEOUT_SECS),
        }
    }

    /// Sends `total` bytes at `rate` bytes/s in `chunk`-byte pieces after a head at `head_at`,
    /// checking as `client` does; returns the cut and when, or `None` when the body completed.
    fn transfer(d: &Deadlines, head_at: f64, total: u64, rate: f64, chunk: u64) -> Option<(Cut, f64)> {
        let mut p = Progress {
            head_at: Duration::from_secs_f64(head_at),
            now: Duration::from_secs_f64(head_at),
            last_byte_at: Duration::from_secs_f64(head_at),
            bytes: 0,
        };
        while p.bytes < total {
            let next_byte_at = p.last_byte_at + Duration::from_secs_f64(chunk as f64 / rate);
            let wake = p.now + d.check_within(p);
            if next_byte_at <= wake {
                p.now = next_byte_at;
                p.last_byte_at = next_byte_at;
                p.bytes = (p.bytes + chunk).min(total);
            } else {
                p.now = wake;
            }
            if let Some(cut) = d.body_cut(p) {
                return Some((cut, p.now.as_secs_f64()));
            }
        }
        None
    }

    #[test]
    fn a_100_mb_image_at_300_kb_per_s_completes_under_the_defaults() {
        assert_eq!(transfer(&defaults(), 2.0, 100_000_000, 300e3, 16_384), None);
    }

    #[test]
    fn a_stalled_body_ends_at_the_idle_limit() {
        // 1 MB arrives quickly, then nothing.
        let d = defaults();
        let mut p = Progress {
            head_at: Duration::from_secs(1),
            now: Duration::from_secs(2),
            last_byte_at: Duration::from_secs(2),
            bytes: 1_000_000,
        };
        let mut cut = None;
        while cut.is_none() {
            p.now += d.check_within(p);
            cut = d.body_cut(p);
        }
        assert_eq!(cut, Some(Cut::Idle { limit: d.idle, bytes: 1_000_000 }));
        assert_eq!(p.now, Duration::from_secs(32), "cut when 30 s of silence are over, not later");
    }

    #[test]
    fn a_trickle_ends_once_its_average_is_judged() {
        // A few bytes a second never trips the idle limit, but its average does, right after
        // the body has had the idle limit to get going.
        let (cut, at) = transfer(&defaults(), 1.0, 1_000_000, 5.0, 1).expect("a trickle is cut");
        assert!(matches!(cut, Cut::TooSlow { .. }), "{cut:?}");
        assert!((31.0..=32.0).contains(&at), "cut at {at} s");
        assert!(cut.detail().contains("below the 32.0 KB/s minimum"), "{}", cut.detail());
    }

    #[test]
    fn the_ceiling_ends_even_a_transfer_that_keeps_its_pace() {
        let d = Deadlines { ceiling: Duration::from_secs(100), ..defaults() };
        let (cut, at) = transfer(&d, 1.0, 100_000_000, 300e3, 16_384).expect("over the ceiling");
        assert!(matches!(cut, Cut::Ceiling { .. }), "{cut:?}");
        assert!((100.0..100.1).contains(&at), "cut at {at} s");
    }

    #[test]
    fn a_body_is_not_judged_on_its_average_before_the_idle_limit() {
        // 100 bytes in 29 s is far below the minimum, but too early to judge; at 30 s it is not.
        let d = defaults();
        let p = Progress {
            head_at: Duration::ZERO,
            now: Duration::from_secs(29),
            last_byte_at: Duration::from_secs(29),
            bytes: 100,
        };
        assert_eq!(d.body_cut(p), None, "too early to judge an average");
        assert_eq!(
            d.body_cut(Progress { now: Duration::from_secs(30), ..p }).map(|c| matches!(c, Cut::TooSlow { .. })),
            Some(true)
        );
    }
}
