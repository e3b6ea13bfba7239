//! Every metric name, defined once. Pattern: `<namespace>_<name>_<unit>_total` for counters.
//!
//! Labels take bounded values only: `host` (capped by `METRICS_HOST_LABELS`, see `events::host_label`), `class`
//! (`ErrorClass::as_str()` or a status class), `state` (host state names). Never a URL.

/// Prefix of every metric.
pub const NAMESPACE: &str = "distributed_downloader";

/// HTTP responses and transport failures, by `host` and `class` (`2xx`, `3xx`, `4xx`, `429`, `5xx`, or a transport class).
pub const REQUESTS_TOTAL: &str = "distributed_downloader_requests_total";
/// Bytes of response bodies received, by `host`.
pub const RESPONSE_BYTES_TOTAL: &str = "distributed_downloader_response_bytes_total";
/// Images committed to a shard (fsynced and renamed), by `host`.
pub const IMAGES_STORED_TOTAL: &str = "distributed_downloader_images_stored_total";
/// Bytes of image data committed to shards, by `host`.
pub const STORED_BYTES_TOTAL: &str = "distributed_downloader_stored_bytes_total";
/// Rows that ended as a failure record (handed to the writer, committed with its next shard), by
/// `host` and `class`.
pub const ROWS_FAILED_TOTAL: &str = "distributed_downloader_rows_failed_total";
/// Stored images asked about again (`download --revalidate`), by `host`: one per row, its first
/// attempt.
pub const REVALIDATIONS_SENT_TOTAL: &str = "distributed_downloader_revalidations_sent_total";
/// Revalidations that ended, by `host` and `result` (`not_modified`, `changed`, `same_bytes`,
/// `failed`).
pub const REVALIDATIONS_TOTAL: &str = "distributed_downloader_revalidations_total";
/// Retries scheduled, by `host` and `class`.
pub const RETRIES_TOTAL: &str = "distributed_downloader_retries_total";
/// Rate changes, by `host` and `direction` (`up`, `down`).
pub const RATE_CHANGES_TOTAL: &str = "distributed_downloader_rate_changes_total";
/// Shards committed.
pub const SHARDS_COMMITTED_TOTAL: &str = "distributed_downloader_shards_committed_total";
/// Current request rate of a host in requests per second (gauge), by `host`.
pub const HOST_RATE_REQUESTS_PER_SECOND: &str = "distributed_downloader_host_rate_requests_per_second";
/// Hosts by `state` (`active`, `backing_off`, `parked`, `done`) (gauge).
pub const HOSTS: &str = "distributed_downloader_hosts";

