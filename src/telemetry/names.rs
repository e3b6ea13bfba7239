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
/// Images committed to the output, by `host`.
pub const IMAGES_STORED_TOTAL: &str = "distributed_downloader_images_stored_total";
/// Bytes of stored image data committed, by `host`.
pub const STORED_BYTES_TOTAL: &str = "distributed_downloader_stored_bytes_total";
/// Rows that ended as a failure record, by `host` and `class`.
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

/// Every name above, for the dashboard check.
pub const ALL: &[&str] = &[
    REQUESTS_TOTAL,
    RESPONSE_BYTES_TOTAL,
    IMAGES_STORED_TOTAL,
    STORED_BYTES_TOTAL,
    ROWS_FAILED_TOTAL,
    RETRIES_TOTAL,
    RATE_CHANGES_TOTAL,
    SHARDS_COMMITTED_TOTAL,
    HOST_RATE_REQUESTS_PER_SECOND,
    HOSTS,
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_name_is_namespaced_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for n in super::ALL {
            assert!(n.starts_with(super::NAMESPACE), "{n}");
            assert!(seen.insert(n), "{n} twice");
        }
    }
}
