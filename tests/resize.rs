//! `resize`: a smaller copy of a downloaded dataset, made from its stored images without a
//! request. Every image fits the new size and decodes at its recorded size, small images keep
//! their bytes, failures and takedowns carry over, every command reads the new folder, and a run
//! killed between two pieces, run again, has each row once.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use distributed_downloader::store::shards::record::SuccessRecord;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records, shard_files, FAST};
use crate::util::*;

#[test]
fn resize_makes_a_smaller_dataset_that_every_command_reads_and_a_killed_run_resumes_with_each_row_once() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Ok),
        HostSpec::loopback(3, Behaviour::Random503 { percent: 100 }),
    ])
    .unwrap();
    // Six photos larger than the new size, two small PNGs (kept as they are), a page that is not
    // an image, and a host that always answers 503.
    let mut urls: Vec<String> = (0..6).map(|i| origin.url(0, &format!("/img/cam-w640-h480-s{i}.jpg"))).collect();
    urls.extend((0..2).map(|i| origin.url(0, &format!("/img/w100-h80-{i}.png"))));
    urls.push(origin.url(0, "/about.html"));
    urls.push(origin.url(1, "/img/1.jpg"));
    // Batches of 3 rows, and pieces of 2 rows when resizing (COMMIT_ROWS).
    let job = job(&urls, 3, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\nCOMMIT_ROWS=2\n"));
    job.download_ok(&[]);
    let list = job.out.parent().unwrap().join("takedown.txt");
    std::fs::write(&list, format!("{}\n", urls[5])).unwrap();
    run_ok(&["remove", "-o", job.out.to_str().unwrap(), "--urls", list.to_str().unwrap()]);
    let (old_ok, _) = records(&job.out);
    let old: HashMap<String, SuccessRecord> = old_ok.into_iter().map(|r| (r.uuid.clone(), r)).collect();

    let new = job.out.parent().unwrap().join("small");
    let args = |max_side: &str| {
        let (cfg, from, to) = (job.config.to_str().unwrap(), job.out.to_str().unwrap(), new.to_str().unwrap());
        ["--config", cfg, "resize", "-o", from, "--to", to, "--max-side", max_side, "--json"].map(String::from)
    };
    // Killed right after its first piece (2 rows of the first batch) is committed.
    let marker = job.out.parent().unwrap().join("paused");
    let first = args("200");
    kill_at_pause(&first.each_ref().map(|s| s.as_str()), "resize-piece", &marker, Duration::from_secs(60));
    assert_eq!(shard_files(&new).len(), 1, "the killed run committed one piece");

    let args200 = args("200");
    let report: serde_json::Value = serde_json::from_str(&run_ok(&args200.each_ref().map(|s| s.as_str()))).unwrap();
    let counts = |r: &serde_json::Value| {
        ["shrunk", "kept", "failures", "undecodable", "resumed"].map(|k| r[k].as_u64().unwrap_or(u64::MAX))
    };
    // 2 rows were already there from the killed run; this run did the other 8 of the 10: of 5
    // photos (the sixth was taken down) and 2 PNGs, 3 failures (the page, the 503 and the
    // takedown), those the killed run had not done. Each record is checked below.
    let [shrunk, kept, failures, undecodable, resumed] = counts(&report);
    assert_eq!((resumed, undecodable, shrunk + kept + failures), (2, 0, 8), "{report}");
    assert!(shrunk >= 3 && kept <= 2 && failures <= 3, "{report}");

    let (ok, failed) = records(&new);
    assert_each_url_once(&urls, &ok, &failed);
    assert_eq!(shard_files(&new).len(), 4, "each of the 4 batches merged into one shard");
    let removed = failed.iter().find(|f| f.url == urls[5]).expect("the takedown carried over");
    assert_eq!(removed.error_class, "removed");
    for r in &ok {
        let before = &old[&r.uuid];
        assert!(
            r.stored_width.max(r.stored_height) <= 200,
            "{} stored at {}x{}",
            r.url,
            r.stored_width,
            r.stored_height
        );
        let pixels = image::load_from_memory(&r.data).expect("the new bytes decode");
        assert_eq!((pixels.width(), pixels.height()), (r.stored_width, r.stored_height), "{}", r.url);
        assert_eq!(
            (r.original_width, r.original_height, &r.sha256, &r.url),
            (before.original_width, before.original_height, &before.sha256, &before.url),
            "what the record says of the original is kept"
        );
        assert_eq!(r.pdq.len(), 64, "a fresh PDQ hash of the stored image");
        if r.url.ends_with(".png") {
            assert_eq!(r.data, before.data, "a small image keeps its bytes");
        } else {
            assert_eq!((r.stored_width, r.stored_height), (200, 150), "aspect ratio kept: {}", r.url);
            assert!(r.data.len() < before.data.len(), "smaller: {} -> {} bytes", before.data.len(), r.data.len());
        }
    }

    // The new folder is a dataset every command reads.
    run_ok(&["verify", "-o", new.to_str().unwrap()]);
    let index: serde_json::Value =
        serde_json::from_str(&run_ok(&["index", "-o", new.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!((index["stored"].as_u64(), index["failed"].as_u64()), (Some(7), Some(3)), "{index}");

    // Run again: nothing to do. Another size into the same folder is refused.
    let again: serde_json::Value = serde_json::from_str(&run_ok(&args200.each_ref().map(|s| s.as_str()))).unwrap();
    assert_eq!((again["batches"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(4)), "{again}");
    let other = args("100");
    let out = run(&other.each_ref().map(|s| s.as_str()));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--max-side 200") && stderr(&out).contains("same settings"), "{}", stderr(&out));
    assert_not_in(&new, &job.out);

    // Two ranks share the batches: the same dataset.
    let twice = job.out.parent().unwrap().join("small-mpi");
    let (from, to) = (job.out.to_str().unwrap(), twice.to_str().unwrap());
    let out = mpirun(
        2,
        &["--config", job.config.to_str().unwrap(), "resize", "-o", from, "--to", to, "--max-side", "200", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let both: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one report, from rank 0");
    assert_eq!(both["batches"].as_u64(), Some(4), "{both}");
    let by_uuid = |dir: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = records(dir).0.into_iter().map(|r| (r.uuid, r.data)).collect();
        v.sort();
        v
    };
    assert_eq!(by_uuid(&twice), by_uuid(&new), "the same images, byte for byte");
}

/// The new folder is outside the old one and shares no shard with it.
fn assert_not_in(new: &Path, old: &Path) {
    let old_shards = shard_files(old);
    assert!(shard_files(new).iter().all(|s| !old_shards.contains(s) && !s.starts_with(old)));
}
