//! The snapshot diff behind `refresh` (issue 34): two snapshots prepped by the real `prep` (with
//! `--occurrence`), the old one given a manifest as `index` writes it, classified into exactly
//! the planted new, unchanged, changed, gone and removed images; a taken-down image is never
//! `new`; many scratch parts give the same plan as one; a malformed row is counted, and a missing
//! manifest says what to run.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use distributed_downloader::index::attribution::of_batch;
use distributed_downloader::index::batch::{frame, Row};
use distributed_downloader::index::run::manifest_file;
use distributed_downloader::refresh::{self, DiffOptions, DiffReport, Inputs};
use distributed_downloader::store::parquet::write_parquet;
use distributed_downloader::store::paths;
use polars::prelude::*;

use crate::util::*;

/// One image of a snapshot: its GBIF id, URL, licence, rights holder, and its family in the
/// occurrence file.
struct Image {
    id: u32,
    url: String,
    license: &'static str,
    holder: &'static str,
    family: &'static str,
}

fn image(id: u32, license: &'static str, holder: &'static str, family: &'static str) -> Image {
    let host = if id % 2 == 0 { "a.example.org" } else { "b.example.org" };
    Image { id, url: format!("http://{host}/img/{id}.jpg"), license, holder, family }
}

/// Preps `images` (and their occurrence rows, dataset `dataset-A` up to id 5, else `dataset-B`)
/// into `out`.
fn prep(dir: &Path, name: &str, images: &[Image]) -> PathBuf {
    let mut lines = vec![GBIF_HEADER.to_string()];
    let mut occurrence = vec!["gbifID\tdatasetKey\tkingdom\tfamily\ttaxonKey".to_string()];
    for i in images {
        lines.push(format!(
            "{}\tStillImage\timage/jpeg\t{}\thttp://portal/{}\tPhoto\t\t\t\t2020\tA. Person\t\tMuseum\t{}\t{}",
            i.id, i.url, i.id, i.license, i.holder
        ));
        let dataset = if i.id <= 5 { "dataset-A" } else { "dataset-B" };
        occurrence.push(format!("{}\t{dataset}\tPlantae\t{}\t{}", i.id, i.family, 100 + i.id));
    }
    let (input, occ) = (dir.join(format!("{name}.txt")), dir.join(format!("{name}-occurrence.txt")));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    std::fs::write(&occ, occurrence.join("\n") + "\n").unwrap();
    let out = dir.join(name);
    let args =
        ["prep", "-i", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--occurrence", occ.to_str().unwrap()];
    run_ok(&args);
    out
}

/// Writes `old`'s manifest as `index` would (attribution joined from its batches), each image's
/// final record from `status` by URL (stored when not listed).
fn write_manifest(old: &Path, status: &BTreeMap<String, &'static str>) {
    for (server, (_, batches)) in read_servers(old) {
        for p in 0..batches {
            let mut credits = of_batch(old, &server, p).unwrap();
            let rows: Vec<Row> = read_urls(old)
                .into_iter()
                .filter(|u| u.server == server && u.partition == p)
                .enumerate()
                .map(|(k, u)| Row {
                    status: status.get(&u.url).copied().unwrap_or("stored"),
                    shard: format!("downloads/server_name={server}/partition_id={p}/shard-000000.h5"),
                    row: k as u32,
                    attribution: credits.remove(&u.uuid).unwrap_or_default(),
                    uuid: u.uuid,
                    source_ids: u.source_ids,
                    url: u.url,
                    ..Row::default()
                })
                .collect();
            let path = manifest_file(old, &server, p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_parquet(&path, &mut frame(rows, &server, p).unwrap()).unwrap();
        }
    }
}

/// The plan as rows `url -> (class, reason, changed, old_status)`, and its rows in uuid order.
fn read_plan(out: &Path) -> (BTreeMap<String, [Option<String>; 4]>, Vec<String>) {
    let (mut by_url, mut all) = (BTreeMap::new(), Vec::new());
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(paths::refresh_plan(out)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let df = ParquetReader::new(File::open(&file).unwrap()).finish().unwrap();
        let s = |n: &str| df.column(n).unwrap().str().unwrap().clone();
        let (url, class, reason, changed, status) = (s("url"), s("class"), s("reason"), s("changed"), s("old_status"));
        for i in 0..df.height() {
            let get = |c: &StringChunked| c.get(i).map(str::to_string);
            by_url.insert(url.get(i).unwrap().to_string(), [get(&class), get(&reason), get(&changed), get(&status)]);
            let row: Vec<String> = df.get_row(i).unwrap().0.iter().map(|v| v.to_string()).collect();
            all.push(row.join("|"));
        }
    }
    all.sort();
    (by_url, all)
}

fn run_diff(inputs: &Inputs, new: &Path, rows_per_part: u64) -> DiffReport {
    let opts = DiffOptions { rows_per_part };
    let (old, urls, occ) = (&inputs.old_manifest, &inputs.new_urls, &inputs.new_occurrence);
    refresh::diff(old, urls, occ, &paths::refresh_scratch(new), new, &opts).unwrap()
}

#[test]
fn a_new_snapshot_is_classified_into_exactly_the_planted_classes_and_many_parts_give_one_part_s_plan() {
    let dir = tempdir();
    let old_images = vec![
        image(1, "CC-BY", "Museum", "Asteraceae"),
        image(2, "CC-BY", "Museum", "Asteraceae"),
        image(3, "CC-BY", "Museum", "Asteraceae"),
        image(4, "CC-BY", "Museum", "Asteraceae"),
        image(5, "CC-BY", "Museum", "Asteraceae"),
        image(6, "CC-BY", "Museum", "Poaceae"),
        image(7, "CC-BY", "Museum", "Poaceae"),
        image(8, "CC-BY", "Museum", "Poaceae"),
        image(9, "CC-BY", "Museum", "Poaceae"),
        image(10, "CC-BY", "Museum", "Poaceae"),
    ];
    let old = prep(dir.path(), "old", &old_images);
    let u = |id: usize| old_images[id - 1].url.clone();
    // 6 and 9 failed; 7 and 10 were taken down.
    let status = BTreeMap::from([(u(6), "failed"), (u(9), "failed"), (u(7), "removed"), (u(10), "removed")]);
    write_manifest(&old, &status);

    // The new snapshot: 1 gains a second source id (13, same URL), 3 changes family, 4 its
    // licence, 5 its rights holder; 2 is as it was; 6 (failed) and 7 (taken down) are listed
    // again; 8, 9 and 10 are gone; 11 and 12 are new.
    let mut new_images = vec![
        image(1, "CC-BY", "Museum", "Asteraceae"),
        image(2, "CC-BY", "Museum", "Asteraceae"),
        image(3, "CC-BY", "Museum", "Rosaceae"),
        image(4, "CC0", "Museum", "Asteraceae"),
        image(5, "CC-BY", "Herbarium", "Asteraceae"),
        image(6, "CC-BY", "Museum", "Poaceae"),
        image(7, "CC-BY", "Museum", "Poaceae"),
        image(11, "CC-BY", "Museum", "Poaceae"),
        image(12, "CC-BY", "Museum", "Poaceae"),
    ];
    new_images.push(Image { id: 13, url: u(1), license: "CC-BY", holder: "Museum", family: "Asteraceae" });
    let new = prep(dir.path(), "new", &new_images);

    let inputs = refresh::inputs(&old, &new).unwrap();
    let report = run_diff(&inputs, &new, DiffOptions::default().rows_per_part);
    let c = &report.classes;
    assert_eq!(
        [c.new, c.unchanged, c.metadata_changed, c.gone, c.removed, report.images],
        [3, 1, 4, 3, 1, 12],
        "{report:#?}"
    );
    assert!(report.occurrence_compared, "both snapshots have occurrence fields");
    assert_eq!(report.reasons["not_in_old"], 2);
    assert_eq!(report.reasons["failed_in_old"], 1);
    assert_eq!(report.reasons["not_in_snapshot"], 3);

    let (plan, rows) = read_plan(&new);
    let want = |id: usize, class: &str, reason: Option<&str>, changed: Option<&str>| {
        let url = if id <= 10 { u(id) } else { new_images.iter().find(|i| i.id == id as u32).unwrap().url.clone() };
        let got = &plan[&url];
        assert_eq!(got[0].as_deref(), Some(class), "image {id}: {got:?}");
        assert_eq!((got[1].as_deref(), got[2].as_deref()), (reason, changed), "image {id}: {got:?}");
    };
    want(1, "metadata_changed", None, Some("source_ids"));
    want(2, "unchanged", None, None);
    want(3, "metadata_changed", None, Some("family"));
    want(4, "metadata_changed", None, Some("license"));
    want(5, "metadata_changed", None, Some("rights_holder"));
    want(6, "new", Some("failed_in_old"), None);
    want(7, "removed", Some("removed_in_old"), None);
    want(8, "gone", Some("not_in_snapshot"), None);
    want(9, "gone", Some("not_in_snapshot"), None);
    want(10, "gone", Some("not_in_snapshot"), None);
    want(11, "new", Some("not_in_old"), None);
    want(12, "new", Some("not_in_old"), None);
    assert_eq!(plan[&u(7)][3].as_deref(), Some("removed"), "the takedown is named as the old record");
    assert_eq!(plan[&u(2)][3].as_deref(), Some("stored"));

    // Per dataset: A holds 1-5, B the rest (gone ones by the old snapshot's dataset).
    let a = &report.per_dataset["dataset-A"];
    let b = &report.per_dataset["dataset-B"];
    assert_eq!([a.unchanged, a.metadata_changed, a.new, a.gone], [1, 4, 0, 0], "{report:#?}");
    assert_eq!([b.new, b.removed, b.gone, b.unchanged], [3, 1, 3, 0], "{report:#?}");
    let servers: u64 = report.per_server.values().map(|s| s.total()).sum();
    assert_eq!((servers, report.per_server.len()), (12, 2));
    let on_disk: DiffReport =
        serde_json::from_str(&std::fs::read_to_string(paths::refresh_report(&new)).unwrap()).unwrap();
    assert_eq!(on_disk, report);

    // One image per part: the same plan, row for row.
    let many = run_diff(&inputs, &new, 1);
    assert!(many.parts >= 10, "{} parts", many.parts);
    assert_eq!(
        (many.classes, &many.per_dataset, &many.per_server),
        (report.classes, &report.per_dataset, &report.per_server)
    );
    let (_, rows_many) = read_plan(&new);
    assert_eq!(rows_many, rows);
    assert!(!paths::refresh_scratch(&new).exists(), "the scratch folder is removed");
}

#[test]
fn a_malformed_manifest_row_is_counted_and_a_missing_manifest_says_to_run_index() {
    let dir = tempdir();
    let images = [image(1, "CC0", "Museum", "Poaceae"), image(2, "CC0", "Museum", "Poaceae")];
    let old = prep(dir.path(), "old", &images);
    let new = prep(dir.path(), "new", &images);
    let err = refresh::inputs(&old, &new).unwrap_err().to_string();
    assert!(err.contains("run `distributed-downloader index --output"), "{err}");

    write_manifest(&old, &BTreeMap::new());
    // A row whose uuid is not one, beside the good ones.
    let broken = manifest_file(&old, "zz", 0);
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    let row = Row { uuid: "not-a-uuid".into(), url: "http://c/1.jpg".into(), status: "stored", ..Row::default() };
    write_parquet(&broken, &mut frame(vec![row], "zz", 0).unwrap()).unwrap();
    let inputs = refresh::inputs(&old, &new).unwrap();
    let report = run_diff(&inputs, &new, 1000);
    assert_eq!((report.old.malformed, report.classes.unchanged, report.images), (1, 2, 2), "{report:#?}");
    assert!(report.old.examples[0].contains("no valid uuid"), "{:?}", report.old.examples);
}
