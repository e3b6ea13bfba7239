//! Which redirects a download follows, judged by what the servers saw. Only loopback
//! addresses: a public-looking name is pinned to one with `RESOLVE`.

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records};

#[test]
fn a_public_name_cannot_redirect_the_crawl_into_local_addresses_and_a_local_origin_still_can() {
    let target = Origin::start(vec![HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let to = target.base_url(0).to_string();
    let movers = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::RedirectTo { to: to.clone() }),
        HostSpec::loopback(4, Behaviour::RedirectTo { to }),
    ])
    .unwrap();
    // museum.example.org is the public host; 127.0.0.4 a local origin.
    let public = movers.addr(0);
    let named: Vec<String> =
        (0..4).map(|i| format!("http://museum.example.org:{}/img/w64-h48-{i}.jpg", public.port())).collect();
    let local: Vec<String> = (10..14).map(|i| movers.url(1, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let urls: Vec<String> = named.iter().chain(&local).cloned().collect();
    let config = format!("RESOLVE=museum.example.org={}\nBACKOFF_BASE_SECS=0.05\n", public.ip());
    let job = job(&urls, 100, &config);
    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);

    let mut stored: Vec<&str> = ok.iter().map(|r| r.url.as_str()).collect();
    stored.sort();
    assert_eq!(
        stored,
        local.iter().map(String::as_str).collect::<Vec<_>>(),
        "the local origin's redirects are followed"
    );
    assert_eq!(failed.len(), 4, "{summary}");
    for f in &failed {
        assert!(named.contains(&f.url), "{f:?}");
        assert_eq!((f.error_class.as_str(), f.retriable), ("redirect", false), "{f:?}");
        assert!(
            f.detail.contains("from the public host museum.example.org into the local address 127.0.0.3"),
            "the record says why: {}",
            f.detail
        );
    }
    // The public host was asked for each image once; the local target saw only the local
    // origin's four.
    assert_eq!(movers.log(0).without_robots().into_vec().len(), 4);
    let seen = target.log(0).without_robots().into_vec();
    assert_eq!(seen.len(), 4, "only the local origin's redirects reached the target: {seen:?}");
}
