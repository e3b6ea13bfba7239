//! `download --revalidate`: a downloaded dataset asked again, conditionally. What the origin saw
//! (one conditional request per stored image, under the host's rate), what the shards hold
//! afterwards (no byte copied for a 304, a changed image as version 2) and what `index` says.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use distributed_downloader::store::shards::hdf5_io::read_shard;
use test_origin::{image_etag, images, Behaviour, HostSpec, Origin, RequestLog, RequestRecord};

use crate::download::{job, shard_files, Job, FAST};
use crate::index::manifest;
use crate::util::*;

/// A manifest row's stored image: (sha256, at, version, status).
type Stored = (String, f64, u32, String);

/// Runs `index` and reads its manifest, by URL.
fn indexed(out: &Path) -> HashMap<String, Stored> {
    run_ok(&["index", "-o", out.to_str().unwrap()]);
    let df = manifest(out);
    let s = |n: &str| df.column(n).unwrap().str().unwrap().clone();
    let (url, sha, status) = (s("url"), s("sha256"), s("status"));
    let at = df.column("at").unwrap().f64().unwrap().clone();
    let version = df.column("version").unwrap().u32().unwrap().clone();
    let mut rows = HashMap::new();
    for i in 0..df.height() {
        let row = (
            sha.get(i).unwrap().to_string(),
            at.get(i).unwrap(),
            version.get(i).unwrap(),
            status.get(i).unwrap().to_string(),
        );
        assert!(rows.insert(url.get(i).unwrap().to_string(), row).is_none(), "one manifest row per URL");
    }
    rows
}

/// The image requests host `host` saw after its first `from` records (robots.txt left out).
fn seen_since(origin: &Origin, host: usize, from: usize) -> Vec<RequestRecord> {
    origin.log(host)[from..].iter().filter(|r| r.path != "/robots.txt").cloned().collect()
}

/// Bytes of every shard file under `out`.
fn shard_bytes(out: &Path) -> u64 {
    shard_files(out).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum()
}

/// Each stored image's bytes, by URL.
fn stored_bytes(out: &Path) -> HashMap<String, Vec<u8>> {
    let mut bytes = HashMap::new();
    for shard in shard_files(out) {
        for s in read_shard(&shard).unwrap().successes {
            bytes.insert(s.url, s.data);
        }
    }
    bytes
}

fn paths(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("/img/w320-h240-{i}.jpg")).collect()
}

#[test]
fn revalidating_sends_one_conditional_request_per_image_gets_304s_and_copies_no_bytes() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let paths = paths(12);
    let urls: Vec<String> = paths.iter().map(|p| origin.url(0, p)).collect();
    let job = job(&urls, 6, &format!("{FAST}INITIAL_RATE_LIMIT=20\nMAX_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let before = indexed(&job.out);
    let (size_before, bytes_before) = (shard_bytes(&job.out), stored_bytes(&job.out));
    let smallest = paths.iter().map(|p| images::served_bytes(p).unwrap().len()).min().unwrap() as u64;
    let seen = origin.log(0).len();

    let summary = job.download_ok(&["--revalidate"]);
    let asked = seen_since(&origin, 0, seen);
    assert_eq!(asked.len(), 12, "one request per stored image: {asked:?}");
    for (path, r) in paths.iter().zip(sorted_by_path(&asked, &paths)) {
        let etag = image_etag(&images::served_bytes(path).unwrap());
        assert_eq!(r.if_none_match.as_deref(), Some(etag.as_str()), "{path} asked with its stored ETag");
        assert_eq!(r.if_modified_since.as_deref(), Some(test_origin::IMAGE_LAST_MODIFIED));
        assert_eq!((r.status, r.bytes_sent), (304, 0), "{path}: not modified, no body");
    }
    let counts = &summary["run"];
    let (sent, not_modified) = (counts["revalidations_sent"].as_u64(), counts["not_modified"].as_u64());
    assert_eq!((sent, not_modified), (Some(12), Some(12)), "{counts}");
    assert_eq!((counts["changed"].as_u64(), counts["images_stored"].as_u64()), (Some(0), Some(0)), "{counts}");
    assert_eq!(summary["remaining"], 0);

    // No image was copied: the shards are as large as before, give or take metadata.
    let size_after = shard_bytes(&job.out);
    assert!(size_after < size_before + smallest, "shards grew from {size_before} to {size_after} bytes");
    assert_eq!(stored_bytes(&job.out), bytes_before, "every stored image is still there, byte for byte");
    let after = indexed(&job.out);
    assert_eq!(after.len(), 12);
    for (url, (sha, at, version, status)) in &after {
        let (sha_before, at_before, _, _) = &before[url];
        assert_eq!((sha, *version, status.as_str()), (sha_before, 1, "stored"), "{url}");
        assert!(at > at_before, "{url}: confirmed at {at}, first fetched at {at_before}");
    }
    let verify = run(&["verify", "-o", job.out.to_str().unwrap(), "--full"]);
    assert!(verify.status.success(), "verify --full after a revalidation: {}", stderr(&verify));
}

/// `asked`'s record of each of `paths`, in that order (each asked exactly once).
fn sorted_by_path<'a>(asked: &'a [RequestRecord], paths: &[String]) -> Vec<&'a RequestRecord> {
    paths
        .iter()
        .map(|p| {
            let of: Vec<&RequestRecord> = asked.iter().filter(|r| &r.path == p).collect();
            assert_eq!(of.len(), 1, "{p} asked {} times", of.len());
            of[0]
        })
        .collect()
}

