//! Limits that fit the body: a slow transfer that keeps going is stored in one attempt, while a
//! slow head, a stalled body and a trickle end as `timeout` by their own limit. The limits are
//! scaled down here (1 s where the defaults say 30 or 60); `fetch::deadlines` shows in virtual
//! time that the defaults store a 100 MB image sent at 300 KB/s.

use std::collections::BTreeMap;
use std::time::Duration;

use test_origin::{images, Behaviour, HostSpec, Origin};

use crate::download::{job, records};

/// Scaled limits: 1 s to the head, 1 s idle, 20 KB/s average after 1 s, a 20 s ceiling; no
/// retries, so each row is one attempt and its record says which limit ended it.
const LIMITS: &str = "HEAD_TIMEOUT_SECS=1\nIDLE_TIMEOUT_SECS=1\nMIN_TRANSFER_KB_PER_SEC=20\n\
REQUEST_TIMEOUT_SECS=20\nMAX_RETRIES=0\nBACKOFF_BASE_SECS=0.05\nPARK_SECS=0.05\nINITIAL_RATE_LIMIT=20\n";

#[test]
fn a_slow_steady_body_is_stored_in_one_attempt_and_stuck_ones_end_by_their_own_limit() {
    let big = "/img/w1200-h900-1.jpg";
    let size = images::served_bytes(big).unwrap().len();
    // At 100 KB/s the body takes several idle limits to arrive: only its progress keeps it alive.
    assert!(size > 300_000, "the slow image must take seconds: {size} bytes");
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Trickle { bytes_per_sec: 100_000 }),
        HostSpec::loopback(3, Behaviour::StallMidBody { after_bytes: 1000 }),
        HostSpec::loopback(4, Behaviour::Trickle { bytes_per_sec: 50 }),
        HostSpec::loopback(5, Behaviour::Slow { delay: Duration::from_secs(4) }),
    ])
    .unwrap();
    let urls: Vec<String> = vec![
        origin.url(0, big),
        origin.url(1, "/img/w640-h480-2.jpg"),
        origin.url(2, "/img/w640-h480-3.jpg"),
        origin.url(3, "/img/w64-h48-4.jpg"),
    ];
    let job = job(&urls, 100, LIMITS);
    let summary = job.download_ok(&[]);
    assert_eq!(summary["succeeded"], 1, "{summary}");
    assert_eq!(summary["failed_by_class"]["timeout"], 3, "{summary}");

    let (ok, failed) = records(&job.out);
    assert_eq!(ok[0].url, urls[0]);
    assert_eq!(origin.log(0).without_robots().len(), 1, "the slow image is fetched once, not retried from scratch");
    let detail: BTreeMap<&str, &str> = failed.iter().map(|f| (f.url.as_str(), f.detail.as_str())).collect();
    assert!(detail[urls[1].as_str()].contains("no body data for 1 s"), "{detail:?}");
    assert!(detail[urls[2].as_str()].contains("below the 20.0 KB/s minimum"), "{detail:?}");
    assert!(detail[urls[3].as_str()].contains("no response head within 1 s"), "{detail:?}");
    assert!(failed.iter().all(|f| f.attempts == 1 && f.retriable && f.error_class == "timeout"), "{failed:?}");
    for host in 1..=3 {
        assert_eq!(origin.log(host).without_robots().len(), 1, "host {host}: one attempt, as MAX_RETRIES=0 says");
    }
}

#[test]
fn a_100_mb_image_sent_at_300_kb_per_s_is_stored_in_one_attempt_with_the_default_limits() {
    // A herbarium sheet from a slow museum server: about 340 s of steady transfer, far past the
    // old 120 s total deadline, well within the default limits (idle 30 s, 32 KB/s, ceiling 600 s).
    let side = 5772;
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::LargeBmp { side, bytes_per_sec: 300_000 })]).unwrap();
    let urls = vec![origin.url(0, "/sheets/BM000521570.bmp")];
    let job = job(&urls, 10, "INITIAL_RATE_LIMIT=1\n");
    let summary = job.download_ok(&[]);
    assert_eq!(summary["succeeded"], 1, "{summary}");
    let log = origin.log(0).without_robots();
    assert_eq!(log.len(), 1, "one attempt");
    assert_eq!(log[0].bytes_sent, 54 + 3 * u64::from(side) * u64::from(side));
    let (ok, _) = records(&job.out);
    assert_eq!((ok[0].original_width, ok[0].stored_width), (side, 1024));
}
