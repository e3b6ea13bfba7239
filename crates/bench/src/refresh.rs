//! `dd-bench refresh-diff` (`make bench-refresh`): the diff of two generated snapshots of 10M
//! rows (`--rows`), ours against DuckDB doing the same anti-joins (`duckdb/refresh_diff.py`).
//!
//! The old snapshot is a manifest as `index` writes it (its own frame function), one file per
//! batch of [`BATCH_ROWS`] over [`SERVERS`] servers: 2% of its rows failed, 0.1% taken down, the
//! rest stored. The new snapshot is prep's batch files, occurrence files and servers table for
//! the old rows minus 5% (gone), with 3% of them under another licence, plus 10% new rows. Every
//! row carries GBIF-like attribution and occurrence fields, the same on both sides but for the
//! licence. Our diff runs in a child process (`refresh-diff-child`) and DuckDB in its Python;
//! each is timed with its peak RSS, and the class counts of both must equal what was planted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use distributed_downloader::index::attribution::{Attribution, ATTRIBUTION_COLUMNS};
use distributed_downloader::index::batch::{frame, Row};
use distributed_downloader::index::run::manifest_file;
use distributed_downloader::prep::carried::CARRIED;
use distributed_downloader::prep::occurrence::FIELDS;
use distributed_downloader::prep::spill::{image_uuid, row_uuid};
use distributed_downloader::refresh::{self, DiffOptions};
use distributed_downloader::store::batches::write_batch;
use distributed_downloader::store::parquet::write_parquet;
use distributed_downloader::store::paths;
use distributed_downloader::store::tables::{write_servers_table, ServerRow};
use polars::prelude::*;

use crate::cli::{RefreshChildArgs, RefreshDiffArgs};

/// Rows per batch file: GBIF's default batch size.
const BATCH_ROWS: u64 = 10_000;
/// Servers the batches are dealt over.
const SERVERS: u64 = 100;
/// The old licence, and the one 3% of the images have in the new snapshot.
const OLD_LICENSE: &str = "http://creativecommons.org/licenses/by/4.0/";
const NEW_LICENSE: &str = "http://creativecommons.org/publicdomain/zero/1.0/";
/// DuckDB's side of the comparison, run from the clone the benchmark was built in.
const DUCKDB_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/duckdb/refresh_diff.py");

/// What row `g` of the old snapshot (0..rows) is.
fn failed(g: u64) -> bool {
    g % 100 < 2
}
fn removed(g: u64) -> bool {
    g % 1000 == 503
}
fn gone(g: u64) -> bool {
    g % 20 == 7
}
fn licence_changed(g: u64) -> bool {
    (40..43).contains(&(g % 100))
}

/// The server and partition of batch `b` (on both sides: a batch's rows are `b * BATCH_ROWS..`).
fn place(b: u64) -> (String, u64) {
    (format!("s{}", b % SERVERS), b / SERVERS)
}

fn url(g: u64) -> String {
    format!("http://s{}.example.org/img/{g}.jpg", g / BATCH_ROWS % SERVERS)
}

/// The compared fields of image `g` but the licence, by column name (absent ones left out).
fn fields(g: u64) -> Vec<(&'static str, String)> {
    vec![
        ("title", format!("Herbarium sheet {g}")),
        ("rights_holder", format!("Museum {}", g % 500)),
        ("creator", format!("Collector {}", g % 3000)),
        ("publisher", format!("Publisher {}", g % 200)),
        ("references", format!("https://portal.example.org/occurrence/{g}")),
        ("dataset_key", image_uuid(&format!("dataset-{}", g % 2000)).to_string()),
        ("basis_of_record", "PRESERVED_SPECIMEN".to_string()),
        ("kingdom", "Plantae".to_string()),
        ("family", format!("Family {}", g % 400)),
        ("genus", format!("Genus {}", g % 5000)),
        ("scientific_name", format!("Species {} L.", g % 50_000)),
        ("taxon_key", (1000 + g % 50_000).to_string()),
    ]
}