#[test]
fn images_changed_on_the_server_are_stored_again_as_version_2_and_the_rest_get_304() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let paths = paths(8);
    let urls: Vec<String> = paths.iter().map(|p| origin.url(0, p)).collect();
    let job = job(&urls, 8, &format!("{FAST}INITIAL_RATE_LIMIT=20\nMAX_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let before = indexed(&job.out);
    for p in &paths[2..4] {
        origin.change_image(0, p);
    }
    let seen = origin.log(0).len();
    let summary = job.download_ok(&["--revalidate"]);
    let asked = seen_since(&origin, 0, seen);
    for (i, r) in sorted_by_path(&asked, &paths).into_iter().enumerate() {
        assert!(r.conditional(), "{} asked conditionally", r.path);
        assert_eq!(r.status, if (2..4).contains(&i) { 200 } else { 304 }, "{}", r.path);
    }
    let counts = &summary["run"];
    assert_eq!((counts["changed"].as_u64(), counts["not_modified"].as_u64()), (Some(2), Some(6)), "{counts}");

    let after = indexed(&job.out);
    for (i, (path, url)) in paths.iter().zip(&urls).enumerate() {
        let (sha, _, version, _) = &after[url];
        if (2..4).contains(&i) {
            assert_eq!((sha.as_str(), *version), (images::changed_sha256(path).unwrap().as_str(), 2), "{path}");
        } else {
            assert_eq!((sha, *version), (&before[url].0, 1), "{path}");
        }
    }
    // The new validators are the ones asked with next time: nothing is new now.
    let seen = origin.log(0).len();
    let summary = job.download_ok(&["--revalidate"]);
    let asked = seen_since(&origin, 0, seen);
    assert_eq!(asked.iter().filter(|r| r.status == 304).count(), 8, "{asked:?}");
    let etag = image_etag(&images::changed_bytes(&paths[2]).unwrap());
    assert_eq!(sorted_by_path(&asked, &paths)[2].if_none_match.as_deref(), Some(etag.as_str()));
    assert_eq!(summary["run"]["changed"].as_u64(), Some(0));
    assert_eq!(indexed(&job.out)[&urls[2]].2, 2, "a 304 keeps the version");
}

/// Sets `checked_at` and `fetched_at` of the stored images of `urls` to `at`, as if they were
/// fetched then.
fn backdate(out: &Path, urls: &[String], at: f64) {
    for shard in shard_files(out) {
        let g = hdf5::File::open_rw(&shard).unwrap().group("images").unwrap();
        let url = g.dataset("url").unwrap().read_raw::<hdf5::types::VarLenUnicode>().unwrap();
        for name in ["checked_at", "fetched_at"] {
            let d = g.dataset(name).unwrap();
            let mut v = d.read_raw::<f64>().unwrap();
            for (i, u) in url.iter().enumerate() {
                if urls.iter().any(|x| x == u.as_str()) {
                    v[i] = at;
                }
            }
            d.write_raw(&v).unwrap();
        }
    }
}

#[test]
fn older_than_leaves_recently_checked_images_alone() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let paths = paths(6);
    let urls: Vec<String> = paths.iter().map(|p| origin.url(0, p)).collect();
    let job = job(&urls, 6, &format!("{FAST}INITIAL_RATE_LIMIT=20\nMAX_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let bad = job.download(&["--revalidate", "--older-than", "3 weeks"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(stderr(&bad).contains("--older-than") && stderr(&bad).contains("e.g. 90d"), "{}", stderr(&bad));

    let seen = origin.log(0).len();
    job.download_ok(&["--revalidate", "--older-than", "1h"]);
    assert!(seen_since(&origin, 0, seen).is_empty(), "images fetched a minute ago are not asked again");

    // Three images as if fetched 100 days ago: only they are asked about.
    backdate(&job.out, &urls[..3], 1.7e9);
    let seen = origin.log(0).len();
    let summary = job.download_ok(&["--revalidate", "--older-than", "90d"]);
    let mut asked: Vec<String> = seen_since(&origin, 0, seen).into_iter().map(|r| r.path).collect();
    asked.sort();
    assert_eq!(asked, paths[..3], "only the old images");
    assert_eq!(summary["run"]["not_modified"].as_u64(), Some(3));
}

#[test]
fn a_rate_limited_host_sees_no_more_than_its_rate_during_revalidation() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::RateLimited { per_second: 4.0, retry_after: None })])
            .unwrap();
    let paths: Vec<String> = (0..24).map(|i| format!("/img/w64-h48-{i}.jpg")).collect();
    let urls: Vec<String> = paths.iter().map(|p| origin.url(0, p)).collect();
    let job = job(&urls, 1000, &format!("{FAST}INITIAL_RATE_LIMIT=4\nMAX_RATE_LIMIT=10\n"));
    job.download_ok(&[]);
    let seen = origin.log(0).len();
    let summary = job.download_ok(&["--revalidate"]);
    let asked = RequestLog::new(seen_since(&origin, 0, seen));
    let window = asked.max_requests_in_window(Duration::from_secs(1));
    assert!(window <= 5, "{window} requests in 1 s at a host that allows 4");
    assert!(asked.count_status(429) <= 2, "refused {} times", asked.count_status(429));
    assert_eq!(asked.count_status(304), 24, "every image confirmed once: {:?}", asked.statuses());
    assert_eq!(summary["run"]["not_modified"].as_u64(), Some(24));
}

