//! The Prometheus exporter of every rank: what a scrape returns during a run, the `file_sd`
//! targets file, the snapshots left in the output folder, and `promtool check metrics` on them.

use std::io::{Read, Write};
use std::net::TcpStream;
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

/// One series of an exposition: its name, labels and value.
type Series = (String, Vec<(String, String)>, f64);

/// Every `name{labels} value` line of an exposition.
fn series(text: &str) -> Vec<Series> {
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

    let mut cmd = mpirun_cmd(2, &["--config", c, "download", "-o", o, "--json"]);
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
        // Every failure class has a series from the start: a panel shows 0, not "no data".
        for class in distributed_downloader::host::outcome::ErrorClass::ALL {
            let series = format!("class=\"{}\"", class.as_str());
            let failed =
                body.lines().any(|l| l.starts_with("distributed_downloader_rows_failed_total") && l.contains(&series));
            assert!(failed, "rank {rank}: no rows_failed_total series for {series}:\n{body}");
        }
        // What a live scrape returns passes promtool too.
        let exposition = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let mut check = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        check.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
        let checked = check.wait_with_output().unwrap();
        assert!(
            checked.status.success(),
            "promtool on rank {rank}'s scrape: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            stderr(&checked)
        );
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

/// The dashboard shipped in `dashboards/`.
fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/distributed-downloader.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every (panel title, query) of the dashboard.
fn panel_queries() -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((p["title"].as_str().unwrap().to_string(), t["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn the_dashboard_uses_only_metrics_we_export_and_the_metrics_page_describes_every_panel() {
    let known: Vec<&str> = distributed_downloader::telemetry::names::METRICS.iter().map(|m| m.0).collect();
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md")).unwrap();
    let queries = panel_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    for (title, expr) in &queries {
        let mut rest = expr.as_str();
        while let Some(i) = rest.find("distributed_downloader_") {
            let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let base = ["_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(known.contains(&base), "panel {title:?} uses {name}, which names.rs does not define");
            rest = &rest[i + name.len()..];
        }
        assert!(expr.contains("job=~\"$job\""), "panel {title:?} ignores the job variable: {expr}");
        assert!(doc.contains(&format!("**{title}**")), "docs/metrics.md does not describe the panel {title:?}");
    }
    let d = dashboard();
    let vars: Vec<&str> =
        d["templating"]["list"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert!(vars.contains(&"job"), "{vars:?}");
}

/// `s` percent-encoded for a URL query.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET `path` from a server on loopback; the body.
fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// An instant query through Prometheus's HTTP API: the result vector (chunked bodies are read
/// by skipping to the JSON).
fn query(addr: &str, expr: &str) -> Vec<serde_json::Value> {
    let Some(body) = get(addr, &format!("/api/v1/query?query={}", encode(expr))) else { return Vec::new() };
    let json = &body[body.find('{').unwrap_or(0)..body.rfind('}').map(|i| i + 1).unwrap_or(body.len())];
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// A Prometheus server on loopback, stopped on drop.
struct Prometheus(std::process::Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Stopping a test's server: one that already exited is as good as stopped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_finds_both_ranks_and_every_dashboard_panel_returns_data() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prometheus.sh");
    let out = Command::new(&script).arg("install").output().expect("run scripts/prometheus.sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let prometheus = text.lines().find_map(|l| l.strip_prefix("prometheus=")).unwrap().to_string();

    // Hosts that make every panel move: one healthy, one limited to 2 req/s (429s), one with a
    // 503 every 4th request (retries), one that answers 404 (failures).
    let origin = Origin::start(vec![
        HostSpec::loopback(83, Behaviour::Ok),
        HostSpec::loopback(84, Behaviour::RateLimited { per_second: 2.0, retry_after: None }),
        HostSpec::loopback(85, Behaviour::Flaky503 { every: 4 }),
        HostSpec::loopback(86, Behaviour::NotFound),
    ])
    .unwrap();
    let dir = tempdir();
    let mut urls = Vec::new();
    for h in 0..4 {
        urls.extend((0..40).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
    }
    std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n", urls.join("\n"))).unwrap();
    let cfg = dir.path().join("job.env");
    std::fs::write(
        &cfg,
        "CONTACT=t@example.org\nBATCH_SIZE=10\nINITIAL_RATE_LIMIT=2\nMAX_RATE_LIMIT=6\nBACKOFF_BASE_SECS=0.1\nCOMMIT_SECS=1\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&["--config", c, "prep", "-i", dir.path().join("list.csv").to_str().unwrap(), "-o", o]);

    // Prometheus, scraping every second whatever the targets files list.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let prom_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: dd\n    honor_labels: true\n    file_sd_configs:\n      - files: ['{}/metrics/targets-*.json']\n        refresh_interval: 1s\n",
            out.display()
        ),
    )
    .unwrap();
    let _server = Prometheus(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_yml.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while get(&addr, "/-/ready").is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus did not start on {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut cmd = mpirun_cmd(2, &["--config", c, "download", "-o", o, "--json"]);
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // The ranks' messages, read as they come (a full pipe would stall the ranks) and shown when
    // an assertion fails.
    let mut pipe = child.stderr.take().unwrap();
    let messages = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // Only shown when an assertion fails: a read error keeps what was read before it.
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });

    // While the download runs: both ranks are up in Prometheus, and each panel query returns
    // data at some moment (a 429 or a retry happens when it happens).
    let mut pending = panel_queries();
    let mut both_up = false;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(1));
        if !both_up {
            let up = query(&addr, "up{job=\"dd\"} == 1");
            both_up = up.len() == 2;
            continue;
        }
        pending.retain(|(_, expr)| {
            let expr = expr.replace("$job", ".*").replace("$__rate_interval", "30s");
            query(&addr, &expr).is_empty()
        });
    }
    let status = child.wait().unwrap();
    let messages = messages.join().unwrap();
    // Prometheus's log, only shown when an assertion fails (none written: nothing to show).
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let log: Vec<&str> = log.lines().filter(|l| l.contains("level=WARN") || l.contains("level=ERROR")).collect();
    let seen = format!("the ranks said:\n{messages}\nPrometheus warned:\n{}", log.join("\n"));
    assert!(status.success(), "the download failed; {seen}");
    assert!(both_up, "Prometheus never saw both ranks up through the targets file; {seen}");
    assert!(pending.is_empty(), "panels without data while the download ran: {pending:?}; {seen}");
}

#[test]
fn jobs_started_together_on_one_port_each_serve_on_a_port_of_their_own() {
    // Twelve jobs on one node start at the same moment with the same METRICS_PORT (a Slurm job
    // array): one gets the port, and every other one serves on a port the system picks, even
    // when a neighbour takes a port between the check that it is free and the bind.
    const JOBS: usize = 12;
    let dir = tempdir();
    std::fs::write(dir.path().join("list.csv"), "url\nhttp://127.0.0.9:9/a.jpg\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("job.env");
    std::fs::write(&cfg, format!("CONTACT=t@example.org\nMETRICS_PORT={port}\n")).unwrap();
    // The start gun: each job waits for one line on a FIFO, and the lines are written together
    // once every job is spawned, so they reach the exporter within a millisecond or so.
    let gun = dir.path().join("gun");
    assert!(Command::new("mkfifo").arg(&gun).status().unwrap().success());
    // Read and write: opening does not wait for a reader, and no reader ever sees the end.
    let mut trigger = std::fs::OpenOptions::new().read(true).write(true).open(&gun).unwrap();
    let jobs: Vec<_> = (0..JOBS)
        .map(|j| {
            let out = dir.path().join(format!("out-{j}"));
            let child = Command::new("sh")
                .args(["-c", r#"read -r _ < "$0" && exec "$@""#])
                .arg(&gun)
                .arg(env!("CARGO_BIN_EXE_distributed-downloader"))
                .args(["--config", cfg.to_str().unwrap(), "prep", "-i"])
                .arg(dir.path().join("list.csv"))
                .arg("-o")
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (out, child)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    trigger.write_all("\n".repeat(JOBS).as_bytes()).unwrap();
    for (out, child) in jobs {
        let done = child.wait_with_output().unwrap();
        let text = stderr(&done);
        assert!(done.status.success(), "{}: prep failed:\n{text}", out.display());
        assert!(!text.contains("exports none"), "{}: a job was left without metrics:\n{text}", out.display());
        assert!(text.contains("serve Prometheus metrics"), "{}: {text}", out.display());
        assert!(out.join("metrics/local-prep.prom").exists(), "{}: no snapshot:\n{text}", out.display());
    }
}

#[test]
fn prep_exports_its_progress_and_hosts_beyond_the_label_cap_are_grouped_as_other() {
    let origin =
        Origin::start(vec![HostSpec::loopback(87, Behaviour::Ok), HostSpec::loopback(88, Behaviour::Ok)]).unwrap();
    let dir = tempdir();
    let mut urls = Vec::new();
    for h in 0..2 {
        urls.extend((0..3).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
    }
    // One row more than URLs: a duplicate, which prep reads and keeps but merges.
    urls.push(urls[0].clone());
    // A blank line after the last row: read after the last chunk of rows, counted all the same.
    std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n\n", urls.join("\n"))).unwrap();
    let cfg = dir.path().join("job.env");
    // A port of its own: tests beside it run prep and download at the default port, and a rank
    // that finds its port taken exports nothing (and leaves no snapshot).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!("CONTACT=t@example.org\nINITIAL_RATE_LIMIT=8\nMETRICS_HOST_LABELS=1\nMETRICS_PORT={port}\n");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.path().join("out");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&["--config", c, "prep", "-i", dir.path().join("list.csv").to_str().unwrap(), "-o", o]);
    let prep = std::fs::read_to_string(out.join("metrics/local-prep.prom")).expect("prep leaves its snapshot");
    let value =
        |text: &str, name: &str| series(text).into_iter().filter(|(n, _, _)| n == name).map(|(_, _, v)| v).sum::<f64>();
    // Lines, as in the report and `wc -l`: the header, 7 rows and the blank line.
    assert_eq!(value(&prep, "distributed_downloader_prep_rows_read_total"), 9.0, "{prep}");
    assert_eq!(read_report(&out)["rows_read"], 9);
    assert_eq!(value(&prep, "distributed_downloader_prep_rows_kept_total"), 7.0, "{prep}");
    assert!(!out.join("metrics/targets-local.json").exists(), "prep's targets file is gone when it ends");

    // The download's snapshot: one host by name, the other as `other`.
    run_ok(&["--config", c, "download", "-o", o]);
    let text = std::fs::read_to_string(out.join("metrics/local-rank-0.prom")).unwrap();
    let hosts: std::collections::BTreeSet<String> = series(&text)
        .into_iter()
        .filter(|(n, _, _)| n == "distributed_downloader_images_stored_total")
        .flat_map(|(_, labels, _)| labels.into_iter().filter(|(k, _)| k == "host").map(|(_, v)| v))
        .collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(hosts.contains("other"), "{hosts:?}");
    assert_eq!(value(&text, "distributed_downloader_images_stored_total"), 6.0, "{text}");
}
