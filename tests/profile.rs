//! `profile` against the test origin: what each server saw while it was profiled, what was
//! written, and what the next download does with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use polars::prelude::{ParquetReader, SerReader};
use test_origin::{Behaviour, HostSpec, Origin, RetryAfterForm, RobotsFile};

use crate::download::{job, Job, FAST};
use crate::util::*;

/// `n` image URLs on each host of `origin`.
fn image_urls(origin: &Origin, n: usize) -> Vec<String> {
    (0..origin.len()).flat_map(|h| (0..n).map(move |i| origin.url(h, &format!("/img/w64-h48-{i}.jpg")))).collect()
}

/// Runs `profile` on the job's output with `extra` flags.
fn profile(j: &Job, extra: &[&str]) -> Output {
    let mut args = vec!["--config", j.config.to_str().unwrap(), "profile", "-o", j.out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn profile_ok(j: &Job, extra: &[&str]) -> String {
    let out = profile(j, extra);
    assert!(out.status.success(), "profile failed: {:?}\n{}", out.status, stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server key of the origin host at `127.0.0.<octet>`, as prep named it.
fn server(out: &Path, octet: u8) -> String {
    let prefix = format!("127.0.0.{octet}_");
    read_servers(out).into_keys().find(|k| k.starts_with(&prefix)).unwrap_or_else(|| panic!("no server {prefix}*"))
}

/// `<out>/profile/<server>.json`.
fn result(out: &Path, octet: u8) -> serde_json::Value {
    let path = out.join("profile").join(format!("{}.json", server(out, octet)));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn notes(r: &serde_json::Value) -> String {
    r["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect::<Vec<_>>().join("; ")
}

/// servers.parquet as server -> (initial_rate_limit, profiled_at).
fn table(out: &Path) -> BTreeMap<String, (f64, Option<String>)> {
    let df = ParquetReader::new(std::fs::File::open(out.join("servers.parquet")).unwrap()).finish().unwrap();
    let names = df.column("server_name").unwrap().str().unwrap().clone();
    let rates = df.column("initial_rate_limit").unwrap().f64().unwrap().clone();
    let at = df.column("profiled_at").unwrap().str().unwrap().clone();
    (0..df.height())
        .map(|i| (names.get(i).unwrap().to_string(), (rates.get(i).unwrap(), at.get(i).map(str::to_string))))
        .collect()
}

/// The shortest gap between the starts of two requests host `h` received (robots.txt included).
fn min_gap(origin: &Origin, h: usize) -> Duration {
    let at: Vec<Duration> = origin.log(h).iter().map(|r| r.arrived).collect();
    at.windows(2).map(|w| w[1].saturating_sub(w[0])).min().unwrap_or(Duration::MAX)
}

#[test]
fn profile_sends_few_spaced_samples_and_starts_each_server_at_what_it_showed() {
    let origin = Origin::start(vec![
        HostSpec::loopback(120, Behaviour::Ok),
        HostSpec::loopback(121, Behaviour::Slow { delay: Duration::from_millis(1000) }),
        HostSpec::loopback(122, Behaviour::Ok).with_robots(RobotsFile::Text("User-agent: *\nCrawl-delay: 2\n".into())),
        HostSpec::loopback(123, Behaviour::Forbidden),
    ])
    .unwrap();
    // INITIAL_RATE_LIMIT=0.8, not the default 1: the forbidden host's start is seen to be it.
    let j = job(&image_urls(&origin, 5), 100, &format!("{FAST}INITIAL_RATE_LIMIT=0.8\n"));
    let stdout = profile_ok(&j, &["--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(report["profiled"].as_array().unwrap().len(), 4, "{report}");
    assert_eq!(report["servers"].as_array().unwrap().len(), 4, "{report}");

    for h in 0..4 {
        let log = origin.log(h);
        assert_eq!(log.count_path("/robots.txt"), 1, "host {h}: robots.txt asked once");
        assert_eq!(log.without_robots().len(), 3, "host {h}: PROFILE_SAMPLES=3 images, no more: {log:?}");
        // The origin stamps arrivals; a few ms of scheduling jitter is allowed.
        let floor = if h == 2 { Duration::from_millis(1950) } else { Duration::from_millis(950) };
        assert!(min_gap(&origin, h) >= floor, "host {h}: requests {:?} apart", min_gap(&origin, h));
    }

    let (fast, slow, delayed, forbidden) =
        (result(&j.out, 120), result(&j.out, 121), result(&j.out, 122), result(&j.out, 123));
    assert_eq!(fast["statuses"], serde_json::json!(["200", "200", "200"]));
    assert_eq!((fast["robots_status"].as_str(), fast["samples_sent"].as_u64()), (Some("404"), Some(3)));
    let rate = |r: &serde_json::Value| r["start_rate"].as_f64().unwrap();
    assert_eq!(rate(&fast), 0.8, "a fast host starts at INITIAL_RATE_LIMIT: {fast}");
    assert!(slow["latency_ms_median"].as_f64().unwrap() >= 1000.0, "{slow}");
    // 2 in flight / (4 × about 1 s): about 0.5 req/s, gentler than the default.
    assert!(rate(&slow) < 0.55 && notes(&slow).contains("slow answers"), "{slow}");
    assert_eq!((delayed["robots_status"].as_str(), delayed["crawl_delay"].as_f64()), (Some("200"), Some(2.0)));
    assert!(rate(&delayed) <= 0.5, "Crawl-delay 2 s: {delayed}");
    assert!(notes(&delayed).contains("Crawl-delay 2 s caps the rate at 0.5 req/s"), "{delayed}");
    assert_eq!(forbidden["statuses"], serde_json::json!(["403", "403", "403"]));
    assert!(notes(&forbidden).contains("all samples 403"), "{forbidden}");
    assert_eq!(rate(&forbidden), 0.8, "nothing learned: INITIAL_RATE_LIMIT");

    // The start rates are where the download starts: servers.parquet's initial_rate_limit.
    let servers = table(&j.out);
    for (octet, r) in [(120, &fast), (121, &slow), (122, &delayed), (123, &forbidden)] {
        let (start, at) = &servers[&server(&j.out, octet)];
        assert_eq!(*start, rate(r), "127.0.0.{octet}");
        assert_eq!(at.as_deref(), r["profiled_at"].as_str());
    }
}

#[test]
fn the_next_download_starts_at_the_profiled_rate_and_does_not_ask_robots_txt_again() {
    let origin = Origin::start(vec![HostSpec::loopback(124, Behaviour::Slow { delay: Duration::from_secs(1) })
        .with_robots(RobotsFile::Text("User-agent: *\nDisallow: /private/\n".into()))])
    .unwrap();
    // INITIAL_RATE_LIMIT=4: unprofiled, this host's download would start at 4 req/s, its first
    // requests 0.25 s apart (two in flight, each answered after 1 s). Profiled, its 1 s answers
    // start it at 2 / (4 × 1 s) = 0.5 req/s: its first two download requests are 2 s apart
    // (slow start then shortens the gaps by a quarter per answer).
    let j = job(&image_urls(&origin, 6), 100, &format!("{FAST}INITIAL_RATE_LIMIT=4\n"));
    profile_ok(&j, &[]);
    let start = result(&j.out, 124)["start_rate"].as_f64().unwrap();
    assert!((0.45..0.55).contains(&start), "{start}");
    let sampled = origin.log(0).without_robots().len();
    let summary = j.download_ok(&[]);
    assert_eq!(summary["succeeded"], 6, "{summary}");
    let log = origin.log(0);
    assert_eq!(log.count_path("/robots.txt"), 1, "the download reused profile's answer");
    let starts: Vec<Duration> = log.without_robots()[sampled..].iter().map(|r| r.arrived).collect();
    assert_eq!(starts.len(), 6);
    assert!(starts[1] - starts[0] >= Duration::from_millis(1800), "first download requests at {starts:?}");
}

#[test]
fn profile_resumes_keeps_what_it_profiled_sends_excluded_servers_nothing_and_force_profiles_again() {
    let origin =
        Origin::start(vec![HostSpec::loopback(125, Behaviour::Ok), HostSpec::loopback(126, Behaviour::Ok)]).unwrap();
    let j = job(&image_urls(&origin, 2), 100, &format!("{FAST}PROFILE_SAMPLES=1\n"));
    let excluded = server(&j.out, 126);
    std::fs::write(j.out.join("overrides.toml"), format!("[\"{excluded}\"]\nexclude = true\n")).unwrap();

    let first = profile_ok(&j, &[]);
    assert!(
        first.contains("profiled now:   1") && first.contains(&format!("excluded:       1 ({excluded})")),
        "{first}"
    );
    assert_eq!(origin.log(0).len(), 2, "robots.txt and one sample");
    assert!(origin.log(1).is_empty(), "an excluded server is sent nothing: {:?}", origin.log(1));
    assert_eq!(table(&j.out)[&excluded].1, None, "and has no profile");

    let again = profile_ok(&j, &[]);
    assert!(again.contains("profiled now:   0") && again.contains("kept:           1"), "{again}");
    assert_eq!((origin.log(0).len(), origin.log(1).len()), (2, 0), "a second profile sends nothing");

    let forced = profile_ok(&j, &["--force"]);
    assert!(forced.contains("profiled now:   1"), "{forced}");
    let log = origin.log(0);
    assert_eq!(log.without_robots().len(), 2, "--force samples again");
    assert_eq!(log.count_path("/robots.txt"), 1, "robots.txt's answer is kept (ROBOTS_CACHE_HOURS)");
    assert!(origin.log(1).is_empty());
}

#[test]
fn a_robots_txt_that_says_not_now_holds_every_sample_and_a_refusal_ends_sampling() {
    let origin = Origin::start(vec![
        HostSpec::loopback(127, Behaviour::Ok).with_robots(RobotsFile::Status(503)),
        HostSpec::loopback(128, Behaviour::Dead),
        // One request per 2 s: the first sample is served, the second (1 s later) refused.
        HostSpec::loopback(
            129,
            Behaviour::RateLimited { per_second: 0.5, retry_after: Some(RetryAfterForm::Seconds(2)) },
        ),
    ])
    .unwrap();
    let j = job(&image_urls(&origin, 4), 100, FAST);
    profile_ok(&j, &[]);

    let held = result(&j.out, 127);
    assert_eq!(origin.log(0).statuses(), [503], "robots.txt once, no sample");
    assert_eq!((held["robots_status"].as_str(), held["samples_sent"].as_u64()), (Some("503"), Some(0)));
    assert!(notes(&held).contains("robots.txt answered 503: download will wait for it"), "{held}");
    assert_eq!(held["start_rate"].as_f64(), Some(1.0));
    assert!(
        !j.out.join("robots").join(format!("{}.json", server(&j.out, 127))).exists(),
        "a 503 is not an answer to keep"
    );

    let dead = result(&j.out, 128);
    assert!(dead["robots_status"].as_str().unwrap().starts_with("unreachable ("), "{dead}");
    assert!(notes(&dead).contains("robots.txt unreachable (connect): download will wait for it"), "{dead}");
    assert_eq!(dead["samples_sent"].as_u64(), Some(0));

    let limited = origin.log(2).without_robots();
    assert_eq!(limited.statuses(), [200, 429], "sampling stops at the refusal");
    let refused = result(&j.out, 129);
    assert!(notes(&refused).contains("refused a sample (429)"), "{refused}");
    assert_eq!(refused["start_rate"].as_f64(), Some(0.5), "half of one sample a second");
}

#[test]
fn on_two_ranks_every_server_is_profiled_exactly_once_and_rank_0_merges_them_all() {
    let origin = Origin::start((130..135).map(|h| HostSpec::loopback(h, Behaviour::Ok)).collect()).unwrap();
    let j = job(&image_urls(&origin, 2), 100, &format!("{FAST}PROFILE_SAMPLES=1\n"));
    let (cfg, out) = (j.config.to_str().unwrap(), j.out.to_str().unwrap());
    let o = mpirun(2, &["--config", cfg, "profile", "-o", out, "--json"]);
    assert!(o.status.success(), "{}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    for h in 0..origin.len() {
        let log = origin.log(h);
        assert_eq!((log.count_path("/robots.txt"), log.without_robots().len()), (1, 1), "host {h}: {log:?}");
    }
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("rank 0 alone prints one JSON report");
    assert_eq!(report["profiled"].as_array().unwrap().len(), 5, "{report}");
    let servers = table(&j.out);
    assert!(servers.values().all(|(_, at)| at.is_some()), "every rank's profiles are merged: {servers:?}");
}

#[test]
fn profile_without_a_prep_output_says_to_run_prep_and_without_a_contact_asks_for_one() {
    let dir = tempdir();
    let out = dir.path().to_str().unwrap();
    let o = run(&["profile", "-o", out, "--contact", "tests@example.org"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("servers.parquet is missing") && stderr(&o).contains("prep"), "{}", stderr(&o));
    let o = run(&["profile", "-o", out]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--contact"), "{}", stderr(&o));
}