fn value<'a>(fields: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}

/// Row `g` of the old manifest, as `index` writes it.
fn old_row(g: u64, row: u32) -> Row {
    let (url, f) = (url(g), fields(g));
    let mut values: Vec<Option<String>> =
        ATTRIBUTION_COLUMNS.iter().map(|c| value(&f, c).map(str::to_string)).collect();
    values[0] = Some(OLD_LICENSE.to_string());
    let (server, partition) = place(g / BATCH_ROWS);
    let status = if removed(g) {
        "removed"
    } else if failed(g) {
        "failed"
    } else {
        "stored"
    };
    Row {
        uuid: image_uuid(&url).to_string(),
        source_ids: vec![g.to_string()],
        final_url: url.clone(),
        url,
        shard: format!("downloads/server_name={server}/partition_id={partition}/shard-000000.h5"),
        row,
        status,
        error_class: if status == "stored" { String::new() } else { status.replace("failed", "http_4xx") },
        format: "jpeg".into(),
        attribution: Attribution { values, taxon_key: value(&f, "taxon_key").map(str::to_string) },
        ..Row::default()
    }
}

/// Writes the old snapshot's manifest under `old`.
fn write_old(old: &Path, rows: u64) -> anyhow::Result<()> {
    for b in 0..rows.div_ceil(BATCH_ROWS) {
        let range = b * BATCH_ROWS..((b + 1) * BATCH_ROWS).min(rows);
        let batch: Vec<Row> = range.enumerate().map(|(k, g)| old_row(g, k as u32)).collect();
        let (server, partition) = place(b);
        let path = manifest_file(old, &server, partition);
        std::fs::create_dir_all(path.parent().expect("a batch folder"))?;
        write_parquet(&path, &mut frame(batch, &server, partition)?)?;
    }
    Ok(())
}

/// The batch file and occurrence file of images `gs` of the new snapshot.
fn new_frames(gs: &[u64], rows: u64) -> PolarsResult<(DataFrame, DataFrame)> {
    let n = gs.len();
    let mut ids = ListStringChunkedBuilder::new("source_ids".into(), n, n);
    let mut row_uuids = ListStringChunkedBuilder::new("row_uuids".into(), n, n);
    let (mut uuids, mut urls) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut carried: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(n); CARRIED.len()];
    let mut occurrence: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(n); FIELDS.len()];
    for &g in gs {
        let (u, f, id) = (url(g), fields(g), g.to_string());
        uuids.push(image_uuid(&u).to_string());
        ids.append_values_iter(std::iter::once(id.as_str()));
        row_uuids.append_values_iter(std::iter::once(row_uuid(&id, &u).to_string().as_str()));
        for (column, c) in carried.iter_mut().zip(CARRIED) {
            let licence = if g < rows && licence_changed(g) { NEW_LICENSE } else { OLD_LICENSE };
            column.push(if c.name == "license" {
                Some(licence.to_string())
            } else {
                value(&f, c.name).map(str::to_string)
            });
        }
        for (column, (_, name)) in occurrence.iter_mut().zip(FIELDS) {
            column.push(value(&f, name).map(str::to_string));
        }
        urls.push(u);
    }
    let mut columns = vec![
        Column::new("uuid".into(), &uuids),
        Column::new("url".into(), urls),
        ids.finish().into_column(),
        row_uuids.finish().into_column(),
    ];
    columns.extend(CARRIED.iter().zip(carried).map(|(c, v)| Column::new(c.name.into(), v)));
    let mut occ = vec![Column::new("uuid".into(), uuids)];
    occ.extend(FIELDS.iter().zip(occurrence).map(|((_, name), v)| Column::new((*name).into(), v)));
    Ok((DataFrame::new(n, columns)?, DataFrame::new(n, occ)?))
}

