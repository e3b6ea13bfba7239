//! Limits that fit the body: a slow transfer that keeps going is stored in one attempt, while a
//! slow head, a stalled body and a trickle end as `timeout` by their own limit. The limits are
//! scaled down here, so the tests take seconds: `fetch::deadlines` shows on a simulated clock
//! that the default limits read a 100 MB image sent at 300 KB/s to the end, and the second test
//! runs that transfer for real with the image and the limits a twentieth of the defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use distributed_downloader::config::DEFAULT_MAX_BODY_MB;
use distributed_downloader::fetch::deadlines::{
    DEFAULT_HEAD_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_MIN_TRANSFER_KB_PER_SEC, DEFAULT_REQUEST_TIMEOUT_SECS,
};
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

/// How much smaller the image and the limits of the default-limits test are than the case they
/// stand for. 20 keeps that test under 20 s while the idle limit (1.5 s) stays 15 times the gap
/// between the origin's writes (0.1 s), which leaves a busy machine room.
const SCALE: f64 = 20.0;

/// The one total deadline the four limits replaced: what a slow image used to be cut at.
const OLD_TOTAL_DEADLINE_SECS: f64 = 120.0;

/// The default limits scaled by [`SCALE`]: each time limit and the body cap `SCALE` times
/// smaller, the minimum rate unchanged (the image shrinks in bytes and in time alike, so its rate
/// stays 300 KB/s). Retries keep their default, so a transfer that was cut would show up as a
/// second request.
fn default_limits_scaled() -> String {
    format!(
        "HEAD_TIMEOUT_SECS={}\nIDLE_TIMEOUT_SECS={}\nMIN_TRANSFER_KB_PER_SEC={}\nREQUEST_TIMEOUT_SECS={}\n\
         MAX_BODY_MB={}\nINITIAL_RATE_LIMIT=1\n",
        DEFAULT_HEAD_TIMEOUT_SECS / SCALE,
        DEFAULT_IDLE_TIMEOUT_SECS / SCALE,
        DEFAULT_MIN_TRANSFER_KB_PER_SEC,
        DEFAULT_REQUEST_TIMEOUT_SECS / SCALE,
        (DEFAULT_MAX_BODY_MB as f64 / SCALE).ceil(),
    )
}

#[test]
fn a_slow_steady_image_is_stored_in_one_attempt_under_the_default_limits_scaled_to_a_twentieth() {
    // The case: a herbarium sheet of 100 MB from a museum server sending 300 KB/s, about 333 s of
    // steady transfer, far past the old 120 s total deadline and well within the defaults (head
    // 60 s, idle 30 s, 32 KB/s, ceiling 600 s, body cap 200 MB); `fetch::deadlines` proves it
    // on a simulated clock. Here it runs for real at a twentieth: a 5 MB image at the same
    // 300 KB/s (about 17 s), under head 3 s, idle 1.5 s, 32 KB/s, ceiling 30 s and a 10 MB cap.
    // 54 + 3 x 1288^2 bytes is 100 MB / 20.1, and 1288 px is still resized to 1024.
    let side = 1288;
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::LargeBmp { side, bytes_per_sec: 300_000 })]).unwrap();
    let urls = vec![origin.url(0, "/sheets/BM000521570.bmp")];
    let job = job(&urls, 10, &default_limits_scaled());
    let summary = job.download_ok(&[]);
    assert_eq!(summary["succeeded"], 1, "{summary}");
    let log = origin.log(0).without_robots();
    assert_eq!(log.len(), 1, "one attempt");
    assert_eq!(log[0].bytes_sent, 54 + 3 * u64::from(side) * u64::from(side));
    // Read to the end although it outlasted the old total deadline and many idle limits, scaled
    // alike: only its progress kept it going.
    let took = log[0].duration().expect("the body was sent to the end");
    let old_deadline = Duration::from_secs_f64(OLD_TOTAL_DEADLINE_SECS / SCALE);
    assert!(took > old_deadline, "the transfer took {took:?}, not past the old deadline scaled ({old_deadline:?})");
    let idle = Duration::from_secs_f64(DEFAULT_IDLE_TIMEOUT_SECS / SCALE);
    assert!(took > idle * 5, "the transfer took {took:?}, not several idle limits ({idle:?})");
    let (ok, _) = records(&job.out);
    assert_eq!((ok[0].original_width, ok[0].stored_width), (side, 1024));
}
