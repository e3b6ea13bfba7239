//! `origin::log`: what one test host saw, request by request, and the questions tests ask of it.
//!
//! Owns `RequestRecord` and the helpers over a host's records (in-flight peak, busiest window,
//! status counts). The server appends and updates records; nothing here touches sockets.
//! Memory: about 150 bytes per request plus the path and user agent, kept until the origin drops.

use std::ops::Deref;
use std::time::Duration;

/// One request as the server saw it. Times are measured from `Origin::started_at()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `HEAD`, … (empty when the head could not be parsed).
    pub method: String,
    /// The request target as received: path and query, e.g. `/img/a.jpg?x=1`.
    pub path: String,
    /// When the full request head had been read.
    pub arrived: Duration,
    /// When the server was done with the request: as it wrote the last byte of the response,
    /// or when the client hung up mid-response (then `bytes_sent < content_length`). Set before
    /// the last write, so a client holding the whole response always sees it set. `None` while
    /// the request is still being answered, and forever for a stalled body.
    pub completed: Option<Duration>,
    /// The status sent (or about to be sent, for a request still delayed by `Slow`).
    pub status: u16,
    pub user_agent: Option<String>,
    /// The request's `If-None-Match` and `If-Modified-Since` headers, as sent: set on a
    /// conditional request (a revalidation), which a 304 answers when the image is unchanged.
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    /// Body bytes written to the socket.
    pub bytes_sent: u64,
    /// The `Content-Length` announced in the response head.
    pub content_length: u64,
    /// Which connection of this host carried the request, counting from 1 in accept order:
    /// equal ids on consecutive requests mean the client reused a kept-alive connection.
    pub connection: u64,
}

impl RequestRecord {
    /// Whether the request was conditional (`If-None-Match` or `If-Modified-Since`).
    pub fn conditional(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }

    /// The time the server spent on the request, if it is done.
    pub fn duration(&self) -> Option<Duration> {
        self.completed.map(|c| c.saturating_sub(self.arrived))
    }
}

/// A snapshot of one host's records, in arrival order. Derefs to a slice, so `len()`, `iter()`
/// and indexing work directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLog {
    records: Vec<RequestRecord>,
}

impl RequestLog {
    pub fn new(records: Vec<RequestRecord>) -> Self {
        RequestLog { records }
    }

    pub fn into_vec(self) -> Vec<RequestRecord> {
        self.records
    }

    /// The most requests the server was answering at once, counting each from `arrived` to
    /// `completed` (an unfinished request counts until the end). A request that completes at
    /// the very instant another arrives does not overlap it.
    pub fn max_in_flight(&self) -> usize {
        let mut events: Vec<(Duration, i32)> = Vec::with_capacity(self.records.len() * 2);
        for r in &self.records {
            events.push((r.arrived, 1));
            if let Some(c) = r.completed {
                events.push((c, -1));
            }
        }
        // At equal times, departures (-1) sort before arrivals (+1).
        events.sort();
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, delta) in events {
            now += delta;
            peak = peak.max(now);
        }
        peak as usize
    }

    /// The most arrivals in any window `[t, t + window)`: with a 1 s window, the highest
    /// request rate the host was subjected to, whatever it answered.
    pub fn max_requests_in_window(&self, window: Duration) -> usize {
        let mut arrivals: Vec<Duration> = self.records.iter().map(|r| r.arrived).collect();
        arrivals.sort();
        let mut start = 0;
        let mut peak = 0;
        for end in 0..arrivals.len() {
            while arrivals[end] - arrivals[start] >= window {
                start += 1;
            }
            peak = peak.max(end - start + 1);
        }
        peak
    }

    /// How many requests got `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.records.iter().filter(|r| r.status == status).count()
    }

    /// How many requests asked for exactly `path` (query included).
    pub fn count_path(&self, path: &str) -> usize {
        self.records.iter().filter(|r| r.path == path).count()
    }

    /// The same log without the `/robots.txt` requests: what the client asked of the host's
    /// images (a polite client asks robots.txt first).
    pub fn without_robots(&self) -> RequestLog {
        RequestLog::new(self.records.iter().filter(|r| r.path != "/robots.txt").cloned().collect())
    }

    /// The statuses in arrival order, for compact assertions.
    pub fn statuses(&self) -> Vec<u16> {
        self.records.iter().map(|r| r.status).collect()
    }
}

impl Deref for RequestLog {
    type Target = [RequestRecord];

    fn deref(&self) -> &[RequestRecord] {
        &self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(arrived_ms: u64, completed_ms: Option<u64>, status: u16) -> RequestRecord {
        RequestRecord {
            method: "GET".into(),
            path: "/".into(),
            arrived: Duration::from_millis(arrived_ms),
            completed: completed_ms.map(Duration::from_millis),
            status,
            user_agent: None,
            if_none_match: None,
            if_modified_since: None,
            bytes_sent: 0,
            content_length: 0,
            connection: 1,
        }
    }

    #[test]
    fn back_to_back_requests_do_not_overlap_but_unfinished_ones_do() {
        let log = RequestLog::new(vec![rec(0, Some(10), 200), rec(10, Some(20), 200), rec(20, Some(30), 200)]);
        assert_eq!(log.max_in_flight(), 1);
        let log = RequestLog::new(vec![rec(0, None, 200), rec(5, Some(6), 200), rec(50, Some(60), 200)]);
        assert_eq!(log.max_in_flight(), 2);
    }

    #[test]
    fn window_counts_arrivals_in_half_open_windows() {
        let log = RequestLog::new((0..5).map(|i| rec(i * 500, Some(i * 500 + 1), 429)).collect());
        assert_eq!(log.max_requests_in_window(Duration::from_secs(1)), 2);
        assert_eq!(log.max_requests_in_window(Duration::from_millis(1001)), 3);
        assert_eq!(log.count_status(429), 5);
        assert_eq!(RequestLog::default().max_requests_in_window(Duration::from_secs(1)), 0);
    }
}