/// Writes the new snapshot under `new` as prep would: batches, occurrence files, servers table.
fn write_new(new: &Path, rows: u64) -> anyhow::Result<u64> {
    let total = rows + rows / 10;
    let mut servers: BTreeMap<String, ServerRow> = BTreeMap::new();
    let mut written = 0;
    for b in 0..total.div_ceil(BATCH_ROWS) {
        let gs: Vec<u64> =
            (b * BATCH_ROWS..((b + 1) * BATCH_ROWS).min(total)).filter(|&g| g >= rows || !gone(g)).collect();
        let (server, partition) = place(b);
        let (mut urls, mut occ) = new_frames(&gs, rows)?;
        let id = write_batch(&new.join(paths::URLS_DIR), &server, partition, &mut urls)?;
        let occ_file = paths::batch_occurrence(new, &server, partition);
        std::fs::create_dir_all(occ_file.parent().expect("a batch folder"))?;
        write_parquet(&occ_file, &mut occ)?;
        let entry = servers.entry(server.clone()).or_insert_with(|| ServerRow {
            server_name: server,
            url_count: 0,
            batch_count: 0,
            batch_ids: Vec::new(),
            batch_rows: Vec::new(),
        });
        entry.url_count += gs.len() as u64;
        entry.batch_count += 1;
        entry.batch_ids.push(id);
        entry.batch_rows.push(gs.len() as u64);
        written += gs.len() as u64;
    }
    let servers: Vec<ServerRow> = servers.into_values().collect();
    write_servers_table(&paths::servers_table(new), &servers, 1.0)?;
    Ok(written)
}

/// The class counts the generator planted, in the report's order.
fn planted(rows: u64) -> [u64; 5] {
    let (mut new, mut unchanged, mut changed, mut gone_, mut removed_) = (rows / 10, 0, 0, 0, 0);
    for g in 0..rows {
        if gone(g) {
            gone_ += 1;
        } else if removed(g) {
            removed_ += 1;
        } else if failed(g) {
            new += 1;
        } else if licence_changed(g) {
            changed += 1;
        } else {
            unchanged += 1;
        }
    }
    [new, unchanged, changed, gone_, removed_]
}

const CLASSES: [&str; 5] = ["new", "unchanged", "metadata_changed", "gone", "removed"];

fn counts(v: &serde_json::Value) -> [u64; 5] {
    CLASSES.map(|c| v[c].as_u64().unwrap_or(u64::MAX))
}

fn line(counts: &[u64; 5]) -> String {
    CLASSES.iter().zip(counts).map(|(c, n)| format!("{c}={n}")).collect::<Vec<_>>().join(" ")
}

