//! `refresh` end to end (issue 34): a dataset downloaded from the test origin, then the next
//! snapshot of its list (10% new, 5% gone, a licence changed): the refresh asks the origin only
//! for the new images, copies no stored image (the old shards are hard links), and gives the
//! manifest a from-scratch download of the new list gives; killed midway and run again, the
//! same.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::FAST;
use crate::util::*;

/// A GBIF multimedia.txt of `images` (id, URL, licence).
fn snapshot(dir: &Path, name: &str, images: &[(u32, String, &str)]) -> PathBuf {
    let mut lines = vec![GBIF_HEADER.to_string()];
    for (id, url, license) in images {
        lines.push(format!(
            "{id}\tStillImage\timage/jpeg\t{url}\thttp://portal/{id}\tPhoto\t\t\t\t2020\tA. Person\t\tMuseum\t{license}\tThe Museum"
        ));
    }
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The manifest of `out` (`index` run first): uuid -> (status, sha256, license_id).
fn manifest(config: &Path, out: &Path) -> BTreeMap<String, (String, String, String)> {
    run_ok(&["--config", config.to_str().unwrap(), "index", "-o", out.to_str().unwrap()]);
    let mut rows = BTreeMap::new();
    for file in distributed_downloader::index::run::manifest_files(out).unwrap() {
        let df = ParquetReader::new(std::fs::File::open(file).unwrap()).finish().unwrap();
        let col = |n: &str| df.column(n).unwrap().str().unwrap().clone();
        let (uuid, status, sha, license) = (col("uuid"), col("status"), col("sha256"), col("license_id"));
        for i in 0..df.height() {
            let text = |c: &StringChunked| c.get(i).unwrap_or_default().to_string();
            rows.insert(text(&uuid), (text(&status), text(&sha), text(&license)));
        }
    }
    rows
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Two months of one list in one temp folder: a config file, snapshot A prepped into `old`
/// (batches of `batch`) and downloaded, and snapshot B's list written beside it.
struct Months {
    dir: tempfile::TempDir,
    config: PathBuf,
    old: PathBuf,
    new: PathBuf,
    list_b: PathBuf,
}

fn months(a: &[(u32, String, &str)], b: &[(u32, String, &str)], batch: &str) -> Months {
    let dir = tempdir();
    let config = dir.path().join("job.env");
    std::fs::write(&config, format!("CONTACT=tests@example.org\n{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"))
        .unwrap();
    let (old, new) = (dir.path().join("march"), dir.path().join("april"));
    let (list_a, list_b) = (snapshot(dir.path(), "a", a), snapshot(dir.path(), "b", b));
    let (cfg, input, out) = (config.to_str().unwrap(), list_a.to_str().unwrap(), old.to_str().unwrap());
    run_ok(&["--config", cfg, "prep", "-i", input, "-o", out, "--batch-size", batch]);
    run_ok(&["--config", cfg, "download", "-o", out]);
    Months { dir, config, old, new, list_b }
}

#[test]
fn a_refresh_fetches_only_new_images_copies_none_and_equals_a_fresh_download() {
    let origin =
        Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok), HostSpec::loopback(3, Behaviour::Ok)]).unwrap();
    let url = |i: u32| origin.url(i as usize % 2, &format!("/img/cam-w320-h240-s{i}.jpg"));
    // Snapshot A: 40 images. B: 2 gone (5%), 4 new (10%), 1 licence changed (3% of 40 is 1.2).
    let a: Vec<(u32, String, &str)> = (0..40).map(|i| (i, url(i), "CC-BY-4.0")).collect();
    let mut b: Vec<(u32, String, &str)> = a.iter().filter(|(i, _, _)| *i >= 2).cloned().collect();
    b.extend((40..44).map(|i| (i, url(i), "CC-BY-4.0")));
    b[5].2 = "CC0-1.0";
    let Months { dir, config, old, new, list_b } = months(&a, &b, "8");
    let cfg = config.to_str().unwrap();
    let before = manifest(&config, &old);
    assert_eq!(before.values().filter(|r| r.0 == "stored").count(), 40, "{before:?}");

    let refresh = |extra: &[&str]| {
        let mut args = vec!["--config", cfg, "refresh", "--from", old.to_str().unwrap()];
        args.extend_from_slice(&["-i", list_b.to_str().unwrap(), "-o", new.to_str().unwrap(), "--batch-size", "8"]);
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    // Killed at each step before it is recorded (prep, the plan) and in the middle of the
    // carry-over, each run going further.
    let killed = refresh(&[]);
    let killed: Vec<&str> = killed.iter().map(String::as_str).collect();
    for point in ["refresh-prepped", "refresh-planned", "refresh-batch"] {
        let marker = dir.path().join(format!("paused-{point}"));
        kill_at_pause(&killed, point, &marker, std::time::Duration::from_secs(60));
    }
    let out = run(&refresh(&["--json", "--no-download"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let classes = &report["plan"]["classes"];
    let count = |k: &str| classes[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        [count("new"), count("unchanged"), count("metadata_changed"), count("gone"), count("removed")],
        [4, 37, 1, 2, 0],
        "{report}"
    );
    let carried = &report["carried"];
    assert_eq!(carried["images"].as_u64().unwrap() + carried["already_there"].as_u64().unwrap(), 38, "{report}");
    // `plan` forecasts only what needs a request; then the download fetches it.
    let forecast = run(&["--config", cfg, "plan", "-o", new.to_str().unwrap(), "--json"]);
    let forecast: serde_json::Value = serde_json::from_slice(&forecast.stdout).unwrap();
    assert_eq!(forecast["urls_remaining"], 4, "{forecast}");
    // With --revalidate it also counts the 38 carried images a conditional request would ask.
    let forecast = run(&["--config", cfg, "plan", "-o", new.to_str().unwrap(), "--json", "--revalidate"]);
    let forecast: serde_json::Value = serde_json::from_slice(&forecast.stdout).unwrap();
    assert_eq!(forecast["urls_remaining"], 42, "{forecast}");
    let forecast =
        run(&["--config", cfg, "plan", "-o", new.to_str().unwrap(), "--json", "--revalidate", "--older-than", "90d"]);
    let forecast: serde_json::Value = serde_json::from_slice(&forecast.stdout).unwrap();
    assert_eq!(forecast["urls_remaining"], 4, "none was checked 90 days ago: {forecast}");
    run_ok(&["--config", cfg, "download", "-o", new.to_str().unwrap()]);
    // Run again, it has nothing left to do and says what the refresh was.
    let again = run(&refresh(&["--no-download"]).iter().map(String::as_str).collect::<Vec<_>>());
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{said}\n{}", stderr(&again));
    let number = |label: &str| {
        let line = said.lines().find(|l| l.split(':').next().is_some_and(|w| w.trim() == label));
        line.and_then(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
    };
    let counts = ["new", "unchanged", "metadata changed", "gone"].map(number);
    assert_eq!(counts, [Some(4), Some(37), Some(1), Some(2)], "{said}");

    // The origin saw each old image once (March's download) and each new one once.
    for (i, u) in b.iter().map(|(i, u, _)| (*i, u)) {
        let host = i as usize % 2;
        let path = &u[origin.base_url(host).len()..];
        assert_eq!(origin.log(host).count_path(path), 1, "{u} was asked for once, by the first download it was in");
    }
    // No image copied: the old shards are the same files (inodes), the new folder's own shards
    // hold only records and the 4 new images.
    let old_inodes: std::collections::HashSet<u64> =
        files(&old.join("downloads")).iter().map(|f| std::fs::metadata(f).unwrap().ino()).collect();
    let carried = files(&new.join("carried"));
    assert!(
        !carried.is_empty()
            && carried
                .iter()
                .filter(|f| f.extension().is_some_and(|x| x == "h5"))
                .all(|f| old_inodes.contains(&std::fs::metadata(f).unwrap().ino())),
        "{carried:?}"
    );
    // Each shard's records take some tens of KB; the images are what must not be there twice.
    let new_shards: Vec<PathBuf> =
        files(&new.join("downloads")).into_iter().filter(|f| f.extension().is_some_and(|x| x == "h5")).collect();
    let new_bytes: u64 = new_shards.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let image_bytes = |(i, u): (u32, &String)| {
        test_origin::images::served_bytes(&u[origin.base_url(i as usize % 2).len()..]).unwrap().len() as u64
    };
    let fetched: u64 = b.iter().filter(|(i, _, _)| *i >= 40).map(|(i, u, _)| image_bytes((*i, u))).sum();
    let carried_bytes: u64 = b.iter().filter(|(i, _, _)| *i < 40).map(|(i, u, _)| image_bytes((*i, u))).sum();
    let records = 40_000 * new_shards.len() as u64;
    assert!(carried_bytes > records, "the images are large enough to tell: {carried_bytes} bytes");
    assert!(new_bytes <= fetched + records, "the new shards hold the {fetched} bytes fetched and records, not the {carried_bytes} carried: {new_bytes} bytes in {} shards", new_shards.len());

    // Every image reads through (`verify --full` checks each against its CRC-32), and the
    // manifest equals a from-scratch download of snapshot B's.
    let verified = run(&["--config", cfg, "verify", "-o", new.to_str().unwrap(), "--full"]);
    assert!(verified.status.success(), "{}\n{}", String::from_utf8_lossy(&verified.stdout), stderr(&verified));
    let refreshed = manifest(&config, &new);
    let scratch = dir.path().join("april-from-scratch");
    run_ok(&[
        "--config",
        cfg,
        "prep",
        "-i",
        list_b.to_str().unwrap(),
        "-o",
        scratch.to_str().unwrap(),
        "--batch-size",
        "8",
    ]);
    run_ok(&["--config", cfg, "download", "-o", scratch.to_str().unwrap()]);
    assert_eq!(refreshed, manifest(&config, &scratch), "same uuids, bytes and licences as a fresh download");
    assert_eq!(refreshed.values().filter(|r| r.2 == "CC0-1.0").count(), 1, "the changed licence is the new one");
    // And so does its export: the same images, byte for byte, with the same licences.
    let exported = |from: &Path| {
        let to = dir.path().join(format!("{}-parquet", from.file_name().unwrap().to_string_lossy()));
        run_ok(&[
            "--config",
            cfg,
            "export",
            "-o",
            from.to_str().unwrap(),
            "--format",
            "parquet",
            "--to",
            to.to_str().unwrap(),
        ]);
        let mut images = BTreeMap::new();
        for f in files(&to).into_iter().filter(|f| f.extension().is_some_and(|x| x == "parquet")) {
            let df = ParquetReader::new(std::fs::File::open(f).unwrap()).finish().unwrap();
            let (uuid, license) = (
                df.column("uuid").unwrap().str().unwrap().clone(),
                df.column("license_id").unwrap().str().unwrap().clone(),
            );
            let image = df.column("image").unwrap().binary().unwrap().clone();
            for i in 0..df.height() {
                let bytes = image.get(i).unwrap().to_vec();
                images.insert(uuid.get(i).unwrap().to_string(), (bytes, license.get(i).unwrap().to_string()));
            }
        }
        images
    };
    let (from_refresh, from_scratch) = (exported(&new), exported(&scratch));
    assert_eq!(from_refresh.len(), 42);
    assert!(from_refresh == from_scratch, "the exports of the refresh and of a fresh download differ");
    // index.h5 reads the carried images through the shards' references (virtual over virtual),
    // as a user does, with h5py.
    if let Some(mut python) = python_with(&["h5py"], "index.h5 of a refreshed folder") {
        let script = "import h5py, hashlib, sys\nwith h5py.File(sys.argv[1]) as f:\n    for u, im in zip(f['uuid'], f['images'][:]):\n        print(u.decode(), hashlib.sha256(im.tobytes()).hexdigest())\n";
        let out = python.arg("-c").arg(script).arg(new.join("index/index.h5")).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
        let mut read = 0;
        for line in said.lines() {
            let (uuid, sha) = line.split_once(' ').unwrap();
            assert_eq!(sha, refreshed[uuid].1, "index.h5's image of {uuid} is its stored image");
            read += 1;
        }
        assert_eq!(read, 42);
    }

    // A takedown with --purge leaves no byte of a carried image in the new folder, even in the
    // older snapshot's shard it referred to; the older snapshot keeps its own.
    let (gone_id, gone_url) = (b[0].0, b[0].1.clone());
    let gone = test_origin::images::served_bytes(&gone_url[origin.base_url(gone_id as usize % 2).len()..]).unwrap();
    let list = dir.path().join("takedown.txt");
    std::fs::write(&list, format!("{gone_url}\n")).unwrap();
    run_ok(&["--config", cfg, "remove", "-o", new.to_str().unwrap(), "--urls", list.to_str().unwrap(), "--purge"]);
    let holds = |f: &PathBuf| std::fs::read(f).unwrap().windows(gone.len()).any(|w| w == gone.as_slice());
    let holding: Vec<PathBuf> = files(&new).into_iter().filter(holds).collect();
    assert!(holding.is_empty(), "the purged image's bytes are still in {holding:?}");
    assert!(files(&old.join("downloads")).iter().any(holds), "the older snapshot keeps its copy");
    let verified = run(&["--config", cfg, "verify", "-o", new.to_str().unwrap(), "--full"]);
    assert!(verified.status.success(), "every other image still reads: {}", String::from_utf8_lossy(&verified.stdout));
    let after = manifest(&config, &new);
    assert_eq!(after.values().filter(|r| r.0 == "stored").count(), 41);
}

#[test]
fn a_refresh_with_revalidate_asks_conditionally_gets_304s_and_stores_exactly_the_changed_image() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let path = |i: u32| format!("/img/cam-w160-h120-s{i}.jpg");
    // Snapshot A: 50 images; B: the same and 5 new (10%); one image (2%) changes on the server.
    let a: Vec<(u32, String, &str)> = (0..50).map(|i| (i, origin.url(0, &path(i)), "CC-BY-4.0")).collect();
    let mut b = a.clone();
    b.extend((50..55).map(|i| (i, origin.url(0, &path(i)), "CC-BY-4.0")));
    let Months { dir, config, old, new, list_b } = months(&a, &b, "20");
    let cfg = config.to_str().unwrap();
    // A revalidation of the old folder killed after its first commit: records there refer to
    // bytes in the old folder's own shards, which the refresh must carry over too.
    let marker = dir.path().join("paused");
    let args = ["--config", cfg, "download", "-o", old.to_str().unwrap(), "--revalidate"];
    kill_at_pause(&args, "revalidate-commit", &marker, std::time::Duration::from_secs(60));
    let refers_within =
        files(&old.join("downloads")).iter().filter(|f| f.extension().is_some_and(|x| x == "h5")).any(|f| {
            let records = distributed_downloader::store::shards::hdf5_io::read_records(f, false).unwrap();
            records.carried.iter().flatten().any(|c| c.from.starts_with("downloads/"))
        });
    assert!(refers_within, "the killed revalidation committed records referring to the old shards");
    run_ok(&["--config", cfg, "index", "-o", old.to_str().unwrap()]);
    origin.change_image(0, &path(7));
    let before = origin.log(0).without_robots().len();

    let (from, input, out) = (old.to_str().unwrap(), list_b.to_str().unwrap(), new.to_str().unwrap());
    run_ok(&["--config", cfg, "refresh", "--from", from, "-i", input, "-o", out, "--batch-size", "20", "--revalidate"]);
    let asked: Vec<_> = origin.log(0).without_robots().iter().skip(before).cloned().collect();
    for i in 0..55 {
        let seen: Vec<_> = asked.iter().filter(|r| r.path == path(i)).collect();
        assert_eq!(seen.len(), 1, "{} asked once by the refresh: {seen:?}", path(i));
        let (conditional, status) = (seen[0].conditional(), seen[0].status);
        let want = match i {
            7 => (true, 200),
            50.. => (false, 200),
            _ => (true, 304),
        };
        assert_eq!((conditional, status), want, "{}", path(i));
    }
    let rows = manifest(&config, &new);
    let uuid = |i: u32| distributed_downloader::prep::spill::image_uuid(&origin.url(0, &path(i))).to_string();
    let changed = test_origin::images::changed_sha256(&path(7)).unwrap();
    assert_eq!(rows[&uuid(7)].1, changed, "the changed image is stored as the server now serves it");
    for i in (0..55).filter(|i| *i != 7) {
        let served = test_origin::images::served_sha256(&path(i)).unwrap();
        assert_eq!(rows[&uuid(i)].1, served, "{}", path(i));
    }
    assert_eq!(rows.len(), 55);
    let verified = run(&["--config", cfg, "verify", "-o", out, "--full"]);
    assert!(verified.status.success(), "every image reads: {}", String::from_utf8_lossy(&verified.stdout));
}
