//! What an operator says about crawlers, asserted by what the servers saw: opt-out headers.

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, records, FAST};

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
    assert_eq!(origin.log(0).len(), 2);

    // OPT_OUT_TAGS=none stores them all.
    let j = job(&urls(&origin, 0, &["/img/w64-h48-2.jpg"]), 100, &format!("{FAST}OPT_OUT_TAGS=none\n"));
    assert_eq!(j.download_ok(&[])["succeeded"], 1);
}
