//! What an operator says about crawlers, asserted by what the servers saw: robots.txt (rules,
//! Crawl-delay, answers that are not rules) and opt-out headers.

use std::time::Duration;

use test_origin::{Behaviour, HostSpec, Origin, RobotsFile};

use crate::download::{job, records, FAST};
use crate::util::stderr;

/// Every URL of `paths` on host `h`.
fn urls(origin: &Origin, h: usize, paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| origin.url(h, p)).collect()
}

#[test]
fn an_x_robots_tag_opt_out_is_recorded_and_its_image_not_stored() {
    let origin = Origin::start(vec![
        HostSpec::loopback(106, Behaviour::Tagged { tag: "noai".into() }),
        HostSpec::loopback(107, Behaviour::Tagged { tag: "distributed-downloader: noimageai".into() }),
        HostSpec::loopback(108, Behaviour::Tagged { tag: "googlebot: noindex".into() }),
    ])
    .unwrap();
    let mut list = Vec::new();
    for h in 0..3 {
        list.extend(urls(&origin, h, &["/img/w64-h48-0.jpg", "/img/w64-h48-1.jpg"]));
    }
    let j = job(&list, 100, &format!("{FAST}INITIAL_RATE_LIMIT=8\n"));
    let summary = j.download_ok(&[]);
    assert_eq!(summary["failed_by_class"]["opted_out"], 4, "{summary}");
    assert_eq!(summary["succeeded"], 2, "a tag scoped to another crawler does not apply: {summary}");
    let (ok, failed) = records(&j.out);
    assert!(ok.iter().all(|r| r.url.contains("127.0.0.108")), "only the googlebot-scoped host's images are stored");
    assert!(
        failed.iter().all(|f| f.error_class == "opted_out" && !f.retriable && f.detail.contains("X-Robots-Tag")),
        "{failed:?}"
    );
    // The images were asked for once each: an opt-out is an answer, not a failure to retry.
    assert_eq!(origin.log(0).without_robots().len(), 2);

    // OPT_OUT_TAGS=none stores them all.
    let j = job(&urls(&origin, 0, &["/img/w64-h48-2.jpg"]), 100, &format!("{FAST}OPT_OUT_TAGS=none\n"));
    assert_eq!(j.download_ok(&[])["succeeded"], 1);
}

/// The shortest gap between two image requests the host received.
fn min_gap(origin: &Origin, h: usize) -> Duration {
    let mut at: Vec<Duration> = origin.log(h).without_robots().into_vec().iter().map(|r| r.arrived).collect();
    at.sort();
    at.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(Duration::MAX)
}

