//! `download` against real nginx `limit_req` limiters (DESIGN §5: our origin is a model, nginx is
//! what small institutional servers run). What must hold for any sane rate controller, judged on
//! nginx's own access log: every row done once, nothing fetched twice, no second over what the
//! limiter allows, a queue at the server no deeper than the client's in-flight cap, Retry-After
//! obeyed, and a run that stays near each host's floor.
//!
//! The wall-time bound here is loose on purpose (2× the floor): it catches a controller stuck at
//! a fraction of the limit, not one 20% off. The 1.1× goal is held by the benchmark
//! (`make bench-politeness`, its nginx section), not by these tests.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_origin::{images, Nginx, NginxHost, RequestLog};

use crate::download::{assert_each_url_once, job, records, Job};
use crate::util::*;

/// Each host gets `rate × FLOOR` URLs: long enough to get past slow start, short enough that a
/// test stays under a minute at 2× the floor.
const FLOOR_SECS: f64 = 12.0;
/// Refusals a host may pay while its limit is found (the goal is 2; a burst the ramp
/// cannot tell from rate costs a third).
const MAX_REFUSALS: usize = 3;
/// The loose bound on a host's wall time (first arrival to last completion) against its floor.
const WALL_BOUND: f64 = 2.0;
/// Slack on a Retry-After pause: nginx logs to the millisecond, and timers fire a little early.
const PAUSE_SLACK: Duration = Duration::from_millis(50);
/// A request the client had already sent when a 429 left the server may land just after it on
/// loopback; one landing later than this was sent after the client saw the 429.
const REACTION: Duration = Duration::from_millis(20);
/// `MAX_IN_FLIGHT_PER_HOST`'s default: the deepest queue a delay-mode limiter may hold for us.
const IN_FLIGHT_CAP: usize = 2;

/// `scripts/nginx.sh install`: Debian's nginx; its path.
pub(crate) fn nginx_bin() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nginx.sh");
    let out = Command::new(&script).arg("install").output().expect("run scripts/nginx.sh");
    assert!(out.status.success(), "scripts/nginx.sh install failed:\n{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    PathBuf::from(text.lines().find_map(|l| l.strip_prefix("nginx=")).expect("nginx path"))
}

/// nginx serving `hosts`, each with `rate × FLOOR_SECS` URLs, prepped with `config`.
fn limited(hosts: Vec<NginxHost>, config: &str) -> (Nginx, Job, Vec<String>) {
    limited_for(hosts, config, FLOOR_SECS)
}

/// `limited`, with `rate × floor` URLs per host.
fn limited_for(hosts: Vec<NginxHost>, config: &str, floor: f64) -> (Nginx, Job, Vec<String>) {
    let nginx = Nginx::start_with(&nginx_bin(), hosts).unwrap();
    let mut urls = Vec::new();
    for i in 0..nginx.len() {
        let n = (nginx.host(i).rate * floor).round() as usize;
        urls.extend((0..n).map(|k| nginx.url(i, &format!("/img/w64-h48-{k}.jpg"))));
    }
    let job = job(&urls, 1000, config);
    (nginx, job, urls)
}

/// What every nginx test asserts after its download: each row has one record and is stored,
/// each image was served once, and each host was done within `WALL_BOUND` × its floor.
fn assert_done_once_near_the_floor(nginx: &Nginx, job: &Job, urls: &[String]) -> Vec<RequestLog> {
    assert_done_once(nginx, job, urls, Some(FLOOR_SECS))
}

