//! `index`: the manifest of a downloaded dataset has every URL once, each stored row points at
//! its record (shard file and row) with its hashes, each failed row says why, and a second
//! `index` reads only the batches whose shards changed.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use distributed_downloader::store::shards::hdf5_io::read_records;
use distributed_downloader::store::shards::image_data::is_concatenated;
use polars::prelude::*;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, shard_files, FAST};
use crate::util::*;

/// Every manifest file under `out/index/manifest`, concatenated.
pub(crate) fn manifest(out: &Path) -> DataFrame {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![out.join("index/manifest")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                files.push(p);
            }
        }
    }
    let frames: Vec<DataFrame> =
        files.iter().map(|f| ParquetReader::new(File::open(f).unwrap()).finish().unwrap()).collect();
    frames.into_iter().reduce(|a, b| a.vstack(&b).unwrap()).expect("at least one manifest file")
}

/// Rewrites `shard`'s images in the concatenated layout of older versions (`images/data` one
/// byte array, `images/data_offset` where each image starts).
fn to_concatenated(shard: &Path) {
    let g = hdf5::File::open_rw(shard).unwrap().group("images").unwrap();
    let images = g.dataset("data").unwrap().read_raw::<hdf5::types::VarLenArray<u8>>().unwrap();
    let offsets: Vec<u64> =
        images.iter().scan(0u64, |at, b| Some(std::mem::replace(at, *at + b.len() as u64))).collect();
    let bytes: Vec<u8> = images.iter().flat_map(|b| b.as_slice().to_vec()).collect();
    g.unlink("data").unwrap();
    g.new_dataset_builder().with_data(&offsets).create("data_offset").unwrap();
    g.new_dataset_builder().with_data(&bytes).create("data").unwrap();
}

/// The uuids `index/index.h5` holds, in its order.
fn h5_uuids(out: &Path) -> Vec<String> {
    let f = hdf5::File::open(out.join("index/index.h5")).unwrap();
    let ids = f.dataset("uuid").unwrap().read_raw::<hdf5::types::FixedAscii<36>>().unwrap();
    ids.iter().map(|u| u.as_str().to_string()).collect()
}

/// The python snippet of docs/output-format.md that starts with `first_line`.
fn doc_snippet(first_line: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/output-format.md")).unwrap();
    let start = doc.find(&format!("```python\n{first_line}")).expect("the snippet") + 10;
    doc[start..start + doc[start..].find("```").unwrap()].to_string()
}

fn index_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(&["index", "-o", out.to_str().unwrap(), "--json"])).unwrap()
}