#[test]
fn robots_txt_rules_are_obeyed_disallowed_paths_never_requested_and_crawl_delay_kept() {
    let rules = "User-agent: *\nDisallow: /\n\n\
                 User-agent: distributed-downloader\nDisallow: /img/private/\nAllow: /img/private/open-\nCrawl-delay: 1\n";
    let origin = Origin::start(vec![
        HostSpec::loopback(110, Behaviour::Ok).with_robots(RobotsFile::Text(rules.into())),
        // No robots.txt (404): everything is allowed.
        HostSpec::loopback(111, Behaviour::Ok),
    ])
    .unwrap();
    let allowed = ["/img/w64-h48-0.jpg", "/img/w64-h48-1.jpg", "/img/private/open-w64-h48-2.jpg", "/img/w64-h48-3.jpg"];
    let disallowed = ["/img/private/w64-h48-4.jpg", "/img/private/w64-h48-5.jpg"];
    let mut list = urls(&origin, 0, &allowed);
    list.extend(urls(&origin, 0, &disallowed));
    list.extend(urls(&origin, 1, &["/img/private/w64-h48-6.jpg", "/img/w64-h48-7.jpg"]));
    // At 8 req/s the host would see requests 125 ms apart; its Crawl-delay asks for 1 s.
    let j = job(&list, 100, &format!("{FAST}INITIAL_RATE_LIMIT=8\n"));
    let summary = j.download_ok(&[]);
    assert_eq!(summary["succeeded"], 6, "{summary}");
    assert_eq!(summary["failed_by_class"]["robots"], 2, "{summary}");

    let seen: Vec<String> = origin.log(0).into_vec().into_iter().map(|r| r.path).collect();
    assert!(seen.iter().all(|p| !p.starts_with("/img/private/") || p.starts_with("/img/private/open-")), "{seen:?}");
    assert_eq!(seen.first().map(String::as_str), Some("/robots.txt"), "robots.txt comes first: {seen:?}");
    assert_eq!(origin.log(0).count_path("/robots.txt"), 1, "asked once");
    assert_eq!(origin.log(1).count_path("/robots.txt"), 1);
    assert_eq!(origin.log(1).without_robots().len(), 2, "a 404 robots.txt allows everything");
    let gap = min_gap(&origin, 0);
    // The origin stamps arrivals; a few ms of scheduling jitter is allowed.
    assert!(gap >= Duration::from_millis(950), "Crawl-delay: 1 but requests {gap:?} apart");

    let (_, failed) = records(&j.out);
    assert!(
        failed.iter().all(|f| f.error_class == "robots" && !f.retriable && f.detail.contains("robots.txt")),
        "{failed:?}"
    );
    let mut failed_urls: Vec<&str> = failed.iter().map(|f| f.url.as_str()).collect();
    failed_urls.sort();
    assert_eq!(failed_urls, urls(&origin, 0, &disallowed).iter().map(String::as_str).collect::<Vec<_>>());
    let kept = std::fs::read_dir(j.out.join("robots")).unwrap().count();
    assert_eq!(kept, 2, "each host's answer is kept in <output>/robots/");

    // The next run reuses the answer (ROBOTS_CACHE_HOURS, default 24): robots.txt is not asked again.
    let again = j.download(&["--retry-failed"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(origin.log(0).count_path("/robots.txt"), 1, "kept from the first run");
}

#[test]
fn a_robots_txt_that_fails_holds_every_image_request_until_it_answers() {
    let origin = Origin::start(vec![
        // 503 twice, then rules: no image request may arrive before the rules did.
        HostSpec::loopback(112, Behaviour::Ok).with_robots(RobotsFile::FailThenText {
            failures: 2,
            status: 503,
            text: "User-agent: *\nDisallow: /img/no-\n".into(),
        }),
        // 503 forever: nothing but robots.txt is ever asked, and the rows stay retriable.
        HostSpec::loopback(113, Behaviour::Ok).with_robots(RobotsFile::Status(503)),
    ])
    .unwrap();
    let mut list = urls(&origin, 0, &["/img/w64-h48-0.jpg", "/img/w64-h48-1.jpg", "/img/no-w64-h48-2.jpg"]);
    list.extend(urls(&origin, 1, &["/img/w64-h48-3.jpg", "/img/w64-h48-4.jpg"]));
    let j = job(&list, 100, &format!("{FAST}INITIAL_RATE_LIMIT=8\nMAX_RETRIES=2\n"));
    let summary = j.download_ok(&[]);
    assert_eq!(summary["succeeded"], 2, "{summary}");
    assert_eq!(summary["failed_by_class"]["robots"], 3, "one disallowed, two never allowed: {summary}");

    let log = origin.log(0).into_vec();
    assert_eq!(log.iter().filter(|r| r.path == "/robots.txt").count(), 3, "asked again after each 503");
    let rules_at = log.iter().filter(|r| r.path == "/robots.txt").map(|r| r.arrived).max().unwrap();
    assert!(log.iter().filter(|r| r.path != "/robots.txt").all(|r| r.arrived > rules_at), "{log:?}");
    assert!(log.iter().all(|r| r.path != "/img/no-w64-h48-2.jpg"));

    let down = origin.log(1);
    assert_eq!(down.without_robots().len(), 0, "no image request while robots.txt answers 503");
    assert_eq!(down.count_path("/robots.txt"), 3, "MAX_RETRIES=2: asked three times");
    let (_, failed) = records(&j.out);
    let held: Vec<_> = failed.iter().filter(|f| f.url.contains("127.0.0.113")).collect();
    assert!(held.len() == 2 && held.iter().all(|f| f.error_class == "robots" && f.retriable), "{held:?}");
    let disallowed: Vec<_> = failed.iter().filter(|f| f.url.contains("127.0.0.112")).collect();
    assert!(disallowed.len() == 1 && !disallowed[0].retriable, "{disallowed:?}");

    // An unanswered robots.txt is not kept for a later run: `--retry-failed` asks again (and
    // still sends no image request).
    let again = j.download(&["--retry-failed"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("robots.txt never answered"), "{}", stderr(&again));
    assert_eq!(origin.log(1).count_path("/robots.txt"), 6);
    assert_eq!(origin.log(1).without_robots().len(), 0);
    assert_eq!(origin.log(0).count_path("/robots.txt"), 3, "the answered host is not asked again");
}

#[test]
fn robots_ignore_fetches_everything_and_says_so() {
    let origin = Origin::start(vec![HostSpec::loopback(114, Behaviour::Ok)
        .with_robots(RobotsFile::Text("User-agent: *\nDisallow: /\nCrawl-delay: 30\n".into()))])
    .unwrap();
    let j =
        job(&urls(&origin, 0, &["/img/w64-h48-0.jpg", "/img/w64-h48-1.jpg"]), 100, &format!("{FAST}ROBOTS=ignore\n"));
    let out = j.download(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("WARNING: ROBOTS=ignore"), "{}", stderr(&out));
    assert_eq!(origin.log(0).count_path("/robots.txt"), 0);
    assert_eq!(origin.log(0).len(), 2);
}
