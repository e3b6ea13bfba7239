//! `download` under `mpirun -n N`: one politeness budget over many ranks.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use distributed_downloader::store::shards::hdf5_io::read_shard;
use test_origin::{Behaviour, HostSpec, Origin, RetryAfterForm};

use crate::util::*;

fn records_per_url(out: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    let mut stack = vec![out.join("downloads")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "h5") {
                let c = read_shard(&p).unwrap();
                for u in c.successes.iter().map(|r| &r.url).chain(c.failures.iter().map(|r| &r.url)) {
                    *seen.entry(u.clone()).or_default() += 1;
                }
            }
        }
    }
    seen
}

/// Rank 0's first plan, `plans/round-0000.json`, as JSON.
fn first_plan(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("plans/round-0000.json")).unwrap()).unwrap()
}

/// A prepped folder of `per_host` URLs on each origin host, and its config file.
fn prepped(origin: &Origin, per_host: usize, config: &str) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempdir();
    let mut urls = Vec::new();
    for h in 0..origin.len() {
        urls.extend((0..per_host).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
    }
    std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n", urls.join("\n"))).unwrap();
    std::fs::write(dir.path().join("job.env"), format!("CONTACT=tests@example.org\nBATCH_SIZE=4\n{config}")).unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    run_ok(&["--config", &p("job.env"), "prep", "-i", &p("list.csv"), "-o", &p("out")]);
    (dir, urls)
}