/// Twelve images of one host (10 req/s, a commit every 3 rows) downloaded, for a revalidation
/// to be killed midway: the origin, the image paths, their URLs and the job.
fn twelve_downloaded() -> (Origin, Vec<String>, Vec<String>, Job) {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let paths = paths(12);
    let urls: Vec<String> = paths.iter().map(|p| origin.url(0, p)).collect();
    let job: Job = job(&urls, 12, &format!("{FAST}INITIAL_RATE_LIMIT=10\nMAX_RATE_LIMIT=10\nCOMMIT_ROWS=3\n"));
    job.download_ok(&[]);
    (origin, paths, urls, job)
}

#[test]
fn a_revalidation_killed_midway_and_run_again_loses_nothing_and_leaves_one_record_per_row() {
    let (origin, paths, urls, job) = twelve_downloaded();
    let before = indexed(&job.out);
    let bytes_before = stored_bytes(&job.out);
    origin.change_image(0, &paths[11]);
    // As if downloaded 100 days ago, and revalidated every 90 days.
    backdate(&job.out, &urls, 1.7e9);
    let seen = origin.log(0).len();
    let dir = tempdir();
    let marker = dir.path().join("paused");
    let (cfg, out) = (job.config.to_str().unwrap(), job.out.to_str().unwrap());
    let args = ["--config", cfg, "download", "-o", out, "--revalidate", "--older-than", "90d"];
    kill_at_pause(&args, "revalidate-commit", &marker, Duration::from_secs(60));
    let first = seen_since(&origin, 0, seen).len();
    assert!(first < 12, "killed midway: {first} images asked");

    // Run again: the rows the killed run committed were checked just now, and are left alone.
    job.download_ok(&["--revalidate", "--older-than", "90d"]);
    let asked = seen_since(&origin, 0, seen);
    for p in &paths {
        assert!(asked.iter().any(|r| &r.path == p && r.conditional()), "{p} was revalidated");
    }
    assert!(asked.len() < 12 + 3, "the rows committed before the kill were not asked again: {}", asked.len());
    let after = indexed(&job.out);
    assert_eq!(after.len(), 12, "one final record per row");
    let bytes_after = stored_bytes(&job.out);
    for (i, url) in urls.iter().enumerate() {
        let (sha, _, version, status) = &after[url];
        assert_eq!(status, "stored", "{url}");
        if i == 11 {
            assert_eq!((sha.as_str(), *version), (images::changed_sha256(&paths[11]).unwrap().as_str(), 2));
        } else {
            assert_eq!((sha, *version), (&before[url].0, 1), "{url}");
            assert_eq!(bytes_after[url], bytes_before[url], "{url}: the stored bytes are kept");
        }
    }
    let verify = run(&["verify", "-o", out, "--full"]);
    assert!(verify.status.success(), "verify --full: {}", stderr(&verify));
    // The batch is one shard again, holding its images' bytes itself.
    let shards = shard_files(&job.out);
    assert_eq!(shards.len(), 1, "{shards:?}");
    let g = hdf5::File::open(&shards[0]).unwrap().group("images").unwrap();
    assert!(!g.link_exists("carried_from"), "no reference outlives the shards it pointed into");
}

