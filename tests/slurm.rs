//! `submit`, `status` and the chain of jobs, against a real one-node Slurm that
//! `scripts/slurm-cluster.sh` installs and starts (as root; CI runs it through `make test`).
//!
//! Jobs get a one-minute time limit, so each has about 20 s of work before its deadline (the
//! 35 s margin is REQUEST_TIMEOUT_SECS 5 + 30 s to commit), and two ranks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_origin::{Behaviour, HostSpec, Origin, RetryAfterForm};

use crate::util::*;

/// Starts (or finds running) the test cluster. Set DD_SKIP_SLURM_TESTS=1 to skip these tests on a
/// machine where they cannot run (not root, no apt): they then print that they did not run.
fn slurm_cluster() -> bool {
    if std::env::var_os("DD_SKIP_SLURM_TESTS").is_some() {
        eprintln!("DD_SKIP_SLURM_TESTS is set: the real-Slurm test did NOT run");
        return false;
    }
    // Once per test process; the script also takes a lock, for other processes.
    static STARTED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let started = STARTED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-cluster.sh");
        let out = Command::new(&script).arg("start").output().expect("run scripts/slurm-cluster.sh");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out)))
        }
    });
    if let Err(e) = started {
        panic!("scripts/slurm-cluster.sh start failed (set DD_SKIP_SLURM_TESTS=1 where Slurm cannot be started):\n{e}");
    }
    true
}

/// A prepped output folder of `per_host` URLs on each origin host, with its config file.
fn prepped(origin: &Origin, per_host: usize, config: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempdir();
    let mut urls = Vec::new();
    for h in 0..origin.len() {
        urls.extend((0..per_host).map(|i| origin.url(h, &format!("/img/w64-h48-{i}.jpg"))));
    }
    std::fs::write(dir.path().join("list.csv"), format!("url\n{}\n", urls.join("\n"))).unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("job.env");
    std::fs::write(
        &cfg,
        format!(
            "CONTACT=tests@example.org\nOUTPUT_DIR={}\nBATCH_SIZE=20\nREQUEST_TIMEOUT_SECS=5\nCOMMIT_SECS=2\n\
             MIN_ROUND_SECS=5\nSLURM_NODES=1\nSLURM_TASKS_PER_NODE=2\nSLURM_CPUS_PER_TASK=1\nSLURM_TIME=1\n\
             SLURM_PREP_TIME=5\n{config}",
            out.display()
        ),
    )
    .unwrap();
    (dir, cfg, out)
}

fn dd(cfg: &Path, args: &[&str]) -> std::process::Output {
    let mut full = vec!["--config", cfg.to_str().unwrap()];
    full.extend_from_slice(args);
    run(&full)
}

fn status_json(cfg: &Path) -> Value {
    let o = dd(cfg, &["status", "--json"]);
    assert!(o.status.success(), "status --json: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("status --json prints JSON")
}

fn jobs_record(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("slurm/jobs.json")).unwrap()).unwrap()
}

