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
