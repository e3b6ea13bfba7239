//! Typed events. Each `emit(self, &Counters)` updates the counters, the `metrics` facade, and
//! logs a line when the event is rare enough to deserve one (rate changes, parking, commits).

use std::sync::atomic::Ordering::Relaxed;

use metrics::{counter, gauge};

use super::counters::Counters;
use super::names;

/// Hosts beyond this many get the label value `other`, so a run over 100,000 hosts cannot blow up
/// the Prometheus series count. 2,000 covers GBIF's ~545 image servers with room to spare.
pub const HOST_LABEL_CAP: usize = 2000;

/// The label value for `host`: itself while fewer than [`HOST_LABEL_CAP`] hosts were labelled.
pub fn host_label(host: &str) -> String {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().expect("label lock");
    if seen.contains(host) {
        return host.to_string();
    }
    if seen.len() < HOST_LABEL_CAP {
        seen.insert(host.to_string());
        return host.to_string();
    }
    "other".to_string()
}

/// Writes one log line to stderr with a UTC timestamp.
pub fn log(level: &str, message: &str) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!("{h:02}:{m:02}:{s:02} {level:<5} {message}");
}

/// A response (any status) or a transport failure came back from a host.
pub struct RequestCompleted<'a> {
    pub host: &'a str,
    /// `2xx`, `3xx`, `4xx`, `429`, `5xx`, or a transport class (`timeout`, `connect`, ...).
    pub class: &'static str,
    pub bytes: u64,
}

impl RequestCompleted<'_> {
    pub fn emit(self, c: &Counters) {
        c.requests.fetch_add(1, Relaxed);
        c.response_bytes.fetch_add(self.bytes, Relaxed);
        if self.class == "429" {
            c.refusals_429.fetch_add(1, Relaxed);
        }
        let host = host_label(self.host);
        counter!(names::REQUESTS_TOTAL, "host" => host.clone(), "class" => self.class).increment(1);
        counter!(names::RESPONSE_BYTES_TOTAL, "host" => host).increment(self.bytes);
    }
}

/// An image was stored (handed to the writer; counted as committed by `ShardCommitted`).
pub struct ImageStored<'a> {
    pub host: &'a str,
    pub stored_bytes: u64,
}

impl ImageStored<'_> {
    pub fn emit(self, c: &Counters) {
        c.images_stored.fetch_add(1, Relaxed);
        c.stored_bytes.fetch_add(self.stored_bytes, Relaxed);
        let host = host_label(self.host);
        counter!(names::IMAGES_STORED_TOTAL, "host" => host.clone()).increment(1);
        counter!(names::STORED_BYTES_TOTAL, "host" => host).increment(self.stored_bytes);
    }
}

/// A row ended as a failure record.
pub struct RowFailed<'a> {
    pub host: &'a str,
    pub class: &'static str,
}

impl RowFailed<'_> {
    pub fn emit(self, c: &Counters) {
        c.rows_failed.fetch_add(1, Relaxed);
        *c.failed_by_class.lock().expect("counter lock").entry(self.class).or_default() += 1;
        counter!(names::ROWS_FAILED_TOTAL, "host" => host_label(self.host), "class" => self.class).increment(1);
    }
}

/// A request will be tried again later.
pub struct RetryScheduled<'a> {
    pub host: &'a str,
    pub class: &'static str,
}

impl RetryScheduled<'_> {
    pub fn emit(self, c: &Counters) {
        c.retries.fetch_add(1, Relaxed);
        counter!(names::RETRIES_TOTAL, "host" => host_label(self.host), "class" => self.class).increment(1);
    }
}

/// A host's request rate changed.
pub struct RateChanged<'a> {
    pub host: &'a str,
    pub from: f64,
    pub to: f64,
    pub reason: &'static str,
}

impl RateChanged<'_> {
    pub fn emit(self, _c: &Counters) {
        let host = host_label(self.host);
        let direction = if self.to > self.from { "up" } else { "down" };
        counter!(names::RATE_CHANGES_TOTAL, "host" => host.clone(), "direction" => direction).increment(1);
        gauge!(names::HOST_RATE_REQUESTS_PER_SECOND, "host" => host).set(self.to);
        if direction == "down" {
            log("INFO", &format!("{}: rate {:.2} -> {:.2} req/s ({})", self.host, self.from, self.to, self.reason));
        }
    }
}

/// A host moved between states (`active`, `backing_off`, `parked`, `done`).
pub struct HostStateChanged<'a> {
    pub host: &'a str,
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub detail: &'a str,
}

impl HostStateChanged<'_> {
    pub fn emit(self, c: &Counters) {
        let slot = |state: &str| match state {
            "active" => Some(&c.hosts_active),
            "backing_off" => Some(&c.hosts_backing_off),
            "parked" => Some(&c.hosts_parked),
            "done" => Some(&c.hosts_done),
            _ => None,
        };
        if let Some(from) = self.from.and_then(slot) {
            from.fetch_sub(1, Relaxed);
        }
        if let Some(to) = slot(self.to) {
            to.fetch_add(1, Relaxed);
        }
        for (state, v) in [
            ("active", &c.hosts_active),
            ("backing_off", &c.hosts_backing_off),
            ("parked", &c.hosts_parked),
            ("done", &c.hosts_done),
        ] {
            gauge!(names::HOSTS, "state" => state).set(v.load(Relaxed) as f64);
        }
        if self.to == "parked" || (self.to == "done" && !self.detail.is_empty()) {
            log("WARN", &format!("{}: {} ({})", self.host, self.to, self.detail));
        }
    }
}

/// A shard was committed (fsynced and renamed).
pub struct ShardCommitted<'a> {
    pub server: &'a str,
    pub partition: u64,
    pub rows: usize,
    pub bytes: usize,
    pub verbose: bool,
}

impl ShardCommitted<'_> {
    pub fn emit(self, c: &Counters) {
        c.shards_committed.fetch_add(1, Relaxed);
        counter!(names::SHARDS_COMMITTED_TOTAL).increment(1);
        if self.verbose {
            log(
                "INFO",
                &format!(
                    "committed shard of {}/{}: {} rows, {} bytes",
                    self.server, self.partition, self.rows, self.bytes
                ),
            );
        }
    }
}
