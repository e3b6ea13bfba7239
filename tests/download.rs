//! `download` end to end against the test origin: what the servers saw, and what is on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use distributed_downloader::store::shards::hdf5_io::read_shard;
use distributed_downloader::store::shards::record::{FailureRecord, SuccessRecord};
use test_origin::{images, Behaviour, HostSpec, Origin, RetryAfterForm};

use crate::util::*;

/// Config lines that keep tests fast: quick backoff and parking, a small request deadline.
pub(crate) const FAST: &str =
    "BACKOFF_BASE_SECS=0.05\nPARK_SECS=0.05\nREQUEST_TIMEOUT_SECS=5\nCONNECT_TIMEOUT_SECS=2\n";

/// A prepped output folder for `urls`, with a config file of `config` lines.
pub(crate) struct Job {
    _dir: tempfile::TempDir,
    pub(crate) out: PathBuf,
    pub(crate) config: PathBuf,
}

pub(crate) fn job(urls: &[String], batch_size: usize, config: &str) -> Job {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(&input, format!("url\n{}\n", urls.join("\n"))).unwrap();
    let out = dir.path().join("out");
    // One config file for every step, as a user would: prep writes INITIAL_RATE_LIMIT into the
    // servers table, which is where the download starts from.
    let config_path = dir.path().join("job.env");
    std::fs::write(&config_path, format!("CONTACT=tests@example.org\n{config}")).unwrap();
    let (cfg, batch) = (config_path.to_str().unwrap(), batch_size.to_string());
    run_ok(&[
        "--config",
        cfg,
        "prep",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--batch-size",
        &batch,
    ]);
    Job { _dir: dir, out, config: config_path }
}

impl Job {
    pub(crate) fn download(&self, extra: &[&str]) -> Output {
        let mut args =
            vec!["--config", self.config.to_str().unwrap(), "download", "-o", self.out.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        run(&args)
    }

    /// Starts `download` in the background with stdout discarded; stderr as given.
    pub(crate) fn spawn(&self, stderr: std::process::Stdio) -> std::process::Child {
        bin()
            .args(["--config", self.config.to_str().unwrap(), "download", "-o", self.out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    pub(crate) fn download_ok(&self, extra: &[&str]) -> serde_json::Value {
        let out = self.download(extra);
        assert!(out.status.success(), "download failed: {:?}\n{}", out.status, stderr(&out));
        serde_json::from_slice(&out.stdout).expect("summary JSON on stdout")
    }
}

/// Every committed record under `out`.
pub(crate) fn records(out: &Path) -> (Vec<SuccessRecord>, Vec<FailureRecord>) {
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for shard in shard_files(out) {
        let c = read_shard(&shard).unwrap();
        ok.extend(c.successes);
        failed.extend(c.failures);
    }
    (ok, failed)
}

pub(crate) fn shard_files(out: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![out.join("downloads")];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "h5") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

pub(crate) fn assert_each_url_once(urls: &[String], ok: &[SuccessRecord], failed: &[FailureRecord]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for u in ok.iter().map(|r| r.url.as_str()).chain(failed.iter().map(|r| r.url.as_str())) {
        *seen.entry(u).or_default() += 1;
    }
    for u in urls {
        assert_eq!(seen.get(u.as_str()), Some(&1), "{u} must have exactly one record");
    }
    assert_eq!(seen.len(), urls.len());
}

#[test]
fn every_row_ends_in_exactly_one_record_with_the_right_class() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Ok),
        HostSpec::loopback(3, Behaviour::NotFound),
        HostSpec::loopback(4, Behaviour::Corrupt),
        HostSpec::loopback(5, Behaviour::Html),
        HostSpec::loopback(6, Behaviour::Bomb),
        HostSpec::loopback(7, Behaviour::Huge { bytes: 3 << 20 }),
        HostSpec::loopback(8, Behaviour::Truncated),
    ])
    .unwrap();
    let mut urls = Vec::new();
    for host in 0..origin.len() {
        for i in 0..3 {
            urls.push(origin.url(host, &format!("/img/w320-h240-{i}.jpg")));
        }
    }
    let job = job(&urls, 2, &format!("{FAST}MAX_BODY_MB=1\nINITIAL_RATE_LIMIT=20\n"));
    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert_eq!(ok.len(), 3, "only the healthy host's images are stored");
    let class_of = |host: usize| -> Vec<String> {
        let base = origin.base_url(host).to_string();
        failed.iter().filter(|f| f.url.starts_with(&base)).map(|f| f.error_class.clone()).collect()
    };
    assert_eq!(class_of(1), vec!["http_4xx"; 3]);
    assert_eq!(class_of(2), vec!["decode"; 3]);
    assert_eq!(class_of(3), vec!["not_image"; 3]);
    assert_eq!(class_of(4), vec!["too_many_pixels"; 3]);
    assert_eq!(class_of(5), vec!["too_large"; 3]);
    assert_eq!(class_of(6), vec!["decode"; 3]);
    assert_eq!(summary["remaining"], 0);
    assert_eq!(summary["succeeded"], 3);
    assert_eq!(summary["failed"], 18);
    // The server saw who we are.
    let ua = origin.log(0)[0].user_agent.clone().unwrap();
    let expected = format!("distributed-downloader/{} (contact: tests@example.org)", env!("CARGO_PKG_VERSION"));
    assert_eq!(ua, expected, "product token, version and the operator's contact, and no page that is not theirs");
}