/// Waits until no job of the latest chain is queued or running (bounded: `limit`).
fn wait_for_chain(cfg: &Path, limit: Duration, mut during: impl FnMut(&Value)) -> Value {
    let start = Instant::now();
    loop {
        let s = status_json(cfg);
        let states: Vec<String> =
            s["chain"]["jobs"].as_array().unwrap().iter().map(|j| j["state"].as_str().unwrap().to_string()).collect();
        let active =
            states.iter().any(|st| matches!(st.as_str(), "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING"));
        if !active {
            return s;
        }
        during(&s);
        assert!(start.elapsed() < limit, "the chain still runs after {limit:?}: {states:?}");
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Every record of every committed shard, read with plain h5py: uuid -> records. Where no
/// Python has h5py (and that may be skipped, see `util::python`), read with our own reader.
fn records_by_uuid(out: &Path) -> HashMap<String, usize> {
    let check = "reading the chain's shards with plain h5py (counted with our own reader instead)";
    let Some(mut python) = python_with(&["h5py"], check) else {
        let (ok, failed) = crate::download::records(out);
        let mut seen = HashMap::new();
        for uuid in ok.into_iter().map(|r| r.uuid).chain(failed.into_iter().map(|r| r.uuid)) {
            *seen.entry(uuid).or_insert(0) += 1;
        }
        return seen;
    };
    let script = r#"
import glob, os, h5py, json, collections
seen = collections.Counter()
for path in glob.glob(os.environ["OUT"] + "/downloads/**/*.h5", recursive=True):
    with h5py.File(path, "r") as f:
        if "compacts_below" in f.attrs:
            pass
        for group in ("images", "errors"):
            for u in f[group + "/uuid"].asstr()[:]:
                seen[u] += 1
print(json.dumps(seen))
"#;
    let o = python.arg("-c").arg(script).env("OUT", out).output().unwrap();
    assert!(o.status.success(), "h5py: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_chain_of_one_minute_jobs_resumes_across_jobs_ends_complete_and_stops_by_itself() {
    if !slurm_cluster() {
        return;
    }
    // Two hosts at 2 req/s, 80 URLs each: 40 s of requests per host, two jobs of ~20 s at least.
    let origin = Origin::start(
        (0..2)
            .map(|i| HostSpec::loopback(60 + i, Behaviour::RateLimited { per_second: 2.5, retry_after: None }))
            .collect(),
    )
    .unwrap();
    let (_dir, cfg, out) = prepped(&origin, 80, "INITIAL_RATE_LIMIT=2\nMAX_RATE_LIMIT=2\nSLURM_CHAIN_JOBS=5\n");
    let list = out.parent().unwrap().join("list.csv");
    let o = dd(&cfg, &["submit", "--input", list.to_str().unwrap()]);
    assert!(o.status.success(), "submit: {}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("chain 1 queued: 6 job(s)"), "{text}");

    // A second submit while the chain is queued is refused, and says how to cancel.
    let again = dd(&cfg, &["submit"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("still queued or running") && stderr(&again).contains("cancel"),
        "{}",
        stderr(&again)
    );

    // During the chain, status matches what is committed so far.
    let mut seen_running = false;
    let end = wait_for_chain(&cfg, Duration::from_secs(600), |s| {
        if s["totals"]["rows"].as_u64() == Some(160) {
            let t = &s["totals"];
            let (stored, failed, remaining) =
                (t["stored"].as_u64().unwrap(), t["failed"].as_u64().unwrap(), t["remaining"].as_u64().unwrap());
            assert_eq!(stored + failed + remaining, 160, "{t}");
        }
        seen_running |= s["chain"]["jobs"].as_array().unwrap().iter().any(|j| j["state"] == "RUNNING");
    });
    assert!(seen_running, "status never showed a running job");

    // Complete, every row exactly once, read back with h5py, and status says the same.
    let records = records_by_uuid(&out);
    assert_eq!(records.len(), 160, "every row has a record");
    assert!(records.values().all(|n| *n == 1), "no row twice: {records:?}");
    assert_eq!(end["totals"]["remaining"], 0, "{end}");
    assert_eq!(end["totals"]["stored"].as_u64().unwrap() + end["totals"]["failed"].as_u64().unwrap(), 160);
    assert_eq!(end["totals"]["stored"], 160, "hosts at their limit refuse nothing: {end}");

    // The chain spanned more than one download job, each later one resuming, and stopped by itself.
    let record = jobs_record(&out);
    let chain = &record["chains"][0];
    let jobs = chain["jobs"].as_array().unwrap();
    let ran: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == "download" && j["ended"].is_object()).collect();
    assert!(ran.len() >= 2, "one job was enough: make the hosts slower ({record})");
    for (i, job) in ran.iter().enumerate() {
        let log = out.join(format!("logs/job-{}-rank-0.log", job["id"].as_str().unwrap()));
        let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(out.join(format!("logs/job-{}-rank-1.log", job["id"].as_str().unwrap())).exists(), "a log per rank");
        if i > 0 {
            assert!(text.contains("download: resuming:"), "job {} did not take over rows:\n{text}", job["id"]);
        }
    }
    let stopped = chain["stopped"]["reason"].as_str().unwrap_or_default();
    assert!(stopped.starts_with("complete"), "the chain did not stop by itself: {record}");
    assert!(
        jobs.len() > ran.len() + 1,
        "no download job was left to cancel: raise SLURM_CHAIN_JOBS so that stopping early is tested ({record})"
    );
    for j in jobs.iter().filter(|j| !j["ended"].is_object() && j["kind"] == "download") {
        let state =
            end["chain"]["jobs"].as_array().unwrap().iter().find(|s| s["id"] == j["id"]).unwrap()["state"].clone();
        assert!(state != "RUNNING" && state != "PENDING", "job {} is still {state}", j["id"]);
    }
}

#[test]
fn a_chain_that_changes_nothing_stops_early_with_its_message() {
    if !slurm_cluster() {
        return;
    }
    // One request is served; every later one is refused with `Retry-After: 3600`, so the second
    // job has nothing it may send and commits nothing.
    let origin = Origin::start(vec![HostSpec::loopback(
        62,
        Behaviour::RateLimited { per_second: 0.0001, retry_after: Some(RetryAfterForm::Seconds(3600)) },
    )])
    .unwrap();
    let (_dir, cfg, out) = prepped(&origin, 10, "SLURM_CHAIN_JOBS=4\n");
    let list = out.parent().unwrap().join("list.csv");
    let o = dd(&cfg, &["prep", "--input", list.to_str().unwrap()]);
    assert!(o.status.success(), "prep: {}", stderr(&o));
    let o = dd(&cfg, &["submit"]);
    assert!(o.status.success(), "submit: {}", stderr(&o));
    let end = wait_for_chain(&cfg, Duration::from_secs(400), |_| {});

    let record = jobs_record(&out);
    let chain = &record["chains"][0];
    let jobs = chain["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4, "no prep job: the folder had batches ({record})");
    let reason = chain["stopped"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("nothing changed"), "{record}");
    let stopper = chain["stopped"]["by_job"].as_str().unwrap();
    let ended: Vec<&Value> = jobs.iter().filter(|j| j["ended"].is_object()).collect();
    assert!(ended.len() <= 2, "it looped through the chain: {record}");
    assert_eq!(ended.last().unwrap()["id"], stopper);
    assert_eq!(ended.last().unwrap()["ended"]["exit_code"], 3, "{record}");
    assert_eq!(chain["stopped"]["cancelled"].as_array().unwrap().len(), 4 - ended.len(), "{record}");
    let log = std::fs::read_to_string(out.join(format!("logs/job-{stopper}.log"))).unwrap();
    assert!(log.contains("the chain stops: nothing changed"), "{log}");
    let rank0 = std::fs::read_to_string(out.join(format!("logs/job-{stopper}-rank-0.log"))).unwrap();
    assert!(rank0.contains("no progress"), "{rank0}");
    assert_eq!(end["chain"]["stopped"].as_str(), Some(reason));
    assert_eq!(end["totals"]["remaining"].as_u64().unwrap(), 10 - end["totals"]["stored"].as_u64().unwrap());
    // The origin saw the one request, then nothing it had asked us to hold back.
    let log = origin.log(0).without_robots();
    assert!(log.len() <= 3, "the host was sent {} requests after asking for an hour's pause", log.len());

    // A later submit starts again (nothing is queued), and cancel stops it.
    let o = dd(&cfg, &["submit", "--jobs", "1"]);
    assert!(o.status.success(), "a new submit after a stopped chain: {}", stderr(&o));
    let o = dd(&cfg, &["cancel"]);
    assert!(o.status.success(), "cancel: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cancelled"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(jobs_record(&out)["chains"][1]["stopped"]["reason"], "cancelled by the user");
}

#[test]
fn submit_dry_run_prints_the_commands_and_scripts_and_queues_nothing() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let cfg = dir.path().join("job.env");
    std::fs::write(dir.path().join("list.csv"), "url\nhttp://127.0.0.1:9/a.jpg\n").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "CONTACT=t@example.org\nOUTPUT_DIR={}\nSLURM_ACCOUNT=bio42\nSLURM_PARTITION=cpu\nSLURM_NODES=3\nSLURM_CHAIN_JOBS=2\n",
            out.display()
        ),
    )
    .unwrap();
    // Without batches and without --input, it says what to pass.
    let o = dd(&cfg, &["submit", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--input"), "{}", stderr(&o));

    let list = dir.path().join("list.csv");
    let o = dd(&cfg, &["submit", "--dry-run", "--input", list.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let commands: Vec<&str> = text.lines().filter(|l| l.starts_with("# job ")).collect();
    assert_eq!(commands.len(), 3, "prep and two downloads:\n{text}");
    assert!(commands[0].contains("prep.sbatch") && !commands[0].contains("--dependency"), "{text}");
    assert!(
        commands[1].contains("--dependency=afterany:<job 1>") && commands[2].contains("afterany:<job 2>"),
        "{text}"
    );
    for line in
        ["#SBATCH --account=bio42", "#SBATCH --partition=cpu", "#SBATCH --nodes=3", "srun --mpi=pmix --cpu-bind=none"]
    {
        assert!(text.contains(line), "missing {line}:\n{text}");
    }
    assert!(!out.exists(), "a dry run writes nothing");
}

#[test]
fn status_of_a_local_run_matches_its_summary_and_names_the_slowest_server() {
    use crate::download::{job, FAST};
    let origin = Origin::start(vec![
        HostSpec::loopback(63, Behaviour::Ok),
        HostSpec::loopback(64, Behaviour::NotFound),
        HostSpec::loopback(65, Behaviour::Ok),
    ])
    .unwrap();
    let mut urls: Vec<String> = (0..6).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    urls.extend((0..3).map(|i| origin.url(1, &format!("/img/w64-h48-{i}.jpg"))));
    urls.extend((0..12).map(|i| origin.url(2, &format!("/img/w64-h48-{i}.jpg"))));
    let j = job(&urls, 5, &format!("{FAST}INITIAL_RATE_LIMIT=4\nMAX_RATE_LIMIT=4\n"));
    let cfg = j.config.to_str().unwrap();
    let out = j.out.to_str().unwrap();

    // Before any download: nothing done, the floor is the largest host at its starting rate.
    let before: Value = serde_json::from_str(&run_ok(&["--config", cfg, "status", "-o", out, "--json"])).unwrap();
    assert_eq!(before["totals"]["remaining"], 21, "{before}");
    let slowest = &before["servers"][0];
    assert!(slowest["server"].as_str().unwrap().contains("127.0.0.65") && slowest["rows"] == 12, "{before}");
    assert_eq!(before["eta"]["slowest_server"], slowest["server"], "{before}");
    assert_eq!(before["eta"]["politeness_floor_secs"], 3.0, "12 URLs at 4 req/s: {before}");
    assert!(before["chain"].is_null(), "no chain was submitted");

    let summary = j.download_ok(&[]);
    let after: Value = serde_json::from_str(&run_ok(&["--config", cfg, "status", "-o", out, "--json"])).unwrap();
    let t = &after["totals"];
    assert_eq!(t["stored"], summary["succeeded"], "{after}");
    assert_eq!(t["failed"], summary["failed"], "{after}");
    assert_eq!(t["failed_by_class"]["http_4xx"], 3, "{after}");
    assert_eq!(t["stored_bytes"], summary["stored_bytes"], "{after}");
    assert_eq!(t["remaining"], 0, "{after}");
    assert_eq!(after["eta"]["estimate_secs"], 0.0, "{after}");
    // The run left its start and end in runs.jsonl, with what was committed at each.
    let runs = std::fs::read_to_string(j.out.join("runs.jsonl")).unwrap();
    let lines: Vec<Value> = runs.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{runs}");
    assert_eq!((lines[0]["event"].as_str(), lines[0]["done"].as_u64()), (Some("start"), Some(0)), "{runs}");
    assert_eq!((lines[1]["event"].as_str(), lines[1]["done"].as_u64()), (Some("end"), Some(21)), "{runs}");
    let screen = run_ok(&["--config", cfg, "status", "-o", out]);
    assert!(screen.contains("complete: every row has a committed record"), "{screen}");
    assert!(screen.contains("servers, slowest first (3 of 3)"), "{screen}");

    // An output folder that does not exist is named.
    let o = run(&["--config", cfg, "status", "-o", "/nonexistent/dd-out"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/dd-out does not exist"), "{}", stderr(&o));
}