/// `assert_done_once_near_the_floor`, with hosts of `floor` seconds of URLs; without a floor,
/// only that every row is stored and every image served once (for a test whose hosts run long
/// enough for a busy machine's CPU, not the limiter, to set their pace).
fn assert_done_once(nginx: &Nginx, job: &Job, urls: &[String], floor: Option<f64>) -> Vec<RequestLog> {
    let (ok, failed) = records(&job.out);
    assert_each_url_once(urls, &ok, &failed);
    assert!(failed.is_empty(), "a limiter's 429s must not cost a row: {:?}", &failed[..failed.len().min(3)]);
    let logs: Vec<RequestLog> = (0..nginx.len()).map(|i| nginx.log(i)).collect();
    for (i, log) in logs.iter().enumerate() {
        let host = nginx.host(i).label();
        let mut served: HashMap<&str, usize> = HashMap::new();
        for r in log.iter().filter(|r| r.status == 200 && r.path != "/robots.txt") {
            *served.entry(r.path.as_str()).or_default() += 1;
        }
        assert!(served.values().all(|&n| n == 1), "{host}: an image stored once was fetched again");
        assert_eq!(served.len(), urls.iter().filter(|u| u.starts_with(nginx.base_url(i))).count(), "{host}");
        let Some(floor) = floor else { continue };
        let first = log.iter().map(|r| r.arrived).min().unwrap();
        let last = log.iter().filter_map(|r| r.completed).max().unwrap();
        let wall = (last - first).as_secs_f64();
        // Shown with --nocapture: how much room each bound has.
        eprintln!(
            "{host}: wall {wall:.1} s (floor {floor:.0}), {} requests, {} refused, peak {}/s, {} at once",
            log.len(),
            log.count_status(429),
            log.max_requests_in_window(Duration::from_secs(1)),
            log.max_in_flight()
        );
        // Finding the limit costs one or two refusals; a third where the burst is larger than
        // half the requests sent before the first (rate.rs's figures).
        assert!(log.count_status(429) <= MAX_REFUSALS, "{host}: refused {} times", log.count_status(429));
        assert!(
            wall <= WALL_BOUND * floor,
            "{host}: {wall:.1} s for a floor of {floor:.1} s ({} requests, {} refused)",
            log.len(),
            log.count_status(429)
        );
    }
    logs
}

#[test]
fn the_nginx_harness_limits_as_configured_and_logs_what_it_served() {
    let hosts =
        vec![NginxHost::loopback(60, 1.0).burst(1).retry_after(3), NginxHost::loopback(61, 1.0).burst(1).delay()];
    let nginx = Nginx::start_with(&nginx_bin(), hosts).unwrap();
    let path = "/img/w64-h48-3.jpg";
    let url = nginx.url(0, path);
    let get = |host: usize, path: &str| -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(nginx.addr(host)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: h\r\nUser-Agent: probe \"1\"\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        let at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&reply[..at]).to_string();
        (head[9..12].parse().unwrap(), head, reply[at + 4..].to_vec())
    };
    // burst=1: the bucket takes two at once, then refuses until it drains at 1 req/s.
    let answers: Vec<(u16, String, Vec<u8>)> = (0..4).map(|_| get(0, path)).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 200, 429, 429], "{url}");
    assert_eq!(answers[0].2, *images::served_bytes(path).unwrap(), "the harness serves the origin's image bytes");
    assert!(answers[2].1.contains("\r\nRetry-After: 3"), "{}", answers[2].1);
    assert!(!answers[0].1.contains("Retry-After"), "only the 429 carries it");
    assert_eq!(get(0, "/img/nothing.txt").0, 429, "robots.txt and 404s count against the limit too");

    // Delay mode: the second of two requests at once is held about 1/rate, not refused.
    let started = Instant::now();
    std::thread::scope(|s| {
        let a = s.spawn(|| get(1, path).0);
        let b = s.spawn(|| get(1, path).0);
        assert_eq!((a.join().unwrap(), b.join().unwrap()), (200, 200));
    });
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());

    let log = nginx.log(0);
    assert_eq!(log.statuses(), [200, 200, 429, 429, 429]);
    assert_eq!(log[0].user_agent.as_deref(), Some("probe \"1\""));
    assert_eq!((log[0].path.as_str(), log[0].bytes_sent), (path, images::served_bytes(path).unwrap().len() as u64));
    assert_eq!(log.iter().map(|r| r.connection).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "one connection each");
    assert!(log.windows(2).all(|w| w[0].arrived <= w[1].arrived), "in arrival order");
    let now = nginx.started_at().elapsed() + Duration::from_millis(5);
    assert!(log[4].completed.unwrap() <= now, "times from the harness's start: {:?} > {now:?}", log[4].completed);
    let mut took: Vec<Duration> = nginx.log(1).iter().filter_map(|r| r.duration()).collect();
    took.sort();
    assert_eq!(took.len(), 2);
    assert!(took[0] < Duration::from_millis(100), "the first went through: {took:?}");
    assert!(took[1] >= Duration::from_millis(900) && took[1] < Duration::from_millis(1500), "held 1 s: {took:?}");
}