#[test]
fn stored_images_are_resized_and_hashes_are_of_the_original_bytes() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let (big, small) = ("/img/w3000-h2000-1.jpg", "/img/w800-h600-2.jpg");
    let urls = vec![origin.url(0, big), origin.url(0, small)];
    let job = job(&urls, 10, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert!(failed.is_empty(), "{failed:?}");
    let by_url: HashMap<&str, &SuccessRecord> = ok.iter().map(|r| (r.url.as_str(), r)).collect();
    let b = by_url[urls[0].as_str()];
    assert_eq!((b.original_width, b.original_height), (3000, 2000));
    assert_eq!((b.stored_width, b.stored_height), (1024, 683), "aspect ratio kept");
    let decoded = image::load_from_memory(&b.data).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1024, 683));
    assert_eq!(b.sha256, images::served_sha256(big).unwrap());
    let s = by_url[urls[1].as_str()];
    assert_eq!((s.stored_width, s.stored_height), (800, 600), "never enlarged");
    assert_eq!(s.data, *images::served_bytes(small).unwrap(), "small JPEGs are kept byte for byte");
    assert_eq!(s.md5, "", "no MD5 unless MD5=on");
}

#[test]
fn md5_of_the_original_is_stored_when_asked_for() {
    use md5::{Digest, Md5};
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let path = "/img/w1600-h1200-7.jpg";
    let urls = vec![origin.url(0, path)];
    let job = job(&urls, 10, &format!("{FAST}MD5=on\n"));
    job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert!(failed.is_empty(), "{failed:?}");
    let expected: String =
        Md5::digest(images::served_bytes(path).unwrap().as_slice()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ok[0].md5, expected, "MD5 of the downloaded bytes, not of the stored JPEG");
    assert_eq!(ok[0].sha256, images::served_sha256(path).unwrap());
}

#[test]
fn per_host_rate_and_in_flight_stay_within_the_limits_the_server_measures() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Slow { delay: Duration::from_millis(300) }),
        HostSpec::loopback(3, Behaviour::Ok),
    ])
    .unwrap();
    let mut urls = Vec::new();
    for host in 0..2 {
        for i in 0..25 {
            urls.push(origin.url(host, &format!("/img/w64-h48-{i}.jpg")));
        }
    }
    let job = job(&urls, 10, &format!("{FAST}INITIAL_RATE_LIMIT=8\nMAX_RATE_LIMIT=8\nMAX_IN_FLIGHT_PER_HOST=2\n"));
    job.download_ok(&[]);
    for host in 0..2 {
        let log = origin.log(host);
        assert_eq!(log.count_status(200), 25);
        assert!(log.max_in_flight() <= 2, "host {host}: {} in flight at once", log.max_in_flight());
        // 8 req/s with no burst: at most 8 arrivals in any 1 s window (9 counting both ends).
        let window = log.max_requests_in_window(Duration::from_secs(1));
        assert!(window <= 9, "host {host}: {window} requests within 1 s");
    }
}

