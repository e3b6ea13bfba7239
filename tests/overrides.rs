//! Per-server overrides (`<output>/overrides.toml`): what the servers saw, and that the file
//! survives `prep --force`.

use std::time::Duration;

use serde_json::Value;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, FAST};
use crate::util::{run_ok, stderr};

/// The gaps between the first `n` image requests host `h` received.
fn first_gaps(origin: &Origin, h: usize, n: usize) -> Vec<Duration> {
    let mut at: Vec<Duration> = origin.log(h).without_robots().into_vec().iter().map(|r| r.arrived).collect();
    at.sort();
    at.iter().take(n).collect::<Vec<_>>().windows(2).map(|w| *w[1] - *w[0]).collect()
}

#[test]
fn overrides_set_a_servers_start_and_cap_exclude_another_and_survive_prep_force() {
    let origin =
        Origin::start(vec![HostSpec::loopback(115, Behaviour::Ok), HostSpec::loopback(116, Behaviour::Ok)]).unwrap();
    let list: Vec<String> = (0..12).map(|i| origin.url(i % 2, &format!("/img/w64-h48-{i}.jpg"))).collect();
    // The default start is 1 req/s; the override starts host 0 at 8 (requests 125 ms apart).
    let j = job(&list, 100, &format!("{FAST}INITIAL_RATE_LIMIT=1\n"));
    let key = |h: usize| origin.base_url(h).trim_start_matches("http://").replace(':', "_");
    let overrides =
        format!("[\"{}\"]\ninitial_rate = 8\nmax_in_flight = 1\n\n[\"{}\"]\nexclude = true\n", key(0), key(1));
    std::fs::write(j.out.join("overrides.toml"), &overrides).unwrap();

    let out = j.download(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["succeeded"], 6, "{summary}");
    assert!(stderr(&out).contains("excluded"), "{}", stderr(&out));
    assert_eq!(origin.log(1).len(), 0, "an excluded server is sent nothing, not even robots.txt");
    let gaps = first_gaps(&origin, 0, 4);
    assert!(gaps.iter().all(|g| *g < Duration::from_millis(600)), "started at the override's 8 req/s: {gaps:?}");
    assert_eq!(origin.log(0).max_in_flight(), 1);

    let cfg = j.config.to_str().unwrap();
    let status: Value =
        serde_json::from_str(&run_ok(&["--config", cfg, "status", "-o", j.out.to_str().unwrap(), "--json"])).unwrap();
    let row = |h: usize| {
        status["servers"].as_array().unwrap().iter().find(|s| s["server"] == key(h).as_str()).cloned().unwrap()
    };
    assert_eq!(row(1)["state"], "excluded", "{status}");
    assert_eq!(row(0)["overrides"], "initial_rate=8 max_in_flight=1", "{status}");
    assert_eq!(row(0)["rate"], 8.0);

    // prep --force replaces prep's outputs, not the overrides.
    let input = j.out.parent().unwrap().join("list.csv");
    run_ok(&["--config", cfg, "prep", "-i", input.to_str().unwrap(), "-o", j.out.to_str().unwrap(), "--force"]);
    assert_eq!(std::fs::read_to_string(j.out.join("overrides.toml")).unwrap(), overrides);
    let out = j.download(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(origin.log(1).len(), 0, "still excluded after prep --force");

    // A broken file stops the run with the file and the problem named, before any request.
    std::fs::write(j.out.join("overrides.toml"), format!("[\"{}\"]\nmax_rate = 0\n", key(1))).unwrap();
    let out = j.download(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("overrides.toml") && stderr(&out).contains("max_rate"), "{}", stderr(&out));
}

#[test]
fn overrides_win_over_profile_and_survive_re_profiling() {
    let origin =
        Origin::start(vec![HostSpec::loopback(117, Behaviour::Slow { delay: Duration::from_secs(1) })]).unwrap();
    let list: Vec<String> = (0..8).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let j = job(&list, 100, &format!("{FAST}INITIAL_RATE_LIMIT=4\n"));
    let (cfg, out) = (j.config.to_str().unwrap(), j.out.to_str().unwrap());
    let rate = || -> Value {
        let status: Value = serde_json::from_str(&run_ok(&["--config", cfg, "status", "-o", out, "--json"])).unwrap();
        status["servers"][0].clone()
    };
    // The host answers after 1 s: profile starts it at 2 / (4 × 1 s), about 0.5 req/s.
    run_ok(&["--config", cfg, "profile", "-o", out]);
    assert!(rate()["rate"].as_f64().unwrap() < 0.55, "{}", rate());
    assert_eq!(rate()["robots_status"], "404");

    let key = origin.base_url(0).trim_start_matches("http://").replace(':', "_");
    let overrides = format!("[\"{key}\"]\ninitial_rate = 3\nmax_rate = 3\n");
    std::fs::write(j.out.join("overrides.toml"), &overrides).unwrap();
    assert_eq!((rate()["rate"].as_f64(), rate()["overrides"].as_str()), (Some(3.0), Some("initial_rate=3 max_rate=3")));
    let sampled = origin.log(0).without_robots().len();
    let summary = j.download_ok(&[]);
    assert_eq!(summary["succeeded"], 8, "{summary}");
    let mut at: Vec<Duration> =
        origin.log(0).without_robots().into_vec().iter().skip(sampled).map(|r| r.arrived).collect();
    at.sort();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // Started at the override's 3 req/s (two in flight, answered after 1 s), not the profiled
    // 0.5 (2 s apart), and never closer than its ceiling of 3 req/s allows (333 ms; the origin
    // stamps arrivals within a few ms).
    assert!(gaps[0] < Duration::from_millis(1000), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(300)), "{gaps:?}");

    run_ok(&["--config", cfg, "profile", "-o", out, "--force"]);
    assert_eq!(std::fs::read_to_string(j.out.join("overrides.toml")).unwrap(), overrides, "re-profiling keeps them");
    assert_eq!(rate()["rate"], 3.0, "the override still wins: {}", rate());
}

#[test]
fn an_override_for_a_misspelt_server_is_named_with_the_key_it_meant_and_strict_refuses() {
    let origin = Origin::start(vec![HostSpec::loopback(117, Behaviour::Ok)]).unwrap();
    let list: Vec<String> = (0..3).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let j = job(&list, 100, FAST);
    let key = origin.base_url(0).trim_start_matches("http://").replace(':', "_");
    // The user wrote the server as a URL writes it, `host:port`: it matches no server key.
    let written = origin.base_url(0).trim_start_matches("http://").to_string();
    std::fs::write(j.out.join("overrides.toml"), format!("[\"{written}\"]\nexclude = true\n")).unwrap();

    let strict = j.download(&["--strict-overrides"]);
    assert_eq!(strict.status.code(), Some(2), "{}", stderr(&strict));
    let err = stderr(&strict);
    assert!(err.contains(&format!("{written:?} (did you mean {key:?}?)")), "{err}");
    assert_eq!(origin.log(0).len(), 0, "refused before any request");

    let out = j.download(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("did you mean {key:?}")), "warned: {}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["succeeded"], 3, "the override applied to nothing, so the server was downloaded: {summary}");
}
