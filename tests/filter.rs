//! `filter` on a downloaded dataset: each rule drops exactly the rows that break it, with that
//! reason, the keep-list holds the rest, and no shard is touched.

use std::collections::BTreeMap;
use std::fs::File;

use polars::prelude::*;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, shard_files, FAST};
use crate::util::*;

#[test]
fn each_rule_drops_its_rows_with_its_reason_and_the_shards_are_untouched() {
    let origin = Origin::start(vec![HostSpec::loopback(2, Behaviour::Ok)]).unwrap();
    let url = |path: &str| origin.url(0, path);
    let wanted = [url("/img/w640-h480-1.jpg"), url("/img/w480-h640-2.png")];
    let small = url("/img/w90-h200-3.jpg");
    let thin = url("/img/w900-h200-4.jpg");
    let taken_down = url("/img/w640-h480-5.jpg");
    let missing = url("/page.html");
    let urls: Vec<String> =
        wanted.iter().cloned().chain([small.clone(), thin.clone(), taken_down.clone(), missing.clone()]).collect();
    let job = job(&urls, 100, &format!("{FAST}INITIAL_RATE_LIMIT=20\n"));
    let out = job.out.to_str().unwrap();
    job.download_ok(&[]);
    run_ok(&["index", "-o", out]);
    let shards_before: Vec<(std::path::PathBuf, u64)> =
        shard_files(&job.out).into_iter().map(|p| (p.clone(), std::fs::metadata(&p).unwrap().len())).collect();

    let drop_list = job.out.join("takedowns.txt");
    std::fs::write(&drop_list, format!("# a provider's takedown\n{taken_down}\n")).unwrap();
    let args = ["filter", "-o", out, "--json", "--min-side", "100", "--max-aspect", "3"];
    let report: serde_json::Value =
        serde_json::from_str(&run_ok(&[&args[..], &["--drop", drop_list.to_str().unwrap()]].concat())).unwrap();
    assert_eq!((report["rows"].as_u64(), report["kept"].as_u64()), (Some(6), Some(2)), "{report}");

    let read =
        |name: &str| ParquetReader::new(File::open(job.out.join("filter").join(name)).unwrap()).finish().unwrap();
    let strings = |df: &DataFrame, n: &str| -> Vec<String> {
        df.column(n).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
    };
    let mut kept = strings(&read("keep.parquet"), "url");
    kept.sort();
    let mut want = wanted.to_vec();
    want.sort();
    assert_eq!(kept, want);
    let dropped = read("dropped.parquet");
    let reasons: BTreeMap<String, String> =
        strings(&dropped, "url").into_iter().zip(strings(&dropped, "reason")).collect();
    let expected: BTreeMap<String, String> =
        [(small, "min_side"), (thin, "max_aspect"), (taken_down, "in_drop_list"), (missing, "status")]
            .into_iter()
            .map(|(u, r)| (u, r.to_string()))
            .collect();
    assert_eq!(reasons, expected);
    let shards_after: Vec<(std::path::PathBuf, u64)> =
        shard_files(&job.out).into_iter().map(|p| (p.clone(), std::fs::metadata(&p).unwrap().len())).collect();
    assert_eq!(shards_before, shards_after, "filter rewrites no shard");
}