#[test]
fn retry_after_is_obeyed_and_the_limit_is_learned() {
    let origin = Origin::start(vec![HostSpec::loopback(
        2,
        Behaviour::RateLimited { per_second: 2.0, retry_after: Some(RetryAfterForm::Seconds(2)) },
    )])
    .unwrap();
    let urls: Vec<String> = (0..24).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=4\nMAX_RATE_LIMIT=10\n"));
    let summary = job.download_ok(&[]);
    assert_eq!(summary["succeeded"], 24);
    let log = origin.log(0);
    let refusals: Vec<_> = log.iter().filter(|r| r.status == 429).collect();
    assert!(!refusals.is_empty(), "starting at 4 req/s against 2 req/s must meet a 429");
    assert!(refusals.len() <= 2, "the limit is learned after the first refusal: {} refusals", refusals.len());
    for r in &refusals {
        let next = log.iter().filter(|x| x.arrived > r.arrived).map(|x| x.arrived).min();
        if let Some(next) = next {
            let gap = next - r.arrived;
            assert!(gap >= Duration::from_millis(1900), "a request came {gap:?} after a 429 with Retry-After: 2");
        }
    }
}

#[test]
fn a_404_is_not_retried_and_a_flaky_503_is() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::NotFound),
        HostSpec::loopback(3, Behaviour::Flaky503 { every: 3 }),
    ])
    .unwrap();
    let mut urls: Vec<String> = (0..5).map(|i| origin.url(0, &format!("/img/{i}.jpg"))).collect();
    urls.extend((0..9).map(|i| origin.url(1, &format!("/img/w64-h48-{i}.jpg"))));
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let summary = job.download_ok(&[]);
    assert_eq!(origin.log(0).without_robots().len(), 5, "each 404 asked once");
    assert_eq!(summary["succeeded"], 9, "every 503 was retried to success");
    assert!(origin.log(1).count_status(503) >= 3);
}

#[test]
fn a_dead_host_is_parked_then_recorded_and_others_finish() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Dead), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let mut urls: Vec<String> = (0..4).map(|i| origin.url(0, &format!("/img/{i}.jpg"))).collect();
    urls.extend((0..4).map(|i| origin.url(1, &format!("/img/w64-h48-{i}.jpg"))));
    let job = job(&urls, 2, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"));
    let t = Instant::now();
    let summary = job.download_ok(&[]);
    assert!(t.elapsed() < Duration::from_secs(60), "took {:?}", t.elapsed());
    assert_eq!(summary["succeeded"], 4);
    assert_eq!(summary["remaining"], 0, "the dead host's rows are recorded, not lost");
    let (_, failed) = records(&job.out);
    assert_eq!(failed.len(), 4);
    assert!(
        failed.iter().all(|f| f.retriable && (f.error_class == "parked" || f.error_class == "connect")),
        "{failed:?}"
    );
}

#[test]
fn a_second_run_with_nothing_left_says_so_and_fetches_nothing() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..3).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    assert_eq!(origin.log(0).without_robots().len(), 3);
    let asked = origin.log(0).len();
    let out = job.download(&[]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("nothing left to do"), "{}", stderr(&out));
    assert_eq!(origin.log(0).len(), asked, "no request in the second run, not even robots.txt");
}

#[test]
fn download_refuses_to_start_without_a_contact() {
    let dir = tempdir();
    let input = dir.path().join("list.csv");
    std::fs::write(&input, "url\nhttp://127.0.0.2:9/x.jpg\n").unwrap();
    let out = dir.path().join("out");
    run_ok(&["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let o = run(&["download", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("contact"), "{}", stderr(&o));
    assert!(!out.join("downloads").exists());
}

#[test]
fn kill_9_then_resume_loses_and_duplicates_nothing() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Slow { delay: Duration::from_millis(20) })]).unwrap();
    let urls: Vec<String> = (0..120).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 10, &format!("{FAST}INITIAL_RATE_LIMIT=40\nMAX_RATE_LIMIT=40\n"));
    let mut child = job.spawn(std::process::Stdio::null());
    let t = Instant::now();
    while shard_files(&job.out).len() < 3 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (ok_before, _) = records(&job.out);
    assert!(ok_before.len() >= 30 && ok_before.len() < 120, "killed mid-run: {} committed", ok_before.len());
    let requests_before = origin.log(0).without_robots().len();

    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert!(failed.is_empty(), "{failed:?}");
    assert_each_url_once(&urls, &ok, &failed);
    assert_eq!(summary["duplicates"], 0);
    let refetched = origin.log(0).without_robots().len() - requests_before;
    assert_eq!(refetched, 120 - ok_before.len(), "only uncommitted rows are fetched again");
    let committed_before: BTreeMap<&str, &str> =
        ok_before.iter().map(|r| (r.uuid.as_str(), r.sha256.as_str())).collect();
    for r in &ok {
        if let Some(sha) = committed_before.get(r.uuid.as_str()) {
            assert_eq!(*sha, r.sha256, "a committed image is kept as it was");
        }
    }
}

