//! Licences and attribution from a GBIF multimedia table to the manifest: each row's licence
//! read as an SPDX id beside its raw string, its credits carried by uuid, its dataset and
//! taxonomy joined from the occurrence file, `licenses` counting them, `filter --license
//! --attribution-complete` keeping exactly the allowed rows, and `cite` counting images per GBIF
//! dataset after removals and filters.

use std::collections::HashMap;
use std::fs::File;

use polars::prelude::*;

use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::FAST;
pub(crate) use crate::index::manifest as read_manifest;
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
    // The same download's occurrence file: rows 1-5 (row 6 has none), in another order, with
    // columns the join does not read, and a line cut short.
    let mut occurrence = vec!["gbifID\tdatasetKey\tpublishingOrgKey\tbasisOfRecord\tkingdom\tfamily\tgenus\tscientificName\ttaxonKey\teventDate".to_string()];
    for id in [5, 3, 1, 2, 4] {
        occurrence.push(format!(
            "{id}\tdataset-{}\torg-1\tPRESERVED_SPECIMEN\tPlantae\tAsteraceae\tBellis\tBellis perennis L.\t{}\t2020-05-0{id}",
            id % 2,
            3000 + id
        ));
    }
    occurrence.push("7\tdataset-9".to_string());
    let occurrence_file = dir.path().join("occurrence.txt");
    std::fs::write(&occurrence_file, occurrence.join("\n") + "\n").unwrap();
    let config = dir.path().join("job.env");
    std::fs::write(&config, format!("CONTACT=tests@example.org\n{FAST}INITIAL_RATE_LIMIT=50\n")).unwrap();
    let out = dir.path().join("out");
    let (cfg, o) = (config.to_str().unwrap(), out.to_str().unwrap());
    let occ = occurrence_file.to_str().unwrap();
    run_ok(&["--config", cfg, "prep", "-i", input.to_str().unwrap(), "-o", o, "--occurrence", occ]);
    let prep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("prep_report.json")).unwrap()).unwrap();
    let join = &prep["occurrence"];
    let joined = ["rows", "malformed_lines", "matched_urls", "unmatched_urls"].map(|k| join[k].as_u64());
    assert_eq!(joined, [6, 1, 5, 1].map(Some), "{join}");
    assert!(join["missing_columns"].as_array().unwrap().iter().any(|c| c == "species"), "{join}");
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
        let dataset = col("dataset_key").get(i).map(str::to_string);
        let gbif_id: u32 = u.rsplit('-').next().unwrap().trim_end_matches(".jpg").parse::<u32>().unwrap() + 1;
        let (taxon, name) =
            (col("taxon_key").get(i).map(str::to_string), col("scientific_name").get(i).map(str::to_string));
        if gbif_id <= 5 {
            assert_eq!(dataset, Some(format!("dataset-{}", gbif_id % 2)), "{u}: joined on its gbifID");
            assert_eq!(taxon, Some((3000 + gbif_id).to_string()));
            assert_eq!(name.as_deref(), Some("Bellis perennis L."));
        } else {
            assert_eq!((dataset, taxon), (None, None), "{u}: no occurrence row, nothing joined");
        }
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
    assert_eq!(report["by_dataset"]["dataset-1"]["images"].as_u64(), Some(3), "gbifIDs 1, 3 and 5");
    assert_eq!(report["by_dataset"]["(none)"]["images"].as_u64(), Some(1));
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

    // cite: images per GBIF dataset, recounted from the input: gbifIDs 1, 3, 5 are dataset-1;
    // 2 and 4 dataset-0, and 2 is taken down; 6 has no occurrence row.
    std::fs::remove_dir_all(out.join("filter")).unwrap();
    let takedown = dir.path().join("takedown.txt");
    let second = want.keys().find(|u| u.ends_with("-1.jpg")).unwrap().clone();
    std::fs::write(&takedown, format!("{second}\n")).unwrap();
    run_ok(&["remove", "-o", o, "--urls", takedown.to_str().unwrap()]);
    run_ok(&["index", "-o", o]);
    let cite: serde_json::Value = serde_json::from_str(&run_ok(&["cite", "-o", o, "--json"])).unwrap();
    assert_eq!(cite["by_dataset"], serde_json::json!({"dataset-1": 3, "dataset-0": 1}), "{cite}");
    assert_eq!((cite["images"].as_u64(), cite["without_dataset"].as_u64()), (Some(5), Some(1)), "{cite}");
    let csv = std::fs::read_to_string(out.join("cite/derived-dataset.csv")).unwrap();
    assert_eq!(csv, "datasetKey,count\ndataset-1,3\ndataset-0,1\n");
    let screen = run_ok(&["cite", "-o", o, "--doi", "10.15468/dd.test01"]);
    assert!(screen.contains("1 image(s) have no datasetKey") && screen.contains("--occurrence"), "{screen}");
    let bib = std::fs::read_to_string(out.join("cite/CITATION.bib")).unwrap();
    assert!(
        bib.contains("https://doi.org/10.15468/dd.test01") && bib.contains("4 images from 2 GBIF datasets"),
        "{bib}"
    );
    // After a licence filter, only the kept images are cited: gbifID 1 (2 is taken down).
    run_ok(&["filter", "-o", o, "--license", "CC0-1.0,CC-BY-4.0", "--attribution-complete"]);
    let cite: serde_json::Value = serde_json::from_str(&run_ok(&["cite", "-o", o, "--json"])).unwrap();
    assert_eq!(cite["by_dataset"], serde_json::json!({"dataset-1": 1}), "{cite}");
    assert_eq!(cite["left_out"].as_u64(), Some(4), "{cite}");
}
