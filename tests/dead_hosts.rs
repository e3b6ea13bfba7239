//! Hosts that never answer: the run still ends by itself, with every row recorded, and a later
//! `--retry-failed` asks them again. Only loopback addresses; a closed port stands for a dead
//! server.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, records};

/// A loopback address on which nothing listens (bound, then closed): connections are refused.
fn closed_port(last_octet: u8) -> SocketAddr {
    TcpListener::bind(("127.0.0.".to_string() + &last_octet.to_string(), 0)).unwrap().local_addr().unwrap()
}

/// Ten healthy rows on a fresh origin followed by `others`, downloaded with quick retries and
/// default parking: the job, how long the download took and what it said.
fn beside_a_healthy_host(others: &[String]) -> (crate::download::Job, Duration, std::process::Output) {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let mut urls: Vec<String> = (0..10).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    urls.extend(others.iter().cloned());
    // Default parking (30 s, then 2 min, 8 min, 30 min); only retries are quick, and few (a
    // tarpit's row costs a whole request limit per attempt).
    let config = "BACKOFF_BASE_SECS=0.05\nREQUEST_TIMEOUT_SECS=5\nCONNECT_TIMEOUT_SECS=2\nMAX_RETRIES=2\n";
    let job = job(&urls, 100, config);
    let started = Instant::now();
    let out = job.download(&[]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (job, took, out)
}

#[test]
fn dead_missing_and_tarpit_hosts_beside_a_healthy_one_are_recorded_within_minutes_and_retry_failed_asks_again() {
    // Beside the healthy host: a closed port (a dead server), a name that does not exist, and a
    // tarpit sending 200 bytes a second, whose trickle keeps the rank busy while the dead
    // server is parked.
    let dead = closed_port(7);
    let tarpit = Origin::start(vec![HostSpec::loopback(8, Behaviour::Trickle { bytes_per_sec: 200 })]).unwrap();
    let dead_urls: Vec<String> = (0..5).map(|i| format!("http://{dead}/img/w64-h48-{i}.jpg")).collect();
    let gone_urls: Vec<String> = (0..3).map(|i| format!("http://museum.invalid/img/w64-h48-{i}.jpg")).collect();
    let slow_urls: Vec<String> = (0..2).map(|i| tarpit.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let others: Vec<String> = [&dead_urls[..], &gone_urls, &slow_urls].concat();
    let (job, took, out) = beside_a_healthy_host(&others);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    // The bound: the first parking (30 s), then a minute without progress (ending::STALL_LIMIT).
    assert!(took < Duration::from_secs(150), "the run took {took:?}, past the 90 s stall bound with slack:\n{said}");
    assert!(said.contains("no progress for 60 s"), "the give-up is said:\n{said}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["succeeded"].as_u64(), summary["remaining"].as_u64()), (Some(10), Some(0)), "{summary}");
    let (_, failed) = records(&job.out);
    assert_eq!(failed.len(), others.len(), "every row of the three hosts has a record: {failed:?}");
    for f in &failed {
        let classes: &[&str] = if dead_urls.contains(&f.url) {
            &["parked", "connect"]
        } else if gone_urls.contains(&f.url) {
            &["nxdomain"]
        } else {
            assert!(slow_urls.contains(&f.url), "{f:?}");
            &["timeout", "parked"]
        };
        assert!(classes.contains(&f.error_class.as_str()) && f.retriable, "{} recorded as {f:?}", f.url);
    }

    // The dead server comes back on the same address: `--retry-failed` asks its rows again (and
    // the others, which fail as before).
    let back = Origin::start(vec![HostSpec::new(dead, Behaviour::Ok)]).unwrap();
    let again = job.download_ok(&["--retry-failed"]);
    assert_eq!(again["succeeded"].as_u64(), Some(15), "{again}");
    assert_eq!(back.log(0).without_robots().into_vec().len(), 5, "each dead row asked once more");
    assert_eq!(again["failed_by_class"]["nxdomain"].as_u64(), Some(3), "{again}");
}

#[test]
fn a_name_that_does_not_exist_is_recorded_nxdomain_in_seconds_and_retry_failed_asks_again() {
    // `.invalid` never resolves (RFC 6761): the resolver answers "no such name" without a query.
    let gone: Vec<String> = (0..5).map(|i| format!("http://museum.invalid/img/w64-h48-{i}.jpg")).collect();
    let (job, took, out) = beside_a_healthy_host(&gone);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    // Not parked: the first park alone is 30 s.
    assert!(
        took < Duration::from_secs(25),
        "the run took {took:?}; a name that does not exist is not waited for:\n{said}"
    );
    assert!(said.contains("museum.invalid does not exist (NXDOMAIN), asked 2 times"), "said once, plainly:\n{said}");
    assert!(!said.contains("parked"), "not reported as a parked host:\n{said}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["succeeded"].as_u64(), summary["remaining"].as_u64()), (Some(10), Some(0)), "{summary}");
    assert_eq!(summary["failed_by_class"]["nxdomain"].as_u64(), Some(5), "{summary}");
    let (_, failed) = records(&job.out);
    let mut rows: Vec<(&str, &str, bool)> =
        failed.iter().map(|f| (f.url.as_str(), f.error_class.as_str(), f.retriable)).collect();
    rows.sort();
    let expected: Vec<(&str, &str, bool)> = gone.iter().map(|u| (u.as_str(), "nxdomain", true)).collect();
    assert_eq!(rows, expected, "every row of the missing name recorded as retriable `nxdomain`");

    // `--retry-failed` asks again (the name may exist by then); it still does not.
    let again = job.download(&["--retry-failed"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["run"]["rows_failed"].as_u64(), Some(5), "the 5 rows were tried again: {again}");
    assert_eq!(again["failed_by_class"]["nxdomain"].as_u64(), Some(5), "{again}");
}

#[test]
fn without_robots_txt_the_image_requests_meet_the_missing_name_and_end_the_host_just_as_fast() {
    // ROBOTS=ignore: no robots.txt request comes first, so the image requests find out.
    let gone: Vec<String> = (0..6).map(|i| format!("http://gone.invalid:8080/img/w64-h48-{i}.jpg")).collect();
    let job = job(&gone, 100, "ROBOTS=ignore\nBACKOFF_BASE_SECS=0.05\nREQUEST_TIMEOUT_SECS=5\n");
    let started = Instant::now();
    let summary = job.download_ok(&[]);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(summary["failed_by_class"]["nxdomain"].as_u64(), Some(6), "{summary}");
    assert_eq!(summary["remaining"].as_u64(), Some(0), "{summary}");
    // One row paid the two lookups; the others were recorded without a request of their own.
    assert!(summary["run"]["requests"].as_u64().unwrap() <= 3, "{summary}");
}