#[test]
fn nodelay_limiters_never_see_more_than_rate_plus_burst_in_a_second() {
    let hosts = vec![
        NginxHost::loopback(62, 0.5).burst(1),
        NginxHost::loopback(63, 2.0),
        NginxHost::loopback(64, 2.0).burst(4),
        NginxHost::loopback(65, 8.0).burst(10),
    ];
    let (nginx, job, urls) = limited(hosts, "");
    let summary = job.download_ok(&[]);
    assert_eq!(summary["remaining"], 0);
    let logs = assert_done_once_near_the_floor(&nginx, &job, &urls);
    for (i, log) in logs.iter().enumerate() {
        let h = nginx.host(i);
        // nginx lets `burst + 1` through at once and one more every 1/rate: what a polite client
        // may send in any second, refused requests included.
        let allowed = (h.rate + h.burst as f64 + 1.0).floor() as usize;
        let peak = log.max_requests_in_window(Duration::from_secs(1));
        assert!(peak <= allowed, "{}: {peak} requests in 1 s, allowed {allowed}", h.label());
    }
}

#[test]
fn delay_mode_limiters_never_queue_more_than_the_in_flight_cap() {
    let hosts = vec![
        NginxHost::loopback(66, 2.0).burst(1).delay(),
        NginxHost::loopback(67, 2.0).burst(4).delay(),
        NginxHost::loopback(68, 8.0).burst(10).delay(),
    ];
    let (nginx, job, urls) = limited(hosts, "");
    job.download_ok(&[]);
    let logs = assert_done_once_near_the_floor(&nginx, &job, &urls);
    for (i, log) in logs.iter().enumerate() {
        let queued = log.max_in_flight();
        assert!(queued <= IN_FLIGHT_CAP, "{}: nginx held {queued} of our requests at once", nginx.host(i).label());
    }
}

#[test]
fn a_429_with_retry_after_pauses_its_host_for_that_long() {
    // Starting at 4 req/s, above every limit here with at most one request of burst, makes a
    // refusal certain on each host whatever the controller does next, so the pause is tested.
    let hosts = vec![
        NginxHost::loopback(69, 1.0).retry_after(2),
        NginxHost::loopback(70, 2.0).burst(1).retry_after(1),
        NginxHost::loopback(71, 2.0).burst(1).delay().retry_after(2),
    ];
    let (nginx, job, urls) = limited(hosts, "INITIAL_RATE_LIMIT=4\n");
    job.download_ok(&[]);
    let logs = assert_done_once_near_the_floor(&nginx, &job, &urls);
    for (i, log) in logs.iter().enumerate() {
        let h = nginx.host(i);
        let pause = Duration::from_secs(h.retry_after.unwrap().into());
        assert!(log.count_status(429) >= 1, "{}: no refusal, so nothing was tested", h.label());
        for refusal in log.iter().filter(|r| r.status == 429) {
            let told = refusal.completed.unwrap();
            let early = log.iter().find(|r| r.arrived > told + REACTION && r.arrived + PAUSE_SLACK < told + pause);
            if let Some(r) = early {
                panic!(
                    "{}: a 429 at {told:?} said Retry-After {pause:?}, and {} arrived at {:?}",
                    h.label(),
                    r.path,
                    r.arrived
                );
            }
        }
    }
}

