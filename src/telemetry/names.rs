//! Every metric name, defined once. Pattern: `<namespace>_<name>_<unit>_total` for counters.
//!
//! Labels take bounded values only: `host` (capped, see `events::HOST_LABEL_CAP`), `class`
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
    (RETRIES_TOTAL, Kind::Counter, metrics::Unit::Count, "Requests scheduled to be tried again, by host and class"),
    (RATE_CHANGES_TOTAL, Kind::Counter, metrics::Unit::Count, "Changes of a host's request rate, by host and direction (up, down)"),
    (SHARDS_COMMITTED_TOTAL, Kind::Counter, metrics::Unit::Count, "Shard files committed (fsynced and renamed)"),
    (HOST_RATE_REQUESTS_PER_SECOND, Kind::Gauge, metrics::Unit::CountPerSecond, "A host's current request rate, by host"),
    (HOSTS, Kind::Gauge, metrics::Unit::Count, "Hosts of this rank by state (active, backing_off, parked, done)"),
];

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
