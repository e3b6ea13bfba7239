//! `verify` end to end: a real download from the test origin, damage done to the files as a disk
//! or a crash would do it, then what `verify` says, what `--repair` moves, and what the origin
//! sees requested again by the next `download`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use distributed_downloader::store::shards::hdf5_io::read_shard;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records, shard_files, Job, FAST};
use crate::util::*;

/// `count` image URLs on each host of `origin`.
fn urls(origin: &Origin, count: usize) -> Vec<String> {
    (0..origin.len()).flat_map(|h| (0..count).map(move |i| origin.url(h, &format!("/img/w64-h48-{i}.jpg")))).collect()
}

fn verify(job: &Job, extra: &[&str]) -> Output {
    let mut args = vec!["--config", job.config.to_str().unwrap(), "verify", "-o", job.out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON on stdout ({e}):\n{}", stdout(out)))
}

/// Flips every bit of one byte in the middle of image `index` of `shard`, in the file itself,
/// as a bad disk would: found by searching the file for the image's bytes (a real image's bytes
/// occur once).
pub(crate) fn flip_image_byte(shard: &Path, index: usize) {
    let at = {
        let image = read_shard(shard).unwrap().successes[index].data.clone();
        let file = std::fs::read(shard).unwrap();
        let found: Vec<usize> =
            file.windows(image.len()).enumerate().filter(|(_, w)| *w == image).map(|(i, _)| i).collect();
        assert_eq!(found.len(), 1, "image {index}'s bytes occur once in {}", shard.display());
        (found[0] + image.len() / 2) as u64
    };
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(shard).unwrap();
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut byte).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[!byte[0]]).unwrap();
}

/// How many times host 0 of `origin` was asked for each of `urls`.
fn requests(origin: &Origin, host: usize, urls: &[String]) -> Vec<usize> {
    let log = origin.log(host);
    urls.iter().map(|u| log.count_path(&u[origin.base_url(host).len()..])).collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                v.push(p)
            }
        }
    }
    v
}

#[test]
fn a_clean_download_verifies_clean_and_json_reports_the_counts() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls = urls(&origin, 6);
    let job = job(&urls, 4, FAST);
    job.download_ok(&[]);
    let out = verify(&job, &["--json"]);
    assert!(out.status.success(), "verify of a clean download failed:\n{}\n{}", stdout(&out), stderr(&out));
    let report = json(&out);
    assert_eq!(report["batches"], 2);
    assert_eq!(report["batches_clean"], 2);
    assert_eq!((report["rows"].as_u64(), report["succeeded"].as_u64()), (Some(6), Some(6)));
    assert_eq!(report["images_checked"], 6, "a batch of 4 and one of 2: every image is in the sample of 8");
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    let text = stdout(&verify(&job, &["--full"]));
    assert!(text.contains("2 of 2 batches clean") && text.contains("no problems"), "{text}");
}

#[test]
fn a_flipped_byte_in_one_image_is_named_and_repair_fetches_exactly_that_row_again() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls = urls(&origin, 6);
    let job = job(&urls, 3, FAST);
    job.download_ok(&[]);
    let shard = shard_files(&job.out)[0].clone();
    let bad = read_shard(&shard).unwrap().successes[1].clone();
    flip_image_byte(&shard, 1);

    let found = verify(&job, &["--full"]);
    assert_eq!(found.status.code(), Some(1), "a damaged image fails verify:\n{}", stdout(&found));
    let text = stdout(&found);
    assert!(text.contains(&bad.uuid) && text.contains(&bad.url) && text.contains("checksum"), "{text}");
    assert!(text.contains(&shard.display().to_string()), "the shard is named: {text}");

    assert_eq!(requests(&origin, 0, &urls), vec![1; 6]);
    let repaired = verify(&job, &["--repair"]);
    assert!(repaired.status.success(), "repair failed:\n{}\n{}", stdout(&repaired), stderr(&repaired));
    assert!(stdout(&repaired).contains("1 row(s) are now pending"), "{}", stdout(&repaired));
    job.download_ok(&[]);
    let again: Vec<usize> = urls.iter().map(|u| if *u == bad.url { 2 } else { 1 }).collect();
    assert_eq!(requests(&origin, 0, &urls), again, "only the damaged row is fetched again");
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    let after = verify(&job, &["--full"]);
    assert!(after.status.success(), "verify after repair and download:\n{}", stdout(&after));
}

#[test]
fn a_truncated_shard_is_found_quarantined_and_its_rows_fetched_again() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls = urls(&origin, 6);
    let job = job(&urls, 3, FAST);
    job.download_ok(&[]);
    let shard = shard_files(&job.out)[0].clone();
    let lost: Vec<String> = read_shard(&shard).unwrap().successes.iter().map(|s| s.url.clone()).collect();
    let len = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&shard).unwrap().set_len(len / 2).unwrap();

    let found = verify(&job, &[]);
    assert_eq!(found.status.code(), Some(1), "{}", stdout(&found));
    assert!(stdout(&found).contains(&shard.display().to_string()), "the file is named: {}", stdout(&found));
    let repaired = verify(&job, &["--repair"]);
    assert!(repaired.status.success(), "repair failed:\n{}\n{}", stdout(&repaired), stderr(&repaired));
    let quarantined = files_under(&job.out.join("quarantine"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].file_name(), shard.file_name());
    assert_eq!(std::fs::metadata(&quarantined[0]).unwrap().len(), len / 2, "the bad file itself, kept");
    job.download_ok(&[]);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);
    let again: Vec<usize> = urls.iter().map(|u| if lost.contains(u) { 2 } else { 1 }).collect();
    assert_eq!(requests(&origin, 0, &urls), again, "exactly the lost shard's rows are fetched again");
    assert!(verify(&job, &["--full"]).status.success());
}

#[test]
fn two_ranks_give_the_same_verdict_as_one() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let urls = urls(&origin, 4);
    let job = job(&urls, 2, FAST);
    job.download_ok(&[]);
    let shards = shard_files(&job.out);
    flip_image_byte(&shards[shards.len() - 1], 0);
    let one = verify(&job, &["--json", "--full"]);
    assert_eq!(one.status.code(), Some(1), "{}", stdout(&one));
    let args =
        ["--config", job.config.to_str().unwrap(), "verify", "-o", job.out.to_str().unwrap(), "--json", "--full"];
    let two = mpirun(2, &args);
    assert!(!two.status.success(), "mpirun fails like one rank:\n{}", stderr(&two));
    let (mut one, mut two) = (json(&one), json(&two));
    assert_eq!((one["ranks"].as_u64(), two["ranks"].as_u64()), (Some(1), Some(2)));
    for report in [&mut one, &mut two] {
        report.as_object_mut().unwrap().remove("ranks");
    }
    assert_eq!(one["batches"], 4);
    assert_eq!(one["problems"].as_array().unwrap().len(), 1);
    assert_eq!(one, two, "the same report from two ranks as from one");
}
