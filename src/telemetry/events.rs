//! Typed events. Each `emit(self, &Counters)` updates the counters, the `metrics` facade, and
//! logs a line when the event is rare enough to deserve one (rate changes, parking, commits).

use std::sync::atomic::Ordering::Relaxed;

use metrics::{counter, gauge, histogram};

use super::counters::Counters;
use super::names;
use crate::host::outcome::{ErrorClass, Outcome};
use crate::host::rate::ChangeReason;
use crate::host::state::HostPhase;

/// Hosts beyond this many get the label value `other`, so a run over 100,000 hosts cannot blow up
/// the Prometheus series count. 2,000 covers GBIF's ~545 image servers with room to spare;
/// `METRICS_HOST_LABELS` changes it (see [`set_host_label_cap`]).
pub const HOST_LABEL_CAP: usize = 2000;

static CAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(HOST_LABEL_CAP);

/// Sets how many hosts get their own label value in this process (the exporter calls it).
pub fn set_host_label_cap(cap: usize) {
    CAP.store(cap, std::sync::atomic::Ordering::Relaxed);
}

/// The label value for `host`: itself while fewer than the cap of hosts were labelled, else
/// `other`.
pub fn host_label(host: &str) -> String {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().expect("label lock");
    if seen.contains(host) {
        return host.to_string();
    }
    if seen.len() < CAP.load(std::sync::atomic::Ordering::Relaxed) {
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

/// What an attempt came back as, for counting: a status class, or why there was no status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerClass {
    Status2xx,
    Status3xx,
    Status4xx,
    /// 429 Too Many Requests, apart from other 4xx: the refusals an operator cares about.
    Status429,
    Status5xx,
    /// No status: a transport failure of this class (`timeout`, `connect`, ...).
    NoStatus(ErrorClass),
}

impl AnswerClass {
    /// The classes of an answer with a status (transport failures are `ErrorClass`es).
    pub const ALL_STATUS: [AnswerClass; 5] = [
        AnswerClass::Status2xx,
        AnswerClass::Status3xx,
        AnswerClass::Status4xx,
        AnswerClass::Status429,
        AnswerClass::Status5xx,
    ];

    pub fn of(outcome: &Outcome) -> AnswerClass {
        match *outcome {
            Outcome::Status(429) => AnswerClass::Status429,
            Outcome::Status(s) if s < 300 => AnswerClass::Status2xx,
            Outcome::Status(s) if s < 400 => AnswerClass::Status3xx,
            Outcome::Status(s) if s < 500 => AnswerClass::Status4xx,
            Outcome::Status(_) => AnswerClass::Status5xx,
            Outcome::Transport(_) => AnswerClass::NoStatus(outcome.class().unwrap_or(ErrorClass::Other)),
        }
    }

    /// The metric label: `2xx`, `3xx`, `4xx`, `429`, `5xx`, or the transport class.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerClass::Status2xx => "2xx",
            AnswerClass::Status3xx => "3xx",
            AnswerClass::Status4xx => "4xx",
            AnswerClass::Status429 => "429",
            AnswerClass::Status5xx => "5xx",
            AnswerClass::NoStatus(class) => class.as_str(),
        }
    }
}

/// A response (any status) or a transport failure came back from a host.
pub struct RequestCompleted<'a> {
    pub host: &'a str,
    pub class: AnswerClass,
    pub bytes: u64,
    /// Seconds from leaving to the end (last body byte or failure), and to the response head.
    pub seconds: f64,
    pub head_seconds: Option<f64>,
    /// A 429, or an error status with `Retry-After`.
    pub refusal: bool,
}