#[test]
fn every_row_is_done_exactly_once_on_2_3_and_4_ranks_within_each_hosts_limits() {
    for ranks in [2, 3, 4] {
        let origin = Origin::start(
            (2..7).map(|h| HostSpec::loopback(h, Behaviour::Slow { delay: Duration::from_millis(50) })).collect(),
        )
        .unwrap();
        let (dir, urls) = prepped(&origin, 10, "INITIAL_RATE_LIMIT=8\nMAX_RATE_LIMIT=8\nMAX_IN_FLIGHT_PER_HOST=2\n");
        let cfg = dir.path().join("job.env");
        let out = dir.path().join("out");
        let o = mpirun(ranks, &["--config", cfg.to_str().unwrap(), "download", "-o", out.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "mpirun -n {ranks}: {}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
        let seen = records_per_url(&out);
        for u in &urls {
            assert_eq!(seen.get(u), Some(&1), "-n {ranks}: {u}");
        }
        assert_eq!(seen.len(), urls.len());
        for h in 0..origin.len() {
            let log = origin.log(h);
            assert_eq!(log.count_status(200), 10, "-n {ranks}: each image fetched once");
            assert!(log.max_in_flight() <= 2, "-n {ranks}: host {h} saw {} in flight", log.max_in_flight());
            assert!(log.max_requests_in_window(Duration::from_secs(1)) <= 9, "-n {ranks}: host {h} over its rate");
        }
        let plan = first_plan(&out);
        let used: std::collections::HashSet<u64> =
            plan["assignments"].as_array().unwrap().iter().map(|s| s["rank"].as_u64().unwrap()).collect();
        assert_eq!(used.len(), ranks.min(5), "-n {ranks}: the plan spreads 5 hosts over the ranks: {plan}");
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("rank 0 prints one summary");
        assert_eq!(summary["remaining"], 0);
        assert_eq!(summary["run"]["images_stored"], 50, "-n {ranks}: the summary adds up every rank's counters");
        // Every rank's hosts report what they learned to rank 0, which writes it for the next job.
        use polars::prelude::SerReader;
        let servers = polars::prelude::ParquetReader::new(std::fs::File::open(out.join("servers.parquet")).unwrap())
            .finish()
            .unwrap();
        let learned = servers.column("learned_state").unwrap().str().unwrap().clone();
        assert_eq!(learned.null_count(), 0, "-n {ranks}: every host's learned state is in servers.parquet");
    }
}

#[test]
fn a_split_host_never_sees_more_than_its_rate_or_in_flight_cap() {
    // Ranks that can only process 4 images/s force the planner to split a 16 req/s host in two
    // (the in-flight cap of 2 bounds the shares). Answers take 400 ms, so at 8 req/s a share
    // would keep 3 requests in flight if its share of the cap (1) were not enforced, and the
    // host would see up to 4.
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Slow { delay: Duration::from_millis(400) })]).unwrap();
    let (dir, urls) = prepped(
        &origin,
        40,
        "INITIAL_RATE_LIMIT=16\nMAX_RATE_LIMIT=16\nMAX_IN_FLIGHT_PER_HOST=2\nRANK_IMAGES_PER_SEC=4\n",
    );
    let cfg = dir.path().join("job.env");
    let out = dir.path().join("out");
    let o = mpirun(3, &["--config", cfg.to_str().unwrap(), "download", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = first_plan(&out);
    let shares = plan["assignments"].as_array().unwrap();
    assert_eq!(shares.len(), 2, "split in 2: {plan}");
    assert_ne!(shares[0]["rank"], shares[1]["rank"]);
    let log = origin.log(0);
    assert_eq!(log.count_status(200), 40);
    assert_eq!(log.count_path("/robots.txt"), 1, "one share asks for robots.txt, the other reads its answer");
    assert!(log.max_in_flight() <= 2, "{} in flight on a split host with a cap of 2", log.max_in_flight());
    let window = log.max_requests_in_window(Duration::from_secs(1));
    assert!(window <= 17, "{window} requests in 1 s on a 16 req/s host split over 2 ranks");
    assert_eq!(records_per_url(&out).len(), urls.len());
}

#[test]
fn a_refusal_seen_by_one_share_reaches_the_other_rank_within_the_round() {
    // A 4 req/s host split in two shares that start at 6 req/s each: the host refuses, with
    // Retry-After, and each share must hear of the other's refusal from the other rank.
    let origin = Origin::start(vec![HostSpec::loopback(
        2,
        Behaviour::RateLimited { per_second: 4.0, retry_after: Some(RetryAfterForm::Seconds(1)) },
    )])
    .unwrap();
    let (dir, urls) = prepped(
        &origin,
        48,
        "INITIAL_RATE_LIMIT=12\nMAX_RATE_LIMIT=12\nMAX_IN_FLIGHT_PER_HOST=2\nRANK_IMAGES_PER_SEC=6\nBACKOFF_BASE_SECS=0.05\n",
    );
    let cfg = dir.path().join("job.env");
    let out = dir.path().join("out");
    let o = mpirun(2, &["--config", cfg.to_str().unwrap(), "download", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = first_plan(&out);
    assert_eq!(plan["assignments"].as_array().unwrap().len(), 2, "split in 2: {plan}");
    let err = stderr(&o);
    assert!(err.contains("another share of this host was refused"), "no share heard of the other's refusal:\n{err}");
    let seen = records_per_url(&out);
    assert!(urls.iter().all(|u| seen.get(u) == Some(&1)), "every row exactly once");
    let log = origin.log(0);
    assert_eq!(log.count_status(200), 48);
    assert!(log.count_status(429) <= 4, "{} refusals on a host two shares learned together", log.count_status(429));
}

/// PIDs of the processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Field 4 is the parent pid; the command name (field 2) may hold spaces, so split after ')'.
        let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            v.push(pid);
        }
    }
    v
}

