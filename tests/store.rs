//! The output folder as a store: an interrupted merge is finished by the next run, and a part
//! moved out of a complete, unmerged batch is fetched again rather than trusted from a stale
//! ledger, on one rank and on two. Asserts what is on disk and what the servers saw.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use distributed_downloader::store::shards::hdf5_io::read_shard;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records, Job, FAST};
use crate::util::*;

/// One host, 12 URLs in one batch, committed 3 rows at a time: 4 parts until the batch completes
/// and its parts are merged. One batch, so that when the merge is killed every row is committed
/// and the servers' counts say exactly what a later run fetched again.
fn one_batch() -> (Origin, Vec<String>, Job) {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..12).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 12, &format!("{FAST}INITIAL_RATE_LIMIT=20\nMAX_RATE_LIMIT=20\nCOMMIT_ROWS=3\n"));
    (origin, urls, job)
}

/// Runs a download that stops inside its first merge (the test-only pause point), and kills it
/// there with SIGKILL. Returns the folder of the batch that was being merged.
fn kill_inside_a_merge(job: &Job) -> PathBuf {
    let marker = job.out.parent().unwrap().join("merging");
    let args = ["--config", job.config.to_str().unwrap(), "download", "-o", job.out.to_str().unwrap()];
    kill_at_pause(&args, "merge", &marker, Duration::from_secs(90)); // SIGKILL, inside the merge
    let merging: Vec<PathBuf> =
        batch_dirs(&job.out).into_iter().filter(|d| names(d).iter().any(|n| n.ends_with(".tmp"))).collect();
    assert_eq!(merging.len(), 1, "one batch holds the merge's temporary file: {merging:?}");
    let parts = names(&merging[0]).iter().filter(|n| n.ends_with(".h5")).count();
    assert_eq!(parts, 4, "the killed merge left the batch's 4 parts: {:?}", names(&merging[0]));
    merging.into_iter().next().unwrap()
}

fn batch_dirs(out: &Path) -> Vec<PathBuf> {
    sorted_dirs(&out.join("downloads")).iter().flat_map(|s| sorted_dirs(s)).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Runs `download` on `ranks` ranks and asserts it succeeded.
fn download_on(job: &Job, ranks: usize) {
    let args = ["--config", job.config.to_str().unwrap(), "download", "-o", job.out.to_str().unwrap(), "--json"];
    let o = if ranks == 1 { run(&args) } else { mpirun(ranks, &args) };
    assert!(o.status.success(), "download on {ranks} rank(s): {}", stderr(&o));
}

/// Every batch is one shard file, with nothing else but its ledger.json.
fn assert_one_file_per_batch(out: &Path) {
    let batches = batch_dirs(out);
    assert_eq!(batches.len(), 1);
    for b in batches {
        let files = names(&b);
        let h5 = files.iter().filter(|n| n.ends_with(".h5")).count();
        assert_eq!(h5, 1, "{}: {files:?}", b.display());
        assert!(files.iter().all(|n| n.ends_with(".h5") || n == "ledger.json"), "{}: {files:?}", b.display());
    }
}

/// How many times the origin served each path.
fn served(origin: &Origin) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for h in 0..origin.len() {
        for r in origin.log(h).without_robots().iter().filter(|r| r.status == 200) {
            *n.entry(r.path.clone()).or_default() += 1;
        }
    }
    n
}

fn path_of(url: &str) -> String {
    format!("/{}", url.splitn(4, '/').nth(3).unwrap())
}

#[test]
fn a_merge_killed_midway_is_finished_by_the_next_run_on_1_and_2_ranks() {
    for ranks in [1, 2] {
        let (origin, urls, job) = one_batch();
        kill_inside_a_merge(&job);
        download_on(&job, ranks);
        assert_one_file_per_batch(&job.out);
        let (ok, failed) = records(&job.out);
        assert_each_url_once(&urls, &ok, &failed);
        // The killed merge's batch was complete: nothing of it is fetched twice.
        let served = served(&origin);
        for u in &urls {
            assert_eq!(served.get(&path_of(u)), Some(&1), "{ranks} rank(s): {u} fetched once");
        }
        let status: serde_json::Value =
            serde_json::from_str(&run_ok(&["status", "-o", job.out.to_str().unwrap(), "--json"])).unwrap();
        assert_eq!(status["totals"]["remaining"], 0, "{status}");
    }
}

#[test]
fn a_part_moved_out_of_a_complete_unmerged_batch_is_fetched_again_on_1_and_2_ranks() {
    for ranks in [1, 2] {
        let (origin, urls, job) = one_batch();
        let batch = kill_inside_a_merge(&job);
        // A middle part moved out, as a user does with a shard they suspect; the last part stays,
        // so the ledger's last shard number still looks right.
        let middle = batch.join("shard-000001.h5");
        let moved: Vec<String> = read_shard(&middle).unwrap().successes.into_iter().map(|r| r.url).collect();
        assert_eq!(moved.len(), 3);
        std::fs::rename(&middle, job.out.parent().unwrap().join("set-aside.h5")).unwrap();

        let status: serde_json::Value =
            serde_json::from_str(&run_ok(&["status", "-o", job.out.to_str().unwrap(), "--json"])).unwrap();
        let remaining = status["totals"]["remaining"].as_u64().unwrap();
        assert!(remaining >= 3, "{ranks} rank(s): status must not call the moved rows done: {status}");

        download_on(&job, ranks);
        assert_one_file_per_batch(&job.out);
        let (ok, failed) = records(&job.out);
        assert_each_url_once(&urls, &ok, &failed);
        let served = served(&origin);
        for u in &urls {
            let times = if moved.contains(u) { 2 } else { 1 };
            assert_eq!(served.get(&path_of(u)), Some(&times), "{ranks} rank(s): {u}");
        }
    }
}

#[test]
fn a_damaged_part_stops_the_merge_naming_it_and_repair_then_download_restores_every_row() {
    let (origin, urls, job) = one_batch();
    let batch = kill_inside_a_merge(&job);
    let damaged = batch.join("shard-000002.h5");
    crate::verify::flip_image_byte(&damaged, 1);
    let bad_url = read_shard(&damaged).unwrap().successes[1].url.clone();

    // The batch is complete, so the next download merges it first: the part's image no longer
    // matches its checksum, and the merge stops there, naming the file, deleting no part.
    let o = job.download(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("shard-000002.h5") && err.contains("verify --full --repair"), "{err}");
    let parts: Vec<String> = names(&batch).into_iter().filter(|n| n.ends_with(".h5")).collect();
    assert_eq!(parts.len(), 4, "no part deleted: {parts:?}");

    let cfg = job.config.to_str().unwrap();
    let out = job.out.to_str().unwrap();
    let found = run(&["--config", cfg, "verify", "-o", out, "--full"]);
    assert_ne!(found.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&found.stdout).contains(&bad_url), "verify names the row");
    // What the message says to do.
    run_ok(&["--config", cfg, "verify", "-o", out, "--full", "--repair"]);
    download_on(&job, 1);

    assert_one_file_per_batch(&job.out);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    let served = served(&origin);
    for u in &urls {
        let times = if *u == bad_url { 2 } else { 1 };
        assert_eq!(served.get(&path_of(u)), Some(&times), "{u}");
    }
}