impl RequestCompleted<'_> {
    pub fn emit(self, c: &Counters) {
        c.requests.fetch_add(1, Relaxed);
        c.response_bytes.fetch_add(self.bytes, Relaxed);
        if self.class == AnswerClass::Status429 {
            c.refusals_429.fetch_add(1, Relaxed);
        }
        let host = host_label(self.host);
        counter!(names::REQUESTS_TOTAL, "host" => host.clone(), "class" => self.class.as_str()).increment(1);
        if self.refusal {
            counter!(names::REFUSALS_TOTAL, "host" => host.clone()).increment(1);
        }
        counter!(names::RESPONSE_BYTES_TOTAL, "host" => host).increment(self.bytes);
        histogram!(names::REQUEST_DURATION_SECONDS).record(self.seconds);
        if let Some(h) = self.head_seconds {
            histogram!(names::TIME_TO_FIRST_BYTE_SECONDS).record(h);
        }
    }
}

/// An image was processed and handed to the writer (the progress line counts it; the metric
/// `images_stored_total` counts it when its shard is committed, see [`ShardCommitted`]).
pub struct ImageStored {
    pub stored_bytes: u64,
    pub timings: crate::imaging::StageSeconds,
}

impl ImageStored {
    pub fn emit(self, c: &Counters) {
        c.images_stored.fetch_add(1, Relaxed);
        c.stored_bytes.fetch_add(self.stored_bytes, Relaxed);
        let t = self.timings;
        let stages = [
            ("decode", t.decode),
            ("hash", t.hash),
            ("resize", t.resize),
            ("fingerprint", t.fingerprint),
            ("encode", t.encode),
        ];
        for (stage, secs) in stages {
            if secs > 0.0 {
                histogram!(names::IMAGE_STAGE_SECONDS, "stage" => stage).record(secs);
            }
        }
    }
}

/// One host's figures, set each time its actor looks for work to send.
pub struct HostGauges<'a> {
    pub host: &'a str,
    pub in_flight: u32,
    pub queued: usize,
    pub known_limit: Option<f64>,
}

impl HostGauges<'_> {
    pub fn emit(self) {
        let host = host_label(self.host);
        gauge!(names::HOST_REQUESTS_IN_FLIGHT, "host" => host.clone()).set(f64::from(self.in_flight));
        gauge!(names::HOST_QUEUED_ROWS, "host" => host.clone()).set(self.queued as f64);
        if let Some(limit) = self.known_limit {
            gauge!(names::HOST_KNOWN_LIMIT_REQUESTS_PER_SECOND, "host" => host).set(limit);
        }
    }
}

/// One rank's figures, every half second.
pub struct RankGauges {
    pub requests_in_flight: usize,
    pub cpu_queue_bytes: u64,
    pub cpu_workers_busy: usize,
    pub cpu_workers: usize,
    pub rows_remaining: u64,
}

impl RankGauges {
    pub fn emit(self) {
        gauge!(names::REQUESTS_IN_FLIGHT).set(self.requests_in_flight as f64);
        gauge!(names::CPU_QUEUE_BYTES).set(self.cpu_queue_bytes as f64);
        gauge!(names::CPU_WORKERS_BUSY).set(self.cpu_workers_busy as f64);
        gauge!(names::CPU_WORKERS).set(self.cpu_workers as f64);
        gauge!(names::ROWS_REMAINING).set(self.rows_remaining as f64);
    }
}

/// Prep moved on: rows read and kept so far, and how far its current phase is.
pub struct PrepProgress {
    /// As the report's `rows_read`: lines of a text input read so far (header and blank lines
    /// included), rows of a parquet one; after the read, the report's final value.
    pub rows_read: u64,
    pub rows_kept: u64,
    /// `read`, `merge` or `write`.
    pub phase: &'static str,
    pub fraction: f64,
}

impl PrepProgress {
    pub fn emit(self) {
        counter!(names::PREP_ROWS_READ_TOTAL).absolute(self.rows_read);
        counter!(names::PREP_ROWS_KEPT_TOTAL).absolute(self.rows_kept);
        gauge!(names::PREP_PHASE_PROGRESS_RATIO, "phase" => self.phase).set(self.fraction.clamp(0.0, 1.0));
    }
}