pub fn run(args: &RefreshDiffArgs) -> anyhow::Result<()> {
    let duckdb =
        crate::gbif::find_duckdb(args.duckdb.mode, args.duckdb.python.clone(), DUCKDB_SCRIPT, "bench-refresh")?;
    crate::remove_scratch(&args.dir);
    let (old, new) = (args.dir.join("old"), args.dir.join("new"));
    std::fs::create_dir_all(&new).with_context(|| format!("cannot create {}", new.display()))?;
    let rows = args.rows.max(1_000);
    let t = Instant::now();
    write_old(&old, rows)?;
    let new_rows = write_new(&new, rows)?;
    eprintln!(
        "bench-refresh: wrote an old manifest of {rows} rows and a new snapshot of {new_rows} in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let want = planted(rows);

    let me = std::env::current_exe()?;
    let mut cmd = Command::new(&me);
    cmd.arg("refresh-diff-child").arg("--old").arg(&old).arg("--new").arg(&new);
    let ours = crate::child::measure(&mut cmd, &args.dir.join("ours.json"))?;
    if !ours.status.success() {
        bail!(
            "our diff failed ({}); run `{} refresh-diff-child --old {} --new {}` to see why",
            ours.status,
            me.display(),
            old.display(),
            new.display()
        );
    }
    let report: serde_json::Value = serde_json::from_str(&ours.stdout).context("the child printed its report")?;
    let got = counts(&report["classes"]);
    println!(
        "bench-refresh: rows_old={rows} rows_new={new_rows} ours wall_s={:.1} peak_rss_mib={:.0} parts={} {}",
        ours.seconds,
        ours.peak_mib,
        report["parts"],
        line(&got)
    );
    let mut agree = got == want;
    if let Some(python) = duckdb {
        let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut cmd = Command::new(python);
        cmd.arg(DUCKDB_SCRIPT).arg(&old).arg(&new).arg(args.dir.join("duckdb-out"));
        cmd.args(["--threads", &threads.to_string()]);
        if let Some(limit) = &args.duckdb.memory_limit {
            cmd.args(["--memory-limit", limit]);
        }
        let duck = crate::child::measure(&mut cmd, &args.dir.join("duckdb.json"))?;
        if !duck.status.success() {
            bail!("{DUCKDB_SCRIPT} failed ({}); run it by hand to see why", duck.status);
        }
        let last = duck.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(last).context("refresh_diff.py printed its figures")?;
        let theirs = counts(&v["classes"]);
        println!(
            "bench-refresh: duckdb={} threads={threads} wall_s={:.1} (queries {:.1}) peak_rss_mib={:.0} memory_limit={} {}",
            v["duckdb_version"].as_str().unwrap_or("?"),
            duck.seconds,
            v["wall_s"].as_f64().unwrap_or(f64::NAN),
            duck.peak_mib,
            args.duckdb.memory_limit.as_deref().unwrap_or("default"),
            line(&theirs)
        );
        println!(
            "bench-refresh: ours/duckdb wall={:.2}x peak_rss={:.2}x",
            ours.seconds / duck.seconds,
            ours.peak_mib / duck.peak_mib
        );
        agree &= theirs == want;
        if theirs != want {
            println!("bench-refresh: MISMATCH duckdb {} (planted {})", line(&theirs), line(&want));
        }
    }
    if got != want {
        println!("bench-refresh: MISMATCH ours {} (planted {})", line(&got), line(&want));
    }
    if !args.keep {
        crate::remove_scratch(&args.dir);
    }
    if !agree {
        bail!("the class counts differ from what was planted (see the MISMATCH lines above)");
    }
    println!("bench-refresh: classes agree with what was planted: {}", line(&want));
    Ok(())
}

/// The child: our diff of `--new` against `--old`, its report on stdout.
pub fn child(args: &RefreshChildArgs) -> anyhow::Result<()> {
    let inputs = refresh::inputs(&args.old, &args.new)?;
    let scratch: PathBuf = paths::refresh_scratch(&args.new);
    let report = refresh::diff(
        &inputs.old_manifest,
        &inputs.new_urls,
        &inputs.new_occurrence,
        &scratch,
        &args.new,
        &DiffOptions::default(),
    )?;
    println!("{}", serde_json::json!({ "classes": report.classes, "parts": report.parts, "images": report.images }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench's own check, at a small size: our diff finds exactly what the generator planted.
    #[test]
    fn our_diff_finds_the_planted_classes_of_a_small_generated_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let rows = 25_000;
        write_old(&old, rows).unwrap();
        write_new(&new, rows).unwrap();
        let inputs = refresh::inputs(&old, &new).unwrap();
        let opts = DiffOptions { rows_per_part: 4_000 };
        let (o, u, c) = (&inputs.old_manifest, &inputs.new_urls, &inputs.new_occurrence);
        let report = refresh::diff(o, u, c, &paths::refresh_scratch(&new), &new, &opts).unwrap();
        let v = serde_json::to_value(report.classes).unwrap();
        assert_eq!(counts(&v), planted(rows));
        assert!(report.occurrence_compared && report.parts > 1);
        assert_eq!(report.changed_fields.keys().collect::<Vec<_>>(), ["license"]);
    }
}