/// The two limiters a ramp cannot tell apart by its answers until the memory test after its
/// first refusal does (`src/host/memory_test.rs`): real nginx at 2 req/s with a burst of 10, and
/// at 8 req/s without burst, 30 s of URLs each. The bucket lets the test through and is climbed
/// back to slowly: at most two refusals (it had three before the test), the second 4 s or more
/// after the first, which pins its rate. The limit without burst, after a ramp of 20 requests or
/// more, is sent nothing for a second or more after its first refusal (the test's pause). How
/// near each is held is the benchmark's to measure (`make bench-politeness`): 30 s of 8 images
/// a second is enough for a busy machine's CPU to set the pace here (seen in CI: 196 s).
#[test]
fn a_slow_bucket_and_a_fast_limit_without_burst_are_told_apart_after_the_first_refusal() {
    const FLOOR: f64 = 30.0;
    let hosts = vec![NginxHost::loopback(66, 2.0).burst(10), NginxHost::loopback(67, 8.0)];
    let (nginx, job, urls) = limited_for(hosts, "", FLOOR);
    assert_eq!(job.download_ok(&[])["remaining"], 0);
    let logs = assert_done_once(&nginx, &job, &urls, None);
    let refusals =
        |log: &RequestLog| -> Vec<Duration> { log.iter().filter(|r| r.status == 429).map(|r| r.arrived).collect() };
    // Shown with --nocapture: what each host was served, 5 s at a time.
    for (i, log) in logs.iter().enumerate() {
        let served = |w: u64| log.iter().filter(|r| r.status == 200 && r.arrived.as_secs() / 5 == w).count();
        let windows: Vec<usize> = (0..12).map(served).collect();
        eprintln!("{}: 429s at {:?}, served per 5 s {windows:?}", nginx.host(i).label(), refusals(log));
    }
    let (bucket, spacing) = (&logs[0], &logs[1]);
    let refused = refusals(bucket);
    assert!((1..=2).contains(&refused.len()), "2 req/s, burst 10: refused at {refused:?}");
    if let [first, second] = refused[..] {
        assert!(second - first >= Duration::from_secs(4), "2 req/s, burst 10: refused at {refused:?}");
    }
    let refused = refusals(spacing);
    let ramp = spacing.iter().take_while(|r| r.status != 429).filter(|r| r.path != "/robots.txt").count();
    if ramp >= 20 {
        let next = spacing.iter().map(|r| r.arrived).find(|a| *a > refused[0] + REACTION).unwrap();
        let pause = next - refused[0];
        assert!(pause >= Duration::from_secs(1), "8 req/s: the next request {pause:?} after the first 429");
    }
}

/// A server machine that pauses, as a busy or virtual one does: real nginx at 8 req/s without
/// burst is stopped (SIGSTOP) for 25 ms every 0.6 s once the memory test has found its limit
/// (its second 429). A request that reaches it in a pause is read late, and the next one, sent
/// on time, lands too close behind it for a limit without burst. The late request's answer is
/// late too, and the client holds the next one back by as much (`src/host/arrival.rs`): at most
/// one refusal over 30 s of pauses (none seen; without the guard, 4 in 10 s, and the spacing
/// widened to 148 ms), and every row is stored.
#[test]
fn a_server_that_pauses_does_not_make_a_limit_without_burst_refuse_the_next_request() {
    const FLOOR: f64 = 40.0;
    const PAUSE: Duration = Duration::from_millis(25);
    const EVERY: Duration = Duration::from_millis(600);
    let (nginx, job, urls) = limited_for(vec![NginxHost::loopback(72, 8.0)], "", FLOOR);
    let pid = nginx.pid().expect("nginx runs") as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let pauser = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut started = None;
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Some(_) = started else {
                    if nginx.log(0).count_status(429) >= 2 {
                        started = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                // SAFETY: kill(2) on the nginx child this test started and still owns.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                std::thread::sleep(PAUSE);
                // SAFETY: as above; the server goes on.
                unsafe { libc::kill(pid, libc::SIGCONT) };
                std::thread::sleep(EVERY - PAUSE);
            }
            (nginx, started)
        })
    };
    let result = job.download(&[]);
    done.store(true, Ordering::Relaxed);
    let (nginx, started) = pauser.join().expect("the pausing thread");
    assert!(result.status.success(), "download failed: {}", stderr(&result));
    let log = assert_done_once(&nginx, &job, &urls, None).remove(0);
    let started = started.expect("the memory test's second 429 came") - nginx.started_at();
    let refused: Vec<Duration> = log.iter().filter(|r| r.status == 429).map(|r| r.arrived).collect();
    let gaps: Vec<f64> = log
        .iter()
        .filter(|r| r.arrived > started)
        .map(|r| r.arrived.as_secs_f64())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert!(gaps.len() >= 20, "{} requests after the pauses began at {started:?}: nothing to judge", gaps.len());
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let usual = sorted[sorted.len() / 2];
    let late = gaps.iter().filter(|g| **g >= usual + 0.010).count();
    eprintln!("pauses from {started:?}; 429s at {refused:?}; usual gap {usual:.3} s; {late} gaps 10 ms or more longer");
    assert!(late >= 4, "only {late} requests reached nginx late: the pauses tested nothing");
    let after = refused.iter().filter(|t| **t > started).count();
    assert!(after <= 1, "{after} refusals while nginx paused: 429s at {refused:?} (pauses from {started:?})");
}
