//! Which redirects a download follows, and how it treats the server a redirect leads to,
//! judged by what the servers saw. Only loopback addresses: a public-looking name is pinned to
//! one with `RESOLVE`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use test_origin::nginx::{Nginx, NginxHost};
use test_origin::{Behaviour, HostSpec, Origin, RobotsFile};

use crate::download::{assert_each_url_once, job, records, FAST};
use crate::nginx::nginx_bin;
use crate::util::{bin, stderr};

/// The server key of an origin's host `i`: its address and port, as prep writes it.
fn key(origin: &Origin, i: usize) -> String {
    let a = origin.addr(i);
    format!("{}_{}", a.ip(), a.port())
}

#[test]
fn a_redirect_to_another_server_obeys_that_servers_robots_txt() {
    let disallow_all = RobotsFile::Text("User-agent: *\nDisallow: /\n".into());
    let target = Origin::start(vec![HostSpec::loopback(3, Behaviour::Ok).with_robots(disallow_all)]).unwrap();
    let mover =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::RedirectTo { to: target.base_url(0).to_string() })])
            .unwrap();
    let urls: Vec<String> = (0..10).map(|i| mover.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 100, FAST);
    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert!(ok.is_empty(), "nothing may come from a server whose robots.txt disallows it: {summary}");
    for f in &failed {
        assert_eq!((f.error_class.as_str(), f.retriable), ("robots", false), "{f:?}");
        assert!(
            f.detail.contains(&format!("redirected to {}", target.base_url(0))),
            "the record says where: {}",
            f.detail
        );
    }
    let seen = target.log(0);
    assert_eq!(seen.count_path("/robots.txt"), 1, "the target's robots.txt is asked once: {seen:?}");
    assert!(seen.without_robots().is_empty(), "no image request reached the target: {seen:?}");
    assert_eq!(mover.log(0).without_robots().len(), 10, "each row asked its own server once");
}

#[test]
fn a_redirect_to_another_server_goes_at_that_servers_pace_and_the_row_says_where_it_led() {
    let target = Origin::start(vec![HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let mover =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::RedirectTo { to: target.base_url(0).to_string() })])
            .unwrap();
    let paths: Vec<String> = (0..8).map(|i| format!("/img/w64-h48-{i}.jpg")).collect();
    let urls: Vec<String> = paths.iter().map(|p| mover.url(0, p)).collect();
    // A server reached by redirects is asked at most INITIAL_RATE_LIMIT times a second (one
    // rank): 4 here, a request every 250 ms.
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=4\n"));
    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert_eq!(ok.len(), 8, "{summary}");
    for r in &ok {
        let path = r.url.strip_prefix(mover.base_url(0)).expect("a mover URL");
        assert_eq!(r.final_url, target.url(0, path), "the record holds where the image came from");
        assert_eq!(r.redirects, 1);
        assert_eq!(r.server, key(&mover, 0), "the row stays with the server of its URL");
    }
    let seen = target.log(0);
    assert_eq!(seen.count_path("/robots.txt"), 1, "the target's robots.txt first, once: {seen:?}");
    assert_eq!(seen[0].path, "/robots.txt", "before any image: {seen:?}");
    assert_eq!(seen.without_robots().len(), 8);
    assert_eq!(seen.max_in_flight(), 1, "one request at a time");
    for pair in seen.windows(2) {
        let gap = pair[1].arrived.saturating_sub(pair[0].arrived);
        // 250 ms apart, less what a loopback scheduler can blur.
        assert!(gap >= Duration::from_millis(225), "the target was asked {gap:?} apart: {seen:?}");
    }
    // The robots.txt answer is kept like any host's, so other ranks and the next run reuse it.
    assert!(job.out.join("robots").join(format!("{}.json", key(&target, 0))).exists());
}

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

#[test]
fn a_public_name_cannot_lead_the_crawl_into_local_addresses_through_a_name_either() {
    let target = Origin::start(vec![HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    // cdn.example.net resolves (by RESOLVE, as a DNS could) to the local target's address.
    let to = format!("http://cdn.example.net:{}", target.addr(0).port());
    let mover = Origin::start(vec![HostSpec::loopback(2, Behaviour::RedirectTo { to })]).unwrap();
    let public = mover.addr(0);
    let urls: Vec<String> =
        (0..4).map(|i| format!("http://museum.example.org:{}/img/w64-h48-{i}.jpg", public.port())).collect();
    let config = format!("{FAST}RESOLVE=museum.example.org={},cdn.example.net={}\n", public.ip(), target.addr(0).ip());
    let job = job(&urls, 100, &config);
    let summary = job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert!(ok.is_empty(), "{summary}");
    for f in &failed {
        assert_eq!((f.error_class.as_str(), f.retriable), ("redirect", false), "{f:?}");
        assert!(f.detail.contains("cdn.example.net resolves only to local addresses (127.0.0.3)"), "{}", f.detail);
    }
    assert!(target.log(0).is_empty(), "nothing reached the local address, not even robots.txt: {:?}", target.log(0));
}

/// A throwaway certificate authority and a server certificate for `name` it signed, made with
/// the openssl command: (the authority's certificate, the server's certificate, its key).
fn test_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(f);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/setup.sh installs it)");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=dd test CA"],
        ]
        .concat(),
    );
    openssl(
        &[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", &format!("/CN={name}")]]
            .concat(),
    );
    std::fs::write(
        p("server.ext"),
        format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

#[test]
fn an_https_server_cannot_redirect_the_crawl_down_to_http() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_certificate(certs.path(), "secure.example.org");
    let target = Origin::start(vec![HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    // A real nginx over TLS, answering every image with a 302 to the plain-http target.
    let host = NginxHost::loopback(9, 100.0).tls(&cert, &key).redirect_to(target.base_url(0));
    let nginx = Nginx::start_with(&nginx_bin(), vec![host]).unwrap();
    let addr = nginx.addr(0);
    let urls: Vec<String> =
        (0..3).map(|i| format!("https://secure.example.org:{}/img/w64-h48-{i}.jpg", addr.port())).collect();
    let job = job(&urls, 100, &format!("{FAST}RESOLVE=secure.example.org={}\n", addr.ip()));
    // The client trusts the system's authorities; SSL_CERT_FILE names the test's instead.
    let (cfg, out) = (job.config.to_str().unwrap(), job.out.to_str().unwrap());
    let o = bin().args(["--config", cfg, "download", "-o", out, "--json"]).env("SSL_CERT_FILE", &ca).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert!(ok.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
    for f in &failed {
        assert_eq!((f.error_class.as_str(), f.retriable), ("redirect", false), "{f:?}");
        assert!(f.detail.contains("from https to http"), "the record says why: {}", f.detail);
    }
    let seen = nginx.log(0);
    assert_eq!(seen.count_path("/robots.txt"), 1, "robots.txt was read over TLS: {seen:?}");
    assert_eq!(seen.count_status(302), 3, "each image asked once over TLS and redirected: {seen:?}");
    assert!(target.log(0).is_empty(), "nothing went to the plain-http target: {:?}", target.log(0));
}