#[test]
fn killing_one_rank_then_rerunning_loses_and_duplicates_nothing() {
    let origin = Origin::start(
        (2..4).map(|h| HostSpec::loopback(h, Behaviour::Slow { delay: Duration::from_millis(30) })).collect(),
    )
    .unwrap();
    let (dir, urls) = prepped(&origin, 40, "INITIAL_RATE_LIMIT=10\nMAX_RATE_LIMIT=10\n");
    let cfg = dir.path().join("job.env");
    let out = dir.path().join("out");
    let mut job = mpirun_cmd(2, &["--config", cfg.to_str().unwrap(), "download", "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while records_per_url(&out).len() < 16 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ranks = children(job.id());
    assert!(!ranks.is_empty(), "mpirun has rank processes");
    // SIGKILL one rank; MPI takes the job down (its default), which is why commits are atomic.
    kill_9(ranks[0]);
    let status = job.wait().unwrap();
    assert!(!status.success(), "the job dies with its rank");
    let before = records_per_url(&out);
    assert!(before.len() < urls.len(), "killed mid-run");

    let o = mpirun(2, &["--config", cfg.to_str().unwrap(), "download", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = records_per_url(&out);
    for u in &urls {
        assert_eq!(after.get(u), Some(&1), "{u}");
    }
}

/// Sends SIGKILL with the `kill` command (no libc binding in this crate).
fn kill_9(pid: u32) {
    let ok = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill -9 {pid}");
}

#[test]
fn rebalance_when_a_rank_runs_out_of_work_hosts_move_to_it() {
    // Rank-local bottleneck: one request slot per rank. The planner sees three equally fast
    // hosts and puts the 404 host (most rows) alone on one rank and both slow hosts on the
    // other. The 404s finish in about a second; then that rank is idle while the other serves
    // two slow hosts through one slot. Rounds move one slow host to the idle rank.
    let hosts = vec![
        HostSpec::loopback(2, Behaviour::Slow { delay: Duration::from_millis(150) }),
        HostSpec::loopback(3, Behaviour::Slow { delay: Duration::from_millis(150) }),
        HostSpec::loopback(4, Behaviour::NotFound),
    ];
    // MIN_ROUND_SECS=0: with 2 ranks one idle rank is the quarter that may end a round, at once.
    let config = "INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\nMAX_REQUESTS_IN_FLIGHT=1\nBACKOFF_BASE_SECS=0.05\nRANK_IMAGES_PER_SEC=1000\nMIN_ROUND_SECS=0\n";
    let mut seconds = Vec::new();
    for static_plan in [true, false] {
        let origin = Origin::start(hosts.clone()).unwrap();
        let dir = tempdir();
        let mut urls = Vec::new();
        for h in 0..2 {
            urls.extend((0..20).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
        }
        urls.extend((0..48).map(|i| origin.url(2, &format!("/missing/{i}.jpg"))));
        std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n", urls.join("\n"))).unwrap();
        std::fs::write(dir.path().join("job.env"), format!("CONTACT=tests@example.org\nBATCH_SIZE=4\n{config}"))
            .unwrap();
        let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        run_ok(&["--config", &p("job.env"), "prep", "-i", &p("list.csv"), "-o", &p("out")]);
        let mut args = vec!["--config".to_string(), p("job.env"), "download".into(), "-o".into(), p("out")];
        if static_plan {
            args.push("--static-plan".into());
        }
        let t = std::time::Instant::now();
        let o = mpirun(2, &args.iter().map(String::as_str).collect::<Vec<_>>());
        seconds.push(t.elapsed().as_secs_f64());
        assert!(o.status.success(), "{}", stderr(&o));
        let seen = records_per_url(&dir.path().join("out"));
        assert!(urls.iter().all(|u| seen.get(u) == Some(&1)), "every row exactly once");
        let plans = dir.path().join("out/plans");
        let read = |n: u32| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(plans.join(format!("round-{n:04}.json"))).unwrap()).unwrap()
        };
        let first = read(0);
        let rank_of = |plan: &serde_json::Value, host: &str| -> Vec<u64> {
            plan["assignments"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["host"] == host)
                .map(|s| s["rank"].as_u64().unwrap())
                .collect()
        };
        let slow: Vec<String> = (0..2).map(|h| origin.base_url(h).replace("http://", "").replace(':', "_")).collect();
        assert_eq!(
            rank_of(&first, &slow[0]),
            rank_of(&first, &slow[1]),
            "the first plan puts both slow hosts together"
        );
        if static_plan {
            assert!(!plans.join("round-0001.json").exists(), "a static plan has one round");
        } else {
            let second = read(1);
            let ranks: std::collections::HashSet<Vec<u64>> = slow.iter().map(|h| rank_of(&second, h)).collect();
            assert_eq!(ranks.len(), 2, "the idle rank took a slow host: {second}");
        }
    }
    println!("2 ranks, one slot each: static plan {:.1} s, with rounds {:.1} s", seconds[0], seconds[1]);
}

#[test]
fn a_rank_0_that_cannot_write_the_servers_table_ends_the_job_on_every_rank_naming_the_file() {
    // An immutable servers.parquet: rank 0 can read it and plan, but not write back what the
    // hosts learned at the end of the round. The others must hear of it rather than wait for a
    // plan that never comes.
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let (dir, _) = prepped(&origin, 4, "INITIAL_RATE_LIMIT=8\n");
    let (cfg, out) = (dir.path().join("job.env"), dir.path().join("out"));
    let table = out.join("servers.parquet");
    let chattr = |flag: &str| Command::new("chattr").arg(flag).arg(&table).status().expect("chattr runs");
    assert!(chattr("+i").success(), "this test needs `chattr +i` (ext4 as root)");
    let started = std::time::Instant::now();
    let log = dir.path().join("job.log");
    let mut child = mpirun_cmd(2, &["--config", cfg.to_str().unwrap(), "download", "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(chattr("-i").success());
    let status = status.unwrap_or_else(|| panic!("the job still ran after 120 s:\n{err}"));
    assert!(!status.success(), "{err}");
    assert!(err.contains("servers.parquet") && err.contains("rank 0"), "{err}");
}

#[test]
fn a_host_parked_when_a_round_ends_stays_parked_in_the_next_round() {
    // One host never answers in time (its head takes 5 s, the limit is 0.5 s): five timeouts
    // park it for PARK_SECS. A 404 host finishes at once and leaves its rank idle, so with
    // MIN_ROUND_SECS=0 the round ends while the host is parked, and its rows move or stay.
    // Whoever owns it next must wait out the same parking, not ask again at once.
    let hosts = vec![
        HostSpec::loopback(2, Behaviour::Slow { delay: Duration::from_secs(5) }),
        HostSpec::loopback(3, Behaviour::NotFound),
        HostSpec::loopback(4, Behaviour::Slow { delay: Duration::from_millis(100) }),
    ];
    let origin = Origin::start(hosts).unwrap();
    let park = 20.0;
    let config = format!(
        "HEAD_TIMEOUT_SECS=0.5\nPARK_SECS={park}\nBACKOFF_BASE_SECS=0.05\nMIN_ROUND_SECS=0\nINITIAL_RATE_LIMIT=5\nMAX_RATE_LIMIT=5\n"
    );
    let (dir, _) = prepped(&origin, 40, &config);
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    // The deadline stops new requests 60 s before it: about 30 s in. The host is parked about
    // 2 s in and asked again when its 20 s are over, so the stop comes some 8 s after that.
    let o = mpirun(2, &["--config", &p("job.env"), "download", "-o", &p("out"), "--deadline", "+90s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("out/plans/round-0001.json").exists(), "a second round began:\n{}", stderr(&o));
    let mut asked: Vec<f64> =
        origin.log(0).without_robots().into_vec().iter().map(|r| r.arrived.as_secs_f64()).collect();
    asked.sort_by(f64::total_cmp);
    assert!(asked.len() >= 6, "the host was asked before and after its parking: {asked:?}");
    // The parking is the longest silence: from the last request before it to the first after.
    let (before, after) =
        asked.windows(2).map(|w| (w[0], w[1])).max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0))).unwrap();
    let said = stderr(&o);
    assert!(after - before >= park - 1.0, "asked again {:.1} s after {before:.1} s: {asked:?}\n{said}", after - before);
    // The round ended inside that silence (its time is counted from the download's start, which
    // came before the first request).
    let ended: f64 = said
        .lines()
        .find_map(|l| l.split("out of work after ").nth(1)?.split(" s").next()?.parse().ok())
        .unwrap_or_else(|| panic!("round 0 ended early:\n{said}"));
    assert!(
        ended > before - asked[0] && ended < after - asked[0],
        "round ended at {ended} s, not while parked: {asked:?}"
    );
}

/// The split host of the tests above (slow ranks make the planner split a 16 req/s host in
/// two) with `urls` on it, downloaded on 3 ranks: the output folder, what the job printed, how
/// long it took. The plan must split it.
fn split_host_job(urls: &[String], extra_config: &str) -> (tempfile::TempDir, std::process::Output, Duration) {
    let dir = tempdir();
    std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n", urls.join("\n"))).unwrap();
    let config = format!(
        "CONTACT=tests@example.org\nBATCH_SIZE=4\nINITIAL_RATE_LIMIT=16\nMAX_RATE_LIMIT=16\n\
         MAX_IN_FLIGHT_PER_HOST=2\nRANK_IMAGES_PER_SEC=4\nBACKOFF_BASE_SECS=0.05\n{extra_config}"
    );
    std::fs::write(dir.path().join("job.env"), config).unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    run_ok(&["--config", &p("job.env"), "prep", "-i", &p("list.csv"), "-o", &p("out")]);
    let started = std::time::Instant::now();
    let o = mpirun(3, &["--config", &p("job.env"), "download", "-o", &p("out"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let took = started.elapsed();
    let plan = first_plan(&dir.path().join("out"));
    assert_eq!(plan["assignments"].as_array().unwrap().len(), 2, "split in 2: {plan}");
    (dir, o, took)
}

#[test]
fn every_share_of_a_split_host_whose_name_does_not_exist_records_its_rows_as_nxdomain() {
    // Its name is under `.invalid`, answered "no such name" without a query (RFC 6761). Only
    // one share asks robots.txt; the other must learn from its answer that the name is gone.
    let urls: Vec<String> = (0..40).map(|i| format!("http://museum.invalid/img/w64-h48-{i}.jpg")).collect();
    let (dir, o, took) = split_host_job(&urls, "");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("rank 0 prints one summary");
    assert_eq!(summary["failed_by_class"]["nxdomain"].as_u64(), Some(40), "every row of both shares: {summary}");
    assert_eq!(summary["retriable"].as_u64(), Some(40), "{summary}");
    assert!(took < Duration::from_secs(60), "the job took {took:?}");
    assert_eq!(records_per_url(&dir.path().join("out")).len(), urls.len());
}

#[test]
fn every_share_of_a_split_host_on_a_closed_port_records_its_rows_within_the_bound() {
    // On a port where nothing listens: one share asks its robots.txt and is parked, the other
    // waits for that answer. Neither may wait for ever.
    let dead = std::net::TcpListener::bind("127.0.0.7:0").unwrap().local_addr().unwrap();
    let urls: Vec<String> = (0..40).map(|i| format!("http://{dead}/img/w64-h48-{i}.jpg")).collect();
    let (dir, o, took) = split_host_job(&urls, "CONNECT_TIMEOUT_SECS=2\n");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("rank 0 prints one summary");
    assert_eq!((summary["failed"].as_u64(), summary["retriable"].as_u64()), (Some(40), Some(40)), "{summary}");
    // The bound of the dead-host rule: the first parking (30 s), then a minute without progress.
    assert!(took < Duration::from_secs(150), "the job took {took:?}:\n{}", stderr(&o));
    assert_eq!(records_per_url(&dir.path().join("out")).len(), urls.len());
}