/// A whole revalidation (no `--older-than`) stopped by a time limit and run again: it finishes
/// the pass the first run started, and only a run after the pass ended checks everything again.
#[test]
fn a_whole_revalidation_killed_midway_resumes_its_pass_and_the_next_pass_starts_anew() {
    let (origin, paths, _, job) = twelve_downloaded();
    let pass_file = job.out.join("revalidation_pass.json");
    let seen = origin.log(0).len();
    let dir = tempdir();
    let marker = dir.path().join("paused");
    let (cfg, out) = (job.config.to_str().unwrap(), job.out.to_str().unwrap());
    let args = ["--config", cfg, "download", "-o", out, "--revalidate"];
    kill_at_pause(&args, "revalidate-commit", &marker, Duration::from_secs(60));
    let first = seen_since(&origin, 0, seen).len();
    assert!(first < 12, "killed midway: {first} images asked");
    assert!(pass_file.exists(), "the unfinished pass is recorded");
    let plan = run(&["--config", cfg, "plan", "-o", out, "--json", "--revalidate"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let left = plan["urls_remaining"].as_u64().unwrap();
    assert!(left < 12 && left + first as u64 >= 12, "plan counts what the pass has left: {left} after {first} asked");

    let again = job.download(&["--revalidate"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("resuming the revalidation pass started"), "{}", stderr(&again));
    let asked = seen_since(&origin, 0, seen);
    for p in &paths {
        assert!(asked.iter().any(|r| &r.path == p && r.conditional()), "{p} was revalidated");
    }
    assert!(asked.len() < 12 + 3, "the rows committed before the kill were not asked again: {}", asked.len());
    assert!(!pass_file.exists(), "a run that ends with nothing left ends the pass");

    // The pass is over: the next one asks about every image again.
    let seen = origin.log(0).len();
    job.download_ok(&["--revalidate"]);
    let asked = seen_since(&origin, 0, seen);
    assert_eq!(asked.iter().filter(|r| r.conditional()).count(), 12, "a new pass asks about all 12");
    assert_eq!(indexed(&job.out).len(), 12, "one final record per row");
}