/// A round started on this rank; on rank 0, with the hosts its plan moved to another rank.
pub struct RoundStarted {
    pub round: u32,
    pub hosts_moved: u64,
}

impl RoundStarted {
    pub fn emit(self) {
        gauge!(names::ROUND).set(f64::from(self.round));
        counter!(names::HOSTS_MOVED_TOTAL).increment(self.hosts_moved);
    }
}

/// A row ended as a failure record.
pub struct RowFailed<'a> {
    pub host: &'a str,
    pub class: ErrorClass,
}

impl RowFailed<'_> {
    pub fn emit(self, c: &Counters) {
        c.rows_failed.fetch_add(1, Relaxed);
        *c.failed_by_class.lock().expect("counter lock").entry(self.class).or_default() += 1;
        counter!(names::ROWS_FAILED_TOTAL, "host" => host_label(self.host), "class" => self.class.as_str())
            .increment(1);
    }
}

/// A revalidation (`download --revalidate`) of one stored image: sent, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidation {
    /// The row's first request went out, with conditions or (no validator stored) without.
    Sent { conditional: bool },
    /// `304 Not Modified`: the stored bytes confirmed, no body read.
    NotModified,
    /// A 200 with other bytes: stored as the image's next version.
    Changed,
    /// A 200 with the stored bytes (a server that ignores conditions): confirmed.
    SameBytes,
    /// No answer that confirms or replaces the image: the stored image is kept.
    Failed,
}

impl Revalidation {
    /// The `result` label of an ended revalidation (`None` for `Sent`).
    pub fn as_str(self) -> Option<&'static str> {
        Some(match self {
            Revalidation::Sent { .. } => return None,
            Revalidation::NotModified => "not_modified",
            Revalidation::Changed => "changed",
            Revalidation::SameBytes => "same_bytes",
            Revalidation::Failed => "failed",
        })
    }

    pub fn emit(self, host: &str, c: &Counters) {
        let counter = match self {
            Revalidation::Sent { conditional } => {
                if !conditional {
                    c.revalidations_unconditional.fetch_add(1, Relaxed);
                }
                counter!(names::REVALIDATIONS_SENT_TOTAL, "host" => host_label(host)).increment(1);
                &c.revalidations_sent
            }
            Revalidation::NotModified => &c.not_modified,
            Revalidation::Changed => &c.changed,
            Revalidation::SameBytes => &c.same_bytes,
            Revalidation::Failed => &c.revalidations_failed,
        };
        counter.fetch_add(1, Relaxed);
        if let Some(result) = self.as_str() {
            counter!(names::REVALIDATIONS_TOTAL, "host" => host_label(host), "result" => result).increment(1);
        }
    }
}

/// A request will be tried again later.
pub struct RetryScheduled<'a> {
    pub host: &'a str,
    pub class: ErrorClass,
}

impl RetryScheduled<'_> {
    pub fn emit(self, c: &Counters) {
        c.retries.fetch_add(1, Relaxed);
        counter!(names::RETRIES_TOTAL, "host" => host_label(self.host), "class" => self.class.as_str()).increment(1);
    }
}

/// A host's request rate changed.
pub struct RateChanged<'a> {
    pub host: &'a str,
    pub from: f64,
    pub to: f64,
    pub reason: ChangeReason,
    /// Log rises too (`download --verbose`); cuts are always logged.
    pub verbose: bool,
}

impl RateChanged<'_> {
    pub fn emit(self, _c: &Counters) {
        let host = host_label(self.host);
        let direction = if self.to > self.from { "up" } else { "down" };
        counter!(names::RATE_CHANGES_TOTAL, "host" => host.clone(), "direction" => direction).increment(1);
        gauge!(names::HOST_RATE_REQUESTS_PER_SECOND, "host" => host).set(self.to);
        if direction == "down" || self.verbose {
            log(
                "INFO",
                &format!("{}: rate {:.2} -> {:.2} req/s ({})", self.host, self.from, self.to, self.reason.as_str()),
            );
        }
    }
}