/// Seconds from a request leaving to its last body byte, or to its failure (histogram).
pub const REQUEST_DURATION_SECONDS: &str = "distributed_downloader_request_duration_seconds";
/// Seconds from a request leaving to its response head (histogram).
pub const TIME_TO_FIRST_BYTE_SECONDS: &str = "distributed_downloader_time_to_first_byte_seconds";
/// Refusals (a 429, or an error status with `Retry-After`), by `host`.
pub const REFUSALS_TOTAL: &str = "distributed_downloader_refusals_total";
/// Seconds a CPU worker spent on one image, by `stage` (`decode`, `hash`, `resize`, `fingerprint`,
/// `encode`) (histogram).
pub const IMAGE_STAGE_SECONDS: &str = "distributed_downloader_image_stage_seconds";
/// Seconds to write, fsync and rename one shard (histogram).
pub const SHARD_COMMIT_SECONDS: &str = "distributed_downloader_shard_commit_seconds";
/// Rows in one committed shard (histogram).
pub const SHARD_COMMIT_ROWS: &str = "distributed_downloader_shard_commit_rows";
/// Age of the oldest row handed to the writer and not committed yet (gauge).
pub const WRITER_OLDEST_PENDING_SECONDS: &str = "distributed_downloader_writer_oldest_pending_seconds";
/// Requests in flight to a host, by `host` (gauge).
pub const HOST_REQUESTS_IN_FLIGHT: &str = "distributed_downloader_host_requests_in_flight";
/// Rows of a host read and waiting to be requested, by `host` (gauge).
pub const HOST_QUEUED_ROWS: &str = "distributed_downloader_host_queued_rows";
/// The lowest rate at which a host refused, remembered across runs, by `host` (gauge).
pub const HOST_KNOWN_LIMIT_REQUESTS_PER_SECOND: &str = "distributed_downloader_host_known_limit_requests_per_second";
/// 1 for a host's current state, 0 for the others, by `host` and `state` (gauge).
pub const HOST_STATE: &str = "distributed_downloader_host_state";
/// Requests in flight on this rank (gauge).
pub const REQUESTS_IN_FLIGHT: &str = "distributed_downloader_requests_in_flight";
/// Bytes of bodies held for the CPU workers, read or being processed, of `CPU_QUEUE_MB` (gauge).
pub const CPU_QUEUE_BYTES: &str = "distributed_downloader_cpu_queue_bytes";
/// CPU workers processing an image now, and CPU workers in all (gauges).
pub const CPU_WORKERS_BUSY: &str = "distributed_downloader_cpu_workers_busy";
pub const CPU_WORKERS: &str = "distributed_downloader_cpu_workers";
/// Rows this rank owns in the current round without a record yet (gauge).
pub const ROWS_REMAINING: &str = "distributed_downloader_rows_remaining";
/// The round this rank is in, on many ranks (gauge).
pub const ROUND: &str = "distributed_downloader_round";
/// Hosts that rank 0 moved to another rank between rounds (counter, rank 0 only).
pub const HOSTS_MOVED_TOTAL: &str = "distributed_downloader_hosts_moved_total";
/// Prep: input rows read, and rows kept by the filters (counters).
pub const PREP_ROWS_READ_TOTAL: &str = "distributed_downloader_prep_rows_read_total";
pub const PREP_ROWS_KEPT_TOTAL: &str = "distributed_downloader_prep_rows_kept_total";
/// Prep: how far its current phase is, 0 to 1, by `phase` (`read`, `merge`, `write`) (gauge).
pub const PREP_PHASE_PROGRESS_RATIO: &str = "distributed_downloader_prep_phase_progress_ratio";

