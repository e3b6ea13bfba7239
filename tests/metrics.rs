//! The Prometheus exporter of every rank: what a scrape returns during a run, the `file_sd`
//! targets file, the snapshots left in the output folder, and `promtool check metrics` on them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use test_origin::{Behaviour, HostSpec, Origin};

use crate::util::*;

/// `scripts/prometheus.sh install`: Debian's prometheus and promtool; their paths.
fn promtool() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prometheus.sh");
    let out = Command::new(&script).arg("install").output().expect("run scripts/prometheus.sh");
    assert!(out.status.success(), "scripts/prometheus.sh install failed:\n{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines().find_map(|l| l.strip_prefix("promtool=")).expect("promtool path").to_string()
}

/// One plain HTTP GET on loopback, bounded in time.
fn scrape(endpoint: &str) -> String {
    let mut s = TcpStream::connect(endpoint).unwrap_or_else(|e| panic!("connect {endpoint}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{endpoint}: {}", body.lines().next().unwrap_or_default());
    body
}

/// Every `name{labels} value` line of an exposition: (name, labels, value).
fn series(text: &str) -> Vec<(String, Vec<(String, String)>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (head.to_string(), Vec::new()),
        };
        out.push((name, labels, value.parse().unwrap_or(f64::NAN)));
    }
    out
}

#[test]
fn every_rank_serves_labelled_metrics_lists_itself_for_prometheus_and_leaves_a_snapshot() {
    let promtool = promtool();
    let origin = Origin::start(vec![
        HostSpec::loopback(80, Behaviour::Ok),
        HostSpec::loopback(81, Behaviour::NotFound),
        HostSpec::loopback(82, Behaviour::Ok),
    ])
    .unwrap();
    let dir = tempdir();
    let mut urls = Vec::new();
    for h in 0..3 {
        urls.extend((0..16).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
    }
    std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n", urls.join("\n"))).unwrap();
    let cfg = dir.path().join("job.env");
    // 16 URLs per host at 4 req/s: about 4 s of requests, time to scrape.
    std::fs::write(
        &cfg,
        "CONTACT=t@example.org\nBATCH_SIZE=8\nINITIAL_RATE_LIMIT=4\nMAX_RATE_LIMIT=4\nMETRICS_PORT=19464\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&["--config", c, "prep", "-i", dir.path().join("list.csv").to_str().unwrap(), "-o", o]);

    let mut cmd = Command::new("mpirun");
    cmd.args(["-n", "2", "--oversubscribe", env!("CARGO_BIN_EXE_distributed-downloader")])
        .args(["--config", c, "download", "-o", o, "--json"]);
    if std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) {
        cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();

    // While it runs: the targets file lists both ranks, and each answers a scrape with its labels.
    let targets = out.join("metrics/targets-local.json");
    let start = Instant::now();
    while !targets.exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&targets).unwrap()).unwrap();
    let endpoints: Vec<String> =
        listed[0]["targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    assert_eq!(endpoints.len(), 2, "{listed}");
    for (rank, endpoint) in endpoints.iter().enumerate() {
        assert!(endpoint.starts_with("127.0.0.1:"), "loopback by default: {endpoint}");
        let body = scrape(endpoint);
        assert!(body.contains(&format!("rank=\"{rank}\"")) && body.contains("job=\"local\""), "{body}");
    }

    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert!(!targets.exists(), "the job's ranks stopped serving: its targets file is gone");

    // The snapshots: valid for promtool, labelled, and the stored count is what the shards hold.
    let mut stored = 0.0;
    let mut failed_404 = 0.0;
    let mut all = String::new();
    for rank in 0..2 {
        let path = out.join(format!("metrics/local-rank-{rank}.prom"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let check = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(&path).unwrap())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "promtool check metrics {}: {}{}",
            path.display(),
            String::from_utf8_lossy(&check.stdout),
            stderr(&check)
        );
        for (name, labels, value) in series(&text) {
            assert!(labels.iter().any(|(k, v)| k == "rank" && *v == rank.to_string()), "{name} {labels:?}");
            for (k, v) in &labels {
                assert!(
                    !v.contains("://") && !v.contains(' ') && v.len() <= 100,
                    "{name}: label {k}={v:?} is not bounded"
                );
            }
            if name == "distributed_downloader_images_stored_total" {
                stored += value;
            }
            if name == "distributed_downloader_rows_failed_total"
                && labels.iter().any(|(k, v)| k == "class" && v == "http_4xx")
            {
                failed_404 += value;
            }
        }
        all.push_str(&text);
    }
    assert!(all.contains("# HELP distributed_downloader_images_stored_total Images committed to a shard"), "{all}");
    assert_eq!(stored, summary["succeeded"].as_f64().unwrap(), "images_stored_total counts committed images");
    assert_eq!(stored, 32.0);
    assert_eq!(failed_404, 16.0);
}