/// A host moved between phases.
pub struct HostStateChanged<'a> {
    pub host: &'a str,
    pub from: Option<HostPhase>,
    pub to: HostPhase,
    pub detail: &'a str,
}

impl HostStateChanged<'_> {
    pub fn emit(self, c: &Counters) {
        let slot = |phase: HostPhase| match phase {
            HostPhase::Active => &c.hosts_active,
            HostPhase::BackingOff => &c.hosts_backing_off,
            HostPhase::Parked => &c.hosts_parked,
            HostPhase::Done => &c.hosts_done,
        };
        if let Some(from) = self.from {
            slot(from).fetch_sub(1, Relaxed);
        }
        slot(self.to).fetch_add(1, Relaxed);
        let host = host_label(self.host);
        for phase in HostPhase::ALL {
            gauge!(names::HOSTS, "state" => phase.as_str()).set(slot(phase).load(Relaxed) as f64);
            let current = if phase == self.to { 1.0 } else { 0.0 };
            gauge!(names::HOST_STATE, "host" => host.clone(), "state" => phase.as_str()).set(current);
        }
        if self.to == HostPhase::Parked || (self.to == HostPhase::Done && !self.detail.is_empty()) {
            log("WARN", &format!("{}: {} ({})", self.host, self.to.as_str(), self.detail));
        }
    }
}

/// A shard was committed (fsynced and renamed): its images are stored.
pub struct ShardCommitted<'a> {
    /// Seconds to write, fsync and rename it.
    pub seconds: f64,
    pub server: &'a str,
    pub partition: u64,
    pub rows: usize,
    /// Of `rows`, the images, and their bytes of image data.
    pub images: usize,
    pub image_bytes: u64,
    pub bytes: usize,
    pub verbose: bool,
}

impl ShardCommitted<'_> {
    pub fn emit(self, c: &Counters) {
        c.shards_committed.fetch_add(1, Relaxed);
        counter!(names::SHARDS_COMMITTED_TOTAL).increment(1);
        histogram!(names::SHARD_COMMIT_SECONDS).record(self.seconds);
        histogram!(names::SHARD_COMMIT_ROWS).record(self.rows as f64);
        if self.images > 0 {
            let host = host_label(self.server);
            counter!(names::IMAGES_STORED_TOTAL, "host" => host.clone()).increment(self.images as u64);
            counter!(names::STORED_BYTES_TOTAL, "host" => host).increment(self.image_bytes);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::outcome::TransportKind;

    #[test]
    fn answer_labels_keep_429_apart_and_never_invent_a_status_for_a_transport_failure() {
        let label = |o: Outcome| AnswerClass::of(&o).as_str();
        assert_eq!(label(Outcome::Status(200)), "2xx");
        assert_eq!(label(Outcome::Status(304)), "3xx");
        assert_eq!(label(Outcome::Status(404)), "4xx");
        assert_eq!(label(Outcome::Status(429)), "429");
        assert_eq!(label(Outcome::Status(503)), "5xx");
        assert_eq!(label(Outcome::Transport(TransportKind::Dns)), "dns");
        assert_eq!(label(Outcome::Transport(TransportKind::Timeout)), "timeout");
    }

    #[test]
    fn host_phases_move_the_counts_and_the_gauge_labels_are_distinct() {
        let c = Counters::default();
        HostStateChanged { host: "h", from: None, to: HostPhase::Active, detail: "" }.emit(&c);
        HostStateChanged { host: "h", from: Some(HostPhase::Active), to: HostPhase::BackingOff, detail: "" }.emit(&c);
        let s = c.snapshot();
        assert_eq!((s.hosts_active, s.hosts_backing_off), (0, 1));
        let mut labels: Vec<&str> = HostPhase::ALL.iter().map(|p| p.as_str()).collect();
        labels.dedup();
        assert_eq!(labels.len(), 4);
    }
}
