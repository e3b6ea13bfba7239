//! Nothing committed is ever replaced or silently skipped, and damaged inputs are named: a second
//! download on the same folder, an unreadable entry under `downloads/`, a batch file with a null
//! URL, a learned state that cannot be read.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude::*;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records, shard_files, FAST};
use crate::util::*;

/// Every committed shard's bytes, by path: to show that nothing committed changed.
fn committed(out: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    shard_files(out).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn two_downloads_started_together_on_one_folder_one_runs_and_the_other_fetches_nothing() {
    // 30 URLs at 200 ms each with two in flight take about 3 s: without the folder's lock both
    // runs would read the (empty) ledger long before either commits, and fetch every row twice.
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Slow { delay: Duration::from_millis(200) })]).unwrap();
    let urls: Vec<String> = (0..30).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let spawn = || job.spawn(std::process::Stdio::piped());
    let (a, b) = (spawn(), spawn());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let codes: Vec<Option<i32>> = outputs.iter().map(|o| o.status.code()).collect();
    assert!(codes.contains(&Some(0)) && codes.contains(&Some(1)), "one run commits, the other stops: {codes:?}");
    let loser = outputs.iter().find(|o| o.status.code() == Some(1)).unwrap();
    let message = stderr(loser);
    assert!(message.contains("writer.lock is held by pid") && message.contains("one process at a time"), "{message}");
    assert_eq!(
        origin.log(0).without_robots().len(),
        30,
        "each image was asked for once, by the run that holds the lock"
    );

    let shards = shard_files(&job.out);
    assert_eq!(shards.len(), 1, "{shards:?}");
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    // The committed shard is the winner's: a resume finds nothing left and changes nothing.
    let before = committed(&job.out);
    let again = job.download(&[]);
    assert!(stderr(&again).contains("nothing left to do"), "{}", stderr(&again));
    assert_eq!(committed(&job.out), before);
}

#[test]
fn a_batch_folder_that_cannot_be_read_stops_the_run_instead_of_fetching_its_rows_again() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..6).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 4, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    // Batch 1's folder now points at a mount that is gone (a dangling link stands for any
    // folder whose metadata cannot be read: a broken mount, EIO, no permission).
    let server_dir = sorted_dirs(&job.out.join("downloads"))[0].clone();
    let batch1 = server_dir.join("partition_id=1");
    let away = job.out.join("moved-away");
    std::fs::rename(&batch1, &away).unwrap();
    std::os::unix::fs::symlink("/nonexistent/distributed-downloader-test", &batch1).unwrap();
    let before = committed(&job.out);
    let requests_before = origin.log(0).len();

    let out = job.download(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    eprintln!("{message}");
    assert!(message.contains("partition_id=1") && message.contains("re-run"), "{message}");
    assert_eq!(committed(&job.out), before, "no committed file changed");
    assert_eq!(origin.log(0).len(), requests_before, "the rows of the unreadable batch were not fetched again");
}

/// Sets `column` to null in row `row` of the first batch file under `out`; returns the file.
fn null_in_first_batch(out: &Path, column: &str, row: usize) -> PathBuf {
    let dir = sorted_dirs(&out.join("urls"))[0].clone();
    let batch_dir = sorted_dirs(&dir)[0].clone();
    let file = std::fs::read_dir(&batch_dir).unwrap().map(|e| e.unwrap().path()).next().unwrap();
    let mut df = ParquetReader::new(File::open(&file).unwrap()).finish().unwrap();
    let values: Vec<Option<String>> = df
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| if i == row { None } else { v.map(str::to_string) })
        .collect();
    df.with_column(Column::new(column.into(), values)).unwrap();
    ParquetWriter::new(File::create(&file).unwrap()).finish(&mut df).unwrap();
    file
}

#[test]
fn a_null_url_in_a_batch_file_is_an_error_naming_the_file_and_row() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..4).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let file = null_in_first_batch(&job.out, "url", 2);
    let out = job.download(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(message.contains(file.to_str().unwrap()) && message.contains("no `url` in row 2"), "{message}");
    assert!(shard_files(&job.out).is_empty(), "no row of the damaged batch is recorded as anything");
}

#[test]
fn a_learned_state_that_cannot_be_read_is_reported_and_the_host_starts_fresh() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..4).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let table = job.out.join("servers.parquet");
    let mut df = ParquetReader::new(File::open(&table).unwrap()).finish().unwrap();
    let damaged: Vec<Option<&str>> = vec![Some("{\"rate\": ")];
    df.with_column(Column::new("learned_state".into(), damaged)).unwrap();
    ParquetWriter::new(File::create(&table).unwrap()).finish(&mut df).unwrap();

    let out = job.download(&["--verbose"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains("learned state of 127.0.0.2") && message.contains("starts fresh from INITIAL_RATE_LIMIT"),
        "{message}"
    );
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    assert_eq!(ok.len(), 4);
}

