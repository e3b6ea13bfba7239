//! `plan`: the forecast of a prepped folder, as a table and as JSON; what remains after a
//! partial download; and bad input refused with a reason and the right exit code.

use serde_json::Value;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, Job, FAST};
use crate::util::{run, run_ok, stderr};

/// 30 URLs on one server and 6 on another, batches of 10, rates capped at 2 req/s: the big
/// server needs 15 s whatever the nodes.
fn small_job() -> Job {
    let mut list: Vec<String> = (0..30).map(|i| format!("http://big.example.org/img/{i}.jpg")).collect();
    list.extend((0..6).map(|i| format!("http://small.example.org/img/{i}.jpg")));
    job(&list, 10, "MAX_RATE_LIMIT=2\n")
}

fn plan(j: &Job, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--config", j.config.to_str().unwrap(), "plan", "-o", j.out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn plan_ok(j: &Job, extra: &[&str]) -> String {
    let out = plan(j, extra);
    assert!(out.status.success(), "plan failed: {:?}\n{}", out.status, stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn plan_prints_the_estimate_the_floors_the_tail_the_node_table_and_the_slurm_jobs() {
    let j = small_job();
    let text = plan_ok(&j, &["--nodes", "2", "--ranks-per-node", "1", "--rank-images-per-sec", "100"]);
    for section in [
        "2 node(s) × 1 rank(s) = 2 ranks, 100 images/s per rank (--rank-images-per-sec)",
        "remaining: 36 URLs on 2 hosts",
        "estimated wall time: 15 s (1 round(s)",
        "static split (one plan, no rounds): 15 s",
        "politeness floor: 15 s (the longest host: big.example.org at 2.00 req/s)",
        "CPU floor: 0 s",
        "hosts that set the tail",
        "wall time by node count",
        "Slurm: 1 chained job(s) of SLURM_TIME 24:00:00",
    ] {
        assert!(text.contains(section), "no {section:?} in:\n{text}");
    }
    // Node counts 1, 2 (requested), 4 and 8; the politeness floor holds from 1 node: the knee.
    let rows: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows[0].contains("knee"), "{text}");
    assert!(rows[1].contains("requested"), "{text}");

    let json: Value = serde_json::from_str(&plan_ok(&j, &["--nodes", "2", "--rank-images-per-sec", "100", "--json"]))
        .expect("--json prints JSON");
    assert_eq!(json["ranks"], 2);
    assert_eq!(json["urls_remaining"], 36);
    assert!((json["estimated_secs"].as_f64().unwrap() - 15.0).abs() < 1e-6, "{json}");
    assert!((json["politeness_floor_secs"].as_f64().unwrap() - 15.0).abs() < 1e-6, "{json}");
    assert!((json["cpu_floor_secs"].as_f64().unwrap() - 36.0 / 200.0).abs() < 1e-6, "{json}");
    assert!(json["static_secs"].as_f64().unwrap() >= 15.0 - 1e-6);
    assert_eq!(json["tail"][0]["host"], "big.example.org");
    assert_eq!(json["nodes_table"].as_array().unwrap().len(), 4);
    assert_eq!(json["knee_nodes"], 1);
    assert_eq!(json["slurm_jobs"], 1);
    for key in ["rounds", "drain_secs", "throughput_from", "knee_rule", "excluded"] {
        assert!(json.get(key).is_some(), "no {key} in {json}");
    }
}

#[test]
fn plan_without_a_throughput_says_it_took_the_cores_from_slurm_cpus_per_task() {
    let j = small_job();
    let text = plan_ok(&j, &["--nodes", "1"]);
    assert!(text.contains("120 images/s per rank (30 images/s per core × 4 cores (SLURM_CPUS_PER_TASK))"), "{text}");
}

#[test]
fn a_half_done_job_plans_only_what_remains_and_excluded_servers_are_named() {
    let origin =
        Origin::start(vec![HostSpec::loopback(121, Behaviour::Ok), HostSpec::loopback(122, Behaviour::Ok)]).unwrap();
    let list: Vec<String> = (0..12).map(|i| origin.url(i % 2, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let j = job(&list, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let key = |h: usize| origin.base_url(h).trim_start_matches("http://").replace(':', "_");
    // Download host 0 only: host 1 is excluded for that run.
    std::fs::write(j.out.join("overrides.toml"), format!("[\"{}\"]\nexclude = true\n", key(1))).unwrap();
    let _ = j.download_ok(&[]);
    let json: Value = serde_json::from_str(&plan_ok(&j, &["--nodes", "1", "--json"])).unwrap();
    assert_eq!(json["urls_remaining"], 0, "host 0 is done and host 1 is excluded: {json}");
    assert_eq!(json["excluded"], serde_json::json!([key(1)]));
    let text = plan_ok(&j, &["--nodes", "1"]);
    assert!(text.contains("nothing remains"), "{text}");
    assert!(text.contains(&format!("excluded by the overrides file, not planned: {}", key(1))), "{text}");

    std::fs::remove_file(j.out.join("overrides.toml")).unwrap();
    let json: Value = serde_json::from_str(&plan_ok(&j, &["--nodes", "1", "--json"])).unwrap();
    assert_eq!(json["urls_remaining"], 6, "only host 1's rows remain: {json}");
    assert_eq!(json["urls_done"], 6, "{json}");
    assert_eq!(json["tail"][0]["host"], key(1).as_str());
}

#[test]
fn bad_input_is_refused_with_a_reason_and_exit_code_2_for_usage_errors() {
    let j = small_job();
    let out = plan(&j, &["--nodes", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("pass --nodes and --ranks-per-node of at least 1"), "{}", stderr(&out));

    let out = plan(&j, &["--nodes", "1", "--rank-images-per-sec", "-5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--rank-images-per-sec must be a positive number of images per second, not -5"),
        "{}",
        stderr(&out)
    );
    let out = plan(&j, &["--nodes", "1", "--round-secs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--round-secs must be a positive number of seconds"), "{}", stderr(&out));

    // Every server excluded: said so, not an empty forecast.
    let excluded = "[\"big.example.org\"]\nexclude = true\n\n[\"small.example.org\"]\nexclude = true\n";
    std::fs::write(j.out.join("overrides.toml"), excluded).unwrap();
    let out = plan(&j, &["--nodes", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is excluded by the overrides file"), "{}", stderr(&out));

    // A folder prep never wrote is not a usage error: the run fails (1) and says to run prep.
    let empty = crate::util::tempdir();
    let out = run(&["plan", "-o", empty.path().to_str().unwrap(), "--nodes", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("servers.parquet is missing"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    let out = run(&["plan", "--nodes", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no output folder"), "{}", stderr(&out));
}

#[test]
fn the_gbif_like_forecast_runs_from_the_command_line() {
    let text = run_ok(&["plan", "--gbif-like", "--nodes", "8"]);
    assert!(text.contains("GBIF-like list (545 servers, 200000000 URLs)"), "{text}");
    assert!(text.contains("knee"), "{text}");
}

#[test]
fn the_forecast_of_a_small_job_agrees_with_a_real_run_on_three_ranks() {
    // Three hosts of 48, 24 and 12 URLs held at 4 req/s from the first request
    // (INITIAL_RATE_LIMIT = MAX_RATE_LIMIT, so no slow start the forecast does not model), with
    // CPUs to spare: the biggest host sets the job at 48 / 4 = 12 s.
    let origin = Origin::start(vec![
        HostSpec::loopback(140, Behaviour::Ok),
        HostSpec::loopback(141, Behaviour::Ok),
        HostSpec::loopback(142, Behaviour::Ok),
    ])
    .unwrap();
    let mut list = Vec::new();
    for (h, n) in [(0, 48), (1, 24), (2, 12)] {
        list.extend((0..n).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
    }
    let j = job(&list, 12, &format!("{FAST}INITIAL_RATE_LIMIT=4\nMAX_RATE_LIMIT=4\nRANK_IMAGES_PER_SEC=1000\n"));
    let forecast: Value =
        serde_json::from_str(&plan_ok(&j, &["--nodes", "3", "--ranks-per-node", "1", "--json"])).unwrap();
    let estimate = forecast["estimated_secs"].as_f64().unwrap();
    assert!((estimate - 12.0).abs() < 0.5, "{forecast}");

    let (cfg, out) = (j.config.to_str().unwrap(), j.out.to_str().unwrap());
    let o = crate::util::mpirun(3, &["--config", cfg, "download", "-o", out, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["succeeded"], 84, "{summary}");
    let real = summary["wall_seconds"].as_f64().unwrap();
    eprintln!("forecast {estimate:.2} s, real run {real:.2} s on 3 ranks");
    // The real run adds what the forecast leaves out: each host's robots.txt request takes one
    // token (0.25 s), the batches are read and the shards committed at the end, and three ranks
    // start and agree on a plan (about a second together on this machine). Neither side sleeps
    // more than the rate asks, so the two agree within 20% plus 2 s.
    assert!(
        (real - estimate).abs() <= 0.2 * estimate + 2.0,
        "forecast {estimate:.1} s, real run {real:.1} s on 3 ranks"
    );
}

#[test]
fn submit_can_take_its_job_count_from_the_forecast() {
    // 30 URLs at 2 req/s need 15 s: one 12-minute job (less REQUEST_TIMEOUT_SECS=5 and the
    // 30 s commit margin) holds them, whatever SLURM_CHAIN_JOBS says.
    let j = small_job();
    let cfg = std::fs::read_to_string(&j.config).unwrap();
    std::fs::write(&j.config, format!("{cfg}SLURM_TIME=12\nREQUEST_TIMEOUT_SECS=5\nSLURM_CHAIN_JOBS=4\n")).unwrap();
    let o = run(&[
        "--config",
        j.config.to_str().unwrap(),
        "submit",
        "-o",
        j.out.to_str().unwrap(),
        "--dry-run",
        "--jobs-from-plan",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 download job(s) of SLURM_TIME"), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("# job ")).count(), 1, "one job, not SLURM_CHAIN_JOBS=4:\n{text}");
}