#[test]
fn a_deadline_75_s_away_at_default_timeouts_stores_images_cuts_a_stuck_transfer_and_ends_before_it() {
    // The stuck host answers after 100 s: its transfers are still running at the cut.
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Ok),
        HostSpec::loopback(3, Behaviour::Slow { delay: Duration::from_secs(100) }),
    ])
    .unwrap();
    let mut urls: Vec<String> = (0..100).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let stuck: Vec<String> = (0..4).map(|i| origin.url(1, &format!("/img/w64-h48-{i}.jpg"))).collect();
    urls.extend(stuck.iter().cloned());
    // Default request timeouts (600 s): the margin is 60 s, so 15 s of new requests.
    let job = job(&urls, 200, "INITIAL_RATE_LIMIT=2\nMAX_RATE_LIMIT=2\n");
    let started = Instant::now();
    let out = job.download(&["--deadline", "+75s"]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < Duration::from_secs(75), "ended {took:?} after the start, past its deadline");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["stopped_by_deadline"], true, "{summary}");
    let stored = summary["succeeded"].as_u64().unwrap();
    assert!(stored >= 10, "15 s at 2 req/s stores images: {summary}");
    let (ok, failed) = records(&job.out);
    assert_eq!(ok.len() as u64, stored, "every stored image is committed");
    assert!(!origin.log(1).without_robots().into_vec().is_empty(), "the stuck host was asked");
    let recorded_stuck = ok.iter().map(|r| &r.url).chain(failed.iter().map(|f| &f.url)).filter(|u| stuck.contains(u));
    assert_eq!(recorded_stuck.count(), 0, "a cut transfer leaves its row pending, with no record");
    assert_eq!(summary["remaining"].as_u64().unwrap(), 104 - stored - failed.len() as u64);
    assert!(stderr(&out).contains("cutting"), "the cut is said: {}", stderr(&out));
}

#[test]
fn the_deadline_stops_cleanly_and_the_next_run_finishes() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..40).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    // 2 req/s; the stop comes at deadline - (request timeout 1 s + 30 s commit margin) = ~3 s.
    let job = job(&urls, 10, "REQUEST_TIMEOUT_SECS=1\nINITIAL_RATE_LIMIT=2\nMAX_RATE_LIMIT=2\n");
    let summary = job.download_ok(&["--deadline", "+34s"]);
    assert_eq!(summary["stopped_by_deadline"], true);
    let remaining = summary["remaining"].as_u64().unwrap();
    assert!(remaining > 0 && remaining < 40, "{summary}");
    let (ok, _) = records(&job.out);
    assert_eq!(ok.len() as u64, 40 - remaining, "everything fetched before the stop was committed");
    let job2 = Job { _dir: tempdir(), out: job.out.clone(), config: job.config.clone() };
    let config = std::fs::read_to_string(&job.config)
        .unwrap()
        .replace("INITIAL_RATE_LIMIT=2\nMAX_RATE_LIMIT=2", "INITIAL_RATE_LIMIT=20\nMAX_RATE_LIMIT=20");
    std::fs::write(&job2.config, config).unwrap();
    let done = job2.download_ok(&[]);
    assert_eq!(done["remaining"], 0);
    assert_eq!(done["succeeded"], 40);
}

