//! Licences and attribution from a GBIF multimedia table to the manifest: each row's licence
//! read as an SPDX id beside its raw string, its credits carried by uuid, `licenses` counting
//! them, and `filter --license --attribution-complete` keeping exactly the allowed rows.

use std::collections::HashMap;
use std::fs::File;

use polars::prelude::*;

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::FAST;
use crate::util::*;

/// (licence, rights holder, creator, references) of each row, and what the manifest must say:
/// (license_id, attribution_complete).
const ROWS: [(&str, &str, &str, &str, &str, bool); 6] = [
    ("http://creativecommons.org/licenses/by/4.0/", "Museum A", "", "http://portal/1", "CC-BY-4.0", true),
    ("CC0", "", "B. Person", "http://portal/2", "CC0-1.0", true),
    ("CC BY-NC 4.0", "Museum C", "", "http://portal/3", "CC-BY-NC-4.0", true),
    ("", "Museum D", "D. Person", "http://portal/4", "unknown", false),
    ("https://creativecommons.org/licenses/by/4.0/legalcode", "", "", "http://portal/5", "CC-BY-4.0", false),
    ("All rights reserved", "", "F. Person", "http://portal/6", "all-rights-reserved", true),
];

#[test]
fn licences_and_credits_reach_the_manifest_and_filter_keeps_exactly_the_allowed_rows() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let dir = tempdir();
    let mut lines = vec![GBIF_HEADER.to_string()];
    let mut want: HashMap<String, (&str, bool, &str)> = HashMap::new();
    for (i, (license, holder, creator, references, id, complete)) in ROWS.iter().enumerate() {
        let url = origin.url(0, &format!("/img/w64-h48-{i}.jpg"));
        // gbifID type format identifier references title description source audience created
        // creator contributor publisher license rightsHolder
        lines.push(format!(
            "{}\tStillImage\timage/jpeg\t{url}\t{references}\tPhoto {i}\t\t\t\t2020\t{creator}\t\tPublisher {}\t{license}\t{holder}",
            i + 1,
            i % 2
        ));
        want.insert(url, (id, *complete, license));
    }
    let input = dir.path().join("multimedia.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let config = dir.path().join("job.env");
    std::fs::write(&config, format!("CONTACT=tests@example.org\n{FAST}INITIAL_RATE_LIMIT=50\n")).unwrap();
    let out = dir.path().join("out");
    let (cfg, o) = (config.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&["--config", cfg, "prep", "-i", input.to_str().unwrap(), "-o", o]);
    run_ok(&["--config", cfg, "download", "-o", o]);
    run_ok(&["index", "-o", o]);

    let manifest = read_manifest(&out);
    assert_eq!(manifest.height(), ROWS.len());
    let col = |n: &str| manifest.column(n).unwrap().str().unwrap().clone();
    let (url, id, raw, holder, creator, publisher, references) = (
        col("url"),
        col("license_id"),
        col("license"),
        col("rights_holder"),
        col("creator"),
        col("publisher"),
        col("references"),
    );
    let complete = manifest.column("attribution_complete").unwrap().bool().unwrap().clone();
    for i in 0..manifest.height() {
        let u = url.get(i).unwrap();
        let (want_id, want_complete, want_raw) = want[u];
        assert_eq!(id.get(i), Some(want_id), "{u}");
        assert_eq!(raw.get(i).unwrap_or_default(), want_raw, "the raw string is kept beside the id");
        assert_eq!(complete.get(i), Some(want_complete), "{u}");
        assert!(publisher.get(i).unwrap().starts_with("Publisher "), "{u}");
        assert!(references.get(i).unwrap().starts_with("http://portal/"), "{u}");
        let credited = holder.get(i).is_some() || creator.get(i).is_some();
        assert_eq!(credited, !matches!(want_raw, "https://creativecommons.org/licenses/by/4.0/legalcode"), "{u}");
    }

    let report: serde_json::Value = serde_json::from_str(&run_ok(&["licenses", "-o", o, "--json"])).unwrap();
    let count = |id: &str| (report["by_license"][id]["images"].as_u64(), report["by_license"][id]["complete"].as_u64());
    assert_eq!(count("CC-BY-4.0"), (Some(2), Some(1)), "{report}");
    assert_eq!(count("CC0-1.0"), (Some(1), Some(1)));
    assert_eq!(count("CC-BY-NC-4.0"), (Some(1), Some(1)));
    assert_eq!(count("unknown"), (Some(1), Some(0)));
    assert_eq!(count("all-rights-reserved"), (Some(1), Some(1)));
    assert_eq!(report["images"]["images"].as_u64(), Some(6));
    assert_eq!(report["unknown_strings"][""].as_u64(), Some(1), "the row without a licence");
    assert_eq!(report["by_publisher"]["Publisher 0"]["images"].as_u64(), Some(3));
    let screen = run_ok(&["licenses", "-o", o]);
    assert!(screen.contains("CC-BY-4.0") && screen.contains("complete attribution"), "{screen}");

    let kept: serde_json::Value = serde_json::from_str(&run_ok(&[
        "filter",
        "-o",
        o,
        "--license",
        "CC0-1.0,CC-BY-4.0",
        "--attribution-complete",
        "--json",
    ]))
    .unwrap();
    assert_eq!(kept["kept"].as_u64(), Some(2), "{kept}");
    assert_eq!(kept["dropped"]["license"].as_u64(), Some(3), "{kept}");
    assert_eq!(kept["dropped"]["attribution_incomplete"].as_u64(), Some(1), "{kept}");
    let keep = ParquetReader::new(File::open(out.join("filter/keep.parquet")).unwrap()).finish().unwrap();
    let mut kept_urls: Vec<String> =
        keep.column("url").unwrap().str().unwrap().iter().map(|u| u.unwrap().to_string()).collect();
    kept_urls.sort();
    let mut allowed: Vec<String> =
        want.iter().filter(|(_, w)| w.1 && ["CC0-1.0", "CC-BY-4.0"].contains(&w.0)).map(|(u, _)| u.clone()).collect();
    allowed.sort();
    assert_eq!(kept_urls, allowed, "exactly the open, credited rows");

    let typo = run(&["filter", "-o", o, "--license", "CC-BY-4"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(stderr(&typo).contains("did you mean CC-BY-4.0"), "{}", stderr(&typo));
}

/// Every manifest file under `out/index/manifest`, concatenated.
pub(crate) fn read_manifest(out: &std::path::Path) -> DataFrame {
    let pattern = out.join("index/manifest/**/*.parquet");
    let files = glob_files(&pattern);
    let frames = files.iter().map(|f| ParquetReader::new(File::open(f).unwrap()).finish().unwrap());
    frames.reduce(|a, b| a.vstack(&b).unwrap()).expect("a manifest")
}

/// The files under the folder part of `pattern` ending as its file part does (`**/*.parquet`).
fn glob_files(pattern: &std::path::Path) -> Vec<std::path::PathBuf> {
    let root = pattern.to_str().unwrap().split("/**").next().unwrap().to_string();
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(root)];
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
    files.sort();
    files
}
