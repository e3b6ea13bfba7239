//! Rate control at default settings, end to end: what rate-limited and randomly failing hosts
//! saw, and what the client learned about them.

use std::path::Path;
use std::time::Duration;

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records, FAST};

/// A host's `learned_state` JSON from servers.parquet, by host index on `origin`.
fn learned_state(out: &Path, origin: &Origin, host: usize) -> serde_json::Value {
    use polars::prelude::SerReader;
    let servers = polars::prelude::ParquetReader::new(std::fs::File::open(out.join("servers.parquet")).unwrap())
        .finish()
        .unwrap();
    let names = servers.column("server_name").unwrap().str().unwrap().clone();
    let states = servers.column("learned_state").unwrap().str().unwrap().clone();
    let key = origin.base_url(host).replace("http://", "").replace(':', "_");
    let row = (0..servers.height()).find(|i| names.get(*i) == Some(key.as_str())).expect("host in servers.parquet");
    serde_json::from_str(states.get(row).expect("learned state written")).unwrap()
}

#[test]
fn at_defaults_limited_hosts_see_at_most_two_refusals_and_random_503s_neither_slow_nor_lose_a_host() {
    // Default rate settings: slow start from INITIAL_RATE_LIMIT up to MAX_RATE_LIMIT (10).
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::RateLimited { per_second: 2.0, retry_after: None }),
        HostSpec::loopback(3, Behaviour::RateLimited { per_second: 8.0, retry_after: None }),
        HostSpec::loopback(4, Behaviour::Random503 { percent: 15 }),
        HostSpec::loopback(5, Behaviour::Ok),
    ])
    .unwrap();
    // 16 s of URLs at each limited host: long enough for the climb back after a refusal to
    // reach its hold before the host runs out of URLs.
    let counts = [32, 128, 40, 40];
    let mut urls = Vec::new();
    for (host, n) in counts.iter().enumerate() {
        urls.extend((0..*n).map(|i| origin.url(host, &format!("/img/w64-h48-{i}.jpg"))));
    }
    let job = job(&urls, 1000, FAST);
    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert!(failed.iter().all(|f| f.error_class == "http_5xx"), "only random 503s may fail a row: {failed:?}");
    assert_eq!(summary["remaining"], 0);
    for (host, limit) in [(0, 2), (1, 8)] {
        let log = origin.log(host);
        // A sliding window pays one refusal to be found and at most one more to be pinned.
        assert!(log.count_status(429) <= 2, "host limited to {limit}/s was refused {} times", log.count_status(429));
        assert_eq!(log.count_status(200), counts[host], "every image fetched once");
        let window = log.max_requests_in_window(Duration::from_secs(1));
        assert!(window <= limit + 1, "{window} requests in 1 s at a host that allows {limit}");
        let state = learned_state(&job.out, &origin, host);
        let learned = state["rate"].as_f64().unwrap();
        assert!(learned < limit as f64 && learned >= 0.9 * limit as f64, "held at {learned} for a {limit}/s host");
    }
    let random = learned_state(&job.out, &origin, 2);
    assert!(random["known_limit"].is_null(), "random 503s taught a limit: {random}");
    assert!(random["rate"].as_f64().unwrap() >= 1.0, "random 503s lowered the rate: {random}");
    assert!(origin.log(2).count_status(503) >= 1, "the host did fail some requests");
    assert_eq!(origin.log(3).count_status(429) + origin.log(3).count_status(503), 0);
}
