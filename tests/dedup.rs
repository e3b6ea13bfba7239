//! `dedup` on a downloaded dataset where the origin serves one photo at four sizes and in three
//! formats over two hosts, another photo's same bytes under two hosts, and other photos: exactly
//! those two groups are found, the largest copy kept; and a test-set hash of a third photo (at
//! a size the dataset does not hold) finds that photo; the same with the smallest scratch
//! partitions.

use std::collections::BTreeMap;
use std::fs::File;

use distributed_downloader::imaging::{process, ImageSettings};
use polars::prelude::*;
use test_origin::{images, Behaviour, HostSpec, Origin};

use crate::download::{job, FAST};
use crate::util::*;

#[test]
fn copies_and_same_bytes_are_grouped_the_largest_kept_strangers_never_and_a_planted_test_image_is_found() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let copies = [
        origin.url(0, "/img/cam-w2048-h1536-s7.jpg"),
        origin.url(1, "/img/cam-w800-h600-s7.jpg"),
        origin.url(1, "/img/cam-w640-h480-s7.png"),
        origin.url(0, "/img/cam-w512-h384-s7.webp"),
    ];
    let same_bytes = [origin.url(0, "/img/cam-w640-h480-s5.jpg"), origin.url(1, "/img/cam-w640-h480-s5.jpg")];
    let others: Vec<String> = (8..12).map(|s| origin.url(s % 2, &format!("/img/cam-w800-h600-s{s}.jpg"))).collect();
    let urls: Vec<String> = copies.iter().chain(&same_bytes).chain(&others).cloned().collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let out = job.out.to_str().unwrap();
    job.download_ok(&[]);

    let before = run(&["dedup", "-o", out]);
    assert!(!before.status.success() && stderr(&before).contains("run `index`"), "{}", stderr(&before));
    run_ok(&["index", "-o", out]);
    // The test set holds seed 9's photo at a size the dataset does not have, hashed as the
    // download hashes (its PDQ, 64 hex characters, and a label).
    let test_photo = images::served_bytes("/img/cam-w400-h300-s9.jpg").unwrap();
    let fingerprint = process(&test_photo, &ImageSettings::default()).unwrap().fingerprint.unwrap();
    let against = job.out.join("test-set.txt");
    std::fs::write(&against, format!("# a test set\n{} seed-9\n{}\n", fingerprint.pdq_hex(), "0".repeat(64))).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&run_ok(&["dedup", "-o", out, "--json", "--against", against.to_str().unwrap()])).unwrap();
    assert_eq!(
        ["images", "groups", "duplicates", "same_bytes", "near", "leaks"].map(|k| report[k].as_u64()),
        [10, 2, 4, 1, 3, 1].map(Some),
        "{report}"
    );

    let read = |name: &str| ParquetReader::new(File::open(job.out.join("dedup").join(name)).unwrap()).finish().unwrap();
    let dups = read("duplicates.parquet");
    let s = |df: &DataFrame, n: &str| {
        df.column(n).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
    };
    let (keepers, members, why) = (s(&dups, "keeper_url"), s(&dups, "member_url"), s(&dups, "why"));
    let mut groups: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for i in 0..dups.height() {
        groups.entry(keepers[i].clone()).or_default().push((members[i].clone(), why[i].clone()));
    }
    let mut seven = groups.remove(&copies[0]).expect("the largest copy keeps the group of seed 7");
    seven.sort();
    let mut want: Vec<(String, String)> = copies[1..].iter().map(|u| (u.clone(), "pdq".to_string())).collect();
    want.sort();
    assert_eq!(seven, want);
    let five: Vec<_> = groups.into_values().collect();
    assert_eq!(five.len(), 1, "one more group: the same bytes");
    assert!(same_bytes.contains(&five[0][0].0) && five[0][0].1 == "sha256", "{five:?}");

    let leaks = read("leaks.parquet");
    assert_eq!(s(&leaks, "url"), vec![others[1].clone()], "seed 9's photo, and nothing else");
    assert_eq!(leaks.column("test_line").unwrap().u64().unwrap().get(0), Some(2));

    // Scratch partitions of 64 bytes (every record of a group in a partition of its own where
    // it can be): the same files, row for row, and no scratch left behind.
    run_ok(&["dedup", "-o", out, "--against", against.to_str().unwrap(), "--partition-bytes", "64"]);
    assert!(read("duplicates.parquet").equals(&dups) && read("leaks.parquet").equals(&leaks));
    let left: Vec<_> = std::fs::read_dir(job.out.join("dedup")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "only the two outputs: {left:?}");
}