#[test]
fn redirects_are_followed_up_to_five_hops_and_an_http_date_retry_after_is_obeyed() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Redirect { hops: 3 }),
        HostSpec::loopback(3, Behaviour::Redirect { hops: 7 }),
        HostSpec::loopback(
            4,
            Behaviour::RateLimited { per_second: 1.0, retry_after: Some(RetryAfterForm::HttpDate { seconds: 2 }) },
        ),
    ])
    .unwrap();
    let mut urls: Vec<String> = (0..2).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    urls.push(origin.url(1, "/img/w64-h48-9.jpg"));
    urls.extend((0..4).map(|i| origin.url(2, &format!("/img/w64-h48-{i}.jpg"))));
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=3\n"));
    let summary = job.download_ok(&[]);
    assert_eq!(summary["succeeded"], 6, "{summary}");
    let (ok, failed) = records(&job.out);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error_class, "redirect", "7 hops is more than the 5 followed");
    for r in ok.iter().filter(|r| r.url.starts_with(origin.base_url(0))) {
        // Behaviour::Redirect's chain: /p -> /hop/1/p -> /hop/2/p -> /hop/3/p, which answers.
        let path = r.url.strip_prefix(origin.base_url(0)).unwrap();
        assert_eq!((r.final_url.clone(), r.redirects), (origin.url(0, &format!("/hop/3{path}")), 3), "{}", r.url);
    }
    for r in ok.iter().filter(|r| r.url.starts_with(origin.base_url(2))) {
        assert_eq!((r.final_url.as_str(), r.redirects), ("", 0), "an image that came from its own URL");
    }
    let log = origin.log(2);
    assert!(log.count_status(429) >= 1, "3 req/s against 1 req/s meets a 429");
    for r in log.iter().filter(|r| r.status == 429) {
        if let Some(next) = log.iter().filter(|x| x.arrived > r.arrived).map(|x| x.arrived).min() {
            // The date form has one-second resolution: the wait is at least 1 s, at most about 2.
            assert!(next - r.arrived >= Duration::from_millis(900), "came back after {:?}", next - r.arrived);
        }
    }
}

#[test]
fn slow_cpus_hold_back_the_network_instead_of_piling_up_images() {
    // One CPU thread, a 16 MB queue for bodies and 3 request slots: however fast the hosts are,
    // the servers together never see more than 3 requests at once.
    let origin = Origin::start((2..6).map(|h| HostSpec::loopback(h, Behaviour::Ok)).collect()).unwrap();
    let urls: Vec<String> = (0..24).map(|i| origin.url(i % 4, &format!("/img/w2000-h1500-{i}.jpg"))).collect();
    let config = format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\nMAX_IN_FLIGHT_PER_HOST=4\nMAX_REQUESTS_IN_FLIGHT=3\nCPU_THREADS=1\nCPU_QUEUE_MB=16\n");
    let job = job(&urls, 100, &config);
    let summary = job.download_ok(&[]);
    assert_eq!(summary["succeeded"], 24);
    let mut events: Vec<(Duration, i32)> = Vec::new();
    for h in 0..4 {
        for r in origin.log(h).iter() {
            events.push((r.arrived, 1));
            events.push((r.completed.unwrap(), -1));
        }
    }
    events.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in events {
        now += d;
        peak = peak.max(now);
    }
    assert!(peak <= 3, "{peak} requests in flight over all hosts with MAX_REQUESTS_IN_FLIGHT=3");
}

#[test]
fn learned_rates_are_written_back_and_seed_the_next_run() {
    let origin = Origin::start(vec![HostSpec::loopback(
        2,
        Behaviour::RateLimited { per_second: 3.0, retry_after: Some(RetryAfterForm::Seconds(1)) },
    )])
    .unwrap();
    let urls: Vec<String> = (0..30).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    // Starts at 8 req/s against a 3 req/s limit; the deadline stops the first run after ~4 s.
    let job =
        job(&urls, 100, "BACKOFF_BASE_SECS=0.05\nREQUEST_TIMEOUT_SECS=1\nINITIAL_RATE_LIMIT=8\nMAX_RATE_LIMIT=10\n");
    let first = job.download_ok(&["--deadline", "+35s"]);
    assert!(first["remaining"].as_u64().unwrap() > 0, "{first}");
    let refusals_first = origin.log(0).count_status(429);
    assert!(refusals_first >= 1, "8 req/s against 3 req/s meets a 429");
    use polars::prelude::SerReader;
    let servers = polars::prelude::ParquetReader::new(std::fs::File::open(job.out.join("servers.parquet")).unwrap())
        .finish()
        .unwrap();
    let learned = servers.column("learned_rate_limit").unwrap().f64().unwrap().get(0).unwrap();
    assert!(learned < 3.0, "the learned rate is under the 3 req/s limit: {learned}");
    assert!(servers.column("learned_at").unwrap().str().unwrap().get(0).unwrap().ends_with('Z'));

    // The next job starts from what was learned: without it, it would start at 8 req/s again
    // and be refused at once.
    let second = job.download_ok(&[]);
    assert_eq!(second["remaining"], 0);
    assert_eq!(origin.log(0).count_status(429), refusals_first, "no refusal in the seeded run");
}