/// What kind of series a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: name, kind, unit, and what it means (the `# HELP` text). The exporter
/// describes each; the dashboard check reads the names from here.
pub const METRICS: &[(&str, Kind, metrics::Unit, &str)] = &[
    (REQUESTS_TOTAL, Kind::Counter, metrics::Unit::Count, "HTTP responses and transport failures, by host and class (2xx, 3xx, 4xx, 429, 5xx, or the transport failure's class)"),
    (RESPONSE_BYTES_TOTAL, Kind::Counter, metrics::Unit::Bytes, "Bytes of response bodies received, by host"),
    (IMAGES_STORED_TOTAL, Kind::Counter, metrics::Unit::Count, "Images committed to a shard (fsynced and renamed), by host"),
    (STORED_BYTES_TOTAL, Kind::Counter, metrics::Unit::Bytes, "Bytes of image data committed to shards, by host"),
    (ROWS_FAILED_TOTAL, Kind::Counter, metrics::Unit::Count, "Rows that ended as a failure record (handed to the writer), by host and class"),
    (REVALIDATIONS_SENT_TOTAL, Kind::Counter, metrics::Unit::Count, "Stored images asked about again by download --revalidate (one per row), by host"),
    (REVALIDATIONS_TOTAL, Kind::Counter, metrics::Unit::Count, "Revalidations that ended, by host and result (not_modified: a 304; changed: new bytes stored; same_bytes: a 200 with the stored bytes; failed: the stored image kept)"),
    (RETRIES_TOTAL, Kind::Counter, metrics::Unit::Count, "Requests scheduled to be tried again, by host and class"),
    (RATE_CHANGES_TOTAL, Kind::Counter, metrics::Unit::Count, "Changes of a host's request rate, by host and direction (up, down)"),
    (SHARDS_COMMITTED_TOTAL, Kind::Counter, metrics::Unit::Count, "Shard files committed (fsynced and renamed)"),
    (HOST_RATE_REQUESTS_PER_SECOND, Kind::Gauge, metrics::Unit::CountPerSecond, "A host's current request rate, by host"),
    (HOSTS, Kind::Gauge, metrics::Unit::Count, "Hosts of this rank by state (active, backing_off, parked, done)"),
    (REQUEST_DURATION_SECONDS, Kind::Histogram, metrics::Unit::Seconds, "Seconds from a request leaving to its last body byte, or to its failure"),
    (TIME_TO_FIRST_BYTE_SECONDS, Kind::Histogram, metrics::Unit::Seconds, "Seconds from a request leaving to its response head"),
    (REFUSALS_TOTAL, Kind::Counter, metrics::Unit::Count, "Refusals (a 429, or an error status with Retry-After), by host"),
    (IMAGE_STAGE_SECONDS, Kind::Histogram, metrics::Unit::Seconds, "Seconds a CPU worker spent on one image, by stage (decode, hash, resize, fingerprint, encode)"),
    (SHARD_COMMIT_SECONDS, Kind::Histogram, metrics::Unit::Seconds, "Seconds to write, fsync and rename one shard"),
    (SHARD_COMMIT_ROWS, Kind::Histogram, metrics::Unit::Count, "Rows in one committed shard"),
    (WRITER_OLDEST_PENDING_SECONDS, Kind::Gauge, metrics::Unit::Seconds, "Age of the oldest row handed to the writer and not committed yet"),
    (HOST_REQUESTS_IN_FLIGHT, Kind::Gauge, metrics::Unit::Count, "Requests in flight to a host, by host"),
    (HOST_QUEUED_ROWS, Kind::Gauge, metrics::Unit::Count, "Rows of a host read and waiting to be requested, by host"),
    (HOST_KNOWN_LIMIT_REQUESTS_PER_SECOND, Kind::Gauge, metrics::Unit::CountPerSecond, "The lowest rate at which a host refused, remembered across runs, by host"),
    (HOST_STATE, Kind::Gauge, metrics::Unit::Count, "1 for a host's current state (active, backing_off, parked, done), 0 for the others, by host and state"),
    (REQUESTS_IN_FLIGHT, Kind::Gauge, metrics::Unit::Count, "Requests in flight on this rank"),
    (CPU_QUEUE_BYTES, Kind::Gauge, metrics::Unit::Bytes, "Bytes of bodies held for the CPU workers (read or being processed), of CPU_QUEUE_MB"),
    (CPU_WORKERS_BUSY, Kind::Gauge, metrics::Unit::Count, "CPU workers processing an image now"),
    (CPU_WORKERS, Kind::Gauge, metrics::Unit::Count, "CPU workers of this rank"),
    (ROWS_REMAINING, Kind::Gauge, metrics::Unit::Count, "Rows this rank owns in the current round without a record yet"),
    (ROUND, Kind::Gauge, metrics::Unit::Count, "The round this rank is in (many ranks; 0 on one)"),
    (HOSTS_MOVED_TOTAL, Kind::Counter, metrics::Unit::Count, "Hosts rank 0 moved to another rank between rounds"),
    (PREP_ROWS_READ_TOTAL, Kind::Counter, metrics::Unit::Count, "Prep: input lines read (CSV/TSV, header and blank lines included) or rows read (parquet)"),
    (PREP_ROWS_KEPT_TOTAL, Kind::Counter, metrics::Unit::Count, "Prep: input rows the filters kept"),
    (PREP_PHASE_PROGRESS_RATIO, Kind::Gauge, metrics::Unit::Percent, "Prep: how far each phase is, from 0 to 1, by phase (read, merge, write)"),
];

/// Bucket bounds of the rows-per-shard histogram: up to `COMMIT_ROWS`' default and beyond.
pub const ROWS_BUCKETS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0];

/// Bucket bounds of every `_seconds` histogram: from a fast local answer to a slow transfer.
pub const SECONDS_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Registers every metric's help text and unit with the installed recorder.
pub fn describe_all() {
    for &(name, kind, unit, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Gauge => metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_namespaced_unique_and_described() {
        let mut seen = std::collections::HashSet::new();
        for (name, kind, _, help) in super::METRICS {
            assert!(name.starts_with(super::NAMESPACE), "{name}");
            assert!(seen.insert(name), "{name} twice");
            assert!(!help.is_empty());
            assert_eq!(
                name.ends_with("_total"),
                *kind == super::Kind::Counter,
                "{name}: `_total` is for counters only"
            );
        }
    }
}