#[test]
fn the_manifest_points_at_every_rows_record_and_a_second_index_reads_only_changed_batches() {
    let origin = Origin::start(vec![
        HostSpec::loopback(2, Behaviour::Ok),
        HostSpec::loopback(3, Behaviour::Random503 { percent: 100 }),
    ])
    .unwrap();
    // 12 images and one page that is not an image on one host (3 batches of 5), and 3 URLs of a
    // host that always answers 503 (retriable failures, 1 batch).
    let mut urls: Vec<String> = (0..12).map(|i| origin.url(0, &format!("/img/cam-w320-h240-s{i}.jpg"))).collect();
    urls.push(origin.url(0, "/about.html"));
    urls.extend((0..3).map(|i| origin.url(1, &format!("/img/{i}.jpg"))));
    let job = job(&urls, 5, &format!("{FAST}INITIAL_RATE_LIMIT=50\nMAX_RATE_LIMIT=50\n"));
    job.download_ok(&[]);

    // Killed between a batch's manifest and its record of what it was made from: the next run
    // indexes that batch again, and the manifest has each row once.
    let marker = job.out.parent().unwrap().join("paused");
    let args = ["index", "-o", job.out.to_str().unwrap()];
    kill_at_pause(&args, "index-batch", &marker, std::time::Duration::from_secs(60));
    let first = index_json(&job.out);
    let counts = |r: &serde_json::Value| {
        ["batches", "indexed", "unchanged", "stored", "failed"].map(|k| r[k].as_u64().unwrap_or(u64::MAX))
    };
    assert_eq!(counts(&first), [4, 4, 0, 12, 4], "after the kill, every batch is indexed: {first}");
    // A batch as versions before the per-image layout wrote it: the next index rewrites it (and
    // only it) with an element per image, every image carried over.
    let old = shard_files(&job.out)[0].clone();
    let before = read_records(&old, true).unwrap().contents;
    to_concatenated(&old);
    assert!(is_concatenated(&old).unwrap());
    let first = index_json(&job.out);
    assert_eq!(counts(&first), [4, 1, 3, 12, 4], "only the rewritten batch is read again: {first}");
    assert_eq!(first["upgraded"].as_u64(), Some(1), "{first}");
    assert!(!old.exists(), "its shard was replaced by one of the per-image layout");
    let files = shard_files(&job.out);
    assert!(files.iter().all(|f| !is_concatenated(f).unwrap()), "{files:?}");
    let upgraded = files
        .iter()
        .map(|f| read_records(f, true).unwrap().contents)
        .find(|c| c.successes.first().map(|s| &s.uuid) == before.successes.first().map(|s| &s.uuid));
    assert_eq!(upgraded.expect("the rewritten batch").successes, before.successes, "every record and byte");
    let df = manifest(&job.out);
    assert_eq!(df.height(), urls.len(), "one row per URL");
    let col = |n: &str| df.column(n).unwrap().str().unwrap().clone();
    let (uuid, url, status, shard, class, pdq, sha) =
        (col("uuid"), col("url"), col("status"), col("shard"), col("error_class"), col("pdq"), col("sha256"));
    let row = df.column("row").unwrap().u32().unwrap().clone();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for i in 0..df.height() {
        *seen.entry(url.get(i).unwrap().to_string()).or_default() += 1;
        let records = read_records(&job.out.join(shard.get(i).unwrap()), false).unwrap().contents;
        let r = row.get(i).unwrap() as usize;
        match status.get(i).unwrap() {
            "stored" => {
                let s = &records.successes[r];
                assert_eq!((s.uuid.as_str(), s.sha256.as_str()), (uuid.get(i).unwrap(), sha.get(i).unwrap()));
                assert_eq!(pdq.get(i).unwrap().len(), 64, "a stored image has its PDQ hash");
                let path = url.get(i).unwrap().split_once("/img/").map(|(_, p)| format!("/img/{p}")).unwrap();
                let served = test_origin::images::served_bytes(&path).unwrap();
                assert_eq!(s.etag, test_origin::image_etag(&served), "the ETag the origin sent");
                assert_eq!(s.last_modified, test_origin::IMAGE_LAST_MODIFIED);
                assert_eq!(col("etag").get(i), Some(s.etag.as_str()), "and the manifest says it");
            }
            "failed" => {
                assert_eq!(records.failures[r].uuid, uuid.get(i).unwrap());
                let want = if url.get(i).unwrap().ends_with(".html") { "http_4xx" } else { "http_5xx" };
                assert_eq!(class.get(i).unwrap(), want, "{}", url.get(i).unwrap());
            }
            other => panic!("status {other}"),
        }
    }
    assert!(urls.iter().all(|u| seen.get(u) == Some(&1)), "each URL once: {seen:?}");

    // The manifest as docs/output-format.md reads it: pyarrow for the table, h5py for an image.
    if let Some(mut python) = python_with(&["h5py", "PIL", "pyarrow"], "the manifest snippet of docs/output-format.md")
    {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/output-format.md")).unwrap();
        let start = doc.find("```python\nimport h5py, io, os\nimport pyarrow").expect("the manifest snippet");
        let snippet = &doc[start + 10..];
        let snippet = &snippet[..snippet.find("```").unwrap()];
        let out = python.arg("-c").arg(snippet).env("OUT", &job.out).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.starts_with(&format!("{} rows, 12 stored; first: http://", urls.len())), "{said}");
        assert!(said.contains("(320, 240)"), "the image the manifest points at opens at its size: {said}");
    }

    // index.h5 spans every shard: 12 images, each read back through it as the manifest says.
    assert_eq!((first["h5"]["images"].as_u64(), first["h5"]["left_out"].as_u64()), (Some(12), Some(0)), "{first}");
    let ids = h5_uuids(&job.out);
    assert_eq!(ids.len(), 12);
    let stored: HashMap<String, Vec<u8>> = shard_files(&job.out)
        .iter()
        .flat_map(|f| read_records(f, true).unwrap().contents.successes)
        .map(|s| (s.uuid, s.data))
        .collect();
    let h5 = hdf5::File::open(job.out.join("index/index.h5")).unwrap();
    let images = h5.dataset("images").unwrap().read_raw::<hdf5::types::VarLenArray<u8>>().unwrap();
    for (uuid, image) in ids.iter().zip(&images) {
        assert_eq!(image.as_slice(), stored[uuid].as_slice(), "images[i] is the stored image of uuid[i] {uuid}");
    }
    drop(h5);
    if let Some(mut python) = python_with(&["h5py", "PIL", "pyarrow"], "the index.h5 snippet of docs/output-format.md")
    {
        let out = python.arg("-c").arg(doc_snippet("import h5py, hashlib")).env("OUT", &job.out).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.starts_with("12 images; first: http://"), "{said}");
        assert!(said.contains("(320, 240) sha256 matches: True"), "the image's bytes, read through index.h5: {said}");
    }
    if let Some(mut python) = python_with(&["datasets", "h5py", "pyarrow"], "the Python snippet of README.md") {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start =
            readme.find("```python\nimport datasets, h5py, pyarrow.dataset as ds").expect("the README snippet") + 10;
        let snippet = readme[start..start + readme[start..].find("```").unwrap()].replace("\"OUT/", "OUT + \"/");
        let snippet = format!("import os\nOUT = os.environ[\"OUT\"]\n{snippet}");
        let hf = job.out.parent().unwrap().join("hf-home-readme");
        let out = python
            .arg("-c")
            .arg(&snippet)
            .env("OUT", &job.out)
            .env("HF_HOME", &hf)
            .env("HF_DATASETS_OFFLINE", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{snippet}\n{said}\n{}", String::from_utf8_lossy(&out.stderr));
        let want = format!("{} rows, {} in datasets; the first image of index.h5 is", urls.len(), urls.len());
        assert!(said.starts_with(&want), "{said}");
    }
    if let Some(mut python) = python_with(&["datasets"], "the Hugging Face datasets snippet of docs/output-format.md") {
        let hf = job.out.parent().unwrap().join("hf-home");
        let out = python
            .arg("-c")
            .arg(doc_snippet("import datasets"))
            .env("OUT", &job.out)
            .env("HF_HOME", &hf)
            .env("HF_DATASETS_OFFLINE", "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(&format!("{} rows, 12 stored", urls.len())), "{said}");
    }
    // A keep-list: index.h5 holds only the images it keeps; the manifest still has every row.
    let keep: Vec<String> = h5_uuids(&job.out).into_iter().take(5).collect();
    let list = job.out.parent().unwrap().join("keep.txt");
    std::fs::write(&list, keep.join("\n")).unwrap();
    run_ok(&["filter", "-o", job.out.to_str().unwrap(), "--keep", list.to_str().unwrap()]);
    let kept = index_json(&job.out);
    assert_eq!((kept["h5"]["images"].as_u64(), kept["h5"]["left_out"].as_u64()), (Some(5), Some(7)), "{kept}");
    let mut held = h5_uuids(&job.out);
    held.sort();
    let mut want = keep.clone();
    want.sort();
    assert_eq!(held, want, "exactly the kept images");
    assert_eq!(manifest(&job.out).height(), urls.len(), "the manifest keeps every row");
    std::fs::remove_dir_all(job.out.join("filter")).unwrap();

    // Nothing changed: nothing is read again.
    assert_eq!(counts(&index_json(&job.out)), [4, 0, 4, 12, 4]);
    // The retriable failures are tried again (and fail again): only their batch has a new shard.
    job.download_ok(&["--retry-failed"]);
    let third = index_json(&job.out);
    assert_eq!(counts(&third), [4, 1, 3, 12, 4], "{third}");
    assert_eq!(manifest(&job.out).height(), urls.len(), "a retried row is still one row: its final record");

    // Two ranks share the batches and rank 0 reports for both: the same manifest.
    let out = mpirun(2, &["index", "-o", job.out.to_str().unwrap(), "--json", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let both: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one report, from rank 0");
    assert_eq!(counts(&both), [4, 4, 0, 12, 4], "{both}");
    assert_eq!(manifest(&job.out).height(), urls.len());
}