#[test]
fn retry_failed_fetches_exactly_the_retriable_failures_once_and_their_new_record_is_final() {
    let first =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::NotFound)]).unwrap();
    let mut dead = Origin::start(vec![HostSpec::loopback(4, Behaviour::Dead)]).unwrap();
    let paths: Vec<String> = (0..3).map(|i| format!("/img/w64-h48-{i}.jpg")).collect();
    let mut urls: Vec<String> =
        (0..2).flat_map(|h| paths.iter().map(move |p| (h, p))).map(|(h, p)| first.url(h, p)).collect();
    urls.extend(paths.iter().map(|p| dead.url(0, p)));
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"));
    let summary = job.download_ok(&[]);
    assert_eq!((summary["succeeded"].as_u64(), summary["failed"].as_u64()), (Some(3), Some(6)));
    assert_eq!(summary["retriable"], 3, "the dead host's rows; a 404 is final: {summary}");

    let plain = job.download(&[]);
    assert!(stderr(&plain).contains("3 of them are retriable failures"), "{}", stderr(&plain));

    // The dead host comes back.
    let dead_addr = dead.addr(0);
    dead.stop();
    let requests_before: Vec<usize> = (0..2).map(|h| first.log(h).len()).collect();
    let back = Origin::start(vec![HostSpec::new(dead_addr, Behaviour::Ok)]).unwrap();
    let summary = job.download_ok(&["--retry-failed"]);
    assert_eq!(back.log(0).without_robots().len(), 3, "each retriable row is fetched once");
    assert_eq!((0..2).map(|h| first.log(h).len()).collect::<Vec<_>>(), requests_before, "nothing else is fetched");
    assert_eq!((summary["succeeded"].as_u64(), summary["failed"].as_u64()), (Some(6), Some(3)));
    assert_eq!((summary["retriable"].as_u64(), summary["remaining"].as_u64()), (Some(0), Some(0)));
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["failed_by_class"], serde_json::json!({"http_4xx": 3}));

    let again = job.download(&["--retry-failed"]);
    assert!(stderr(&again).contains("nothing left to do"), "{}", stderr(&again));
    assert_eq!(back.log(0).without_robots().len(), 3);
}

#[test]
fn prep_rerun_on_a_changed_input_is_refused_by_download_before_any_row_is_fetched_twice() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..6).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 4, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let before = committed(&job.out);
    let requests = origin.log(0).len();

    // The same host, other rows: batch 0 now holds other URLs under the same partition id.
    let changed: Vec<String> = (3..9).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let input = job.out.parent().unwrap().join("changed.csv");
    std::fs::write(&input, format!("url\n{}\n", changed.join("\n"))).unwrap();
    let cfg = job.config.to_str().unwrap();
    let (inp, out) = (input.to_str().unwrap(), job.out.to_str().unwrap());
    run_ok(&["--config", cfg, "prep", "-i", inp, "-o", out, "--batch-size", "4", "--force"]);

    let refused = job.download(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(message.contains("not the batch its committed shards were downloaded from"), "{message}");
    assert!(message.contains("Re-run prep with --force on the original input"), "{message}");
    assert_eq!(origin.log(0).len(), requests, "no row was fetched again");
    assert_eq!(committed(&job.out), before, "no committed file changed");

    // Prep on the original input again: the same batches, the same ids, nothing left to do.
    let original = job.out.parent().unwrap().join("list.csv");
    run_ok(&["--config", cfg, "prep", "-i", original.to_str().unwrap(), "-o", out, "--batch-size", "4", "--force"]);
    let again = job.download(&[]);
    assert!(stderr(&again).contains("nothing left to do"), "{}", stderr(&again));
}

#[test]
fn the_counts_kept_beside_the_shards_agree_with_the_shards() {
    // A retried row moves from its old failure class to its new record in the kept counts too.
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::NotFound)]).unwrap();
    let mut dead = Origin::start(vec![HostSpec::loopback(4, Behaviour::Dead)]).unwrap();
    let mut urls: Vec<String> = (0..8).map(|i| origin.url(i % 2, &format!("/img/w64-h48-{i}.jpg"))).collect();
    urls.extend((0..4).map(|i| dead.url(0, &format!("/img/w64-h48-{i}.jpg"))));
    let job = job(&urls, 3, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"));
    job.download_ok(&[]);
    let addr = dead.addr(0);
    dead.stop();
    let _back = Origin::start(vec![HostSpec::new(addr, Behaviour::Ok)]).unwrap();
    let with_kept_counts = job.download_ok(&["--retry-failed"]);

    let mut summaries = 0;
    for server in sorted_dirs(&job.out.join("downloads")) {
        for batch in sorted_dirs(&server) {
            std::fs::remove_file(batch.join("ledger.json")).unwrap();
            summaries += 1;
        }
    }
    assert_eq!(summaries, 6, "every batch folder has its counts file");
    let from_shards = job.download_ok(&[]);
    for key in ["succeeded", "failed", "retriable", "failed_by_class", "remaining", "duplicates", "stored_bytes"] {
        assert_eq!(with_kept_counts[key], from_shards[key], "{key}");
    }
    assert_eq!(from_shards["succeeded"], 8, "{from_shards}");
}
