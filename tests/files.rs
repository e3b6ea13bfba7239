//! Few files: a complete batch ends as one shard, whatever the commit interval cut it into, and
//! kill -9 at any moment (during merges included) loses nothing and counts nothing twice. And a
//! shard reads in Python as docs/output-format.md shows.

use std::time::Duration;

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{assert_each_url_once, job, records, shard_files, FAST};
use crate::util::*;

#[test]
fn each_batch_ends_as_one_shard_that_h5py_reads_even_after_kill_9_mid_run() {
    // 4 hosts x 600 URLs in batches of 200, committed every 20 rows: 10 shards per batch until
    // the batch is complete and merged.
    let origin = Origin::start((2..6).map(|h| HostSpec::loopback(h, Behaviour::Ok)).collect()).unwrap();
    let urls: Vec<String> = (0..2400).map(|i| origin.url(i % 4, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 200, &format!("{FAST}INITIAL_RATE_LIMIT=40\nMAX_RATE_LIMIT=40\nCOMMIT_ROWS=20\n"));
    for delay in [900, 1700, 2500, 3300, 4100] {
        let mut child = job.spawn(std::process::Stdio::null());
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let summary = job.download_ok(&[]);
    assert_eq!((summary["succeeded"].as_u64(), summary["remaining"].as_u64()), (Some(2400), Some(0)), "{summary}");
    assert_eq!(summary["duplicates"], 0);
    let (ok, failed) = records(&job.out);
    assert_each_url_once(&urls, &ok, &failed);

    let mut batches = 0;
    for server in sorted_dirs(&job.out.join("downloads")) {
        for batch in sorted_dirs(&server) {
            let h5: Vec<_> = std::fs::read_dir(&batch)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".h5"))
                .collect();
            assert_eq!(h5.len(), 1, "{}: {h5:?}", batch.display());
            batches += 1;
        }
    }
    assert_eq!(batches, 12);
    assert_eq!(shard_files(&job.out).len(), 12);

    // What a reader sees with plain h5py: every URL once over the 12 files.
    let script = r#"
import glob, os, h5py
rows = []
for path in glob.glob(os.environ["OUT"] + "/downloads/**/*.h5", recursive=True):
    with h5py.File(path, "r") as f:
        rows += list(f["images/uuid"].asstr()[:]) + list(f["errors/uuid"].asstr()[:])
print(len(rows), len(set(rows)))
"#;
    let Some(mut python) = python_with(&["h5py"], "reading the 12 shards with plain h5py") else { return };
    let out = python.arg("-c").arg(script).env("OUT", &job.out).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2400 2400");
}

#[test]
fn the_output_format_python_snippet_reads_a_shard() {
    let Some(mut python) = python_with(&["h5py", "PIL"], "the Python snippet of docs/output-format.md") else { return };
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let urls = vec![origin.url(0, "/img/w2000-h1000-1.jpg")];
    let job = job(&urls, 10, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    job.download_ok(&[]);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/output-format.md")).unwrap();
    let start = doc.find("```python\nimport h5py, io, json, glob").expect("docs/output-format.md has the h5py snippet");
    let snippet = &doc[start + 10..];
    let snippet = &snippet[..snippet.find("```").unwrap()];
    let shard = &shard_files(&job.out)[0];
    assert!(shard.exists());
    let script =
        format!("{snippet}\nassert img.size == (1024, 512), img.size\nassert meta['format'] == 'jpeg', meta\n");
    let out = python.arg("-c").arg(&script).env("OUT", &job.out).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
